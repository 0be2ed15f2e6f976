"""multitask end to end on a tiny cache (both stages, derived cache, run.json, evaluation, predict CLI),
and the predictor's grid mapping, region and windows with stand-in networks."""

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest

from tfpanc import cli, predict
from tfpanc.data import cache as cache_lib
from tfpanc.data.preprocess import resize
from tfpanc.errors import InputError
from tfpanc.methods.multitask import MultitaskConfig
from tfpanc.methods.multitask.config import paper_label, parse_paper_size
from tfpanc.methods.multitask.predictor import MultitaskPredictor
from tfpanc.methods.multitask.preprocess import GridMap, derived_folder, to_model_grid
from tfpanc.metrics import dice
from tfpanc_tests.conftest import train_run, write_ellipsoid_cache


def _tiny_cache(root):
    return write_ellipsoid_cache(root, (40, 36, 20), lambda i: (18 + i, 17 - i, 10), (8.0, 6.0, 4.0),
                                 (120, -40), 10, (1.0, 1.0, 1.5))


def _config(tmp_path, **kw):
    base = dict(model_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "cache"), spacing=(2.0, 2.0, 2.0),
                c1_decimation=2, c1_depth=2, c1_filters=2, c1_patch=(8, 8, 8), c1_epochs=1, levels=3, filters=2,
                growth=2, patch=(8, 8, 8), region=(16, 16, 12), step=(4, 4, 4), c2_epochs=2, batch_size=2,
                steps_per_epoch=2, verbose=0, learning_rate=1e-2, crf_iterations=2)
    base.update(kw)
    return MultitaskConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("multitask")
    _tiny_cache(tmp_path / "cache")
    cfg = _config(tmp_path)
    run, info, lines = train_run(cfg)
    return tmp_path, cfg, run, info, lines


def test_both_stages_the_derived_cache_and_the_run_record(trained):
    tmp_path, cfg, run, info, lines = trained
    assert info["method"] == "multitask" and (run.path / "run.json").exists()
    for stage in ("c1", "c2"):
        assert list(json.loads((run.path / stage / "state.json").read_text())["done"]) == [stage]
        assert (run.path / info[f"{stage}_weights"]).exists()
    assert info["c2_model"]["skeleton"] and info["c1_model"]["kernel_initializer"] == "glorot_uniform"
    # Training cases once into the derived cache: 2 mm voxels, a skeleton target beside each.
    derived = cache_lib.CaseCache(derived_folder(cfg))
    case = derived.case(info["split"]["train"][0])
    assert case.spacing == (2.0, 2.0, 2.0) and tuple(case.meta["shape"]) == (20, 18, 15)
    skeleton = np.load(case.folder / "skeleton.npy")
    assert skeleton.shape == (20, 18, 15) and float(skeleton.max()) == 1.0
    assert skeleton[np.asarray(case.label) == 0].mean() < skeleton[np.asarray(case.label) > 0].mean()
    assert not set(derived.case_ids) & set(info["split"]["test"])  # the held-out case is never preprocessed
    tables = json.loads((run.path / "eval" / "tables.json").read_text())
    assert [r["row"] for r in tables["rows"]] == ["c1", "c2", "crf"]
    assert len(tables["cases"]) == 1 and 0.0 <= tables["cases"][0]["region_recall"] <= 1.0
    assert any("Table I" in line for line in lines)


def test_rerun_skips_and_test_time_flags_keep_both_stages(trained):
    _, cfg, _, _, _ = trained
    _, _, lines = train_run(dataclasses.replace(cfg, evaluate=False, step=(2, 2, 2), crf=False))
    assert sum("finished in an earlier run; skipped" in line for line in lines) == 2


def test_predict_cli_maps_back_to_the_input_grid(trained, tmp_path, capsys):
    root, _, run, info, _ = trained
    case = cache_lib.CaseCache(root / "cache").case(info["split"]["test"][0])
    affine = np.diag([-1.0, 1.0, 1.5, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(case.image)[::-1], affine), str(tmp_path / "ct.nii.gz"))
    argv = [f"--model_dir={run.path}", f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'm.nii.gz'}",
            f"--probabilities={tmp_path / 'p.nii.gz'}", "--step=8,8,4", "--nocrf"]
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert ("windows, CRF off" in out) or ("found no pancreas" in out)
    mask = nib.load(str(tmp_path / "m.nii.gz"))
    assert mask.shape == (40, 36, 20)
    np.testing.assert_allclose(mask.affine, affine)
    assert cli.invoke(predict.define_flags, predict.main, argv[:3] + ["--step=0,4,4"]) == 2
    assert "--step" in capsys.readouterr().err


def test_paper_sizes_and_bad_settings(tmp_path):
    assert parse_paper_size("4x16x16", "--steps") == (16, 16, 4) and paper_label((16, 16, 4)) == "4x16x16"
    with pytest.raises(InputError, match="--steps"):
        parse_paper_size("4x16", "--steps")
    for kw, flag in ((dict(patch=(64, 64, 12)), "--patch"), (dict(region=(32, 32, 8)), "--region"),
                     (dict(c1_convs=3), "--c1_convs"), (dict(final_learning_rate=1.0), "--final_learning_rate"),
                     (dict(crf_sigma_alpha=(3.0, 0.0, 3.0)), "--crf_sigma_alpha"), (dict(c1_scale=-0.1), "--c1_scale")):
        with pytest.raises(InputError, match=flag):
            MultitaskConfig(model_dir=str(tmp_path / "r"), **kw)


# --- the predictor with stand-in networks -------------------------------------------------------


class Bright:
    """A "network" whose logit is +-10 where its normalised input is above ``level``, with a
    skeleton channel of zeros; it records the window shapes it was shown."""

    def __init__(self, level, channels):
        self.level, self.channels, self.shapes = level, channels, []

    def __call__(self, batch, training=False):
        self.shapes.append(batch.shape)
        logit = np.where(np.asarray(batch) > self.level, 10.0, -10.0).astype(np.float32)
        return np.concatenate([logit] + [np.zeros_like(logit)] * (self.channels - 1), axis=-1)


INFO = {"spacing": [2.0, 2.0, 2.0], "body_threshold": -500.0, "c1_decimation": 2, "c1_patch": [8, 8, 8],
        "c1_opening": 1, "patch": [8, 8, 8], "region": [24, 24, 16], "step": [4, 4, 4], "weighting": "constant",
        "crf": True, "crf_settings": {"iterations": 3, "w1": 3.0, "sigma_alpha_mm": [1.0, 1.0, 1.0], "w2": 1.0,
                                      "sigma_beta_mm": [5.0, 5.0, 5.0], "sigma_gamma": 10.0}}


def _scan(shape=(60, 56, 30), centre=(26, 30, 15), radii=(14, 11, 8), spacing=(1.0, 1.0, 1.5)):
    # A bright ellipsoid (pancreas stand-in, radii in mm) inside a body block, air around.
    axes = [np.arange(n) * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    centre_mm = [c * s for c, s in zip(centre, spacing)]
    label = sum(((a - c) / r) ** 2 for a, c, r in zip((x, y, z), centre_mm, radii)) <= 1
    image = np.full(shape, -1000, np.int16)
    image[4:-4, 4:-4, :] = 0
    image[label] = 300
    return image, label


def test_exact_networks_give_the_label_on_the_input_grid():
    image, label = _scan()
    # The (-1, 1) normalisation of the body crop maps 300 HU to 1 and 0 HU to about -0.05: level 0.2 splits them.
    c1, c2 = Bright(0.2, 1), Bright(0.2, 2)
    out = MultitaskPredictor(c1, c2, INFO)(image, spacing=(1.0, 1.0, 1.5), parts=True, probability=True)
    assert out["mask"].shape == image.shape and out["probability"].dtype == np.float32
    assert all(s[1:4] == (8, 8, 8) for s in c2.shapes) and c1.shapes
    assert dice(out["c2_mask"], label) > 0.9 and dice(out["mask"], label) > 0.9
    assert out["region_mask"][label].all()  # the region holds the whole object
    assert (out["region"][:, 1] - out["region"][:, 0]).tolist() == [24, 24, 16]
    assert set(out["seconds_by_part"]) == {"resample", "c1", "sliding_window", "crf", "paste_back"}
    # Body crop: 60x56x30 at 1 x 1 x 1.5 mm is 30x28x22 at 2 mm, the body 26x24x22 of it.
    crop, grid = to_model_grid(image, (1.0, 1.0, 1.5), (2.0, 2.0, 2.0), -500.0)
    assert crop.shape == (26, 24, 22) and grid.resampled_shape == (30, 28, 22)
    # Halving the step in every axis gives 8x the windows (up to the grid's last window at the border).
    fine = MultitaskPredictor(Bright(0.2, 1), Bright(0.2, 2), INFO, step=(2, 2, 2), crf=False)(
        image, spacing=(1.0, 1.0, 1.5))
    assert fine["windows"] > 5 * out["windows"] and "CRF off" in fine["summary"]


def test_empty_c1_gives_an_empty_mask_and_no_c2_call():
    image, _ = _scan()
    c2 = Bright(0.2, 2)
    out = MultitaskPredictor(Bright(5.0, 1), c2, INFO)(image, spacing=(1.0, 1.0, 1.5), parts=True)
    assert not out["mask"].any() and out["region"] is None and c2.shapes == []
    assert "C1 found no pancreas" in out["summary"]


def test_a_lower_c1_threshold_keeps_a_larger_mask_around_the_same_one():
    # The region-coverage tool lowers the threshold to ask whether a looser C1 mask reaches further.
    image, _ = _scan()
    crop, _ = to_model_grid(image, (1.0, 1.0, 1.5), (2.0, 2.0, 2.0), -500.0)
    predictor = MultitaskPredictor(Bright(0.2, 1), Bright(0.2, 2), INFO)
    strict, loose = predictor.c1_opened(crop), predictor.c1_opened(crop, threshold=0.1)
    assert strict.any() and (loose >= strict).all() and loose.sum() > strict.sum()


def test_grid_map_back_equals_pasting_and_resizing_the_whole_volume():
    rng = np.random.default_rng(0)
    grid = GridMap((37, 29, 11), (25, 20, 17), np.array([[3, 21], [2, 18], [1, 17]]))
    part_box = np.array([[4, 12], [0, 9], [5, 16]])  # a box inside the crop
    values = rng.random(tuple(np.diff(part_box, axis=1)[:, 0])).astype(np.float32)
    full = np.zeros((25, 20, 17), np.float32)
    full[7:15, 2:11, 6:17] = values  # crop start + part box
    expected = resize(full, (37, 29, 11))[0]
    np.testing.assert_allclose(grid.to_original(values, box=part_box), expected, atol=1e-6)


def test_tables_with_a_step_sweep_on_the_trained_run(trained, tmp_path):
    from tfpanc.methods.multitask.tables import run_tables

    _, _, run, _, _ = trained
    lines = []
    record = run_tables([run.path], variants=[f"no_dense:{run.path}"], steps="4x4x4,8x8x8",
                        output_dir=tmp_path / "t", log=lines.append)
    coarse, fine = {e["step"]: e for e in record["steps"]}["8x8x8"], {e["step"]: e for e in record["steps"]}["4x4x4"]
    assert fine["windows"] > coarse["windows"] and fine["n"] == coarse["n"] == 1
    assert {"fig9_steps.png", "fig11_dense.png"} <= set(record["figures"])
    assert (tmp_path / "t" / "fig9_steps.png").stat().st_size > 1000
    assert record["ttests"][0]["p"] is None  # one held-out case: no t-test, and it says so
    assert any("too few for a t-test" in line for line in lines)


@pytest.mark.realdata
def test_predict_a_real_ct_on_its_own_grid(trained, realdata, tmp_path, capsys):
    _, _, run, _, _ = trained
    ct = realdata / "totalsegmentator_s0009" / "ct.nii.gz"
    argv = [f"--model_dir={run.path}", f"--input={ct}", f"--output={tmp_path / 'mask.nii.gz'}", "--nocrf"]
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0, capsys.readouterr().err
    assert "mL" in capsys.readouterr().out
    src, mask = nib.load(str(ct)), nib.load(str(tmp_path / "mask.nii.gz"))
    assert mask.shape == src.shape
    np.testing.assert_allclose(mask.affine, src.affine, atol=1e-4)
