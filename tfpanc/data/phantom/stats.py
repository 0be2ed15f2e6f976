"""Intensity and shape statistics that compare the phantom with real data.

The same functions measure the phantom and the real references in
``../shared/realdata`` (NIH Pancreas-CT slices, MSD Task07 labels), so the
numbers printed side by side by ``tools/phantom_stats.py`` and asserted by the
tests mean the same thing. Definitions (all in millimetres, so they do not
depend on the voxel grid):

* ``ring``: the voxels within ``ring_mm`` (default 2.5 mm, about 3 pixels of
  an NIH slice; at least one pixel on coarse grids) outside the pancreas, in
  the axial plane: the "tissue just around it".
* best interval threshold DSC: the largest Dice between the mask and
  ``lo <= HU <= hi`` over every integer interval ``[lo, hi]`` (exhaustive,
  from cumulative histograms), measured on one axial slice at a time.
* principal extents: full extent of the voxel centres along each principal
  axis of their coordinates (PCA), largest first.
* thickness: ``2 * max(EDT)`` (diameter of the largest inscribed ball, which
  sits in the head) and ``2 * p90(EDT)`` over the inside voxels (robust to
  one-voxel spurs and slice spacing; for a round tube of diameter D it is
  0.68 D).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from tfpanc.data.boxes import box_from_mask, box_slices


def best_interval_dsc(image, mask, lo=-300, hi=500):
    """Best Dice of a single HU interval threshold ``lo <= v <= hi``.

    Args:
        image: integer-valued array (HU); values are clipped to [lo, hi].
        mask: boolean array of the same shape.
        lo, hi: the searched HU range.

    Returns:
        ``(dice, lo, hi)`` of the best interval.

    Example:
    >>> img = np.array([0, 10, 10, 20]); m = np.array([0, 1, 1, 0], bool)
    >>> best_interval_dsc(img, m)[0]
    1.0
    """
    mask = np.asarray(mask, bool).ravel()
    n_pos = int(mask.sum())
    if n_pos == 0:
        return 0.0, lo, hi
    v = np.clip(np.rint(np.asarray(image, np.float64).ravel()), lo, hi).astype(np.int64) - lo
    n = hi - lo + 1
    # Cumulative counts make every interval's (all, inside) counts O(1).
    c_all = np.concatenate([[0.0], np.cumsum(np.bincount(v, minlength=n))])
    c_pos = np.concatenate([[0.0], np.cumsum(np.bincount(v[mask], minlength=n))])
    a = np.arange(n)[:, None]
    b = np.arange(n)[None, :]
    valid = b >= a
    inside = np.where(valid, c_pos[np.minimum(b + 1, n)] - c_pos[a], 0.0)
    selected = np.where(valid, c_all[np.minimum(b + 1, n)] - c_all[a], 0.0)
    dice = 2.0 * inside / (selected + n_pos)
    i, j = np.unravel_index(int(np.argmax(dice)), dice.shape)
    return float(dice[i, j]), int(i + lo), int(j + lo)


def ring_mask_2d(mask, spacing_xy, ring_mm=2.5):
    """Pixels within ``ring_mm`` (at least one pixel) outside ``mask`` in one axial slice."""
    mask = np.asarray(mask, bool)
    dist = ndi.distance_transform_edt(~mask, sampling=spacing_xy)
    return (dist > 0) & (dist <= max(ring_mm, 1.01 * max(spacing_xy)))


def largest_slices(label, count=5):
    """Indices of the ``count`` axial slices with the most pancreas."""
    area = np.asarray(label, bool).sum(axis=(0, 1))
    order = np.argsort(-area, kind="stable")[:count]
    return sorted(int(k) for k in order if area[k] > 0)


def slice_intensity_stats(image, mask, spacing_xy, ring_mm=2.5):
    """Per-slice statistics as measured on the real NIH slices.

    Args:
        image: 2D HU slice.
        mask: 2D pancreas mask.
        spacing_xy: in-plane pixel size in mm.

    Returns:
        dict with ``mean``, ``std`` (HU inside), ``ring`` (mean HU of the
        ring) and ``dsc`` (best interval threshold Dice).
    """
    mask = np.asarray(mask, bool)
    image = np.asarray(image)
    ring = ring_mask_2d(mask, spacing_xy, ring_mm)
    return {
        "mean": float(image[mask].mean()),
        "std": float(image[mask].std()),
        "ring": float(image[ring].mean()),
        "dsc": best_interval_dsc(image, mask)[0],
    }


def intensity_stats(image, label, spacing, slices=5, ring_mm=2.5):
    """Volume statistics plus per-slice ones on the largest pancreas slices.

    Args:
        image: ``[x, y, z]`` HU volume.
        label: ``[x, y, z]`` pancreas mask.
        spacing: voxel size in mm.
        slices: how many of the largest axial slices to measure (the NIH
            reference slices are the 5 largest of each case).

    Returns:
        dict: ``mean``, ``std`` over the whole pancreas, ``ring`` (mean over
        the slices), ``dsc_slices`` (list), ``dsc`` (mean of them) and
        ``dsc_volume`` (one interval for the whole volume).

    Example:
    >>> img = np.zeros((8, 8, 3), np.int16); lab = np.zeros_like(img, np.uint8)
    >>> lab[2:5, 2:5, 1] = 1; img[lab > 0] = 100
    >>> round(intensity_stats(img, lab, (1, 1, 1))["mean"])
    100
    """
    label = np.asarray(label, bool)
    per_slice = [slice_intensity_stats(image[:, :, k], label[:, :, k], spacing[:2], ring_mm)
                 for k in largest_slices(label, slices)]
    return {
        "mean": float(image[label].mean()),
        "std": float(image[label].std()),
        "ring": float(np.mean([s["ring"] for s in per_slice])),
        "dsc_slices": [s["dsc"] for s in per_slice],
        "dsc": float(np.mean([s["dsc"] for s in per_slice])),
        "dsc_volume": best_interval_dsc(image, label)[0],
    }


def shape_stats(label, spacing):
    """Size and shape of a pancreas mask, in millimetres.

    Args:
        label: 3D mask ``[x, y, z]`` (z = axial slice index).
        spacing: voxel size in mm.

    Returns:
        dict with ``volume_ml``, ``fraction`` (of all voxels), ``extent_mm``
        (3 principal extents, largest first), ``thickness_max_mm``,
        ``thickness_p90_mm``, ``slices`` (axial slices it spans) and
        ``z_extent_mm``.

    Example:
    >>> lab = np.zeros((40, 20, 20), bool); lab[5:35, 5:15, 5:15] = True
    >>> s = shape_stats(lab, (1.0, 1.0, 2.0))
    >>> s["volume_ml"], s["slices"]
    (6.0, 10)
    """
    label = np.asarray(label, bool)
    spacing = np.asarray(spacing, float)
    count = int(label.sum())
    if count == 0:
        raise ValueError("empty label")
    crop = np.pad(label[box_slices(box_from_mask(label))], 1)
    coords = np.argwhere(crop) * spacing
    if len(coords) > 200_000:  # PCA on a subsample is accurate enough; this is only speed
        coords = coords[np.random.default_rng(0).choice(len(coords), 200_000, replace=False)]
    centred = coords - coords.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ axes.T
    extents = sorted((proj.max(axis=0) - proj.min(axis=0) + spacing.min()).tolist(), reverse=True)
    edt = ndi.distance_transform_edt(crop, sampling=spacing)
    z_slices = int(np.count_nonzero(label.any(axis=(0, 1))))
    return {
        "volume_ml": count * float(np.prod(spacing)) / 1000.0,
        "fraction": count / label.size,
        "extent_mm": [float(e) for e in extents],
        "thickness_max_mm": 2.0 * float(edt.max()),
        "thickness_p90_mm": 2.0 * float(np.percentile(edt[crop], 90)),
        "slices": z_slices,
        "z_extent_mm": z_slices * float(spacing[2]),
    }


# Ranges measured on the real reference files with the functions above
# (tools/phantom_stats.py recomputes and prints them):
# - MSD Task07: the 72 labels of ../shared/realdata/msd_task07_labels other
#   than the 868 mL outlier, (min, max) at each label's own spacing;
# - NIH Pancreas-CT: the 15 slices, (min, max) per slice, 0.8 mm pixels.
# (rounded outwards to 0.1)
REAL_SHAPE_RANGE = {
    "volume_ml": (22.3, 206.8),
    "extent_mm_0": (86.7, 225.8),
    "extent_mm_1": (39.5, 109.9),
    "extent_mm_2": (28.2, 69.8),
    "thickness_max_mm": (13.5, 50.8),
    "thickness_p90_mm": (6.9, 30.3),
    "z_extent_mm": (42.0, 190.0),
}
REAL_NIH_RANGE = {"mean": (88.7, 107.4), "std": (16.1, 30.8), "ring": (54.5, 88.5), "dsc": (0.124, 0.236)}


def outside_real_range(shape):
    """Names of :func:`shape_stats` entries outside :data:`REAL_SHAPE_RANGE` (empty if none)."""
    values = dict(shape)
    for i, e in enumerate(shape["extent_mm"]):
        values[f"extent_mm_{i}"] = e
    return [k for k, (lo, hi) in REAL_SHAPE_RANGE.items() if not lo <= values[k] <= hi]
