"""Tests for tfpanc.models.unet2d (Table II "UNet" baseline)."""

import keras
import numpy as np
import pytest

from tfpanc.models import UNet2D
from tfpanc_tests.harness import run_model_test

# Architecture-only checks (parameter counts of the full-size networks) do not
# depend on the backend; on JAX every new weight shape costs a PRNG compile
# (about 1.5 s each on a 2-core CPU), so the TF run covers them.
heavy_on_jax = pytest.mark.skipif(keras.backend.backend() == "jax",
                                  reason="backend-independent full-size architecture check")


def run(model, x):
    """Eager inference call: for tiny models cheaper than predict_on_batch's tracing."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def expected_unet_params(depth, filters, slices=3, batch_norm=False):
    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + (4 * c_out if batch_norm else c_out)

    total, c_prev = 0, slices
    for level in range(depth + 1):  # encoder levels and the bottom
        c = filters * 2 ** level
        total += conv(3, c_prev, c) + conv(3, c, c)
        c_prev = c
    for level in range(depth):  # decoder: up-conv (with bias) + two convs
        c = filters * 2 ** level
        total += 2 * 2 * (2 * c) * c + c
        total += conv(3, 2 * c, c) + conv(3, c, c)
    return total + filters * 1 + 1  # 1x1 conv to the logit


def test_shapes_and_size_check():
    model = UNet2D(depth=2, filters=4)
    assert run(model, np.zeros((2, 16, 16, 3), "float32")).shape == (2, 16, 16, 1)
    assert run(model, np.zeros((1, 24, 8, 3), "float32")).shape == (1, 24, 8, 1)
    with pytest.raises(ValueError, match="multiple of 4"):
        UNet2D(depth=2, filters=4, input_shape=(18, 16, 3))
    assert model.required_multiple == UNet2D.input_multiple(depth=2) == 4
    assert UNet2D.input_multiple() == UNet2D.input_multiple(depth=4) == 16  # constructor default


@pytest.mark.parametrize("depth,filters,bn", [pytest.param(4, 64, False, marks=heavy_on_jax), (2, 4, True)])
def test_parameter_count(depth, filters, bn):
    assert UNet2D(depth, filters, batch_norm=bn).count_params() == expected_unet_params(depth, filters, 3, bn)


def test_model_harness():
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype("float32")
    run_model_test(UNet2D, {"depth": 2, "filters": 4, "batch_norm": True}, x, (1, 16, 16, 1))
