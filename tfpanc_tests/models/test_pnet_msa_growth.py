"""Tests for tfpanc.models.pnet_msa_growth (progressive K -> K+1 growth)."""

import keras
import numpy as np
import pytest

from tfpanc.models import PNetMSA, grow


def run(model, x):
    """Eager inference call: for tiny models cheaper than predict_on_batch's tracing."""
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def trained_pair():
    keras.utils.set_random_seed(3)
    old = PNetMSA(num_units=2, filters=4)
    rng = np.random.default_rng(0)
    # Stand-in for training: move every weight away from its initial value,
    # BN moving statistics included, so copying is really tested.
    old.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in old.get_weights()])
    for layer in old.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, mean, np.abs(var) + 0.5])
    return old, grow(old)


def test_grown_model_has_one_more_unit(trained_pair):
    old, new = trained_pair
    assert new.num_units == 3 and new.filters == old.filters
    x = np.zeros((1, 16, 16, 3), "float32")
    assert run(new, x).shape == (1, 16, 16, 4)


def test_existing_layers_keep_weights(trained_pair):
    old, new = trained_pair
    copied = 0
    for layer in old.layers:
        for a, b in zip(layer.get_weights(), new.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
            copied += 1
    assert copied == len(old.weights)


def test_new_unit_fresh_and_fused_output_preserved(trained_pair):
    old, new = trained_pair
    assert float(new.get_layer("unit3_fuse_weight").get_weights()[0]) == 0.0
    kernel = new.get_layer("unit3_fwd_conv1").get_weights()[0]
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / (9 * 4)), rel=0.35)  # He init, untouched
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32")
    before, after = run(old, x), run(new, x)
    # w_3 = 0: the fused map and the old side maps are unchanged by growth.
    np.testing.assert_allclose(after[..., :3], before, rtol=1e-5, atol=1e-5)


def test_grow_needs_pnet():
    with pytest.raises(TypeError):
        grow(keras.Sequential())
