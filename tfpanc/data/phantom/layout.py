"""Where everything goes in one case: the random anatomy, before any drawing.

All random draws that decide the anatomy happen here (and in the bowel walk
of :mod:`~tfpanc.data.phantom.gut`), from the case's own generator and in a
fixed order, so a case has the same anatomy at every ``shape``. Positions are
built from landmarks outwards, the way the anatomy hangs together: spine ->
aorta/IVC -> SMA/SMV -> pancreas -> duodenum and stomach around it; kidneys,
spleen and liver from the body wall. Tubes that would run into an organ are
pushed clear of it (:func:`~tfpanc.data.phantom.fields.push_apart`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfpanc.data.phantom import body as body_mod
from tfpanc.data.phantom import pancreas as pancreas_mod
from tfpanc.data.phantom import spine_ribs
from tfpanc.data.phantom.fields import Tube, ellipsoid_obstacles, push_apart, rotation, tube_obstacles
from tfpanc.data.phantom.tissues import Tissue


@dataclasses.dataclass
class Organ:
    """A deformed ellipsoid: ``centre``, semi-axes ``radii``, rotation ``rot`` (local -> world)."""

    centre: np.ndarray
    radii: np.ndarray
    rot: np.ndarray

    def axis(self, i):
        return self.rot[:, i]


@dataclasses.dataclass
class Vessel:
    tube: Tube
    tissue: Tissue
    collar: float = 0.0          # mm of fat kept around it
    scale: tuple = (1.0, 1.0, 1.0)
    detail_only: bool = False    # too small to matter for planning


@dataclasses.dataclass
class Liver:
    z_tip: float      # lowest point of the right lobe (z)
    z_medial: float   # inferior edge near the midline (z)
    x_tip: float      # x of the right-lobe tip
    right: tuple      # right lobe semi-axes x, y, z and its y offset from the body centre
    left: tuple       # left lobe semi-axes x, y, z, centre x, y offset
    seed: int
    front_drop: float = 20.0  # how much lower the anterior inferior edge reaches (mm)
    pancreas_gap: float = 5.0  # mm kept between liver and pancreas


@dataclasses.dataclass
class Anatomy:
    z_level: float
    body: body_mod.Body
    spine: spine_ribs.Spine
    ribs: list
    vessels: dict
    pancreas: pancreas_mod.PancreasShape
    kidneys: list
    spleen: Organ
    liver: Liver
    gallbladder: Organ
    gut: Tube                 # stomach + duodenum, fundus -> DJ flexure
    colon: Tube
    stomach_end: float        # t along ``gut`` where the stomach ends (pylorus)
    contrast: bool            # positive oral contrast in the bowel
    gas: float                # fraction of the stomach lumen holding gas
    seed: int
    small_bowel: list = dataclasses.field(default_factory=list)


def _kidney(rng, side, spine, z):
    psi = np.deg2rad(rng.uniform(25, 45))
    angle = -psi if side > 0 else np.pi + psi
    rot = rotation(np.rad2deg(angle), 0, 0) @ rotation(0, side * rng.uniform(-14, -6), 0).T
    centre = np.array([spine.x + side * rng.uniform(66, 80), spine.y - rng.uniform(0, 10), z])
    return Organ(centre, np.array([rng.uniform(26, 31), rng.uniform(20, 24), rng.uniform(48, 58)]), rot)


def draw_anatomy(rng, fov_z=(-150.0, 150.0)):
    """Draws one case's anatomy (see module docstring).

    Example:
    >>> a = draw_anatomy(np.random.default_rng([0, 0]))
    >>> bool(a.vessels["aorta"].tube.radii[0] > 5)
    True
    """
    z = float(rng.uniform(-30, 5))
    body = body_mod.draw_body(rng, z)
    spine = spine_ribs.draw_spine(rng, body, z)
    ribs = spine_ribs.draw_ribs(rng, body, spine, z)
    front = spine.y + spine.ry
    bottom, top = fov_z[0] - 20, fov_z[1] + 20

    # Great vessels.
    ra = rng.uniform(9, 12)
    xa, ya = spine.x - rng.uniform(8, 15), front + ra + rng.uniform(0.5, 2.5)
    z_bif = z - rng.uniform(100, 120)
    aorta = Tube(np.array([[xa + 4, ya - 14, top], [xa, ya - 3, z + 60], [xa, ya, z], [xa + 2, ya + 2, z_bif + 20],
                           [xa + 3, ya, z_bif]]), np.array([ra + 1, ra + 0.5, ra, ra - 1.5, ra - 2]))
    iliac = [Tube(np.array([[xa + 3, ya, z_bif + 2], [xa + 3 + s * 18, ya - 2, z_bif - 25],
                            [xa + s * 45, ya - 10, z_bif - 70]]), np.full(3, 6.5)) for s in (-1, 1)]
    xi, yi = spine.x + rng.uniform(22, 30), front + rng.uniform(8, 12)
    ivc = Tube(np.array([[xi, yi - 2, bottom], [xi, yi, z - 40], [xi, yi, z], [xi + 4, yi + 14, z + 60],
                         [xi + 2, yi + 22, min(body.dome_right, top)]]), np.array([10.5, 11, 11.5, 13, 14]))
    z_sma = z + rng.uniform(4, 12)
    sma_r = rng.uniform(3.5, 4.5)
    sma = Tube(np.array([[xa + 1, ya + ra - 2, z_sma], [xa + 2, ya + ra + 8, z_sma - 8],
                         [xa + 3, ya + ra + 10, z - 15], [xa + 5, ya + ra + 24, z - 60],
                         [xa + 12, ya + ra + 40, bottom]]), np.full(5, sma_r))
    sma_at = np.array([xa + 2.5, ya + ra + 9, z, sma_r + 5])
    r_smv = rng.uniform(5.5, 7.5)
    smv_xy = np.array([xa + 3 + rng.uniform(12, 18), ya + ra + 9 + rng.uniform(-2, 4)])
    z_conf = z + rng.uniform(-6, 3)
    smv = Tube(np.array([[smv_xy[0] + 10, smv_xy[1] + 12, bottom], [smv_xy[0] + 4, smv_xy[1] + 4, z - 60],
                         [smv_xy[0], smv_xy[1], z_conf - 20], [smv_xy[0], smv_xy[1], z_conf]]),
               np.array([r_smv - 1.5, r_smv - 0.5, r_smv, r_smv]))
    porta = np.array([smv_xy[0] + rng.uniform(40, 55), smv_xy[1] - rng.uniform(0, 12), z_conf + rng.uniform(38, 50)])
    portal = Tube(np.array([[smv_xy[0], smv_xy[1], z_conf - 2], [smv_xy[0] + 15, smv_xy[1] - 4, z_conf + 18], porta]),
                  np.full(3, r_smv + 1))

    # Kidneys, spleen.
    kidneys = [_kidney(rng, 1, spine, z - rng.uniform(18, 32)), _kidney(rng, -1, spine, z - rng.uniform(5, 18))]
    left = kidneys[1]
    phi = np.deg2rad(rng.uniform(193, 208))
    sp_z = z + rng.uniform(35, 50)
    fat, mus = body.layers(np.array(phi))
    sp_radii = np.array([rng.uniform(45, 60), rng.uniform(18, 24), rng.uniform(40, 55)])
    wall = body.point(phi, sp_z, fat + mus)
    inward = -np.array([np.cos(phi), np.sin(phi), 0.0])
    tangent = np.array([-np.sin(phi), np.cos(phi), 0.0])
    spleen = Organ(wall + inward * (sp_radii[1] + 1), sp_radii, np.column_stack([tangent, inward, [0, 0, 1]]))
    # The hilum faces forwards and inwards, in front of the kidney's upper pole.
    hilum = spleen.centre + inward * sp_radii[1] * 1.1 + tangent * sp_radii[0] * 0.35 - [0, 0, sp_radii[2] * 0.3]
    k_front = left.centre + np.array([8, left.radii[1] + 4, left.radii[2] * 0.45])
    hilum[1] = max(hilum[1], k_front[1] + 5)
    organ_obstacles = np.vstack([ellipsoid_obstacles(k.centre, k.radii + 6, k.rot) for k in kidneys]
                                + [tube_obstacles(aorta)[:, :4] + [0, 0, 0, 3]])
    pancreas = pancreas_mod.draw_pancreas(rng, (*smv_xy, z_conf, r_smv), sma_at, hilum, k_front, organ_obstacles)
    p_pts, p_r = pancreas.tube.points, pancreas.tube.radii

    vessels = {"aorta": Vessel(aorta, Tissue.ARTERY), "ivc": Vessel(ivc, Tissue.VEIN, scale=(1.15, 0.8, 1.0)),
               "sma": Vessel(sma, Tissue.ARTERY, collar=rng.uniform(3, 6)), "smv": Vessel(smv, Tissue.PORTAL),
               "portal": Vessel(portal, Tissue.PORTAL)}
    for i, t in enumerate(iliac):
        vessels[f"iliac_{i}"] = Vessel(t, Tissue.ARTERY)
    r_sv = rng.uniform(3.5, 5.0)
    sv_path = pancreas_mod.splenic_vein(pancreas, r_sv)
    sv_path = np.vstack([[smv_xy[0], smv_xy[1], z_conf], sv_path, hilum + [0, -4, 0]])
    vessels["splenic_vein"] = Vessel(Tube(sv_path, np.full(len(sv_path), r_sv)), Tissue.PORTAL)
    for k, side in zip(kidneys, (1, -1)):
        hil = k.centre - k.axis(0) * k.radii[0] * 0.5
        if side < 0:
            mid = [xa, ya + ra + 3.5, hil[2] + 3]
            rv = Tube(np.array([hil, [xa - ra - 6, ya + 4, hil[2] + 4], mid, [xi, yi, hil[2] + 6]]), np.full(4, 4.5))
        else:
            rv = Tube(np.array([hil, [xi + 6, yi - 2, hil[2] + 2], [xi, yi, hil[2] + 4]]), np.full(3, 4.5))
        vessels[f"renal_vein_{side}"] = Vessel(rv, Tissue.VEIN)
        ra_t = Tube(np.array([[xa, ya - 2, hil[2] + 8], (np.array([xa, ya - 2, hil[2] + 8]) + hil) / 2 - [0, 6, 0],
                              hil - [0, 3, 0]]), np.full(3, 2.5))
        vessels[f"renal_artery_{side}"] = Vessel(ra_t, Tissue.ARTERY, detail_only=True)
    z_cel = z_sma + rng.uniform(10, 16)
    cel = np.array([xa + 1, ya + ra + 10, z_cel + 2])
    vessels["celiac"] = Vessel(Tube(np.array([[xa, ya + ra - 3, z_cel], cel]), np.full(2, 3.5)), Tissue.ARTERY)
    top_of = lambda i: p_pts[i] + [0, 0, p_r[i] * pancreas.z_stretch + 3]  # noqa: E731
    spa = np.vstack([cel, top_of(4), top_of(5), top_of(6), hilum])
    spa[1:-1] += rng.uniform(-6, 6, (3, 3)) * [1, 1, 0.5]
    vessels["splenic_artery"] = Vessel(Tube(spa, np.full(len(spa), 2.6)), Tissue.ARTERY, detail_only=True)
    vessels["hepatic_artery"] = Vessel(Tube(np.vstack([cel, top_of(3) + [10, 0, 6], porta + [0, 8, 4]]),
                                            np.full(3, 2.4)), Tissue.ARTERY, detail_only=True)

    # Stomach and duodenum: one tube from the fundus to the duodeno-jejunal flexure.
    head, unc = p_pts[2], p_pts[0]
    rd = rng.uniform(10, 13)
    gap = rng.uniform(0.3, 2.5)
    front_of = lambda i, r, g: p_pts[i] + [0, p_r[i] + r + g, 0]  # noqa: E731
    fundus = np.array([xa - rng.uniform(35, 55), body.yc + rng.uniform(-20, 5), body.dome_left - rng.uniform(28, 40)])
    r_st = rng.uniform(32, 42)
    sg = rng.uniform(1.5, 5)  # lesser sac: the stomach lies close in front of the gland
    stomach = [fundus, [fundus[0] - 15, body.yc + 30, z + 65], front_of(5, 30, sg) + [-15, 0, 18],
               front_of(4, 24, sg) + [0, 0, 12], front_of(3, 15, sg) + [10, 0, 14],
               front_of(3, 9, sg) + [p_r[2] + 18, -4, 16]]
    duod = [head + [p_r[2] + 10, p_r[2] + 8, 16], head + [p_r[2] + rd + gap, 4, 6],
            p_pts[1] + [p_r[1] + rd + gap, 0, -6], unc + [16, -2, -p_r[0] - rd - gap],
            [xa + 4, ya + ra + rd * 0.6 + 2, unc[2] - p_r[0] - rd * 0.8], [xa - ra - rd - 4, ya + 6, unc[2] - 6],
            [xa - ra - rd - 8, ya + 16, z - 14]]
    gut_r = np.array([r_st, r_st * 1.05, r_st * 0.9, 24, 15, 8, 13, rd, rd, rd, rd * 0.75, rd, rd])
    gut_pts = np.array(stomach + duod, float)
    obstacles = np.vstack([tube_obstacles(pancreas.tube) + [0, 0, 0, 1], organ_obstacles,
                           ellipsoid_obstacles(spleen.centre, spleen.radii + 2, spleen.rot)])
    gut_pts = push_apart(gut_pts, gut_r, obstacles, gap=1.0, fixed=(0,))
    gut = Tube(gut_pts, gut_r)

    gb = Organ(np.array([xi + rng.uniform(25, 40), body.yc + rng.uniform(35, 55), z + rng.uniform(5, 20)]),
               np.array([rng.uniform(12, 17), rng.uniform(12, 17), rng.uniform(28, 38)]),
               rotation(rng.uniform(-30, 30), 0, rng.uniform(25, 45)))
    inner = body.a * 0.95 - body.fat[1] - body.muscle[1]
    rc = rng.uniform(18, 25)
    z_hep = z - rng.uniform(30, 50)  # the hepatic flexure, below the liver's edge
    colon_pts = np.array([[inner - rc - 5, body.yc - 5, bottom], [inner - rc - 8, body.yc + 5, z_hep - 40],
                          [inner - rc - 20, body.yc + 35, z_hep], [40, body.yc + body.b_ant - 45, z_hep - 25],
                          [-40, body.yc + body.b_ant - 48, z_hep - 30], [-inner + rc + 15, body.yc + 20, z + 20],
                          [-inner + rc + 6, body.yc - 20, z - 30], [-inner + rc + 10, body.yc - 10, bottom]])
    colon_pts = push_apart(colon_pts, np.full(len(colon_pts), rc), np.vstack(
        [obstacles, tube_obstacles(gut), ellipsoid_obstacles(gb.centre, gb.radii, gb.rot)]), gap=3.0)
    liver = Liver(z_tip=z - rng.uniform(50, 90), z_medial=z + rng.uniform(0, 20), x_tip=inner - rng.uniform(10, 30),
                  right=(rng.uniform(95, 120), rng.uniform(105, 130), rng.uniform(115, 145), rng.uniform(-10, 10)),
                  left=(rng.uniform(60, 85), rng.uniform(40, 55), rng.uniform(35, 50), rng.uniform(-30, 0),
                        rng.uniform(35, 60)),
                  seed=int(rng.integers(2 ** 31)), front_drop=float(rng.uniform(15, 40)),
                  pancreas_gap=float(rng.uniform(4, 10)))
    return Anatomy(z_level=z, body=body, spine=spine, ribs=ribs, vessels=vessels, pancreas=pancreas,
                   kidneys=kidneys, spleen=spleen, liver=liver, gallbladder=gb, gut=gut,
                   colon=Tube(colon_pts, np.full(len(colon_pts), rc)), stomach_end=5 / (len(gut_r) - 1),
                   contrast=bool(rng.random() < 0.35), gas=float(rng.uniform(0.05, 0.45)),
                   seed=int(rng.integers(2 ** 31)))
