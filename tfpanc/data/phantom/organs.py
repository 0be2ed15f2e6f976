"""Solid organs and vessels: kidneys, spleen, liver, gallbladder, vessel tubes.

Organs are ellipsoids deformed by smooth world-anchored fields, except the
liver, which fills the right upper quadrant: everything still free (visceral
fat) below the right diaphragm dome, above a sloping inferior edge and right
of a plane that lets the left lobe reach across the midline in front. Organs
drawn before it (kidneys with their perirenal fat, gut with its fat plane,
vessels) shape it, as they do in the body.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.phantom.fields import SplineField, Tube, tube_bounds, tube_field
from tfpanc.data.phantom.tissues import Tissue

_FREE = (Tissue.VISCERAL_FAT,)
_VESSEL_OVER = (Tissue.VISCERAL_FAT, Tissue.LUNG, Tissue.MUSCLE, Tissue.FAT_PLANE)


def _local(box, organ):
    """Coordinates of ``box`` in the organ's frame (broadcastable arrays)."""
    x, y, z = box.xyz()
    d = (x - organ.centre[0], y - organ.centre[1], z - organ.centre[2])
    r = organ.rot
    return [r[0, i] * d[0] + r[1, i] * d[1] + r[2, i] * d[2] for i in range(3)]


def _organ_box(scene, organ, margin):
    ext = np.abs(organ.rot) @ organ.radii + margin
    return scene.box(organ.centre - ext, organ.centre + ext)


def paint_tube(scene, tube, tissue, over=_VESSEL_OVER, collar=0.0, scale=(1.0, 1.0, 1.0)):
    """A vessel-like tube of one tissue, with an optional fat collar."""
    samples, radii, _ = tube.sample()
    reach = 1.0 + collar / radii.min()
    lo, hi = tube_bounds(samples, radii * reach * max(scale))
    box = scene.box(lo, hi)
    if box.empty:
        return
    q = tube_field(box, samples, radii, reach=reach, scale=scale)
    scene.paint(box, q < 1, tissue, over=over)
    if collar:
        scene.paint(box, q < reach, Tissue.FAT_PLANE, over=(Tissue.VISCERAL_FAT,))


def paint_vessels(scene, vessels):
    for v in vessels.values():
        if v.detail_only and not scene.detail:
            continue
        paint_tube(scene, v.tube, v.tissue, collar=v.collar, scale=v.scale)


def paint_kidney(scene, kidney, seed):
    box = _organ_box(scene, kidney, 14)
    if box.empty:
        return
    rng = np.random.default_rng(seed)
    lo = kidney.centre - kidney.radii.max() - 14
    hi = kidney.centre + kidney.radii.max() + 14
    u, v, w = _local(box, kidney)
    rx, ry, rz = kidney.radii
    e = np.sqrt((u / rx) ** 2 + (v / ry) ** 2 + (w / rz) ** 2) + SplineField(rng, lo, hi, 14, 0.03).on(box)
    sinus = np.sqrt(((u + 0.85 * rx) / (0.5 * rx)) ** 2 + (v / (0.4 * ry)) ** 2 + (w / (0.45 * rz)) ** 2) < 1
    kidney_mask = (e < 1) & ~sinus
    scene.paint(box, kidney_mask, Tissue.KIDNEY_CORTEX, over=_FREE)
    pyramids = (e < 1 - 7.0 / ry) & (SplineField(rng, lo, hi, 7, 1.0).on(box) > -0.2)
    scene.paint(box, pyramids & kidney_mask, Tissue.KIDNEY_MEDULLA, over=(Tissue.KIDNEY_CORTEX,))
    pelvis = np.sqrt(((u + 0.5 * rx) / (0.35 * rx)) ** 2 + (v / (0.3 * ry)) ** 2 + (w / (0.3 * rz)) ** 2) < 1
    scene.paint(box, pelvis, Tissue.URINE, over=_FREE)
    scene.paint(box, e < 1 + 6.0 / ry, Tissue.FAT_PLANE, over=_FREE)


def paint_spleen(scene, spleen, seed):
    box = _organ_box(scene, spleen, 8)
    if box.empty:
        return
    rng = np.random.default_rng(seed)
    u, v, w = _local(box, spleen)
    rx, ry, rz = spleen.radii
    lo, hi = spleen.centre - spleen.radii.max() - 8, spleen.centre + spleen.radii.max() + 8
    e = np.sqrt((u / rx) ** 2 + (v / ry) ** 2 + (w / rz) ** 2) + SplineField(rng, lo, hi, 18, 0.05).on(box)
    notch = np.sqrt((u / (0.7 * rx)) ** 2 + ((v - 1.7 * ry) / (1.0 * ry)) ** 2 + (w / (0.7 * rz)) ** 2) < 1
    scene.paint(box, (e < 1) & ~notch, Tissue.SPLEEN, over=_FREE)
    scene.paint(box, e < 1 + 3.0 / ry, Tissue.FAT_PLANE, over=_FREE)
    scene.add_texture(box, (Tissue.SPLEEN,), SplineField(rng, lo, hi, 6, 0.03).on(box))


def paint_gallbladder(scene, gb):
    box = _organ_box(scene, gb, 3)
    if box.empty:
        return
    u, v, w = _local(box, gb)
    rx, ry, rz = gb.radii
    e = np.sqrt((u / rx) ** 2 + (v / ry) ** 2 + (w / rz) ** 2) * (1 + 0.2 * w / rz)  # pear: narrow neck on top
    scene.paint(box, e < 1, Tissue.BOWEL_WALL, over=_FREE)
    scene.paint(box, e < 1 - 2.0 / rx, Tissue.BILE, over=(Tissue.BOWEL_WALL,))


def paint_liver(scene, anatomy):
    """The liver: a right lobe hugging the right wall under the dome, a left lobe in front.

    Both lobes are ellipsoids deformed by a smooth field, cut below by a
    sloping inferior edge (low laterally, high next to the spine) and filled
    only into free space, so organs drawn before it shape it.
    """
    liver, body, spine = anatomy.liver, anatomy.body, anatomy.spine
    x0, y0, x1, y1 = body.bounds()
    top = max(body.dome_right, body.dome_left)
    lo = np.array([-130, y0, liver.z_tip - 20])
    hi = np.array([x1, y1, top])
    box = scene.box(lo, hi)
    if box.empty:
        return
    rng = np.random.default_rng(liver.seed)
    x, y, z = box.xyz()
    # smooth on a 30 mm scale: evaluated on every few voxels only (speed)
    stride = tuple(max(1, int(4.0 // sp)) for sp in scene.grid.spacing)
    wobble = SplineField(rng, lo, hi, 30, 0.06).on(box, stride)
    inner = body.a - body.fat[1] - body.muscle[1]
    rx, ry, rz, dy = liver.right
    right = ((x - inner + rx) / rx) ** 2 + ((y - body.yc - dy) / ry) ** 2 + ((z - body.dome_right + rz) / rz) ** 2
    left = ((x - liver.left[3]) / liver.left[0]) ** 2 + ((y - body.yc - liver.left[4]) / liver.left[1]) ** 2 \
        + ((z - body.dome_left + liver.left[2] * 0.6) / liver.left[2]) ** 2
    x_med = spine.x + 15
    f = np.clip((x - x_med) / (liver.x_tip - x_med), 0, 1)
    z_inf = liver.z_medial + (liver.z_tip - liver.z_medial) * (f * f * (3 - 2 * f))
    # higher behind, next to the spine and the right kidney; lower in front
    # (segments 4b/5 reach down in front of the duodenum and gallbladder)
    z_inf = z_inf + 25 * np.clip((spine.y + 25 - y) / 40, 0, 1) * (1 - f) \
        - liver.front_drop * np.clip((y - body.yc) / 60, 0, 1) * np.clip((x - spine.x + 10) / 40, 0, 1)
    inside = (np.minimum(right, left) < 1 + wobble) & (z > z_inf + 60 * wobble)
    # keep a few mm from the pancreas: in the body the duodenum, portal
    # structures and fat lie between them
    samples, radii, _ = anatomy.pancreas.samples()
    margin = liver.pancreas_gap
    near = tube_field(box, samples, radii + margin, reach=1.0, scale=(1.0, 1.0, anatomy.pancreas.z_stretch))
    inside &= ~np.isfinite(near)
    scene.paint(box, inside, Tissue.LIVER, over=_FREE)
    if scene.detail:
        _hepatic_vessels(scene, anatomy, rng)


def _branches(rng, start, direction, radius, length, depth):
    """A random vessel tree as a list of Tubes."""
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    bend = rng.normal(0, 0.25, 3)
    end = start + length * (direction + bend) / np.linalg.norm(direction + bend)
    mid = (start + end) / 2 + rng.normal(0, 4, 3)
    tubes = [Tube(np.array([start, mid, end]), np.array([radius, radius * 0.85, radius * 0.7]))]
    if depth > 0:
        for _ in range(2):
            new_dir = direction + rng.normal(0, 0.6, 3)
            tubes += _branches(rng, end, new_dir, radius * 0.7, length * 0.75, depth - 1)
    return tubes


def _hepatic_vessels(scene, anatomy, rng):
    porta = anatomy.vessels["portal"].tube.points[-1]
    ivc_top = anatomy.vessels["ivc"].tube.points[-1] - [0, 0, 15]
    trees = [(porta, [1, -0.3, 0.5], 5.5, Tissue.PORTAL), (porta, [-1, 0.6, 0.5], 4.5, Tissue.PORTAL),
             (ivc_top, [1, -0.2, -0.5], 5.0, Tissue.VEIN), (ivc_top, [0.2, 1, -0.4], 4.5, Tissue.VEIN),
             (ivc_top, [-0.8, 0.7, -0.2], 4.0, Tissue.VEIN)]
    for start, direction, radius, tissue in trees:
        for tube in _branches(rng, np.asarray(start, float), direction, radius, 45.0, 2):
            paint_tube(scene, tube, tissue, over=(Tissue.LIVER,))


def paint_mesenteric_vessels(scene, anatomy):
    """Small bright branches of the SMA/SMV in the mesenteric fat."""
    rng = np.random.default_rng(anatomy.seed + 3)
    for name in ("smv", "sma"):
        pts = anatomy.vessels[name].tube.points
        for _ in range(4):
            start = pts[1] + (pts[2] - pts[1]) * rng.uniform(0, 1)
            direction = [rng.uniform(-1, 1), rng.uniform(0, 1), rng.uniform(-1, -0.2)]
            for tube in _branches(rng, start, direction, 2.2, 40.0, 2):
                paint_tube(scene, tube, Tissue.PORTAL if name == "smv" else Tissue.ARTERY, over=_FREE)
