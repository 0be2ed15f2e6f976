"""What the tfpanc models share: a config made of their constructor arguments,
and the check that an input size is a multiple of the network's down-sampling.
"""

from __future__ import annotations

import inspect

import keras

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _is_serialized_keras_object(value):
    return isinstance(value, dict) and "class_name" in value and "config" in value


class ConstructorConfig:
    """Mixin: ``get_config()`` is the constructor's arguments, ``from_config()`` calls it.

    The config holds ``name``, ``trainable`` and every named parameter of the
    class's ``__init__``, each read back from the instance attribute of the
    same name (the convention of scikit-learn's ``get_params``), so a model
    stores its arguments once, as attributes, after normalising them. Where
    that name is taken by Keras, ``config_attributes`` names the attribute
    instead: ``keras.Model.input_shape`` is a property, so the models keep
    their constructor's ``input_shape`` as ``slice_shape``. A Keras layer or
    model argument (CNNRNN's two networks) is stored with
    ``keras.saving.serialize_keras_object`` and rebuilt by ``from_config``.

    Put it before the Keras base class so that its methods win:
    ``class Net(ConstructorConfig, keras.Model)``.

    Example:
    >>> class Tiny(ConstructorConfig, keras.Model):
    ...     config_attributes = {"input_shape": "slice_shape"}
    ...     def __init__(self, units=2, input_shape=(3,), **kwargs):
    ...         inputs = keras.Input(input_shape)
    ...         super().__init__(inputs, keras.layers.Dense(units)(inputs), **kwargs)
    ...         self.units, self.slice_shape = int(units), tuple(input_shape)
    >>> config = Tiny(units=4, name="tiny").get_config()
    >>> config
    {'name': 'tiny', 'trainable': True, 'units': 4, 'input_shape': (3,)}
    >>> Tiny.from_config(config).units
    4
    """

    config_attributes = {}  # constructor argument -> attribute holding it, where they differ

    @classmethod
    def constructor_arguments(cls):
        """The names of ``cls.__init__``'s named parameters (not ``self``, ``*args``, ``**kwargs``)."""
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [p.name for p in parameters if p.kind in _NAMED]

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        for argument in self.constructor_arguments():
            value = getattr(self, self.config_attributes.get(argument, argument))
            if isinstance(value, keras.layers.Layer):
                value = keras.saving.serialize_keras_object(value)
            config[argument] = value
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for argument in cls.constructor_arguments():
            if _is_serialized_keras_object(config.get(argument)):
                config[argument] = keras.saving.deserialize_keras_object(config[argument])
        return cls(**config)


def check_input_multiple(sizes, multiple, what="input size", context=""):
    """Raises ValueError unless every known size is a multiple of ``multiple``.

    A network that pools ``n`` times by 2 and brings its maps back up (skip
    connections, fusion of side outputs) needs sizes divisible by ``2 ** n``,
    or the maps of different levels do not line up.

    Args:
        sizes: the in-plane sizes, e.g. ``input_shape[:2]``; None entries
            (size fixed only when called) are not checked.
        multiple: the network's ``input_multiple``.
        what: how the message names ``sizes``.
        context: appended to the message, e.g. ``" for 3 units"``.

    Example:
    >>> check_input_multiple((32, None), 16)
    >>> check_input_multiple((40, 32), 16)
    Traceback (most recent call last):
    ...
    ValueError: input size (40, 32) must be a multiple of 16
    """
    sizes = tuple(sizes)
    if any(size is not None and int(size) % multiple for size in sizes):
        raise ValueError(f"{what} {sizes} must be a multiple of {multiple}{context}")
