"""One phantom case: anatomy -> tissue map -> image and pancreas label.

The anatomy occupies a fixed physical field of view (:data:`FOV_LO` to
:data:`FOV_HI`, 400 x 400 mm in-plane and 300 mm head-to-foot): ``shape``
only decides the sampling, so a smaller shape gives coarser voxels of the
same patient, never a smaller body. Slices thicker than 1.6 mm are drawn as
several thinner sub-slices and averaged (the slice profile), so thick-slice
cases carry real through-plane partial volume; the label there is the
pancreas covering at least half of the slice.

CT noise is 12-16 HU per voxel at the default 0.78 x 0.78 x 1.25 mm voxel
(the NIH slices measure 11-12 HU local std in flat regions, neighbour
correlation 0.1-0.3; the phantom 11-12 HU and 0.25), scaled by (voxel
volume)^-0.15 on other grids.

Everything random about a case comes from ``numpy.random.default_rng([seed,
case_index])`` (anatomy: independent of ``shape`` and ``modality``) and
``default_rng([seed, case_index, 1 + modality])`` (noise), so a case never
depends on how many cases are made alongside it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import numpy as np

from tfpanc.data.io import Geometry
from tfpanc.data.phantom import body as body_mod
from tfpanc.data.phantom import gut, organs, spine_ribs
from tfpanc.data.phantom.appearance import render_ct, render_mri
from tfpanc.data.phantom.fields import Grid
from tfpanc.data.phantom.layout import draw_anatomy
from tfpanc.data.phantom.pancreas import paint_pancreas
from tfpanc.data.phantom.scene import Scene
from tfpanc.data.phantom.tissues import Tissue, value_table

FOV_LO = (-200.0, -200.0, -150.0)
FOV_HI = (200.0, 200.0, 150.0)
MODALITIES = ("ct", "mri")
DEFAULT_SHAPE = {"ct": (512, 512, 240), "mri": (256, 256, 40)}
MAX_SUBSLICE_MM = 1.6
REF_VOXEL_MM3 = 400 / 512 * 400 / 512 * 300 / 240  # the default CT voxel


@dataclasses.dataclass
class PhantomCase:
    """A synthetic case in tfpanc's canonical ``[x, y, z]`` RAS+ layout.

    Attributes:
        image: int16; HU for CT, arbitrary units (0..~1500) for MRI.
        label: uint8, 1 = pancreas.
        spacing: voxel size in mm.
        origin: world position (mm) of voxel ``(0, 0, 0)``.
        modality: ``"ct"`` or ``"mri"``.
        seed, case_index: what made it.
        anatomy: the drawn :class:`~tfpanc.data.phantom.layout.Anatomy`.
    """

    image: np.ndarray
    label: np.ndarray
    spacing: tuple
    origin: tuple
    modality: str
    seed: int
    case_index: int
    anatomy: object = None

    @property
    def affine(self):
        a = np.eye(4)
        a[:3, :3] = np.diag(self.spacing)
        a[:3, 3] = self.origin
        return a

    def geometry(self):
        """The :class:`tfpanc.data.io.Geometry` to save the arrays with."""
        return Geometry.from_spacing(self.image.shape, self.spacing, self.origin)


def draw_scene(scene, anatomy):
    """Paints the anatomy, most constrained structures first (see :mod:`.scene`)."""
    body, spine, z = anatomy.body, anatomy.spine, anatomy.z_level
    body_mod.paint_body(scene, body)
    body_mod.paint_thorax(scene, body)
    body_mod.paint_back_muscles(scene, body, spine, z)
    spine_ribs.paint_spine(scene, spine, z)
    spine_ribs.paint_ribs(scene, anatomy.ribs)
    organs.paint_vessels(scene, anatomy.vessels)
    paint_pancreas(scene, anatomy.pancreas)
    for i, kidney in enumerate(anatomy.kidneys):
        organs.paint_kidney(scene, kidney, anatomy.seed + 10 + i)
    organs.paint_spleen(scene, anatomy.spleen, anatomy.seed + 20)
    organs.paint_gallbladder(scene, anatomy.gallbladder)
    gut.paint_gut(scene, anatomy)
    organs.paint_liver(scene, anatomy)
    if anatomy.small_bowel:
        gut.paint_small_bowel(scene, anatomy)
    if scene.detail:
        organs.paint_mesenteric_vessels(scene, anatomy)


def plan_anatomy(seed, case_index):
    """The case's anatomy, including the small-bowel loops laid on the planning grid.

    It depends only on ``(seed, case_index)``; the last few are kept, since
    the same case is often made at several shapes or in both modalities.
    """
    return copy.deepcopy(_plan_anatomy(int(seed), int(case_index)))


@functools.lru_cache(maxsize=4)
def _plan_anatomy(seed, case_index):
    rng = np.random.default_rng([int(seed), int(case_index)])
    anatomy = draw_anatomy(rng, (FOV_LO[2], FOV_HI[2]))
    plan = Scene(gut.plan_grid(FOV_LO, FOV_HI), detail=False)
    draw_scene(plan, anatomy)
    end = anatomy.gut.points[-1]
    seeds = gut.seeds_around(rng, anatomy.pancreas.tube)
    anatomy.small_bowel = gut.walk_small_bowel(rng, plan, end, [-0.3, 1.0, -0.3], anatomy.z_level + 45, seeds=seeds)
    return anatomy


MIN_EDGE = 32  # voxels per axis: below it the organs no longer fit the field of view


def validate(shape, modality):
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < MIN_EDGE:
        raise ValueError(f"shape must be 3 integers >= {MIN_EDGE}, got {shape}")
    return shape


def make_case(shape=(512, 512, 240), seed=0, case_index=0, modality="ct"):
    """Draws one synthetic abdominal CT (or T1 MRI) with its pancreas label.

    Args:
        shape: output voxels ``(x, y, z)`` over the fixed field of view.
        seed: dataset seed.
        case_index: which case of the dataset.
        modality: ``"ct"`` or ``"mri"``.

    Returns:
        :class:`PhantomCase`.

    Example:
    >>> case = make_case((96, 96, 48), seed=0, case_index=0)
    >>> case.image.dtype, int(case.label.max()), case.spacing[2]
    (dtype('int16'), 1, 6.25)
    """
    shape = validate(shape, modality)
    anatomy = plan_anatomy(seed, case_index)
    spacing = tuple((np.asarray(FOV_HI) - np.asarray(FOV_LO)) / np.asarray(shape))
    k = max(1, math.ceil(spacing[2] / MAX_SUBSLICE_MM - 1e-9))
    grid = Grid.covering(FOV_LO, FOV_HI, (shape[0], shape[1], shape[2] * k))
    scene = Scene(grid)
    draw_scene(scene, anatomy)
    pancreas = scene.tissue == Tissue.PANCREAS
    if k > 1:
        label = pancreas.reshape(shape[0], shape[1], shape[2], k).mean(axis=3) >= 0.5
    else:
        label = pancreas
    noise_rng = np.random.default_rng([int(seed), int(case_index), 1 + MODALITIES.index(modality)])
    lut = value_table(noise_rng, modality)
    x0, y0, x1, y1 = anatomy.body.bounds(margin=4 * max(spacing[:2]))
    crop = Grid.covering(FOV_LO, FOV_HI, shape).box([x0, anatomy.body.y_back - 50, 0], [x1, y1, 0]).slices[:2]
    if modality == "ct":
        # 12-16 HU at 0.78 x 0.78 x 1.25 mm; larger voxels average more quanta
        # (std ~ volume^-1/2 at equal dose; a much weaker -0.05 power here, as thick-slice
        # protocols use sharper kernels / lower dose)
        noise = noise_rng.uniform(12, 16) * (np.prod(spacing) / REF_VOXEL_MM3) ** -0.05
        image = render_ct(scene, lut, k, spacing, noise_rng, noise, crop)
    else:
        lut_ct = value_table(np.random.default_rng([int(seed), int(case_index), 1]), "ct")
        image = render_mri(scene, lut, k, spacing, noise_rng, noise_rng.uniform(15, 25), (FOV_LO, FOV_HI), lut_ct)
    origin = tuple(float(lo + s / 2) for lo, s in zip(FOV_LO, spacing))
    return PhantomCase(image=image, label=label.astype(np.uint8), spacing=tuple(float(s) for s in spacing),
                       origin=origin, modality=modality, seed=int(seed), case_index=int(case_index),
                       anatomy=anatomy)
