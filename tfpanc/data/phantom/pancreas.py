"""The pancreas shape model: a lobulated tube from the duodenum to the spleen.

The gland is a tube along a smooth centre line with the anatomy's landmarks
as control points: the uncinate process behind the superior mesenteric vein
(SMV), the head in the duodenal C-loop right of the SMV, the neck in front of
the SMV/portal confluence, the body arching over the superior mesenteric
artery (SMA) and aorta, and the tail rising backwards to the splenic hilum.
The radius varies along it (head thickest, neck thinnest), the cross-section
is taller than it is deep, and a smooth random field makes the outline
lobulated. Each case rotates, scales, bends and thickens the whole path at
random, so position, orientation, size and shape all vary.

Inside, the texture has lobules (a band-limited field), fatty clefts near the
surface and, in some cases, a visible main duct: the gland is not flat, so a
single HU interval cannot pick it out.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfpanc.data.phantom.fields import SplineField, Tube, push_apart, rotation, tube_bounds, tube_field
from tfpanc.data.phantom.tissues import Tissue

# Control points: uncinate, lower head, upper head, neck, body (2), tail.
NAMES = ("uncinate", "head_low", "head_up", "neck", "body", "body_left", "tail")
HEAD, NECK, TAIL = 2, 3, 6


@dataclasses.dataclass
class PancreasShape:
    """One case's pancreas: centre line, radii and surface/texture settings.

    Attributes:
        tube: control points (uncinate ... tail) and in-plane radii (mm).
        z_stretch: cross-section height / depth.
        lobulation: amplitude of the surface bumps (fraction of the radius).
        collar: mm of fat kept between the gland and neighbouring organs.
        duct: whether the main duct shows.
        texture: lobular texture amplitude (units of 100 HU).
        clefts: depth of the fatty clefts near the surface (units of 100 HU).
        stranding: how much of the fat around the gland is soft tissue
            (small vessels, nodes, collapsed bowel): the threshold of a
            random field, higher = less fat.
        stranding_hu: HU added to fat where it is soft tissue.
        seed: seed of the world-anchored surface and texture fields.
    """

    tube: Tube
    z_stretch: float
    lobulation: float
    collar: float
    duct: bool
    seed: int
    texture: float = 0.07
    clefts: float = 0.6
    stranding: float = 0.0
    stranding_hu: float = 170.0

    def samples(self):
        return self.tube.sample(1.0)


def draw_pancreas(rng, smv, sma, hilum, kidney_front, obstacles):
    """Random pancreas around the vessels.

    Args:
        rng: numpy Generator.
        smv: ``(x, y, z, r)`` of the SMV at the confluence (below the neck).
        sma: ``(x, y, z, r)`` of the SMA where the body crosses it, r incl. its fat collar.
        hilum: splenic hilum ``(x, y, z)`` the tail points to.
        kidney_front: point in front of the left kidney the body-tail passes.
        obstacles: ``(m, 4)`` spheres (kidneys, aorta...) the gland must clear.
    """
    sx, sy, sz, sr = smv
    thick = rng.uniform(0.85, 1.25)
    radii = np.array([8.5, 13.0, 14.0, 8.0, 9.5, 10.0, 9.0]) * thick * rng.uniform(0.9, 1.1, 7)
    pts = np.array([
        [sx - rng.uniform(0, 6), sy - sr - radii[0] + rng.uniform(-2, 3), sz - rng.uniform(38, 48)],
        [sx + sr + radii[1] + rng.uniform(0, 6), sy + rng.uniform(-8, 0), sz - rng.uniform(24, 32)],
        [sx + sr + radii[2] + rng.uniform(-2, 4), sy + rng.uniform(-2, 6), sz - rng.uniform(6, 14)],
        [sx + rng.uniform(-4, 2), sy + sr + radii[3] + rng.uniform(0.5, 2.5), sz + rng.uniform(0, 8)],
        [sma[0] - rng.uniform(8, 18), sma[1] + sma[3] + radii[4] + rng.uniform(1, 4), sz + rng.uniform(3, 12)],
        [0, 0, 0], [0, 0, 0]])
    tail = np.asarray(hilum, float)
    pts[6] = tail + (pts[4] - tail) * rng.uniform(0.0, 0.15)
    pts[5] = np.asarray(kidney_front, float) + [rng.uniform(-5, 10), radii[5] + rng.uniform(1, 8), rng.uniform(-6, 4)]
    # Whole-gland variation about the neck: rotation, length scale, bending.
    rot = rotation(rng.uniform(-10, 10), rng.uniform(-8, 8), rng.uniform(-6, 6))
    length = rng.uniform(0.85, 1.12)
    pts[4:] = pts[NECK] + (pts[4:] - pts[NECK]) @ rot.T * length
    pts[4:] += rng.uniform(-4, 4, (3, 3))
    pts = push_apart(pts, radii * np.array([1, 1, 1, 1, 1.15, 1.15, 1.15]), obstacles, gap=3.0, fixed=(NECK,))
    return PancreasShape(tube=Tube(pts, radii), z_stretch=float(rng.uniform(1.05, 1.35)),
                         lobulation=float(rng.uniform(0.1, 0.2)), collar=float(rng.uniform(0.0, 1.0)),
                         duct=bool(rng.random() < 0.5), seed=int(rng.integers(2 ** 31)),
                         texture=float(rng.uniform(0.09, 0.13)), clefts=float(rng.uniform(0.2, 0.7)),
                         stranding=float(rng.uniform(0.7, 1.3)), stranding_hu=float(rng.uniform(160, 185)))


def paint_pancreas(scene, shape):
    """Paints the gland over visceral fat, keeps a fat collar, adds its texture."""
    samples, radii, t = shape.samples()
    stretch = (1.0, 1.0, shape.z_stretch)
    reach = 1.6
    lo, hi = tube_bounds(samples, radii * reach * shape.z_stretch)
    box = scene.box(lo, hi)
    if box.empty:
        return
    rng = np.random.default_rng(shape.seed)
    q, idx = tube_field(box, samples, radii, reach=reach, scale=stretch, with_index=True)
    # Lobulated outline: bumps of ~6 mm plus finer ~3 mm ones.
    q += SplineField(rng, lo, hi, 6.0, shape.lobulation).on(box)
    q += SplineField(rng, lo, hi, 3.0, 0.4 * shape.lobulation).on(box)
    gland = q < 1
    scene.paint(box, gland, Tissue.PANCREAS, over=(Tissue.VISCERAL_FAT,))
    r_near = np.where(idx >= 0, radii[np.maximum(idx, 0)], 10.0).astype(np.float32)
    collar = (q < 1 + shape.collar / r_near) & ~gland
    scene.paint(box, collar, Tissue.FAT_PLANE, over=(Tissue.VISCERAL_FAT,))
    if not scene.detail:
        return
    # Texture (units of 100 HU): lobules, thin clefts of fat near the surface, the duct.
    lobules = SplineField(rng, lo, hi, 3.0, shape.texture).on(box)
    cleft_field = SplineField(rng, lo, hi, 5.0, 1.0).on(box)
    depth = np.clip((q - 0.7) / 0.3, 0, 1)  # 0 in the core, 1 at the surface
    clefts = -shape.clefts * np.clip(1 - np.abs(cleft_field) / 0.12, 0, 1) * depth ** 2
    texture = lobules + clefts
    if shape.duct:
        duct_r = 1.0 + 0.8 * (1 - t[np.maximum(idx, 0)])  # wider towards the head (t=0)
        texture -= 0.55 * np.clip(1.5 - q * r_near / duct_r, 0, 1)
    scene.add_texture(box, (Tissue.PANCREAS,), texture)
    _paint_surroundings(scene, shape, samples, radii, rng)


def _paint_surroundings(scene, shape, samples, radii, rng):
    """Soft-tissue stranding in the fat around the gland.

    Thin patients (the NIH donors) have little fat around the pancreas: the
    median HU within 1-12 mm of the real masks is 76-91, i.e. small
    vessels, lymph nodes and collapsed bowel. Blobs of a band-limited field,
    fading out 20-35 mm from the gland, turn that much of the fat into soft
    tissue (texture of +170 HU on fat, ~70 HU).
    """
    reach = 3.5
    lo, hi = tube_bounds(samples, radii * reach * shape.z_stretch)
    box = scene.box(lo, hi)
    if box.empty:
        return
    q = tube_field(box, samples, radii, reach=reach, scale=(1.0, 1.0, shape.z_stretch))
    weight = np.clip((reach - q) / 1.5, 0, 1)
    blobs = SplineField(rng, lo, hi, 4.0, 1.0).on(box)
    mix = np.clip((blobs + shape.stranding) / 0.3, 0, 1) * weight
    scene.add_texture(box, (Tissue.VISCERAL_FAT, Tissue.FAT_PLANE), shape.stranding_hu / 100 * mix)


def splenic_vein(shape, radius):
    """Centre line of the splenic vein: along the gland's back, neck to tail."""
    samples, radii, t = shape.tube.sample(2.0)
    t_neck = NECK / (len(NAMES) - 1)
    keep = t >= t_neck
    s, r = samples[keep], radii[keep]
    tangent = np.gradient(s, axis=0)
    back = np.cross(tangent, [0.0, 0.0, 1.0])
    back /= np.linalg.norm(back, axis=1, keepdims=True) + 1e-9
    back *= np.sign(-back[:, 1:2] + 1e-9)  # the posterior side
    path = s + back * (r[:, None] * 0.85 + radius * 0.4) - [0, 0, 2.0]
    return path[::3]
