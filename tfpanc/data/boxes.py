"""Bounding boxes: from masks, with margins, between resolutions, crop/paste.

A box is half-open ``[start, stop)`` per axis, held as a ``(ndim, 2)`` int
array (lists ``[[x0, x1], [y0, y1], [z0, z1]]`` are accepted everywhere).
Boxes may reach outside a volume: :func:`crop` pads the outside with a fill
value and :func:`paste` drops it, so fixed-size windows near the border need
no special case.
"""

from __future__ import annotations

import numpy as np


def as_box(box, ndim=None):
    """Validates a box and returns it as a ``(ndim, 2)`` int64 array."""
    b = np.asarray(box)
    if b.ndim != 2 or b.shape[1] != 2 or (ndim is not None and b.shape[0] != ndim):
        raise ValueError(f"a box is [[start, stop], ...] per axis, got {np.asarray(box).tolist()}")
    if not np.all(np.isfinite(b)) or np.any(b[:, 1] < b[:, 0]):
        raise ValueError(f"box {b.tolist()} has stop < start or non-finite values")
    return b.astype(np.int64)


def box_shape(box):
    """Extent of a box per axis."""
    b = as_box(box)
    return tuple(int(s) for s in b[:, 1] - b[:, 0])


def box_slices(box):
    """Box -> tuple of slices (the box must lie inside the array)."""
    return tuple(slice(int(a), int(b)) for a, b in as_box(box))


def box_center(box):
    """Centre of a box in voxel index coordinates (float)."""
    b = as_box(box)
    return (b[:, 0] + b[:, 1] - 1) / 2.0


def box_from_mask(mask):
    """The smallest box holding every nonzero voxel of a mask.

    Args:
        mask: array of any dimension (bool or numeric); nonzero = inside.

    Returns:
        ``numpy.ndarray`` of shape ``(mask.ndim, 2)``, dtype int64: one
        half-open ``[start, stop)`` pair per array axis, so
        ``mask[box_slices(box)]`` holds every nonzero voxel and each stop is
        one past the last nonzero index. ``None`` when the mask has no
        nonzero voxel (also when it has no voxel at all).

    Example:
    >>> m = np.zeros((5, 6, 7), bool); m[1:3, 2, 4:7] = True
    >>> box_from_mask(m).tolist()
    [[1, 3], [2, 3], [4, 7]]
    >>> box_from_mask(np.zeros((2, 2))) is None
    True
    """
    mask = np.asarray(mask)
    if mask.size == 0:
        return None
    box = np.zeros((mask.ndim, 2), np.int64)
    region = [slice(None)] * mask.ndim
    for axis in range(mask.ndim):
        # Each axis is searched only inside the bounds found on the axes
        # before it: after the first (whole-array) pass the others read just
        # the slab around the object, ~5x faster than three whole-array
        # passes on a 512x512x240 CT mask (Zhou's fixed-point loop calls this
        # every round).
        part = mask[tuple(region)]
        index = np.flatnonzero(part.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if index.size == 0:
            return None
        box[axis] = index[0], index[-1] + 1
        region[axis] = slice(int(box[axis, 0]), int(box[axis, 1]))
    return box


def clip_box(box, shape):
    """Intersects a box with ``[0, shape)``; empty axes come back as [a, a]."""
    b = as_box(box, len(shape)).copy()
    hi = np.asarray(shape, np.int64)
    b[:, 0] = np.clip(b[:, 0], 0, hi)
    b[:, 1] = np.clip(b[:, 1], b[:, 0], hi)
    return b


def expand_box(box, margin, spacing=None, shape=None):
    """Grows a box by a margin on each side.

    Args:
        box: the box.
        margin: voxels (or mm with ``spacing``): a number, one per axis, or a
            ``(ndim, 2)`` array of (before, after) per axis. Negative shrinks.
        spacing: voxel size in mm; when given ``margin`` is in mm and is
            rounded up to whole voxels.
        shape: when given, the result is clipped to the volume.

    Example:
    >>> expand_box([[10, 20], [10, 20], [5, 6]], 3, spacing=(1.0, 1.0, 2.5)).tolist()
    [[7, 23], [7, 23], [3, 8]]
    """
    b = as_box(box)
    m = np.asarray(margin, float)
    if m.ndim == 1:  # one margin per axis, both sides
        m = np.repeat(m[:, None], 2, axis=1)
    m = np.broadcast_to(m, b.shape)
    if spacing is not None:
        m = np.sign(m) * np.ceil(np.abs(m) / np.asarray(spacing, float)[:, None] - 1e-9)
    m = np.round(m).astype(np.int64)
    out = np.stack([b[:, 0] - m[:, 0], b[:, 1] + m[:, 1]], axis=1)
    out[:, 1] = np.maximum(out[:, 1], out[:, 0])
    return out if shape is None else clip_box(out, shape)


def scale_box(box, factor, shape=None):
    """Maps a box between resolutions, keeping everything it covered.

    ``start -> floor(start * factor)``, ``stop -> ceil(stop * factor)``. A box
    on a volume decimated by R (:func:`tfpanc.data.preprocess.decimate_image`,
    block i covers full-res voxels [R i, R i + R)) goes to full resolution
    with ``factor=R``; full to low resolution is ``factor=1/R``.

    Args:
        box: the box.
        factor: scale, one number or one per axis.
        shape: when given, the result is clipped to this (target) shape.

    Example:
    >>> scale_box([[2, 5], [0, 1], [3, 4]], 4, shape=(18, 18, 18)).tolist()
    [[8, 18], [0, 4], [12, 16]]
    """
    b = as_box(box).astype(float)
    f = np.broadcast_to(np.asarray(factor, float), (b.shape[0],))[:, None]
    # The epsilon keeps exact products (e.g. 7 * 0.25 * 4) from rounding outward.
    out = np.stack([np.floor(b[:, :1] * f + 1e-6), np.ceil(b[:, 1:] * f - 1e-6)], axis=1)[..., 0]
    out = out.astype(np.int64)
    return out if shape is None else clip_box(out, shape)


def union_box(*boxes):
    """Smallest box holding all given boxes (None entries are skipped)."""
    bs = [as_box(b) for b in boxes if b is not None]
    if not bs:
        return None
    return np.stack([np.min([b[:, 0] for b in bs], 0), np.max([b[:, 1] for b in bs], 0)], axis=1)


def centered_box(center, size, shape=None):
    """A box of ``size`` centred on ``center``; shifted inside ``shape`` if given.

    When the volume is smaller than ``size`` along an axis the box is centred
    on the volume instead and reaches outside it on both sides (crop pads).

    Example:
    >>> centered_box((2, 50, 9), (8, 8, 32), shape=(100, 100, 20)).tolist()
    [[0, 8], [46, 54], [-6, 26]]
    """
    size = np.asarray(size, np.int64)
    start = np.floor(np.asarray(center, float) - (size - 1) / 2.0 + 1e-6).astype(np.int64)
    if shape is not None:
        n = np.asarray(shape, np.int64)
        start = np.where(n >= size, np.clip(start, 0, np.maximum(n - size, 0)), (n - size) // 2)
    return np.stack([start, start + size], axis=1)


def crop(volume, box, fill=0):
    """Cuts ``volume[box]``; parts of the box outside the volume get ``fill``.

    Leading axes are the box's; trailing axes (channels) are kept whole. Only
    the inside part is read, so cropping a memmap reads just that region. The
    result is always a new array (never a view of ``volume``).

    Example:
    >>> crop(np.arange(5), [[-2, 3]], fill=-1).tolist()
    [-1, -1, 0, 1, 2]
    """
    b = as_box(box)
    nd = b.shape[0]
    inside = clip_box(b, volume.shape[:nd])
    part = np.array(volume[box_slices(inside)])
    if np.array_equal(inside, b):
        return part
    out = np.full(tuple(b[:, 1] - b[:, 0]) + tuple(volume.shape[nd:]), fill, dtype=volume.dtype)
    out[box_slices(np.stack([inside[:, 0] - b[:, 0], inside[:, 1] - b[:, 0]], 1))] = part
    return out


def paste(patch, box, shape, background=0, out=None):
    """Puts a crop back at its place in a full-size array.

    Args:
        patch: array shaped like the box (plus trailing channel axes).
        box: where the patch came from (may reach outside ``shape``).
        shape: the full volume shape (box axes only).
        background: value elsewhere when a new array is made.
        out: an existing full-size array to write into instead.

    Returns:
        The full-size array; the parts of ``patch`` outside it are dropped.

    Example:
    >>> paste(np.ones((2, 2)), [[1, 3], [3, 5]], (4, 4)).astype(int).tolist()
    [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    """
    b = as_box(box)
    nd = b.shape[0]
    patch = np.asarray(patch)
    if tuple(patch.shape[:nd]) != box_shape(b):
        raise ValueError(f"patch shape {patch.shape} does not match box {b.tolist()}")
    if out is None:
        out = np.full(tuple(shape) + patch.shape[nd:], background, dtype=patch.dtype)
    inside = clip_box(b, tuple(shape)[:nd])
    local = np.stack([inside[:, 0] - b[:, 0], inside[:, 1] - b[:, 0]], 1)
    out[box_slices(inside)] = patch[box_slices(local)]
    return out
