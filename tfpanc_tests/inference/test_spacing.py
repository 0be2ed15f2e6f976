"""Prediction at the run's training spacing, the answer on the input's grid."""

import json

import numpy as np

from tfpanc.inference.spacing import median_spacing, predict_at_spacing
from tfpanc.metrics.overlap import dice


def _sphere(shape, spacing, radius_mm, centre_mm):
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre_mm)) <= radius_mm ** 2


def _threshold(image, probability=False, spacing=None, seen=None):
    if seen is not None:
        seen.append((image.shape, tuple(spacing)))
    out = {"mask": image > 50}
    if probability:
        out["probability"] = (image > 50).astype(np.float32)
    return out


def test_a_fine_scan_is_seen_at_the_training_spacing_and_answered_on_its_own_grid():
    spacing, target = (0.7, 0.7, 1.0), (1.4, 1.4, 3.0)
    ball = _sphere((80, 80, 60), spacing, 15.0, (28.0, 28.0, 30.0))
    image = np.where(ball, 100.0, -100.0)
    seen, lines = [], []
    out = predict_at_spacing(lambda a, probability=False, spacing=None: _threshold(a, probability, spacing, seen),
                             image, spacing, target, probability=True, log=lines.append)
    assert seen == [((40, 40, 20), target)]
    assert out["mask"].shape == image.shape and out["probability"].shape == image.shape
    assert dice(out["mask"], ball) > 0.95
    assert lines[0].startswith("warning: resampled (80, 80, 60) at 0.70 x 0.70 x 1.00 mm to (40, 40, 20)")
    assert "ratios 0.50, 0.50, 0.33" in lines[0]


def test_input_at_the_training_spacing_is_passed_through_untouched():
    image = np.zeros((10, 10, 4))
    seen = []

    def toy(a, probability=False, spacing=None):
        seen.append(a)
        return {"mask": a > 0}

    predict_at_spacing(toy, image, (1.0, 1.0, 2.0), (1.01, 0.99, 2.0))
    predict_at_spacing(toy, image, (1.0, 1.0, 2.0), None)  # an old run: no training spacing recorded
    assert seen[0] is image and seen[1] is image


def test_training_spacing_recorded_as_the_median_of_the_training_cases(tmp_path):
    from tfpanc.data import cache as cache_lib
    from tfpanc.data.io import Geometry
    from tfpanc.train import data_record
    from tfpanc.training.data_split import TrainingData

    image = np.zeros((6, 6, 3), np.int16)
    for i, sz in enumerate((1.0, 2.5, 3.0, 5.0)):
        cache_lib.write_case(tmp_path, f"c{i}", image, image.astype(np.uint8),
                             Geometry.from_spacing(image.shape, (0.8, 0.8, sz)))
    cache_lib.write_index(tmp_path, "phantom", [f"c{i}" for i in range(4)], "ct", "test")
    data = TrainingData(cache_lib.CaseCache(tmp_path), ["c0", "c1", "c2"], ["c3"], [], 0)
    record = data_record(data)
    assert record == {"dataset": "phantom", "training_spacing": [0.8, 0.8, 2.5], "orientation": "RAS"}
    assert median_spacing([(1, 1, 1), (3, 3, 3)]) == [2.0, 2.0, 2.0]


def test_predict_resamples_to_the_runs_spacing_and_writes_the_input_grid(tmp_path, capsys):
    from tfpanc import cli, predict
    from tfpanc.data import io
    from tfpanc.methods.cai.random_run import write_random_run

    run = write_random_run(tmp_path / "run", "pnet_msa", num_units=1, filters=2)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, training_spacing=[1.6, 1.6, 2.0])))
    ct = np.where(_sphere((48, 40, 12), (0.8, 0.8, 2.0), 8.0, (19.0, 16.0, 12.0)), 60, -20).astype(np.int16)
    io.save_volume(ct, io.Geometry.from_spacing(ct.shape, (0.8, 0.8, 2.0)), tmp_path / "ct.nii.gz")
    argv = [f"--model_dir={run}", f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'm.nii.gz'}"]
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0
    out = capsys.readouterr().out
    assert "resampled (48, 40, 12) at 0.80 x 0.80 x 2.00 mm to (24, 20, 12) at the run's training spacing" in out
    mask = io.load_volume(tmp_path / "m.nii.gz")
    assert mask.array.shape == ct.shape and np.allclose(mask.spacing, (0.8, 0.8, 2.0))
    assert cli.invoke(predict.define_flags, predict.main, argv[:2] + [f"--output={tmp_path / 'n.nii.gz'}",
                                                                     "--noresample"]) == 0
    assert "resampled" not in capsys.readouterr().out
