"""Views and 3-slice stacks: the slice geometry of the 2D methods.

Arrays are ``[x, y, z]`` RAS+ (see :mod:`tfpanc.data.io`): an axial slice is
``volume[:, :, k]``, a coronal one ``volume[:, j, :]``, a sagittal one
``volume[i, :, :]``. A slice keeps the two other axes in their order, so an
axial slice is ``(X, Y)``, coronal ``(X, Z)``, sagittal ``(Y, Z)``.

A 3-slice stack of slice k holds slices k-1, k, k+1 as three channels (the
input of the 2D methods); at the first/last slice the missing neighbour is
replaced by the slice itself (edge replication).

The 3D sliding-window grid is :mod:`tfpanc.inference.sliding_window`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

VIEWS = ("sagittal", "coronal", "axial")  # the view whose slices run along axis 0, 1, 2


def view_axis(view):
    """The array axis a view slices along: sagittal 0, coronal 1, axial 2.

    Example:
    >>> view_axis("axial"), view_axis("coronal"), view_axis(0)
    (2, 1, 0)
    """
    if isinstance(view, (int, np.integer)) and 0 <= int(view) < 3:
        return int(view)
    try:
        return VIEWS.index(str(view).lower())
    except ValueError:
        raise ValueError(f"unknown view {view!r} (use one of {', '.join(VIEWS)})") from None


def move_view_last(volume, view):
    """Puts the view's slice axis at position 2 (a view, no copy).

    ``move_view_last(v, view)[..., k]`` is slice k of that view for a 3D
    array; trailing axes beyond the first three (channels) stay behind it.
    """
    return np.moveaxis(volume, view_axis(view), 2)


def move_view_back(volume, view):
    """Inverse of :func:`move_view_last`."""
    return np.moveaxis(volume, 2, view_axis(view))


def take_slice(volume, view, k):
    """Slice ``k`` of a view as a 2D array (a view of ``volume``)."""
    index = [slice(None)] * 3
    index[view_axis(view)] = int(k)
    return volume[tuple(index)]


def neighbour_indices(k, n, context=1):
    """Slice indices ``k-context .. k+context`` clamped to ``[0, n)``."""
    return np.clip(np.arange(k - context, k + context + 1), 0, n - 1)


def read_slices(volume, view, indices, box2d=None):
    """Reads slices of a view as ``(H, W, len(indices))``, touching only them.

    Reads the contiguous block ``[min, max]`` of the view axis once (a memmap
    reads just those pages) and picks ``indices`` from it, so repeated
    indices (edge replication) cost nothing extra.

    Args:
        volume: 3D array or memmap.
        view: view name or axis.
        indices: slice indices inside the volume.
        box2d: optional in-plane box ``[[a0, a1], [b0, b1]]`` (inside the
            slice) to read only that region.

    Returns:
        A new array ``(H, W, len(indices))`` in the volume's dtype.
    """
    axis = view_axis(view)
    idx = np.asarray(indices, np.int64)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    index = [slice(None)] * 3
    if box2d is not None:
        plane = [a for a in range(3) if a != axis]
        for a, (s, e) in zip(plane, np.asarray(box2d, np.int64)):
            index[a] = slice(int(s), int(e))
    index[axis] = slice(lo, hi)
    block = np.moveaxis(volume[tuple(index)], axis, 2)
    return np.take(block, idx - lo, axis=2)


def slice_stack(volume, view, k, context=1, box2d=None):
    """The 3-slice stack of slice ``k``: ``(H, W, 2*context+1)``, edges replicated.

    Example:
    >>> v = np.arange(4)[None, None, :] * np.ones((2, 3, 1), int)
    >>> slice_stack(v, "axial", 0)[0, 0].tolist(), slice_stack(v, "axial", 3)[0, 0].tolist()
    ([0, 0, 1], [2, 3, 3])
    """
    n = volume.shape[view_axis(view)]
    return read_slices(volume, view, neighbour_indices(k, n, context), box2d)


def slice_run(volume, view, start, length, context=1, box2d=None):
    """Stacks of ``length`` consecutive slices from ``start``: ``(T, H, W, C)``.

    Indices outside the volume are clamped (edge replication), both for the
    neighbours and for runs longer than the volume.
    """
    n = volume.shape[view_axis(view)]
    centres = np.clip(np.arange(start, start + length), 0, n - 1)
    idx = np.clip(centres[:, None] + np.arange(-context, context + 1)[None, :], 0, n - 1)
    block = read_slices(volume, view, idx.ravel(), box2d)  # (H, W, T*C)
    h, w = block.shape[:2]
    return np.moveaxis(block.reshape(h, w, length, 2 * context + 1), 2, 0)


def slice_stacks(volume, view, context=1):
    """All stacks of a view at once: ``(N, H, W, 2*context+1)``, a strided view.

    Only the edge padding is copied (one copy of the volume); the N stacks
    share memory, so do not write into the result.

    Example:
    >>> v = np.random.default_rng(0).random((4, 5, 6))
    >>> s = slice_stacks(v, "coronal"); s.shape
    (5, 4, 6, 3)
    >>> bool(np.array_equal(s[0], slice_stack(v, "coronal", 0)))
    True
    """
    moved = move_view_last(np.asarray(volume), view)
    padded = np.pad(moved, ((0, 0), (0, 0), (context, context)), mode="edge")
    windows = sliding_window_view(padded, 2 * context + 1, axis=2)  # (H, W, N, C)
    return np.moveaxis(windows, 2, 0)
