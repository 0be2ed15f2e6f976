"""Overlap, volume and box metrics on shapes with known answers."""

import numpy as np
import pytest
import SimpleITK as sitk

from tfpanc.metrics import overlap


def _box_mask(shape, box):
    m = np.zeros(shape, bool)
    m[tuple(slice(lo, hi) for lo, hi in box)] = True
    return m


def test_two_offset_boxes_have_the_counted_overlap():
    # 10x10x10 cube and the same cube moved 3 voxels along x: 7x10x10 shared.
    a = _box_mask((20, 20, 20), [[2, 12], [2, 12], [2, 12]])
    b = _box_mask((20, 20, 20), [[5, 15], [2, 12], [2, 12]])
    assert overlap.dice(a, b) == pytest.approx(2 * 700 / 2000)
    assert overlap.jaccard(a, b) == pytest.approx(700 / 1300)
    assert overlap.precision(a, b) == pytest.approx(0.7)
    assert overlap.recall(a, b) == pytest.approx(0.7)


def test_precision_and_recall_are_not_symmetric():
    small = _box_mask((10, 10), [[0, 2], [0, 5]])   # 10 voxels
    big = _box_mask((10, 10), [[0, 4], [0, 5]])     # 20 voxels, contains small
    assert overlap.precision(small, big) == 1.0
    assert overlap.recall(small, big) == 0.5
    assert overlap.precision(big, small) == 0.5
    assert overlap.recall(big, small) == 1.0


def test_dice_and_jaccard_are_related():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 12, 11, 9)) > 0.6
    d, j = overlap.dice(a, b), overlap.jaccard(a, b)
    assert d == pytest.approx(2 * j / (1 + j))


def test_nonzero_values_count_as_object():
    label = np.zeros((6, 6), np.int16)
    label[:2] = 1
    label[2:4] = 2  # tumour merged into the organ
    pred = np.zeros((6, 6), np.uint8)
    pred[:4] = 1
    assert overlap.dice(pred, label) == 1.0
    assert overlap.dsc(pred, label) == 1.0  # the alias used by the fixed-point loop


def test_empty_masks_conventions():
    empty = np.zeros((5, 5, 5), bool)
    full = np.ones((5, 5, 5), bool)
    for fn in (overlap.dice, overlap.jaccard, overlap.precision, overlap.recall):
        assert fn(empty, empty) == 1.0
        assert fn(empty, full) == 0.0
        assert fn(full, empty) == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        overlap.dice(np.zeros((3, 3)), np.zeros((3, 4)))


def test_volume_ml_uses_spacing():
    m = _box_mask((30, 30, 30), [[0, 20], [0, 25], [0, 10]])  # 5000 voxels
    assert overlap.volume_ml(m, (0.8, 0.8, 1.5)) == pytest.approx(5000 * 0.96 / 1000)
    assert overlap.volume_ml(np.zeros((3, 3, 3)), (1, 1, 1)) == 0.0


def test_box_iou_known_values():
    assert overlap.box_iou([[0, 4], [0, 4], [0, 4]], [[0, 4], [0, 4], [0, 4]]) == 1.0
    # Half overlap along x: intersection 2x4x4 = 32, union 64 + 64 - 32.
    half = overlap.box_iou([[0, 4], [0, 4], [0, 4]], [[2, 6], [0, 4], [0, 4]])
    assert half == pytest.approx(32 / 96)
    # Touching half-open boxes do not overlap.
    assert overlap.box_iou([[0, 4], [0, 4], [0, 4]], [[4, 8], [0, 4], [0, 4]]) == 0.0
    assert overlap.box_iou(None, None) == 1.0
    assert overlap.box_iou(None, [[0, 1], [0, 1], [0, 1]]) == 0.0


def test_box_recall_counts_label_voxels_inside():
    label = _box_mask((10, 10, 10), [[2, 6], [2, 6], [2, 6]])  # 64 voxels
    assert overlap.box_recall([[2, 6], [2, 6], [2, 6]], label) == 1.0
    assert overlap.box_recall([[0, 4], [0, 10], [0, 10]], label) == pytest.approx(0.5)
    assert overlap.box_recall([[0, 10], [0, 10], [5, 10]], label) == pytest.approx(0.25)
    assert overlap.box_recall(None, label) == 0.0
    assert overlap.box_recall(None, np.zeros_like(label)) == 1.0
    # A box reaching past the array still counts only what is inside.
    assert overlap.box_recall([[-3, 20], [0, 10], [0, 10]], label) == 1.0


def _ellipsoid(shape, spacing, centre, radii):
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing)],
                        indexing="ij")
    return sum((g / r) ** 2 for g, r in zip(grids, radii)) <= 1.0


def _sitk(mask, spacing):
    image = sitk.GetImageFromArray(mask.astype(np.uint8).transpose(2, 1, 0))
    image.SetSpacing(spacing)
    return image


def test_dice_and_jaccard_agree_with_simpleitk():
    spacing = (0.7, 0.9, 2.5)
    a = _ellipsoid((50, 40, 20), spacing, (25, 20, 10), (12, 9, 18))
    b = _ellipsoid((50, 40, 20), spacing, (28, 18, 9.4), (10, 11, 15))
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(_sitk(b, spacing), _sitk(a, spacing))
    assert 0.5 < overlap.dice(a, b) < 0.95  # a real partial overlap
    assert abs(overlap.dice(a, b) - f.GetDiceCoefficient()) < 1e-12
    assert abs(overlap.jaccard(a, b) - f.GetJaccardCoefficient()) < 1e-12
