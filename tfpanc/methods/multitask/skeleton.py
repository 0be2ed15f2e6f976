"""The skeleton regression target of the multitask 3D FCN.

Paper: "Cascaded MultiTask 3-D Fully Convolutional Networks for Pancreas
Segmentation", Sec. II-B-1: the second task regresses the pancreas
skeleton, "obtained by morphological operation, followed by smoothing with
a Gaussian filter". Our readings of that sentence:

* The morphological operation is 3D thinning of the binary label by
  scikit-image (``skimage.morphology.skeletonize``, Lee et al.'s 3D
  medial-axis thinning on a 3D array), one voxel thick and topology
  preserving, so every connected component keeps a skeleton.
* The Gaussian has a width in millimetres (``sigma_mm``, default 2 mm, our
  choice: the paper gives none), per axis ``sigma_mm / spacing`` voxels, so
  the target is equally wide in the body whatever the slice thickness.
* The smoothed skeleton is divided by its maximum, so the peak is exactly 1
  and the target lies in [0, 1]. The paper gives no scale; a fixed range
  keeps the regression loss (and its weight lambda2) comparable across
  sigmas and case sizes. An empty mask gives all zeros.

Arrays are ``[x, y, z]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# scipy's default: the Gaussian kernel stops at 4 sigma.
_TRUNCATE = 4.0


def _smoothed_skeleton(mask, sigma_voxels):
    """Skeletonize ``mask`` and smooth it (float64, not normalised)."""
    from skimage.morphology import skeletonize

    skeleton = skeletonize(np.asarray(mask, dtype=bool)).astype(np.float64)
    return ndimage.gaussian_filter(skeleton, sigma=sigma_voxels, truncate=_TRUNCATE,
                                   mode="reflect")


def _box_with_margin(mask, margin):
    """Slices of the mask's bounding box grown by ``margin`` voxels per axis."""
    boxes = []
    for axis, grow in enumerate(margin):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        boxes.append(slice(max(int(hits[0]) - grow, 0),
                           min(int(hits[-1]) + 1 + grow, mask.shape[axis])))
    return tuple(boxes)


def skeleton_target(mask, spacing, sigma_mm=2.0):
    """The skeleton regression target of a binary mask.

    Args:
        mask: binary label ``[x, y, z]`` (nonzero = pancreas).
        spacing: voxel size in mm per axis ``[x, y, z]``.
        sigma_mm: width of the Gaussian smoothing, mm (> 0).

    Returns:
        float32 ``[x, y, z]``: the Gaussian-smoothed 3D skeleton scaled to a
        peak of exactly 1; all zeros for an empty mask.

    Raises:
        ValueError: ``sigma_mm <= 0``, a non-3D mask, or a bad spacing.

    >>> mask = np.zeros((20, 9, 9), bool); mask[2:18, 2:7, 2:7] = True
    >>> target = skeleton_target(mask, spacing=(1.0, 1.0, 1.0))
    >>> target.dtype, float(target.max()), bool(target[10, 4, 4] > target[10, 1, 4])
    (dtype('float32'), 1.0, True)
    """
    if not sigma_mm > 0:
        raise ValueError(f"sigma_mm must be > 0, got {sigma_mm!r}")
    mask = np.asarray(mask) != 0
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D [x, y, z], got shape {mask.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(s > 0 for s in spacing):
        raise ValueError(f"spacing needs 3 values > 0 mm, got {spacing}")
    target = np.zeros(mask.shape, np.float32)
    if not mask.any():
        return target

    sigma_voxels = tuple(sigma_mm / s for s in spacing)
    # Thinning and filtering a whole CT volume costs seconds per case, and
    # the pancreas fills a few percent of it. Working on its box is exact:
    # thinning only removes mask voxels (scanned in the same raster order),
    # and a margin one voxel wider than scipy's kernel radius
    # (int(4 sigma + 0.5)) keeps every kernel that touches the skeleton
    # inside the crop, so the crop's edge reflection only mirrors zeros.
    # Where the box meets the volume's edge, the crop's edge is the volume's
    # and reflects the same way.
    margin = tuple(int(_TRUNCATE * s + 0.5) + 1 for s in sigma_voxels)
    box = _box_with_margin(mask, margin)
    smoothed = _smoothed_skeleton(mask[box], sigma_voxels)
    peak = smoothed.max()
    if peak > 0:  # thinning keeps a voxel per component; a guard, not a case
        target[box] = (smoothed / peak).astype(np.float32)
    return target
