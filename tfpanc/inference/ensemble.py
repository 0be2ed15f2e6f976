"""Several trained runs as one predictor: the voxels most of them mark.

nnU-Net predicts with the five folds of a cross-validation together; tfpanc's
``predict --model_dir=A,B,C`` and ``evaluate_real`` do the same with any runs
of one method (the folds, or one recipe trained with several ``--seed``).
Each run predicts the input through its own full pipeline (its training
spacing, body crop and the method's own post-processing: zhou's fixed point,
two_stage's box voting, multitask's CRF), so a run's answer is what it gives
alone; the ensemble's mask is the strict majority of the runs' masks (an even
count's tie is background) and its probability the runs' mean. Voting the
masks, not thresholding the mean probability as nnU-Net does, keeps every
method's post-processing: two_stage's and multitask's masks are not a
threshold of the probability they write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpanc.errors import InputError
from tfpanc.inference.voting import majority_vote

# The votes are counted in uint8.
MAX_RUNS = 255


def check_runs(runs, flag="--model_dir"):
    """``runs`` is ``[(run_dir, method, info)]``; several must share the method and modality."""
    if not runs:
        raise InputError(flag, "names no run")
    if len(runs) > MAX_RUNS:
        raise InputError(flag, f"names {len(runs)} runs; an ensemble takes at most {MAX_RUNS}")
    seen = set()
    first_dir, first_method, first_info = runs[0]
    for run_dir, method, info in runs:
        key = Path(run_dir).resolve()  # runs/a, ./runs/a and runs/a/ are one run
        if key in seen:
            raise InputError(flag, f"names {run_dir} twice; an ensemble counts each run once")
        seen.add(key)
        if method.name != first_method.name:
            raise InputError(flag, f"{run_dir} is a {method.name} run and {first_dir} a {first_method.name} run; "
                             "an ensemble takes runs of one method")
        if info.get("modality") != first_info.get("modality"):
            raise InputError(flag, f"{run_dir} is a {info.get('modality')} run and {first_dir} a "
                             f"{first_info.get('modality')} run; an ensemble takes runs of one modality")


def majority_predictor(members):
    """One ``predict(image, probability=False, spacing=None)`` from several.

    Args:
        members: predictors with the registry's contract, one per run.

    Returns:
        A predictor whose ``mask`` holds the voxels more than half of the
        members mark, ``probability`` (when asked) the members' mean, and
        ``summary`` how many voxels each member marked.

    Example:
    >>> def marks(*ones):
    ...     return lambda image, probability=False, spacing=None: {
    ...         "mask": np.isin(np.arange(4), ones), "probability": np.isin(np.arange(4), ones) * 1.0}
    >>> out = majority_predictor([marks(0, 1), marks(1, 2), marks(1)])(np.zeros(4), probability=True)
    >>> out["mask"].tolist(), [round(float(p), 2) for p in out["probability"]]
    ([False, True, False, False], [0.33, 1.0, 0.33, 0.0])
    """
    members = list(members)
    if len(members) == 1:
        return members[0]

    def predict(image, probability=False, spacing=None):
        masks, total = [], None
        for member in members:
            out = member(image, probability=probability, spacing=spacing)
            masks.append(np.asarray(out["mask"]).astype(bool, copy=False))
            if probability:
                p = np.asarray(out["probability"], np.float32)
                total = p.copy() if total is None else np.add(total, p, out=total)
        result = {"mask": majority_vote(masks, min_votes=len(masks) // 2 + 1),
                  "summary": f"majority of {len(masks)} runs, which marked "
                             f"{' / '.join(str(int(m.sum())) for m in masks)} voxels"}
        if probability:
            result["probability"] = total / np.float32(len(masks))
        return result

    return predict
