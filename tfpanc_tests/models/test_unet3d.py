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
