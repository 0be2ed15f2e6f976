"""Pancreas shape variety for the bank: procedural variation and real shapes (``--shape_dir``).

Procedural variation (:func:`vary_gland`, the ``shapes`` step): the
phantom's gland is one family of lobulated tubes; the 73 real MSD labels
are thicker or thinner, with heads and tails of varying proportions. The
gland's signed distance map is thresholded at a smooth random offset (std
0.6-2 mm, correlated over 15 mm, plus a head-to-tail gradient of up to
+-2.5 mm and an overall bias of -1 to +2.5 mm: the real glands reach far
thicker than the phantom's, 30 mm against 13.5 mm at the 90th percentile of
thickness, and only a little thinner), which thickens and thins it along its
length and changes the head/tail balance; growth takes only tissue that
can give way (below). Curvature is varied by the generator's elastic
deformation, not here. ``tools/synthetic_shape_stats.py`` compares the
result with the real labels.

Real shapes:

A folder of NIfTI label maps (a user's own manual labels, or the 73 MSD
Task07 labels in ``../shared/realdata``; nothing real is part of tfpanc)
supplies pancreas shapes at run time: for each bank anatomy one file is
drawn, resampled to the bank grid (linear interpolation of the mask,
>= 0.5), and painted in place of the phantom's own pancreas.

Placement, a documented reading: the real shape keeps its physical size;
its centroid goes to the phantom pancreas's centroid, and of the 8 axis
flips the one overlapping the phantom gland most is used. That flip search
is needed because label files often carry no usable orientation (the MSD
copies in ``../shared/realdata`` were stored with a bare diagonal affine),
and it puts head and tail where the phantom's vessels expect them. The
gland is painted only over soft tissue that can give way (fat, bowel,
collapsed small bowel); vessels, kidneys, liver, spleen and bone keep their
place, so a real shape that reaches into them is cut there, and the label
is whatever pancreas tissue remains. The old gland becomes visceral fat.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from tfpanc.data.io import is_nifti, load_volume
from tfpanc.data.phantom.tissues import Tissue, mask_table
from tfpanc.errors import InputError
from tfpanc.data.synthetic.slice_generator import smooth_field

YIELDING = (Tissue.VISCERAL_FAT, Tissue.FAT_PLANE, Tissue.PANCREAS, Tissue.CHYME, Tissue.BOWEL_WALL,
            Tissue.FLUID, Tissue.STOOL)
MIN_VOXELS = 100   # a label with fewer voxels is not a pancreas shape


class ShapeLibrary:
    """The label maps of a folder, read one at a time when a shape is drawn.

    Args:
        shape_dir: folder of ``.nii``/``.nii.gz`` label maps.
        label_value: the pancreas's value in multi-organ maps; 0 (default):
            every nonzero voxel is pancreas, for pancreas-only maps (MSD's 1
            = pancreas, 2 = tumour are merged, as the papers score the whole
            organ). A map holding more than two nonzero values with 0 here
            is refused (it is a multi-organ map: name the pancreas).

    Example:
    >>> library = ShapeLibrary("../shared/realdata/msd_task07_labels")   # doctest: +SKIP
    >>> len(library.files) > 0                                            # doctest: +SKIP
    True
    """

    def __init__(self, shape_dir, label_value=0):
        self.root = Path(shape_dir)
        self.label_value = int(label_value)
        if not self.root.is_dir():
            raise InputError("--shape_dir", f"{self.root} is not a folder")
        self.files = sorted(p for p in self.root.iterdir() if p.is_file() and is_nifti(p))
        if not self.files:
            raise InputError("--shape_dir", f"{self.root} holds no .nii or .nii.gz label maps")

    def shape_mask(self, path, spacing):
        """The file's pancreas mask cropped to its box and resampled to ``spacing`` (mm)."""
        volume = load_volume(path)
        values = np.asarray(volume.array)
        if self.label_value:
            mask = values == self.label_value
        else:
            present = np.unique(values[values != 0])
            if len(present) > 2:
                raise InputError(path, f"holds {len(present)} label values (a multi-organ map?); give the "
                                 "pancreas's value with --shape_label")
            mask = values != 0
        if mask.sum() < MIN_VOXELS:
            raise InputError(path, f"holds {int(mask.sum())} labelled voxels; a pancreas shape needs "
                             f"at least {MIN_VOXELS}")
        box = ndi.find_objects(mask.astype(np.uint8))[0]
        crop = np.pad(mask[box], 1).astype(np.float32)
        zoom = np.asarray(volume.spacing, float) / np.asarray(spacing, float)
        return ndi.zoom(crop, zoom, order=1) >= 0.5

    def replace_pancreas(self, scene, rng):
        """Paints a drawn shape in place of the scene's pancreas; returns its description."""
        path = self.files[int(rng.integers(len(self.files)))]
        shape = self.shape_mask(path, scene.grid.spacing)
        old = scene.tissue == Tissue.PANCREAS
        centre = np.round(ndi.center_of_mass(old)).astype(int)
        flips, placed = best_flip(shape, old, centre)
        scene.tissue[old] = Tissue.VISCERAL_FAT
        allowed = mask_table(YIELDING)[scene.tissue]
        scene.tissue[placed & allowed] = Tissue.PANCREAS
        return f"{path.name} flipped {''.join('xyz'[a] for a in flips) or 'none'}"


def paste_centred(shape, target_shape, centre):
    """A ``target_shape`` bool array with ``shape`` centred (by its centroid) on ``centre``."""
    own = np.round(ndi.center_of_mass(shape)).astype(int)
    start = np.asarray(centre) - own
    out = np.zeros(target_shape, bool)
    src, dst = [], []
    for s, n, o in zip(shape.shape, target_shape, start):
        a, b = max(0, o), min(n, o + s)
        if a >= b:
            return out
        dst.append(slice(a, b))
        src.append(slice(a - o, b - o))
    out[tuple(dst)] = shape[tuple(src)]
    return out


def best_flip(shape, target, centre):
    """``(flipped axes, placed mask)`` of the flip of ``shape`` that overlaps ``target`` most."""
    best = None
    for r in range(4):
        for axes in itertools.combinations(range(3), r):
            flipped = np.flip(shape, axes) if axes else shape
            placed = paste_centred(flipped, target.shape, centre)
            overlap = int(np.count_nonzero(placed & target))
            if best is None or overlap > best[0]:
                best = (overlap, axes, placed)
    return best[1], best[2]


def vary_gland(scene, rng, max_offset_mm=2.0, correlation_mm=15.0, gradient_mm=2.5, bias_mm=(-1.0, 2.5)):
    """Grows and shrinks the scene's pancreas by a smooth random signed-distance offset (in place)."""
    gland = scene.tissue == Tissue.PANCREAS
    if not gland.any():
        return
    spacing = np.asarray(scene.grid.spacing, float)
    reach = np.ceil((3 * max_offset_mm + gradient_mm + max(bias_mm)) / spacing).astype(int) + 1
    box = ndi.find_objects(gland.astype(np.uint8))[0]
    box = tuple(slice(max(0, b.start - r), min(n, b.stop + r)) for b, r, n in zip(box, reach, gland.shape))
    sub = gland[box]
    signed = ndi.distance_transform_edt(~sub, sampling=spacing) - ndi.distance_transform_edt(sub, sampling=spacing)
    offset = smooth_field(rng, sub.shape, correlation_mm / float(spacing.mean())) * rng.uniform(0.3, 1.0) * max_offset_mm
    coords = np.argwhere(sub) * spacing
    axis = np.linalg.svd(coords - coords.mean(axis=0), full_matrices=False)[2][0]
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(sub.shape, spacing)], indexing="ij"), axis=-1)
    along = (grid - coords.mean(axis=0)) @ axis
    along /= max(float(np.abs(along[sub]).max()), 1e-6)
    offset += rng.uniform(-gradient_mm, gradient_mm) * along + rng.uniform(*bias_mm)
    varied = signed < offset
    region = scene.tissue[box]
    region[sub & ~varied] = Tissue.VISCERAL_FAT
    region[varied & mask_table(YIELDING)[region]] = Tissue.PANCREAS
