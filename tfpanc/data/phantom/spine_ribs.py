"""The bones: spine (vertebral bodies, discs, arches, canal) and the lower ribs.

Named for what it draws: the multitask paper's "skeleton" is the pancreas' medial axis.

Vertebral bodies are elliptic cylinders with a cortical rim and endplates,
stacked with discs; the arch, spinous and transverse processes are drawn per
vertebra. Ribs are thin tubes that follow the body wall from the spine
around the flank, descending towards the front, with costal cartilage
continuing the upper ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfpanc.data.phantom.fields import catmull_rom, tube_bounds, tube_field
from tfpanc.data.phantom.tissues import Tissue

_OVER = (Tissue.VISCERAL_FAT, Tissue.MUSCLE, Tissue.LUNG, Tissue.FAT_PLANE)


@dataclasses.dataclass
class Spine:
    x: float
    y: float          # vertebral body centre
    rx: float         # half width of the vertebral body
    ry: float         # half depth
    height: float     # vertebral body height
    disc: float       # disc height
    phase: float      # z of a disc's lower edge
    canal: float      # canal radius

    @property
    def period(self):
        return self.height + self.disc

    @property
    def canal_y(self):
        return self.y - self.ry - self.canal - 1.5


def draw_spine(rng, body, z_level):
    return Spine(x=float(rng.uniform(-3, 3)), y=float(body.y_back + rng.uniform(60, 72) + 16),
                 rx=float(rng.uniform(20, 24)), ry=float(rng.uniform(15, 18)),
                 height=float(rng.uniform(24, 29)), disc=float(rng.uniform(7, 10)),
                 phase=float(z_level + rng.uniform(0, 35)), canal=float(rng.uniform(8, 10)))


def paint_spine(scene, spine, z_level):
    box = scene.box([spine.x - 60, spine.canal_y - 50, -np.inf], [spine.x + 60, spine.y + spine.ry + 2, np.inf])
    if box.empty:
        return
    x, y, z = box.xyz()
    dx, dy = x[:, :, 0] - spine.x, y[:, :, 0] - spine.y
    ellipse = (dx / spine.rx) ** 2 + (dy / spine.ry) ** 2
    inside = ellipse < 1
    rim = inside & (ellipse > (1 - 2.0 / spine.rx) ** 2)
    zmod = np.mod(z[0, 0] - spine.phase, spine.period)
    is_disc = zmod < spine.disc
    endplate = ~is_disc & ((zmod < spine.disc + 1.5) | (zmod > spine.period - 1.5))
    view = scene.current(box)
    soft = np.isin(view, [int(t) for t in _OVER])
    vert = inside[:, :, None] & ~is_disc[None, None, :]
    cortex = (rim[:, :, None] & ~is_disc[None, None, :]) | (inside[:, :, None] & endplate[None, None, :])
    view[soft & vert] = Tissue.MARROW
    view[soft & cortex] = Tissue.CORTICAL_BONE
    view[soft & inside[:, :, None] & is_disc[None, None, :]] = Tissue.DISC
    # Posterior elements, in the axial plane: pedicles from the back corners
    # of the body, a lamina roof over a rounded-triangular canal, a tapering
    # spinous process, and transverse processes angled backwards.
    yy = y[:, :, 0]
    cy = spine.canal_y
    ax_, ay_ = np.abs(dx), yy - cy
    # rounded triangle: wide in front, narrowing backwards
    half_width = spine.canal * 1.15 * (1 + 0.3 * np.clip(ay_ / spine.canal, -1, 1))
    canal = (ax_ / half_width) ** 2 + (ay_ / spine.canal) ** 2 < 1
    roof = ((ax_ / (spine.canal * 1.15 + 6)) ** 2 + (ay_ / (spine.canal + 6)) ** 2 < 1) & (ay_ < 2)
    pedicle = (ax_ > spine.canal * 0.8) & (ax_ < spine.canal * 0.8 + 7) & (ay_ > -2) & (yy < spine.y - spine.ry + 3)
    back = cy - spine.canal - 4 - yy  # mm behind the lamina
    spinous = (back > 0) & (back < 28) & (ax_ < 3.5 - 0.06 * back)
    along = ax_ - spine.canal  # transverse process: out and slightly back, tapering
    transverse = (along > 0) & (along < 26) & (np.abs(ay_ + 0.35 * along - 1) < 4.5 - 0.08 * along)
    # the arch sits lower than its body: shift its phase down by a quarter period
    arch_phase = np.mod(zmod + 0.25 * spine.period, spine.period)
    in_arch = arch_phase > 0.1 * spine.period
    in_spinous = (arch_phase > 0.2 * spine.period) & (arch_phase < 0.85 * spine.period)
    in_tp = (arch_phase > 0.45 * spine.period) & (arch_phase < 0.75 * spine.period)
    bone = (((roof | pedicle) & ~canal)[:, :, None] & in_arch[None, None, :]) \
        | (spinous[:, :, None] & in_spinous[None, None, :]) | (transverse[:, :, None] & in_tp[None, None, :])
    view[bone & soft] = Tissue.CORTICAL_BONE
    canal3 = np.broadcast_to(canal[:, :, None], view.shape)
    view[canal3] = Tissue.CSF
    cord = (np.hypot(dx / 0.8, yy - cy) < 5)[:, :, None] & (z > z_level - 15)
    view[np.broadcast_to(cord, view.shape)] = Tissue.CORD


def draw_ribs(rng, body, spine, z_level):
    """Centre lines of ribs 7-12 on both sides, plus costal cartilage."""
    ribs = []
    for k, level in enumerate(range(12, 6, -1)):
        z_head = spine.phase + spine.period * (k - 0.2) + rng.uniform(-4, 4) + 10
        phi_end = {12: -0.55, 11: -0.2}.get(level, 0.35 + 0.12 * (10 - level))
        drop = rng.uniform(55, 80) if level > 10 else rng.uniform(90, 130)
        for side in (-1, 1):
            # phi measured from the back (-pi/2) towards the front on each side
            phis = np.linspace(-np.pi / 2 + 0.32, phi_end, 12)
            z = z_head - drop * (phis + np.pi / 2 - 0.32) / (phi_end + np.pi / 2 - 0.32) ** 0.8
            theta = phis if side > 0 else np.pi - phis
            fat, mus = body.layers(theta)
            pts = body.point(theta, z, fat + 0.5 * mus + 2.0)
            ribs.append(("bone", pts, rng.uniform(2.6, 3.4)))
            if level <= 10:
                phc = np.linspace(phi_end, 1.35, 6)
                thc = phc if side > 0 else np.pi - phc
                zc = z[-1] + (phc - phi_end) * 25
                f2, m2 = body.layers(thc)
                ribs.append(("cartilage", body.point(thc, zc, f2 + 0.5 * m2 + 2.0), 3.5))
    return ribs


def paint_ribs(scene, ribs):
    for kind, pts, radius in ribs:
        samples, _ = catmull_rom(pts, 1.0)
        radii = np.full(len(samples), radius)
        lo, hi = tube_bounds(samples, radii * 1.8)
        box = scene.box(lo, hi)
        if box.empty:
            continue
        q = tube_field(box, samples, radii, scale=(1.0, 1.0, 1.7))
        if kind == "bone":
            scene.paint(box, q < 1, Tissue.CORTICAL_BONE, over=_OVER)
            scene.paint(box, q < 0.55, Tissue.MARROW, over=(Tissue.CORTICAL_BONE,))
        else:
            scene.paint(box, q < 1, Tissue.CARTILAGE, over=_OVER)
