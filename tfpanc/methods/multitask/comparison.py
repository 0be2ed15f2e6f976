"""The multitask paper's Table I and its ablations, filled from multitask runs (for ``tfpanc.compare``).

An experiment is a C2 variant: skeleton, dense connections, feature
consistency, patch size. The full model's runs fill C1 (``c1_*``), multitask
C2 (``c2_*``) and C2 + CRF (``crf_*``, when evaluated with the CRF); the
single-task, no-dense and no-feature-consistency runs fill their rows from
their own ``c2_*`` columns; a full model with a smaller or larger patch than
the main one fills the patch rows (the paper's 16x32x32 / 16x128x128
stand for "half" and "double" the main patch; ours are scaled with it, and
the note gives the size). Seconds per volume (Fig. 9) come from the
``seconds_sliding_window`` column at the run's own step.
"""

from __future__ import annotations

from tfpanc.compare.tables import PERCENT, ours_from, pick
from tfpanc.methods.multitask.config import paper_label

METRICS = ("DSC", "JI", "precision", "recall")
_COLUMN = {"DSC": "dsc", "JI": "jaccard", "precision": "precision", "recall": "recall"}


def experiment_key(info):
    c2 = info.get("c2_model", {})
    return {"modality": info.get("modality"), "skeleton": c2.get("skeleton", True), "dense": c2.get("dense", True),
            "feature_consistency": c2.get("feature_consistency", True),
            "patch": tuple(info.get("patch", ())), "step": tuple(info.get("step", ()))}


def _columns(prefix):
    return {m: (f"{prefix}_{_COLUMN[m]}", PERCENT) for m in METRICS}


def _full(experiments):
    return [e for e in experiments if e.key["skeleton"] and e.key["dense"] and e.key["feature_consistency"]]


def fill(table, experiments):
    """``{row label: Ours}`` for one of the multitask tables."""
    full = _full(experiments)
    main = max(full, key=lambda e: len(e.rows)) if full else None
    out = {}
    if table["id"] == "multitask_steps":
        for e in full:
            label = paper_label(e.key["step"])
            ours = ours_from(e, {"seconds": ("seconds_sliding_window", 1.0)}, note=f"step {label} on this CPU")
            if ours and (label not in out or ours.cases > out[label].cases):
                out[label] = ours
        return out
    if table["id"] != "multitask_I":
        return out
    if main is not None:
        for label, prefix, note in (("C1 coarse", "c1", "C1 of the full runs"),
                                    ("multitask C2 (before CRF)", "c2", ""),
                                    ("multitask C2 + 3D dense CRF", "crf", "")):
            ours = ours_from(main, _columns(prefix), note=note)
            if ours is not None:
                out[label] = ours
    same_patch = {} if main is None else {"patch": main.key["patch"]}
    for label, settings in (("single-task C2", {"skeleton": False}),
                            ("no dense connections", {"skeleton": True, "dense": False}),
                            ("no feature consistency", {"skeleton": True, "feature_consistency": False})):
        exp = pick(experiments, **settings, **same_patch)
        if exp is not None:
            out[label] = ours_from(exp, _columns("c2"))
    if main is not None:
        base = main.key["patch"][0]
        for e in full:
            if e.key["patch"] != main.key["patch"] and e.key["patch"]:
                label = "patch 16x32x32" if e.key["patch"][0] < base else "patch 16x128x128"
                out[label] = ours_from(e, _columns("c2"), note=f"our patch {paper_label(e.key['patch'])} "
                                       f"(main {paper_label(main.key['patch'])})")
    return {k: v for k, v in out.items() if v is not None}
