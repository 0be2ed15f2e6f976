"""two_stage's SavedModel: loaded in a fresh process it answers as TwoStagePredictor (probability, vote,
volume), the empty-coarse case included; a run it cannot serve is refused with nothing written."""

import json

import numpy as np
import pytest

from tfpanc_tests.export.fresh_process import assert_refused_without_weights, serve_in_fresh_process

INFO = {"method": "two_stage", "model": "unet3d", "depth": 2, "filters": 2, "norm": "instance", "modality": "ct",
        "window": [-100.0, 240.0], "fold": 0, "data_dir": "", "decimation": 4, "threshold": 0.5,
        "coarse_weights": "coarse/coarse.weights.h5", "coarse_frame": [12, 8, 8],
        "fine_weights": "fine/fine.weights.h5", "fine_patch": [16, 16, 8], "coarse_box_margin": 1,
        "fine_margin": 3}
SPACING = (0.8, 0.75, 2.5)
# Not multiples of the network's 4 (nor of R): the padding, the partial blocks and the crops all show;
# at 1/4 (10 x 9 x 5) y outgrows the coarse frame, which then grows to the network's multiple.
SHAPE, EMPTY_SHAPE = (38, 35, 19), (30, 33, 17)


def _shaped_unet(gain, bias):
    """A 3D U-Net of INFO whose logit follows the image (the pancreas-like bright blob is positive).

    Fresh He weights scaled down by 5, plus a centre-tap path that carries channel 0 from the input
    through the top level to the logit: the network's output still mixes every level and neighbour
    (so a wrong window, pad or crop shows) but, unlike a plain random net, it finds a compact box.
    Air alone (a constant input: zeros after the instance norms) gives the logit ``bias``.
    """
    from tfpanc.methods.two_stage.recipe import build_model

    model = build_model(INFO)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or "norm" in layer.name:
            continue
        weights = [w * 0.1 for w in weights]
        kernel = weights[0]
        if layer.name in ("down0_conv1", "down0_conv2", "up0_conv1", "up0_conv2"):
            kernel[tuple(s // 2 for s in kernel.shape[:3]) + (0, 0)] += 1.0
        if layer.name == "logits":
            kernel[0, 0, 0, 0, 0], weights[1][0] = gain, bias
        layer.set_weights(weights)
    return model


def write_run(run_dir, seed=0):
    """A two_stage run folder (run.json and both stages' weights) without training."""
    import keras

    keras.utils.set_random_seed(seed)
    for stage, (gain, bias) in {"coarse": (2.0, -2.8), "fine": (1.5, -3.5)}.items():
        (run_dir / stage).mkdir(parents=True, exist_ok=True)
        _shaped_unet(gain, bias).save_weights(run_dir / INFO[f"{stage}_weights"])
    (run_dir / "run.json").write_text(json.dumps(INFO, indent=1) + "\n")
    return run_dir


def _ct(shape, centre, seed, radii=(6, 5, 3)):
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    blob = sum(((a - c) / r) ** 2 for a, c, r in zip((x, y, z), centre, radii)) <= 1
    return (np.where(blob, 200.0, -60.0) + rng.normal(0, 20, shape)).astype(np.float32)


# One fresh process loads the export and answers every request the tests check.
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tfpanc.export import export_model

    root = tmp_path_factory.mktemp("two_stage_serving")
    run = write_run(root / "run")
    lines = []
    export_dir = export_model(run, root / "serving" / "two_stage", log=lines.append)
    pair = np.stack([_ct(SHAPE, (17, 16, 9), seed=1), _ct(SHAPE, (21, 19, 10), seed=2, radii=(5, 6, 4))])
    empty = np.full((1,) + EMPTY_SHAPE, -1000.0, np.float32)  # air only: the coarse stage finds nothing
    out = serve_in_fresh_process(export_dir, {"pair": (pair, np.tile(np.float32(SPACING), (2, 1))),
                                              "empty": (empty, np.float32([SPACING]))}, root)
    return run, export_dir, lines, {"pair": pair, "empty": empty}, out


_PREDICTOR = {}


def _predictor(run):
    from tfpanc.methods.two_stage.predictor import TwoStagePredictor

    if run not in _PREDICTOR:
        # 8 windows per call instead of 1: fewer eager calls, the same result (per-sample norms).
        _PREDICTOR[run] = TwoStagePredictor.load(run, batch_size=8)
    return _PREDICTOR[run]


def _near_a_threshold(predictor, image, boxes, tol=1e-4):
    """Voxels where one of the vote's three probabilities is within ``tol`` of 0.5 (float noise may flip them)."""
    from tfpanc.data.boxes import box_slices

    stats = predictor.normalizer.stats(image)
    coarse_p, _ = predictor.upsampled(predictor.coarse_probability(image, stats), image.shape)
    near = np.abs(coarse_p - 0.5) < tol
    for box in boxes.values():
        near[box_slices(box)] |= np.abs(predictor.fine_probability(image, stats, box) - 0.5) < tol
    return near


def test_export_layout_log_and_metadata(served):
    run, export_dir, lines, _, out = served
    assert export_dir.name == "1" and (export_dir / "saved_model.pb").is_file()
    assert not export_dir.with_name("1.partial").exists()
    assert lines[-1].startswith("exported two_stage (R = 4, frame [12, 8, 8], patch [16, 16, 8])")
    meta = json.loads((export_dir / "assets.extra" / "tfpanc_export.json").read_text())
    assert (meta["method"], meta["decimation"], meta["frame"], meta["patch"]) == ("two_stage", 4, [12, 8, 8],
                                                                                 [16, 16, 8])
    assert meta["run"] == str(run.resolve()) and meta["signature"] == "serving_default"
    assert out["pair_mask"].dtype == np.uint8 and out["pair_probability"].dtype == np.float32


def test_signature_equals_two_stage_predictor(served):
    run, _, _, inputs, out = served
    predictor = _predictor(run)
    for i, image in enumerate(inputs["pair"]):
        expected = predictor(image, probability=True, spacing=SPACING)
        assert expected["boxes"] is not None and 0 < expected["mask"].sum() < expected["mask"].size / 10
        prob, mask = out["pair_probability"][i], out["pair_mask"][i]
        assert prob.shape == mask.shape == SHAPE
        np.testing.assert_allclose(prob, expected["probability"], rtol=0, atol=1e-4)
        differ = mask != expected["mask"]
        if differ.any():  # allowed only where float noise can flip one of the three votes
            differ &= ~_near_a_threshold(predictor, image, expected["boxes"])
        assert not differ.any(), f"{differ.sum()} voxels of the vote differ away from a threshold"
        voxel_ml = np.prod(np.float64(SPACING)) / 1000
        np.testing.assert_allclose(out["pair_volume_ml"][i], mask.sum() * voxel_ml, rtol=1e-5)


def test_empty_coarse_result_is_an_empty_answer(served):
    run, _, _, inputs, out = served
    expected = _predictor(run)(inputs["empty"][0], probability=True)
    assert expected["boxes"] is None and not expected["probability"].any()
    assert out["empty_probability"].shape == (1,) + EMPTY_SHAPE
    assert not out["empty_probability"].any() and not out["empty_mask"].any()
    assert out["empty_volume_ml"].tolist() == [0.0]


def test_run_with_a_missing_weights_file_is_refused_and_nothing_written(served, tmp_path):
    assert_refused_without_weights(served[0], INFO["coarse_weights"], INFO["fine_weights"], tmp_path)