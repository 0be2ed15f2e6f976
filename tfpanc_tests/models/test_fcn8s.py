"""Tests for tfpanc.models.fcn8s (the FCN-8s of Zhou et al.'s fixed-point model)."""

import keras
import numpy as np
import pytest

from tfpanc.models.fcn8s import FCN8s, bilinear_kernel, load_vgg16_weights
from tfpanc_tests.harness import run_model_test


def run(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def expected_params(filters, fc_filters, slices=3):
    total, c = 0, slices
    for convs, width in zip((2, 2, 3, 3, 3), (1, 2, 4, 8, 8)):
        for _ in range(convs):
            total += 9 * c * filters * width + filters * width
            c = filters * width
    total += 49 * c * fc_filters + fc_filters          # fc6: 7x7 conv
    total += fc_filters * fc_filters + fc_filters       # fc7: 1x1 conv
    total += (fc_filters + 1) + (8 * filters + 1) + (4 * filters + 1)  # score_fr, pool4, pool3
    return total + 16 + 16 + 256                        # upsampling kernels 4x4, 4x4, 16x16


@pytest.mark.parametrize("filters,fc_filters", [(2, 8), (3, 5)])
def test_parameter_count(filters, fc_filters):
    assert FCN8s(filters=filters, fc_filters=fc_filters).count_params() == \
        expected_params(filters, fc_filters)
    # filters=64, fc_filters=4096 (VGG16 sizes): 134,265,699 by the same formula.
    assert expected_params(64, 4096) == 134_265_699


@pytest.mark.parametrize("shape", [(64, 64), (96, 64)])
def test_forward_shape(shape):
    model = FCN8s(filters=2, fc_filters=8)
    x = np.random.default_rng(0).normal(size=(2, *shape, 3)).astype("float32")
    out = run(model, x)
    assert out.shape == (2, *shape, 1) and np.all(np.isfinite(out))
    assert model.required_multiple == FCN8s.input_multiple() == 32
    with pytest.raises(ValueError, match="multiple of 32"):
        FCN8s(filters=2, fc_filters=8, input_shape=(48, 64, 3))


def test_skip_scores_start_at_zero_and_upsampling_is_bilinear():
    model = FCN8s(filters=2, fc_filters=8)
    for name in ("score_pool4", "score_pool3"):
        assert not np.any(model.get_layer(name).get_weights()[0])
    up = model.get_layer("upscore2")
    np.testing.assert_allclose(up.get_weights()[0], bilinear_kernel(4))
    # 2x bilinear (half-pixel) upsampling of a ramp: interior values are exact.
    ramp = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    out = keras.ops.convert_to_numpy(up(ramp))[0, :, :, 0]
    coord = (np.arange(8) + 0.5) / 2 - 0.5
    expected = 4 * coord[:, None] + coord[None, :]
    np.testing.assert_allclose(out[1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-5)
    fixed = FCN8s(filters=2, fc_filters=8, learn_upsampling=False)
    assert len(fixed.trainable_weights) == len(model.trainable_weights) - 3


def test_model_harness():
    # fc_filters=16: with 8, the JAX initial weights leave every fc7 unit dead
    # after dropout, so no gradient reaches the trunk in the training step.
    x = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype("float32")
    run_model_test(FCN8s, {"filters": 2, "fc_filters": 16, "dropout": 0.25, "learn_upsampling": False,
                           "batch_norm": True}, x, (1, 32, 32, 1))


def test_load_vgg16_weights_reshapes_dense_layers(tmp_path):
    # A tiny VGG16-like donor (filters=2 -> block5 has 16 channels) with dense fc1/fc2.
    inputs = keras.Input((224, 224, 3))
    x = inputs
    for s, (convs, width) in enumerate(zip((2, 2, 3, 3, 3), (1, 2, 4, 8, 8)), start=1):
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(2 * width, 3, padding="same", name=f"block{s}_conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{s}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(8, name="fc1")(x)
    x = keras.layers.Dense(8, name="fc2")(x)
    donor = keras.Model(inputs, x)
    path = tmp_path / "vgg_like.weights.h5"
    donor.save_weights(path)

    model = FCN8s(filters=2, fc_filters=8)
    report = load_vgg16_weights(model, path)
    assert {"block1_conv1", "block5_conv3", "fc6", "fc7"} <= set(report["loaded"])
    assert "fc6" not in report["skipped"] and "score_fr" in report["skipped"]
    dense = donor.get_layer("fc1").get_weights()[0]
    fc6 = model.get_layer("fc6").get_weights()[0]
    assert fc6.shape == (7, 7, 16, 8)
    # Dense row (i*7 + j)*16 + c (channels-last flatten) is conv tap (i, j), channel c.
    np.testing.assert_array_equal(fc6[2, 5, 11], dense[(2 * 7 + 5) * 16 + 11])
    np.testing.assert_array_equal(model.get_layer("fc7").get_weights()[0][0, 0],
                                  donor.get_layer("fc2").get_weights()[0])


def test_batch_norm_variant_adds_one_bn_per_trunk_conv():
    plain = FCN8s(filters=2, fc_filters=8)
    bn = FCN8s(filters=2, fc_filters=8, batch_norm=True)
    norms = [l for l in bn.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) == 13 and all(l.momentum == 0.9 for l in norms)  # VGG16: 13 convs
    channels = sum(l.filters for l in plain.layers if l.name.startswith("block") and "conv" in l.name)
    assert bn.count_params() - plain.count_params() == 4 * channels  # gamma, beta, mean, variance
