"""Eq. 1 of the two-stage paper on analytic shapes: discs, shifted discs, empty slices."""

import numpy as np
import pytest
from keras import ops

from tfpanc.methods.two_stage.losses import CenterLoss, DiceCenterLoss, TwoClassDiceLoss, slice_centres


def _disc(shape, centre, radius, slices):
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    m = np.zeros(shape, np.float32)
    disc = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius ** 2
    for z in slices:
        m[:, :, z] = disc
    return m[None, ..., None]


def _logits(mask):
    return np.where(mask > 0, 40.0, -40.0).astype(np.float32)


SHAPE = (32, 32, 6)


def test_a_shifted_disc_costs_its_shift_per_slice():
    y = _disc(SHAPE, (12, 12), 5, range(6))
    moved = _disc(SHAPE, (15, 16), 5, range(6))  # shifted by (3, 4): 5 voxels
    assert float(CenterLoss()(y, _logits(moved))) == pytest.approx(6 * 5.0, abs=1e-3)
    assert float(CenterLoss()(y, _logits(y))) == pytest.approx(0.0, abs=1e-3)
    centres, mass = slice_centres(ops.convert_to_tensor(y))
    np.testing.assert_allclose(ops.convert_to_numpy(centres)[0, 0], [12, 12], atol=1e-4)
    assert float(ops.convert_to_numpy(mass)[0, 0]) == float(y[0, :, :, 0, 0].sum())


def test_slices_empty_in_either_mask_contribute_nothing():
    y = _disc(SHAPE, (12, 12), 5, [0, 1, 2])          # label on slices 0-2
    pred = _disc(SHAPE, (15, 16), 5, [1, 2, 3, 4])    # prediction on slices 1-4
    assert float(CenterLoss()(y, _logits(pred))) == pytest.approx(2 * 5.0, abs=1e-3)  # slices 1, 2 only
    empty = np.zeros_like(y)
    assert float(CenterLoss()(empty, _logits(pred))) == 0.0


def test_two_class_dice_counts_both_classes():
    y = _disc(SHAPE, (12, 12), 5, range(6))
    assert float(TwoClassDiceLoss()(y, _logits(y))) == pytest.approx(0.0, abs=1e-4)
    inverse = float(TwoClassDiceLoss()(y, _logits(1 - y)))
    assert inverse == pytest.approx(1.0, abs=1e-3)
    # Predicting nothing: foreground Dice ~0, background Dice high (most voxels are background).
    fg = y.sum()
    bg = y.size - fg
    expected = 1 - 0.5 * ((0 + 1) / (fg + 1) + (2 * bg + 1) / (bg + y.size + 1))
    assert float(TwoClassDiceLoss()(y, _logits(np.zeros_like(y)))) == pytest.approx(expected, rel=1e-4)


def test_dice_center_is_the_weighted_sum_and_differentiable():
    import keras

    y = _disc(SHAPE, (12, 12), 5, range(6))
    p = _disc(SHAPE, (14, 12), 5, range(6))
    logits = np.where(p > 0, 2.0, -2.0).astype(np.float32)
    total = float(DiceCenterLoss(gamma=1e-2)(y, logits))
    parts = float(TwoClassDiceLoss()(y, logits)) + 1e-2 * float(CenterLoss()(y, logits))
    assert total == pytest.approx(parts, rel=1e-5)
    assert float(DiceCenterLoss(gamma=0.0)(y, logits)) == pytest.approx(float(TwoClassDiceLoss()(y, logits)))
    # One gradient step on a free logit volume moves the predicted centre towards the label's.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(logits)
        with tf.GradientTape() as tape:
            loss = CenterLoss()(y, v)
        grad = tape.gradient(loss, v).numpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    assert DiceCenterLoss.from_config(DiceCenterLoss(gamma=0.5).get_config()).gamma == 0.5
