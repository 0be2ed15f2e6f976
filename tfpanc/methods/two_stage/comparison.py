"""The two-stage paper's Tables 1-3, filled from two_stage runs (for ``tfpanc.compare``).

An experiment is a center-loss setting (``center_gamma``); runs with the
center loss fill the paper's rows, fold by fold for Tables 1 and 2 (stage 1
= the upsampled coarse mask, stage 2 = the vote; box recall and IoU from
the evaluation's columns), pooled for Table 3. A run without the center loss
adds a "no center loss" row to Table 3.
"""

from __future__ import annotations

from tfpanc.compare.tables import PERCENT, ours_from


def experiment_key(info):
    return {"modality": info.get("modality"), "center_loss": float(info.get("center_gamma", 0.0)) > 0}


def _fold_rows(exp, fold):
    return [r for r in exp.rows if r.get("fold") == fold]


def fill(table, experiments):
    """``{row label: Ours}`` for one of the two_stage tables."""
    with_center = [e for e in experiments if e.key["center_loss"]]
    main = max(with_center, key=lambda e: len(e.rows)) if with_center else None
    out = {}
    if table["id"] == "two_stage_3":
        if main is not None:
            out["Two-stage (coarse)"] = ours_from(main, {"DSC": ("stage1_dsc", PERCENT)})
            out["Two-stage (refine)"] = ours_from(main, {"DSC": ("stage2_dsc", PERCENT)})
        without = [e for e in experiments if not e.key["center_loss"]]
        if without:
            exp = max(without, key=lambda e: len(e.rows))
            out["Two-stage (refine), no center loss"] = ours_from(exp, {"DSC": ("stage2_dsc", PERCENT)},
                                                                  note="center_gamma=0")
        return {k: v for k, v in out.items() if v is not None}
    if main is None:
        return out
    for fold in main.folds:
        rows = _fold_rows(main, fold)
        name = f"F{int(fold)}"
        if table["id"] == "two_stage_1":
            out[f"stage 1 (coarse) {name}"] = ours_from(main, {"DSC": ("stage1_dsc", PERCENT)}, rows)
            out[f"stage 2 (refine) {name}"] = ours_from(main, {"DSC": ("stage2_dsc", PERCENT)}, rows)
        elif table["id"] == "two_stage_2":
            for box in ("box1", "box2"):
                out[f"{box} {name}"] = ours_from(main, {"recall": (f"{box}_recall", PERCENT),
                                                        "IoU": (f"{box}_iou", PERCENT)}, rows)
    return {k: v for k, v in out.items() if v is not None}


def write_figures(experiments, out):
    """The per-experiment figures for compare's report (:mod:`tfpanc.methods.two_stage.figures`)."""
    from tfpanc.methods.two_stage import figures

    return figures.write_figures(experiments, out)
