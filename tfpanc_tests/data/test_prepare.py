import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from tfpanc.data import layouts, prepare
from tfpanc.data.cache import CaseCache
from tfpanc.errors import InputError


def _write_msd(root, n, blob_case, label_dtype=np.uint8, bad_case=None):
    image, label = blob_case
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([0.7, 0.7, 2.0, 1.0])
    for i in range(n):
        lab = label.astype(label_dtype)
        lab[lab > 0] = 1 + (i % 2)  # MSD: 1 pancreas, 2 tumour
        if i == bad_case:
            lab = lab[:, :, :-1]
        nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / f"pancreas_{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, affine), str(root / "labelsTr" / f"pancreas_{i:03d}.nii.gz"))
    (root / "imagesTr" / "._pancreas_000.nii.gz").write_bytes(b"macOS litter")


def test_prepare_msd_merges_labels_and_persists_folds(tmp_path, blob_case):
    _write_msd(tmp_path / "msd", 5, blob_case)
    cache = prepare.prepare("msd", tmp_path / "msd", tmp_path / "cache", log=lambda s: None)
    assert cache.case_ids == [f"pancreas_{i:03d}" for i in range(5)]
    case = cache.case("pancreas_001")  # its label value was 2 (tumour): merged into pancreas
    np.testing.assert_array_equal(case.label, blob_case[1])
    assert case.meta["spacing"] == pytest.approx([0.7, 0.7, 2.0])
    splits = json.loads((tmp_path / "cache" / "splits.json").read_text())
    vals = [set(f["val"]) for f in splits["folds"]]
    assert set().union(*vals) == set(cache.case_ids) and sum(len(v) for v in vals) == 5
    for f in splits["folds"]:
        assert not set(f["train"]) & set(f["val"])
    assert not (tmp_path / "cache.partial").exists()


def test_prepare_refuses_mismatched_label_and_leaves_no_cache(tmp_path, blob_case):
    _write_msd(tmp_path / "msd", 4, blob_case, bad_case=2)
    with pytest.raises(InputError, match="pancreas_002.nii.gz: label shape"):
        prepare.prepare("msd", tmp_path / "msd", tmp_path / "cache", log=lambda s: None)
    assert not (tmp_path / "cache").exists()


def test_layout_errors_name_the_file(tmp_path, blob_case):
    _write_msd(tmp_path / "msd", 4, blob_case)
    (tmp_path / "msd" / "labelsTr" / "pancreas_003.nii.gz").unlink()
    with pytest.raises(InputError, match="pancreas_003.nii.gz: no label"):
        layouts.list_cases("msd", tmp_path / "msd")


def test_nih_layout(tmp_path):
    for n in (1, 2):
        series = tmp_path / "Pancreas-CT" / f"PANCREAS_{n:04d}" / "study" / "series"
        series.mkdir(parents=True)
        for k in range(3):
            (series / f"1-{k:03d}.dcm").write_bytes(b"")
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"label{n:04d}.nii.gz").write_bytes(b"")
    entries = layouts.list_cases("nih", tmp_path)
    assert [e.case_id for e in entries] == ["PANCREAS_0001", "PANCREAS_0002"]
    assert entries[1].image.name == "series" and entries[1].label.name == "label0002.nii.gz"


def test_cli_one_line_error_and_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfpanc.data.prepare", "--dataset=msd",
         f"--input_dir={tmp_path / 'nope'}", f"--output_dir={tmp_path / 'c'}"],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope'}: dataset folder not found"
    assert "Traceback" not in result.stderr


def test_cli_builds_cache(tmp_path, blob_case):
    _write_msd(tmp_path / "msd", 4, blob_case)
    result = subprocess.run(
        [sys.executable, "-m", "tfpanc.data.prepare", "--dataset=msd",
         f"--input_dir={tmp_path / 'msd'}", f"--output_dir={tmp_path / 'c'}"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "prepared 4 cases" in result.stdout
    assert len(CaseCache(tmp_path / "c").case_ids) == 4


def test_label_values_that_select_nothing_and_nan_images_are_refused(tmp_path, blob_case):
    _write_msd(tmp_path / "msd", 4, blob_case)
    # The labels hold 1 and 2: --label_values 3 would make every case empty.
    with pytest.raises(InputError, match=r"pancreas_000.nii.gz: holds the values \[1\] but none of "
                                         r"--label_values \[3\]"):
        prepare.prepare("msd", tmp_path / "msd", tmp_path / "cache", label_values=(3,), log=lambda s: None)
    image = blob_case[0].astype(np.float32)
    image[3, 4, 5] = np.nan  # prepare used to store it as 0 HU
    nib.save(nib.Nifti1Image(image, np.diag([0.7, 0.7, 2.0, 1.0])),
             str(tmp_path / "msd" / "imagesTr" / "pancreas_001.nii.gz"))
    with pytest.raises(InputError, match=r"pancreas_001.nii.gz: 1 voxel is not finite"):
        prepare.prepare("msd", tmp_path / "msd", tmp_path / "cache", log=lambda s: None)
    assert not (tmp_path / "cache").exists()  # (cache.partial stays: a rerun resumes from it, documented)
