"""The ``lean`` step: the intra-abdominal fat shrinks by a per-sample distance.

The phantom's pancreas lies in fat: 64 % of the 1.5-5 mm ring around it
is visceral fat or fat plane (bank ``synthetic_bank_varied``, every third
anatomy; ``tools/pancreas_surroundings.py``), as in the two
TotalSegmentator scans (70 and 75 % of that ring below -30 HU). The NIH
patients are lean: 5-25 % of their ring is fat, the rest duodenum, bowel,
vessels and stomach that touch the gland. Real abdomens span both, so
this step draws per sample how far the organs reach into the fat around
them, from 0 (the phantom) to :data:`LEAN_MAX_MM` (below the leanest NIH
slice). Measured, it does not help: the U-Net on shapes fell from 34 to
8 % DSC on the NIH slices with it (README, sim-to-real); the step stays
for that ablation, off in every config.

The anatomy stays put: every fat voxel within that distance of an organ
takes the nearest organ's tissue (:data:`GROWERS`), so organs and bowel
grow into the fat between them and the pancreas, and the pancreas itself,
its label, never changes. The nearest organ and its distance are computed
once per bank anatomy with scipy's exact Euclidean distance transform and
stored beside the bank (:meth:`~tfpanc.data.synthetic.bank.AnatomyBank.fat_fill_arrays`),
so a sample costs two more array lookups.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from tfpanc.data.phantom.tissues import Tissue

#: The fat that shrinks; subcutaneous fat stays (a lean abdomen keeps a skin line).
FAT = (Tissue.VISCERAL_FAT, Tissue.FAT_PLANE)
#: What grows into it: parenchyma, bowel and stomach, veins, muscle. Arteries keep their fat
#: collar (the SMA's is there in lean patients too); the pancreas is the label and never grows.
GROWERS = (Tissue.MUSCLE, Tissue.LIVER, Tissue.SPLEEN, Tissue.KIDNEY_CORTEX, Tissue.VEIN, Tissue.PORTAL,
           Tissue.BOWEL_WALL, Tissue.STOMACH_WALL, Tissue.CHYME, Tissue.ADRENAL)
DISTANCE_UNIT_MM = 0.1
NO_FILL = 255            # in the distance array: not fat, or farther than 25.4 mm from any grower
LEAN_MAX_MM = 8.0


def fat_fill(tissue, spacing):
    """Per voxel, the tissue a lean abdomen gives it and from what distance on.

    Args:
        tissue: uint8 tissue ids ``[x, y, z]``.
        spacing: voxel size in mm.

    Returns:
        ``(fill_tissue uint8, fill_distance uint8)``: the nearest grower's
        tissue, and the distance to it in :data:`DISTANCE_UNIT_MM` units
        (:data:`NO_FILL` outside :data:`FAT` and beyond 25.4 mm). A sample
        that reaches ``d`` mm replaces the voxels with ``fill_distance <= d /
        DISTANCE_UNIT_MM``.

    Example:
    >>> t = np.full((9, 1, 1), Tissue.VISCERAL_FAT, np.uint8); t[0] = Tissue.LIVER
    >>> fill, distance = fat_fill(t, (1.0, 1.0, 1.0))
    >>> int(fill[3, 0, 0]) == Tissue.LIVER, int(distance[3, 0, 0]), int(distance[0, 0, 0])
    (True, 30, 255)
    """
    growers = np.isin(tissue, GROWERS)
    if not growers.any():
        return np.asarray(tissue, np.uint8).copy(), np.full(tissue.shape, NO_FILL, np.uint8)
    distance, nearest = ndi.distance_transform_edt(~growers, sampling=spacing, return_indices=True)
    fill = np.asarray(tissue)[tuple(nearest)].astype(np.uint8)
    del nearest
    code = np.minimum(np.rint(distance / DISTANCE_UNIT_MM), NO_FILL).astype(np.uint8)
    code[~np.isin(tissue, FAT)] = NO_FILL
    return fill, code


def draw_reach(rng):
    """One sample's reach in mm, uniform in [0, :data:`LEAN_MAX_MM`], as a ``fill_distance`` threshold."""
    return int(rng.uniform(0.0, LEAN_MAX_MM) / DISTANCE_UNIT_MM)


def lean_tissue(tissue_values, texture_values, fill_tissue, fill_distance, reach):
    """The sampled tissue ids and texture with the fat within ``reach`` replaced.

    The replaced voxels get no texture: the fat's stranding is not the
    organ's, and the organs that grow carry none in the bank (their texture
    layer is 0; only the pancreas, the fat and the spleen's faint mottling
    have one).
    """
    grow = fill_distance <= reach
    return np.where(grow, fill_tissue, tissue_values), np.where(grow, 0, texture_values)
