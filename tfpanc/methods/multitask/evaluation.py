"""The multitask paper's Table I rows from a trained run's held-out cases.

Per case (:func:`case_row`), each on the input's own grid: DSC, Jaccard,
precision and recall (Eqs. 12-15) of C1 alone (its cleaned mask upsampled),
of C2 (before the CRF) and of C2 + CRF, the share of the pancreas inside
C1's region (``region_recall``; the paper: "the region size is ensured to
cover the entire pancreas"), the seconds of each part of the pipeline and
the number of windows. :func:`table_rows` pools them as the paper prints
them, mean ± std [max, min] in percent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpanc.metrics import dice, jaccard, precision, recall, summarize
from tfpanc.result_files import write_eval_tables

METRICS = (("dsc", "DSC", dice), ("jaccard", "JI", jaccard), ("precision", "precision", precision),
           ("recall", "recall", recall))
# (prefix, the paper's row name) in Table I's order.
ROWS = (("c1", "C1 coarse"), ("c2", "C2 (before CRF)"), ("crf", "C2 + 3D dense CRF"))
TIMES = ("resample", "c1", "sliding_window", "crf", "paste_back")


def case_row(out, label):
    """The scores of one case from the predictor's output with ``parts=True``."""
    label = np.asarray(label) > 0
    row = {}
    for prefix, _ in ROWS:
        for key, _, fn in METRICS:
            row[f"{prefix}_{key}"] = fn(out[f"{prefix}_mask"], label)
    total = int(label.sum())
    row["region_recall"] = float((out["region_mask"] & label).sum() / total) if total else float("nan")
    for part in TIMES:
        row[f"seconds_{part}"] = round(float(out["seconds_by_part"].get(part, 0.0)), 3)
    row["seconds"] = round(float(out["seconds"]), 3)
    row["windows"] = int(out["windows"])
    return row


def table_rows(cases, rows=ROWS):
    """``[{"row", "name", "<metric>_mean", "_std", "_min", "_max", "n"}]`` in percent."""
    keys = [f"{p}_{k}" for p, _ in rows for k, _, _ in METRICS]
    summary = summarize(cases, keys)
    out = []
    for prefix, name in rows:
        entry = {"row": prefix, "name": name}
        for key, _, _ in METRICS:
            s = summary[f"{prefix}_{key}"]
            for stat in ("mean", "std", "min", "max"):
                entry[f"{key}_{stat}"] = None if s[stat] is None else round(100 * s[stat], 2)
            entry["n"] = s["n"]
        out.append(entry)
    return out


def format_rows(table):
    """Table I's layout: each metric as ``mean ± std [max, min]`` (%)."""
    head = f"{'':22s}" + "".join(f"{label:>27s}" for _, label, _ in METRICS)
    lines = [head]
    for r in table:
        cells = []
        for key, _, _ in METRICS:
            if r[f"{key}_mean"] is None:
                cells.append(f"{'n/a':>27s}")
            else:
                cells.append(f"{r[f'{key}_mean']:6.1f} ± {r[f'{key}_std']:4.1f} [{r[f'{key}_max']:5.1f}, "
                             f"{r[f'{key}_min']:5.1f}]".rjust(27))
        lines.append(f"{r['name']:22s}" + "".join(cells))
    return "\n".join(lines)


def evaluate_cases(predictor, cache, case_ids, log=print):
    """Predicts ``case_ids`` (held-out cases of the original cache); returns the per-case rows."""
    rows = []
    for cid in case_ids:
        case = cache.case(cid)
        out = predictor(np.asarray(case.image), spacing=case.spacing, parts=True)
        row = {"case": cid, **case_row(out, case.label)}
        rows.append(row)
        log(f"{cid}: C1 {100 * row['c1_dsc']:.1f}% -> C2 {100 * row['c2_dsc']:.1f}% -> CRF "
            f"{100 * row['crf_dsc']:.1f}% (region holds {100 * row['region_recall']:.1f}% of the pancreas); "
            f"{row['seconds']:.1f} s; {out['summary']}")
    return rows


def write_tables(out_dir, cases, log=print, title="multitask"):
    """Writes ``per_case.csv``, ``tables.csv`` and ``tables.json``; logs and returns the pooled rows."""
    table = table_rows(cases)
    write_eval_tables(out_dir, cases, table)
    covered = sum(1 for c in cases if c["region_recall"] >= 1.0)
    log(f"{title}, {len(cases)} cases (Table I, %):\n{format_rows(table)}\n"
        f"the region holds the whole pancreas in {covered} of {len(cases)} cases")
    return table


def evaluate_run(run_dir, cache, case_ids, log=print):
    """The registry's evaluation: the held-out cases of one fold, under ``<run>/eval``."""
    from tfpanc.methods.multitask.predictor import MultitaskPredictor

    rows = evaluate_cases(MultitaskPredictor.load(run_dir), cache, case_ids, log=log)
    return write_tables(Path(run_dir) / "eval", rows, log=log, title=f"{run_dir}")
