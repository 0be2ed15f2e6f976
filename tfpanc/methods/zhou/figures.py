"""zhou's DSC per fixed-point round, from evaluated runs (for ``tfpanc.compare``'s report).

Each case's ``round_dsc`` trace (round 0: the coarse models, then one entry
per fine round it ran) gives, per round t, the mean and standard deviation
of the DSC over the cases that reached it, and how many did: the
convergence Zhou et al. discuss in Sec. 3.2. The CSV beside the PNG holds
the numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpanc.compare.figures import pyplot, save_and_close
from tfpanc.methods.zhou.comparison import parse_trace
from tfpanc.result_files import write_csv_rows


def round_curve(rows):
    """``[(round, mean DSC, std, cases)]`` over the rows' ``round_dsc`` traces."""
    traces = [parse_trace(r.get("round_dsc")) for r in rows]
    traces = [t for t in traces if t]
    out = []
    for t in range(max((len(x) for x in traces), default=0)):
        values = np.array([x[t] for x in traces if len(x) > t])
        out.append((t, float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    int(values.size)))
    return out


def write_figures(experiments, out):
    """One PNG (and CSV) per experiment with round traces; returns ``[(title, png name)]``."""
    out = Path(out)
    made = []
    for i, exp in enumerate(experiments):
        curve = round_curve(exp.rows)
        if len(curve) < 2:
            continue
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        t = [c[0] for c in curve]
        ax.errorbar(t, [100 * c[1] for c in curve], yerr=[100 * c[2] for c in curve], marker="o", capsize=3)
        for r, mean, _, n in curve:
            ax.annotate(f"n={n}", (r, 100 * mean), textcoords="offset points", xytext=(0, 8), fontsize=7,
                        ha="center")
        ax.set_xticks(t, ["coarse"] + [str(r) for r in t[1:]])
        ax.set_xlabel("fixed-point round")
        ax.set_ylabel("DSC (%)")
        ax.set_title(f"zhou: DSC per round ({exp.dataset})", fontsize=9)
        ax.grid(alpha=0.3)
        name = f"zhou_rounds_{i}.png"
        save_and_close(fig, out / name)
        write_csv_rows(out / name.replace(".png", ".csv"),
                       [{"round": r, "dsc_mean": f"{m:.5f}", "dsc_std": f"{s:.5f}", "cases": n} for r, m, s, n in curve])
        made.append((f"zhou: DSC per fixed-point round, experiment {i + 1}", name))
    return made
