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
