"""Served at the training spacing: the graph resamples each volume as predict does and answers on its grid."""

import json

import numpy as np
import pytest

from tfpanc.inference.spacing import predict_at_spacing
from tfpanc.methods.cai.random_run import write_random_run

TARGET = (1.6, 1.5, 2.0)


def _smooth_probability(volume):
    """A probability that follows the image and its neighbours, in numpy (the reference)."""
    from scipy import ndimage

    return 1.0 / (1.0 + np.exp(-(ndimage.uniform_filter(volume.astype(np.float64), 3, mode="nearest") - 40) / 30))


def _toy_serving_fn():
    """The same probability in TensorFlow (a 3x3x3 mean with edge padding), threshold 0.5, plus ``rounds``."""
    import tensorflow as tf

    def fn(ct, spacing):
        padded = tf.pad(ct, [[0, 0], [1, 1], [1, 1], [1, 1]], mode="SYMMETRIC")[..., None]
        mean = tf.nn.avg_pool3d(padded, 3, 1, "VALID")[..., 0]
        prob = 1.0 / (1.0 + tf.exp(-(mean - 40.0) / 30.0))
        return {"probability": prob, "mask": tf.cast(prob > 0.5, tf.uint8), "volume_ml": tf.zeros([1]),
                "rounds": tf.shape(ct)[1:2] * 0 + 7}

    return fn


def _numpy_predictor(image, probability=False, spacing=None):
    prob = _smooth_probability(image).astype(np.float32)
    return {"mask": prob > 0.5, "probability": prob}


def _blobs(shape, seed):
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    blob = ((x - shape[0] / 2) / 7) ** 2 + ((y - shape[1] / 2) / 6) ** 2 + ((z - shape[2] / 2) / 2.5) ** 2 <= 1
    return (np.where(blob, 120.0, -20.0) + rng.normal(0, 25, shape)).astype(np.float32)


def test_graph_resamples_each_volume_as_predict_at_spacing_does():
    import tensorflow as tf

    from tfpanc.export.graph_spacing import at_training_spacing

    fn = tf.function(at_training_spacing(_toy_serving_fn(), TARGET, {"rounds": "int32"}))
    volumes = np.stack([_blobs((33, 30, 11), seed=1), _blobs((33, 30, 11), seed=2)])
    # The first volume is finer than the training grid on x and y, coarser on z; the second is on
    # the grid to within 2 % (served as it is).
    spacings = np.float32([[0.8, 0.75, 2.5], [1.62, 1.49, 2.02]])
    out = fn(tf.constant(volumes), tf.constant(spacings))
    assert out["rounds"].numpy().tolist() == [7, 7]
    for i, volume in enumerate(volumes):
        expected = predict_at_spacing(_numpy_predictor, volume, tuple(float(s) for s in spacings[i]), TARGET,
                                      probability=True)
        assert 0 < expected["mask"].sum() < expected["mask"].size / 4
        np.testing.assert_allclose(out["probability"][i].numpy(), expected["probability"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(out["mask"][i].numpy(), expected["mask"].astype(np.uint8))
        voxel_ml = np.prod(np.float64(spacings[i])) / 1000
        np.testing.assert_allclose(out["volume_ml"][i].numpy(), expected["mask"].sum() * voxel_ml, rtol=1e-5)


@pytest.fixture(scope="module")
def cai_run_with_spacing(tmp_path_factory):
    """A random PNet-MSA run that records a training spacing, exported, with its loaded signature."""
    import tensorflow as tf

    from tfpanc.export import export_run

    root = tmp_path_factory.mktemp("spacing_export")
    run = write_random_run(root / "run", "pnet_msa", num_units=1, filters=4)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, training_spacing=list(TARGET))))
    lines = []
    export = export_run(run, root / "serving" / "1", log=lines.append)
    return run, export, lines, tf.saved_model.load(str(export)).signatures["serving_default"]


def test_cai_export_answers_as_predict_at_another_spacing(cai_run_with_spacing):
    from tfpanc.methods import registry
    from tfpanc.predict import local_pipeline

    run, export, lines, signature = cai_run_with_spacing
    assert lines[-1].endswith("served at the training spacing 1.6 x 1.5 x 2 mm)")
    meta = json.loads((export / "assets.extra" / "tfpanc_export.json").read_text())
    assert meta["training_spacing"] == list(TARGET)
    method, info = registry.method_of_run(run)
    predict = local_pipeline(method.call("predictor", run, info, None), method, info, body_crop=False,
                             log=lambda _: None)
    volume, spacing = _blobs((40, 36, 9), seed=3), (0.8, 0.75, 2.5)
    expected = predict(volume, probability=True, spacing=spacing)
    out = signature(ct=volume[None], spacing=np.float32([spacing]))
    prob = out["probability"].numpy()[0]
    assert prob.shape == volume.shape and expected["probability"].std() > 1e-3
    np.testing.assert_allclose(prob, expected["probability"], rtol=0, atol=1e-4)
    differ = out["mask"].numpy()[0] != expected["mask"]
    assert differ.sum() <= 0.001 * differ.size  # only where float noise flips a voxel at the threshold
    # Served as the voxels came, the answer is another one: the graph did resample.
    unresampled = method.call("predictor", run, info, None)(volume, probability=True, spacing=spacing)
    assert np.abs(unresampled["probability"] - prob).max() > 1e-2
