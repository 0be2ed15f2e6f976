"""The checks every tfpanc model and public layer must pass, run by one call per class.

In the spirit of keras-hub's ``TestCase.run_layer_test`` / ``run_backbone_test``:
for a tiny configuration, :func:`run_model_test` (a ``keras.Model`` class)
and :func:`run_layer_test` (a ``keras.layers.Layer`` class) check

1. the output shape;
2. ``get_config()`` / ``from_config()``: the clone has an equal config and,
   with the original's weights, equal outputs;
3. a ``.keras`` file (``model.save`` + ``keras.saving.load_model``) reloads
   as the same class with an equal config and equal outputs;
4. one training step (``compile`` + ``train_on_batch``): finite loss, and
   every trainable weight moved (a weight the loss cannot reach is a wiring
   bug; pick a configuration where dropout and ReLU do not silence a whole
   layer, which tiny widths can);
5. one forward pass of a fresh instance built under the ``mixed_float16``
   dtype policy: float16 compute, finite outputs (the global policy is
   restored afterwards, also on failure).

The classes have one output. A layer is checked inside a functional model
wrapping it, since saving and training need a model. Each check can be switched off with a reason where a
class or backend cannot support it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import tree

_TF = keras.backend.backend() == "tensorflow"


def _predict(model, input_data):
    """Inference-mode outputs as numpy (an eager call: cheaper than predict() for tiny models)."""
    return keras.ops.convert_to_numpy(model(input_data, training=False))


def _wrap_layer(layer, input_data):
    """A functional model of ``layer`` for inputs shaped like ``input_data`` (batch left free)."""
    inputs = tree.map_structure(lambda x: keras.Input(x.shape[1:], dtype=str(x.dtype)), input_data)
    return keras.Model(inputs, layer(inputs))


def _without_dtype(config):
    # A layer's config carries its dtype policy; without it from_config takes the global one.
    return {k: v for k, v in config.items() if k != "dtype"}


def _check_config_round_trip(obj, model, as_model, input_data, reference, rtol, atol):
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert type(clone) is type(obj)
    assert clone.get_config() == config, "from_config(get_config()) changed the config"
    clone_model = as_model(clone)
    clone_model.set_weights(model.get_weights())
    np.testing.assert_allclose(_predict(clone_model, input_data), reference, rtol=rtol, atol=atol,
                               err_msg="from_config clone with copied weights")


def _check_keras_file(obj, model, input_data, reference, rtol, atol):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
    if model is obj:
        assert type(loaded) is type(obj)
        assert loaded.get_config() == obj.get_config()
    else:  # the layer inside its wrapper
        restored = [layer for layer in loaded.layers if layer.name == obj.name]
        assert len(restored) == 1 and type(restored[0]) is type(obj)
        assert restored[0].get_config() == obj.get_config()
    np.testing.assert_allclose(_predict(loaded, input_data), reference, rtol=rtol, atol=atol,
                               err_msg="model reloaded from a .keras file")


def _check_training_step(model, input_data, target, loss):
    trainable = model.trainable_weights
    if not trainable:
        return  # nothing to train: the forward checks cover a weightless layer
    before = [keras.ops.convert_to_numpy(w).copy() for w in trainable]
    # TF: eager steps beat tracing for a tiny model; JAX: jit (eager JAX is slow).
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, run_eagerly=_TF)
    value = float(model.train_on_batch(input_data, target))
    assert np.isfinite(value), f"training loss is {value}"
    unchanged = [w.path for w, old in zip(trainable, before)
                 if np.array_equal(keras.ops.convert_to_numpy(w), old)]
    assert not unchanged, f"one training step left these trainable weights unchanged: {unchanged}"


def _check_mixed_precision(build_mixed, input_data):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_mixed()
        outputs = model(input_data, training=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16", \
        f"mixed_float16 output has dtype {outputs.dtype}"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(outputs).astype("float32"))), \
        "non-finite outputs under mixed_float16"


CHECKS = ("config", "saving", "training", "mixed_precision")


def _run(cls, init_kwargs, input_data, expected_output_shape, *, is_layer, target, loss,
         skip, rtol, atol, seed):
    skip = dict(skip or {})
    assert set(skip) <= set(CHECKS), f"unknown checks to skip: {set(skip) - set(CHECKS)}"
    if is_layer:
        def as_model(layer):
            return _wrap_layer(layer, input_data)
    else:
        assert issubclass(cls, keras.Model), f"{cls.__name__} is not a keras.Model"

        def as_model(model):
            return model

    keras.utils.set_random_seed(seed)
    obj = cls(**init_kwargs)
    model = as_model(obj)
    reference = _predict(model, input_data)
    assert tuple(reference.shape) == tuple(expected_output_shape), \
        f"output shape {reference.shape}, expected {tuple(expected_output_shape)}"

    if "config" not in skip:
        _check_config_round_trip(obj, model, as_model, input_data, reference, rtol, atol)
    if "saving" not in skip:
        _check_keras_file(obj, model, input_data, reference, rtol, atol)
    if "training" not in skip:
        if target is None:
            target = np.random.default_rng(seed).uniform(0, 1, reference.shape).astype("float32")
        _check_training_step(model, input_data, target, loss)
    if "mixed_precision" not in skip:
        config = _without_dtype(obj.get_config())
        _check_mixed_precision(lambda: as_model(cls.from_config(config)), input_data)
    if skip:
        # The other checks passed; report the skipped ones the way pytest reports skips.
        pytest.skip("; ".join(f"{check}: {reason}" for check, reason in skip.items()))


def run_model_test(cls, init_kwargs, input_data, expected_output_shape, *, target=None, loss="mse",
                   skip=None, rtol=1e-5, atol=1e-5, seed=0):
    """Runs the module docstring's checks on ``cls(**init_kwargs)``, a ``keras.Model``.

    Args:
        cls: the model class.
        init_kwargs: constructor arguments of a tiny configuration. Prefer
            non-default values: the config checks then show they survive.
        input_data: a numpy array (or a list of them) for one call.
        expected_output_shape: the output shape for ``input_data``.
        target: training target; default: uniform [0, 1) of the output shape.
        loss: the loss of the training step (default MSE).
        skip: ``{check: reason}`` for checks that cannot run, checks being
            ``"config"``, ``"saving"``, ``"training"``, ``"mixed_precision"``;
            the test then ends as skipped, with the reasons, after the others
            passed.
        rtol, atol: tolerances for "equal outputs".
        seed: ``keras.utils.set_random_seed`` value, set first.
    """
    _run(cls, init_kwargs, input_data, expected_output_shape, is_layer=False, target=target,
         loss=loss, skip=skip, rtol=rtol, atol=atol, seed=seed)


def run_layer_test(cls, init_kwargs, input_data, expected_output_shape, *, target=None, loss="mse",
                   skip=None, rtol=1e-5, atol=1e-5, seed=0):
    """:func:`run_model_test` for a ``keras.layers.Layer`` class, checked inside a functional model.

    Same arguments; ``input_data`` may be a list for a layer taking a list.
    The training step runs only when the layer has trainable weights.
    """
    _run(cls, init_kwargs, input_data, expected_output_shape, is_layer=True, target=target,
         loss=loss, skip=skip, rtol=rtol, atol=atol, seed=seed)
