"""SavedModel export of cai runs: same probabilities as CaiPredictor, TF Serving request shapes, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfpanc.errors import InputError
from tfpanc.export import feed_from_request, request_body
from tfpanc.methods.cai.random_run import write_random_run
from tfpanc.export.rest import arrays_from_response


def _ct(shape, seed):
    """HU volume: soft tissue noise with a brighter blob, values beyond the window on both sides."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    blob = ((x - shape[0] / 2) / 5) ** 2 + ((y - shape[1] / 2) / 4) ** 2 + ((z - shape[2] / 2) / 3) ** 2 <= 1
    return (np.where(blob, 120.0, 0.0) + rng.normal(0, 150, shape)).astype(np.float32)


def _serve(signature, volumes, spacing=(1.0, 1.0, 1.0)):
    """The signature on a ``[n, x, y, z]`` batch, every volume with ``spacing``."""
    volumes = np.asarray(volumes, np.float32)
    return signature(ct=volumes, spacing=np.tile(np.float32(spacing), (len(volumes), 1)))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tfpanc.export", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def birnn_export(tmp_path_factory):
    """A random 2-unit PNet-MSA + BiRNN run, exported, with its loaded signature."""
    import tensorflow as tf

    from tfpanc.export import export_run

    root = tmp_path_factory.mktemp("export")
    run = write_random_run(root / "run", "pnet_msa_birnn", num_units=2, filters=4)
    lines = []
    export_run(run, root / "serving" / "1", log=lines.append)  # the parent folders are created
    assert lines[-1].startswith("exported pnet_msa_birnn (with BiRNN)")
    signature = tf.saved_model.load(str(root / "serving" / "1")).signatures["serving_default"]
    return root, run, signature


_PREDICTORS = {}


def _predict(run, volume):
    from tfpanc.methods.cai.predictor import CaiPredictor

    if run not in _PREDICTORS:
        _PREDICTORS[run] = CaiPredictor(run)
    return _PREDICTORS[run](volume)["probability"]


def test_cli_output_is_complete_savedmodel(birnn_export):
    root, _, signature = birnn_export
    export = root / "serving" / "1"
    assert (export / "saved_model.pb").is_file() and (export / "variables").is_dir()
    assert not (root / "serving" / "1.partial").exists()
    meta = json.loads((export / "assets.extra" / "tfpanc_export.json").read_text())
    assert meta["birnn"] is True and meta["threshold"] == 0.5
    assert sorted(signature.structured_input_signature[1]) == ["ct", "spacing"]
    assert sorted(signature.structured_outputs) == ["mask", "probability", "volume_ml"]


def test_signature_equals_cai_predictor(birnn_export):
    _, run, signature = birnn_export
    # In-plane sizes that are not multiples of the network's 2: padding and cropping are exercised,
    # and the BiRNN runs at a size other than the 8 x 8 it was built for.
    volume = _ct((21, 19, 9), seed=1)
    expected = _predict(run, volume)
    assert expected.std() > 1e-3  # a flat map would make the comparison weak
    out = _serve(signature, volume[None])
    prob = out["probability"].numpy()
    assert prob.shape == (1,) + volume.shape
    np.testing.assert_allclose(prob[0], expected, atol=1e-4)
    mask = out["mask"].numpy()[0]
    assert mask.dtype == np.uint8
    clear = np.abs(expected - 0.5) > 1e-4  # voxels where float noise cannot flip the threshold
    np.testing.assert_array_equal(mask[clear], (expected[clear] > 0.5).astype(np.uint8))


def test_batch_of_volumes_keeps_them_apart(birnn_export):
    """Neighbour slices and the BiRNN sequence must not cross from one volume into the next."""
    _, run, signature = birnn_export
    volumes = np.stack([_ct((16, 16, 5), seed=2), _ct((16, 16, 5), seed=3)])
    prob = _serve(signature, volumes)["probability"].numpy()
    for i in range(2):
        np.testing.assert_allclose(prob[i], _predict(run, volumes[i]), atol=1e-4)


@pytest.mark.parametrize("fmt", ["instances", "inputs"])
def test_rest_request_is_accepted_by_signature(birnn_export, fmt):
    _, run, signature = birnn_export
    volume = _ct((12, 10, 4), seed=4)
    # The README's request: json.dumps of request_body, decoded as TF Serving decodes it.
    body = json.loads(json.dumps(request_body(volume, fmt, spacing=(0.8, 0.8, 2.0))))
    assert body["signature_name"] == "serving_default"
    feed = feed_from_request(body, signature.structured_input_signature[1])
    assert feed["ct"].shape == (1, 12, 10, 4) and feed["ct"].dtype == np.float32
    assert feed["spacing"].tolist() == [[np.float32(0.8), np.float32(0.8), 2.0]]
    out = signature(**feed)
    # What TF Serving answers in the row format: one object per instance.
    response = {"predictions": [{k: v.numpy()[i].tolist() for k, v in out.items()} for i in range(1)]}
    arrays = arrays_from_response(json.loads(json.dumps(response)))
    np.testing.assert_allclose(arrays["probability"][0], _predict(run, volume), atol=1e-4)
    assert arrays["mask"].shape == (1, 12, 10, 4)
    assert arrays["volume_ml"][0] == pytest.approx(arrays["mask"].sum() * 0.8 * 0.8 * 2.0 / 1000, rel=1e-5)


def test_cnn_only_run_matches(tmp_path):
    import tensorflow as tf

    from tfpanc.export import export_run

    run = write_random_run(tmp_path / "run", "unet", filters=2)
    export_run(run, tmp_path / "out", threshold=0.3, log=lambda _: None)
    signature = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    volume = _ct((20, 18, 3), seed=5)  # not multiples of the U-Net's 16
    out = _serve(signature, volume[None])
    expected = _predict(run, volume)
    np.testing.assert_allclose(out["probability"].numpy()[0], expected, atol=1e-4)
    clear = np.abs(expected - 0.3) > 1e-4
    np.testing.assert_array_equal(out["mask"].numpy()[0][clear], expected[clear] > 0.3)


def test_slice_size_pins_signature(tmp_path):
    import tensorflow as tf

    from tfpanc.export import export_run

    run = write_random_run(tmp_path / "run", "pnet_msa", num_units=1, filters=2)
    export_run(run, tmp_path / "out", slice_size=24, log=lambda _: None)
    signature = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    assert signature.structured_input_signature[1]["ct"].shape.as_list() == [None, 24, 24, None]
    with pytest.raises(InputError, match="slice_size"):
        export_run(run, tmp_path / "out2", slice_size=0)
    with pytest.raises(InputError, match="already exists"):
        export_run(run, tmp_path / "out")


def test_cli_bad_model_dir_and_mri_run_one_line_no_output(tmp_path):
    (tmp_path / "empty_run").mkdir()
    out = _cli(f"--model_dir={tmp_path / 'empty_run'}", f"--export_dir={tmp_path / 'out'}")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'empty_run'}: not a finished tfpanc run (no run.json); train it first")
    # two_stage's graph has no MRI normalisation (cai's alone has: the only paper with MRI rows)
    (tmp_path / "mri").mkdir()
    (tmp_path / "mri" / "run.json").write_text(json.dumps({"method": "two_stage", "modality": "mri"}))
    out = _cli(f"--model_dir={tmp_path / 'mri'}", f"--export_dir={tmp_path / 'out'}")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(
        f"error: {tmp_path / 'mri' / 'run.json'}: modality 'mri': export serves CT runs only")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_mri_run_is_served_with_its_per_volume_normalisation(tmp_path):
    """Raw MR intensities in; each volume normalised by its own statistics in the graph, as predict does."""
    import tensorflow as tf

    from tfpanc.export import export_run

    run = write_random_run(tmp_path / "mri", "pnet_msa_birnn", num_units=1, filters=4, modality="mri")
    export_run(run, tmp_path / "serving" / "1", log=lambda _: None)
    signature = tf.saved_model.load(str(tmp_path / "serving" / "1")).signatures["serving_default"]
    rng = np.random.default_rng(3)
    v = rng.gamma(3.0, 60.0, (32, 32, 8)).astype(np.float32)
    v[:8] = rng.normal(4.0, 1.5, (8, 32, 8))  # low-signal background
    volumes = [v, 7.5 * v]  # one image at two MR scales in one request: the answers must not depend on it
    out = _serve(signature, volumes)
    for i, volume in enumerate(volumes):
        np.testing.assert_allclose(out["probability"].numpy()[i], _predict(run, volume), atol=1e-4)
    np.testing.assert_allclose(out["probability"].numpy()[0], out["probability"].numpy()[1], atol=1e-4)


def test_missing_weights_refused(tmp_path):
    from tfpanc.export import export_run

    run = write_random_run(tmp_path / "ct", "pnet_msa", num_units=1, filters=2)
    (run / "pnet_final.weights.h5").unlink()
    with pytest.raises(InputError, match="weights file named in run.json is missing"):
        export_run(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_feed_from_request_refuses_what_tf_serving_refuses():
    with pytest.raises(ValueError, match="exactly one"):
        feed_from_request({"instances": [1.0], "inputs": [1.0]})
    with pytest.raises(ValueError):
        feed_from_request({"instances": [[[[1.0]]], [[[1.0, 2.0]]]]})  # ragged volumes
    with pytest.raises(ValueError, match="differ"):
        feed_from_request({"instances": [{"image": [[[1.0]]]}]})
    named = feed_from_request({"instances": [{"ct": [[[1.0]]]}, {"ct": [[[2.0]]]}]})
    assert named["ct"].shape == (2, 1, 1, 1) and named["ct"][1, 0, 0, 0] == 2.0
    assert feed_from_request({"inputs": {"ct": [[[[3.0]]]]}})["ct"].shape == (1, 1, 1, 1)


def test_volume_ml_is_mask_voxels_times_voxel_volume(birnn_export):
    import tensorflow as tf

    _, _, signature = birnn_export
    volumes = np.stack([_ct((16, 16, 5), seed=6), _ct((16, 16, 5), seed=7)])
    spacing = np.float32([[0.7, 0.8, 2.5], [1.0, 1.0, 1.0]])
    out = signature(ct=volumes, spacing=spacing)
    counts = out["mask"].numpy().reshape(2, -1).sum(1)
    assert counts.min() > 0  # a random network's mask is not empty at 0.5 here
    np.testing.assert_allclose(out["volume_ml"].numpy(), counts * spacing.prod(1) / 1000, rtol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="spacing must be"):
        signature(ct=volumes, spacing=np.float32([[0.7, 0.0, 2.5], [1.0, 1.0, 1.0]]))


def test_tf_serving_layout_next_free_version_and_refusals(tmp_path):
    import tensorflow as tf

    from tfpanc.export import export_model
    from tfpanc.export.savedmodel import read_metadata, version_folder

    run = write_random_run(tmp_path / "run", "pnet_msa", num_units=1, filters=2)
    base = tmp_path / "models" / "pancreas"
    (base / "3").mkdir(parents=True)  # an older version; a stray non-version folder is ignored
    (base / "notes").mkdir()
    written = export_model(run, base, log=lambda _: None)
    assert written == base / "4" and (written / "saved_model.pb").is_file()
    assert read_metadata(written)["method"] == "cai"
    sig = tf.saved_model.load(str(written)).signatures["serving_default"]
    assert _serve(sig, _ct((8, 8, 3), seed=8)[None])["mask"].shape == (1, 8, 8, 3)
    with pytest.raises(InputError, match="already exists; TF Serving versions are immutable"):
        export_model(run, base, version=4)
    with pytest.raises(InputError, match="looks like a version folder"):
        version_folder(base / "4")
    with pytest.raises(InputError, match="--version: must be a positive integer"):
        version_folder(base, 0)
    assert sorted(p.name for p in base.iterdir()) == ["3", "4", "notes"]  # nothing half-written
