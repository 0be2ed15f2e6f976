r"""Pools the evaluations of cross-validation fold runs into one report.

Usage::

    python -m tfpanc.cv_report --model_dirs=runs/cai_f0,runs/cai_f1,runs/cai_f2,runs/cai_f3 \
        [--output_dir=runs/cai_cv]
    python -m tfpanc.cv_report --model_dirs='runs/cai_f*'

Each fold run must hold ``run.json`` and ``eval/per_case.csv`` (written by
training's evaluation, :func:`tfpanc.methods.cai.evaluation.evaluate_run`).
The cases of all folds are pooled, as the papers report 4-fold CV: DSC, JI,
precision, recall, AVD (and every other per-case metric) as
``mean ± std [min, max]`` over all cases; for BiRNN runs also the CNN alone
(``eval/per_case_cnn_only.csv``) and the total number of abnormal shape
changes (slice-to-slice AVD > 0.5 mm) before and after the BiRNN; and the
pooled threshold sweep (``eval/threshold_sweep.csv`` of every fold, each
fold's mean DSC weighted by its number of cases) as CSV and PNG.

Refused with one line: a fold without its evaluation files, a case id in two
folds (folds must be disjoint), folds of different methods, models, losses or
modalities. With ``--output_dir`` the report is also written there:
``report.txt``, ``summary.json``, ``per_case.csv`` (pooled, with each case's
fold), ``per_case_cnn_only.csv``, ``threshold_sweep.csv`` and ``.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
from pathlib import Path

import numpy as np
from absl import flags

from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.metrics.summary import format_table, summarize
from tfpanc.metrics.threshold_sweep import plot_threshold_sweep
from tfpanc.result_files import (read_case_rows, read_json, sweep_temporaries, write_csv_rows, write_json,
                                 write_text, written_together)

PAPER_FIRST = ("dsc", "jaccard", "precision", "recall", "avd")
# Settings that make two runs different experiments: their cases must not be pooled.
SAME_SETTINGS = ("method", "model", "loss", "modality")


@dataclasses.dataclass
class FoldResult:
    """One fold run's evaluation: run.json, per-case rows, optional sweep."""

    run_dir: Path
    info: dict
    rows: list
    cnn_rows: list
    sweep: dict | None  # {"thresholds": array, curve name: array}


@dataclasses.dataclass
class CVReport:
    """The pooled result of :func:`pool_folds`."""

    folds: list
    rows: list
    cnn_rows: list
    summary: dict
    cnn_summary: dict | None
    sweep: dict | None
    sweep_note: str = ""


def expand_model_dirs(spec):
    """Run folders of a comma-separated list whose entries may be glob patterns.

    Example:
    >>> expand_model_dirs("a,b")
    [PosixPath('a'), PosixPath('b')]
    """
    dirs = []
    for entry in (e.strip() for e in str(spec).split(",")):
        if not entry:
            continue
        if glob.has_magic(entry):
            matches = sorted(p for p in glob.glob(entry) if Path(p).is_dir())
            if not matches:
                raise InputError(entry, "matches no run folder")
            dirs.extend(Path(m) for m in matches)
        else:
            dirs.append(Path(entry))
    return dirs


def _read_rows(path):
    rows = read_case_rows(path)
    for row in rows:
        for key, value in row.items():
            if key != "case" and not isinstance(value, float):
                raise InputError(path, f"case {row['case']}: {key}={value!r} is not a number")
    return rows


def _read_sweep(path):
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    if len(table) < 2 or table[0][0] != "threshold":
        raise InputError(path, "not a threshold sweep (first column 'threshold')")
    try:
        values = np.array([[float(v) for v in r] for r in table[1:]])
    except ValueError:
        raise InputError(path, "holds a value that is not a number") from None
    return {"thresholds": values[:, 0], **{name: values[:, i + 1] for i, name in enumerate(table[0][1:])}}


def evaluated_run(run_dir):
    """``(run.json record, eval folder)`` of an evaluated run; one-line errors for what is missing."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise InputError(run_dir, "not a finished tfpanc run (no run.json)")
    info = read_json(run_dir / "run.json", "retrain the run")
    per_case = run_dir / "eval" / "per_case.csv"
    if not per_case.is_file():
        raise InputError(per_case, "missing: evaluate this run first (train with --evaluate)")
    return info, per_case.parent


def load_fold(run_dir):
    """Reads one fold run's run.json and eval files; one-line errors if missing."""
    info, eval_dir = evaluated_run(run_dir)
    cnn_path = eval_dir / "per_case_cnn_only.csv"
    sweep_path = eval_dir / "threshold_sweep.csv"
    return FoldResult(Path(run_dir), info, _read_rows(eval_dir / "per_case.csv"),
                      _read_rows(cnn_path) if cnn_path.is_file() else [],
                      _read_sweep(sweep_path) if sweep_path.is_file() else None)


def _metric_order(rows):
    names = []
    for row in rows:
        names.extend(k for k in row if k not in ("case", "fold") and k not in names)
    return [m for m in PAPER_FIRST if m in names] + [m for m in names if m not in PAPER_FIRST]


def _pool_sweeps(folds):
    if any(f.sweep is None for f in folds):
        missing = ", ".join(str(f.run_dir) for f in folds if f.sweep is None)
        return None, f"no pooled threshold sweep: {missing} has no eval/threshold_sweep.csv"
    first = folds[0].sweep
    for f in folds[1:]:
        if list(f.sweep) != list(first) or not np.allclose(f.sweep["thresholds"], first["thresholds"]):
            raise InputError(f.run_dir / "eval" / "threshold_sweep.csv",
                             f"thresholds or curves differ from {folds[0].run_dir}'s")
    # Each fold's curve is its mean DSC over its cases: weigh by case counts.
    weights = np.array([len(f.rows) for f in folds], float)
    pooled = {"thresholds": first["thresholds"]}
    for name in list(first)[1:]:
        pooled[name] = np.average(np.stack([f.sweep[name] for f in folds]), axis=0, weights=weights)
    return pooled, ""


def pool_folds(run_dirs):
    """Pools the cases of fold runs; refuses duplicates and mixed experiments.

    Args:
        run_dirs: fold run folders (each with run.json and eval/per_case.csv).

    Returns:
        a :class:`CVReport`.

    Example:
    >>> report = pool_folds(["runs/f0", "runs/f1", "runs/f2", "runs/f3"])  # doctest: +SKIP
    >>> round(report.summary["dsc"]["mean"], 3)                             # doctest: +SKIP
    0.837
    """
    if not run_dirs:
        raise InputError("--model_dirs", "names no run folder")
    folds = [load_fold(d) for d in run_dirs]
    for f in folds[1:]:
        for key in SAME_SETTINGS:
            if f.info.get(key) != folds[0].info.get(key):
                raise InputError(f.run_dir / "run.json", f"{key} {f.info.get(key)!r} differs from "
                                 f"{folds[0].info.get(key)!r} of {folds[0].run_dir}: not folds of one experiment")
    seen = {}
    for f in folds:
        for row in f.rows:
            if row["case"] in seen:
                raise InputError(f.run_dir / "eval" / "per_case.csv",
                                 f"case {row['case']} is also in {seen[row['case']]}: folds must not overlap")
            seen[row["case"]] = f.run_dir
    if any(f.cnn_rows for f in folds) and not all(f.cnn_rows for f in folds):
        missing = next(f for f in folds if not f.cnn_rows)
        raise InputError(missing.run_dir / "eval" / "per_case_cnn_only.csv",
                         "missing while other folds have one")
    rows = [{"case": r["case"], "fold": f.info.get("fold", i), **{k: v for k, v in r.items() if k != "case"}}
            for i, f in enumerate(folds) for r in f.rows]
    cnn_rows = [{"case": r["case"], "fold": f.info.get("fold", i), **{k: v for k, v in r.items() if k != "case"}}
                for i, f in enumerate(folds) for r in f.cnn_rows]
    summary = summarize(rows, _metric_order(rows))
    cnn_summary = summarize(cnn_rows, _metric_order(cnn_rows)) if cnn_rows else None
    sweep, note = _pool_sweeps(folds)
    return CVReport(folds, rows, cnn_rows, summary, cnn_summary, sweep, note)


def format_report(report):
    """The report as text: folds, pooled tables, shape changes, best threshold."""
    info = report.folds[0].info
    final_name = "PNet-MSA + BiRNN" if report.cnn_rows else str(info.get("model"))
    thresholds = sorted({f.info.get("threshold") for f in report.folds}, key=str)
    lines = [f"{len(report.folds)}-fold cross-validation of {info.get('method')} {info.get('model')} "
             f"(loss {info.get('loss')}, {info.get('modality')}), {len(report.rows)} cases, "
             f"threshold {', '.join(str(t) for t in thresholds)}"]
    for f in report.folds:
        dsc = np.mean([r["dsc"] for r in f.rows]) if "dsc" in f.rows[0] else float("nan")
        lines.append(f"  fold {f.info.get('fold', '?')}: {len(f.rows)} cases, mean DSC {100 * dsc:.1f}% ({f.run_dir})")
    lines += ["", f"{final_name}:", format_table(report.summary)]
    if report.cnn_summary is not None:
        lines += ["", "CNN alone (PNet-MSA before the BiRNN):", format_table(report.cnn_summary)]
        if "abnormal_shape_changes" in report.summary and "abnormal_shape_changes" in report.cnn_summary:
            before = sum(r["abnormal_shape_changes"] for r in report.cnn_rows)
            after = sum(r["abnormal_shape_changes"] for r in report.rows)
            lines.append(f"abnormal shape changes (slice-to-slice AVD > 0.5 mm), all cases: "
                         f"{before:.0f} before the BiRNN -> {after:.0f} after")
    if report.sweep is not None:
        for name in list(report.sweep)[1:]:
            curve = report.sweep[name]
            best = int(np.argmax(curve))
            t = report.sweep["thresholds"]
            lines.append(f"threshold sweep {name}: best mean DSC {100 * curve[best]:.1f}% at {t[best]:.2f}; "
                         f"spread over {t[0]:.2f}-{t[-1]:.2f}: {100 * (curve.max() - curve.min()):.1f} points")
    elif report.sweep_note:
        lines.append(report.sweep_note)
    return "\n".join(lines)


def write_report(report, output_dir, text=None):
    """Writes report.txt, summary.json, pooled per-case CSVs and the sweep under ``output_dir``."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    text = format_report(report) if text is None else text
    summary = {"runs": [str(f.run_dir) for f in report.folds], "cases": len(report.rows),
               "final": report.summary}
    if report.cnn_summary is not None:
        summary["cnn_only"] = report.cnn_summary
    sweep_temporaries(out)
    with written_together(folder=out):  # every file of the report, or none
        write_csv_rows(out / "per_case.csv", report.rows)
        if report.cnn_rows:
            write_csv_rows(out / "per_case_cnn_only.csv", report.cnn_rows)
        if report.sweep is not None:
            names = list(report.sweep)[1:]
            summary["threshold_sweep"] = {k: np.round(v, 5).tolist() for k, v in report.sweep.items()}
            write_csv_rows(out / "threshold_sweep.csv",
                           [{"threshold": f"{t:.2f}", **{n: f"{report.sweep[n][i]:.5f}" for n in names}}
                            for i, t in enumerate(report.sweep["thresholds"])])
            plot_threshold_sweep(report.sweep["thresholds"], {n: report.sweep[n] for n in names},
                                 out / "threshold_sweep.png",
                                 f"threshold vs DSC, {len(report.folds)} folds ({len(report.rows)} cases)")
        write_json(out / "summary.json", summary)
        write_text(out / "report.txt", text + "\n")
    return out


def define_flags(fv):
    flags.DEFINE_string("model_dirs", None, "Fold run folders, comma separated; entries may be globs.",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Optional folder for report.txt, summary.json, CSVs and the PNG.",
                        flag_values=fv)


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    if not fv.model_dirs:
        raise InputError("--model_dirs", "is required")
    report = pool_folds(expand_model_dirs(fv.model_dirs))
    text = format_report(report)
    print(text)
    if fv.output_dir:
        write_report(report, fv.output_dir, text)
        print(f"written to {fv.output_dir}")


if __name__ == "__main__":
    cli.run_command(define_flags, main)
