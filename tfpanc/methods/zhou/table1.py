r"""Table 1 of Zhou et al. from trained zhou pipelines.

Usage::

    python -m tfpanc.methods.zhou.table1 --model_dir=runs/zhou/fold0 \
        [--model_dir=runs/zhou/fold1 ...] [--data_dir=cache/nih] [--folds=0,1] \
        [--output_dir=runs/zhou/table1] [--max_rounds=10] [--nooracle]

(further pipeline directories may also follow as plain arguments). Each
pipeline segments the held-out cases of its own fold (its ``run.json``;
every case of the cache for a pipeline trained with ``--fold=-1``), or the
validation cases of ``--folds`` of ``--data_dir`` when given; every case runs
all T rounds with its label. The rows (single-view coarse, fused coarse,
after 1, 2, 3, 5, 10 rounds, after d(t) > 0.90 / 0.95 / 0.99 with the mean
rounds, best among iterations, oracle box) are pooled over all cases and
printed as mean ± std [min, max] DSC in percent; ``table1.csv``,
``table1.json`` (rows and per-case scores) and ``per_case.csv`` go to
``--output_dir`` (default: ``<pipeline>/eval`` for one pipeline, else
``table1/`` next to the pipelines).
"""

from __future__ import annotations

import os
from pathlib import Path

from absl import flags

from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.methods.zhou.config import check_rounds


def define_flags(fv):
    flags.DEFINE_multi_string("model_dir", [], "A zhou pipeline directory (its run.json is the pipeline record); repeatable.", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Case cache to evaluate on; default: each pipeline's.", flag_values=fv)
    flags.DEFINE_list("folds", None, "Evaluate the held-out cases of these folds; default: each "
                      "pipeline's own fold.", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where table1.csv/json and per_case.csv go.", flag_values=fv)
    flags.DEFINE_integer("max_rounds", None, "T; default: the pipeline's (10).", flag_values=fv)
    flags.DEFINE_bool("oracle", True, "Also run the oracle-box round.", flag_values=fv)


def _folds(raw):
    try:
        return [int(f) for f in raw]
    except ValueError:
        raise InputError("--folds", f"expected fold numbers, got {','.join(raw)}") from None


def cases_for(info, cache, folds=None):
    """The case ids a pipeline is evaluated on (see the module docstring)."""
    if folds is None:
        folds = [int(info.get("fold", -1))]
    ids = []
    for fold in folds:
        train_ids, val_ids = cache.split(fold)
        ids += val_ids if fold != -1 else train_ids
    return list(dict.fromkeys(ids))


def default_output(model_dirs):
    if len(model_dirs) == 1:
        return Path(model_dirs[0]) / "eval"
    return Path(os.path.commonpath([os.path.abspath(d) for d in model_dirs])) / "table1"


def run_table1(model_dirs, data_dir=None, folds=None, output_dir=None, max_rounds=None, oracle=True,
               log=print):
    """Evaluates pipelines and writes Table 1; returns the rows.

    Args:
        model_dirs: pipeline directories.
        data_dir: cache to evaluate on (default: each pipeline's ``data_dir``).
        folds: fold numbers whose validation cases to use (default: each
            pipeline's own fold).
        output_dir: where the files go (default: see the module docstring).
        max_rounds: T (default: the pipeline's).
        oracle: also compute the oracle-box row.
        log: print-like callable.

    Example:
    >>> rows = run_table1(["runs/zhou/fold0"])                  # doctest: +SKIP
    >>> [r["method"] for r in rows][3:5]                        # doctest: +SKIP
    ['Coarse Segmentation', 'After 1 Iteration']
    """
    from tfpanc.data.cache import CaseCache
    from tfpanc.methods.zhou.evaluation import evaluate_cases, write_table1
    from tfpanc.methods.zhou.predictor import ZhouPredictor
    from tfpanc.methods.zhou.recipe import read_pipeline

    if not model_dirs:
        raise InputError("--model_dir", "is required")
    infos = [read_pipeline(d) for d in model_dirs]  # all checked before any model is built
    jobs = []
    for d, info in zip(model_dirs, infos):
        cache = CaseCache(data_dir or info["data_dir"])
        ids = cases_for(info, cache, folds)
        if not ids:
            raise InputError(d, "no cases to evaluate (fold -1 trains on all; pass --folds)")
        jobs.append((d, cache, ids))
    scores, rows = [], []
    for d, cache, ids in jobs:
        log(f"{d}: {len(ids)} cases of {cache.root}")
        s, r = evaluate_cases(ZhouPredictor(d, max_rounds=max_rounds), cache, ids, log=log, oracle=oracle)
        for row in r:
            row["pipeline"] = str(d)
        scores += s
        rows += r
    out = Path(output_dir) if output_dir else default_output(model_dirs)
    table = write_table1(out, scores, rows, log=log)
    log(f"written: {out / 'table1.csv'}, {out / 'table1.json'}, {out / 'per_case.csv'}")
    return table


def main(argv, fv):
    model_dirs = list(fv.model_dir) + list(argv[1:])
    check_rounds(fv.max_rounds, None)
    folds = None if fv.folds is None else _folds(fv.folds)
    run_table1(model_dirs, fv.data_dir, folds, fv.output_dir, fv.max_rounds, fv.oracle)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
