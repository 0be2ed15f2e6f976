"""two_stage's boxes per case, from evaluated runs (for ``tfpanc.compare``'s report).

Per held-out case, the recall (share of the pancreas inside) and IoU of
box 1 (from the coarse mask) and box 2 (from the fine stage's mask), the
quantities of the paper's Table 2, with the CSV of the numbers beside the
PNG. A case whose box misses part of the pancreas shows as a recall below
100 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpanc.compare.figures import pyplot, save_and_close
from tfpanc.result_files import write_csv_rows

COLUMNS = ("box1_recall", "box1_iou", "box2_recall", "box2_iou")


def write_figures(experiments, out):
    """One PNG (and CSV) per experiment with box columns; returns ``[(title, png name)]``."""
    out = Path(out)
    made = []
    for i, exp in enumerate(experiments):
        rows = [r for r in exp.rows if all(isinstance(r.get(c), float) for c in COLUMNS)]
        if not rows:
            continue
        plt = pyplot()
        fig, (ax_r, ax_i) = plt.subplots(1, 2, figsize=(max(6.0, 0.35 * len(rows) + 4), 3.6), sharex=True)
        x = np.arange(len(rows))
        for ax, metric in ((ax_r, "recall"), (ax_i, "iou")):
            for k, offset in (("box1", -0.2), ("box2", 0.2)):
                ax.bar(x + offset, [100 * r[f"{k}_{metric}"] for r in rows], 0.4, label=k)
            ax.set_ylabel(f"{'recall' if metric == 'recall' else 'IoU'} (%)")
            ax.set_ylim(0, 105)
            ax.set_xticks(x, [r["case"] for r in rows], rotation=60, ha="right", fontsize=6)
            ax.legend(fontsize=7)
        fig.suptitle(f"two_stage: boxes per case ({exp.dataset})", fontsize=9)
        name = f"two_stage_boxes_{i}.png"
        save_and_close(fig, out / name)
        write_csv_rows(out / name.replace(".png", ".csv"),
                       [{"case": r["case"], **{c: f"{r[c]:.5f}" for c in COLUMNS}} for r in rows])
        made.append((f"two_stage: box recall and IoU per case, experiment {i + 1}", name))
    return made
