"""multitask's SavedModel: loaded in a fresh process it answers as MultitaskPredictor with the CRF off
(resampling with each volume's spacing, body crop, C1's region, C2's windows, the way back to the input's
grid), the empty-C1 case included; a run it cannot serve is refused with nothing written."""

import json

import numpy as np
import pytest

from tfpanc_tests.export.fresh_process import assert_refused_without_weights, serve_in_fresh_process

INFO = {"method": "multitask", "model": "multitask_dense_unet3d", "modality": "ct", "fold": 0, "data_dir": "",
        "threshold": 0.5, "spacing": [2.0, 2.0, 2.0], "body_threshold": -500.0, "c1_decimation": 2,
        "c1_patch": [8, 8, 8], "c1_opening": 1, "patch": [8, 8, 8], "region": [16, 24, 12], "step": [4, 4, 4],
        "weighting": "constant", "crf": True,
        "crf_settings": {"iterations": 2, "w1": 3.0, "sigma_alpha_mm": [1.0, 1.0, 1.0], "w2": 1.0,
                         "sigma_beta_mm": [5.0, 5.0, 5.0], "sigma_gamma": 10.0},
        "c1_weights": "c1/c1.weights.h5", "c2_weights": "c2/c2.weights.h5",
        "c1_model": {"depth": 2, "filters": 2, "norm": "none", "convs": 1, "kernel_initializer": "glorot_uniform"},
        "c2_model": {"levels": 3, "filters": 2, "growth": 2, "convs_per_block": 1, "dense": True,
                     "feature_consistency": True, "skeleton": True, "norm": "none",
                     "kernel_initializer": "glorot_uniform"}}
# Neither the run's 2 mm nor one another's: the graph resamples each volume with its own spacing
# (43 x 37 x 23 at 1.3 x 1.1 x 2.7 mm is 28 x 20 x 31 at 2 mm), and no size is a multiple of anything.
SHAPE, SPACINGS = (43, 37, 23), ((1.3, 1.1, 2.7), (1.7, 0.9, 2.3))
EMPTY_SHAPE, EMPTY_SPACING = (31, 29, 13), (1.6, 1.4, 3.1)


def _shaped_c1(gain, bias):
    """C1 of INFO whose logit follows the image: ``gain * relu(normalised input) + bias`` plus a small
    random mix of every level (fresh Glorot weights scaled by 0.1) through a centre-tap path."""
    from tfpanc.methods.multitask.recipe import build_c1

    model = build_c1(INFO["c1_model"])
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        weights = [w * 0.1 for w in weights]
        kernel = weights[0]
        if layer.name in ("down0_conv1", "up0_conv1"):
            kernel[tuple(s // 2 for s in kernel.shape[:3]) + (0, 0)] += 1.0
        if layer.name == "logits":
            kernel[0, 0, 0, 0, 0], weights[1][0] = gain, bias
        layer.set_weights(weights)
    return model


def write_run(run_dir, seed=0):
    """A multitask run folder (run.json, C1 and C2 weights) without training."""
    import keras

    from tfpanc.methods.multitask.recipe import build_c2

    keras.utils.set_random_seed(seed)
    for stage in ("c1", "c2"):
        (run_dir / stage).mkdir(parents=True, exist_ok=True)
    _shaped_c1(8.0, -3.0).save_weights(run_dir / INFO["c1_weights"])
    c2 = build_c2(INFO["c2_model"])
    logit = c2.get_layer("segmentation_logit")
    kernel, bias = logit.get_weights()
    logit.set_weights([kernel * 20.0, bias + 0.3])  # a random C2 whose mask is neither empty nor full
    c2.save_weights(run_dir / INFO["c2_weights"])
    (run_dir / "run.json").write_text(json.dumps(INFO, indent=1) + "\n")
    return run_dir


def _ct(shape, spacing, centre_mm, seed, radii_mm=(9.0, 8.0, 7.0)):
    """Air, a body block (~40 HU, noisy) and a bright ellipsoid (the pancreas stand-in C1 finds)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)], indexing="ij")
    blob = sum(((a - c) / r) ** 2 for a, c, r in zip((x, y, z), centre_mm, radii_mm)) <= 1
    ct = np.full(shape, -1000.0, np.float32)
    ct[3:-4, 5:-2, :] = 40.0
    ct[blob] = 300.0
    return (ct + rng.normal(0, 15, shape)).astype(np.float32)


# One fresh process loads the export and answers every request the tests check.
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tfpanc.export import export_model

    root = tmp_path_factory.mktemp("multitask_serving")
    run = write_run(root / "run")
    lines = []
    export_dir = export_model(run, root / "serving" / "multitask", log=lines.append)
    pair = np.stack([_ct(SHAPE, SPACINGS[0], (30.0, 22.0, 30.0), seed=1),
                     _ct(SHAPE, SPACINGS[1], (40.0, 18.0, 27.0), seed=2, radii_mm=(8.0, 7.0, 8.0))])
    # A body without the bright object: C1 finds nothing.
    empty = np.full((1,) + EMPTY_SHAPE, -1000.0, np.float32)
    empty[0, 4:-4, 3:-5, :] = 40.0
    inputs = {"pair": pair, "pair_spacing": np.float32(SPACINGS), "empty": empty,
              "empty_spacing": np.float32([EMPTY_SPACING])}
    out = serve_in_fresh_process(export_dir, {"pair": (pair, inputs["pair_spacing"]),
                                              "empty": (empty, inputs["empty_spacing"])}, root)
    return run, export_dir, lines, inputs, out


_PREDICTOR = {}


def _predictor(run):
    from tfpanc.methods.multitask.predictor import MultitaskPredictor

    if run not in _PREDICTOR:
        _PREDICTOR[run] = MultitaskPredictor.load(run, crf=False)
    return _PREDICTOR[run]


def _c1_margin(predictor, image, spacing):
    """How close C1's upsampled probability comes to its 0.5 threshold (float noise must not move the region)."""
    from tfpanc.data.preprocess import decimate_image, upsample
    from tfpanc.inference.sliding_window import sliding_window_inference
    from tfpanc.methods.multitask.preprocess import to_model_grid

    crop, _ = to_model_grid(image, spacing, INFO["spacing"], INFO["body_threshold"])
    low = decimate_image(crop, INFO["c1_decimation"])
    stats = predictor.normalizer.stats(low)
    prob = sliding_window_inference(predictor._c1_probability, low, INFO["c1_patch"], overlap=0.5, batch_size=4,
                                    fill=predictor.normalizer.background(stats),
                                    transform=lambda a: predictor.normalizer(a, stats))
    return float(np.abs(upsample(prob, INFO["c1_decimation"], crop.shape, order=1) - 0.5).min())


def test_export_layout_log_and_metadata(served):
    run, export_dir, lines, _, out = served
    assert export_dir.name == "1" and (export_dir / "saved_model.pb").is_file()
    assert not export_dir.with_name("1.partial").exists()
    assert lines[-1].startswith("exported multitask (spacing [2.0, 2.0, 2.0] mm, C1 at 1/2, region [16, 24, 12]")
    assert "CRF off (= predict --nocrf)" in lines[-1]
    meta = json.loads((export_dir / "assets.extra" / "tfpanc_export.json").read_text())
    assert (meta["method"], meta["step"], meta["window_batch"], meta["signature"]) == (
        "multitask", [4, 4, 4], 16, "serving_default")
    assert meta["run"] == str(run.resolve()) and "predict --nocrf" in meta["crf"]
    assert out["pair_mask"].dtype == np.uint8 and out["pair_probability"].dtype == np.float32


def test_signature_equals_the_predictor_without_crf(served):
    run, _, _, inputs, out = served
    predictor = _predictor(run)
    for i, image in enumerate(inputs["pair"]):
        spacing = tuple(float(s) for s in inputs["pair_spacing"][i])  # the float32 values the graph sees
        assert _c1_margin(predictor, image, spacing) > 1e-3, "C1 is too close to 0.5 for a stable region"
        expected = predictor(image, probability=True, spacing=spacing)
        assert expected["region"] is not None and "CRF off" in expected["summary"]
        # The region reaches past the crop in y (24 voxels of a ~20-voxel crop): the padding is exercised.
        assert expected["region"][1, 0] < 0
        prob, mask = out["pair_probability"][i], out["pair_mask"][i]
        assert prob.shape == mask.shape == SHAPE
        assert 0 < expected["mask"].sum() < expected["mask"].size / 4
        np.testing.assert_allclose(prob, expected["probability"], rtol=0, atol=1e-4)
        differ = (mask > 0) != expected["mask"]
        differ &= np.abs(expected["probability"] - 0.5) >= 1e-4  # float noise may flip a voxel at 0.5
        assert not differ.any(), f"{differ.sum()} mask voxels differ away from the threshold"
        voxel_ml = np.prod(np.float64(spacing)) / 1000
        np.testing.assert_allclose(out["pair_volume_ml"][i], mask.sum() * voxel_ml, rtol=1e-5)


def test_empty_c1_is_an_empty_answer(served):
    run, _, _, inputs, out = served
    expected = _predictor(run)(inputs["empty"][0], probability=True, spacing=EMPTY_SPACING)
    assert expected["region"] is None and not expected["probability"].any()
    assert out["empty_probability"].shape == (1,) + EMPTY_SHAPE
    assert not out["empty_probability"].any() and not out["empty_mask"].any()
    assert out["empty_volume_ml"].tolist() == [0.0]


def test_run_with_a_missing_weights_file_is_refused_and_nothing_written(served, tmp_path):
    assert_refused_without_weights(served[0], INFO["c1_weights"], INFO["c2_weights"], tmp_path)


def test_graph_map_back_equals_grid_map():
    """The way back alone, eagerly: a box of the crop onto a finer and a coarser input grid, and an axis
    that was not resampled."""
    import tensorflow as tf

    from tfpanc.methods.multitask.graph import to_original
    from tfpanc.methods.multitask.preprocess import GridMap

    rng = np.random.default_rng(0)
    grid = GridMap((37, 29, 17), (25, 40, 17), np.array([[3, 21], [2, 38], [1, 17]]))
    part_box = np.array([[4, 12], [0, 36], [5, 16]])
    values = rng.random(tuple(np.diff(part_box, axis=1)[:, 0])).astype(np.float32)
    got = to_original(tf.constant(values), tf.constant(part_box + grid.crop[:, :1], tf.int32),
                      tf.constant(grid.resampled_shape), tf.constant(grid.source_shape)).numpy()
    np.testing.assert_array_equal(got, grid.to_original(values, box=part_box))
