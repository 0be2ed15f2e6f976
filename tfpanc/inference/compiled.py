"""A compiled inference call of a Keras model, for the active backend.

Sliding-window inference calls a network thousands of times per volume;
an eager Keras call (or ``model.predict``) costs milliseconds of overhead
each, which at small windows is most of the time.
"""

from __future__ import annotations

from tfpanc.inference.precision import to_float32


def compiled_forward(model, to_numpy=True):
    """A compiled inference call ``x -> outputs`` of ``model`` for the active backend.

    ``jax.jit`` of the stateless call on JAX, ``tf.function`` (relaxed shapes)
    on TensorFlow: ``model.predict``'s per-call overhead would hide the
    network's speed. With ``to_numpy=False`` a JAX result stays on the device
    (the call still waits for it), so a GPU timing leaves out the copy to host.
    A model with several inputs takes them as a list; several outputs come
    back as a list.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        run = jax.jit(lambda x: model.stateless_call(trainable, non_trainable, x, training=False)[0])
        if to_numpy:
            return lambda x: _each(run(x), to_float32)
        return lambda x: jax.block_until_ready(run(x))
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: _each(fn(x), to_float32)
    return model.predict_on_batch


def _each(outputs, convert):
    return [convert(o) for o in outputs] if isinstance(outputs, (list, tuple)) else convert(outputs)
