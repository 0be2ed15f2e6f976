"""Voxel-wise majority voting of several masks (view fusion, box voting)."""

from __future__ import annotations

import numpy as np


def majority_vote(masks, min_votes=2):
    """Voxels marked by at least ``min_votes`` of the masks (OrganSegC2F ``F2``).

    Example:
    >>> a, b = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])
    >>> majority_vote([a, b, a]).tolist()
    [True, True, False, False]
    """
    masks = [np.asarray(m).astype(bool, copy=False) for m in masks]
    votes = np.zeros(masks[0].shape, np.uint8)
    for m in masks:
        np.add(votes, m, out=votes, casting="unsafe")
    return votes >= min_votes
