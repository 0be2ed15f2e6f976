"""Voxel-overlap metrics, volumes and bounding-box metrics.

All functions take masks of one shape (any nonzero value is object) and
return plain Python floats. Overlap metrics are fractions in [0, 1]; tables
show them in percent (:mod:`tfpanc.metrics.summary`).

Empty masks: when both masks are empty every overlap metric is 1 (the
prediction is exactly right); when exactly one is empty every overlap metric
is 0, including the 0/0 cases (precision of an empty prediction, recall of an
empty label) so that "found nothing" or "found something that is not there"
always scores as a failure.

Boxes are half-open voxel index ranges, one ``[start, stop)`` pair per array
axis: ``[[x0, x1], [y0, y1], [z0, z1]]``; ``None`` is the box of an empty mask.
The box of a mask is :func:`tfpanc.data.boxes.box_from_mask`.

Independent implementation used in the tests: SimpleITK's
``LabelOverlapMeasuresImageFilter`` (Dice, Jaccard).
"""

from __future__ import annotations

import numpy as np


def _as_mask(mask):
    return np.asarray(mask).astype(bool, copy=False)


def _counts(pred, label):
    pred, label = _as_mask(pred), _as_mask(label)
    if pred.shape != label.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {label.shape}")
    tp = int(np.count_nonzero(pred & label))
    return tp, int(np.count_nonzero(pred)), int(np.count_nonzero(label))


def _ratio(num, den, both_empty):
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def dice(pred, label):
    """Dice similarity coefficient ``2|A&B| / (|A| + |B|)``.

    Also serves to compare two successive predictions (Zhou's fixed point).

    Example:
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> dice(a, b)
    0.5
    """
    tp, p, l = _counts(pred, label)
    return _ratio(2.0 * tp, p + l, p == l == 0)


dsc = dice


def jaccard(pred, label):
    """Jaccard index ``|A&B| / |A|B|``.

    Example:
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> round(jaccard(a, b), 4)
    0.3333
    """
    tp, p, l = _counts(pred, label)
    return _ratio(float(tp), p + l - tp, p == l == 0)


def precision(pred, label):
    """Fraction of predicted voxels that are in the label, ``|A&B| / |A|``.

    Example:
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> precision(a, np.ones((4, 4)))
    1.0
    """
    tp, p, l = _counts(pred, label)
    return _ratio(float(tp), p, p == l == 0)


def recall(pred, label):
    """Fraction of label voxels that are predicted, ``|A&B| / |B|``.

    Example:
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> recall(a, np.ones((4, 4)))
    0.5
    """
    tp, p, l = _counts(pred, label)
    return _ratio(float(tp), l, p == l == 0)


def volume_ml(mask, spacing):
    """Volume of a mask in millilitres (1 mL = 1000 mm^3).

    Example:
    >>> volume_ml(np.ones((10, 10, 10)), (1.0, 1.0, 2.0))
    2.0
    """
    return float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def _box_array(box):
    if box is None:
        return None
    box = np.asarray(box, dtype=np.int64)
    if box.ndim != 2 or box.shape[1] != 2:
        raise ValueError(f"a box is [[start, stop], ...] per axis, got {box.tolist()}")
    return box


def _box_size(box):
    return int(np.prod(np.clip(box[:, 1] - box[:, 0], 0, None)))


def box_iou(box_a, box_b):
    """Intersection over union of two half-open boxes (in voxels).

    Two empty boxes (``None`` or zero size) give 1, one empty box gives 0.

    Example:
    >>> box_iou([[0, 4], [0, 2]], [[2, 6], [0, 2]])
    0.3333333333333333
    """
    a, b = _box_array(box_a), _box_array(box_b)
    size_a = 0 if a is None else _box_size(a)
    size_b = 0 if b is None else _box_size(b)
    if size_a == 0 or size_b == 0:
        return 1.0 if size_a == size_b == 0 else 0.0
    if a.shape != b.shape:
        raise ValueError(f"boxes have different dimensions: {a.tolist()} vs {b.tolist()}")
    inter = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    inter = int(np.prod(inter))
    return inter / (size_a + size_b - inter)


def box_recall(box, label):
    """Fraction of the label's voxels that lie inside ``box``.

    An empty label gives 1 (nothing to miss); an empty box with a non-empty
    label gives 0.

    Example:
    >>> m = np.zeros((4, 4), bool); m[1:3, 1:3] = True
    >>> box_recall([[0, 2], [0, 4]], m)
    0.5
    """
    label = _as_mask(label)
    total = int(np.count_nonzero(label))
    if total == 0:
        return 1.0
    b = _box_array(box)
    if b is None:
        return 0.0
    if b.shape[0] != label.ndim:
        raise ValueError(f"box {b.tolist()} does not fit a {label.ndim}D mask")
    inside = tuple(slice(max(int(lo), 0), max(int(hi), 0)) for lo, hi in b)
    return int(np.count_nonzero(label[inside])) / total
