"""tfpanc.export.graph_components against scipy: random masks, long snakes and spirals, borders, empty."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import ball, disk

from tfpanc.data.preprocess import largest_component as np_largest
from tfpanc.inference.components import components_fitting as np_fitting
from tfpanc.inference.components import keep_large_components as np_keep

tf = pytest.importorskip("tensorflow")
gc = pytest.importorskip("tfpanc.export.graph_components")

_FNS = {}


def _graph(name, rank, fn):
    """One tf.function per (name, rank), traced once for any shape (as in a serving graph)."""
    key = (name, rank)
    if key not in _FNS:
        _FNS[key] = tf.function(fn, input_signature=[tf.TensorSpec([None] * rank, tf.bool)])
    return _FNS[key]


def _label(mask, connectivity=1):
    fn = _graph(f"label{connectivity}", mask.ndim, lambda m: gc.label(m, connectivity))
    labels, count = fn(mask)
    return labels.numpy(), int(count)


def _steps(mask, connectivity=1):
    fn = _graph(f"steps{connectivity}", mask.ndim, lambda m: gc._root_labels(m, connectivity)[1])
    return int(fn(mask))


def snake(shape, length, run=20, z_step=2):
    """A one-voxel-wide path of ``length`` voxels folded in 3D: runs of ``run`` voxels along x,
    rows two apart in y, layers two apart in z (no two folds touch)."""
    m = np.zeros(shape, bool)
    n, x, y, z, dx, dy = 0, 1, 1, 1, 1, 2
    while n < length:
        m[x, y, z] = True
        n += 1
        if 1 <= x + dx <= run:
            x += dx
            continue
        dx = -dx
        if not 1 <= y + dy < shape[1] - 1:
            dy = -dy
            m[x, y, z + 1] = True
            z += z_step
            n += 1
            continue
        m[x, y + dy // 2, z] = True
        y += dy
        n += 1
    return m


def spiral(size, z=1, depth=3):
    """A square spiral in one plane (a single path to the centre)."""
    m = np.zeros((size, size, depth), bool)
    lo, hi = 1, size - 2
    x, y = lo, lo
    m[x, y, z] = True
    for turn in range(4 * size):
        dx, dy = [(1, 0), (0, 1), (-1, 0), (0, -1)][turn % 4]
        steps = (hi - lo) - 2 * (turn // 2) + (1 if turn == 0 else 0)
        if steps <= 1:
            break
        for _ in range(steps - 1):
            x, y = x + dx, y + dy
            m[x, y, z] = True
    return m


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.7, 0.95])
def test_label_equals_scipy_on_random_masks(density):
    rng = np.random.default_rng(int(density * 100))
    for shape in ((19, 23, 11), (1, 7, 5), (30, 2, 1)):
        m = rng.random(shape) < density
        for connectivity in (1, 2, 3):
            ours, count = _label(m, connectivity)
            theirs, n = ndimage.label(m, ndimage.generate_binary_structure(3, connectivity))
            assert count == n and np.array_equal(ours, theirs), (shape, connectivity)
    m2 = rng.random((40, 31)) < density
    for connectivity in (1, 2):
        ours, count = _label(m2, connectivity)
        theirs, n = ndimage.label(m2, ndimage.generate_binary_structure(2, connectivity))
        assert count == n and np.array_equal(ours, theirs)


@pytest.mark.parametrize("name", ["snake", "snake_flipped", "spiral", "border"])
def test_long_paths_take_few_steps(name):
    if name == "spiral":
        m = spiral(64)
    else:
        m = snake((96, 96, 64), 2000)
        if name == "snake_flipped":  # the path's raster order reversed
            m = m[::-1, ::-1, ::-1].copy()
        if name == "border":  # touching every face of the volume
            m = snake((22, 96, 64), 2000, run=20)
            m[0, 1, 1] = m[21, :, 10] = m[5, 0, 1] = m[:, 95, 12] = m[1, 1, 0] = m[3, 3, 63] = True
    theirs, n = ndimage.label(m)
    ours, count = _label(m)
    assert count == n and np.array_equal(ours, theirs)
    if name != "border":
        assert n == 1 and m.sum() >= 1500  # one long path: plain propagation needs ~m.sum() steps
    assert _steps(m) <= 12


def test_empty_full_and_single_voxel():
    for m in (np.zeros((5, 6, 7), bool), np.zeros((0, 3, 3), bool), np.ones((4, 5, 6), bool)):
        ours, count = _label(m)
        theirs, n = ndimage.label(m)
        assert count == n and np.array_equal(ours, theirs)
    m = np.zeros((3, 3, 3), bool)
    m[2, 2, 2] = True
    assert _label(m)[1] == 1 and _label(m)[0][2, 2, 2] == 1


def _keep(m, ratio, volume_size=None):
    fn = _FNS.get("keep") or _FNS.setdefault("keep", tf.function(
        gc.keep_large_components, input_signature=[tf.TensorSpec([None] * 3, tf.bool),
                                                   tf.TensorSpec([], tf.float64), tf.TensorSpec([], tf.float64)]))
    return fn(m, ratio, m.size if volume_size is None else volume_size).numpy()


def test_keep_large_components_equals_numpy():
    rng = np.random.default_rng(3)
    for density in (0.02, 0.1, 0.25, 0.45):
        m = ndimage.binary_opening(rng.random((30, 26, 14)) < density * 2.5) & (rng.random((30, 26, 14)) < 0.9)
        for ratio in (0.0, 0.3, 0.5, 1.0):
            assert np.array_equal(_keep(m, ratio), np_keep(m, ratio)), (density, ratio)
    # Ties at the ratio, half the volume or more (unchanged), a crop of a larger volume, empty.
    m = np.zeros((20, 3, 3), bool)
    m[0:4] = True
    m[6:8] = True
    assert np.array_equal(_keep(m, 0.5), np_keep(m, 0.5)) and _keep(m, 0.5)[6:8].all()
    half = np.zeros((4, 4, 4), bool)
    half[:2] = True
    half[3, 3, 3] = True
    assert _keep(half, 0.5).sum() == np_keep(half, 0.5).sum() == 33
    small = np.zeros((4, 4, 4), bool)
    small[0, 0, :3] = small[3, 3, 3] = True
    assert np.array_equal(_keep(small, 0.5, volume_size=6), np_keep(small, 0.5, volume_size=6))
    assert not _keep(np.zeros((3, 4, 5), bool), 0.5).any()


def test_largest_component_equals_numpy():
    rng = np.random.default_rng(4)
    fn = tf.function(gc.largest_component, input_signature=[tf.TensorSpec([None] * 3, tf.bool)])
    for density in (0.01, 0.05, 0.2, 0.5):
        m = rng.random((25, 20, 9)) < density
        assert np.array_equal(fn(m).numpy(), np_largest(m)), density
    tie = np.zeros((9, 9, 3), bool)
    tie[6:8, 6:8, 1] = tie[0:2, 0:2, 1] = tie[4, 0, 0] = True  # two of 4 voxels: the first in raster order
    assert np.array_equal(fn(tie).numpy(), np_largest(tie)) and fn(tie).numpy()[0, 0, 1]
    assert not fn(np.zeros((4, 4, 4), bool)).numpy().any() and np_largest(np.zeros((4, 4, 4), bool)) is None


def test_components_fitting_equals_numpy():
    rng = np.random.default_rng(6)
    for density, size in ((0.01, (8, 8, 4)), (0.05, (12, 6, 9)), (0.2, (3, 3, 3)), (0.02, (25, 20, 9))):
        m = rng.random((25, 20, 9)) < density
        want = np_fitting(m, size)
        got = gc.components_fitting(tf.constant(m), size).numpy()
        assert np.array_equal(got, want), (density, size)
        assert 0 < want.sum() < m.sum() or size == (25, 20, 9)  # some kept, some left out: the rule ran
    assert not gc.components_fitting(tf.constant(np.zeros((4, 4, 4), bool)), (2, 2, 2)).numpy().any()


def _opening(m, structure):
    return gc.binary_opening(tf.constant(m), structure).numpy()  # eager: one trace per structure costs more


def test_binary_opening_equals_scipy():
    rng = np.random.default_rng(5)
    m = ndimage.binary_dilation(rng.random((24, 21, 17)) < 0.04, iterations=2)
    m[0:6, 0:6, 0:6] = True          # touching three faces: eroded at the border as scipy
    m[-8:, 5:12, -1] = True
    structures = [ball(r).astype(bool) for r in (1, 2, 3)] + [
        np.ones((2, 2, 2), bool), np.ones((3, 1, 4), bool), rng.random((3, 4, 2)) < 0.6,
        np.pad(np.ones((1, 1, 1), bool), ((0, 2), (1, 0), (0, 1)))]
    for s in structures:
        assert np.array_equal(_opening(m, s), ndimage.binary_opening(m, structure=s)), s.shape
    m2 = rng.random((30, 27)) < 0.6
    for s in (disk(1).astype(bool), disk(2).astype(bool), np.ones((2, 3), bool)):
        assert np.array_equal(_opening(m2, s), ndimage.binary_opening(m2, structure=s))
    assert not _opening(np.zeros((5, 5, 5), bool), ball(1)).any()
    full = np.ones((6, 7, 8), bool)
    assert np.array_equal(_opening(full, ball(2)), ndimage.binary_opening(full, structure=ball(2)))
    assert not _opening(full, np.zeros((3, 3, 3), bool)).any() and not ndimage.binary_opening(
        full, structure=np.zeros((3, 3, 3), bool)).any()
