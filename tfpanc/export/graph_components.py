"""Connected components and binary opening as TensorFlow ops, for serving graphs.

The numpy/scipy post-processing of the predictors, rewritten so that it runs
inside a serving ``tf.function`` (masks of static rank and dynamic shape):

* :func:`label` equals ``scipy.ndimage.label`` (same numbers: components in
  raster order of their first voxel), with ``connectivity=1`` (faces; 6 in
  3D, scipy's default) or ``connectivity=rank`` (26 in 3D, a full 3x3x3
  structure);
* :func:`keep_large_components` equals
  :func:`tfpanc.inference.components.keep_large_components`;
* :func:`largest_component` equals
  :func:`tfpanc.data.preprocess.largest_component` (26-connected; the first
  in raster order on a tie), with an all-False mask where that returns None;
* :func:`components_fitting` equals
  :func:`tfpanc.inference.components.components_fitting` (an all-False mask
  where that returns None);
* :func:`binary_opening` equals ``scipy.ndimage.binary_opening(mask,
  structure)`` for any boolean structure (one iteration, ``border_value=0``:
  an object touching the border is eroded there).

Labelling is label equivalence with pointer jumping (Hawick et al., "Parallel
graph component labelling with GPUs and CUDA", 2010), not plain label
propagation: every foreground voxel starts labelled with its own flat index;
each step takes the smallest label among a voxel's neighbours, hooks the
voxel's root onto it (a scatter-min at the root, so a whole chain learns the
smaller label at once) and then follows labels to their roots until nothing
changes. The loop ends when no neighbour holds a smaller label; each
component's label is then its smallest flat index, renumbered 1..n in that
order. Propagation needs as many steps as the longest path in a component
(a 2000-voxel snake: 2000 steps); with hooking and jumping it takes a few
dozen. All work is done inside the mask's bounding box.

Example:
>>> import numpy as np, tensorflow as tf
>>> m = np.zeros((5, 5, 3), bool); m[0, 0, 0] = m[2:4, 2:4, 1] = m[4, 4, 2] = True
>>> labels, n = label(tf.constant(m))
>>> int(n), sorted(np.unique(labels.numpy()).tolist())
(3, [0, 1, 2, 3])
>>> int(tf.reduce_sum(tf.cast(keep_large_components(tf.constant(m), 0.5), tf.int32)))
4
"""

from __future__ import annotations

import itertools

import numpy as np


def _tf():
    import tensorflow as tf

    return tf


def bounding_box(mask):
    """``(lo, hi, nonempty)``: the half-open box of a mask's True voxels (int32 ``[rank]`` each).

    An empty mask gives ``lo = hi = 0``. As :func:`tfpanc.data.boxes.box_from_mask`.

    Args:
        mask: boolean tensor of static rank.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> m = np.zeros((4, 5, 6), bool); m[1:3, 2, 3:6] = True
    >>> [t.numpy().tolist() for t in bounding_box(tf.constant(m))[:2]]
    [[1, 2, 3], [3, 3, 6]]
    """
    tf = _tf()
    mask = tf.convert_to_tensor(mask, tf.bool)
    rank = mask.shape.rank
    lo, hi = [], []
    for axis in range(rank):
        hit = tf.reduce_any(mask, axis=[a for a in range(rank) if a != axis])
        at = tf.range(tf.shape(hit)[0], dtype=tf.int32)
        lo.append(tf.reduce_min(tf.where(hit, at, tf.int32.max)))
        hi.append(tf.reduce_max(tf.where(hit, at + 1, 0)))
    nonempty = tf.reduce_any(mask)
    zero = tf.zeros([rank], tf.int32)
    return tf.where(nonempty, tf.stack(lo), zero), tf.where(nonempty, tf.stack(hi), zero), nonempty


def in_box(mask, fn, dtype):
    """``fn`` applied to the mask's bounding box only and pasted into zeros of ``dtype``.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> m = np.zeros((4, 6), bool); m[1:3, 2:5] = True
    >>> in_box(tf.constant(m), lambda crop: tf.fill(tf.shape(crop), 7), tf.int32).numpy()[1].tolist()
    [0, 0, 7, 7, 7, 0]

    Args:
        mask: boolean tensor.
        fn: ``crop (bool) -> tensor of the crop's shape`` (zero outside the mask
            must stay zero: components, opening).
        dtype: the result's dtype.

    Returns:
        a tensor of ``mask``'s shape; zeros for an empty mask (``fn`` not run).
    """
    tf = _tf()
    mask = tf.convert_to_tensor(mask, tf.bool)
    lo, hi, nonempty = bounding_box(mask)

    def run():
        out = tf.cast(fn(tf.slice(mask, lo, hi - lo)), dtype)
        return tf.pad(out, tf.stack([lo, tf.shape(mask, out_type=tf.int32) - hi], axis=1))

    out = tf.cond(nonempty, run, lambda: tf.zeros(tf.shape(mask), dtype))
    out.set_shape(mask.shape)  # the pad's shape is dynamic: keep a static one for while-loop variables
    return out


def _neighbour_min(values, fg, connectivity, sentinel):
    """The smallest of each voxel's own and its neighbours' values (``sentinel`` outside)."""
    tf = _tf()
    rank = values.shape.rank
    shape = tf.shape(values)
    if connectivity >= rank:
        # The full 3^rank neighbourhood is a box: its min is separable, one axis at a time.
        out = values
        for axis in range(rank):
            pad = [[0, 0]] * rank
            pad[axis] = [1, 1]
            p = tf.pad(out, pad, constant_values=sentinel)
            parts = [tf.slice(p, [s if a == axis else 0 for a in range(rank)], shape) for s in range(3)]
            out = tf.minimum(tf.minimum(parts[0], parts[1]), parts[2])
    else:
        p = tf.pad(values, [[1, 1]] * rank, constant_values=sentinel)
        out = values
        for offset in itertools.product((-1, 0, 1), repeat=rank):
            if 0 < sum(abs(o) for o in offset) <= connectivity:
                out = tf.minimum(out, tf.slice(p, [1 + o for o in offset], shape))
    return tf.where(fg, out, sentinel)


def _root_labels(fg, connectivity):
    """Per voxel the smallest flat index of its component (``size`` for background), and the steps taken."""
    tf = _tf()
    shape = tf.shape(fg)
    size = tf.size(fg)
    flat_fg = tf.reshape(fg, [-1])
    start = tf.where(flat_fg, tf.range(size), size)

    def jump(flat):
        # Follow labels to their roots; the appended sentinel keeps background at `size`.
        def body(f, _):
            nxt = tf.gather(tf.concat([f, [size]], 0), f)
            return nxt, tf.reduce_any(tf.not_equal(nxt, f))

        return tf.while_loop(lambda f, more: more, body, [flat, tf.constant(True)])[0]

    def step(flat, _, steps):
        low = tf.reshape(_neighbour_min(tf.reshape(flat, shape), fg, connectivity, size), [-1])
        smaller = tf.where(low < flat)[:, 0]
        # Hook each voxel's root onto the smaller label: the whole tree below it moves at once.
        roots = tf.gather(flat, smaller)
        flat = tf.tensor_scatter_nd_min(flat, roots[:, None], tf.gather(low, smaller))
        flat = jump(tf.minimum(flat, low))
        return flat, tf.size(smaller) > 0, steps + 1

    flat, _, steps = tf.while_loop(lambda f, more, s: more, step, [start, tf.constant(True), tf.constant(0)])
    return flat, steps


def _label_crop(crop, connectivity):
    tf = _tf()
    flat, _ = _root_labels(crop, connectivity)
    size = tf.size(crop)
    flat_fg = tf.reshape(crop, [-1])
    is_root = tf.logical_and(flat_fg, tf.equal(flat, tf.range(size)))
    # Roots in raster order are the components in scipy's order: number them by a running count.
    number = tf.cumsum(tf.cast(is_root, tf.int32))
    labels = tf.where(flat_fg, tf.gather(number, tf.minimum(flat, size - 1)), 0)
    return tf.reshape(labels, tf.shape(crop))


def _check_connectivity(rank, connectivity):
    if rank is None:
        raise ValueError("the mask needs a static rank")
    if not 1 <= int(connectivity) <= rank:
        raise ValueError(f"connectivity must be in 1..{rank}, got {connectivity}")
    return int(connectivity)


def label(mask, connectivity=1):
    """Connected components of a boolean mask, numbered as ``scipy.ndimage.label``.

    Args:
        mask: boolean tensor of static rank (any shape).
        connectivity: neighbours are at most this many axis steps away (1:
            faces, scipy's default; ``rank``: every touching voxel), as
            ``scipy.ndimage.generate_binary_structure(rank, connectivity)``.

    Returns:
        ``(labels int32 of mask's shape, count int32)``; 0 is background, the
        components are 1..count in raster order of their first voxel.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> m = np.array([[1, 0, 1], [0, 1, 0]], bool)
    >>> label(tf.constant(m))[0].numpy().tolist(), int(label(tf.constant(m), 2)[1])
    ([[1, 0, 2], [0, 3, 0]], 1)
    """
    tf = _tf()
    mask = tf.convert_to_tensor(mask, tf.bool)
    connectivity = _check_connectivity(mask.shape.rank, connectivity)
    labels = in_box(mask, lambda crop: _label_crop(crop, connectivity), tf.int32)
    return labels, tf.reduce_max(tf.concat([tf.reshape(labels, [-1]), [0]], 0))


def component_sizes(labels, count):
    """Voxels per label ``0..count`` (int32 ``[count + 1]``, background's entry set to 0).

    Args:
        labels, count: what :func:`label` returns.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> component_sizes(*label(tf.constant(np.array([1, 1, 0, 1], bool)))).numpy().tolist()
    [0, 2, 1]
    """
    tf = _tf()
    sizes = tf.math.bincount(tf.reshape(labels, [-1]), minlength=count + 1, maxlength=count + 1)
    return tf.tensor_scatter_nd_update(sizes, [[0]], [0])


def keep_large_components(mask, ratio=0.5, volume_size=None, connectivity=1):
    """Keeps the components of at least ``ratio`` times the largest, as
    :func:`tfpanc.inference.components.keep_large_components`.

    An empty mask, or one covering half the volume or more, comes back
    unchanged (OrganSegC2F's ``post_processing``).

    Args:
        mask: boolean tensor.
        ratio: components smaller than ``ratio`` times the largest go (a number or scalar tensor).
        volume_size: voxel count for the half-volume rule (default: the mask's; a number or scalar tensor).
        connectivity: as in :func:`label` (1: the numpy version's 6-connectivity).

    Returns:
        boolean tensor of ``mask``'s shape.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> m = np.zeros((20, 3, 3), bool); m[0:4] = True; m[6:7] = True
    >>> int(tf.reduce_sum(tf.cast(keep_large_components(tf.constant(m)), tf.int32))) // 9
    4
    """
    tf = _tf()
    mask = tf.convert_to_tensor(mask, tf.bool)
    total = tf.math.count_nonzero(mask, dtype=tf.int64)
    if volume_size is None:
        size = tf.cast(tf.size(mask, out_type=tf.int64), tf.float64)
    elif isinstance(volume_size, (int, float, np.integer, np.floating)):
        size = tf.constant(float(volume_size), tf.float64)
    else:
        size = tf.cast(volume_size, tf.float64)
    unchanged = tf.logical_or(tf.equal(total, 0), tf.cast(total, tf.float64) >= size / 2.0)

    def filtered():
        labels, count = label(mask, connectivity)
        sizes = tf.cast(component_sizes(labels, count), tf.float64)
        # As numpy: integer sizes against the float64 product, the background never kept.
        keep = tf.logical_and(sizes >= tf.cast(ratio, tf.float64) * tf.reduce_max(sizes),
                              tf.range(count + 1) > 0)
        return tf.gather(keep, labels)

    out = tf.cond(unchanged, lambda: tf.identity(mask), filtered)
    out.set_shape(mask.shape)
    return out


def largest_component(mask, connectivity=None):
    """The largest component (26-connected by default), as :func:`tfpanc.data.preprocess.largest_component`.

    Ties go to the component first in raster order (numpy's ``argmax``); an
    empty mask gives an all-False mask (the numpy version: None).

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> m = np.zeros((6, 6), bool); m[0, 0] = m[1, 1] = True; m[4:, 4:] = True
    >>> int(tf.reduce_sum(tf.cast(largest_component(tf.constant(m)), tf.int32)))
    4
    """
    tf = _tf()
    mask = tf.convert_to_tensor(mask, tf.bool)
    labels, count = label(mask, mask.shape.rank if connectivity is None else connectivity)
    sizes = component_sizes(labels, count)
    biggest = tf.reduce_max(sizes)
    # The smallest label among the largest: numpy's argmax takes the first on a tie.
    first = tf.reduce_min(tf.where(tf.equal(sizes, biggest), tf.range(count + 1), count + 1))
    return tf.logical_and(tf.equal(labels, first), count > 0)


def components_fitting(mask, size):
    """The largest 26-connected component plus each next largest whose box keeps the union's box within
    ``size``, as :func:`tfpanc.inference.components.components_fitting`.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> m = np.zeros((30, 4, 4), bool); m[0:6] = True; m[10:13] = True; m[27:30] = True
    >>> kept = components_fitting(tf.constant(m), (14, 4, 4)).numpy()
    >>> [int(v) for v in np.flatnonzero(kept.any(axis=(1, 2)))[[0, -1]]]
    [0, 12]
    """
    tf = _tf()
    mask = tf.convert_to_tensor(mask, tf.bool)
    rank = mask.shape.rank
    labels, count = label(mask, rank)
    sizes = component_sizes(labels, count)[1:]
    # Every component's box at once: min and max of its voxels' coordinates.
    at = tf.where(labels > 0)
    ids = tf.gather_nd(labels, at) - 1
    coords = tf.cast(at, tf.int32)
    lows = tf.math.unsorted_segment_min(coords, ids, count)
    highs = tf.math.unsorted_segment_max(coords, ids, count) + 1
    order = tf.argsort(-sizes, stable=True)
    limit = tf.constant([int(v) for v in size], tf.int32)

    def step(i, lo, hi, keep):
        j = order[i]
        n_lo = tf.where(i > 0, tf.minimum(lo, lows[j]), lows[j])
        n_hi = tf.where(i > 0, tf.maximum(hi, highs[j]), highs[j])
        fits = tf.logical_or(tf.equal(i, 0), tf.reduce_all(n_hi - n_lo <= limit))
        keep = tf.tensor_scatter_nd_update(keep, [[j + 1]], [fits])
        return (i + 1, tf.where(fits, n_lo, lo), tf.where(fits, n_hi, hi), keep)

    zero = tf.zeros([rank], tf.int32)
    _, _, _, keep = tf.while_loop(lambda i, *_: i < count, step,
                                  (tf.constant(0), zero, zero, tf.zeros([count + 1], tf.bool)))
    out = tf.gather(keep, labels)
    out.set_shape(mask.shape)
    return out


def _shifted(x, structure, before, combine):
    """``combine`` over the True offsets ``s`` of ``structure`` of ``x[i + s - before]`` (False outside ``x``).

    One slice of the padded mask per offset: exact and, for the small balls
    a cleaning opening uses, far cheaper than a convolution (TensorFlow's
    single-channel conv3d took 21 s on a 256x256x120 mask with ball(2)).
    """
    tf = _tf()
    after = [k - 1 - b for k, b in zip(structure.shape, before)]
    padded = tf.pad(x, [[b, a] for b, a in zip(before, after)])
    shape = tf.shape(x)
    out = None
    for offset in np.argwhere(structure):
        part = tf.slice(padded, [int(o) for o in offset], shape)
        out = part if out is None else combine(out, part)
    return out


def binary_opening(mask, structure):
    """``scipy.ndimage.binary_opening(mask, structure)`` (one iteration, ``border_value=0``).

    Erosion (AND over the structure's offsets) then dilation (OR over the
    mirrored ones), outside the mask False. scipy puts the structure's centre
    at ``size // 2`` for the erosion and mirrors the structure about it for
    the dilation; the same here, so even-sized and asymmetric structures agree
    too. The opening lies inside the mask, so only the mask's bounding box is
    computed (outside it the mask is the border's 0 anyway). The graph holds
    two ops per True voxel of the structure, twice (ball(1): 7, ball(3): 123).

    Args:
        mask: boolean tensor (static rank).
        structure: boolean numpy array of the same rank (e.g.
            ``skimage.morphology.ball(r)``), known when the graph is traced.

    Returns:
        boolean tensor of ``mask``'s shape.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> from scipy import ndimage
    >>> from skimage.morphology import ball
    >>> m = np.zeros((9, 9, 9), bool); m[2:7, 2:7, 2:7] = True; m[0, 0, 0] = True  # a cube and a speck
    >>> out = binary_opening(tf.constant(m), ball(1).astype(bool)).numpy()
    >>> bool(out[4, 4, 4]), bool(out[0, 0, 0]), bool((out == ndimage.binary_opening(m, ball(1))).all())
    (True, False, True)
    """
    tf = _tf()
    mask = tf.convert_to_tensor(mask, tf.bool)
    structure = np.asarray(structure).astype(bool)
    if mask.shape.rank is None or structure.ndim != mask.shape.rank:
        raise ValueError(f"mask and structure must have one rank, got {mask.shape.rank} and {structure.ndim}")
    if not structure.any():
        return tf.zeros_like(mask)  # as scipy: an empty structure erodes everything away
    centre = [k // 2 for k in structure.shape]
    mirrored = structure[(slice(None, None, -1),) * structure.ndim]

    def opening(crop):
        eroded = _shifted(crop, structure, centre, tf.logical_and)
        return _shifted(eroded, mirrored, [(k - 1) // 2 for k in structure.shape], tf.logical_or)

    return in_box(mask, opening, tf.bool)
