"""Bar charts of the multitask paper's ablations (Figs. 8, 9, 11, 13).

Each of those figures is the same picture: for each of the four metrics
(DSC, JI, precision, recall), one bar per model or setting, the mean over
the cases with its standard deviation as the error bar. :func:`metric_bars`
draws it from per-case rows (:func:`tfpanc.methods.multitask.evaluation.case_row`);
:func:`write_figures` picks the figures whose runs exist.
"""

from __future__ import annotations

import math

import numpy as np

from tfpanc.errors import InputError
from tfpanc.methods.multitask.config import paper_label, parse_paper_size
from tfpanc.methods.multitask.evaluation import METRICS
from tfpanc.result_files import save_figure

FIGURES = (("no_dense", "fig11_dense.png", "Fig. 11: without vs with dense connections"),
           ("no_feature_consistency", "fig13_feature_consistency.png",
            "Fig. 13: without vs with feature-consistency modules"))


def group_stats(rows, key):
    """Mean and standard deviation (ddof 1, as Table I) in percent of the finite ``key`` values of ``rows``.

    Returns:
        ``(mean, std, n)``; ``mean`` is NaN and ``std`` 0 when no value is finite.
    """
    values = np.array([float(r[key]) for r in rows if r.get(key) is not None], float)
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), 0.0, 0
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return 100 * float(values.mean()), 100 * std, int(values.size)


def metric_bars(groups, path, title, prefix="c2"):
    """Writes a PNG with, for each metric, one bar per group (mean ± std, %).

    Args:
        groups: ``{label: per-case rows}`` in the order the bars go (the
            paper's figures put the ablated model first and the full one
            last, or the sizes in increasing order).
        path: the PNG file.
        title: the figure's title.
        prefix: which result of each row to draw: ``c2`` (before the CRF),
            ``crf`` or ``c1``; the columns read are ``<prefix>_dsc`` etc.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    groups = dict(groups)
    x = np.arange(len(METRICS))
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(3 + 0.5 * len(METRICS) * max(len(groups), 1), 4.5))
    for i, (label, rows) in enumerate(groups.items()):
        stats = [group_stats(rows, f"{prefix}_{key}") for key, _, _ in METRICS]
        means = [s[0] for s in stats]
        bars = ax.bar(x + (i - (len(groups) - 1) / 2) * width, means, width, yerr=[s[1] for s in stats],
                      capsize=3, label=f"{label} (n={max(s[2] for s in stats)})")
        # The mean written on each bar: the differences the paper discusses are a point or two.
        for bar, mean in zip(bars, means):
            if np.isfinite(mean):
                ax.annotate(f"{mean:.1f}", (bar.get_x() + bar.get_width() / 2, 1), ha="center", va="bottom",
                            fontsize=7, color="white")
    ax.set_xticks(x)
    ax.set_xticklabels([label for _, label, _ in METRICS])
    ax.set_ylabel("% (mean ± std over cases)")
    ax.set_ylim(0, 125)  # room above the bars for the legend
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=min(len(groups), 3), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _patch_size(name):
    try:
        return parse_paper_size(name[len("patch_"):], "--variant") if name.startswith("patch_") else None
    except InputError:
        return None  # any other name is a plain variant


def write_figures(out, full, variants, sweep=(), full_patch=None):
    """Writes the bar charts whose runs exist; returns their paths.

    Args:
        out: the folder (a :class:`pathlib.Path`).
        full: the full model's per-case rows.
        variants: ``{name: per-case rows}``; ``patch_DxHxW`` names go into
            Fig. 8 with the full model at ``full_patch`` (``(x, y, z)``),
            ``no_dense`` into Fig. 11, ``no_feature_consistency`` into Fig. 13.
        sweep: :func:`tfpanc.methods.multitask.tables.step_sweep`'s entries (Fig. 9).
    """
    paths = []
    patches = {n: _patch_size(n) for n in variants if _patch_size(n)}
    if patches:
        full_label = f"full ({paper_label(full_patch)})" if full_patch else "full"
        order = sorted([(p, n) for n, p in patches.items()] + [(tuple(full_patch or (64, 64, 16)), full_label)],
                       key=lambda pn: math.prod(pn[0]))
        groups = {n: (full if n == full_label else variants[n]) for _, n in order}
        paths.append(metric_bars(groups, out / "fig8_patch_sizes.png", "Fig. 8: C2 training patch size"))
    if sweep:
        groups = {f"{e['step']}, {e['seconds']:.1f} s/volume": e["cases"] for e in sweep}
        paths.append(metric_bars(groups, out / "fig9_steps.png", "Fig. 9: test-time step (no CRF)"))
    for name, file, title in FIGURES:
        if name in variants:
            paths.append(metric_bars({name: variants[name], "full": full}, out / file, title))
    return paths
