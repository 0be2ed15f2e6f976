"""Zhou et al.'s Table 1 and the Sec. 3.2 figures, filled from zhou runs (for ``tfpanc.compare``).

The evaluation's per-case records hold each case's trace (``round_dsc``:
DSC(Z(t), label) for t = 0..T; ``d_t``: d(t) for t = 1..T), so one run
fills the whole table: the records become
:mod:`tfpanc.methods.zhou.table1_rows` scores and its row rules apply
("After d(t) > R" for each R of the paper whatever R the run stopped at, the
best round, cases that settled before T). d(t=10) is the paper's
convergence figure: mean, median and min over cases.
"""

from __future__ import annotations

import numpy as np

from tfpanc.compare.tables import PERCENT, Ours, ours_from
from tfpanc.methods.zhou.table1_rows import table1_rows


def experiment_key(info):
    keys = ("modality", "crop_margin", "box", "fusion", "keep_components", "on_empty", "max_rounds")
    return {k: info.get(k) for k in keys}


def parse_trace(value):
    """A per-case CSV trace (``"0.61 0.72 0.74"``, or one number read as a float) as a list of floats."""
    if isinstance(value, float):
        return [value]
    return [float(v) for v in str(value).split()] if value not in (None, "") else []


def case_scores(row, max_rounds):
    """The :mod:`~tfpanc.methods.zhou.table1_rows` scores of one ``per_case.csv`` row."""
    inter = parse_trace(row.get("d_t"))
    oracle = row.get("oracle")
    return {"round_dsc": parse_trace(row.get("round_dsc")), "inter_dsc": inter, "max_rounds": int(max_rounds),
            "settled": row.get("stop_reason") in ("empty", "fixed") or (bool(inter) and inter[-1] == 1.0),
            "oracle_dsc": oracle if isinstance(oracle, float) else None}


def _stats(stats, scale):
    """A :func:`tfpanc.metrics.summarize` record in the paper's units (None when no case has a value)."""
    if stats is None or not stats.get("n"):
        return None
    return {k: stats[k] * scale for k in ("mean", "std", "min", "max")} | {"n": stats["n"]}


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
        d10 = [d[9] for d in (parse_trace(r.get("d_t")) for r in exp.rows) if len(d) >= 10]
        if d10:
            out["d(t=10)"] = Ours({"mean": float(np.mean(d10)), "median": float(np.median(d10)),
                                   "min": float(np.min(d10))}, exp.dataset, runs, cases=len(d10))
    elif table["id"] == "zhou_1":
        scores = [case_scores(r, exp.key.get("max_rounds") or 10) for r in exp.rows if parse_trace(r.get("round_dsc"))]
        for row in table1_rows(scores) if scores else []:
            values = {"DSC": _stats(row["dsc"], PERCENT), "iterations": _stats(row["iterations"], 1.0)}
            values = {k: v for k, v in values.items() if v is not None}
            if values and row["method"] in table["rows"]:
                out[row["method"]] = Ours(values, exp.dataset, runs, cases=row["dsc"]["n"])
    return {k: v for k, v in out.items() if v is not None}


def write_figures(experiments, out):
    """The per-experiment figures for compare's report (:mod:`tfpanc.methods.zhou.figures`)."""
    from tfpanc.methods.zhou import figures

    return figures.write_figures(experiments, out)
