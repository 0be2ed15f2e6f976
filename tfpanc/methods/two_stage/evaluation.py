"""The two-stage paper's tables from trained runs.

Per case (:func:`case_row`): **Table 1** stage 1 DSC (the coarse mask
upsampled to full resolution) and stage 2 DSC (the vote); **Table 2** box 1
and box 2 recall (the share of the pancreas inside the box) and IoU (with
the ground-truth box); and rows the paper motivates without tabulating:
each box's fine mask alone against the vote. :func:`table_rows` pools
cases as mean ± std, max, min in percent (the paper's columns), per fold
and over all folds; ``python -m tfpanc.methods.two_stage.tables`` runs it on
several folds, with a second set of runs for the center loss off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpanc.data.boxes import box_from_mask
from tfpanc.methods.two_stage.predictor import TwoStagePredictor
from tfpanc.metrics import box_iou, box_recall, dice, summarize
from tfpanc.result_files import write_eval_tables

# (key, the paper's name) in the order of its tables, then ours.
COLUMNS = (("stage1_dsc", "Stage 1 DSC"), ("stage2_dsc", "Stage 2 DSC"),
           ("box1_recall", "Box 1 recall"), ("box1_iou", "Box 1 IoU"),
           ("box2_recall", "Box 2 recall"), ("box2_iou", "Box 2 IoU"),
           ("box1_alone_dsc", "Box 1 alone DSC"), ("box2_alone_dsc", "Box 2 alone DSC"))


def case_row(out, label):
    """The scores of one predicted case (``out`` from the predictor with ``parts=True``)."""
    label = np.asarray(label) > 0
    boxes = out["boxes"] or {"box1": None, "box2": None}
    truth = box_from_mask(label)
    return {"stage1_dsc": dice(out["coarse_mask"], label), "stage2_dsc": dice(out["mask"], label),
            "box1_recall": box_recall(boxes["box1"], label), "box1_iou": box_iou(boxes["box1"], truth),
            "box2_recall": box_recall(boxes["box2"], label), "box2_iou": box_iou(boxes["box2"], truth),
            "box1_alone_dsc": dice(out["box1_mask"], label), "box2_alone_dsc": dice(out["box2_mask"], label)}


def table_rows(rows):
    """``[{"column", "name", "mean", "std", "max", "min", "n"}]`` in percent over ``rows``."""
    summary = summarize(rows, [k for k, _ in COLUMNS])
    out = []
    for key, name in COLUMNS:
        s = summary[key]
        pct = {k: None if s[k] is None else round(100 * s[k], 2) for k in ("mean", "std", "max", "min")}
        out.append({"column": key, "name": name, **pct, "n": s["n"]})
    return out


def format_rows(table):
    """The rows as the paper prints them: ``mean ± std``, max, min."""
    lines = [f"{'':18s} {'mean ± std':>16s} {'max':>7s} {'min':>7s}  n"]
    for r in table:
        if r["mean"] is None:
            lines.append(f"{r['name']:18s} {'n/a':>16s}")
            continue
        lines.append(f"{r['name']:18s} {r['mean']:7.2f} ± {r['std']:5.2f}% {r['max']:6.2f}% {r['min']:6.2f}%  "
                     f"{r['n']}")
    return "\n".join(lines)


def evaluate_cases(predictor, cache, case_ids, log=print):
    """Predicts ``case_ids``; returns the per-case rows."""
    rows = []
    for cid in case_ids:
        case = cache.case(cid)
        out = predictor(np.asarray(case.image), spacing=case.spacing, parts=True)
        row = {"case": cid, **case_row(out, case.label), "seconds": round(out["seconds"], 2)}
        rows.append(row)
        log(f"{cid}: stage 1 DSC {100 * row['stage1_dsc']:.1f}% -> stage 2 {100 * row['stage2_dsc']:.1f}% "
            f"(box 1 alone {100 * row['box1_alone_dsc']:.1f}%, box 2 alone {100 * row['box2_alone_dsc']:.1f}%); "
            f"box recall {100 * row['box1_recall']:.1f}% / {100 * row['box2_recall']:.1f}%; {out['summary']}")
    return rows


def write_tables(out_dir, rows, log=print, title="two_stage"):
    """Writes ``per_case.csv`` and ``tables.json``; logs and returns the pooled rows."""
    table = table_rows(rows)
    write_eval_tables(out_dir, rows, table)
    log(f"{title}, {len(rows)} cases (Tables 1 and 2, %):\n{format_rows(table)}")
    return table


def evaluate_run(run_dir, cache, case_ids, log=print):
    """The registry's evaluation: the held-out cases of one fold, under ``<run>/eval``."""
    rows = evaluate_cases(TwoStagePredictor.load(run_dir), cache, case_ids, log=log)
    return write_tables(Path(run_dir) / "eval", rows, log=log, title=f"{run_dir}")
