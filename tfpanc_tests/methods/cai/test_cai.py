"""End to end on a tiny synthetic cache: train (growth, BiRNN), resume, evaluate, predict."""

import dataclasses
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from tfpanc.data import cache as cache_lib
from tfpanc.methods.cai import CaiConfig
from tfpanc.training.callbacks import read_history
from tfpanc_tests.conftest import train_run, write_cai_cache


def _config(tmp_path, **kw):
    base = dict(model="pnet_msa_birnn", model_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "cache"),
                num_units=2, filters=4, batch_size=4, steps_per_epoch=2, epochs_per_unit=2, final_epochs=1,
                growth_patience=1, rnn_length=4, rnn_batch_size=1, rnn_epochs=1, verbose=0,
                positive_fraction=0.5, learning_rate=3e-3)
    base.update(kw)
    return CaiConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cai")
    write_cai_cache(tmp_path / "cache")
    cfg = _config(tmp_path)
    run, _, lines = train_run(cfg)
    return tmp_path, cfg, run, lines


def test_growth_phases_history_and_run_info(trained):
    tmp_path, cfg, run, lines = trained
    done = run.state()["done"]
    assert list(done) == ["pnet_k1", "pnet_k2", "pnet_final", "birnn"]
    history = read_history(run.path / "history.csv")
    assert [r["phase"] for r in history][0] == "pnet_k1"
    assert {r["K"] for r in history} == {"1", "2"}
    assert all("val_dsc" in r for r in history)
    assert any(line.startswith("growth: K=1 stopped after") for line in lines)
    info = run.run_info()
    assert info["birnn"]["weights"] == "birnn_head.weights.h5"
    assert (run.path / "progress.png").stat().st_size > 1000


def test_evaluation_outputs(trained):
    tmp_path, cfg, run, _ = trained
    summary = json.loads((run.path / "eval" / "summary.json").read_text())
    assert summary["final"]["dsc"]["n"] == 1 and summary["cnn_only"]["dsc"]["n"] == 1
    sweep = (run.path / "eval" / "threshold_sweep.csv").read_text().splitlines()
    assert sweep[0].startswith("threshold,") and len(sweep) == 1 + 19
    assert (run.path / "eval" / "threshold_sweep.png").exists()


def test_rerun_skips_finished_phases(trained):
    tmp_path, cfg, run, _ = trained
    epochs_before = len(read_history(run.path / "history.csv"))
    _, _, lines = train_run(dataclasses.replace(cfg, evaluate=False))
    assert sum("finished in an earlier run" in line for line in lines) == 4
    assert len(read_history(run.path / "history.csv")) == epochs_before  # no epoch was trained again


def test_predict_cli_writes_mask_on_source_grid(trained, tmp_path):
    root, cfg, run, _ = trained
    case = cache_lib.CaseCache(root / "cache").case("case_1")
    affine = np.array([[-1.5, 0, 0, 10], [0, 1.5, 0, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    src = np.asarray(case.image)[::-1]  # stored x-flipped, so the geometry path is exercised
    nib.save(nib.Nifti1Image(src, affine), str(tmp_path / "ct.nii.gz"))
    out = subprocess.run([sys.executable, "-m", "tfpanc.predict", f"--model_dir={run.path}",
                          f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'mask.nii.gz'}",
                          f"--probabilities={tmp_path / 'prob.nii.gz'}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pancreas" in out.stdout and "mL" in out.stdout
    mask = nib.load(str(tmp_path / "mask.nii.gz"))
    np.testing.assert_allclose(mask.affine, affine)
    assert mask.shape == src.shape and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    prob = np.asarray(nib.load(str(tmp_path / "prob.nii.gz")).dataobj)
    assert prob.min() >= 0 and prob.max() <= 1


def test_predict_cli_bad_input_one_line_no_output(trained, tmp_path):
    _, _, run, _ = trained
    (tmp_path / "bad.nii.gz").write_bytes(b"garbage")
    out = subprocess.run([sys.executable, "-m", "tfpanc.predict", f"--model_dir={run.path}",
                          f"--input={tmp_path / 'bad.nii.gz'}", f"--output={tmp_path / 'mask.nii.gz'}"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'bad.nii.gz'}: cannot read NIfTI")
    assert not (tmp_path / "mask.nii.gz").exists()


def test_predict_cli_ensemble_of_runs(trained, tmp_path):
    """Two copies of one run vote to that run's own mask; a run of another modality is refused."""
    import shutil

    from tfpanc import cli, predict

    root, _, run, _ = trained
    case = cache_lib.CaseCache(root / "cache").case("case_1")
    nib.save(nib.Nifti1Image(np.asarray(case.image), np.diag([1.5, 1.5, 2.5, 1])), str(tmp_path / "ct.nii.gz"))
    copy = shutil.copytree(run.path, tmp_path / "copy")

    def masks(model_dirs, name):
        args = [f"--model_dir={','.join(map(str, model_dirs))}", f"--input={tmp_path / 'ct.nii.gz'}",
                f"--output={tmp_path / name}.nii.gz", f"--probabilities={tmp_path / name}_prob.nii.gz",
                "--noprogress"]
        assert cli.invoke(predict.define_flags, predict.main, args) == 0
        return [np.asarray(nib.load(str(tmp_path / f)).dataobj) for f in (f"{name}.nii.gz", f"{name}_prob.nii.gz")]

    alone, together = masks([run.path], "alone"), masks([run.path, copy], "together")
    assert alone[0].any() and np.array_equal(alone[0], together[0])
    np.testing.assert_allclose(alone[1], together[1], atol=1e-6)

    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "modality": "mr"}))
    args = [f"--model_dir={run.path},{copy}", f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'x.nii.gz'}"]
    assert cli.invoke(predict.define_flags, predict.main, args) != 0
    assert not (tmp_path / "x.nii.gz").exists()
