import nibabel as nib
import numpy as np
import pytest

from tfpanc.data import io
from tfpanc.errors import InputError


def _oblique_lps_nifti(path, data):
    # A file stored in LPS-like voxel order (x and z flipped), so canonical
    # reorientation has real work to do.
    affine = np.array([[-0.8, 0, 0, 100.0], [0, 0.8, 0, -50.0], [0, 0, -2.5, 30.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return affine


def test_canonical_orientation_and_exact_round_trip(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine = _oblique_lps_nifti(tmp_path / "a.nii.gz", data)
    vol = io.load_volume(tmp_path / "a.nii.gz")
    # x and z were flipped: the canonical array is the source flipped back.
    np.testing.assert_array_equal(vol.array, data[::-1, :, ::-1])
    assert vol.spacing == pytest.approx((0.8, 0.8, 2.5))
    assert np.all(np.diag(vol.geometry.affine)[:3] > 0)
    # Every voxel keeps its world position: canonical voxel (0,0,0) is source (3,0,5).
    np.testing.assert_allclose(vol.geometry.affine @ [0, 0, 0, 1], affine @ [3, 0, 5, 1])
    io.save_volume(vol.array, vol.geometry, tmp_path / "out" / "b.nii.gz")
    back = nib.load(str(tmp_path / "out" / "b.nii.gz"))
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), data)
    np.testing.assert_allclose(back.affine, affine)


def test_mha_round_trip_matches_nifti_world_coordinates(tmp_path):
    data = np.random.default_rng(0).integers(-1000, 1000, (6, 7, 8)).astype(np.int16)
    _oblique_lps_nifti(tmp_path / "a.nii.gz", data)
    vol = io.load_volume(tmp_path / "a.nii.gz")
    io.save_volume(vol.array, vol.geometry, tmp_path / "a.mha")
    again = io.load_volume(tmp_path / "a.mha")
    np.testing.assert_array_equal(again.array, vol.array)
    np.testing.assert_allclose(again.geometry.affine, vol.geometry.affine, atol=1e-5)


def test_float_data_stays_float_and_integral_becomes_int16(tmp_path):
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), 0.25, np.float32), np.eye(4)), str(tmp_path / "f.nii"))
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), 7.0, np.float32), np.eye(4)), str(tmp_path / "i.nii"))
    assert io.load_volume(tmp_path / "f.nii").array.dtype == np.float32
    assert io.load_volume(tmp_path / "i.nii").array.dtype == np.int16


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"not a nifti at all"), "cannot read NIfTI"),
    (lambda p: nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.int16), np.eye(4)), str(p)), "expected a 3D volume"),
])
def test_bad_inputs_raise_one_line_errors(tmp_path, make, problem):
    path = tmp_path / "bad.nii.gz"
    make(path)
    with pytest.raises(InputError) as err:
        io.load_volume(path)
    assert problem in err.value.one_line() and str(path) in err.value.one_line()
    assert "\n" not in err.value.one_line()


def test_empty_folder_is_not_a_dicom_series(tmp_path):
    with pytest.raises(InputError, match="no DICOM series"):
        io.load_volume(tmp_path)


def test_failed_save_leaves_no_file(tmp_path):
    geometry = io.Geometry.from_spacing((4, 4, 4), (1, 1, 1))
    with pytest.raises(InputError):
        io.save_volume(np.zeros((4, 4, 4), np.uint8), geometry, tmp_path / "mask.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.realdata
def test_real_dicom_series_and_its_nifti_mask_share_world_grid(realdata, tmp_path):
    import SimpleITK as sitk

    folder = realdata / "totalsegmentator_example" / "example_ct_dicom"
    ct = io.load_volume(folder)
    assert ct.array.shape == (512, 512, 20) and ct.array.dtype == np.int16
    assert ct.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    # Independent check against SimpleITK's own index->world mapping (LPS).
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    src = io.to_source_order(np.zeros(ct.array.shape), ct.geometry).shape
    for idx in [(0, 0, 0), (511, 3, 19), (100, 400, 7)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(idx))
        ras = ct.geometry.source_affine @ [*idx, 1]
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-3)
    assert src == (512, 512, 20)
    # The mask NIfTI is flipped in y against the DICOM: in canonical order both coincide.
    seg = io.load_volume(realdata / "totalsegmentator_example" / "example_seg_dicom.nii.gz")
    assert seg.geometry.same_grid(ct.geometry)
    pancreas = seg.array == 7
    assert pancreas.any() and ct.array[pancreas].mean() > 0  # soft tissue, not air or a flipped region
    # DICOM in, NIfTI out, aligned: read back through SimpleITK world coordinates.
    io.save_volume(pancreas.astype(np.uint8), ct.geometry, tmp_path / "mask.nii.gz")
    written = sitk.ReadImage(str(tmp_path / "mask.nii.gz"))
    np.testing.assert_allclose(written.GetOrigin(), image.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(written.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(written.GetSpacing(), image.GetSpacing(), atol=1e-5)


@pytest.mark.realdata
def test_real_nifti_round_trip(realdata, tmp_path):
    path = realdata / "totalsegmentator_example" / "example_ct.nii.gz"
    vol = io.load_volume(path)
    io.save_volume(vol.array, vol.geometry, tmp_path / "ct.nii.gz")
    src, out = nib.load(str(path)), nib.load(str(tmp_path / "ct.nii.gz"))
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), np.round(np.asanyarray(src.dataobj)))


def _ct_zyx(nz=6):
    rng = np.random.default_rng(0)
    return rng.integers(-200, 200, (nz, 12, 10)).astype(np.int16)


def test_dicom_series_reads_with_its_slice_spacing(tmp_path):
    from tfpanc_tests.data.dicom_fixtures import write_series

    volume = _ct_zyx()
    write_series(tmp_path / "ok", volume)
    vol = io.load_volume(tmp_path / "ok")
    assert vol.array.shape[2] == 6 and vol.spacing[2] == pytest.approx(2.5)


@pytest.mark.parametrize("kind", ["missing", "repeated", "unequal"])
def test_broken_dicom_series_is_refused_naming_the_slice(tmp_path, kind):
    from tfpanc_tests.data.dicom_fixtures import write_series

    positions = {"missing": None, "repeated": [0, 2.5, 5, 5, 10, 12.5], "unequal": [0, 2.5, 5, 7.5, 11, 13.5]}
    write_series(tmp_path / "s", _ct_zyx(), positions=positions[kind], skip=(3,) if kind == "missing" else ())
    with pytest.raises(InputError) as err:
        io.load_volume(tmp_path / "s")
    message = str(err.value)
    if kind == "repeated":
        assert "same position as slice_002.dcm" in message and "slice_003.dcm" in message
    else:
        assert "DICOM slice positions are unequal" in message
        assert message.startswith(f"error: {tmp_path / 's' / ('slice_004.dcm')}")


def test_two_series_of_one_size_need_series_uid(tmp_path):
    from tfpanc_tests.data.dicom_fixtures import write_series

    write_series(tmp_path / "two", _ct_zyx(), series_uid="1.2.3.1", prefix="a")
    write_series(tmp_path / "two", _ct_zyx() + 7, series_uid="1.2.3.2", prefix="b")
    with pytest.raises(InputError, match=r"holds 2 DICOM series of 6 slices \(1.2.3.1, 1.2.3.2\); choose one "
                                         r"with --series_uid"):
        io.load_volume(tmp_path / "two")
    second = io.load_volume(tmp_path / "two", series_uid="1.2.3.2")
    first = io.load_volume(tmp_path / "two", series_uid="1.2.3.1")
    assert np.array_equal(second.array, first.array + 7)
    with pytest.raises(InputError, match="--series_uid: 9.9 is not a series of"):
        io.load_volume(tmp_path / "two", series_uid="9.9")


def test_non_finite_voxels_are_an_error_with_count_and_place(tmp_path):
    data = np.zeros((6, 5, 4), np.float32)
    data[2, 3, 1] = np.nan
    data[4, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(InputError, match=r"2 voxels are not finite \(NaN or inf\), the first at "
                                         r"\[x, y, z\] = \[2, 3, 1\]"):
        io.load_volume(tmp_path / "nan.nii.gz")
