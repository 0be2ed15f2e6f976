"""Body outline and wall: skin, subcutaneous fat, muscles, thorax, table.

The trunk's cross-section is a superellipse (flatter behind than in front)
with a few random harmonics, scaled along z by a smooth factor; the layers
under the skin are depths below that outline, with thicknesses that vary
with the angle around the body (thick fat at the flanks and belly, rectus
sheath in front, a thin wall behind where the paraspinal muscles are drawn
separately). Above the diaphragm domes the cavity is lung.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfpanc.data.phantom.fields import ellipsoid_field
from tfpanc.data.phantom.tissues import Tissue

_Z_KNOTS = np.arange(-210.0, 211.0, 60.0)
_RECESS = 70.0  # how far the costophrenic recesses reach below the dome tops (mm)


@dataclasses.dataclass
class Body:
    """One patient's trunk. Lengths in mm, world RAS (+x right, +y anterior)."""

    yc: float            # centre of the outline (y)
    a: float             # half width
    b_ant: float         # half depth in front of yc
    b_post: float        # half depth behind yc
    n_ant: float         # superellipse exponents
    n_post: float
    harmonics: np.ndarray  # (k, amplitude, phase) rows
    z_scale: np.ndarray  # outline scale at _Z_KNOTS
    fat: tuple           # subcutaneous fat thickness front, side, back
    fat_z: np.ndarray    # fat scale at _Z_KNOTS
    muscle: tuple        # wall muscle thickness front, side, back
    skin: float
    table_gap: float
    dome_right: float    # diaphragm dome tops (z)
    dome_left: float
    dome_curv: float

    @property
    def y_back(self):
        return self.yc - self.b_post * float(self.z_scale.max())

    def radius(self, theta):
        """Outline radius (mm) at polar angle ``theta`` around ``(0, yc)``."""
        c, s = np.abs(np.cos(theta)), np.sin(theta)
        front = s >= 0
        b = np.where(front, self.b_ant, self.b_post)
        n = np.where(front, self.n_ant, self.n_post)
        r = ((c / self.a) ** n + (np.abs(s) / b) ** n) ** (-1.0 / n)
        for k, amp, phase in self.harmonics:
            r = r * (1 + amp * np.cos(k * theta + phase))
        # the groove over the spine
        r = r * (1 - 0.03 * np.exp(-((theta + np.pi / 2) / 0.12) ** 2))
        return r.astype(np.float32)

    def scale(self, z):
        return np.interp(z, _Z_KNOTS, self.z_scale).astype(np.float32)

    def layers(self, theta):
        """Fat and wall-muscle thickness (mm) at angle ``theta`` (before the z factor)."""
        c2, s = np.cos(theta) ** 2, np.sin(theta)
        front, back = np.clip(s, 0, 1) ** 2, np.clip(-s, 0, 1) ** 2
        fat = self.fat[0] * front + self.fat[1] * c2 + self.fat[2] * back
        muscle = self.muscle[0] * front + self.muscle[1] * c2 + self.muscle[2] * back
        # linea alba: the rectus muscles part at the midline in front
        muscle = muscle * (1 - 0.75 * np.exp(-((theta - np.pi / 2) / 0.05) ** 2))
        return fat.astype(np.float32), muscle.astype(np.float32)

    def point(self, phi, z, depth):
        """World point ``depth`` mm under the skin at angle ``phi`` and height ``z``."""
        r = self.radius(np.asarray(phi)) * self.scale(np.asarray(z)) - depth
        return np.stack([r * np.cos(phi), self.yc + r * np.sin(phi), np.broadcast_to(z, np.shape(r))], -1)

    def polar(self, box):
        x = box.coords[0][:, None]
        y = box.coords[1][None, :] - self.yc
        return np.hypot(x, y), np.arctan2(y, x)

    def dome(self, x, y):
        """Height of the diaphragm at ``(x, y)``: two paraboloid domes, recesses at most _RECESS deep."""
        right = self.dome_right - ((x - 65) ** 2 + (y - self.yc) ** 2) / (2 * self.dome_curv)
        left = self.dome_left - ((x + 70) ** 2 + (y - self.yc + 10) ** 2) / (2 * self.dome_curv)
        return np.maximum(np.maximum(right, left), min(self.dome_right, self.dome_left) - _RECESS)

    def bounds(self, margin=5.0):
        theta = np.linspace(-np.pi, np.pi, 721)
        r = self.radius(theta) * float(self.z_scale.max()) + margin
        return ((r * np.cos(theta)).min(), self.yc + (r * np.sin(theta)).min(),
                (r * np.cos(theta)).max(), self.yc + (r * np.sin(theta)).max())


def draw_body(rng, z_level):
    """Random trunk; ``z_level`` is the height of the pancreas body."""
    harmonics = np.stack([np.arange(2, 6), rng.uniform(0, 0.025, 4), rng.uniform(0, 2 * np.pi, 4)], 1)
    fatness = rng.uniform(0.4, 1.25)
    return Body(
        yc=float(rng.uniform(-22, -8)),
        a=float(rng.uniform(148, 178)),
        b_ant=float(rng.uniform(100, 128)),
        b_post=float(rng.uniform(108, 122)),
        n_ant=float(rng.uniform(2.0, 2.5)),
        n_post=float(rng.uniform(2.6, 3.4)),
        harmonics=harmonics,
        z_scale=1 + rng.uniform(-0.03, 0.03, len(_Z_KNOTS)) + 0.04 * np.clip((_Z_KNOTS - z_level) / 150, -1, 1),
        fat=(fatness * rng.uniform(10, 22), fatness * rng.uniform(12, 28), fatness * rng.uniform(10, 20)),
        fat_z=rng.uniform(0.85, 1.15, len(_Z_KNOTS)),
        muscle=(rng.uniform(6, 10), rng.uniform(7, 12), rng.uniform(4, 6)),
        skin=float(rng.uniform(1.5, 2.5)),
        table_gap=float(rng.uniform(0, 6)),
        dome_right=float(z_level + rng.uniform(115, 140)),
        dome_left=float(z_level + rng.uniform(100, 125)),
        dome_curv=float(rng.uniform(70, 100)),
    )


def paint_body(scene, body):
    """Skin, subcutaneous fat, wall muscle and (visceral fat) cavity; the table."""
    x0, y0, x1, y1 = body.bounds()
    box = scene.box([x0, y0, -np.inf], [x1, y1, np.inf])
    if box.empty:
        return
    rho, theta = body.polar(box)
    radius = body.radius(theta)
    fat, muscle = body.layers(theta)
    z = box.coords[2]
    scale = body.scale(z)
    fz = np.interp(z, _Z_KNOTS, body.fat_z).astype(np.float32)
    lut = np.array([Tissue.AIR, Tissue.SKIN, Tissue.FAT, Tissue.MUSCLE, Tissue.VISCERAL_FAT], np.uint8)
    view = scene.tissue[box.slices]
    # The outline changes slowly with z: draw it once per slab of slices over
    # which it moves less than 0.2 mm, instead of once per voxel (speed).
    r_max, f_max = float(radius.max()), float(fat.max())
    start = 0
    for k in range(1, len(z) + 1):
        if k < len(z) and abs(scale[k] - scale[start]) * r_max < 0.2 and abs(fz[k] - fz[start]) * f_max < 0.2:
            continue
        sl = slice(start, k)
        depth = radius * float(scale[sl].mean()) - rho
        f = fat * float(fz[sl].mean())
        layer = (depth > 0).view(np.uint8) + (depth > body.skin) + (depth > f) + (depth > f + muscle)
        view[:, :, sl] = lut[layer][:, :, None]
        start = k
    _paint_table(scene, body)


def _paint_table(scene, body):
    # Two thin curved shells with foam between, as on the NIH scans.
    top = body.y_back - body.table_gap - 3
    box = scene.box([-np.inf, top - 40, -np.inf], [np.inf, top + 30, np.inf])
    if box.empty:
        return
    x, y = box.coords[0][:, None], box.coords[1][None, :]
    curve = top + x ** 2 / 900.0
    upper = (y <= curve) & (y > curve - 2.5)
    lower = (y <= curve - 28) & (y > curve - 30.5)
    foam = (y <= curve - 2.5) & (y > curve - 28) & (np.abs(x) < 170)
    for mask, tissue in ((foam, Tissue.TABLE_FOAM), (upper | lower, Tissue.TABLE)):
        scene.paint(box, mask[:, :, None], tissue, over=(Tissue.AIR,))


def paint_thorax(scene, body, heart_x=-25.0):
    """Lung bases above the diaphragm domes, the diaphragm, the heart's apex."""
    x0, y0, x1, y1 = body.bounds()
    zmin = min(body.dome_right, body.dome_left) - _RECESS
    box = scene.box([x0, y0, zmin], [x1, y1, np.inf])
    if box.empty:
        return
    x, y, z = box.xyz()
    dome = body.dome(x, y)
    above = z > dome
    scene.paint(box, above, Tissue.LUNG, over=(Tissue.VISCERAL_FAT,))
    scene.paint(box, ~above & (z > dome - 5), Tissue.MUSCLE, over=(Tissue.VISCERAL_FAT,))
    centre = np.array([heart_x, body.yc + 45, max(body.dome_left, body.dome_right) + 45])
    radii = np.array([70.0, 50.0, 60.0])
    hbox = scene.box(centre - radii, centre + radii)
    if not hbox.empty:
        hx, hy, hz = hbox.xyz()
        heart = (ellipsoid_field(hbox, centre, radii) < 1) & (hz > body.dome(hx, hy))
        scene.paint(hbox, heart, Tissue.HEART, over=(Tissue.LUNG,))


def paint_back_muscles(scene, body, spine, z_level):
    """Paraspinal, psoas and quadratus lumborum muscles."""
    x0, y0, x1, y1 = body.bounds()
    box = scene.box([-110, y0, -np.inf], [110, spine.y + 40, np.inf])
    if box.empty:
        return
    x, y, z = box.xyz()
    back = body.y_back + body.fat[2] * float(body.fat_z.mean())
    front = spine.canal_y + 4  # the paraspinal mass reaches the transverse processes
    half = (front - back) / 2
    over = (Tissue.VISCERAL_FAT, Tissue.MUSCLE, Tissue.LUNG)
    for side in (-1, 1):
        para = ((x - side * 30) / 30) ** 2 + ((y - back - half) / (half + 3)) ** 2 < 1
        scene.paint(box, para, Tissue.MUSCLE, over=over)
        # psoas grows below the level of L1
        r = np.clip((z_level + 15 - z) * 0.28, 0, 28)
        psoas = ((x - side * (spine.rx + 0.75 * r + 2)) ** 2 + (y - spine.y + 2) ** 2) < r ** 2
        scene.paint(box, psoas, Tissue.MUSCLE, over=(Tissue.VISCERAL_FAT,))
        ql = (((x - side * (spine.rx + 45)) / 20) ** 2 + ((y - spine.canal_y + 2) / 10) ** 2 < 1) & (z < z_level + 25)
        scene.paint(box, ql, Tissue.MUSCLE, over=(Tissue.VISCERAL_FAT,))
