"""The registry is enough to add a method: a toy 3D method, registered through the public
API only, is trained, predicted and evaluated by the real CLIs (in-process), with its own
flag, the shared case split, and other methods' flags refused."""

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest

from tfpanc import cli, evaluate, predict, train
from tfpanc.data.cache import CaseCache
from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.flags import SharedConfig, setting
from tfpanc.methods import registry
from tfpanc_tests.conftest import write_ellipsoid_cache


@dataclasses.dataclass(frozen=True)
class ToyConfig(SharedConfig):
    MODELS = ("one_conv3d",)
    LOSSES = ("ce",)

    method: str = setting("toy", "Paper whose recipe to run.")
    toy_patch: int = setting(16, "Edge of the cubic training patches.")


@dataclasses.dataclass(frozen=True)
class ToyPredictOptions:
    toy_cut: float = setting(None, "Mask threshold; default 0.5.", kind="float")


def _network():
    import keras

    inputs = keras.Input((None, None, None, 1))
    return keras.Model(inputs, keras.layers.Conv3D(1, 3, padding="same", name="conv")(inputs))


def toy_train(cfg, run, log, data):
    from tfpanc.data.sampling3d import PatchSampler
    from tfpanc.losses import get_loss
    from tfpanc.training.fit import fit_phase, make_input

    normalizer = IntensityNormalizer(data.cache.modality, window=cfg.window)
    sampler = PatchSampler(data.cache, data.train_ids, (cfg.toy_patch,) * 3, seed=cfg.seed, normalizer=normalizer)
    model = _network()
    fit_phase(cfg, run, log, "toy", model, get_loss(cfg.loss), cfg.learning_rate,
              make_input(sampler, cfg.batch_size, cfg.steps_per_epoch), 4)
    return {"weights": run.weights_path("toy").name, "window": list(cfg.window), "modality": data.cache.modality,
            "seen_cases": {"train": data.train_ids, "validation": data.val_ids}}


def toy_predictor(run_dir, info, options):
    from keras import ops

    model = _network()
    model.load_weights(f"{run_dir}/{info['weights']}")
    normalizer = IntensityNormalizer(info["modality"], window=tuple(info["window"]))
    cut = 0.5 if options.toy_cut is None else options.toy_cut

    def predict_volume(image, probability=False, spacing=None):
        x = normalizer(np.asarray(image), normalizer.stats(image))[None, ..., None].astype("float32")
        prob = ops.convert_to_numpy(ops.sigmoid(model(x)))[0, ..., 0]
        return {"mask": prob > cut, "probability": prob, "summary": f"cut {cut}"}

    return predict_volume


def toy_evaluate(run_dir, cache, case_ids, log):
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "toy.json").write_text(json.dumps({"cases": list(case_ids)}))


@pytest.fixture
def toy_method():
    method = registry.register(registry.Method(
        name="toy", config=ToyConfig, train=f"{__name__}:toy_train", predictor=f"{__name__}:toy_predictor",
        evaluate=f"{__name__}:toy_evaluate", predict_options=ToyPredictOptions))
    yield method
    registry.unregister("toy")


def test_a_registered_method_trains_predicts_and_evaluates_through_the_clis(toy_method, tmp_path, capsys):
    write_ellipsoid_cache(tmp_path / "cache", (24, 24, 16), lambda i: (12, 12, 8), (6.0, 5.0, 4.0),
                                (120, -40), 5, (1.0, 1.0, 1.0), n=8)
    run = tmp_path / "run"
    args = ["--method=toy", f"--model_dir={run}", f"--data_dir={tmp_path / 'cache'}", "--toy_patch=8",
            "--batch_size=4", "--steps_per_epoch=30", "--learning_rate=0.05", "--verbose=0", "--fold=1",
            "--val_fraction=0.2"]
    assert cli.invoke(train.define_flags, train.main, args) == 0, capsys.readouterr().err
    info = json.loads((run / "run.json").read_text())
    split = info["split"]
    cache = CaseCache(tmp_path / "cache")
    folds_train, held_out = cache.split(1)
    # The held-out fold never reached training; validation came from the training folds.
    assert split["test"] == held_out and set(info["seen_cases"]["train"]) | set(split["validation"]) == set(
        folds_train)
    assert len(split["validation"]) == 1 and not set(split["validation"]) & set(split["test"])
    assert json.loads((run / "eval" / "toy.json").read_text())["cases"] == held_out
    assert "--toy_patch=8" in (run / "flags.cfg").read_text() and "--num_units" not in (run / "flags.cfg").read_text()

    case = cache.case(held_out[0])
    nib.save(nib.Nifti1Image(np.asarray(case.image), np.eye(4)), str(tmp_path / "ct.nii.gz"))
    (tmp_path / "pred").mkdir()
    argv = [f"--model_dir={run}", f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'pred' / 'c.nii.gz'}",
            "--toy_cut=0.5"]
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0, capsys.readouterr().err
    assert "cut 0.5" in capsys.readouterr().out
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(np.asarray(case.label), np.eye(4)), str(tmp_path / "labels" / "c.nii.gz"))
    argv = [f"--pred_dir={tmp_path / 'pred'}", f"--label_dir={tmp_path / 'labels'}",
            f"--output_dir={tmp_path / 'scores'}"]
    assert cli.invoke(evaluate.define_flags, evaluate.main, argv) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "scores" / "summary.json").read_text())
    # A bright ellipsoid on a dark background: one 3x3x3 convolution learns to threshold it.
    assert summary["metrics"]["dsc"]["mean"] > 0.5


def test_other_methods_flags_are_refused_in_one_line(toy_method, tmp_path, capsys):
    base = ["--method=toy", f"--model_dir={tmp_path / 'run'}", f"--data_dir={tmp_path / 'none'}"]
    assert cli.invoke(train.define_flags, train.main, base + ["--num_units=3"]) == 2
    assert capsys.readouterr().err.strip() == "error: --num_units: is a cai flag; it does not apply to method toy"
    assert cli.invoke(train.define_flags, train.main, ["--method=cai", "--toy_patch=4",
                                                      f"--model_dir={tmp_path / 'r2'}"]) == 2
    assert "--toy_patch: is a toy flag" in capsys.readouterr().err
    assert cli.invoke(train.define_flags, train.main, ["--method=nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "r2").exists()


def test_methods_share_a_flag_name_with_their_own_defaults(toy_method, train_flags):
    @dataclasses.dataclass(frozen=True)
    class Other(SharedConfig):
        method: str = setting("other", "m")
        toy_patch: int = setting(99, "another default for the toy's flag")

    @dataclasses.dataclass(frozen=True)
    class Clash(SharedConfig):
        method: str = setting("clash", "m")
        toy_patch: float = setting(0.5, "another type for the toy's flag")

    with pytest.raises(ValueError, match="toy_patch"):
        registry.register(registry.Method(name="clash", config=Clash, train="x:y", predictor="x:y"))
    assert "clash" not in registry.names()
    registry.register(registry.Method(name="other", config=Other, train="x:y", predictor="x:y"))
    try:
        from absl import flags

        fv = flags.FlagValues()
        train.define_flags(fv)
        fv(["prog", "--method=other"])
        assert registry.train_config(fv)[1].toy_patch == 99
        fv.unparse_flags()
        fv(["prog", "--method=toy"])
        assert registry.train_config(fv)[1].toy_patch == 16
        fv.unparse_flags()
        fv(["prog", "--method=toy", "--toy_patch=4"])
        assert registry.train_config(fv)[1].toy_patch == 4
        assert "toy: Edge" in fv["toy_patch"].help and "other: another default" in fv["toy_patch"].help
    finally:
        registry.unregister("other")
