"""zhou end to end on a tiny synthetic cache: six models, the pipeline record, resume, predict, Table 1."""

import csv
import dataclasses
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from tfpanc.data import cache as cache_lib
from tfpanc.methods.zhou import ZhouConfig
from tfpanc.training.run_dir import RunDir
from tfpanc_tests.conftest import train_run, write_ellipsoid_cache

NAMES = ["coarse_axial", "coarse_coronal", "coarse_sagittal", "fine_axial", "fine_coronal", "fine_sagittal"]


def _tiny_cache(root):
    return write_ellipsoid_cache(root, (40, 36, 20), lambda i: (18 + i, 17 - i, 10), (8.0, 6.0, 6.0),
                                 (120, -30), 10, (1.0, 1.0, 2.0))


def _config(tmp_path, **kw):
    base = dict(method="zhou", model="fcn8s", model_dir=str(tmp_path / "pipe"), data_dir=str(tmp_path / "cache"),
                filters=2, fc_filters=8, dropout=0.0, batch_size=2, steps_per_epoch=2, coarse_epochs=1,
                fine_epochs=1, loss="dice", min_pixels=10, fine_margin_max=8, max_rounds=3, verbose=0,
                learning_rate=1e-3, fine_learning_rate=1e-3)
    base.update(kw)
    return ZhouConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("zhou")
    _tiny_cache(tmp_path / "cache")
    cfg = _config(tmp_path)
    run, info, lines = train_run(cfg)
    return tmp_path, cfg, run, info, lines


def test_six_models_and_pipeline_record(trained):
    tmp_path, cfg, run, info, lines = trained
    pipeline = json.loads((run.path / "run.json").read_text())
    assert pipeline == info and pipeline["method"] == "zhou" and pipeline["kind"] == "pipeline"
    assert pipeline["split"]["test"] and not set(pipeline["split"]["test"]) & set(pipeline["split"]["validation"])
    assert sorted(pipeline["models"]) == sorted(NAMES)
    assert (pipeline["max_rounds"], pipeline["stop_threshold"], pipeline["crop_margin"]) == (3, 0.95, 30)
    for name in NAMES:
        sub = RunDir(run.path / name)
        stage, view = name.split("_")
        assert sub.is_done(stage)
        run_info = sub.run_info()
        assert (run_info["stage"], run_info["view"], run_info["fc_filters"]) == (stage, view, 8)
        assert all(s % 32 == 0 for s in run_info["input_size"])
        assert f"--stage={stage}" in (sub.path / "flags.cfg").read_text()
    # The axial plane 40x36 pads to 64x64; the coronal plane (x, z) 40x20 to 64x32.
    assert RunDir(run.path / "coarse_axial").run_info()["input_size"] == [64, 64]
    assert RunDir(run.path / "coarse_coronal").run_info()["input_size"] == [64, 32]


def test_pipeline_evaluation_writes_table1(trained):
    _, _, run, _, lines = trained
    rows = list(csv.DictReader(open(run.path / "eval" / "table1.csv")))
    methods = [r["method"] for r in rows]
    assert methods[:4] == ["Coarse (sagittal)", "Coarse (coronal)", "Coarse (axial)", "Coarse Segmentation"]
    assert "After d(t) > 0.95" in methods and methods[-1] == "Oracle Bounding Box"
    assert all(r["n"] == "1" for r in rows)  # fold 0 holds one validation case
    per_case = list(csv.DictReader(open(run.path / "eval" / "per_case.csv")))
    assert len(per_case) == 1 and 0 <= int(per_case[0]["rounds"]) <= 3
    d_t, round_dsc = per_case[0]["d_t"].split(), per_case[0]["round_dsc"].split()
    assert len(round_dsc) == len(d_t) + 1 <= 4  # Z(0) and one DSC per round run
    assert all(0.0 <= float(v) <= 1.0 for v in d_t + round_dsc)
    assert any("Table 1 over 1 cases" in line for line in lines)


def test_test_crops_pad_to_the_training_size(trained):
    from tfpanc.methods.zhou.predictor import ZhouPredictor

    _, _, run, _, _ = trained
    fine = ZhouPredictor(run.path).fine_predictor(stats=None)
    for view in ("axial", "coronal", "sagittal"):
        h, w = RunDir(run.path / f"fine_{view}").run_info()["input_size"]
        assert fine._input_shape(view, 3, 5) == (h, w)           # small crops: the training frame
        assert fine._input_shape(view, h + 1, 5) == (h + 32, w)  # larger ones: the next multiple


def test_rerun_skips_finished_models(trained):
    _, cfg, run, _, _ = trained
    history = (run.path / "coarse_axial" / "history.csv").read_text()
    _, _, lines = train_run(dataclasses.replace(cfg, evaluate=False))
    assert sum("finished in an earlier run; skipped" in line for line in lines) == 6
    assert (run.path / "coarse_axial" / "history.csv").read_text() == history


def test_changed_flags_refuse_to_mix(trained):
    from tfpanc.errors import InputError

    _, cfg, run, _, _ = trained
    with pytest.raises(InputError, match="other flags"):
        train_run(dataclasses.replace(cfg, fc_filters=16))


def test_fine_flags_keep_the_coarse_models(trained, tmp_path):
    import shutil

    from tfpanc.errors import InputError

    _, cfg, run, _, _ = trained
    copy = RunDir(tmp_path / "pipe")
    shutil.copytree(run.path, copy.path)
    (copy.path / "run.json").unlink()
    tuned = dataclasses.replace(cfg, model_dir=str(copy.path), fine_margin_max=4, evaluate=False)
    with pytest.raises(InputError, match=r"fine_(axial|coronal|sagittal).*other flags"):  # the fine models were not
        train_run(tuned)
    for view in ("axial", "coronal", "sagittal"):
        shutil.rmtree(copy.path / f"fine_{view}")
    _, _, lines = train_run(tuned)
    assert sum("skipped" in line for line in lines) == 3  # the three coarse models
    assert "--fine_margin_max=4" in (copy.path / "fine_axial" / "flags.cfg").read_text()
    assert copy.run_info()["kind"] == "pipeline"


def test_predict_cli_on_nifti(trained, tmp_path):
    root, _, run, _, _ = trained
    case = cache_lib.CaseCache(root / "cache").case("case_2")
    affine = np.array([[-1.0, 0, 0, 4], [0, 1.0, 0, -2], [0, 0, 2.0, 7], [0, 0, 0, 1]])
    src = np.asarray(case.image)[::-1]  # stored x-flipped: the geometry path is exercised
    nib.save(nib.Nifti1Image(src, affine), str(tmp_path / "ct.nii.gz"))
    out = subprocess.run([sys.executable, "-m", "tfpanc.predict", f"--model_dir={run.path}",
                          f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'mask.nii.gz'}",
                          f"--probabilities={tmp_path / 'prob.nii.gz'}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "rounds" in out.stdout and "d(t)" in out.stdout and "mL" in out.stdout
    mask = nib.load(str(tmp_path / "mask.nii.gz"))
    np.testing.assert_allclose(mask.affine, affine)
    assert mask.shape == src.shape and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    prob = nib.load(str(tmp_path / "prob.nii.gz"))
    np.testing.assert_allclose(prob.affine, affine)
    p = np.asarray(prob.dataobj)
    assert p.shape == src.shape and p.dtype == np.float32 and 0.0 <= p.min() <= p.max() <= 1.0
    # The mask is never outside the map's support (crops of the last round, or the coarse views).
    assert not (np.asarray(mask.dataobj).astype(bool) & (p == 0)).any()


def test_predict_cli_bad_input_one_line(trained, tmp_path):
    _, _, run, _, _ = trained
    (tmp_path / "bad.nii.gz").write_bytes(b"garbage")
    out = subprocess.run([sys.executable, "-m", "tfpanc.predict", f"--model_dir={run.path}",
                          f"--input={tmp_path / 'bad.nii.gz'}", f"--output={tmp_path / 'mask.nii.gz'}"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'bad.nii.gz'}: cannot read NIfTI")
    assert not (tmp_path / "mask.nii.gz").exists()


def test_table1_command(trained, tmp_path):
    from tfpanc.methods.zhou.table1 import run_table1

    root, _, run, _, _ = trained
    lines = []
    rows = run_table1([run.path], data_dir=root / "cache", folds=[0, 1], output_dir=tmp_path / "t1",
                      max_rounds=2, oracle=False, log=lines.append)
    assert [r["method"] for r in rows][-1] == "Best among All Iterations"  # no oracle row
    data = json.loads((tmp_path / "t1" / "table1.json").read_text())
    assert len(data["cases"]) == 2 and all(c["max_rounds"] == 2 for c in data["cases"])
    after1 = next(r for r in data["rows"] if r["method"] == "After 1 Iteration")
    expected = np.mean([c["round_dsc"][1] if len(c["round_dsc"]) > 1 else c["round_dsc"][-1]
                        for c in data["cases"]])
    assert after1["dsc"]["mean"] == pytest.approx(expected)
    assert (tmp_path / "t1" / "table1.csv").read_text().startswith("method,dsc_mean")


def test_flags_method_model_combination(train_flags):
    from tfpanc.errors import InputError
    from tfpanc.methods import registry

    def train_config(fv):
        return registry.train_config(fv)[1]

    fv = train_flags
    fv(["prog", "--method=zhou"])
    cfg = train_config(fv)
    assert cfg.model == "fcn8s"  # the zhou default when --model is not given
    assert "--num_units" not in cfg.to_flagfile() and "--crop_margin=30" in cfg.to_flagfile()
    fv.unparse_flags()
    fv(["prog", "--method=zhou", "--model=unet"])
    with pytest.raises(InputError, match="unet is not a zhou model"):
        train_config(fv)
    fv.unparse_flags()
    fv(["prog", "--method=cai", "--model=fcn8s"])
    with pytest.raises(InputError, match="fcn8s is not a cai model"):
        train_config(fv)
    fv.unparse_flags()
    fv(["prog"])
    assert "--view" not in train_config(fv).to_flagfile()  # cai flags.cfg unchanged
