"""Connected-component filtering of segmentation masks (any dimension)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tfpanc.data.boxes import box_from_mask


def keep_large_components(mask, ratio=0.5, volume_size=None):
    """Keeps the 6-connected components of at least ``ratio`` times the largest.

    OrganSegC2F's ``post_processing(F, F, ratio)``: an empty mask, or one
    covering half the volume or more, is returned unchanged.

    Args:
        mask: the mask (any dimension).
        ratio: components smaller than ``ratio`` times the largest go.
        volume_size: voxel count of the volume for the half-volume rule when
            ``mask`` is a crop of it (default ``mask.size``).

    Example:
    >>> m = np.zeros((20, 3, 3), bool); m[0:4] = True; m[6:7] = True
    >>> int(keep_large_components(m).sum()) // 9
    4
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    total = int(np.count_nonzero(mask))
    if total == 0 or total >= (mask.size if volume_size is None else volume_size) / 2:
        return mask.copy()
    region = tuple(slice(int(a), int(b)) for a, b in box_from_mask(mask))
    labels, count = ndimage.label(mask[region])  # default structure: 6-connectivity in 3D
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = sizes >= ratio * sizes.max()
    keep[0] = False
    out = np.zeros(mask.shape, bool)  # np.zeros maps pages lazily, zeros_like writes them all
    out[region] = keep[labels]
    return out


def components_fitting(mask, size):
    """The largest 26-connected component, plus each next largest whose box keeps the union's box within ``size``.

    The multitask method's C1 mask, before the C2 region is centred on its
    box: a C1 that splits the pancreas into pieces (head and tail apart)
    would have the region centred on one piece only, and the region then
    cut off the other (the 4 phantom folds' C1s: 3 of 16 held-out cases cut,
    against 1 of 16 with the pieces that fit kept,
    ``tools/multitask_region_coverage.py``). Components that do not fit with those
    already kept are left out, so a far false positive cannot pull the
    region away. Sizes tie in raster order of the components' first voxels.

    Args:
        mask: boolean mask (any dimension).
        size: the largest box allowed per axis, in voxels.

    Returns:
        boolean mask, or None when ``mask`` is empty.

    Example:
    >>> m = np.zeros((30, 4, 4), bool); m[0:6] = True; m[10:13] = True; m[27:30] = True
    >>> [int(v) for v in np.flatnonzero(components_fitting(m, (14, 4, 4)).any(axis=(1, 2)))[[0, -1]]]
    [0, 12]
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    labels, count = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    boxes = ndimage.find_objects(labels)
    limit = np.asarray(size, np.int64)
    keep = np.zeros(count + 1, bool)
    lo = hi = None
    for j in np.argsort(-sizes, kind="stable"):
        b_lo = np.array([s.start for s in boxes[j]])
        b_hi = np.array([s.stop for s in boxes[j]])
        if lo is not None:
            n_lo, n_hi = np.minimum(lo, b_lo), np.maximum(hi, b_hi)
            if np.any(n_hi - n_lo > limit):
                continue
            b_lo, b_hi = n_lo, n_hi
        lo, hi = b_lo, b_hi
        keep[j + 1] = True
    return keep[labels]
