"""Tests of the synthetic phantom: determinism, geometry, realism bounds, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tfpanc.data.io import load_volume
from tfpanc.data.phantom import FOV_HI, FOV_LO, make_case, write_dataset
from tfpanc.data.phantom.appearance import _correlate_axis0, noise_gain, psf_kernel
from tfpanc.data.phantom.fields import Grid, SplineField, tube_field
from tfpanc.data.phantom.stats import (REAL_NIH_RANGE, best_interval_dsc, intensity_stats, outside_real_range,
                                       shape_stats, slice_intensity_stats)

REPO = Path(__file__).resolve().parents[2]
REALDATA = Path(os.environ.get("TFPANC_REALDATA", REPO.parent / "shared" / "realdata"))
SMALL = (128, 128, 64)  # 3.1 x 3.1 x 4.7 mm: coarse, but every organ is still there


@pytest.fixture(scope="module")
def small_cases():
    return [make_case(SMALL, seed=0, case_index=i) for i in range(3)]


# --- determinism -------------------------------------------------------------------------------------------------

def test_same_seed_same_case_other_seed_other_case():
    a = make_case((64, 64, 32), seed=5, case_index=1)
    b = make_case((64, 64, 32), seed=5, case_index=1)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    c = make_case((64, 64, 32), seed=6, case_index=1)
    d = make_case((64, 64, 32), seed=5, case_index=2)
    for other in (c, d):
        assert not np.array_equal(a.label, other.label)
        assert np.mean(a.image != other.image) > 0.5


def test_case_does_not_depend_on_dataset_size(tmp_path):
    write_dataset(tmp_path / "one", 1, (64, 64, 32), seed=2)
    write_dataset(tmp_path / "two", 2, (64, 64, 32), seed=2)
    for sub in ("imagesTr", "labelsTr"):
        a = nib.load(str(tmp_path / "one" / sub / "phantom_000.nii.gz"))
        b = nib.load(str(tmp_path / "two" / sub / "phantom_000.nii.gz"))
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))


# --- geometry ----------------------------------------------------------------------------------------------------

def test_fixed_field_of_view_same_anatomy_at_two_shapes(small_cases):
    fine = small_cases[0]
    coarse = make_case((96, 96, 48), seed=0, case_index=0)
    fov = np.subtract(FOV_HI, FOV_LO)
    np.testing.assert_allclose(np.multiply(coarse.spacing, (96, 96, 48)), fov)
    np.testing.assert_allclose(np.multiply(fine.spacing, SMALL), fov)
    # the same patient: pancreas volume and position agree to within the coarse voxel size
    vols = [shape_stats(c.label, c.spacing)["volume_ml"] for c in (fine, coarse)]
    assert abs(vols[0] - vols[1]) / vols[0] < 0.25
    centres = [np.argwhere(c.label).mean(axis=0) * c.spacing + c.origin for c in (fine, coarse)]
    assert np.linalg.norm(centres[0] - centres[1]) < 6.0


def test_ras_orientation(small_cases):
    case = small_cases[0]
    x = np.arange(SMALL[0]) * case.spacing[0] + case.origin[0]
    y = np.arange(SMALL[1]) * case.spacing[1] + case.origin[1]
    # the spine (bone next to the midline) is posterior: low y
    bone = case.image > 400
    bone[np.abs(x) > 30] = False
    assert y[np.nonzero(bone)[1]].mean() < -20
    # the liver (right) is at high x: bright parenchyma fills the right upper half, not the left
    upper = case.image[:, :, int(0.75 * SMALL[2])]
    parenchyma = (upper > 80) & (upper < 160)
    assert parenchyma[x > 40].sum() > 1.5 * parenchyma[x < -40].sum()
    # the pancreas head (patient right, high x) sits lower (z) than its tail (left, low x)
    idx = np.argwhere(case.label)
    right, left = idx[idx[:, 0] > np.percentile(idx[:, 0], 80)], idx[idx[:, 0] < np.percentile(idx[:, 0], 20)]
    assert right[:, 2].mean() < left[:, 2].mean()


def test_types_and_ranges(small_cases):
    case = small_cases[1]
    assert case.image.dtype == np.int16 and case.label.dtype == np.uint8
    assert case.image.shape == case.label.shape == SMALL
    assert set(np.unique(case.label)) == {0, 1}
    assert case.image.min() >= -1024 and case.image.max() > 500  # bone and contrast
    assert np.all(case.image[0, 0, :] == -1000)  # air outside the scanned body


def test_mri_variant():
    case = make_case((64, 64, 32), seed=0, case_index=0, modality="mri")
    assert case.image.dtype == np.int16 and case.image.min() >= 0
    assert case.spacing[2] == pytest.approx(300 / 32)
    pancreas = case.image[case.label > 0].mean()
    # T1: pancreas brighter than the spleen and flowing blood, fat brightest
    spleen = case.anatomy.spleen
    i = np.round((spleen.centre - case.origin) / case.spacing).astype(int)
    assert pancreas > case.image[tuple(i)]
    assert np.percentile(case.image, 99.5) > pancreas


# --- realism bounds ----------------------------------------------------------------------------------------------

def test_pancreas_size_and_shape_inside_real_range(small_cases):
    for case in small_cases:
        s = shape_stats(case.label, case.spacing)
        assert s["fraction"] < 0.005
        assert outside_real_range(s) == [], s


def test_intensity_bounds_at_small_shape(small_cases):
    # At 3.1 x 3.1 x 4.7 mm the mean stays in the issue's 92-104 HU, but the
    # per-voxel noise is lower (larger voxels, see case.py) so the std is
    # ~15-19 HU and the best threshold DSC up to ~0.33; the ring (2.5 mm is
    # under one pixel here) is only required to be soft-tissue-like.
    for case in small_cases:
        it = intensity_stats(case.image, case.label, case.spacing)
        assert 92 <= it["mean"] <= 104, it
        assert 13 <= it["std"] <= 27, it
        assert 40 <= it["ring"] <= 100, it
        assert max(it["dsc_slices"]) < 0.36, it
        assert it["dsc_volume"] < 0.2, it


def test_issue_bounds_at_256():
    # the issue's bounds, on one case of a shape it names (3 s)
    case = make_case((256, 256, 96), seed=0, case_index=3)
    s = shape_stats(case.label, case.spacing)
    it = intensity_stats(case.image, case.label, case.spacing)
    assert s["fraction"] < 0.005 and outside_real_range(s) == []
    assert 92 <= it["mean"] <= 104 and 17 <= it["std"] <= 27, it
    assert REAL_NIH_RANGE["ring"][0] <= it["ring"] <= REAL_NIH_RANGE["ring"][1], it
    assert max(it["dsc_slices"]) < 0.3, it


# --- helpers -----------------------------------------------------------------------------------------------------

def test_best_interval_dsc_analytic():
    img = np.array([0, 10, 10, 20, 30])
    mask = np.array([0, 1, 1, 1, 0], bool)
    d, lo, hi = best_interval_dsc(img, mask)
    assert d == 1.0 and 0 < lo <= 10 and 20 <= hi < 30
    # a mask shared with as many background voxels of the same value: 2*2/(2+4)
    d, _, _ = best_interval_dsc(np.array([5, 5, 5, 5]), np.array([1, 1, 0, 0], bool))
    assert d == pytest.approx(2 / 3)


def test_shape_stats_of_a_box():
    lab = np.zeros((60, 30, 30), bool)
    lab[10:50, 5:25, 10:20] = True  # 40 x 20 x 10 voxels of 1 x 1 x 2 mm
    s = shape_stats(lab, (1.0, 1.0, 2.0))
    assert s["volume_ml"] == pytest.approx(40 * 20 * 10 * 2 / 1000)
    assert s["slices"] == 10 and s["z_extent_mm"] == 20
    np.testing.assert_allclose(s["extent_mm"], [40, 20, 20], atol=1.01)
    assert s["thickness_max_mm"] == pytest.approx(20, abs=2.1)


def test_tube_field_is_distance_over_radius():
    g = Grid.covering([-20, -20, -20], [20, 20, 20], (40, 40, 40))
    pts = np.stack([np.linspace(-15, 15, 7), np.zeros(7), np.linspace(-3, 3, 7)], 1)
    radii = np.linspace(4, 7, 7)
    q, idx = tube_field(g.full_box(), pts, radii, reach=2.0, with_index=True)
    x, y, z = g.full_box().xyz()
    # brute force: min over the spheres of distance / radius, where below reach
    d = np.stack([np.sqrt((x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2) / r for p, r in zip(pts, radii)])
    expected = d.min(axis=0)
    near = expected < 1.9
    np.testing.assert_allclose(q[near], expected[near], atol=1e-5)
    np.testing.assert_array_equal(idx[near], d.argmin(axis=0)[near])
    assert np.all(np.isinf(q[expected > 2.1]))


def test_spline_field_amplitude_and_box_independence():
    f = SplineField(np.random.default_rng(0), [0, 0, 0], [200, 200, 200], 10.0, 2.0)
    g = Grid.covering([0, 0, 0], [200, 200, 200], (60, 60, 60))
    full = f.on(g.full_box())
    assert 1.4 < full.std() < 2.8
    part = g.box([50, 20, 100], [120, 90, 180])
    np.testing.assert_allclose(f.on(part), full[part.slices], atol=1e-4)


def test_psf_blur_and_noise_gain():
    rng = np.random.default_rng(0)
    vol = rng.standard_normal((80, 40, 40)).astype(np.float32)
    k = psf_kernel(0.6).astype(np.float32)
    from scipy import ndimage as ndi

    expected = ndi.correlate1d(vol, k, axis=0, mode="nearest")
    np.testing.assert_allclose(_correlate_axis0(vol.copy(), k, chunk=7), expected, atol=1e-5)
    blurred = vol.copy()
    for axis in range(3):
        blurred = ndi.correlate1d(blurred, k, axis=axis, mode="nearest")
    assert blurred[5:-5, 5:-5, 5:-5].std() == pytest.approx(noise_gain((0.6, 0.6, 0.6)), rel=0.05)


# --- CLI ---------------------------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tfpanc.data.phantom", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_msd_dataset(tmp_path):
    out = tmp_path / "ds"
    r = _cli("--output_dir", str(out), "--num_cases", "2", "--shape", "64,64,32", "--seed", "1")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["modality"] == {"0": "CT"} and meta["labels"]["1"] == "pancreas"
    assert meta["numTraining"] == 2 and meta["tfpanc"]["seed"] == 1
    for entry in meta["training"]:
        image = load_volume(out / entry["image"])
        label = load_volume(out / entry["label"])
        assert Path(entry["image"]).name == Path(entry["label"]).name
        assert image.array.shape == (64, 64, 32) and image.array.dtype == np.int16
        np.testing.assert_allclose(image.spacing, (400 / 64, 400 / 64, 300 / 32))
        np.testing.assert_allclose(image.geometry.affine, label.geometry.affine)
        assert set(np.unique(label.array)) == {0, 1}
    # the file holds exactly make_case's arrays
    case = make_case((64, 64, 32), seed=1, case_index=1)
    np.testing.assert_array_equal(load_volume(out / meta["training"][1]["image"]).array, case.image)


@pytest.mark.parametrize("args, flag", [
    (["--num_cases", "0"], "--num_cases"),
    (["--num_cases", "1", "--shape", "64,64"], "--shape"),
    (["--num_cases", "1", "--shape", "64,16,64"], "--shape"),
    (["--num_cases", "1", "--shape", "a,b,c"], "--shape"),
    (["--num_cases", "1", "--modality", "pet"], "--modality"),
])
def test_cli_bad_flags_one_line(tmp_path, args, flag):
    r = _cli("--output_dir", str(tmp_path / "x"), *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], r.stderr
    assert not (tmp_path / "x" / "dataset.json").exists()


# --- the real references ---------------------------------------------------------------------------------------------

@pytest.mark.realdata
def test_statistics_reproduce_real_reference_ranges():
    nih = REALDATA / "nih_pancreas_ct_slices"
    if not nih.is_dir():
        pytest.skip(f"no real data at {REALDATA}")
    for j in (0, 7, 12):
        img = np.load(nih / f"img_{j:03d}.npy", allow_pickle=False)
        mask = np.load(nih / f"mask_{j:03d}.npy", allow_pickle=False)
        s = slice_intensity_stats(img, mask, (0.8, 0.8))
        for key, (lo, hi) in REAL_NIH_RANGE.items():
            assert lo - 1e-3 <= s[key] <= hi + 1e-3, (j, key, s[key])
    labels = sorted((REALDATA / "msd_task07_labels").glob("*.nii.gz"))
    for f in labels[::30]:
        img = nib.load(str(f))
        s = shape_stats(np.asarray(img.dataobj) > 0, img.header.get_zooms()[:3])
        assert outside_real_range(s) == [], (f.name, s)
