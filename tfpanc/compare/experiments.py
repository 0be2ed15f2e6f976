"""Run folders to experiments: what each run is, and its folds' cases pooled.

A run is read from its own records only: ``run.json`` (method, model,
settings, fold), ``eval/per_case.csv`` (and ``eval/per_case_cnn_only.csv``
for cai BiRNN runs) and the ``cache.json`` of its ``data_dir`` (the data set).
Runs whose method-defined settings agree (the method's
``comparison.experiment_key``) are folds of one experiment; their cases are
pooled, as the papers report 4-fold cross-validation. Folds that share a
case are refused, as in :mod:`tfpanc.cv_report`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tfpanc.cv_report import evaluated_run, expand_model_dirs
from tfpanc.errors import InputError
from tfpanc.result_files import read_case_rows


@dataclasses.dataclass
class Experiment:
    """The pooled folds of one experiment.

    Args:
        method: the runs' method.
        key: the settings that make it one experiment (``{name: value}``).
        runs: the run folders, fold order.
        infos: their ``run.json`` records.
        rows: per-case dicts (floats where a value is a number), each with ``fold``.
        cnn_rows: cai BiRNN runs' CNN-alone per-case rows (else empty).
        dataset: the data set's name and case count, for table headers.
    """

    method: str
    key: dict
    runs: list
    infos: list
    rows: list
    cnn_rows: list
    dataset: str

    @property
    def folds(self):
        return sorted({r["fold"] for r in self.rows if r.get("fold") is not None})

    def values(self, column, rows=None):
        """The finite numbers of ``column`` over the pooled cases."""
        out = []
        for row in self.rows if rows is None else rows:
            value = row.get(column)
            if isinstance(value, float) and value == value and abs(value) != float("inf"):
                out.append(value)
        return out


def dataset_of(run_dir, info):
    """The data set a run was trained and evaluated on, e.g. ``phantom``; ``unknown (...)`` if unreadable."""
    if info.get("dataset"):
        return str(info["dataset"])
    data_dir = info.get("data_dir")
    if not data_dir:
        return "unknown (run.json names no data_dir)"
    # data_dir is as the training command was given it: relative to where it ran, often an ancestor.
    for root in [Path(data_dir)] + [base / data_dir for base in Path(run_dir).resolve().parents]:
        index = root / "cache.json"
        if index.is_file():
            try:
                return str(json.loads(index.read_text()).get("dataset", "unnamed"))
            except (OSError, ValueError):
                break
    return f"unknown ({data_dir}/cache.json not readable from here)"


def load_run(run_dir):
    """``(info, rows, cnn_rows)`` of one evaluated run; one-line errors for what is missing."""
    info, eval_dir = evaluated_run(run_dir)
    cnn = eval_dir / "per_case_cnn_only.csv"
    return info, read_case_rows(eval_dir / "per_case.csv"), read_case_rows(cnn) if cnn.is_file() else []


def group_runs(specs, key_of):
    """Experiments from run folders (globs allowed), grouped by method and ``key_of(method, info)``.

    Args:
        specs: run folders or glob patterns (each may also be a comma-separated list).
        key_of: ``(method, info) -> dict`` of the settings that define an experiment.

    Returns:
        a list of :class:`Experiment`, in the order their first run was named.
    """
    dirs = []
    for spec in specs:
        for d in expand_model_dirs(spec):
            if d not in dirs:
                dirs.append(d)
    if not dirs:
        raise InputError("--runs", "names no run folder")
    groups = {}
    for d in dirs:
        info, rows, cnn_rows = load_run(d)
        method = info.get("method")
        if not method:
            raise InputError(d / "run.json", "names no method")
        key = key_of(method, info)
        dataset = dataset_of(d, info)
        ident = (method, dataset, json.dumps(key, sort_keys=True))
        fold = info.get("fold")
        tagged = [dict(r, fold=fold) for r in rows]
        if ident not in groups:
            groups[ident] = Experiment(method, key, [], [], [], [], dataset)
        exp = groups[ident]
        seen = {r["case"] for r in exp.rows}
        for r in tagged:
            if r["case"] in seen:
                raise InputError(d / "eval" / "per_case.csv", f"case {r['case']} is also in another run of "
                                 f"this experiment ({', '.join(map(str, exp.runs))}): folds must not overlap")
        exp.runs.append(d)
        exp.infos.append(info)
        exp.rows.extend(tagged)
        exp.cnn_rows.extend(dict(r, fold=fold) for r in cnn_rows)
    for exp in groups.values():
        exp.dataset = f"{exp.dataset}, {len(exp.rows)} cases, {len(exp.runs)} run(s)"
    return list(groups.values())
