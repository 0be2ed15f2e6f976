"""two_stage end to end on a tiny cache: both stages, run.json, resume, predict CLI, tables; and the
predictor's boxes and vote with stand-in networks."""

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest

from tfpanc import cli, predict
from tfpanc.data import cache as cache_lib
from tfpanc.methods.two_stage import TwoStageConfig
from tfpanc.methods.two_stage.predictor import TwoStagePredictor, centred_padding, window_region
from tfpanc.metrics import dice
from tfpanc_tests.conftest import train_run, write_ellipsoid_cache


def _tiny_cache(root):
    return write_ellipsoid_cache(root, (40, 36, 24), lambda i: (18 + i, 17 - i, 12), (8.0, 6.0, 5.0),
                                 (120, -40), 10, (1.0, 1.0, 1.5))


def _config(tmp_path, **kw):
    base = dict(model_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "cache"), depth=2, filters=2,
                norm="instance", decimation=4, batch_size=1, steps_per_epoch=2, coarse_epochs=2, fine_epochs=2,
                center_epochs=1, fine_margin=3, fine_patch=(32, 32, 16), verbose=0, learning_rate=1e-2,
                fine_learning_rate=1e-2)
    base.update(kw)
    return TwoStageConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("two_stage")
    _tiny_cache(tmp_path / "cache")
    cfg = _config(tmp_path)
    run, info, lines = train_run(cfg)
    return tmp_path, cfg, run, info, lines


def test_both_stages_and_the_run_record(trained):
    tmp_path, cfg, run, info, lines = trained
    assert info["method"] == "two_stage" and (run.path / "run.json").exists()
    for stage in ("coarse", "fine"):
        state = json.loads((run.path / stage / "state.json").read_text())["done"]
        assert list(state) == [f"{stage}_center", stage]  # gamma = 1e-3 for one epoch, then 0
        assert (run.path / info[f"{stage}_weights"]).exists()
    # 40x36x24 decimated by 4 is 10x9x6, padded to the multiple of 4 of the largest: 12x12x8.
    assert info["coarse_frame"] == [12, 12, 8]
    assert all(p % 4 == 0 for p in info["fine_patch"]) and info["fine_patch"][2] <= 16
    tables = json.loads((run.path / "eval" / "tables.json").read_text())
    assert [r["column"] for r in tables["rows"]][:2] == ["stage1_dsc", "stage2_dsc"]
    assert len(tables["cases"]) == 1  # fold 0 holds one case out
    assert any("Tables 1 and 2" in line for line in lines)


def test_rerun_skips_both_stages_and_one_stage_alone_writes_no_record(trained, tmp_path):
    _, cfg, run, _, _ = trained
    _, _, lines = train_run(dataclasses.replace(cfg, evaluate=False))
    assert sum("finished in an earlier run; skipped" in line for line in lines) == 2
    alone = dataclasses.replace(cfg, model_dir=str(tmp_path / "coarse_only"), stage="coarse")
    run_alone, info, lines = train_run(alone)
    assert info is None and not (run_alone.path / "run.json").exists()
    assert (run_alone.path / "coarse" / "stage.json").exists() and not (run_alone.path / "fine").exists()


def test_predict_cli_writes_mask_and_prints_boxes(trained, tmp_path, capsys):
    root, _, run, _, _ = trained
    case = cache_lib.CaseCache(root / "cache").case("case_2")
    affine = np.diag([-1.0, 1.0, 1.5, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(case.image)[::-1], affine), str(tmp_path / "ct.nii.gz"))
    argv = [f"--model_dir={run.path}", f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'm.nii.gz'}",
            f"--probabilities={tmp_path / 'p.nii.gz'}"]
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert ("box 1 [" in out and "mm), box 2 [" in out) or "found no pancreas" in out
    mask = nib.load(str(tmp_path / "m.nii.gz"))
    np.testing.assert_allclose(mask.affine, affine)
    prob = np.asarray(nib.load(str(tmp_path / "p.nii.gz")).dataobj)
    assert prob.dtype == np.float32 and prob.shape == mask.shape and 0 <= prob.min() <= prob.max() <= 1
    assert cli.invoke(predict.define_flags, predict.main, argv[:3] + ["--max_rounds=2"]) == 2
    assert "--max_rounds: is a zhou flag" in capsys.readouterr().err


def test_tables_command(trained, tmp_path):
    from tfpanc.methods.two_stage.tables import run_tables

    _, _, run, _, _ = trained
    lines = []
    pooled = run_tables([run.path], [run.path], output_dir=tmp_path / "t", log=lines.append)
    assert set(pooled) == {"center loss on", "center loss off"}
    assert (tmp_path / "t" / "center_loss_curves.png").stat().st_size > 1000
    per_fold = (tmp_path / "t" / "per_fold.csv").read_text().splitlines()
    assert per_fold[0].startswith("setting,run,fold,column") and len(per_fold) == 1 + 2 * 8


# --- the predictor with stand-in networks -------------------------------------------------------


class Thresholds:
    """A "network" whose logits are +-10 where its (normalised) input is above 0.5: exact on a
    bright object, and it counts what it was shown."""

    def __init__(self):
        self.shapes = []

    def __call__(self, batch, training=False):
        self.shapes.append(batch.shape)
        return np.where(np.asarray(batch) > 0.5, 10.0, -10.0).astype(np.float32)


INFO = {"decimation": 4, "coarse_frame": [16, 16, 8], "fine_patch": [16, 16, 8], "depth": 2,
        "modality": "ct", "window": [-100.0, 240.0], "coarse_box_margin": 2, "fine_margin": 8}


def _ellipsoid(shape=(48, 44, 28), centre=(20, 24, 14), radii=(7, 5, 4)):
    x, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    label = sum(((a - c) / r) ** 2 for a, c, r in zip((x, y, z), centre, radii)) <= 1
    return np.where(label, 200, -800).astype(np.int16), label


def test_vote_of_exact_stages_is_the_label_and_crops_are_the_patch():
    image, label = _ellipsoid()
    coarse, fine = Thresholds(), Thresholds()
    out = TwoStagePredictor(coarse, fine, INFO)(image, probability=True, parts=True, spacing=(1, 1, 1.5))
    assert coarse.shapes == [(1, 16, 16, 8, 1)]  # 12x11x7 at 1/4, centred in the training frame
    assert fine.shapes and all(s[1:4] == (16, 16, 8) for s in fine.shapes)
    b1, b2 = out["boxes"]["box1"], out["boxes"]["box2"]
    truth = np.array([[13, 28], [19, 30], [10, 19]])  # the ellipsoid's box (the 1/4 mask of block means is smaller)
    assert (b1[:, 0] <= truth[:, 0]).all() and (b1[:, 1] >= truth[:, 1]).all()
    assert (b2[:, 0] <= truth[:, 0]).all() and (b2[:, 1] >= truth[:, 1]).all()
    assert dice(out["box1_mask"], label) == 1.0 and dice(out["box2_mask"], label) == 1.0
    assert dice(out["mask"], label) == 1.0  # two exact fine masks outvote the blocky coarse one
    assert dice(out["coarse_mask"], label) < 1.0
    assert (out["probability"][label] > 0.5).all() and out["probability"][~out["coarse_mask"] & ~label].max() < 0.5
    assert "box 1 [" in out["summary"] and "mm" in out["summary"]


def test_empty_coarse_result_gives_an_empty_mask_and_no_fine_call():
    image, _ = _ellipsoid()
    fine = Thresholds()
    out = TwoStagePredictor(lambda b, training=False: np.full(b.shape, -10.0, np.float32), fine, INFO)(
        image, probability=True)
    assert not out["mask"].any() and out["boxes"] is None and fine.shapes == []
    assert "found no pancreas" in out["summary"] and not out["probability"].any()


def test_padding_and_window_helpers():
    assert centred_padding((5, 8, 9), (8, 8, 8)) == [(2, 1), (0, 0), (0, 0)]
    region = window_region(np.array([[2, 6], [10, 30], [0, 4]]), (16, 8, 8), (40, 40, 6))
    assert region.tolist() == [[0, 16], [10, 30], [0, 6]]  # grown and kept inside; bigger axes kept


# large: the tiny model's coarse box on a real 512x512 CT is most of the volume; its fine windows took
# 545 s here while a training job shared the 2-core CPU (the multitask real-CT test stays in the default run).
@pytest.mark.large
@pytest.mark.realdata
def test_predict_a_real_ct_on_its_own_grid(trained, realdata, tmp_path, capsys):
    _, _, run, _, _ = trained
    ct = realdata / "totalsegmentator_s0009" / "ct.nii.gz"
    argv = [f"--model_dir={run.path}", f"--input={ct}", f"--output={tmp_path / 'mask.nii.gz'}"]
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0, capsys.readouterr().err
    assert "mL" in capsys.readouterr().out
    src, mask = nib.load(str(ct)), nib.load(str(tmp_path / "mask.nii.gz"))
    assert mask.shape == src.shape
    np.testing.assert_allclose(mask.affine, src.affine, atol=1e-4)
