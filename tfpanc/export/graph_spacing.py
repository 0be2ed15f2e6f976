"""A serving graph that predicts at the run's training spacing and answers on the input's grid.

The in-graph counterpart of :func:`tfpanc.inference.spacing.predict_at_spacing`,
for the methods whose own graph works on the voxels it is given (cai, zhou,
two_stage; multitask resamples inside its own graph). Without it a model
trained on 3.1 mm phantom voxels and served a 0.8 mm scan sees a pancreas
4x too large and answers without a word, which ``predict --server`` would
write as a valid mask. Each volume of a request, with its own spacing:

* within :data:`~tfpanc.inference.spacing.SAME_SPACING` of the training
  spacing on every axis: served as it is (the numpy predictor's rule);
* else resampled linearly to the training spacing
  (:func:`tfpanc.export.graph_ops.resize_linear`, the grid of
  :func:`tfpanc.data.preprocess.resample_image`), served there, and brought
  back: the probability linearly (clipped to [0, 1]), the mask as a label
  (its linear interpolation >= 0.5, :func:`tfpanc.data.preprocess.resize_label`).

``volume_ml`` is then counted on the input's grid with the input's spacing.
predict's body crop is not in the graph: the served answer equals
``predict --nobody_crop``.

Example:
>>> import numpy as np, tensorflow as tf
>>> def toy(ct, spacing):       # marks bright voxels, at whatever grid it is given
...     prob = tf.cast(ct > 50.0, tf.float32)
...     return {"probability": prob, "mask": tf.cast(prob > 0.5, tf.uint8), "volume_ml": tf.zeros([1])}
>>> fn = at_training_spacing(toy, (1.0, 1.0, 2.0))
>>> ct = np.zeros((1, 40, 40, 10), np.float32); ct[0, 10:30, 10:30, 2:8] = 100.0
>>> out = fn(tf.constant(ct), tf.constant([[0.5, 0.5, 2.0]]))
>>> out["mask"].shape, int(out["mask"].numpy().sum()), round(float(out["volume_ml"][0]), 4)
(TensorShape([1, 40, 40, 10]), 2400, 1.2)
"""

from __future__ import annotations

import tensorflow as tf

from tfpanc.export import graph_ops as ops
from tfpanc.export import savedmodel
from tfpanc.inference.spacing import SAME_SPACING


def at_training_spacing(serving_fn, training_spacing, extra_outputs=None):
    """``serving_fn`` (the contract's ``(ct, spacing) -> outputs``) run at ``training_spacing``.

    Args:
        serving_fn: a method's serving function on ``[n, x, y, z]`` volumes.
        training_spacing: the run's ``training_spacing`` (mm along x, y, z).
        extra_outputs: ``{name: dtype}`` of the method's own ``[n]`` outputs beyond the
            contract's (zhou's ``rounds``), passed through.

    Returns:
        a serving function of the same contract whose outputs are on the input's grid.
    """
    target = [float(s) for s in training_spacing]
    target32 = tf.constant(target, tf.float32)
    extra = {name: tf.as_dtype(dtype) for name, dtype in (extra_outputs or {}).items()}

    def kept(out):
        return [tf.cast(out[name][0], dtype) for name, dtype in extra.items()]

    def one(args):
        ct, spacing = args  # one volume [x, y, z], its spacing [3]
        ratios = tf.cast(spacing, tf.float64) / tf.constant(target, tf.float64)
        on_grid = tf.reduce_all(tf.abs(ratios - 1.0) <= SAME_SPACING)

        def as_is():
            out = serving_fn(ct[None], spacing[None])
            return (out["probability"][0], tf.cast(out["mask"][0], tf.uint8), *kept(out))

        def resampled():
            source = tf.shape(ct)
            coarse = ops.resize_linear(ct, ops.resampled_shape(source, spacing, target))
            out = serving_fn(coarse[None], target32[None])
            probability = tf.clip_by_value(ops.resize_linear(out["probability"][0], source), 0.0, 1.0)
            mask = ops.resize_linear(tf.cast(out["mask"][0], tf.float32), source) >= 0.5
            return (probability, tf.cast(mask, tf.uint8), *kept(out))

        return tf.cond(on_grid, as_is, resampled)

    def fn(ct, spacing):
        ct = tf.convert_to_tensor(ct, tf.float32)
        spacing = tf.convert_to_tensor(spacing, tf.float32)
        with tf.control_dependencies([savedmodel.check_spacing(spacing)]):
            # Volume by volume: each spacing gives its own grid.
            probability, mask, *others = tf.map_fn(
                one, (ct, spacing), fn_output_signature=(tf.float32, tf.uint8, *extra.values()))
        return dict(savedmodel.outputs_from_mask(probability, mask, spacing), **dict(zip(extra, others)))

    return fn
