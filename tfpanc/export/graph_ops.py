"""TensorFlow counterparts of tfpanc's numpy volume operations, for serving graphs.

A method's SavedModel runs its whole predictor inside one ``tf.function``;
these ops compute there what :mod:`tfpanc.data.preprocess`,
:mod:`tfpanc.data.boxes` and :mod:`tfpanc.inference.sliding_window` compute
in numpy, on tensors whose shapes are known only at run time, with the same
numerics (tested against them, exact or within float32 rounding):

* :func:`block_mean`: :func:`~tfpanc.data.preprocess.decimate_image`;
* :func:`resize_linear`, :func:`upsample_linear`:
  :func:`~tfpanc.data.preprocess.resize` (``order=1``) and
  :func:`~tfpanc.data.preprocess.upsample` (``order=1``);
* :func:`box_from_mask`, :func:`expand_box`, :func:`scale_box`,
  :func:`clip_box`, :func:`union_box`, :func:`crop_box`, :func:`paste_box`:
  the boxes of :mod:`tfpanc.data.boxes` (``(ndim, 2)`` int32 tensors,
  half-open ``[start, stop)`` per axis);
* :func:`grid_starts`, :func:`sliding_window`: the window grid and
  :func:`~tfpanc.inference.sliding_window.sliding_window_inference`.

As in numpy, the spatial axes are the leading ones (``[x, y, z, ...]``;
trailing axes, e.g. channels, are kept). A request's volumes are processed
one at a time (``tf.map_fn``): each gets its own boxes.

Example:
>>> import numpy as np, tensorflow as tf
>>> vol = tf.constant(np.arange(6, dtype="float32").reshape(6, 1, 1))
>>> block_mean(vol, 4).numpy().ravel().tolist()          # decimate_image's [1.5, 4.5]
[1.5, 4.5]
>>> box, found = box_from_mask(tf.constant([[0, 1, 1, 0]]) > 0)
>>> box.numpy().tolist(), bool(found)
([[0, 1], [1, 3]], True)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfpanc.inference.sliding_window import gaussian_importance

WEIGHTINGS = ("constant", "gaussian")


def _spatial(volume, ndim=3):
    shape = tf.shape(volume)
    return shape[:ndim], shape[ndim:]


def block_mean(volume, factor):
    """Block-mean decimation of the three leading axes by an integer ``factor``.

    Output shape ``ceil(shape / factor)``; a partial block at the far border
    averages only its real voxels, as
    :func:`tfpanc.data.preprocess.decimate_image`.

    Args:
        volume: ``[x, y, z, ...]`` tensor (cast to float32).
        factor: R, a Python int.

    Returns:
        float32 ``[ceil(x/R), ceil(y/R), ceil(z/R), ...]``.

    Example:
    >>> block_mean(tf.ones((5, 4, 1)), 2).shape
    TensorShape([3, 2, 1])
    """
    factor = int(factor)
    volume = tf.convert_to_tensor(volume, tf.float32)
    n, rest = _spatial(volume)
    blocks = -(-n // factor)
    padding = tf.concat([tf.stack([tf.zeros_like(n), blocks * factor - n], 1),
                         tf.zeros([tf.size(rest), 2], tf.int32)], 0)
    padded = tf.pad(volume, padding)  # zeros: the sum of a partial block is its real voxels'
    split = tf.concat([tf.reshape(tf.stack([blocks, tf.fill([3], factor)], 1), [-1]), rest], 0)
    total = tf.reduce_sum(tf.reshape(padded, split), axis=[1, 3, 5])
    counts = [tf.cast(tf.minimum(factor, n[a] - factor * tf.range(blocks[a])), tf.float32) for a in range(3)]
    count = counts[0][:, None, None] * counts[1][None, :, None] * counts[2][None, None, :]
    count = tf.reshape(count, tf.concat([blocks, tf.ones_like(rest)], 0))
    return total / count


def _linear_axis(x, axis, n_out):
    # As preprocess._linear_weights: output voxel i sits at input coordinate
    # (i + 0.5) * n_in / n_out - 0.5 (edges aligned), clamped to the edge
    # voxels; positions in float64 so the weights are numpy's to the bit.
    n_in = tf.shape(x, out_type=tf.int32)[axis]
    scale = tf.cast(n_in, tf.float64) / tf.cast(n_out, tf.float64)
    pos = (tf.cast(tf.range(n_out), tf.float64) + 0.5) * scale - 0.5
    pos = tf.clip_by_value(pos, 0.0, tf.cast(n_in - 1, tf.float64))
    low = tf.floor(pos)
    i0 = tf.cast(low, tf.int32)
    i1 = tf.minimum(i0 + 1, n_in - 1)
    f = tf.cast(pos - low, tf.float32)
    shape = tf.tensor_scatter_nd_update(tf.ones([tf.rank(x)], tf.int32), [[axis]], [n_out])
    f = tf.reshape(f, shape)
    return (1.0 - f) * tf.gather(x, i0, axis=axis) + f * tf.gather(x, i1, axis=axis)


def resize_linear(volume, shape):
    """Edge-aligned linear resize of the three leading axes to ``shape`` (any size per axis).

    Equals :func:`tfpanc.data.preprocess.resize` with ``order=1`` (separable,
    one axis after the other, float32), so :func:`~tfpanc.data.preprocess.resample_image`'s
    grid is ``resize_linear(image, resampled_shape)``.

    Args:
        volume: ``[x, y, z, ...]`` tensor (cast to float32).
        shape: three ints or an int32 tensor of three.

    Returns:
        float32 ``[shape[0], shape[1], shape[2], ...]``.

    Example:
    >>> resize_linear(tf.constant([[[0.0]], [[1.0]]]), [4, 1, 1]).numpy().ravel().tolist()
    [0.0, 0.25, 0.75, 1.0]
    """
    out = tf.convert_to_tensor(volume, tf.float32)
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)
    for axis in range(3):
        out = _linear_axis(out, axis, shape[axis])
    return out


def resampled_shape(shape, spacing, target_spacing):
    """:func:`tfpanc.data.preprocess.resampled_shape` in tensors: ``round(shape * spacing / target)``, >= 1.

    float64 and half-to-even, in numpy's order of operations, so both pick the same grid.

    Example:
    >>> resampled_shape(tf.constant([512, 512, 240]), tf.constant([0.7, 0.7, 1.5]), [1.0, 1.0, 1.0]).numpy().tolist()
    [358, 358, 360]
    """
    shape = tf.cast(shape, tf.float64)
    target = tf.constant([float(s) for s in target_spacing], tf.float64)
    return tf.cast(tf.maximum(tf.round(shape * tf.cast(spacing, tf.float64) / target), 1.0), tf.int32)


def upsample_linear(array, factor, shape):
    """:func:`tfpanc.data.preprocess.upsample` with ``order=1``: the 1/R grid back to ``shape``.

    Linear between block centres onto ``R * array.shape`` voxels, then cut to
    ``shape`` (the far-border remainder of :func:`block_mean`).

    Example:
    >>> upsample_linear(tf.constant([[[0.0]], [[1.0]]]), 2, [3, 1, 1]).numpy().ravel().tolist()
    [0.0, 0.25, 0.75]
    """
    array = tf.convert_to_tensor(array, tf.float32)
    full = resize_linear(array, tf.shape(array)[:3] * int(factor))
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)[:3]
    return tf.slice(full, tf.zeros([tf.rank(full)], tf.int32),
                    tf.concat([shape, tf.fill([tf.rank(full) - 3], -1)], 0))


def box_from_mask(mask):
    """The smallest box of a mask's nonzero voxels, as :func:`tfpanc.data.boxes.box_from_mask`.

    Args:
        mask: a tensor of static rank (bool or numeric; nonzero = inside).

    Returns:
        ``(box, found)``: int32 ``(rank, 2)`` and a bool scalar; where
        nothing is set (numpy's None) ``found`` is False and the box zeros.

    Example:
    >>> box, found = box_from_mask(tf.zeros((3, 3), bool)); box.numpy().tolist(), bool(found)
    ([[0, 0], [0, 0]], False)
    """
    mask = tf.cast(mask, tf.bool)
    rank = mask.shape.rank
    rows = []
    for axis in range(rank):
        along = tf.reduce_any(mask, axis=[a for a in range(rank) if a != axis])
        n = tf.shape(along)[0]
        index = tf.range(n)
        rows.append(tf.stack([tf.reduce_min(tf.where(along, index, n)),
                              tf.reduce_max(tf.where(along, index + 1, 0))]))
    found = tf.reduce_any(mask)
    return tf.where(found, tf.stack(rows), 0), found


def clip_box(box, shape):
    """A box intersected with ``[0, shape)``; empty axes become ``[a, a]`` (:func:`tfpanc.data.boxes.clip_box`)."""
    box = tf.cast(box, tf.int32)
    hi = tf.cast(tf.convert_to_tensor(shape), tf.int32)[:tf.shape(box)[0]]
    start = tf.clip_by_value(box[:, 0], 0, hi)
    return tf.stack([start, tf.clip_by_value(box[:, 1], start, hi)], 1)


def expand_box(box, margin, shape=None):
    """A box grown by ``margin`` voxels per side (negative shrinks), as :func:`tfpanc.data.boxes.expand_box`.

    Args:
        box: ``(ndim, 2)`` int tensor.
        margin: an int, one per axis, or ``(ndim, 2)`` (before, after).
        shape: when given, the result is clipped to it.

    Example:
    >>> expand_box(tf.constant([[2, 4], [0, 1]]), 3, shape=[9, 9]).numpy().tolist()
    [[0, 7], [0, 4]]
    """
    box = tf.cast(box, tf.int32)
    m = tf.cast(tf.convert_to_tensor(margin), tf.int32)
    if m.shape.rank == 1:  # one margin per axis, both sides
        m = m[:, None]
    m = tf.broadcast_to(m, tf.shape(box))
    start = box[:, 0] - m[:, 0]
    out = tf.stack([start, tf.maximum(box[:, 1] + m[:, 1], start)], 1)
    return out if shape is None else clip_box(out, shape)


def scale_box(box, factor, shape=None):
    """A box between resolutions: ``floor(start * f)``, ``ceil(stop * f)`` (:func:`tfpanc.data.boxes.scale_box`).

    Example:
    >>> scale_box(tf.constant([[2, 5], [0, 1], [3, 4]]), 4, shape=[18, 18, 18]).numpy().tolist()
    [[8, 18], [0, 4], [12, 16]]
    """
    b = tf.cast(box, tf.float64)
    f = tf.broadcast_to(tf.cast(tf.convert_to_tensor(factor), tf.float64), tf.shape(b)[:1])
    # The epsilon keeps exact products from rounding outward, as in numpy.
    out = tf.cast(tf.stack([tf.floor(b[:, 0] * f + 1e-6), tf.math.ceil(b[:, 1] * f - 1e-6)], 1), tf.int32)
    return out if shape is None else clip_box(out, shape)


def union_box(*boxes):
    """The smallest box holding all ``boxes`` (:func:`tfpanc.data.boxes.union_box`)."""
    boxes = tf.stack([tf.cast(b, tf.int32) for b in boxes])
    return tf.stack([tf.reduce_min(boxes[:, :, 0], 0), tf.reduce_max(boxes[:, :, 1], 0)], 1)


def crop_box(volume, box):
    """``volume[box]`` for a box inside the volume (leading axes the box's, trailing kept)."""
    box = tf.cast(box, tf.int32)
    extra = tf.rank(volume) - tf.shape(box)[0]
    return tf.slice(volume, tf.concat([box[:, 0], tf.zeros([extra], tf.int32)], 0),
                    tf.concat([box[:, 1] - box[:, 0], tf.fill([extra], -1)], 0))


def paste_box(patch, box, shape, background=0):
    """A ``shape`` array holding ``patch`` at ``box`` (inside it) and ``background`` elsewhere.

    Example:
    >>> paste_box(tf.ones((2,)), tf.constant([[1, 3]]), [4]).numpy().tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    box = tf.cast(box, tf.int32)
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)[:tf.shape(box)[0]]
    extra = tf.rank(patch) - tf.shape(box)[0]
    padding = tf.concat([tf.stack([box[:, 0], shape - box[:, 1]], 1), tf.zeros([extra, 2], tf.int32)], 0)
    return tf.pad(patch, padding, constant_values=tf.cast(background, patch.dtype))


def grid_starts(n, p, stride):
    """Window starts along one axis, as :func:`tfpanc.inference.sliding_window.grid_starts`.

    ``range(0, n - p, stride)`` plus ``n - p``, the last window ending at the
    border; ``[0]`` when ``n <= p``.

    Example:
    >>> grid_starts(tf.constant(10), 4, 3).numpy().tolist(), grid_starts(tf.constant(3), 4, 2).numpy().tolist()
    ([0, 3, 6], [0])
    """
    n = tf.cast(n, tf.int32)
    return tf.cond(n <= p, lambda: tf.zeros([1], tf.int32),
                   lambda: tf.concat([tf.range(0, n - p, int(stride)), [n - p]], 0))


def window_stride(patch_size, overlap=0.5, stride=None):
    """The step per axis of :func:`sliding_window` (Python ints), as the numpy inference picks it."""
    if stride is None:
        return tuple(max(1, int(round(p * (1.0 - overlap)))) for p in patch_size)
    return tuple(int(s) for s in np.broadcast_to(np.asarray(stride, np.int64), (3,)))


def sliding_window(predict_fn, volume, patch_size, overlap=0.5, stride=None, batch_size=2, fill=0.0,
                   weighting="gaussian", channels=None):
    """A 3D network over a dynamic-shape volume, window by window, averaged.

    The graph form of :func:`tfpanc.inference.sliding_window.sliding_window_inference`
    for an already normalised volume: windows of ``patch_size`` at the
    :func:`grid_starts` of each axis (x slowest, z fastest), a volume smaller
    than a window padded at the far end with ``fill``, the outputs summed
    with uniform or Gaussian (nnU-Net) importance in float32 accumulators
    and divided by the summed weights. One ``tf.while_loop`` step per batch
    of ``batch_size`` windows: memory is bounded by the batch and the
    accumulators, not by the number of windows.

    Args:
        predict_fn: float32 ``(B, px, py, pz, 1)`` -> probabilities
            ``(B, px, py, pz)``, ``(B, px, py, pz, 1)`` or, with ``channels``,
            ``(B, px, py, pz, channels)``.
        volume: float32 ``[x, y, z]``, any size at run time.
        patch_size: ``(px, py, pz)`` Python ints.
        overlap: fraction of a window shared with the next (``stride`` None).
        stride: voxels per step, one int or three; overrides ``overlap``.
        batch_size: windows per ``predict_fn`` call.
        fill: padding value (normalised air).
        weighting: ``"gaussian"`` or ``"constant"``.
        channels: None for one output channel (result ``[x, y, z]``), else C
            (result ``[x, y, z, C]``, each channel averaged on its own).

    Returns:
        float32 tensor of ``volume``'s shape (plus ``channels``).

    Example:
    >>> vol = tf.random.stateless_uniform((10, 9, 7), seed=(0, 0))
    >>> out = sliding_window(lambda b: b, vol, (4, 4, 4), batch_size=3)
    >>> bool(tf.reduce_max(tf.abs(out - vol)) < 1e-6)
    True
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r} (use 'constant' or 'gaussian')")
    patch = tuple(int(p) for p in patch_size)
    steps_per_axis = window_stride(patch, overlap, stride)
    weights = gaussian_importance(patch) if weighting == "gaussian" else np.ones(patch, np.float32)
    weights = tf.constant(weights, tf.float32)
    volume = tf.convert_to_tensor(volume, tf.float32)
    shape = tf.shape(volume)[:3]
    padded_shape = tf.maximum(shape, patch)
    volume = tf.pad(volume, tf.stack([tf.zeros([3], tf.int32), padded_shape - shape], 1), constant_values=fill)
    flat = tf.reshape(volume, [-1])
    starts = [tf.cast(grid_starts(shape[a], patch[a], steps_per_axis[a]), tf.int64) for a in range(3)]
    nx, ny, nz = (tf.size(s) for s in starts)
    count = nx * ny * nz
    dims = tf.cast(padded_shape, tf.int64)
    # Linear index of every voxel of a window starting at 0: the gather from
    # the volume and the scatter-add into the accumulators share it.
    axes = [tf.range(p, dtype=tf.int64) for p in patch]
    offsets = (axes[0][:, None, None] * dims[1] + axes[1][None, :, None]) * dims[2] + axes[2][None, None, :]
    trailing = [] if channels is None else [int(channels)]
    size = tf.reduce_prod(dims)
    steps = (count + batch_size - 1) // batch_size

    def body(i, total, norm):
        k = tf.range(i * batch_size, tf.minimum((i + 1) * batch_size, count))
        sx = tf.gather(starts[0], k // (ny * nz))
        sy = tf.gather(starts[1], (k // nz) % ny)
        sz = tf.gather(starts[2], k % nz)
        index = ((sx * dims[1] + sy) * dims[2] + sz)[:, None, None, None] + offsets[None]
        out = tf.cast(predict_fn(tf.gather(flat, index)[..., None]), tf.float32)
        if channels is None and out.shape.rank == 5:
            out = out[..., 0]
        w = weights if channels is None else weights[..., None]
        index = tf.reshape(index, [-1, 1])
        total = tf.tensor_scatter_nd_add(total, index, tf.reshape(out * w, [-1] + trailing))
        norm = tf.tensor_scatter_nd_add(norm, index, tf.reshape(tf.broadcast_to(weights, tf.shape(out)[:4]), [-1]))
        return i + 1, total, norm

    _, total, norm = tf.while_loop(
        lambda i, *_: i < steps, body,
        [tf.constant(0), tf.zeros(tf.concat([[size], tf.constant(trailing, tf.int64)], 0), tf.float32),
         tf.zeros([size], tf.float32)],
        parallel_iterations=1)
    if channels is not None:
        norm = norm[:, None]
    out = tf.math.divide_no_nan(total, norm)  # 0 where no window reached, as numpy's result()
    out = tf.reshape(out, tf.concat([padded_shape, tf.constant(trailing, tf.int32)], 0))
    return crop_box(out, tf.stack([tf.zeros([3], tf.int32), shape], 1))
