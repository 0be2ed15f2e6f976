"""Compute precision of prediction: float32, or mixed bfloat16.

Mixed bfloat16 (Keras' ``mixed_bfloat16`` policy) keeps the weights in
float32 and computes in bfloat16, which halves the memory traffic and, on
CPUs with AVX512_BF16 or AMX and on GPUs, doubles the convolution rate.
Networks are built under the policy (:func:`compute_precision`), and every
predictor turns their outputs into float32 numpy (:func:`to_float32`) before
anything is summed, so window averages and masks are computed in float32.

Example:
>>> import keras
>>> with compute_precision("bfloat16"):
...     layer = keras.layers.Dense(2)
>>> layer.compute_dtype, layer.variable_dtype
('bfloat16', 'float32')
>>> keras.mixed_precision.global_policy().name
'float32'
"""

from __future__ import annotations

import contextlib

import numpy as np

PRECISIONS = ("float32", "bfloat16")
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@contextlib.contextmanager
def compute_precision(precision):
    """Networks built inside compute in ``precision`` (one of :data:`PRECISIONS`); the policy
    before is restored on leaving."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(_POLICIES[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def to_float32(output):
    """A network output (any backend's tensor or numpy, bfloat16 included) as float32 numpy."""
    from keras import ops

    return np.asarray(ops.convert_to_numpy(output), dtype=np.float32)
