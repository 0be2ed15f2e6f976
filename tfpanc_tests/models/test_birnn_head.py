"""Tests for tfpanc.models.birnn_head (bi-directional CLSTM, Cai Sec. III-B, Eq. 10)."""

import keras
import numpy as np
import pytest

from tfpanc.models import BiRNNHead, rebuild_for_size
from tfpanc_tests.harness import run_model_test


def run(model, x):
    """Eager inference call: for tiny models cheaper than predict_on_batch's tracing."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def random_maps(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


@pytest.fixture(scope="module")
def head():
    keras.utils.set_random_seed(4)
    return BiRNNHead(24, 24)


def test_shapes_any_length(head):
    assert run(head, random_maps((2, 3, 24, 24, 1))).shape == (2, 3, 24, 24, 1)
    assert run(head, random_maps((1, 5, 24, 24, 1))).shape == (1, 5, 24, 24, 1)


def test_parameter_count(head):
    gates, k = 4, 3 * 3
    per_direction_weights = gates * (k * 1 + k * 1)  # input + recurrent kernels, 1 channel
    assert per_direction_weights == 72  # the paper's "72 variables per CLSTM layer"
    fusion = 2 + 1  # lambda^-, lambda^+ and a bias
    assert head.count_params() == 2 * (per_direction_weights + gates) + fusion
    lam = head.get_layer("direction_fusion").get_weights()[0]
    np.testing.assert_array_equal(lam, np.full((2, 1), head.lambda_init, "float32"))


def test_directions_are_aligned(head):
    # With identical weights in both directions and equal lambdas, reversing
    # the slice order must reverse the output exactly.
    bi = head.get_layer("bidirectional_clstm")
    sym = BiRNNHead(24, 24)
    sym.set_weights(head.get_weights())
    sym_bi = sym.get_layer("bidirectional_clstm")
    sym_bi.backward_layer.set_weights(bi.forward_layer.get_weights())
    x = random_maps((1, 4, 24, 24, 1), seed=1)
    out = run(sym, x)
    out_rev = run(sym, x[:, ::-1])
    np.testing.assert_allclose(out_rev[:, ::-1], out, rtol=1e-5, atol=1e-5)
    # and the sequence really matters: reversing does change a generic output
    assert np.abs(run(head, x[:, ::-1])[:, ::-1] - run(head, x)).max() > 1e-4


def test_rebuild_for_size_consistent_in_the_interior(head):
    time_steps, offset = 3, 4
    small = rebuild_for_size(head, 16, 16)
    assert (small.height, small.width) == (16, 16)
    for a, b in zip(head.get_weights(), small.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = random_maps((1, time_steps, 24, 24, 1), seed=2)
    big_out = run(head, x)
    small_out = run(small, x[:, :, offset:offset + 16, offset:offset + 16])
    # All operations are 3x3 convolutions: zero padding at the crop border
    # reaches at most `time_steps` pixels inwards through the recurrence.
    m = time_steps + 1
    np.testing.assert_allclose(small_out[:, :, m:16 - m, m:16 - m],
                               big_out[:, :, offset + m:offset + 16 - m, offset + m:offset + 16 - m],
                               rtol=1e-4, atol=1e-5)


def test_model_harness():
    run_model_test(BiRNNHead, {"height": 8, "width": 8, "lambda_init": 3.0}, random_maps((1, 3, 8, 8, 1)),
                   (1, 3, 8, 8, 1))
    assert BiRNNHead.input_multiple() == BiRNNHead(8, 8).required_multiple == 1


def test_identity_init_passes_the_cnn_probability_through():
    keras.utils.set_random_seed(5)
    head = BiRNNHead(16, 16)
    x = random_maps((2, 5, 16, 16, 1), seed=4)
    agree = ((run(head, x) > 0) == (x > 0.5)).mean()
    assert agree > 0.97
    prob = lambda v: 1 / (1 + np.exp(-run(head, np.full((1, 3, 16, 16, 1), v, "float32"))))  # noqa: E731
    assert prob(0.95).min() > 0.98 and prob(0.05).max() < 0.02  # lambda 4: the full range
    # a random start does not: it is close to 0.5 everywhere
    random_start = BiRNNHead(16, 16, identity_init=False)
    assert ((run(random_start, x) > 0) == (x > 0.5)).mean() < 0.9
    assert random_start.get_config()["identity_init"] is False


def test_identity_like_weights_rejects_other_shapes():
    from tfpanc.models.birnn_head import identity_like_weights

    with pytest.raises(ValueError, match="1-filter"):
        identity_like_weights([np.zeros((3, 3, 2, 4)), np.zeros((3, 3, 1, 4)), np.zeros(4)])
