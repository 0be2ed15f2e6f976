"""C1's components for the multitask region: pieces that fit together are kept, far ones are not."""

import numpy as np

from tfpanc.data.boxes import box_center, box_from_mask, centered_box
from tfpanc.inference.components import components_fitting


def _covered(region, mask):
    inside = np.zeros(mask.shape, bool)
    inside[tuple(slice(max(lo, 0), hi) for lo, hi in region.tolist())] = True
    return bool(mask[~inside].sum() == 0)


def test_a_split_pancreas_is_covered_and_a_far_false_positive_is_left_out():
    shape, region = (120, 80, 60), (48, 40, 30)
    pancreas = np.zeros(shape, bool)
    pancreas[30:72, 30:40, 20:30] = True                  # 42 voxels long
    c1 = pancreas.copy()
    c1[52:56] = False                                      # C1 splits it: head 30-52, tail 56-72
    c1[105:112, 70:76, 50:56] = True                       # a false positive far away
    largest = components_fitting(c1, (1, 1, 1))            # nothing else fits: the largest alone
    assert largest.sum() == 22 * 10 * 10
    placed = centered_box(box_center(box_from_mask(largest)), region, shape=shape)
    assert not _covered(placed, pancreas)                  # the old rule cuts the tail off
    kept = components_fitting(c1, region)
    assert not kept[105:].any() and kept[30:72].sum() == c1[30:72].sum()
    placed = centered_box(box_center(box_from_mask(kept)), region, shape=shape)
    assert _covered(placed, pancreas)


def test_ties_and_empty_masks():
    assert components_fitting(np.zeros((5, 5, 5), bool), (2, 2, 2)) is None
    m = np.zeros((20, 3, 3), bool)
    m[0, 0, 0] = m[19, 0, 0] = True                        # one voxel each, 20 apart: the first in raster order
    kept = components_fitting(m, (5, 5, 5))
    assert kept[0, 0, 0] and not kept[19, 0, 0]
