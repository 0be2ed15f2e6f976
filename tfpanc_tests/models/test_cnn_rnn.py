"""Tests for tfpanc.models.cnn_rnn (PNet-MSA per slice + BiRNN, end-to-end)."""

import keras
import numpy as np
import pytest

from tfpanc.losses import deep_supervision_loss
from tfpanc.models import CNNRNN, BiRNNHead, PNetMSA, rebuild_for_size
from tfpanc.models.cnn_rnn import FoldTime, UnfoldTime
from tfpanc_tests.harness import run_layer_test, run_model_test


def run(model, x):
    """Eager inference call: for tiny models cheaper than predict_on_batch's tracing."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def runs(shape, seed=0):
    return np.random.default_rng(seed).normal(0, 1, shape).astype("float32")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(5)
    return CNNRNN(PNetMSA(num_units=2, filters=4), BiRNNHead(16, 16))


def test_output_is_birnn_of_pnet_probability(model):
    x = runs((2, 3, 16, 16, 3))
    out = run(model, x)
    assert out.shape == (2, 3, 16, 16, 1)
    cnn = run(model.pnet, x.reshape(6, 16, 16, 3))[..., :1]
    prob = (1 / (1 + np.exp(-cnn))).reshape(2, 3, 16, 16, 1)
    np.testing.assert_allclose(out, run(model.birnn, prob), rtol=1e-4, atol=1e-5)


def test_side_outputs_stack_rnn_then_cnn(model):
    full = CNNRNN(model.pnet, model.birnn, side_outputs=True)
    x = runs((1, 4, 16, 16, 3), seed=1)
    out = run(full, x)
    assert out.shape == (1, 4, 16, 16, 1 + 3)  # Y_bar, Y_hat, U_1, U_2
    np.testing.assert_allclose(out[..., :1], run(model, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0, :, ..., 1:], run(model.pnet, x[0]), rtol=1e-5, atol=1e-5)


def test_rebuild_for_size_consistent_in_the_interior():
    keras.utils.set_random_seed(6)
    # One unit: 4 convs of 3x3 -> the CNN sees 4 pixels around; the BiRNN adds T.
    big = CNNRNN(PNetMSA(num_units=1, filters=4), BiRNNHead(32, 32))
    small = rebuild_for_size(big, 24, 24)
    assert small.input_shape == (None, None, 24, 24, 3)
    t, offset = 3, 4
    x = runs((1, t, 32, 32, 3), seed=2)
    big_out = run(big, x)
    small_out = run(small, x[:, :, offset:offset + 24, offset:offset + 24])
    m = 4 + t + 1
    np.testing.assert_allclose(small_out[:, :, m:24 - m, m:24 - m],
                               big_out[:, :, offset + m:offset + 24 - m, offset + m:offset + 24 - m],
                               rtol=1e-4, atol=1e-5)


def test_size_must_suit_pnet():
    pnet = PNetMSA(num_units=3, filters=4)
    with pytest.raises(ValueError, match="multiple of 4 for this PNet-MSA"):
        CNNRNN(pnet, BiRNNHead(18, 16))
    assert CNNRNN.input_multiple(pnet) == PNetMSA.input_multiple(num_units=3) == 4
    assert CNNRNN(pnet, BiRNNHead(16, 16)).required_multiple == 4


def test_model_harness():
    run_model_test(CNNRNN, {"pnet": PNetMSA(num_units=1, filters=4), "birnn": BiRNNHead(8, 8),
                            "side_outputs": True}, runs((1, 2, 8, 8, 3)), (1, 2, 8, 8, 1 + 2))


def test_fold_time_layer_harness():
    run_layer_test(FoldTime, {}, runs((2, 3, 4, 4, 1)), (6, 4, 4, 1))


def test_unfold_time_layer_harness():
    run_layer_test(UnfoldTime, {}, [runs((6, 4, 4, 1)), runs((2, 3, 4, 4, 3))], (2, 3, 4, 4, 1))


def test_end_to_end_training_reduces_loss():
    keras.utils.set_random_seed(7)
    net = CNNRNN(PNetMSA(num_units=2, filters=4), BiRNNHead(16, 16), side_outputs=True)
    kwargs = {"run_eagerly": True} if keras.backend.backend() == "tensorflow" else {}
    net.compile(optimizer=keras.optimizers.Adam(1e-2), loss=deep_supervision_loss("jac"), **kwargs)
    rng = np.random.default_rng(4)
    y = np.zeros((2, 3, 16, 16, 1), "float32")
    y[:, :, 4:11, 5:12] = 1
    x = rng.normal(0, 0.3, (2, 3, 16, 16, 3)).astype("float32") + 2.0 * y
    losses = [float(net.train_on_batch(x, y)) for _ in range(5)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
