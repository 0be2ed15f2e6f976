"""Views, 3-slice stacks and sliding-window 3D patch grids.

Arrays are ``[x, y, z]`` RAS+ (see :mod:`tfpanc.data.io`): an axial slice is
``volume[:, :, k]``, a coronal one ``volume[:, j, :]``, a sagittal one
``volume[i, :, :]``. A slice keeps the two other axes in their order, so an
axial slice is ``(X, Y)``, coronal ``(X, Z)``, sagittal ``(Y, Z)``.

A 3-slice stack of slice k holds slices k-1, k, k+1 as three channels (the
input of the 2D methods); at the first/last slice the missing neighbour is
replaced by the slice itself (edge replication).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal.windows import gaussian

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


def grid_starts(n, p, stride):
    """Window starts along one axis: ``range(0, n - p, stride) + [n - p]``.

    The last window ends exactly at the border; an axis shorter than the
    window gets one window at 0 (the volume is padded to the window size).

    Example:
    >>> grid_starts(10, 4, 3), grid_starts(3, 4, 2)
    ([0, 3, 6], [0])
    """
    if p <= 0 or stride <= 0:
        raise ValueError(f"patch size {p} and stride {stride} must be positive")
    if n <= p:
        return [0]
    return list(range(0, n - p, stride)) + [n - p]


def gaussian_importance(patch_size, sigma_scale=0.125):
    """nnU-Net's sliding-window weights: a Gaussian of sigma = size/8, max 1.

    Patch borders, where predictions lack context, count less when
    overlapping windows are averaged. Strictly positive everywhere.
    """
    w = np.ones((), np.float64)
    for p in patch_size:
        w = np.multiply.outer(w, gaussian(int(p), std=max(float(p) * sigma_scale, 1e-3)))
    w = (w / w.max()).astype(np.float32)
    return np.maximum(w, np.float32(1e-6))


class PatchGrid:
    """A sliding-window grid of 3D patches covering a volume, and its inverse.

    Args:
        shape: volume shape ``(X, Y, Z)``.
        patch_size: ``(px, py, pz)``.
        stride: step per axis (one number or three).

    Attributes:
        starts: per-axis lists of window starts (:func:`grid_starts`).
        boxes: ``(N, 3, 2)`` patch boxes in grid order (x slowest, z fastest).

    Example:
    >>> vol = np.random.default_rng(0).random((10, 9, 5)).astype(np.float32)
    >>> grid = PatchGrid(vol.shape, (4, 4, 4), 3)
    >>> patches = grid.extract(vol); patches.shape
    (18, 4, 4, 4)
    >>> bool(np.allclose(grid.accumulate(patches, weighting="gaussian"), vol))
    True
    """

    def __init__(self, shape, patch_size, stride):
        self.shape = tuple(int(s) for s in shape)[:3]
        self.patch_size = tuple(int(p) for p in patch_size)
        stride = np.broadcast_to(np.asarray(stride, np.int64), (3,))
        self.stride = tuple(int(s) for s in stride)
        self.starts = [grid_starts(n, p, s) for n, p, s in zip(self.shape, self.patch_size, self.stride)]
        mesh = np.stack(np.meshgrid(*self.starts, indexing="ij"), -1).reshape(-1, 3)
        self.boxes = np.stack([mesh, mesh + np.asarray(self.patch_size)], axis=2)
        # Volumes smaller than a patch are padded at the far end to the patch size.
        self.padded_shape = tuple(max(n, p) for n, p in zip(self.shape, self.patch_size))

    def __len__(self):
        return len(self.boxes)

    def extract(self, volume, indices=None, fill=0):
        """Patches ``(N, px, py, pz, ...)`` for all or some grid positions.

        Args:
            volume: array of the grid's shape (plus trailing channel axes).
            indices: grid positions to cut (an int array or slice); all by
                default. Cut batches with slices to bound memory on large
                volumes.
            fill: value padding volumes smaller than a patch.
        """
        volume = np.asarray(volume)
        if tuple(volume.shape[:3]) != self.shape:
            raise ValueError(f"volume shape {volume.shape} does not match grid shape {self.shape}")
        pad = [(0, q - n) for q, n in zip(self.padded_shape, self.shape)]
        if any(p[1] for p in pad):
            volume = np.pad(volume, pad + [(0, 0)] * (volume.ndim - 3), constant_values=fill)
        windows = sliding_window_view(volume, self.patch_size, axis=(0, 1, 2))
        starts = self.boxes[slice(None) if indices is None else indices, :, 0]
        out = windows[starts[:, 0], starts[:, 1], starts[:, 2]]  # (N, ..., px, py, pz)
        return np.moveaxis(out, (-3, -2, -1), (1, 2, 3)) if volume.ndim > 3 else out

    def accumulator(self, channels=(), weighting="constant"):
        """A :class:`PatchAccumulator` for streaming (batch-wise) inference."""
        return PatchAccumulator(self, channels, weighting)

    def accumulate(self, patches, weighting="constant"):
        """Averages overlapping patches (all grid positions) back into a volume.

        Args:
            patches: ``(N, px, py, pz, ...)`` in grid order.
            weighting: ``"constant"`` (plain mean) or ``"gaussian"``
                (:func:`gaussian_importance`).

        Returns:
            float32 volume of the grid's shape (plus channel axes).
        """
        patches = np.asarray(patches)
        if len(patches) != len(self):
            raise ValueError(f"got {len(patches)} patches for a grid of {len(self)}")
        acc = self.accumulator(patches.shape[4:], weighting)
        acc.add(patches, 0)
        return acc.result()


class PatchAccumulator:
    """Weighted sum of predicted patches and of weights, for averaging.

    Args:
        grid: the :class:`PatchGrid`.
        channels: trailing shape of each patch (``()`` or ``(C,)``).
        weighting: ``"constant"`` or ``"gaussian"``.
    """

    def __init__(self, grid, channels=(), weighting="constant"):
        if weighting not in ("constant", "gaussian"):
            raise ValueError(f"unknown weighting {weighting!r} (use 'constant' or 'gaussian')")
        self.grid = grid
        self.channels = tuple(channels)
        self.weights = (gaussian_importance(grid.patch_size) if weighting == "gaussian"
                        else np.ones(grid.patch_size, np.float32))
        self.total = np.zeros(grid.padded_shape + self.channels, np.float32)
        self.norm = np.zeros(grid.padded_shape, np.float32)

    def add(self, patches, first):
        """Adds patches for grid positions ``first, first + 1, ...``."""
        w = self.weights.reshape(self.weights.shape + (1,) * len(self.channels))
        # A loop over patches, each add vectorised: overlapping windows cannot
        # be summed with one fancy-indexed add without a huge index array.
        for i, patch in enumerate(np.asarray(patches, np.float32)):
            sl = tuple(slice(int(a), int(b)) for a, b in self.grid.boxes[first + i])
            self.total[sl] += patch * w
            self.norm[sl] += self.weights

    def result(self):
        """The averaged volume (float32, grid shape); 0 where nothing was added."""
        norm = self.norm.reshape(self.norm.shape + (1,) * len(self.channels))
        out = np.divide(self.total, norm, out=np.zeros_like(self.total), where=norm > 0)
        return out[tuple(slice(0, n) for n in self.grid.shape)]
