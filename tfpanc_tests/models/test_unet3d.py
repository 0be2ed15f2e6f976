import keras
import numpy as np
import pytest

from tfpanc.models.unet3d import UNet3D
from tfpanc_tests.harness import run_model_test


@pytest.mark.parametrize("norm", ["batch", "group", "instance"])
def test_unet3d_harness(norm):
    x = np.random.default_rng(0).random((2, 8, 8, 4, 1)).astype("float32")
    # TensorFlow's CPU kernels have no float16 MaxPool3D; JAX (and TF on a GPU) run the check.
    cpu_tf = keras.backend.backend() == "tensorflow" and not _tf_gpu()
    run_model_test(UNet3D, {"depth": 2, "filters": 4, "norm": norm, "max_filters": 8, "name": "u3"}, x,
                   (2, 8, 8, 4, 1), skip={"mixed_precision": "no float16 MaxPool3D on TF's CPU"} if cpu_tf else None)


def _tf_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def test_widths_double_per_level_up_to_the_cap():
    model = UNet3D(depth=3, filters=4, max_filters=12)
    widths = [model.get_layer(f"down{level}_conv1").filters for level in range(3)]
    assert widths == [4, 8, 12] and model.get_layer("bottom_conv1").filters == 12
    assert model.get_layer("up0_upconv").filters == 4


def test_input_multiple_is_checked():
    assert UNet3D.input_multiple(depth=3) == 8
    with pytest.raises(ValueError, match="multiple of 8"):
        UNet3D(depth=3, filters=2, input_shape=(12, 16, 16, 1))
    with pytest.raises(ValueError, match="norm"):
        UNet3D(norm="layer")


def test_c1_configuration_through_the_harness():
    # The multitask paper's C1: one conv per block, no normalisation, Xavier initialisation.
    x = np.random.default_rng(0).random((2, 8, 8, 4, 1)).astype("float32")
    # The harness expects float16 outputs under mixed_float16; the logits layer is float32 by design.
    run_model_test(UNet3D, {"depth": 2, "filters": 4, "norm": "none", "convs": 1, "max_filters": 8,
                            "kernel_initializer": "glorot_uniform", "name": "c1"}, x, (2, 8, 8, 4, 1),
                   skip={"mixed_precision": "float32 logits by design"})


def test_norm_none_has_no_normalisation_and_biased_convs():
    model = UNet3D(depth=2, filters=2, norm="none")
    norms = [layer.name for layer in model.layers
             if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.GroupNormalization))]
    assert norms == []
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert convs and all(layer.use_bias for layer in convs)
    normed = UNet3D(depth=2, filters=2, norm="group")
    assert not normed.get_layer("down0_conv1").use_bias


def test_one_conv_per_block_halves_the_convs():
    def block_convs(model):
        return sorted(layer.name for layer in model.layers
                      if isinstance(layer, keras.layers.Conv3D) and layer.kernel_size == (3, 3, 3))

    two, one = block_convs(UNet3D(depth=2, filters=2)), block_convs(UNet3D(depth=2, filters=2, convs=1))
    assert len(two) == 2 * len(one) == 10
    assert all(name.endswith("_conv1") for name in one)
    with pytest.raises(ValueError, match="convs"):
        UNet3D(convs=3)


def test_kernel_initializer_reaches_every_kernel_and_the_config():
    model = UNet3D(depth=1, filters=2, kernel_initializer="glorot_uniform")
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel_initializer")]
    assert kernels and all(isinstance(layer.kernel_initializer, keras.initializers.GlorotUniform)
                           for layer in kernels)
    assert isinstance(UNet3D(depth=1, filters=2).get_layer("logits").kernel_initializer,
                      keras.initializers.HeNormal)
    config = model.get_config()
    assert config["kernel_initializer"] == "glorot_uniform" and config["convs"] == 2
    assert UNet3D.from_config(config).kernel_initializer == "glorot_uniform"
    with pytest.raises(ValueError, match="kernel_initializer"):
        UNet3D(kernel_initializer="xavier")
