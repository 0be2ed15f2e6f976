"""zhou's SavedModel: the whole fixed point in the graph equals ZhouPredictor, served from a fresh process.

The pipeline is six random FCN-8s (:mod:`tfpanc.methods.zhou.random_pipeline`)
whose logits are scaled and shifted so that the coarse views mark part of
the volume and the fine rounds move: one request of three volumes (the
shape no multiple of 32 on any axis) covers the three ways the iteration
ends: converged (d(t) > R before T), T reached, and an empty coarse vote
(rounds 0).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfpanc.errors import InputError

SHAPE = (45, 38, 21)
SPACING = (0.8, 0.7, 2.0)
# Export flags different from the pipeline record's (T=5, R=0.95): the options reach the graph.
MAX_ROUNDS, STOP = 4, 0.9
NEAR = 1e-4

# The fresh process: load, serve the request, write the answer and the timings.
SERVE = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
import tensorflow as tf
t1 = time.perf_counter()
sig = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
t2 = time.perf_counter()
req = np.load(sys.argv[2])
out = sig(ct=tf.constant(req["ct"]), spacing=tf.constant(req["spacing"]))
t3 = time.perf_counter()
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2,
                  "inputs": sorted(sig.structured_input_signature[1]),
                  "dtypes": {k: v.dtype.name for k, v in sig.structured_outputs.items()}}))
"""


def _ct(seed, centre, radii):
    """HU volume: a brighter ellipsoid in noisy soft tissue, values beyond the window on both sides."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    blob = sum(((g - c) / r) ** 2 for g, c, r in zip((x, y, z), centre, radii)) <= 1
    return (np.where(blob, 120.0, -60.0) + rng.normal(0, 40, SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from tfpanc.methods.zhou.random_pipeline import write_random_pipeline

    root = tmp_path_factory.mktemp("zhou_serving")
    pipe = write_random_pipeline(root / "pipe", crop_margin=4, gain=8.0, coarse_bias=-0.5, fine_bias=0.5,
                                 max_rounds=5, stop_threshold=0.95, seed=4)
    return root, pipe


def test_export_equals_predictor_in_a_fresh_process(pipeline):
    from tfpanc.export import export_model
    from tfpanc.export.savedmodel import read_metadata
    from tfpanc.methods.zhou.predictor import ZhouPredictor

    root, pipe = pipeline
    lines = []
    export = export_model(pipe, root / "serving" / "tfpanc_zhou", max_rounds=MAX_ROUNDS, stop_threshold=STOP,
                          log=lines.append)
    assert export.name == "1" and "zhou pipeline" in lines[-1]
    meta = read_metadata(export)
    assert (meta["method"], meta["max_rounds"], meta["stop_threshold"]) == ("zhou", MAX_ROUNDS, STOP)
    volumes = np.stack([_ct(0, (22, 18, 10), (9, 7, 5)), _ct(4, (20, 20, 10), (5, 5, 5)),
                        np.full(SHAPE, -1000.0, np.float32)])
    np.savez(root / "request.npz", ct=volumes, spacing=np.tile(np.float32(SPACING), (len(volumes), 1)))
    # The fresh process serves while this one runs the predictor (two cores, half the wall time).
    served = subprocess.Popen([sys.executable, "-c", SERVE, str(export), str(root / "request.npz"),
                               str(root / "answer.npz")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    predictor = ZhouPredictor(pipe, max_rounds=MAX_ROUNDS, stop_threshold=STOP)
    expected = [predictor(v, probability=True) for v in volumes]
    stdout, stderr = served.communicate(timeout=600)
    assert served.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    print(f"\nzhou SavedModel {SHAPE}x3: {json.dumps(report)}")
    assert report["inputs"] == ["ct", "spacing"]
    assert report["dtypes"] == {"probability": "float32", "mask": "uint8", "volume_ml": "float32", "rounds": "int32"}
    answer = np.load(root / "answer.npz")
    assert answer["probability"].shape == answer["mask"].shape == (3,) + SHAPE

    # The three ends of the iteration, as the predictor saw them.
    assert [e["stop_reason"] for e in expected] == ["converged", "max_rounds", "empty"]
    assert expected[0]["rounds"] < MAX_ROUNDS and expected[2]["rounds"] == 0
    assert answer["rounds"].tolist() == [e["rounds"] for e in expected]
    voxel_ml = np.prod(np.float64(SPACING)) / 1000.0
    for i, e in enumerate(expected):
        prob, mask = answer["probability"][i], answer["mask"][i].astype(bool)
        np.testing.assert_allclose(prob, e["probability"], rtol=0, atol=1e-4, err_msg=f"volume {i}")
        # The mask is a vote / a filtered fusion, not prob >= 0.5: it may differ only where a
        # fused probability sits within 1e-4 of the threshold.
        near = np.abs(e["probability"] - 0.5) < NEAR
        assert not ((mask != e["mask"]) & ~near).any(), f"volume {i}"
        assert answer["volume_ml"][i] == pytest.approx(mask.sum() * voxel_ml, rel=1e-5)
    assert 0 < expected[0]["mask"].mean() < 0.5  # component filtering applies (not the half-volume rule)
    assert not answer["mask"][2].any() and not expected[2]["mask"].any()


def test_refusals_write_nothing(pipeline, tmp_path):
    import shutil

    from tfpanc.export import export_model
    from tfpanc.methods import registry

    root, pipe = pipeline
    method = registry.get("zhou")
    assert method.has("export") and {"max_rounds", "stop_threshold"} <= set(method.export_options.__dataclass_fields__)
    with pytest.raises(InputError) as bad:
        export_model(pipe, tmp_path / "serving" / "z", stop_threshold=1.5)
    assert "\n" not in str(bad.value) and "--stop_threshold" in str(bad.value)
    mri = tmp_path / "mri"
    shutil.copytree(pipe, mri)
    record = json.loads((mri / "run.json").read_text())
    (mri / "run.json").write_text(json.dumps(dict(record, modality="mri")))
    with pytest.raises(InputError, match="CT pipelines only"):
        export_model(mri, tmp_path / "serving" / "z")
    with pytest.raises(InputError, match="pipeline directory"):
        export_model(mri / "fine_axial", tmp_path / "serving" / "z")
    assert not (tmp_path / "serving").exists()


@pytest.mark.large
@pytest.mark.parametrize("changes", [{"fusion": "vote", "box": "volume", "on_empty": "whole"},
                                     {"keep_components": None}])
def test_other_settings_match_predictor(pipeline, tmp_path, changes):
    """The pipeline-record settings the default export does not use: the traced graph equals the predictor
    (an empty coarse vote with on_empty="whole" runs rounds on whole slices)."""
    import shutil

    import tensorflow as tf

    from tfpanc.methods.zhou import serving
    from tfpanc.methods.zhou.predictor import ZhouPredictor

    _, pipe = pipeline
    copy = tmp_path / "pipe"
    shutil.copytree(pipe, copy)
    record = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps(dict(record, max_rounds=3, stop_threshold=STOP, **changes)))
    p = ZhouPredictor(copy)
    fn = tf.function(serving.serving_fn(p.coarse, p.fine, p.fine_sizes, p.info, p.max_rounds, p.stop_threshold,
                                        p.settings), autograph=False)
    volumes = [_ct(1, (22, 18, 10), (9, 7, 5)), np.full(SHAPE, -1000.0, np.float32)]
    for i, volume in enumerate(volumes):
        expected = p(volume, probability=True)
        out = fn(tf.constant(volume[None]), tf.ones((1, 3)))
        assert int(out["rounds"][0]) == expected["rounds"], (changes, i)
        np.testing.assert_allclose(out["probability"].numpy()[0], expected["probability"], rtol=0, atol=1e-4)
        near = np.abs(expected["probability"] - 0.5) < NEAR
        assert not ((out["mask"].numpy()[0].astype(bool) != expected["mask"]) & ~near).any(), (changes, i)
        if changes.get("on_empty") == "whole" and i == 1:
            assert expected["rounds"] > 0  # the fine models saw whole slices
