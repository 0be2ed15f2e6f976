"""Predict inside the body only: one box per volume, background outside.

A CT's field of view is about half air (and the table): a network run over
it computes air. :func:`predict_in_body` crops the volume to the box of its
body, the largest connected component above an air threshold (the
multitask paper's own preprocessing, :func:`tfpanc.data.preprocess.body_box`),
grown by a margin in mm, runs a method's predictor on the crop and pastes
the result back, background (mask 0, probability 0) outside. The pancreas
lies deep inside the body, so the margin only keeps the networks' border
context.

The box's start is also floored to a multiple of the network's total
down-sampling (``multiple``, per axis, from the method:
``registry.Method.crop_multiple``). A network that pools by 2 k times
sees a crop starting off that grid on shifted pooling cells, and its
answer changes everywhere, not only at the border: on unseen phantom cases
at the training grid the quickstart run's masks with and without a 20 mm
crop agreed at DSC 0.89-0.95 (0.91-0.96 with 40 mm), and with the start
aligned at 1.0000, probabilities within 0.003 (tools/body_crop_agreement.py).

CT only: the air threshold is in HU. MRI has no absolute scale, so MRI
volumes are predicted whole.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.boxes import box_slices, expand_box
from tfpanc.data.preprocess import BODY_THRESHOLD_HU, body_box

# Margin around the body box: air the networks see at the body's edge.
BODY_MARGIN_MM = 20.0


def body_region(image, spacing, threshold=BODY_THRESHOLD_HU, margin_mm=BODY_MARGIN_MM, multiple=1):
    """The ``(3, 2)`` box predicted in: the body's box plus ``margin_mm``, clipped to the volume,
    its start floored to a multiple of ``multiple`` (one number or one per axis).

    Example:
    >>> ct = np.full((40, 40, 6), -1000.0); ct[10:30, 12:25] = 40.0
    >>> body_region(ct, (1.0, 1.0, 2.0), margin_mm=4).tolist()
    [[6, 34], [8, 29], [0, 6]]
    >>> body_region(ct, (1.0, 1.0, 2.0), margin_mm=4, multiple=(4, 4, 1)).tolist()
    [[4, 34], [8, 29], [0, 6]]
    """
    box = body_box(image, threshold)
    box = expand_box(box, margin_mm, spacing=tuple(float(s) for s in spacing), shape=np.shape(image))
    return align_start(box, multiple)


def align_start(box, multiple):
    """``box`` with each start floored to a multiple of ``multiple`` (a number or one per axis).

    Example:
    >>> align_start(np.array([[5, 20], [9, 30], [3, 7]]), (4, 8, 1)).tolist()
    [[4, 20], [8, 30], [3, 7]]
    """
    box = np.array(box, np.int64)
    m = np.broadcast_to(np.asarray(multiple, np.int64), (box.shape[0],))
    if np.any(m < 1):
        raise ValueError(f"multiple must be >= 1 per axis, got {tuple(m.tolist())}")
    box[:, 0] = (box[:, 0] // m) * m
    return box


def predict_in_body(predict, image, spacing=None, probability=False, threshold=BODY_THRESHOLD_HU,
                    margin_mm=BODY_MARGIN_MM, multiple=1):
    """Runs ``predict`` on the body's box of ``image`` and pastes its result onto the whole grid.

    Args:
        predict: a registry predictor, ``predict(image, probability=, spacing=) -> dict``.
        image: raw ``[x, y, z]`` CT in HU.
        spacing: voxel size in mm (default 1 mm).
        probability: also return the probability map.
        threshold: HU above which a voxel is body.
        margin_mm: margin around the body's box.
        multiple: the box's start is floored to multiples of this (the
            network's total down-sampling, per axis or one number).

    Returns:
        the predictor's dict with ``mask`` (and ``probability``) on ``image``'s
        grid, ``body_box`` the box used, and the predictor's other entries
        (summary, timings) as it gave them.

    Example:
    >>> ct = np.full((30, 30, 4), -1000.0); ct[8:20, 8:20] = 50.0
    >>> seen = []
    >>> def toy(img, probability=False, spacing=None):
    ...     seen.append(img.shape); return {"mask": img > 0}
    >>> out = predict_in_body(toy, ct, (1.0, 1.0, 1.0), margin_mm=2)
    >>> seen, out["mask"].shape, int(out["mask"].sum())
    ([(16, 16, 4)], (30, 30, 4), 576)
    """
    image = np.asarray(image)
    spacing = (1.0, 1.0, 1.0) if spacing is None else spacing
    box = body_region(image, spacing, threshold, margin_mm, multiple)
    region = box_slices(box)
    if all(lo == 0 and hi == n for (lo, hi), n in zip(box.tolist(), image.shape)):
        out = dict(predict(image, probability=probability, spacing=spacing))
        out["body_box"] = box
        return out
    part = predict(np.ascontiguousarray(image[region]), probability=probability, spacing=spacing)
    out = dict(part)
    mask = np.zeros(image.shape, bool)
    mask[region] = part["mask"]
    out["mask"] = mask
    if probability and "probability" in part:
        prob = np.zeros(image.shape, np.float32)
        prob[region] = part["probability"]
        out["probability"] = prob
    out["body_box"] = box
    return out
