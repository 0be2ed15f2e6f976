"""Spine (vertebral bodies, discs, arches, canal) and the lower ribs.

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
    # arch, spinous and transverse processes: on the upper part of each vertebra
    cy = spine.canal_y
    rc = np.hypot(dx, y[:, :, 0] - cy)
    arch = (rc > spine.canal) & (rc < spine.canal + 6) & (y[:, :, 0] < spine.y - spine.ry + 3)
    spinous = (np.abs(dx) < 4) & (y[:, :, 0] < cy - spine.canal) & (y[:, :, 0] > cy - spine.canal - 32)
    transverse = (np.abs(y[:, :, 0] - cy - 2) < 5) & (np.abs(dx) < 42) & (np.abs(dx) > spine.canal)
    # the arch sits lower than its body: shift its phase down by a quarter period
    arch_phase = np.mod(zmod + 0.25 * spine.period, spine.period)
    in_arch = arch_phase > 0.12 * spine.period
    in_tp = (arch_phase > 0.45 * spine.period) & (arch_phase < 0.8 * spine.period)
    bone = ((arch | spinous)[:, :, None] & in_arch[None, None, :]) | (transverse[:, :, None] & in_tp[None, None, :])
    view[bone & soft] = Tissue.CORTICAL_BONE
    canal = np.broadcast_to((rc < spine.canal)[:, :, None], view.shape)
    view[canal] = Tissue.CSF
    cord = (np.hypot(dx / 0.8, y[:, :, 0] - cy) < 5)[:, :, None] & (z > z_level - 15)
    view[np.broadcast_to(cord, view.shape)] = Tissue.CORD


def draw_ribs(rng, body, spine, z_level):
    """Centre lines of ribs 7-12 on both sides, plus costal cartilage."""
    ribs = []
    for k, level in enumerate(range(12, 6, -1)):
        z_head = spine.phase + spine.period * (k + 0.5) + rng.uniform(-4, 4) + 12
        phi_end = {12: -0.55, 11: -0.2}.get(level, 0.35 + 0.12 * (10 - level))
        drop = rng.uniform(45, 70) if level > 10 else rng.uniform(70, 100)
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
