"""The phantom's drawing tools: world grid, boxes, smooth fields and tubes.

Everything is placed in world millimetres (RAS: +x patient right, +y
anterior, +z superior), never in voxels, so one case looks the same at any
``shape``: only the sampling changes. Shapes are drawn inside the bounding
box of each structure (a :class:`Box`) rather than on the whole grid, because
a 512x512x240 case has 63 million voxels and must be drawn in seconds.

Two primitives do most of the work:

* :func:`spline_field`: a smooth random field, a tensor-product cubic
  B-spline whose knots sit on a world lattice; evaluated with three small
  matrix products, so its cost is one pass over the box.
* :func:`tube_field`: distance to a tube of varying radius along a sampled
  curve, as the minimum over spheres centred on the samples ("splats"), with
  the index of the nearest sample for properties that vary along the tube.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Grid:
    """A voxel grid in world mm: voxel ``i`` of axis ``d`` is at ``origin[d] + i * spacing[d]``.

    Args:
        shape: voxels per axis.
        spacing: voxel size in mm.
        origin: world position of voxel ``(0, 0, 0)``'s centre.
    """

    shape: tuple
    spacing: tuple
    origin: tuple

    @classmethod
    def covering(cls, fov_lo, fov_hi, shape):
        """The grid of ``shape`` voxels filling the box ``[fov_lo, fov_hi]``."""
        lo = np.asarray(fov_lo, float)
        spacing = (np.asarray(fov_hi, float) - lo) / np.asarray(shape, float)
        return cls(tuple(int(s) for s in shape), tuple(spacing.tolist()),
                   tuple((lo + spacing / 2).tolist()))

    def axis(self, d):
        return (self.origin[d] + self.spacing[d] * np.arange(self.shape[d])).astype(np.float32)

    def box(self, lo, hi):
        """The :class:`Box` of voxels whose centres lie in world ``[lo, hi]``."""
        slices, coords = [], []
        for d in range(3):
            a = (lo[d] - self.origin[d]) / self.spacing[d]
            b = (hi[d] - self.origin[d]) / self.spacing[d]
            i0 = int(np.clip(np.ceil(a), 0, self.shape[d]))
            i1 = int(np.clip(np.floor(b) + 1, i0, self.shape[d]))
            slices.append(slice(i0, i1))
            coords.append(self.origin[d] + self.spacing[d] * np.arange(i0, i1, dtype=np.float64))
        return Box(tuple(slices), tuple(c.astype(np.float32) for c in coords))

    def full_box(self):
        return self.box([-np.inf] * 3, [np.inf] * 3)


@dataclasses.dataclass(frozen=True)
class Box:
    """A block of a :class:`Grid`: index ``slices`` and world ``coords`` per axis."""

    slices: tuple
    coords: tuple

    @property
    def shape(self):
        return tuple(len(c) for c in self.coords)

    @property
    def empty(self):
        return min(self.shape) == 0

    def xyz(self):
        """Broadcastable world coordinate arrays ``x[:, None, None]``, ..."""
        x, y, z = self.coords
        return x[:, None, None], y[None, :, None], z[None, None, :]


def bspline_basis(coords, knot0, step, count):
    """Cubic B-spline weights, shape ``(len(coords), count)``.

    Knot ``j`` sits at ``knot0 + j * step``; a coordinate only sees its four
    neighbouring knots, so the matrix is banded (built dense: it is small).
    """
    t = (np.asarray(coords, np.float64) - knot0) / step
    cell = np.floor(t).astype(int)
    f = t - cell
    weights = np.stack([(1 - f) ** 3 / 6, (3 * f ** 3 - 6 * f ** 2 + 4) / 6,
                        (-3 * f ** 3 + 3 * f ** 2 + 3 * f + 1) / 6, f ** 3 / 6], axis=1)
    basis = np.zeros((len(t), count), np.float32)
    rows = np.arange(len(t))
    for k in range(4):
        j = cell - 1 + k
        ok = (j >= 0) & (j < count)
        basis[rows[ok], j[ok]] = weights[ok, k]
    return basis


class SplineField:
    """A smooth random field in world space, drawn once, evaluated on any box.

    Coefficients are i.i.d. normal on a world lattice with ``step`` mm
    spacing; the field's standard deviation is scaled to about ``amplitude``
    (cubic B-splines average neighbouring knots, which shrinks it to ~0.33).

    Args:
        rng: numpy Generator.
        lo, hi: world box the field must cover (mm).
        step: knot spacing in mm per axis (scalar or 3 values): the size of
            the field's features.
        amplitude: standard deviation of the field.

    Example:
    >>> g = Grid.covering([0, 0, 0], [64, 64, 64], (16, 16, 16))
    >>> f = SplineField(np.random.default_rng(0), [0, 0, 0], [64, 64, 64], 16, 1.0)
    >>> f.on(g.full_box()).shape
    (16, 16, 16)
    """

    _SHRINK = 0.33  # std of a cubic B-spline sum of unit-variance knots in 3D: (151/315)**1.5

    def __init__(self, rng, lo, hi, step, amplitude=1.0):
        self.step = np.broadcast_to(np.asarray(step, float), (3,)).copy()
        self.knot0 = np.asarray(lo, float) - self.step
        self.count = (np.ceil((np.asarray(hi, float) - self.knot0) / self.step).astype(int) + 2)
        scale = amplitude / self._SHRINK
        self.coef = (rng.standard_normal(tuple(self.count)) * scale).astype(np.float32)

    def on(self, box, stride=(1, 1, 1)):
        """The field on ``box``, float32 of ``box.shape``.

        ``stride`` evaluates every n-th voxel per axis and repeats it: for
        fields much smoother than the voxel size, at a fraction of the cost.
        """
        if any(s > 1 for s in stride):
            sub = Box(box.slices, tuple(c[::s] for c, s in zip(box.coords, stride)))
            out = self.on(sub)
            for d, s in enumerate(stride):
                if s > 1:
                    out = np.repeat(out, s, axis=d)[(slice(None),) * d + (slice(0, box.shape[d]),)]
            return out
        coef = self.coef
        bases = []
        for d in range(3):
            c = box.coords[d]
            # only the knots whose support overlaps the box (cost ~ box size, not field size)
            j0 = int(np.clip(np.floor((c.min(initial=0) - self.knot0[d]) / self.step[d]) - 1, 0, self.count[d]))
            j1 = int(np.clip(np.floor((c.max(initial=0) - self.knot0[d]) / self.step[d]) + 3, j0, self.count[d]))
            coef = np.take(coef, np.arange(j0, j1), axis=d)
            bases.append(bspline_basis(c, self.knot0[d] + j0 * self.step[d], self.step[d], j1 - j0))
        bx, by, bz = bases
        a, b, c = coef.shape
        # Contract z, then y, then x so that the result needs no transpose.
        t = (coef.reshape(a * b, c) @ bz.T).reshape(a, b, -1)
        t = np.matmul(by[None], t)
        return (bx @ t.reshape(a, -1)).reshape(box.shape)


def catmull_rom(points, step):
    """Samples a smooth curve through ``points`` every ~``step`` mm.

    Args:
        points: ``(n, 3)`` control points the curve passes through.
        step: sample spacing in mm.

    Returns:
        ``(samples (m, 3), t (m,))`` with ``t`` in [0, 1] along the control
        points (0 at the first, 1 at the last).
    """
    p = np.asarray(points, float)
    if len(p) == 1:
        return p.copy(), np.zeros(1)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out, ts = [], []
    n_seg = len(p) - 1
    for i in range(n_seg):
        p0, p1, p2, p3 = ext[i:i + 4]
        n = max(2, int(np.ceil(np.linalg.norm(p2 - p1) / step)))
        u = np.linspace(0, 1, n, endpoint=(i == n_seg - 1))[:, None]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * u ** 3))
        ts.append((i + u[:, 0]) / n_seg)
    return np.vstack(out), np.concatenate(ts)


def resample_curve(samples, values, step):
    """Resamples a polyline (and per-sample values) at ~``step`` mm arc length."""
    seg = np.linalg.norm(np.diff(samples, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.linspace(0, arc[-1], max(2, int(np.ceil(arc[-1] / step)) + 1))
    pts = np.stack([np.interp(s, arc, samples[:, d]) for d in range(3)], axis=1)
    vals = np.stack([np.interp(s, arc, v) for v in np.atleast_2d(values)], axis=0)
    return pts, vals, s


def tube_bounds(points, radii, margin=0.0):
    """World box ``(lo, hi)`` around a tube, with ``margin`` (mm) added."""
    r = np.asarray(radii, float)[:, None] + margin
    p = np.asarray(points, float)
    return (p - r).min(axis=0), (p + r).max(axis=0)


def tube_field(box, points, radii, reach=1.0, scale=(1.0, 1.0, 1.0), with_index=False):
    """Normalised distance ``min_k |p - c_k| / r_k`` to a tube made of spheres.

    Inside the tube the value is < 1; it is computed out to ``reach`` (>= 1)
    and is ``inf`` beyond. Samples should be closer than about r/3 for a
    smooth surface.

    Args:
        box: where to evaluate (:class:`Box`).
        points: ``(m, 3)`` centre-line samples, world mm.
        radii: ``(m,)`` radii in mm.
        reach: how far out (in radii) to compute the field.
        scale: per-axis stretch of the spheres (an ellipsoidal cross-section:
            ``scale[2] > 1`` makes the tube taller in z than wide).
        with_index: also return the index of the nearest sample (-1 where
            the field is inf).

    Returns:
        float32 field of ``box.shape`` (and int32 indices when asked).
    """
    q = np.full(box.shape, np.inf, np.float32)
    idx = np.full(box.shape, -1, np.int32) if with_index else None
    if box.empty or len(points) == 0:
        return (q, idx) if with_index else q
    points = np.asarray(points, np.float32)
    radii = np.asarray(radii, np.float32)
    scale = np.asarray(scale, np.float32)
    half = (radii * reach)[:, None] * scale[None, :]
    # index range of every sphere along each axis, all at once
    lo = np.stack([np.searchsorted(box.coords[d], points[:, d] - half[:, d], "left") for d in range(3)], 1)
    hi = np.stack([np.searchsorted(box.coords[d], points[:, d] + half[:, d], "right") for d in range(3)], 1)
    inv = 1.0 / (radii[:, None] * scale[None, :])
    for k in np.nonzero(np.all(hi > lo, axis=1))[0]:
        (i0, j0, k0), (i1, j1, k1) = lo[k], hi[k]
        c, s = points[k], inv[k]
        ax = ((box.coords[0][i0:i1] - c[0]) * s[0]) ** 2
        ay = ((box.coords[1][j0:j1] - c[1]) * s[1]) ** 2
        az = ((box.coords[2][k0:k1] - c[2]) * s[2]) ** 2
        local = np.sqrt(ax[:, None, None] + ay[None, :, None] + az[None, None, :])
        sl = (slice(i0, i1), slice(j0, j1), slice(k0, k1))
        view = q[sl]
        if with_index:
            closer = local < view
            view[closer] = local[closer]
            idx[sl][closer] = k
        else:
            np.minimum(view, local, out=view)
    if reach < np.inf:
        q[q > reach] = np.inf
        if with_index:
            idx[~np.isfinite(q)] = -1
    return (q, idx) if with_index else q


def ellipsoid_field(box, centre, radii, rotation=None):
    """Normalised ellipsoid radius ``|R^T (p - c) / radii|`` on ``box`` (<1 inside)."""
    x, y, z = box.xyz()
    d = [x - centre[0], y - centre[1], z - centre[2]]
    if rotation is not None:
        rot = np.asarray(rotation, np.float32)
        d = [rot[0, i] * d[0] + rot[1, i] * d[1] + rot[2, i] * d[2] for i in range(3)]
    return np.sqrt((d[0] / radii[0]) ** 2 + (d[1] / radii[1]) ** 2 + (d[2] / radii[2]) ** 2)


def rotation(z_deg=0.0, y_deg=0.0, x_deg=0.0):
    """Rotation matrix (applied as ``R @ v``) from angles about z, then y, then x."""
    a, b, c = np.deg2rad([z_deg, y_deg, x_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rx @ ry @ rz


@dataclasses.dataclass
class Tube:
    """A tube through control ``points`` (n, 3) with ``radii`` (n,) at them."""

    points: np.ndarray
    radii: np.ndarray

    def sample(self, step=None):
        """Centre-line samples, radii and position ``t`` in [0, 1] along the tube."""
        radii = np.asarray(self.radii, float)
        step = step or max(0.4, radii.min() / 2.5)
        samples, t = catmull_rom(self.points, step)
        return samples, np.interp(t, np.linspace(0, 1, len(radii)), radii), t


def push_apart(points, radii, obstacles, gap, iterations=6, fixed=()):
    """Moves tube control points out of spherical obstacles.

    Args:
        points: ``(n, 3)`` control points (a new array is returned).
        radii: ``(n,)`` tube radii at them.
        obstacles: ``(m, 4)`` rows ``x, y, z, radius``.
        gap: wanted clearance in mm.
        fixed: indices of points that must not move.
    """
    pts = np.array(points, float)
    obs = np.asarray(obstacles, float).reshape(-1, 4)
    free = np.ones(len(pts), bool)
    free[list(fixed)] = False
    for _ in range(iterations):
        d = pts[:, None, :] - obs[None, :, :3]
        dist = np.linalg.norm(d, axis=2) + 1e-6
        need = np.asarray(radii)[:, None] + obs[None, :, 3] + gap
        overlap = np.clip(need - dist, 0, None) * free[:, None]
        if not overlap.any():
            break
        pts += (d / dist[..., None] * overlap[..., None]).sum(axis=1)
    return pts


def tube_obstacles(tube, step=None):
    """Spheres ``(x, y, z, r)`` along a tube, for :func:`push_apart`."""
    samples, radii, _ = tube.sample(step or 4.0)
    return np.column_stack([samples, radii])


def ellipsoid_obstacles(centre, radii, rot):
    """Spheres of the smallest semi-axis filling an ellipsoid's mid-plane."""
    radii = np.asarray(radii, float)
    thin = int(np.argmin(radii))
    r = radii[thin]
    a, b = [i for i in range(3) if i != thin]
    ua = np.linspace(-1, 1, max(1, int(np.ceil(2 * (radii[a] - r) / r)) + 1)) * (radii[a] - r)
    ub = np.linspace(-1, 1, max(1, int(np.ceil(2 * (radii[b] - r) / r)) + 1)) * (radii[b] - r)
    ga, gb = np.meshgrid(ua, ub, indexing="ij")
    inside = (ga / max(radii[a] - r, 1e-6)) ** 2 + (gb / max(radii[b] - r, 1e-6)) ** 2 <= 1.0001
    rot = np.asarray(rot, float)
    pts = np.asarray(centre, float) + np.outer(ga[inside], rot[:, a]) + np.outer(gb[inside], rot[:, b])
    return np.column_stack([pts, np.full(len(pts), r)])
