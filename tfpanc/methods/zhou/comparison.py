"""Zhou et al.'s Table 1 and the Sec. 3.2 figures, filled from zhou runs (for ``tfpanc.compare``).

Every row is computed from the evaluation's per-case records, so one run
fills the whole table: ``round_dsc`` holds DSC(Z(t), label) for t = 0..T
(t = 0 the coarse result) and ``d_t`` the inter-round DSC d(t) for
t = 1..T. "After k iterations" is ``round_dsc[k]``; "After d(t) > R" stops
at the first t with d(t) > R (else T), as Algorithm 1, for each R of the
paper whatever R the run used; "Best among all iterations" is the best
t >= 1 per case (the label chooses: an upper bound, as in the paper);
"Oracle" is the fine round cut around the label's own box. d(t=10) is the
paper's convergence figure: mean, median and min over cases.
"""

from __future__ import annotations

import numpy as np

from tfpanc.compare.tables import PERCENT, Ours, ours_from


def experiment_key(info):
    keys = ("modality", "crop_margin", "box", "fusion", "keep_components", "on_empty", "max_rounds")
    return {k: info.get(k) for k in keys}


def _series(value):
    if isinstance(value, float):
        return [value]
    return [float(v) for v in str(value).split()] if value not in (None, "") else []


def _stop_round(d_t, threshold, max_rounds):
    for t, d in enumerate(d_t, start=1):
        if d > threshold:
            return t
    return min(max_rounds, len(d_t))


def _per_case(exp, pick_round):
    """``(DSC %, rounds)`` lists of the round ``pick_round(round_dsc, d_t)`` picks per case."""
    dsc, rounds = [], []
    for row in exp.rows:
        trace, d_t = _series(row.get("round_dsc")), _series(row.get("d_t"))
        t = pick_round(trace, d_t)
        if t is not None and t < len(trace):
            dsc.append(trace[t] * PERCENT)
            rounds.append(t)
    return dsc, rounds


def fill(table, experiments):
    """``{row label: Ours}`` for one of the zhou tables."""
    if not experiments:
        return {}
    exp = max(experiments, key=lambda e: len(e.rows))
    runs = ", ".join(str(r) for r in exp.runs)
    out = {}
    if table["id"] == "zhou_coarse_views":
        for view in ("coronal", "sagittal", "axial"):
            out[view] = ours_from(exp, {"DSC": (f"coarse_{view}", PERCENT)})
    elif table["id"] == "zhou_d10":
        d10 = [d[9] for d in (_series(r.get("d_t")) for r in exp.rows) if len(d) >= 10]
        if d10:
            out["d(t=10)"] = Ours({"mean": float(np.mean(d10)), "median": float(np.median(d10)),
                                   "min": float(np.min(d10))}, exp.dataset, runs, cases=len(d10))
    elif table["id"] == "zhou_1":
        out["Coarse Segmentation"] = ours_from(exp, {"DSC": ("coarse_fused", PERCENT)})
        max_rounds = int(exp.key.get("max_rounds") or 10)
        for k in (1, 2, 3, 5, 10):
            dsc, rounds = _per_case(exp, lambda trace, d_t, k=k: k)
            if dsc:
                out[f"After {k} Iteration{'s' if k > 1 else ''}"] = Ours(
                    {"DSC": dsc, "iterations": rounds}, exp.dataset, runs, cases=len(dsc))
        for r in (0.90, 0.95, 0.99):
            dsc, rounds = _per_case(exp, lambda trace, d_t, r=r: _stop_round(d_t, r, max_rounds) if d_t else None)
            if dsc:
                out[f"After d(t) > {r:.2f}"] = Ours({"DSC": dsc, "iterations": rounds}, exp.dataset, runs,
                                                   cases=len(dsc))
        dsc, rounds = _per_case(exp, lambda trace, d_t: 1 + int(np.argmax(trace[1:])) if len(trace) > 1 else None)
        if dsc:
            out["Best among All Iterations"] = Ours({"DSC": dsc, "iterations": rounds}, exp.dataset, runs,
                                                    cases=len(dsc))
        out["Oracle Bounding Box"] = ours_from(exp, {"DSC": ("oracle", PERCENT)})
    return {k: v for k, v in out.items() if v is not None}
