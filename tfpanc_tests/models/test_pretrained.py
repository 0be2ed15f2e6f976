"""Tests for tfpanc.models.pretrained (loading a user's weights file by layer name)."""

import h5py
import keras
import numpy as np
import pytest

from tfpanc.errors import InputError
from tfpanc.models import HNN, load_pretrained_weights


def donor():
    """A small model sharing two layer names/shapes with HNN(filters=4), one with a wrong shape."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv1")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv2")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="block2_conv1")(x)  # HNN has 8 filters here
    x = keras.layers.Conv2D(1, 1, name="unrelated")(x)
    return keras.Model(inputs, x)


def test_keras3_file_loads_matching_layers(tmp_path):
    src = donor()
    path = tmp_path / "donor.weights.h5"
    src.save_weights(path)
    model = HNN(filters=4)
    before = model.get_layer("block2_conv1").get_weights()[0].copy()
    report = load_pretrained_weights(model, path)
    assert sorted(report["loaded"]) == ["block1_conv1", "block1_conv2"]
    assert "shape mismatch" in report["skipped"]["block2_conv1"]
    assert report["skipped"]["side1"] == "not in file"
    for name in report["loaded"]:
        for a, b in zip(model.get_layer(name).get_weights(), src.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.get_layer("block2_conv1").get_weights()[0], before)


def test_legacy_keras2_layout(tmp_path):
    path = tmp_path / "legacy.h5"
    kernel = np.arange(3 * 3 * 3 * 4, dtype="float32").reshape(3, 3, 3, 4)
    bias = np.ones(4, "float32")
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1", b"block1_pool"]
        g = f.create_group("block1_conv1")
        g.attrs["weight_names"] = [b"block1_conv1/kernel:0", b"block1_conv1/bias:0"]
        g["block1_conv1/kernel:0"] = kernel
        g["block1_conv1/bias:0"] = bias
        f.create_group("block1_pool").attrs["weight_names"] = []
    model = HNN(filters=4)
    assert load_pretrained_weights(model, path)["loaded"] == ["block1_conv1"]
    got_kernel, got_bias = model.get_layer("block1_conv1").get_weights()
    np.testing.assert_array_equal(got_kernel, kernel)
    np.testing.assert_array_equal(got_bias, bias)


def test_bad_files_raise_input_error(tmp_path):
    model = HNN(filters=4)
    with pytest.raises(InputError, match="not found"):
        load_pretrained_weights(model, tmp_path / "missing.weights.h5")
    text = tmp_path / "notes.weights.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable"):
        load_pretrained_weights(model, text)
    other = tmp_path / "other.weights.h5"
    inputs = keras.Input((16, 16, 3))
    keras.Model(inputs, keras.layers.Conv2D(5, 3, name="block1_conv1")(inputs)).save_weights(other)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(InputError, match="no layer of the model matches"):
        load_pretrained_weights(model, other)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
