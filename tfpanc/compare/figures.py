"""Per table, the paper's mean beside ours for its first metric, as a bar chart (matplotlib);
the two helpers every method's own report figures use."""

from __future__ import annotations

import numpy as np

from tfpanc.result_files import save_figure


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_and_close(fig, path, dpi=100):
    """Lays out, writes (atomically) and closes one figure."""
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=dpi)
    finally:
        pyplot().close(fig)


def plot_table(table, filled, path):
    """Writes ``path`` (PNG) when at least one row has both numbers; returns True if written.

    Bars: the paper's mean and ours per row of the table's first metric; our
    bar carries its standard deviation over cases.
    """
    metric = table["metrics"][0]
    labels, theirs, ours, spread = [], [], [], []
    for label, row in table["rows"].items():
        p = row.get(metric, {}).get("mean") if isinstance(row.get(metric), dict) else None
        o = filled[label].stats(metric) if label in filled else None
        if p is None or o is None:
            continue
        labels.append(label)
        theirs.append(p)
        ours.append(o["mean"])
        spread.append(o.get("std", 0.0) or 0.0)
    if not labels:
        return False
    plt = pyplot()
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 2), 3.6))
    ax.bar(x - 0.2, theirs, 0.4, label=f"paper ({table['dataset'].split(',')[0]})", color="#999999")
    mine = sorted({filled[label].dataset.split(",")[0] for label in labels})
    ax.bar(x + 0.2, ours, 0.4, yerr=spread, capsize=3, label=f"ours ({', '.join(mine)})", color="#3a7bd5")
    top = max(max(theirs), max(o + s for o, s in zip(ours, spread)))
    ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)  # room for the legend above the bars
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(table["title"], fontsize=9)
    ax.legend(fontsize=8)
    save_and_close(fig, path)
    return True
