"""Predict at the voxel spacing a run was trained at, answer on the input's grid.

A network learns organs at the size they had in its training voxels: a
model trained on 3.1 mm phantom voxels sees the pancreas of a 0.7 mm scan
4x too large. As nnU-Net does, every run records its training spacing
(per axis, the median over the training cases: ``run.json``'s
``training_spacing``) and :func:`predict_at_spacing` resamples the input to
it (linear), runs the method's predictor there, and brings the result back
to the input's grid: the mask as a label (linear interpolation of the mask,
>= 0.5, :func:`tfpanc.data.preprocess.resize_label`), the probability
linearly. An input already at the training spacing (every axis within
:data:`SAME_SPACING`) is predicted as it is, untouched.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.preprocess import resample_image, resampled_shape, resize, resize_label

# Relative spacing difference below which the input counts as on the training grid.
SAME_SPACING = 0.02
# Beyond this ratio on any axis, resampling invents (or discards) most of the detail: say so.
WARN_RATIO = 2.0


def median_spacing(spacings):
    """Per-axis median of the training cases' spacings (nnU-Net's target spacing).

    Example:
    >>> median_spacing([(0.7, 0.7, 2.5), (0.8, 0.8, 1.0), (0.9, 0.9, 2.0)])
    [0.8, 0.8, 2.0]
    """
    return [float(v) for v in np.median(np.asarray(spacings, float), axis=0)]


def spacing_ratios(spacing, target):
    """``spacing / target`` per axis."""
    return np.asarray(spacing, float) / np.asarray(target, float)


def predict_at_spacing(predict, image, spacing, target_spacing, probability=False, log=None):
    """Runs ``predict`` on ``image`` resampled to ``target_spacing``; the result on ``image``'s grid.

    Args:
        predict: a registry predictor, ``predict(image, probability=, spacing=) -> dict``.
        image: raw ``[x, y, z]`` volume.
        spacing: its voxel size in mm.
        target_spacing: the run's training spacing (mm per axis), or None to predict as is.
        probability: also return the probability map.
        log: printer for the resampling line and the large-ratio warning.

    Returns:
        the predictor's dict with ``mask`` (and ``probability``) on ``image``'s grid.

    Example:
    >>> img = np.zeros((40, 40, 10)); img[10:30, 10:30, 2:8] = 100.0
    >>> seen = []
    >>> def toy(a, probability=False, spacing=None):
    ...     seen.append(a.shape); return {"mask": a > 50}
    >>> out = predict_at_spacing(toy, img, (0.5, 0.5, 2.0), (1.0, 1.0, 2.0))
    >>> seen, out["mask"].shape, int(out["mask"].sum())
    ([(20, 20, 10)], (40, 40, 10), 2400)
    """
    spacing = tuple(float(s) for s in spacing)
    if target_spacing is None or np.all(np.abs(spacing_ratios(spacing, target_spacing) - 1) <= SAME_SPACING):
        return dict(predict(image, probability=probability, spacing=spacing))
    target = tuple(float(t) for t in target_spacing)
    ratios = spacing_ratios(spacing, target)
    shape = resampled_shape(image.shape, spacing, target)
    if log is not None:
        line = (f"resampled {tuple(image.shape)} at {_mm(spacing)} to {shape} at the run's training spacing "
                f"{_mm(target)}")
        if np.any(ratios > WARN_RATIO) or np.any(ratios < 1 / WARN_RATIO):
            line = f"warning: {line}: the scan's voxels differ from the training voxels by more than " \
                   f"{WARN_RATIO:g}x on an axis (ratios {', '.join(f'{r:.2f}' for r in ratios)})"
        log(line)
    resampled = resample_image(image, spacing, target)
    out = dict(predict(resampled, probability=probability, spacing=target))
    out["mask"] = resize_label(np.asarray(out["mask"]).astype(np.uint8), image.shape) > 0
    if probability and "probability" in out:
        out["probability"] = np.clip(resize(np.asarray(out["probability"], np.float32), image.shape)[0], 0, 1)
    return out


def _mm(spacing):
    return " x ".join(f"{s:.2f}" for s in spacing) + " mm"
