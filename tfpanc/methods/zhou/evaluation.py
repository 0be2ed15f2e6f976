"""A trained zhou pipeline scored in the form of the paper's Table 1.

:func:`evaluate_cases` runs every case to T with its label and the oracle
box, and :func:`write_table1` writes ``table1.csv``,
``table1.json`` and ``per_case.csv`` (rows of
:func:`tfpanc.methods.zhou.table1_rows.table1_rows`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from tfpanc.data.patches import VIEWS
from tfpanc.methods.zhou.predictor import ZhouPredictor, format_rounds
from tfpanc.methods.zhou.table1_rows import format_table1, stop_round, table1_rows, trace_scores
from tfpanc.metrics import dice
from tfpanc.result_files import write_csv_rows, write_json


def evaluate_cases(predictor, cache, case_ids, log=print, oracle=True):
    """Runs every case to T with its label; returns ``(scores, per_case_rows)``.

    The Table 1 rows need every round, so each case runs all T rounds
    (:func:`tfpanc.methods.zhou.table1_rows.trace_scores`); the result under
    the pipeline's own R is read off the same rounds.
    """
    scores, rows = [], []
    for cid in case_ids:
        start = time.time()
        case = cache.case(cid)
        image = np.asarray(case.image)
        label = np.asarray(case.label) > 0
        coarse, fine = predictor.prepared(image)
        oracle_dsc = dice(predictor.oracle(image, fine, label), label) if oracle else None
        s = trace_scores(predictor.rounds(image, coarse, fine), label, predictor.max_rounds, oracle_dsc)
        s["case"] = cid
        scores.append(s)
        t_star, reason = stop_round(s, predictor.stop_threshold)
        final = s["round_dsc"][min(t_star, len(s["round_dsc"]) - 1)]
        out = {"rounds": t_star, "stop_reason": reason, "inter_dsc": s["inter_dsc"][:t_star]}
        views = s["coarse_view_dsc"] or {}
        rows.append({"case": cid, **{f"coarse_{v}": views.get(v, math.nan) for v in VIEWS},
                     "coarse_fused": s["round_dsc"][0], "final": final,
                     "rounds": t_star, "stop_reason": reason,
                     "oracle": math.nan if oracle_dsc is None else oracle_dsc,
                     "d_t": " ".join(f"{v:.4f}" for v in s["inter_dsc"]),
                     "round_dsc": " ".join(f"{v:.4f}" for v in s["round_dsc"]),
                     "seconds": round(time.time() - start, 2)})
        log(f"{cid}: coarse DSC {100 * s['round_dsc'][0]:.1f}% -> {100 * final:.1f}% "
            f"after {format_rounds(out)}" + (f"; oracle {100 * oracle_dsc:.1f}%" if oracle else ""))
    return scores, rows


def write_table1(out_dir, scores, rows, log=print):
    """Writes table1.csv / table1.json / per_case.csv; logs and returns the Table 1 rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table1_rows(scores)
    csv_rows = []
    for r in table:
        d, it = r["dsc"], r["iterations"] or {}
        csv_rows.append({"method": r["method"],
                         **{f"dsc_{k}": None if d[k] is None else round(100 * d[k], 4)
                            for k in ("mean", "std", "min", "max")},
                         "n": d["n"], "iterations_mean": it.get("mean"), "iterations_std": it.get("std")})
    write_csv_rows(out_dir / "table1.csv", csv_rows)
    if rows:
        write_csv_rows(out_dir / "per_case.csv", rows)
    write_json(out_dir / "table1.json", {"rows": table, "cases": scores})
    log(f"Table 1 over {len(scores)} cases:\n{format_table1(table)}")
    return table


def evaluate_pipeline(pipeline_dir, cache, case_ids, log=print, output_dir=None, oracle=True):
    """Table 1 of one pipeline over ``case_ids``; written under ``<pipeline>/eval``."""
    predictor = ZhouPredictor(pipeline_dir)
    scores, rows = evaluate_cases(predictor, cache, case_ids, log=log, oracle=oracle)
    return write_table1(output_dir or Path(pipeline_dir) / "eval", scores, rows, log=log)


def evaluate_run(run_dir, cache, case_ids, log=print):
    """The registry's evaluation: Table 1 of a pipeline (a single model has none)."""
    from tfpanc.training.run_dir import RunDir

    if RunDir(run_dir).run_info().get("kind") == "model":
        log("one zhou model: Table 1 needs the whole pipeline (--stage=all --view=all); no evaluation")
        return None
    return evaluate_pipeline(run_dir, cache, case_ids, log=log)
