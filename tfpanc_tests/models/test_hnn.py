"""Tests for tfpanc.models.hnn (Table II "HNN" baseline, VGG16 + HED side outputs)."""

import keras
import numpy as np
import pytest

from tfpanc.models import HNN
from tfpanc_tests.harness import run_model_test

# Architecture-only checks (parameter counts of the full-size networks) do not
# depend on the backend; on JAX every new weight shape costs a PRNG compile
# (about 1.5 s each on a 2-core CPU), so the TF run covers them.
heavy_on_jax = pytest.mark.skipif(keras.backend.backend() == "jax",
                                  reason="backend-independent full-size architecture check")


def run(model, x):
    """Eager inference call: for tiny models cheaper than predict_on_batch's tracing."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def expected_hnn_params(filters, slices=3):
    total, c_prev = 0, slices
    for convs, width in zip((2, 2, 3, 3, 3), (1, 2, 4, 8, 8)):
        c = filters * width
        for _ in range(convs):
            total += 9 * c_prev * c + c
            c_prev = c
        total += c + 1  # side output 1x1 conv
    return total + 5 + 1  # fusion 1x1 conv over 5 side maps


@pytest.mark.parametrize("filters", [pytest.param(64, marks=heavy_on_jax), 4])
def test_parameter_count(filters):
    assert HNN(filters=filters).count_params() == expected_hnn_params(filters)


@heavy_on_jax
def test_vgg16_trunk_matches_keras_applications():
    # Same layer names and shapes as keras.applications.VGG16 (so its weights load by name).
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    hnn = HNN()
    for layer in vgg.layers:
        if layer.weights:
            assert [w.shape for w in hnn.get_layer(layer.name).weights] == [w.shape for w in layer.weights]


def test_outputs_and_initial_fusion():
    keras.utils.set_random_seed(9)
    model = HNN(filters=4)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    out = run(model, x)
    assert out.shape == (2, 32, 32, 6)
    np.testing.assert_allclose(out[..., 0], out[..., 1:].mean(-1), rtol=1e-5, atol=1e-5)  # HED's 1/5
    fused_only = HNN(filters=4, side_outputs=False)
    fused_only.set_weights(model.get_weights())
    np.testing.assert_allclose(run(fused_only, x), out[..., :1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 16"):
        HNN(filters=4, input_shape=(40, 32, 3))
    assert model.required_multiple == HNN.input_multiple() == 16


def test_model_harness():
    x = np.random.default_rng(1).normal(size=(1, 16, 16, 3)).astype("float32")
    run_model_test(HNN, {"filters": 4, "input_shape": (16, 16, 3)}, x, (1, 16, 16, 6))
