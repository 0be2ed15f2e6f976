"""predict --precision=bfloat16 (mixed compute, float32 outputs) and the progress lines."""

import io

import keras
import nibabel as nib
import numpy as np

from tfpanc import cli, predict
from tfpanc.inference.precision import compute_precision, to_float32
from tfpanc.inference.progress import reporting
from tfpanc.inference.sliding_window import PatchGrid, sliding_window_inference


def test_compute_precision_builds_bfloat16_layers_and_restores_the_policy():
    with compute_precision("bfloat16"):
        layer = keras.layers.Conv2D(2, 3)
        y = layer(np.ones((1, 8, 8, 1), np.float32))
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert to_float32(y).dtype == np.float32
    assert keras.mixed_precision.global_policy().name == "float32"


def test_predict_in_bfloat16_writes_float32_probabilities_close_to_float32(tmp_path):
    from tfpanc.methods.cai.random_run import write_random_run

    run = write_random_run(tmp_path / "run", "pnet_msa_birnn", num_units=1, filters=4)
    ct = np.random.default_rng(0).integers(-1000, 400, (48, 48, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(ct, np.diag([1.5, 1.5, 2.5, 1])), str(tmp_path / "ct.nii.gz"))
    probs = {}
    for precision in ("float32", "bfloat16"):
        prob = tmp_path / f"p_{precision}.nii.gz"
        code = cli.invoke(predict.define_flags, predict.main,
                          [f"--model_dir={run}", f"--input={tmp_path / 'ct.nii.gz'}",
                           f"--output={tmp_path / f'm_{precision}.nii.gz'}", f"--probabilities={prob}",
                           f"--precision={precision}", "--nobody_crop"])
        assert code == 0
        img = nib.load(str(prob))
        assert img.get_data_dtype() == np.float32
        probs[precision] = np.asarray(img.dataobj)
    assert keras.mixed_precision.global_policy().name == "float32"
    diff = np.abs(probs["float32"] - probs["bfloat16"])
    # bfloat16 keeps 8 bits of mantissa: different, but close (random weights, so no DSC bar here).
    assert 0 < diff.max() < 0.25 and diff.mean() < 0.02, (diff.max(), diff.mean())


def test_progress_lines_of_a_sliding_window_run():
    out = io.StringIO()
    vol = np.random.default_rng(0).random((12, 12, 8)).astype("float32")
    with reporting("case.nii.gz", stream=out, every=0.0):
        sliding_window_inference(lambda b: b, vol, (4, 4, 4), batch_size=5)
    lines = out.getvalue().splitlines()
    assert len(lines) > 1 and all(x.startswith("case.nii.gz: windows ") for x in lines)
    n = len(PatchGrid(vol.shape, (4, 4, 4), (2, 2, 2)))
    assert lines[-1].startswith(f"case.nii.gz: windows {n}/{n} (100%)") and "about 0 s left" in lines[-1]
    # Not a terminal and slower than `every`: nothing printed for a short run.
    quiet = io.StringIO()
    with reporting("case.nii.gz", stream=quiet, every=60.0):
        sliding_window_inference(lambda b: b, vol, (4, 4, 4), batch_size=5)
    assert quiet.getvalue() == ""
