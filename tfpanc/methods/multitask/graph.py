"""The multitask preprocessing and its inverse as TensorFlow ops, for the serving graph.

In-graph counterparts (dynamic shapes, one volume ``[x, y, z]``) of what
:mod:`tfpanc.methods.multitask.preprocess` and the predictor compute in
numpy, with the same float32/float64 steps so that the results agree to
float32 rounding:

* :func:`model_grid`: :func:`~tfpanc.methods.multitask.preprocess.to_model_grid`
  (resampling to the run's spacing, body crop);
* :func:`mean_max_stats`, :func:`normalise`:
  :class:`~tfpanc.methods.multitask.preprocess.MeanMaxNormalizer`;
* :func:`centred_region`: :func:`tfpanc.data.boxes.centered_box` of a box's centre;
* :func:`crop_with_fill`: :func:`tfpanc.data.boxes.crop` (a box reaching outside);
* :func:`to_original`: :meth:`~tfpanc.methods.multitask.preprocess.GridMap.to_original`.

Example:
>>> import tensorflow as tf
>>> out = crop_with_fill(tf.range(5.0)[:, None, None], tf.constant([[-2, 3], [0, 1], [0, 1]]), -1.0)
>>> out[:, 0, 0].numpy().tolist()
[-1.0, -1.0, 0.0, 1.0, 2.0]
"""

from __future__ import annotations

import tensorflow as tf

from tfpanc.export import graph_components as components
from tfpanc.export import graph_ops as ops


def model_grid(image, spacing, target_spacing, body_threshold):
    """The volume resampled to ``target_spacing`` and cropped to the body.

    Args:
        image: float32 ``[x, y, z]`` HU.
        spacing: float32 ``[3]`` mm.
        target_spacing: the run's spacing (three floats).
        body_threshold: HU above which a voxel is body.

    Returns:
        ``(crop, crop_box, resampled_shape)``: float32 crop, int32 ``(3, 2)``
        box on the resampled grid (the whole grid if no voxel is body, as
        :func:`tfpanc.data.preprocess.body_box`), int32 ``[3]``.
    """
    shape = ops.resampled_shape(tf.shape(image), spacing, target_spacing)
    # An axis already at its size is interpolated with weights 1 and 0: the identity, as numpy's skip.
    resampled = ops.resize_linear(image, shape)
    # numpy compares the float32 volume with the threshold in float32 too (a Python scalar is weak).
    body = components.largest_component(resampled > tf.constant(float(body_threshold), tf.float32))
    box, found = ops.box_from_mask(body)
    box = tf.where(found, box, tf.stack([tf.zeros([3], tf.int32), shape], 1))
    return ops.crop_box(resampled, box), box, shape


def mean_max_stats(volume):
    """``(mean, scale, low)`` float64 scalars of :meth:`MeanMaxNormalizer.stats`."""
    v = tf.reshape(tf.convert_to_tensor(volume, tf.float32), [-1])
    mean = tf.reduce_mean(tf.cast(v, tf.float64))
    low, high = tf.cast(tf.reduce_min(v), tf.float64), tf.cast(tf.reduce_max(v), tf.float64)
    scale = tf.maximum(tf.maximum(high - mean, mean - low), tf.constant(1e-6, tf.float64))
    return mean, scale, low


def normalise(x, stats):
    """``(x - mean) / scale`` in float32 with float32 mean and scale, as :class:`MeanMaxNormalizer`."""
    mean, scale, _ = stats
    return (tf.cast(x, tf.float32) - tf.cast(mean, tf.float32)) / tf.cast(scale, tf.float32)


def background(stats):
    """The normalised minimum, computed in float64 as :meth:`MeanMaxNormalizer.background` (float32 out)."""
    mean, scale, low = stats
    return tf.cast((low - mean) / scale, tf.float32)


def centred_region(box, size, shape):
    """A box of ``size`` centred on ``box``'s centre, shifted inside ``shape`` or centred on it where smaller.

    :func:`tfpanc.data.boxes.centered_box` with ``center = box_center(box)``:
    ``floor((lo + hi - 1) / 2 - (size - 1) / 2 + 1e-6)`` is ``(lo + hi - size) // 2``
    for integers (the epsilon never crosses an integer there).

    Example:
    >>> box = tf.constant([[0, 4], [48, 52], [5, 14]])
    >>> centred_region(box, [8, 8, 32], tf.constant([100, 100, 20])).numpy().tolist()
    [[0, 8], [46, 54], [-6, 26]]
    """
    box = tf.cast(box, tf.int32)
    size = tf.constant([int(s) for s in size], tf.int32)
    shape = tf.cast(shape, tf.int32)
    start = (box[:, 0] + box[:, 1] - size) // 2  # floor division, as numpy's floor for negatives
    start = tf.where(shape >= size, tf.clip_by_value(start, 0, tf.maximum(shape - size, 0)), (shape - size) // 2)
    return tf.stack([start, start + size], 1)


def crop_with_fill(volume, box, fill):
    """``volume[box]`` where ``box`` may reach outside; the outside gets ``fill``."""
    inside = ops.clip_box(box, tf.shape(volume))
    part = ops.crop_box(volume, inside)
    return tf.pad(part, tf.stack([inside[:, 0] - box[:, 0], box[:, 1] - inside[:, 1]], 1),
                  constant_values=tf.cast(fill, volume.dtype))


def _back_axis(values, axis, lo, n_in, n_out):
    """``values`` (rows ``[lo, lo + m)`` of an ``n_in`` axis, zero elsewhere) onto an ``n_out`` axis.

    The rows of ``_linear_weights(n_in, n_out)`` that reach ``[lo, lo + m)``
    (a contiguous run, the indices are monotonic), each ``w0 v[i0] + w1 v[i1]``
    with a weight zeroed where its column lies outside: the numbers of the
    sparse product over those columns (``0 * v + w v`` is ``w v`` exactly).

    Returns:
        ``(part, first)``: the reached rows and where they start on the ``n_out`` axis.
    """
    m = tf.shape(values)[axis]
    hi = lo + m
    # As preprocess._linear_weights: positions in float64, the fraction in float32.
    pos = (tf.cast(tf.range(n_out), tf.float64) + 0.5) * (tf.cast(n_in, tf.float64) / tf.cast(n_out, tf.float64)) - 0.5
    pos = tf.clip_by_value(pos, 0.0, tf.cast(n_in - 1, tf.float64))
    i0 = tf.cast(tf.floor(pos), tf.int32)
    i1 = tf.minimum(i0 + 1, n_in - 1)
    f = tf.cast(pos - tf.floor(pos), tf.float32)
    in0, in1 = (i0 >= lo) & (i0 < hi), (i1 >= lo) & (i1 < hi)
    rows = tf.range(n_out)
    reach = in0 | in1
    first = tf.reduce_min(tf.where(reach, rows, n_out))
    last = tf.maximum(tf.reduce_max(tf.where(reach, rows + 1, 0)), first)
    take = tf.range(first, last)
    w0 = tf.where(tf.gather(in0, take), 1.0 - tf.gather(f, take), 0.0)
    w1 = tf.where(tf.gather(in1, take), tf.gather(f, take), 0.0)
    g0 = tf.gather(values, tf.clip_by_value(tf.gather(i0, take) - lo, 0, m - 1), axis=axis)
    g1 = tf.gather(values, tf.clip_by_value(tf.gather(i1, take) - lo, 0, m - 1), axis=axis)
    shape = tf.tensor_scatter_nd_update(tf.ones([3], tf.int32), [[axis]], [last - first])
    return tf.reshape(w0, shape) * g0 + tf.reshape(w1, shape) * g1, first


def to_original(values, box, resampled, source):
    """``values`` at ``box`` of the resampled grid, on the input's grid (0 where nothing reaches).

    :meth:`GridMap.to_original` with ``box`` given on the resampled grid
    (crop start added): axis by axis, only the input-grid rows the box
    reaches are computed, then pasted into zeros.

    Args:
        values: float32 ``[bx, by, bz]``.
        box: int32 ``(3, 2)`` on the resampled grid.
        resampled, source: int32 ``[3]`` shapes of the resampled and the input grid.

    Returns:
        float32 ``source``-shaped tensor.
    """
    out = tf.convert_to_tensor(values, tf.float32)
    starts = []
    for axis in range(3):
        out, first = _back_axis(out, axis, box[axis, 0], resampled[axis], source[axis])
        starts.append(first)
    starts = tf.stack(starts)
    return ops.paste_box(out, tf.stack([starts, starts + tf.shape(out)], 1), source)
