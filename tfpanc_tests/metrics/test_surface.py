"""Surface/voxel distances and slice AVD on shapes with known answers,
checked against SimpleITK as an independent implementation."""

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tfpanc.metrics import surface

REALDATA = Path(os.environ.get("TFPANC_REALDATA",
                               Path(__file__).resolve().parents[3] / "shared" / "realdata"))


def _box_mask(shape, box):
    m = np.zeros(shape, bool)
    m[tuple(slice(lo, hi) for lo, hi in box)] = True
    return m


def _ellipsoid(shape, spacing, centre, radii):
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing)],
                        indexing="ij")
    return sum((g / r) ** 2 for g, r in zip(grids, radii)) <= 1.0


def _sitk(mask, spacing):
    image = sitk.GetImageFromArray(mask.astype(np.uint8).transpose(2, 1, 0))
    image.SetSpacing(spacing)
    return image


def _numpy(image):
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def test_surface_of_a_cube_is_its_shell():
    m = _box_mask((7, 7, 7), [[1, 6], [1, 6], [1, 6]])
    s = surface.surface_mask(m)
    assert s.sum() == 5 ** 3 - 3 ** 3
    assert not s[2:5, 2:5, 2:5].any()


def test_mask_touching_the_array_edge_has_surface_there():
    # Outside the array counts as background, as if the array were padded.
    a = _box_mask((6, 6, 6), [[0, 3], [0, 3], [0, 3]])
    b = _box_mask((6, 6, 6), [[0, 4], [1, 3], [0, 2]])
    d_edge = surface.surface_distances(a, b, (0.8, 0.9, 1.5))
    d_pad = surface.surface_distances(np.pad(a, 2), np.pad(b, 2), (0.8, 0.9, 1.5))
    for x, y in zip(d_edge, d_pad):
        np.testing.assert_allclose(np.sort(x), np.sort(y))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_offset_boxes_hausdorff_is_shift_times_spacing(axis, k):
    spacing = (0.7, 0.9, 2.5)
    box = [[4, 14], [5, 13], [3, 9]]
    shifted = [list(r) for r in box]
    shifted[axis] = [box[axis][0] + k, box[axis][1] + k]
    a = _box_mask((22, 22, 16), box)
    b = _box_mask((22, 22, 16), shifted)
    assert surface.hausdorff(a, b, spacing) == pytest.approx(k * spacing[axis], abs=1e-9)
    assert 0 < surface.hd95(a, b, spacing) <= k * spacing[axis] + 1e-9
    # Voxel AVD: k slabs of the box are outside the other box, at 1..k
    # voxels, in each direction: mean = sum(1..k) * s * slab / volume.
    size = np.prod([hi - lo for lo, hi in box])
    slab = size / (box[axis][1] - box[axis][0])
    expected = k * (k + 1) / 2 * spacing[axis] * slab / size
    assert surface.avd(a, b, spacing) == pytest.approx(expected)


def test_far_apart_single_voxels():
    a = np.zeros((5, 5, 40), bool)
    b = np.zeros((5, 5, 40), bool)
    a[2, 2, 2] = True
    b[2, 2, 30] = True
    spacing = (0.8, 0.8, 1.5)
    d = surface.distance_summary(*surface.surface_distances(a, b, spacing))
    assert d == pytest.approx({"hd": 42.0, "hd95": 42.0, "assd": 42.0, "avd": 42.0})
    assert surface.avd(a, b, spacing) == pytest.approx(42.0)


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 1.5), (1.0, 0.6, 2.0)])
def test_concentric_spheres(spacing):
    r1, r2 = 6.0, 10.0
    shape = tuple(int(np.ceil(26 / s)) for s in spacing)
    centre = [n / 2 for n in shape]
    inner = _ellipsoid(shape, spacing, centre, (r1,) * 3)
    outer = _ellipsoid(shape, spacing, centre, (r2,) * 3)
    # Voxelisation moves a sphere's voxel surface by up to half a voxel.
    tol = max(spacing) / 2
    d = surface.distance_summary(*surface.surface_distances(inner, outer, spacing))
    for name in ("hd", "hd95", "assd", "avd"):
        assert d[name] == pytest.approx(r2 - r1, abs=tol), name
    # Voxel AVD: inner voxels count 0; outer voxels at radius r are r - r1
    # from the inner ball: mean over the outer ball, halved (two directions).
    mean_outer = 3 / r2 ** 3 * (r2 ** 4 / 4 - r1 * r2 ** 3 / 3 + r1 ** 4 / 12)
    assert surface.avd(inner, outer, spacing) == pytest.approx(mean_outer / 2, abs=tol / 2)


def test_empty_masks_conventions():
    empty = np.zeros((6, 6, 6), bool)
    m = _box_mask((6, 6, 6), [[1, 4], [1, 4], [1, 4]])
    for fn in (surface.hausdorff, surface.hd95, surface.assd, surface.avd, surface.avd_surface):
        assert fn(empty, empty, 1.0) == 0.0
        assert fn(m, empty, 1.0) == np.inf
        assert fn(empty, m, 1.0) == np.inf
    d_pred, d_label = surface.surface_distances(m, empty, 1.0)
    assert d_pred.size == 26 and np.isinf(d_pred).all() and d_label.size == 0


def test_bad_spacing_raises():
    m = _box_mask((6, 6, 6), [[1, 4], [1, 4], [1, 4]])
    with pytest.raises(ValueError, match="positive"):
        surface.hausdorff(m, m, (1.0, 0.0, 1.0))


# --- SimpleITK as the independent implementation ------------------------------

SPACING = (0.7, 0.9, 2.5)


@pytest.fixture(scope="module")
def two_ellipsoids():
    a = _ellipsoid((60, 50, 24), SPACING, (30, 25, 12), (12, 9, 20))
    b = _ellipsoid((60, 50, 24), SPACING, (33, 23, 11.4), (10, 11, 17))
    return a, b


def _sitk_surface_distances(x, y):
    """Distances from x's contour voxels to y's, via SimpleITK."""
    cx = sitk.LabelContour(_sitk(x, SPACING), fullyConnected=False)
    cy = sitk.LabelContour(_sitk(y, SPACING), fullyConnected=False)
    dist = sitk.Abs(sitk.SignedMaurerDistanceMap(cy, insideIsPositive=False, squaredDistance=False,
                                                 useImageSpacing=True))
    return _numpy(dist)[_numpy(cx) > 0]


def test_surface_is_simpleitk_label_contour(two_ellipsoids):
    a, _ = two_ellipsoids
    contour = _numpy(sitk.LabelContour(_sitk(a, SPACING), fullyConnected=False)) > 0
    np.testing.assert_array_equal(surface.surface_mask(a), contour)


def test_surface_distances_agree_with_simpleitk(two_ellipsoids):
    a, b = two_ellipsoids
    d_ab, d_ba = surface.surface_distances(a, b, SPACING)
    assert d_ab.max() > 2.0  # the shapes really differ
    # SimpleITK's distance map is float32: agreement to ~1e-5 mm.
    np.testing.assert_allclose(np.sort(d_ab), np.sort(_sitk_surface_distances(a, b)), atol=1e-4)
    np.testing.assert_allclose(np.sort(d_ba), np.sort(_sitk_surface_distances(b, a)), atol=1e-4)


def test_hausdorff_and_voxel_avd_agree_with_simpleitk(two_ellipsoids):
    a, b = two_ellipsoids
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(_sitk(a, SPACING), _sitk(b, SPACING))
    assert surface.hausdorff(a, b, SPACING) == pytest.approx(f.GetHausdorffDistance(), abs=1e-4)
    # SimpleITK's "average Hausdorff distance" is over all object voxels.
    assert surface.avd(a, b, SPACING) == pytest.approx(f.GetAverageHausdorffDistance(), rel=1e-6)
    assert surface.avd_surface(a, b, SPACING) > 2 * surface.avd(a, b, SPACING)


# --- slice-to-slice AVD ---------------------------------------------------------


def _prism(nz, square, shifts=None):
    """A square cross-section in every slice, moved along x by shifts[k]."""
    m = np.zeros((16, 12, nz), bool)
    for k in range(nz):
        dx = 0 if shifts is None else shifts[k]
        m[2 + dx:2 + dx + square, 3:3 + square, k] = True
    return m


def test_slice_avd_of_a_straight_prism_is_zero():
    m = np.zeros((16, 12, 8), bool)
    m[:, :, 2:6] = _prism(4, 4)
    s = surface.slice_avd(m, (0.8, 0.8, 2.0))
    assert s.shape == (7,)
    assert s[0] == 0.0 and s[6] == 0.0          # both empty
    assert np.isinf(s[1]) and np.isinf(s[5])    # organ starts / ends
    assert np.all(s[2:5] == 0.0)


@pytest.mark.parametrize("shift", [1, 3])
def test_slice_avd_of_a_shifted_square(shift):
    n, sx = 4, 0.8
    m = _prism(2, n, shifts=[0, shift])
    # Each direction: `shift` columns of n voxels outside the other square,
    # at 1..shift voxels along x; averaged over the n*n voxels.
    directed = n * sx * shift * (shift + 1) / 2 / (n * n)
    assert surface.slice_avd(m, (sx, 0.5, 3.0))[0] == pytest.approx(directed)
    assert surface.abnormal_shape_changes(m, (sx, 0.5, 3.0)) == int(directed > 0.5)


def test_abnormal_shape_changes_counts_jumps_and_gaps():
    spacing = (0.8, 0.8, 2.0)
    shifts = [0, 0, 3, 3, 3, 3, 3, 3]
    m = _prism(8, 4, shifts)
    assert surface.abnormal_shape_changes(m, spacing) == 1
    assert surface.abnormal_shape_changes(m, spacing, threshold_mm=2.0) == 0
    m[:, :, 5] = False  # a lost slice inside the organ: two abnormal pairs
    assert surface.abnormal_shape_changes(m, spacing) == 3
    padded = np.pad(m, ((0, 0), (0, 0), (3, 3)))  # empty slices outside do not count
    assert surface.abnormal_shape_changes(padded, spacing) == 3
    assert surface.abnormal_shape_changes(np.zeros((4, 4, 4)), spacing) == 0


@pytest.mark.realdata
def test_real_pancreas_label_neighbouring_slices():
    path = REALDATA / "msd_task07_labels" / "pancreas_021.label.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} absent")
    from tfpanc.data.io import load_volume

    vol = load_volume(path)
    label = vol.array > 0
    assert vol.spacing[2] == pytest.approx(2.5)
    zs = np.flatnonzero(label.any(axis=(0, 1)))
    pairs = surface.slice_avd(label, vol.spacing)[zs[0]:zs[-1]]
    # Cai et al. measured ground-truth neighbouring-slice AVD of 0.35 +- 0.94
    # mm on NIH CT (2 mm slices) and call > 0.5 mm abnormal: most real pairs
    # must be well below that threshold.
    assert np.median(pairs) < 0.5
    assert np.mean(pairs[np.isfinite(pairs)]) < 1.0
    # A real shape against a copy moved by one voxel in x and z: SimpleITK agrees.
    moved = np.roll(np.roll(label, 1, axis=0), 1, axis=2)
    crop = surface.union_crop(label, moved, margin=2)
    f = sitk.HausdorffDistanceImageFilter()
    img = lambda m: _sitk(m[crop], vol.spacing)  # noqa: E731
    f.Execute(img(moved), img(label))
    assert surface.avd(moved, label, vol.spacing) == pytest.approx(
        f.GetAverageHausdorffDistance(), rel=1e-6)
    assert surface.hausdorff(moved, label, vol.spacing) == pytest.approx(
        f.GetHausdorffDistance(), abs=1e-4)


def test_mean_slice_avd_of_a_staircase():
    # A 3x3 square moving one 0.5 mm pixel along x per slice: per pair, 3 of
    # the 9 voxels of each slice are 0.5 mm from the other slice's square.
    m = np.zeros((16, 8, 6), bool)
    for k in range(1, 5):
        m[2 + k:5 + k, 2:5, k] = True
    spacing = (0.5, 0.7, 3.0)
    assert surface.mean_slice_avd(m, spacing) == pytest.approx(0.5 * 3 / 9)
    m[:, :, 3] = False  # a gap: its pairs are left to abnormal_shape_changes
    assert surface.mean_slice_avd(m, spacing) == pytest.approx(0.5 * 3 / 9)
    assert surface.mean_slice_avd(np.zeros((4, 4, 4), bool), spacing) == 0.0
