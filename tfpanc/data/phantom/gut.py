"""Stomach, duodenum, colon and small bowel: walled tubes with contents.

Each gut tube has an enhancing wall of a few mm, contents (water-like fluid,
positive oral contrast, or mottled stool in the colon) and gas floating on
top: the patient lies supine, so gas collects anteriorly (+y) above a flat
gas-fluid level. The small bowel is a set of self-avoiding random walks
started at the duodeno-jejunal flexure, run through the free space left by
the other organs on a coarse 3 mm planning grid, so that loops pack the
abdomen without passing through organs or each other.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from tfpanc.data.phantom.fields import Grid, Tube, tube_bounds, tube_field
from tfpanc.data.phantom.tissues import Tissue

_FREE = (Tissue.VISCERAL_FAT,)


def _chunks(n, size):
    """Overlapping index runs: a long tube is drawn piece by piece in small boxes."""
    starts = range(0, max(n - 1, 1), size)
    return [np.arange(i, min(i + size + 1, n)) for i in starts]


def paint_gut_tube(scene, tube, wall, contents, gas, seed, wall_tissue=Tissue.BOWEL_WALL, collar=2.0,
                   stool=False):
    """Paints one walled tube.

    Args:
        scene: the :class:`~tfpanc.data.phantom.scene.Scene`.
        tube: :class:`~tfpanc.data.phantom.fields.Tube`.
        wall: wall thickness (mm), scalar or per control point.
        contents: tissue of the lumen.
        gas: fraction of the lumen diameter filled with gas (scalar or per control point).
        seed: seed of the stool texture.
        wall_tissue: tissue of the wall, scalar or per control point.
        collar: mm of fat kept free around the tube.
        stool: mottle the contents with gas bubbles (colon).
    """
    samples, radii, t = tube.sample()
    n = len(tube.radii)
    knots = np.linspace(0, 1, n)
    per_point = lambda v: np.interp(t, knots, np.broadcast_to(np.asarray(v, float), (n,)))  # noqa: E731
    walls, gases = per_point(wall), per_point(gas)
    wall_ids = np.broadcast_to(np.asarray(wall_tissue, int), (n,))[np.clip(np.rint(t * (n - 1)).astype(int), 0, n - 1)]
    bubbles = None
    if stool and scene.detail:
        # Mottled faeces: small gas bubbles scattered through the lumen.
        brng = np.random.default_rng(seed)
        count = int(len(samples) * 3)
        at = brng.integers(len(samples), size=count)
        br = brng.uniform(1.0, 3.5, count)
        room = np.clip(radii[at] - walls[at] - br, 0, None)
        offset = brng.normal(size=(count, 3))
        offset *= (room * brng.uniform(0, 1, count) ** 0.5 / np.linalg.norm(offset, axis=1))[:, None]
        bubbles = (samples[at] + offset, br)
    reach = 1.0 + collar / radii.min()
    pieces = []
    step = np.linalg.norm(samples[1] - samples[0]) if len(samples) > 1 else 1.0
    for ch in _chunks(len(samples), max(2, int(max(40.0, 2 * radii.max()) / max(step, 1e-3)))):
        lo, hi = tube_bounds(samples[ch], radii[ch] * reach)
        box = scene.box(lo, hi)
        if box.empty:
            continue
        q, idx = tube_field(box, samples[ch], radii[ch], reach=reach, with_index=True)
        pieces.append((box, q))
        inside = q < 1
        k = ch[np.maximum(idx, 0)]
        for tissue in np.unique(wall_ids[ch]):
            scene.paint(box, inside & (wall_ids[k] == tissue), Tissue(int(tissue)), over=_FREE)
        if not scene.detail:
            continue
        rl = radii[k] - walls[k]
        lumen = q * radii[k] < rl
        scene.paint(box, lumen, contents, over=tuple(Tissue(int(w)) for w in np.unique(wall_ids)))
        if bubbles is not None:
            centres, br = bubbles
            near = np.all((centres >= np.array([c[0] for c in box.coords])) &
                          (centres <= np.array([c[-1] for c in box.coords])), axis=1)
            bq = tube_field(box, centres[near], br[near])
            scene.paint(box, lumen & (bq < 1), Tissue.GAS, over=(contents,))
        y = box.coords[1][None, :, None]
        level = samples[k, 1] + rl * (1 - 2 * gases[k])
        scene.paint(box, lumen & (y > level) & (gases[k] > 0), Tissue.GAS, over=(contents,))
    # Collars last, so that one piece's fat plane cannot cut the next piece's wall.
    for box, q in pieces:
        scene.paint(box, q < reach, Tissue.FAT_PLANE, over=_FREE)


def paint_gut(scene, anatomy):
    """Stomach + duodenum, then the colon."""
    rng = np.random.default_rng(anatomy.seed + 1)
    gut = anatomy.gut
    n = len(gut.radii)
    stomach = np.linspace(0, 1, n) <= anatomy.stomach_end + 1e-6
    contents = Tissue.ORAL_CONTRAST if anatomy.contrast else Tissue.FLUID
    wall = np.where(stomach, rng.uniform(4, 6), 2.5)
    gas = np.where(stomach, anatomy.gas, 0.0)
    gas[np.argmax(~stomach)] = rng.uniform(0, 0.6)  # the duodenal bulb often holds gas
    wall_tissue = np.where(stomach, int(Tissue.STOMACH_WALL), int(Tissue.BOWEL_WALL))
    paint_gut_tube(scene, gut, wall, contents, gas, rng.integers(2 ** 31), wall_tissue=wall_tissue, collar=1.5)
    paint_gut_tube(scene, anatomy.colon, 2.0, Tissue.STOOL, rng.uniform(0.1, 0.5), rng.integers(2 ** 31),
                   collar=2.0, stool=True)


def walk_small_bowel(rng, plan, start, direction, z_top, length=8000.0, radius=(4.5, 12.0), restarts_max=200,
                     seeds=None):
    """Self-avoiding random walks through free space of a coarse ``plan`` scene.

    Each walk keeps roughly its heading (bowel loops are smooth), never comes
    closer than a few mm to an organ or an earlier loop, and when it is
    stuck a new loop starts in the highest free space left, so the space
    around the pancreas fills first.

    Args:
        rng: numpy Generator.
        plan: the planning :class:`~tfpanc.data.phantom.scene.Scene`.
        start, direction: where the first loop leaves the duodenum.
        z_top: loops stay below this height (mm).
        length: most bowel to lay (mm).
        radius: range of loop radii (mm), one per loop.
        seeds: ``(n, 4)`` rows ``x, y, z, r``: loops to try first (around the
            pancreas, where real patients have bowel against the gland).

    Returns:
        list of ``(Tube, collapsed)``.
    """
    grid = plan.grid
    free = plan.tissue == Tissue.VISCERAL_FAT
    free[:, :, grid.axis(2) > z_top] = False
    clearance = ndi.distance_transform_edt(free, sampling=grid.spacing)
    step, margin = 5.0, 1.0
    origin, spacing = np.asarray(grid.origin), np.asarray(grid.spacing)
    upper = np.asarray(grid.shape) - 1

    def rooms(pts):
        i = np.round((pts - origin) / spacing).astype(int)
        ok = np.all((i >= 0) & (i <= upper), axis=1)
        i = np.clip(i, 0, upper)
        return np.where(ok, clearance[i[:, 0], i[:, 1], i[:, 2]], 0.0)

    roomy = np.argwhere(clearance > radius[0] + margin + 2)
    placed, placed_r = np.zeros((0, 3)), np.zeros(0)
    tubes, laid, restarts = [], 0.0, 0
    r = float(np.exp(rng.uniform(*np.log(radius))))
    pos, heading, path = np.asarray(start, float), np.asarray(direction, float), [np.asarray(start, float)]
    collapsed = []
    if seeds is not None:
        # Collapsed loops squeezed against the pancreas: they may touch organs
        # (they are only painted into fat), so they close the fat gaps that a
        # thin patient does not have.
        for seed in seeds:
            rs, p = float(seed[3]), seed[:3].copy()
            if rooms(p[None])[0] < 0.35 * rs:
                continue
            if len(placed) and (np.linalg.norm(placed - p, axis=1) - placed_r - rs).min() < 0.5:
                continue
            pts, head = [p], rng.normal(0, 1, 3)
            for _ in range(rng.integers(2, 8)):
                cand = head / np.linalg.norm(head) + 0.6 * rng.normal(0, 1, (8, 3))
                cand = p + step * cand / np.linalg.norm(cand, axis=1, keepdims=True)
                ok = rooms(cand) >= 0.35 * rs
                if len(placed):
                    ok &= (np.linalg.norm(placed[None] - cand[:, None], axis=2) - placed_r[None] - rs).min(1) > 0.5
                if not ok.any():
                    break
                head = cand[int(np.argmax(ok))] - p
                p = cand[int(np.argmax(ok))]
                pts.append(p)
            collapsed.append(Tube(np.array(pts), np.full(len(pts), rs)))
            placed = np.vstack([placed, np.array(pts)])
            placed_r = np.append(placed_r, np.full(len(pts), rs))
    while laid < length and restarts < restarts_max:
        best = None
        # the last ~2r of the own path is exempt from the spacing test
        lag = int(np.ceil((2 * r + 6) / step)) + 1
        for spread in (0.6, None) if path else ():
            cand = rng.normal(0, 1, (10, 3))
            if spread is not None:
                cand = heading / np.linalg.norm(heading) + spread * cand * [1, 1, 0.7]
            cand /= np.linalg.norm(cand, axis=1, keepdims=True)
            pts = pos + step * cand
            ok = rooms(pts) >= r + margin
            if len(placed):
                gap = np.linalg.norm(placed[None] - pts[:, None], axis=2) - placed_r[None] - r
                ok &= gap.min(axis=1) >= 2.0
            if ok.any():
                i = int(np.argmax(ok))  # first valid: keeps the heading
                best = (pts[i], cand[i])
                break
        if best is not None:
            pos, heading = best
            path.append(pos)
            laid += step
            if len(path) > lag:
                placed = np.vstack([placed, path[-lag - 1]])
                placed_r = np.append(placed_r, r)
            continue
        # stuck right away: a thinner (collapsed) loop may still fit here
        if 0 < len(path) <= 3 and r > radius[0] * 1.3:
            r = max(radius[0], r * 0.7)
            path = path[:1]
            pos = path[0]
            continue
        # stuck: close this loop, restart high up, far from the loops laid so far
        if len(path) > 3:
            tubes.append(Tube(np.array(path), np.full(len(path), r)))
        if path:
            placed = np.vstack([placed, np.array(path)])
            placed_r = np.append(placed_r, np.full(len(path), r))
        path = []
        restarts += 1
        if len(roomy) == 0:
            break
        r = float(np.exp(rng.uniform(*np.log(radius))))
        pts = origin + roomy[rng.integers(len(roomy), size=64)] * spacing
        pts = pts[rooms(pts) >= r + margin]
        if len(placed) and len(pts):
            gap = np.linalg.norm(pts[:, None] - placed[None], axis=2) - placed_r[None] - r
            pts = pts[gap.min(axis=1) > 2.0]
        if len(pts) == 0:
            continue
        first = int(np.argmax(pts[:, 2] + rng.uniform(0, 40, len(pts))))
        pos, heading, path = pts[first], rng.normal(0, 1, 3), [pts[first]]
    if len(path) > 3:
        tubes.append(Tube(np.array(path), np.full(len(path), r)))
    return [(t, True) for t in collapsed] + [(t, False) for t in tubes]


def paint_small_bowel(scene, anatomy):
    rng = np.random.default_rng(anatomy.seed + 2)
    for tube, collapsed in anatomy.small_bowel:
        if collapsed:
            paint_gut_tube(scene, tube, 2.0, Tissue.CHYME, 0.0, 0, collar=0.0)
            continue
        u = rng.random()
        if anatomy.contrast and u < 0.5:
            contents = Tissue.ORAL_CONTRAST
        elif u < 0.75:
            contents = Tissue.CHYME  # collapsed loop
        else:
            contents = Tissue.FLUID
        gas = rng.uniform(0.1, 0.5) if rng.random() < 0.3 else 0.0
        paint_gut_tube(scene, tube, rng.uniform(1.8, 3.0), contents, gas, rng.integers(2 ** 31), collar=0.8)


def seeds_around(rng, tube, count=40, gap=1.5):
    """Candidate loop starts hugging a tube (the pancreas): ``(n, 4)`` rows x, y, z, r."""
    samples, radii, _ = tube.sample(4.0)
    pick = rng.integers(len(samples), size=count)
    r = rng.uniform(4.5, 9.0, count)
    d = rng.normal(0, 1, (count, 3)) * [1.0, 1.0, 0.7]
    d[:, 1] = np.abs(d[:, 1]) * rng.choice([1, 1, -1], count)  # mostly in front
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    centres = samples[pick] + d * (radii[pick] + gap + r)[:, None]
    return np.column_stack([centres, r])


def plan_grid(fov_lo, fov_hi):
    """The fixed 3 mm grid on which the bowel walk sees free space."""
    shape = np.round((np.asarray(fov_hi) - np.asarray(fov_lo)) / 3.0).astype(int)
    return Grid.covering(fov_lo, fov_hi, tuple(shape))
