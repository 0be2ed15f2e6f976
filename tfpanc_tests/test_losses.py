"""Tests for tfpanc.losses: analytic values, HED weighting, Eq. 15 gradients, empty masks."""

import keras
import numpy as np
import pytest

from tfpanc.errors import InputError
from tfpanc.losses import (DeepSupervisionLoss, JaccardLoss, deep_supervision_loss,
                           get_loss)


def value(loss, y, logits):
    return float(keras.ops.convert_to_numpy(loss(y, logits)))


def per_sample(loss, y, logits):
    return keras.ops.convert_to_numpy(loss.call(y, logits))


def gradient(loss, y, logits):
    """d loss / d logits with the active backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(logits)
        with tf.GradientTape() as tape:
            out = loss(y, x)
        return tape.gradient(out, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: loss(y, v))(logits))
    pytest.skip(f"no gradient helper for backend {backend}")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture
def square():
    y = np.zeros((2, 16, 16, 1), "float32")
    y[0, 4:8, 4:8] = 1
    y[1, 2:12, 3:9] = 1
    return y


def test_jac_perfect_and_all_wrong(square):
    jac = get_loss("jac")
    perfect = np.where(square > 0, 30.0, -30.0).astype("float32")
    assert value(jac, square, perfect) == pytest.approx(0.0, abs=1e-6)
    wrong = -perfect
    n = 16 * 16
    # smooth = 1: 1 - 1 / (|union| + 1), union = all n pixels
    assert value(jac, square, wrong) == pytest.approx(1 - 1 / (n + 1), abs=1e-5)


def test_jac_matches_eq14(square):
    logits = np.random.default_rng(0).normal(0, 2, square.shape).astype("float32")
    p = sigmoid(logits.astype("float64"))
    expected = [1 - p[i][square[i] > 0].sum() / (square[i].sum() + p[i][square[i] == 0].sum())
                for i in range(2)]
    np.testing.assert_allclose(per_sample(JaccardLoss(smooth=0.0), square, logits), expected, rtol=1e-5)


def test_jac_gradient_is_eq15(square):
    logits = np.random.default_rng(1).normal(0, 1, square.shape).astype("float32")
    y = square[:1]
    x = logits[:1]
    grad = gradient(JaccardLoss(smooth=0.0), y, x)
    p = sigmoid(x.astype("float64"))
    denom = y.sum() + p[y == 0].sum()
    d_dp = np.where(y > 0, -1 / denom, p[y > 0].sum() / denom ** 2)
    np.testing.assert_allclose(grad, d_dp * p * (1 - p), rtol=1e-4, atol=1e-9)
    # Eq. 15's point: a foreground pixel gets the larger push
    assert np.abs(d_dp[y > 0]).min() > np.abs(d_dp[y == 0]).max()


def test_ce_matches_numpy_and_is_stable(square):
    logits = np.random.default_rng(2).normal(0, 3, square.shape).astype("float32")
    p = sigmoid(logits.astype("float64"))
    expected = -(square * np.log(p) + (1 - square) * np.log(1 - p)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(per_sample(get_loss("ce"), square, logits), expected, rtol=1e-5)
    huge = np.where(square > 0, -200.0, 200.0).astype("float32")  # confidently wrong
    assert value(get_loss("ce"), square, huge) == pytest.approx(200.0, rel=1e-5)


def test_cbce_matches_hed_weighting(square):
    logits = np.random.default_rng(3).normal(0, 2, square.shape).astype("float32")
    p = sigmoid(logits.astype("float64"))
    expected = []
    for i in range(2):
        y, q = square[i], p[i]
        beta = (y == 0).sum() / y.size  # fraction of negatives, per image
        loss = -beta * np.log(q[y > 0]).sum() - (1 - beta) * np.log(1 - q[y == 0]).sum()
        expected.append(loss / y.size)
    got = per_sample(get_loss("cbce"), square, logits)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert value(get_loss("cbce"), square, logits) == pytest.approx(np.mean(expected), rel=1e-5)


def test_dice_values(square):
    dice = get_loss("dice", smooth=0.0)
    perfect = np.where(square > 0, 30.0, -30.0).astype("float32")
    assert value(dice, square, perfect) == pytest.approx(0.0, abs=1e-6)
    logits = np.random.default_rng(4).normal(0, 1, square.shape).astype("float32")
    p = sigmoid(logits.astype("float64"))
    expected = [1 - 2 * (square[i] * p[i]).sum() / (square[i].sum() + p[i].sum()) for i in range(2)]
    np.testing.assert_allclose(per_sample(dice, square, logits), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["jac", "ce", "cbce", "dice"])
def test_empty_mask_gradients_finite(name):
    y = np.zeros((2, 8, 8, 1), "float32")
    logits = np.random.default_rng(5).normal(0, 1, y.shape).astype("float32")
    for loss in (get_loss(name), deep_supervision_loss(name)):
        g = gradient(loss, y, np.concatenate([logits, logits], -1) if isinstance(loss, DeepSupervisionLoss)
                     else logits)
        assert np.all(np.isfinite(g))
        if name == "cbce":
            assert np.all(g == 0)  # HED: no foreground -> negatives weighted 1 - beta = 0
        else:
            assert np.all(g > 0)  # every (false) positive is pushed down


def test_deep_supervision_sums_channels(square):
    logits = np.random.default_rng(6).normal(0, 1, square.shape[:3] + (3,)).astype("float32")
    base = get_loss("jac")
    total = sum(per_sample(base, square, logits[..., c:c + 1]) for c in range(3))
    ds = deep_supervision_loss("jac")
    np.testing.assert_allclose(per_sample(ds, square, logits), total, rtol=1e-5)
    # labels without a channel axis are accepted
    np.testing.assert_allclose(per_sample(ds, square[..., 0], logits), total, rtol=1e-5)


def test_get_loss_names_and_errors():
    assert [get_loss(n).name for n in ("JAC", "ce", "Cbce", "dice")] == ["jac", "ce", "cbce", "dice"]
    with pytest.raises(InputError, match="unknown loss 'focal'"):
        get_loss("focal")


def test_serialization_round_trip(square):
    logits = np.random.default_rng(7).normal(0, 1, square.shape[:3] + (2,)).astype("float32")
    for loss in (JaccardLoss(smooth=0.5), get_loss("cbce"), deep_supervision_loss(JaccardLoss(smooth=0.25))):
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
        x = logits if isinstance(loss, DeepSupervisionLoss) else logits[..., :1]
        assert value(clone, square, x) == pytest.approx(value(loss, square, x), rel=1e-6)
