"""The evaluate command on tiny NIfTI files: outputs and error paths."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfpanc import evaluate
from tfpanc.data.io import Geometry, save_volume
from tfpanc.errors import InputError
from tfpanc.metrics import METRICS

REPO = Path(__file__).resolve().parents[1]
SHAPE = (12, 10, 8)
SPACING = (0.8, 0.8, 2.0)


def _box(box, value=1, shape=SHAPE):
    m = np.zeros(shape, np.uint8)
    m[tuple(slice(lo, hi) for lo, hi in box)] = value
    return m


def _write(path, array, spacing=SPACING):
    save_volume(array, Geometry.from_spacing(array.shape, spacing), path)


@pytest.fixture
def folders(tmp_path):
    """Two cases. case_a: label 4x4x4 cube of 1s with a 2x4x4 'tumour' (2);
    prediction covers the whole cube. case_b: prediction is the label moved
    by one voxel along x (DSC 3/4)."""
    labels, preds = tmp_path / "labels", tmp_path / "preds"
    label_a = _box([[2, 6], [2, 6], [2, 6]])
    label_a[2:4, 2:6, 2:6] = 2
    _write(labels / "case_a.nii.gz", label_a)
    _write(preds / "case_a.nii.gz", _box([[2, 6], [2, 6], [2, 6]]))
    _write(labels / "case_b.nii", _box([[3, 7], [2, 6], [1, 5]]))
    _write(preds / "case_b.mha", _box([[4, 8], [2, 6], [1, 5]]))
    return preds, labels, tmp_path / "out"


def _error_lines(result):
    """The error lines of a failed run (per-case progress logs may precede them)."""
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "tfpanc.evaluate", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)


def test_case_id_strips_image_suffixes():
    assert evaluate.case_id("a.nii.gz") == "a"
    assert evaluate.case_id("a.NII") == "a"
    assert evaluate.case_id("b.mha") == "b" and evaluate.case_id("c.nrrd") == "c"
    assert evaluate.case_id("notes.txt") is None


def test_cli_writes_per_case_csv_and_summary(folders):
    preds, labels, out = folders
    result = _run(f"--pred_dir={preds}", f"--label_dir={labels}", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    with open(out / "per_case.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == ["case_a", "case_b"]
    assert list(rows[0])[:3] == ["case", "dsc", "jaccard"]
    # Default: any nonzero label value is pancreas, so case_a is perfect.
    assert float(rows[0]["dsc"]) == 1.0 and float(rows[0]["hd95"]) == 0.0
    assert float(rows[1]["dsc"]) == pytest.approx(0.75)
    assert float(rows[1]["hd"]) == pytest.approx(0.8)
    assert float(rows[1]["label_volume_ml"]) == pytest.approx(64 * 0.8 * 0.8 * 2.0 / 1000)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 2 and summary["label_values"] == "nonzero"
    assert summary["metrics"]["dsc"]["mean"] == pytest.approx(0.875)
    assert summary["metrics"]["dsc"]["n"] == 2
    assert summary["units"]["hd95"] == "mm" and summary["units"]["dsc"] == "fraction"
    # The printed table shows overlap in percent.
    assert "87.5 ± 17.7 [75.0, 100.0]" in result.stdout


def test_label_values_select_the_organ_label(folders):
    preds, labels, _ = folders
    rows, summary = evaluate.evaluate_folders(preds, labels, ["dsc", "recall"], label_values=[1])
    # case_a: label 1 is the 2x4x4 half the prediction also covers (as 1).
    assert rows[0] == {"case": "case_a", "dsc": pytest.approx(2 * 32 / (64 + 32)), "recall": 1.0}
    assert summary["dsc"]["n"] == 2


def test_missing_prediction_is_one_line_error_and_writes_nothing(folders):
    preds, labels, out = folders
    (preds / "case_b.mha").unlink()
    result = _run(f"--pred_dir={preds}", f"--label_dir={labels}", f"--output_dir={out}")
    assert result.returncode != 0
    lines = _error_lines(result)
    assert len(lines) == 1 and "case_b.nii" in lines[0] and "no prediction" in lines[0]
    assert not out.exists()


def test_shape_mismatch_is_one_line_error_and_writes_nothing(folders):
    preds, labels, out = folders
    _write(preds / "case_b.mha", _box([[4, 8], [2, 6], [1, 5]], shape=(12, 10, 9)))
    result = _run(f"--pred_dir={preds}", f"--label_dir={labels}", f"--output_dir={out}")
    assert result.returncode != 0
    lines = _error_lines(result)
    assert len(lines) == 1 and "case_b.mha" in lines[0] and "shape" in lines[0]
    assert not out.exists()


def test_spacing_mismatch_names_the_prediction(folders):
    preds, labels, _ = folders
    _write(preds / "case_a.nii.gz", _box([[2, 6], [2, 6], [2, 6]]), spacing=(0.8, 0.8, 2.5))
    with pytest.raises(InputError, match=r"case_a\.nii\.gz.*spacing"):
        evaluate.evaluate_folders(preds, labels)


def test_probability_map_prediction_is_refused(folders):
    preds, labels, _ = folders
    _write(preds / "case_a.nii.gz", np.full(SHAPE, 0.7, np.float32))
    with pytest.raises(InputError, match="non-integer"):
        evaluate.evaluate_folders(preds, labels)


def test_empty_label_folder_and_unknown_metric(tmp_path, folders):
    preds, _, out = folders
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no label volumes"):
        evaluate.evaluate_folders(preds, tmp_path / "nothing")
    result = _run(f"--pred_dir={preds}", f"--label_dir={tmp_path / 'labels'}",
                  f"--output_dir={out}", "--metrics=dsc,dice")
    assert result.returncode != 0
    assert _error_lines(result) == [
        f"error: --metrics: unknown metric(s) dice; choose from {', '.join(METRICS)}"]
    assert not out.exists()


def test_ct_image_given_as_label_is_refused(folders):
    preds, labels, _ = folders
    ct = np.random.default_rng(0).integers(-1000, 400, SHAPE).astype(np.int16)
    _write(labels / "case_b.nii", ct)
    with pytest.raises(InputError, match=r"case_b\.nii: holds values from -\d+ to \d+: an image, not a label"):
        evaluate.evaluate_folders(preds, labels)


def test_label_with_none_of_the_label_values_is_refused(folders):
    preds, labels, _ = folders
    # case_a's label holds 1 and 2; with --label_values 3 it would silently be an empty case scoring 0.
    _write(preds / "case_a.nii.gz", _box([[2, 6], [2, 6], [2, 6]], value=3))
    with pytest.raises(InputError, match=r"case_a\.nii\.gz: holds the values \[1, 2\] but none of "
                                         r"--label_values \[3\]"):
        evaluate.evaluate_folders(preds, labels, label_values=[3])


def test_a_failure_while_writing_leaves_no_output(folders, monkeypatch):
    """A full disk at the second file: neither file, nor the output folder, is left."""
    preds, labels, out = folders
    rows, summary = evaluate.evaluate_folders(preds, labels, ["dsc"], [])

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate, "write_json", full_disk)
    with pytest.raises(OSError):
        evaluate.write_outputs(out, rows, summary, {})
    assert not out.exists()
    monkeypatch.undo()
    evaluate.write_outputs(out, rows, summary, {})
    assert sorted(p.name for p in out.iterdir()) == ["per_case.csv", "summary.json"]
