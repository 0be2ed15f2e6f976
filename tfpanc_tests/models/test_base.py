"""Tests for tfpanc.models.base (constructor-argument configs, the input-multiple check)."""

import keras
import pytest

from tfpanc.models import CNNRNN, FCN8s, HNN, BiRNNHead, PNetMSA, UNet2D
from tfpanc.models.base import ConstructorConfig, check_input_multiple


class Pair(ConstructorConfig, keras.Model):
    """Two Dense layers; ``inner`` is a nested Keras model argument, ``input_shape`` renamed."""

    config_attributes = {"input_shape": "slice_shape"}

    def __init__(self, inner, units=2, input_shape=(3,), **kwargs):
        inputs = keras.Input(input_shape)
        super().__init__(inputs, keras.layers.Dense(units)(inner(inputs)), **kwargs)
        self.inner, self.units, self.slice_shape = inner, int(units), tuple(input_shape)


def test_config_is_the_constructor_arguments_with_nested_models_serialized():
    inner = keras.Sequential([keras.layers.Dense(4)], name="inner")
    model = Pair(inner, units=3, name="pair", trainable=False)
    config = model.get_config()
    assert Pair.constructor_arguments() == ["inner", "units", "input_shape"]
    assert {k: config[k] for k in ("name", "trainable", "units", "input_shape")} == \
        {"name": "pair", "trainable": False, "units": 3, "input_shape": (3,)}
    assert config["inner"]["class_name"] == "Sequential"
    clone = Pair.from_config(config)
    assert isinstance(clone.inner, keras.Sequential) and clone.inner is not inner
    assert clone.get_config() == config


def test_check_input_multiple():
    check_input_multiple((32, None), 16)
    with pytest.raises(ValueError, match=r"^BiRNN size \(18, 16\) must be a multiple of 4 for K=3$"):
        check_input_multiple((18, 16), 4, what="BiRNN size", context=" for K=3")


def test_input_multiple_of_every_model_class():
    # The class-level answer is what an instance then checks and reports.
    assert PNetMSA.input_multiple(num_units=3) == 4
    assert UNet2D.input_multiple(depth=4) == 16
    assert HNN.input_multiple() == 16
    assert FCN8s.input_multiple() == 32
    assert BiRNNHead.input_multiple() == 1
    for cls, kwargs in ((PNetMSA, {"num_units": 3}), (UNet2D, {"depth": 3}), (HNN, {}), (FCN8s, {})):
        with pytest.raises(ValueError, match=f"multiple of {cls.input_multiple(**kwargs)}"):
            cls(**kwargs, filters=1, input_shape=(cls.input_multiple(**kwargs) + 2, None, 3))
    assert CNNRNN.input_multiple(PNetMSA(num_units=2, filters=1)) == 2
