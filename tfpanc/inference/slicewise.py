"""Slice-by-slice prediction of a 2D model over a volume, in bounded memory.

The 2D methods see a volume as a sequence of 3-slice stacks along one view.
:func:`predict_slices` feeds them to a model in batches (so a 512x512x400
volume never needs its stacks in memory at once), pads each slice in-plane to
what the network needs (a multiple of its total down-sampling), and
assembles the per-slice probabilities back into a volume.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.patches import move_view_back, slice_stacks
from tfpanc.data.preprocess import round_up
from tfpanc.inference.progress import advance


MAX_SLICE_BATCH = 16


def slices_per_batch(plane_shape, budget_pixels, max_batch=MAX_SLICE_BATCH):
    """Slices per network call so that one batch's activations stay bounded.

    Args:
        plane_shape: ``(H, W)`` of one slice (as the network sees it).
        budget_pixels: most slice pixels per batch; each method sets it for
            its network's widths.
        max_batch: upper limit.

    Example:
    >>> slices_per_batch((512, 512), 2 ** 21), slices_per_batch((64, 64), 2 ** 21)
    (8, 16)
    """
    h, w = (int(n) for n in plane_shape[:2])
    return max(1, min(int(max_batch), int(budget_pixels) // max(1, h * w)))


def pad_plane(batch, multiple, fill):
    """Pads ``(B, H, W, C)`` at the bottom/right to multiples of ``multiple``."""
    h, w = batch.shape[1:3]
    ph, pw = round_up(h, multiple) - h, round_up(w, multiple) - w
    if ph == 0 and pw == 0:
        return batch
    return np.pad(batch, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=fill)


def predict_slices(predict_fn, volume, view="axial", batch_size=8, multiple=1, fill=0.0,
                   indices=None, transform=None):
    """Probability volume of a 2D model applied to every slice of one view.

    Args:
        predict_fn: maps a float32 batch ``(B, H', W', 3)`` to probabilities
            ``(B, H', W')`` or ``(B, H', W', 1)`` (numpy or backend tensor).
        volume: ``[x, y, z]`` volume, normalised or raw with ``transform``.
        view: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        batch_size: slices per call.
        multiple: pad slices in-plane to multiples of this (the network's
            total down-sampling); the padding is cropped off the output.
        fill: value the padding takes (the normalised value of air).
        indices: only these slice indices (others stay 0); default all.
        transform: applied to each batch of raw stacks (e.g. the HU window),
            so a raw int16 volume is never normalised as a whole.

    Returns:
        float32 probabilities with the shape of ``volume``.

    Example:
    >>> vol = np.random.default_rng(0).random((6, 5, 4)).astype("float32")
    >>> prob = predict_slices(lambda b: b[..., 1], vol, batch_size=3, multiple=4)
    >>> bool(np.allclose(prob, vol))
    True
    """
    stacks = slice_stacks(volume, view)  # (N, H, W, 3) strided view, no copy
    n, h, w = stacks.shape[:3]
    out = np.zeros((n, h, w), np.float32)
    order = np.arange(n) if indices is None else np.asarray(sorted(set(int(i) for i in indices)))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = stacks[idx]
        batch = np.asarray(transform(batch) if transform is not None else batch, dtype=np.float32)
        batch = pad_plane(batch, multiple, fill)
        prob = np.asarray(predict_fn(batch), dtype=np.float32)
        if prob.ndim == 4:
            prob = prob[..., 0]
        out[idx] = prob[:, :h, :w]
        advance(start + len(idx), len(order), f"{view} slices")
    # out is (N, H, W) with N the view axis: put it back to [x, y, z].
    return np.ascontiguousarray(move_view_back(np.moveaxis(out, 0, 2), view))
