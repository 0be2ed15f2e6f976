"""Prediction inside the body box: the same answer where the body is, background outside, border bodies."""

import numpy as np

from tfpanc.data.phantom import make_case
from tfpanc.inference.body_crop import body_region, predict_in_body
from tfpanc.metrics.overlap import dice


def _phantom():
    case = make_case((64, 64, 32), seed=3, case_index=0)
    return np.asarray(case.image, np.float32), case.spacing


def test_phantom_body_box_is_smaller_than_the_field_of_view_and_holds_the_pancreas():
    case = make_case((64, 64, 32), seed=3, case_index=0)
    box = body_region(case.image, case.spacing)
    sizes = np.diff(box, axis=1)[:, 0]
    assert sizes[0] * sizes[1] < 0.8 * 64 * 64  # air is cut away in-plane
    inside = np.zeros(case.label.shape, bool)
    inside[tuple(slice(lo, hi) for lo, hi in box)] = True
    assert case.label.sum() > 0 and case.label[~inside].sum() == 0


def test_cai_network_gives_the_same_mask_inside_the_body(tmp_path):
    from tfpanc.methods import registry
    from tfpanc.methods.cai.random_run import write_random_run

    image, spacing = _phantom()
    run = write_random_run(tmp_path / "run", "pnet_msa", num_units=1, filters=4)
    method, info = registry.method_of_run(run)
    predict = method.call("predictor", run, info, None)
    whole = predict(image, probability=True)
    cropped = predict_in_body(predict, image, spacing, probability=True)
    box = cropped["body_box"]
    region = tuple(slice(lo, hi) for lo, hi in box)
    assert whole["mask"][region].sum() > 100  # a mask worth comparing
    # Inside the box only the networks' border context differs (air vs zero padding, both 0 after the window).
    assert dice(cropped["mask"][region], whole["mask"][region]) >= 0.99
    outside = np.ones(image.shape, bool)
    outside[region] = False
    assert not cropped["mask"][outside].any() and not cropped["probability"][outside].any()
    assert cropped["mask"].shape == image.shape


def test_body_touching_the_border_and_all_body_volumes():
    seen = []

    def toy(img, probability=False, spacing=None):
        seen.append(img.shape)
        out = {"mask": img > 0, "summary": "toy"}
        if probability:
            out["probability"] = (img > 0).astype(np.float32)
        return out

    ct = np.full((30, 20, 5), -1000.0)
    ct[0:12, 5:15] = 60.0  # the body runs off the volume at x = 0
    out = predict_in_body(toy, ct, (1.0, 1.0, 1.0), probability=True, margin_mm=3)
    assert out["body_box"].tolist() == [[0, 15], [2, 18], [0, 5]] and seen[-1] == (15, 16, 5)
    assert out["mask"].sum() == 12 * 10 * 5 and out["summary"] == "toy"
    passed = []
    no_air = np.full((8, 8, 3), 40.0)
    full = predict_in_body(lambda img, probability=False, spacing=None: passed.append(img) or {"mask": img > 0},
                           no_air, (1.0, 1.0, 1.0))
    assert passed[0] is no_air and full["mask"].all()  # no air: the volume itself, uncopied


def test_predict_command_crops_ct_by_default_and_not_with_nobody_crop(tmp_path, capsys):
    from tfpanc import cli, predict
    from tfpanc.data import io
    from tfpanc.methods.cai.random_run import write_random_run

    image, spacing = _phantom()
    io.save_volume(image.astype(np.int16), io.Geometry.from_spacing(image.shape, spacing), tmp_path / "ct.nii.gz")
    run = write_random_run(tmp_path / "run", "pnet_msa", num_units=1, filters=4)
    masks = {}
    for name, extra in (("crop", []), ("whole", ["--nobody_crop"])):
        argv = [f"--model_dir={run}", f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / name}.nii.gz",
                *extra]
        assert cli.invoke(predict.define_flags, predict.main, argv) == 0, capsys.readouterr().err
        masks[name] = io.load_volume(tmp_path / f"{name}.nii.gz").array.astype(bool)
    box = body_region(image, spacing)
    region = tuple(slice(lo, hi) for lo, hi in box)
    outside = np.ones(image.shape, bool)
    outside[region] = False
    assert dice(masks["crop"][region], masks["whole"][region]) >= 0.99
    assert not masks["crop"][outside].any()
