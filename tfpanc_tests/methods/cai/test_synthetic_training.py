"""cai trained on synthetic images (issue #17), then scored on 'real' slices by tfpanc.evaluate_real."""

import json

import numpy as np
import pytest

from tfpanc import cli, evaluate_real
from tfpanc.errors import InputError
from tfpanc.methods.cai import CaiConfig
from tfpanc_tests.conftest import train_run, write_ellipsoid_cache

GRID = (400 / 256, 400 / 256, 2.0)   # the generator's pixel, as the synthetic configs' 256 x 256 phantom


def _config(tmp_path, **kw):
    base = dict(model="pnet_msa", model_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "cache"),
                num_units=1, filters=4, batch_size=2, steps_per_epoch=2, epochs_per_unit=1, final_epochs=1,
                slice_size=32, verbose=0, train_images="synthetic", synthetic_steps="intensity,resolution",
                synthetic_bank=str(tmp_path / "bank"), synthetic_anatomies=1, evaluate=False)
    base.update(kw)
    return CaiConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_bank):
    tmp_path = tmp_path_factory.mktemp("synthetic_cai")
    write_ellipsoid_cache(tmp_path / "cache", (32, 32, 8), lambda i: (15, 16, 4), (6, 4, 2), (100, -20), 10, GRID)
    run, info, lines = train_run(_config(tmp_path, synthetic_bank=str(synthetic_bank.root)))
    return tmp_path, run, info, lines


def test_training_reads_synthetic_images_and_records_the_steps(trained):
    tmp_path, run, info, lines = trained
    assert any("synthetic training images: 1 bank anatomies" in line and "intensity, resolution" in line
               for line in lines)
    flags = (run.path / "flags.cfg").read_text()
    assert "--train_images=synthetic" in flags and "--synthetic_steps=intensity,resolution" in flags
    np.testing.assert_allclose(info["training_spacing"], GRID)


def _weights(run, phase):
    import keras

    from tfpanc.models import PNetMSA

    model = PNetMSA(num_units=1, filters=4)
    model(np.zeros((1, 32, 32, 3), np.float32))
    model.load_weights(run.weights_path(phase))
    # Trainable only: batch-norm statistics move whatever the learning rate.
    return np.concatenate([np.ravel(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights])


def test_pnet_final_learning_rate_sets_the_final_phases_peak(trained, synthetic_bank):
    # A near-zero peak leaves the grown network as the last growth phase left it; the default
    # peak (--learning_rate) moves it. The flag is recorded only when set.
    tmp_path, default_run, _, _ = trained
    run, _, _ = train_run(_config(tmp_path, model_dir=str(tmp_path / "slow_final"), pnet_final_learning_rate=1e-9,
                                  synthetic_bank=str(synthetic_bank.root)))
    np.testing.assert_allclose(_weights(run, "pnet_final"), _weights(run, "pnet_k1"), atol=1e-6)
    assert np.abs(_weights(default_run, "pnet_final") - _weights(default_run, "pnet_k1")).max() > 1e-4
    assert "--pnet_final_learning_rate=1e-09" in (run.path / "flags.cfg").read_text()
    assert "pnet_final_learning_rate" not in (default_run.path / "flags.cfg").read_text()


def test_pnet_final_weight_average_averages_that_phase_only(trained, synthetic_bank):
    tmp_path, default_run, _, _ = trained
    run, _, lines = train_run(_config(tmp_path, model_dir=str(tmp_path / "averaged"),
                                      pnet_final_weight_average=0.9, synthetic_bank=str(synthetic_bank.root)))
    assert [line.split(":")[0] for line in lines if "moving average" in line] == ["pnet_final"]
    assert "--pnet_final_weight_average=0.9" in (run.path / "flags.cfg").read_text()
    assert "pnet_final_weight_average" not in (default_run.path / "flags.cfg").read_text()


def test_unet_batch_norm_is_recorded_and_rebuilt_for_prediction(trained, synthetic_bank):
    from tfpanc.methods.cai import networks

    tmp_path, default_run, _, _ = trained
    run, info, _ = train_run(_config(tmp_path, model="unet", unet_batch_norm=True, model_dir=str(tmp_path / "unet_bn"),
                                     filters=2, synthetic_bank=str(synthetic_bank.root)))
    assert info["batch_norm"] is True and "--unet_batch_norm" in (run.path / "flags.cfg").read_text()
    assert "unet_batch_norm" not in (default_run.path / "flags.cfg").read_text()
    cnn, _, _ = networks.load_models(run.path, info)
    assert cnn.batch_norm and any("_bn" in layer.name for layer in cnn.layers)
    with pytest.raises(InputError, match="not this run's network"):   # the plain U-Net's convs have biases
        networks.load_models(run.path, {**info, "batch_norm": False})


def test_old_runs_record_no_synthetic_flags(tmp_path):
    flags = CaiConfig(model_dir=str(tmp_path / "r")).to_flagfile()
    assert "train_images" not in flags and "synthetic" not in flags


def test_cache_on_another_grid_is_refused(tmp_path):
    write_ellipsoid_cache(tmp_path / "cache", (32, 32, 8), lambda i: (15, 16, 4), (6, 4, 2), (100, -20), 10,
                          (1.0, 1.0, 2.0))
    with pytest.raises(InputError, match="--data_dir: case case_0 has 1.000 x 1.000 mm pixels"):
        train_run(_config(tmp_path))
    assert not (tmp_path / "bank").exists()


@pytest.mark.parametrize("kw, flag", [
    (dict(shape_dir="/somewhere"), "--shape_dir"),
    (dict(model="pnet_msa_birnn"), "--model"),
    (dict(synthetic_steps="blur"), "--synthetic_steps"),
    (dict(synthetic_cache_fraction=1.5), "--synthetic_cache_fraction"),
    (dict(pnet_final_learning_rate=-1e-3), "--pnet_final_learning_rate"),
    (dict(pnet_final_weight_average=1.0), "--pnet_final_weight_average"),
    (dict(pnet_final_weight_average=-0.5), "--pnet_final_weight_average"),
    (dict(unet_batch_norm=True), "--unet_batch_norm"),
])
def test_bad_synthetic_settings_name_their_flag(tmp_path, kw, flag):
    with pytest.raises(InputError, match=flag):
        _config(tmp_path, **kw)


def _nih_like_folder(folder, trained_cache):
    """Two 'NIH export' slices: a cached case's centre slice turned into the export layout."""
    from tfpanc.data.cache import CaseCache

    folder.mkdir()
    case = CaseCache(trained_cache).case("case_0")
    for i in range(2):
        image = np.asarray(case.image)[:, :, 4]
        label = np.asarray(case.label)[:, :, 4]
        # export layout = the inverse of nih_slice_to_ras
        np.save(folder / f"img_{i:03d}.npy", image[::-1, :].T.astype(np.int16))
        np.save(folder / f"mask_{i:03d}.npy", label[::-1, :].T.astype(np.uint8))
    return case


def test_nih_layout_turns_into_ras():
    ras = np.arange(12).reshape(4, 3)
    export = ras[::-1, :].T
    assert np.array_equal(evaluate_real.nih_slice_to_ras(export), ras)


def test_evaluate_real_cli_scores_slices(trained, capsys):
    tmp_path, run, _, _ = trained
    _nih_like_folder(tmp_path / "real", tmp_path / "cache")
    fv_args = [f"--model_dir={run.path}", f"--real_dir={tmp_path / 'real'}", f"--slice_spacing={GRID[0]}"]
    assert cli.invoke(evaluate_real.define_flags, evaluate_real.main, fv_args) == 0
    out = run.path / "real" / "real"
    summary = json.loads((out / "summary.json").read_text())
    rows = (out / "per_case.csv").read_text().splitlines()
    assert summary["cases"] == 2 and summary["kind"] == "slices" and len(rows) == 3
    assert 0.0 <= summary["dsc_mean"] <= 1.0 and "2 real slices: DSC" in capsys.readouterr().out
    assert rows[0].split(",")[:4] == ["case", "dsc", "precision", "recall"]
    assert (out / "cases.png").read_bytes()[:4] == b"\x89PNG"


def test_score_is_exact_for_a_known_predictor():
    label = np.zeros((10, 10, 3), bool)
    label[2:6, 2:6] = True
    pred = np.zeros_like(label)
    pred[2:6, 2:4] = True              # half of the label: DSC = 2*8/(8+16) = 2/3
    rows, summary, views = evaluate_real.score(lambda image, spacing: {"mask": pred},
                                               [("a", label.astype(np.int16), label, (1, 1, 1))], "slices",
                                               log=lambda s: None)
    assert rows[0]["dsc"] == pytest.approx(2 / 3) and summary["dsc_pooled"] == pytest.approx(2 / 3)
    assert rows[0]["precision"] == 1.0 and rows[0]["recall"] == 0.5 and summary["recall_mean"] == 0.5
    assert [v.shape for v in views[0][1:]] == [(10, 10)] * 3 and views[0][3].sum() == 8


def test_a_volume_shows_its_most_labelled_and_its_most_predicted_slice():
    label = np.zeros((10, 10, 6), bool)
    label[2:6, 2:6, 1] = True
    pred = np.zeros_like(label)
    pred[2:6, 2:4, 1] = True
    pred[0:8, 0:8, 4] = True            # a false positive on another slice
    _, _, views = evaluate_real.score(lambda image, spacing: {"mask": pred},
                                      [("v", np.zeros(label.shape, np.int16), label, (1, 1, 1))], "volumes",
                                      log=lambda s: None)
    assert [v[0] for v in views] == ["v", "v, most predicted"]
    assert views[0][2].sum() == 16 and views[1][3].sum() == 64 and not views[1][2].any()


def test_slice_without_mask_is_one_line(tmp_path):
    (tmp_path / "real").mkdir()
    np.save(tmp_path / "real" / "img_000.npy", np.zeros((8, 8), np.int16))
    cases, kind = evaluate_real.find_cases(tmp_path / "real", 0.8, 2.0)
    with pytest.raises(InputError, match="has no mask mask_000.npy"):
        list(cases)
    with pytest.raises(InputError, match="--real_dir"):
        evaluate_real.find_cases(tmp_path, 0.8, 2.0)


def test_evaluate_real_scores_an_ensemble(trained, tmp_path):
    """Two copies of the run score what the run scores alone; without --output_dir it is one line."""
    import shutil

    root, run, _, _ = trained
    _nih_like_folder(tmp_path / "real", root / "cache")
    copy = shutil.copytree(run.path, tmp_path / "copy", ignore=shutil.ignore_patterns("real"))
    base = [f"--real_dir={tmp_path / 'real'}", f"--slice_spacing={GRID[0]}", "--nofigure"]
    assert cli.invoke(evaluate_real.define_flags, evaluate_real.main,
                      [f"--model_dir={run.path}", f"--output_dir={tmp_path / 'alone'}", *base]) == 0
    assert cli.invoke(evaluate_real.define_flags, evaluate_real.main,
                      [f"--model_dir={run.path},{copy}", *base]) != 0
    assert cli.invoke(evaluate_real.define_flags, evaluate_real.main,
                      [f"--model_dir={run.path},{copy}", f"--output_dir={tmp_path / 'both'}", *base]) == 0
    alone, both = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("alone", "both"))
    assert both["model_dir"] == f"{run.path},{copy}"
    assert (tmp_path / "alone" / "per_case.csv").read_text() == (tmp_path / "both" / "per_case.csv").read_text()
    assert alone["dsc_mean"] == both["dsc_mean"]
