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
    run = write_random_run(tmp_path / "run", "pnet_msa", num_units=3, filters=4)
    method, info = registry.method_of_run(run)
    predict = method.call("predictor", run, info, None)
    multiple = method.call("crop_multiple", info)
    assert multiple == (4, 4, 1)  # two poolings in-plane; slices are predicted one by one
    whole = predict(image, probability=True)
    cropped = predict_in_body(predict, image, spacing, probability=True, multiple=multiple)
    box = cropped["body_box"]
    assert box[0, 0] % 4 == 0 and box[1, 0] % 4 == 0 and box[1, 0] > 0  # a real, aligned crop
    region = tuple(slice(lo, hi) for lo, hi in box)
    # Away from the crop's edges only the deepest features' border context differs: this net's
    # interior probabilities moved by 0.016 at most aligned, 0.17 with the start off the pooling grid.
    inner = tuple(slice(lo + 8, hi - 8) for lo, hi in box[:2].tolist())
    assert whole["mask"][inner].sum() > 100  # a mask worth comparing
    assert dice(cropped["mask"][inner], whole["mask"][inner]) >= 0.99
    assert np.abs(cropped["probability"][inner] - whole["probability"][inner]).max() < 0.05
    outside = np.ones(image.shape, bool)
    outside[region] = False
    assert not cropped["mask"][outside].any() and not cropped["probability"][outside].any()
    assert cropped["mask"].shape == image.shape


def _pool4(img, probability=False, spacing=None):
    """A stride-4 'network': 4 x 4 in-plane block means, padded at the end as slicewise pads."""
    x = (np.asarray(img) > 0).astype(np.float32)
    pad = [(0, -n % 4) for n in x.shape[:2]] + [(0, 0)]
    p = np.pad(x, pad)
    blocks = p.reshape(p.shape[0] // 4, 4, p.shape[1] // 4, 4, -1).mean(axis=(1, 3))
    prob = np.repeat(np.repeat(blocks, 4, 0), 4, 1)[:x.shape[0], :x.shape[1]]
    return {"mask": prob >= 0.5, "probability": prob}


def test_a_crop_aligned_to_the_pooling_grid_gives_the_whole_answer():
    ct = np.full((48, 40, 3), -1000.0)
    ct[13:34, 9:30] = 50.0  # the body box plus 2 mm starts at 11, 7: off the 4-voxel grid
    whole = _pool4(ct, probability=True)
    aligned = predict_in_body(_pool4, ct, (1.0, 1.0, 1.0), probability=True, margin_mm=2, multiple=(4, 4, 1))
    assert aligned["body_box"][:2, 0].tolist() == [8, 4]
    assert np.array_equal(aligned["probability"], whole["probability"])
    shifted = predict_in_body(_pool4, ct, (1.0, 1.0, 1.0), probability=True, margin_mm=2)
    assert shifted["body_box"][:2, 0].tolist() == [11, 7]
    assert not np.array_equal(shifted["mask"], whole["mask"])  # the old crop moved the answer


def test_predict_aligns_cai_and_zhou_crops_and_leaves_two_stage_whole():
    from tfpanc.methods import registry
    from tfpanc.predict import local_pipeline

    ct = np.full((70, 60, 4), -1000.0)
    ct[21:50, 29:45] = 50.0  # with the 20 mm margin at 2 mm the crop would start at 11, 19
    for name, info, starts in (
            ("cai", {"model": "pnet_msa", "num_units": 3}, [8, 16]),   # floored to 4
            ("zhou", {}, [0, 0]),                                       # floored to 32
            ("two_stage", {"decimation": 4, "depth": 3}, None)):
        seen = []

        def toy(img, probability=False, spacing=None):
            seen.append(img.shape)
            return {"mask": np.zeros(img.shape, bool)}

        info = dict(info, modality="ct")
        predict = local_pipeline(toy, registry.get(name), info, body_crop=True, resample=False, log=lambda *a: None)
        out = predict(ct, spacing=(2.0, 2.0, 2.0))
        if starts is None:
            assert seen == [ct.shape] and "body_box" not in out, name
        else:
            assert out["body_box"][:2, 0].tolist() == starts, name
            assert seen[0][0] < ct.shape[0], name  # cropped in x


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
