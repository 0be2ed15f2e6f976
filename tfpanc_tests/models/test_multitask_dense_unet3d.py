import keras
import numpy as np
import pytest

from tfpanc.models import MultitaskDenseUNet3D
from tfpanc_tests.harness import run_model_test

TINY = {"filters": 2, "growth": 2, "max_filters": 4}


def _tf_cpu():
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def _convs(model):
    return {layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv3D)}


@pytest.mark.parametrize("kwargs, channels", [
    ({"levels": 3, "convs_per_block": 3}, 2),
    ({"levels": 2, "dense": False, "feature_consistency": False, "skeleton": False,
      "kernel_initializer": "he_normal"}, 1),
])
def test_harness(kwargs, channels):
    x = np.random.default_rng(0).random((2, 8, 8, 4, 1)).astype("float32")
    # The harness expects a float16 output under mixed_float16; this model's is float32 by design,
    # which test_mixed_precision_computes_in_float16_and_outputs_float32 checks instead.
    run_model_test(MultitaskDenseUNet3D, {**TINY, **kwargs, "name": "mt"}, x, (2, 8, 8, 4, channels),
                   skip={"mixed_precision": "float32 output by design (checked by its own test)"})


def test_mixed_precision_computes_in_float16_and_outputs_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = MultitaskDenseUNet3D(levels=2, **TINY)
        assert model.get_layer("down0_conv1").compute_dtype == "float16"
        assert model.get_layer("skeleton").compute_dtype == "float32"
        if not _tf_cpu():  # TensorFlow's CPU kernels have no float16 MaxPool3D
            out = model(np.ones((1, 4, 4, 4, 1), "float32"), training=False)
            assert keras.backend.standardize_dtype(out.dtype) == "float32"
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(model.output.dtype) == "float32"


def test_output_channels_follow_the_skeleton_flag():
    x = np.zeros((1, 8, 8, 4, 1), "float32")
    for skeleton in (True, False):
        model = MultitaskDenseUNet3D(levels=2, skeleton=skeleton, **TINY)
        channels = MultitaskDenseUNet3D.output_channels(skeleton=skeleton)
        assert channels == (2 if skeleton else 1)
        assert model.predict_on_batch(x).shape == (1, 8, 8, 4, channels)
        assert ("skeleton" in _convs(model)) is skeleton


def test_channel_0_is_the_segmentation_logit_and_channel_1_the_skeleton():
    x = np.random.default_rng(1).random((1, 8, 8, 4, 1)).astype("float32")
    both = MultitaskDenseUNet3D(levels=2, **TINY)
    single = MultitaskDenseUNet3D(levels=2, skeleton=False, **TINY)
    for layer in single.layers:  # the single-task network is the multitask one less the skeleton head
        layer.set_weights(both.get_layer(layer.name).get_weights())
    out = both.predict_on_batch(x)
    np.testing.assert_allclose(out[..., :1], single.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    skeleton_path = keras.Model(both.input, both.get_layer("skeleton").output)
    np.testing.assert_allclose(out[..., 1:], skeleton_path.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    assert both.get_layer("skeleton").activation is keras.activations.linear


def test_plain_blocks_have_no_concatenation_and_other_parameters():
    dense = MultitaskDenseUNet3D(levels=3, **TINY)
    plain = MultitaskDenseUNet3D(levels=3, dense=False, **TINY)

    def encoder_concats(model):
        return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Concatenate)
                and layer.name.startswith(("down", "bottom"))]

    assert encoder_concats(plain) == []
    # down0, down1, bottom: each a concatenation before its second conv and one of its output
    assert len(encoder_concats(dense)) == 6
    assert plain.count_params() != dense.count_params()
    assert not any("transition" in name for name in _convs(plain))
    assert plain.get_layer("down1_conv2").filters == 4 and dense.get_layer("down1_conv2").filters == 2
    assert dense.get_layer("down1_transition").filters == 4
    assert dense.get_layer("bottom_transition").filters == 4  # 2 * 2**2, capped at max_filters


def test_dense_conv_sees_the_block_input_and_every_earlier_conv():
    model = MultitaskDenseUNet3D(levels=2, filters=4, growth=3, convs_per_block=3, max_filters=8)
    # down0: 1 input channel, then 1 + 3, then 1 + 3 + 3; the output concatenation 1 + 3 * 3
    assert [model.get_layer(f"down0_conv{i}").kernel.shape[-2] for i in (1, 2, 3)] == [1, 4, 7]
    assert model.get_layer("down0_transition").kernel.shape[-2:] == (10, 4)


def test_feature_consistency_adds_three_convs_at_the_finest_levels():
    with_modules = MultitaskDenseUNet3D(levels=5, **TINY)
    without = MultitaskDenseUNet3D(levels=5, feature_consistency=False, **TINY)
    assert _convs(with_modules) - _convs(without) == {"up0_consistency", "up1_consistency", "up2_consistency"}
    assert _convs(without) <= _convs(with_modules)
    assert with_modules.get_layer("up1_consistency").filters == 4
    # with fewer up levels than three, each gets one
    assert len(_convs(MultitaskDenseUNet3D(levels=3, **TINY)) - _convs(
        MultitaskDenseUNet3D(levels=3, feature_consistency=False, **TINY))) == 2


def test_input_multiple_and_bad_arguments_raise():
    assert MultitaskDenseUNet3D.input_multiple() == 16 and MultitaskDenseUNet3D.input_multiple(levels=3) == 4
    assert MultitaskDenseUNet3D(levels=5, input_shape=(64, 64, 16, 1), **TINY).required_multiple == 16
    with pytest.raises(ValueError, match="multiple of 16"):
        MultitaskDenseUNet3D(levels=5, input_shape=(64, 64, 8, 1), **TINY)
    with pytest.raises(ValueError, match="multiple of 4"):
        MultitaskDenseUNet3D(levels=3, input_shape=(6, 8, 8, 1), **TINY)
    bad = [({"levels": 1}, "levels"), ({"growth": 0}, "growth"), ({"convs_per_block": 1.5}, "convs_per_block"),
           ({"filters": 8, "max_filters": 4}, "max_filters"), ({"dense": "yes"}, "dense"),
           ({"skeleton": 1}, "skeleton"), ({"kernel_initializer": "xavier"}, "kernel_initializer"),
           ({"input_shape": (8, 8, 1)}, "input_shape")]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            MultitaskDenseUNet3D(**{**TINY, **kwargs})


def test_config_round_trip_keeps_the_flags():
    model = MultitaskDenseUNet3D(levels=3, filters=2, growth=3, convs_per_block=1, dense=False,
                                 feature_consistency=False, skeleton=False, max_filters=6,
                                 kernel_initializer="lecun_uniform", input_shape=(8, 8, 4, 2), name="m")
    config = model.get_config()
    expected = {"levels": 3, "filters": 2, "growth": 3, "convs_per_block": 1, "dense": False,
                "feature_consistency": False, "skeleton": False, "max_filters": 6,
                "kernel_initializer": "lecun_uniform", "input_shape": (8, 8, 4, 2), "name": "m"}
    assert {k: config[k] for k in expected} == expected
    clone = MultitaskDenseUNet3D.from_config(config)
    assert clone.get_config() == config
    assert _convs(clone) == _convs(model) and clone.count_params() == model.count_params()
    assert MultitaskDenseUNet3D().get_config()["kernel_initializer"] == "glorot_uniform"
