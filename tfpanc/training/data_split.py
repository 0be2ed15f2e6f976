"""Which cases a run trains on, validates on and is finally evaluated on.

The cache's persisted folds give the held-out fold (``--fold``): the papers
keep those cases out of every training decision, so here they are read only
by the final evaluation. Per-epoch validation, plateau detection and model
selection see a validation set drawn from the training folds instead:
``--val_fraction`` of their cases (the multitask paper's 10 %), at least one
when the fraction is positive and two or more training cases exist, chosen
by a generator seeded with ``--seed``. The three lists are persisted in
``<run>/split.json`` on the first start, so a resumed run keeps its
validation cases, and recorded in ``run.json``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from tfpanc.errors import InputError
from tfpanc.result_files import write_json

SPLIT_FILE = "split.json"


def validation_cases(train_ids, fraction, seed):
    """The validation share of ``train_ids`` (sorted), reproducible for a seed.

    Example:
    >>> validation_cases([f"c{i}" for i in range(20)], 0.1, seed=0)
    ['c2', 'c6']
    >>> validation_cases(["a", "b", "c"], 0.1, seed=0), validation_cases(["a"], 0.1, seed=0)
    (['c'], [])
    """
    ids = sorted(train_ids)
    if fraction <= 0 or len(ids) < 2:
        return []
    count = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
    picked = np.random.default_rng(seed).choice(len(ids), size=count, replace=False)
    return sorted(ids[i] for i in picked)


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The case cache and the run's three case lists.

    Attributes:
        cache: the :class:`tfpanc.data.cache.CaseCache`.
        train_ids: cases the models are fitted on.
        val_ids: cases of the training folds for per-epoch validation.
        test_ids: the held-out fold, for the final evaluation only.
        fold: the held-out fold (-1: none).
    """

    cache: object
    train_ids: list
    val_ids: list
    test_ids: list
    fold: int

    def as_record(self):
        return {"fold": self.fold, "train": list(self.train_ids), "validation": list(self.val_ids),
                "test": list(self.test_ids)}


def check_training_labels(cache, fold):
    """Refuses a fold whose training cases hold no pancreas voxel: the networks would learn "never".

    Reads only the cases' ``meta.json`` (written by prepare), before any run folder is made.
    """
    folds_train, _ = cache.split(fold)
    if folds_train and not any(cache.case(c).meta.get("pancreas_box") for c in folds_train):
        raise InputError(cache.root, f"none of fold {fold}'s {len(folds_train)} training cases holds a "
                         "pancreas voxel (all labels empty); check the labels or --label_values of prepare")


def split_cases(cache, fold, val_fraction, seed, run_path=None):
    """The :class:`TrainingData` of a fold; persisted in (or read back from) ``run_path``.

    Raises:
        InputError: the run's recorded split belongs to another fold or cache, or
            no training case is left.
    """
    folds_train, test_ids = cache.split(fold)
    record_path = None if run_path is None else run_path / SPLIT_FILE
    if record_path is not None and record_path.exists():
        try:
            record = json.loads(record_path.read_text())
        except ValueError:
            raise InputError(record_path, "is not valid JSON; delete it to draw the split again") from None
        if record.get("fold") != fold or sorted(record["train"] + record["validation"]) != sorted(folds_train):
            raise InputError(record_path, "was made for another fold or cache; use a new --model_dir")
        data = TrainingData(cache, record["train"], record["validation"], record["test"], fold)
    else:
        val_ids = validation_cases(folds_train, val_fraction, seed)
        train_ids = [c for c in folds_train if c not in set(val_ids)]
        data = TrainingData(cache, train_ids, val_ids, list(test_ids), fold)
        if record_path is not None:
            write_json(record_path, data.as_record())
    if not data.train_ids:
        raise InputError(cache.root, f"fold {fold} leaves no training case")
    return data
