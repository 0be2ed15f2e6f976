"""Sliding-window inference over 3D patches: the grid and its weighted average.

The 3D methods predict a volume patch by patch: :class:`PatchGrid` places
windows of ``patch_size`` every ``stride`` voxels (the last window of each
axis ending at the border), cuts them (:meth:`PatchGrid.extract`) and
averages the predicted patches back, plainly or with nnU-Net's Gaussian
importance (:class:`PatchAccumulator`, batch by batch so that a whole
volume's patches never sit in memory at once).

Arrays are ``[x, y, z]`` (plus trailing channel axes); numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tfpanc.inference.progress import advance


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


def _gaussian_window(n, std):
    # scipy.signal.windows.gaussian(n, std), written out to keep scipy out.
    x = np.arange(0, n) - (n - 1.0) / 2.0
    return np.exp(-x ** 2 / (2 * std * std))


def gaussian_importance(patch_size, sigma_scale=0.125):
    """nnU-Net's sliding-window weights: a Gaussian of sigma = size/8, max 1.

    Patch borders, where predictions lack context, count less when
    overlapping windows are averaged. Strictly positive everywhere.
    """
    w = np.ones((), np.float64)
    for p in patch_size:
        w = np.multiply.outer(w, _gaussian_window(int(p), max(float(p) * sigma_scale, 1e-3)))
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


def sliding_window_inference(predict_fn, volume, patch_size, overlap=0.5, batch_size=2, fill=0.0,
                             weighting="gaussian", transform=None, stride=None):
    """A 3D network over a whole volume, window by window, averaged (MONAI's name and idea).

    Args:
        predict_fn: maps a float32 batch ``(B, px, py, pz, 1)`` to
            probabilities of the same spatial shape (a trailing channel of 1
            is dropped; more channels are averaged each on its own).
        volume: ``[x, y, z]`` array (raw when ``transform`` normalises each batch).
        patch_size: ``(px, py, pz)``, what the network takes.
        overlap: fraction of a window shared with the next (stride
            ``= patch * (1 - overlap)``, at least 1).
        batch_size: windows per call; memory is bounded by it, not the volume.
        fill: padding value for volumes smaller than a window (normalised air
            once ``transform`` is applied, so it is applied after padding).
        weighting: ``"gaussian"`` (nnU-Net) or ``"constant"``.
        transform: applied to each batch of raw windows (e.g. the HU window).
        stride: voxels per step, one number or three; overrides ``overlap``
            (the multitask paper's fixed 4x16x16 step).

    Returns:
        float32 probabilities of ``volume``'s shape (plus the channel axis of
        a multi-channel ``predict_fn``).

    Example:
    >>> vol = np.random.default_rng(0).random((10, 9, 7)).astype("float32")
    >>> out = sliding_window_inference(lambda b: b, vol, (4, 4, 4), batch_size=3)
    >>> bool(np.allclose(out, vol, atol=1e-6))
    True
    >>> small = sliding_window_inference(lambda b: b + 0 * b.mean(), vol[:3], (4, 4, 4), fill=-1.0)
    >>> bool(np.allclose(small, vol[:3], atol=1e-6))
    True
    >>> two = sliding_window_inference(lambda b: np.concatenate([b, 2 * b], -1), vol, (4, 4, 4),
    ...                                stride=(2, 2, 1), weighting="constant")
    >>> two.shape, bool(np.allclose(two[..., 1], 2 * vol, atol=1e-5))
    ((10, 9, 7, 2), True)
    """
    patch_size = tuple(int(p) for p in patch_size)
    if stride is None:
        stride = tuple(max(1, int(round(p * (1.0 - overlap)))) for p in patch_size)
    grid = PatchGrid(volume.shape[:3], patch_size, stride)
    acc = None
    for first in range(0, len(grid), batch_size):
        batch = np.asarray(grid.extract(volume, slice(first, first + batch_size)), np.float32)
        if transform is not None:
            batch = np.asarray(transform(batch), np.float32)
        for i, box in enumerate(grid.boxes[first:first + len(batch)]):
            # Voxels past the volume's end (a volume smaller than a window) get the fill.
            for axis in range(3):
                inside = int(grid.shape[axis] - box[axis, 0])
                if inside < patch_size[axis]:
                    index = [i, slice(None), slice(None), slice(None)]
                    index[axis + 1] = slice(inside, None)
                    batch[tuple(index)] = fill
        out = np.asarray(predict_fn(batch[..., None]), np.float32)
        if out.ndim == 5 and out.shape[-1] == 1:
            out = out[..., 0]
        if acc is None:  # the channels are known once the network has answered
            acc = grid.accumulator(out.shape[4:], weighting)
        acc.add(out, first)
        advance(first + len(out), len(grid), "windows")
    return acc.result()
