r"""Segments the pancreas in CT/MRI files with a trained run.

Usage::

    python -m tfpanc.predict --model_dir=runs/quickstart --input=ct.nii.gz \
        --output=mask.nii.gz [--probabilities=prob.nii.gz] [--threshold=0.5]

``--input`` is a NIfTI / .mha / .nrrd file or a DICOM series folder; the mask
(uint8, 1 = pancreas) is written on the input's own grid, so it overlays the
input in 3D Slicer or ITK-SNAP. A folder of image files is processed file by
file into the ``--output`` folder (``<name>.nii.gz`` each). The pancreas
volume in mL is printed per input. Input that cannot be used gets a one-line
error and a non-zero exit, and no output file is written.

``--model_dir`` may also be a zhou pipeline directory (``pipeline.json``,
made by ``python -m tfpanc.train --flagfile=configs/zhou/pipeline.cfg``):
the three coarse views, their vote and the fixed-point iteration run on the
input, and the rounds taken and each round's d(t) are printed with the
volume. The zhou mask comes from the fused fine models (mean probability
>= 0.5, small components removed), so ``--threshold`` applies to cai runs
only; ``--probabilities`` writes the final round's mean probability of the
three views; ``--max_rounds`` and ``--stop_threshold`` override the
pipeline's T and R.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from tfpanc.data import io
from tfpanc.data.layouts import strip_suffix
from tfpanc.errors import InputError, run_cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model_dir", None, "A finished training run (holds run.json).")
    flags.DEFINE_string("input", None, "CT/MRI file, DICOM series folder, or folder of image files.")
    flags.DEFINE_string("output", None, "Mask file (.nii.gz, .nii, .mha, .nrrd), or a folder for a folder input.")
    flags.DEFINE_string("probabilities", None, "Optional probability map file (folder for a folder input).")
    flags.DEFINE_float("threshold", None, "Probability threshold; default: the run's (0.5).")
    flags.DEFINE_integer("max_rounds", None, "zhou: fixed-point rounds T; default: the pipeline's (10).")
    flags.DEFINE_float("stop_threshold", None, "zhou: stop when d(t) > R; default: the pipeline's (0.95).")


def _image_files(folder):
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and
                  p.name.lower().endswith((".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")))


def plan_jobs(input_path, output, probabilities):
    """[(input, mask path, probability path or None)] for a file or a folder input."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(input_path, "no such file or folder")
    files = _image_files(input_path) if input_path.is_dir() else []
    if not files:
        if not io.is_nifti(output) and not str(output).lower().endswith((".mha", ".nrrd")):
            raise InputError(output, "output must end in .nii.gz, .nii, .mha or .nrrd")
        return [(input_path, Path(output), None if probabilities is None else Path(probabilities))]
    jobs = []
    for f in files:
        name = strip_suffix(f.name) + ".nii.gz"
        jobs.append((f, Path(output) / name, None if probabilities is None else Path(probabilities) / name))
    return jobs


def load_input(image_path):
    volume = io.load_volume(image_path)
    if min(volume.array.shape) < 2:
        raise InputError(image_path, f"volume of shape {volume.array.shape} is too small to segment")
    return volume


def predict_file(predictor, image_path, volume, mask_path, prob_path, threshold, log=print):
    """Predicts one loaded input; writes the mask (and probabilities); returns mL."""
    start = time.time()
    prob = predictor(volume.array)["probability"]
    mask = (prob > threshold).astype(np.uint8)
    ml = float(mask.sum()) * float(np.prod(volume.spacing)) / 1000.0
    io.save_volume(mask, volume.geometry, mask_path)
    if prob_path is not None:
        io.save_volume(prob.astype(np.float32), volume.geometry, prob_path)
    log(f"{image_path}: pancreas {ml:.1f} mL -> {mask_path} ({time.time() - start:.1f} s)")
    return ml


def predict_zhou_file(predictor, image_path, volume, mask_path, prob_path=None, log=print):
    """Runs a zhou pipeline on one loaded input; writes the mask (and probabilities); returns mL."""
    from tfpanc.methods.zhou_evaluation import format_rounds

    start = time.time()
    out = predictor(volume.array, probability=prob_path is not None)
    mask = out["mask"].astype(np.uint8)
    ml = float(mask.sum()) * float(np.prod(volume.spacing)) / 1000.0
    io.save_volume(mask, volume.geometry, mask_path)
    if prob_path is not None:
        io.save_volume(out["probability"], volume.geometry, prob_path)
    log(f"{image_path}: pancreas {ml:.1f} mL, {format_rounds(out)} -> {mask_path} "
        f"({time.time() - start:.1f} s)")
    return ml


def _zhou_main(jobs):
    if FLAGS.threshold is not None:
        raise InputError("--threshold", "applies to cai runs; a zhou pipeline thresholds at 0.5 "
                         "inside the fixed-point fusion")
    if FLAGS.max_rounds is not None and FLAGS.max_rounds < 0:
        raise InputError("--max_rounds", f"must not be negative, got {FLAGS.max_rounds}")
    if FLAGS.stop_threshold is not None and not 0.0 < FLAGS.stop_threshold <= 1.0:
        raise InputError("--stop_threshold", f"must be in (0, 1], got {FLAGS.stop_threshold}")
    # The first input is read before Keras is imported and the six models are built.
    first = load_input(jobs[0][0])
    from tfpanc.methods import zhou
    from tfpanc.methods.zhou_evaluation import ZhouPredictor

    zhou.read_pipeline(FLAGS.model_dir)

    predictor = ZhouPredictor(FLAGS.model_dir, max_rounds=FLAGS.max_rounds,
                              stop_threshold=FLAGS.stop_threshold)
    for n, (image_path, mask_path, prob_path) in enumerate(jobs):
        volume = first if n == 0 else load_input(image_path)
        predict_zhou_file(predictor, image_path, volume, mask_path, prob_path)


def main(argv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("model_dir", "input", "output"):
        if not getattr(FLAGS, name):
            raise InputError(f"--{name}", "is required")
    threshold = FLAGS.threshold
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise InputError("--threshold", f"must be in (0, 1), got {threshold}")
    jobs = plan_jobs(FLAGS.input, FLAGS.output, FLAGS.probabilities)
    if (Path(FLAGS.model_dir) / "pipeline.json").exists():
        return _zhou_main(jobs)
    from tfpanc.training.run_dir import RunDir

    info = RunDir(FLAGS.model_dir).run_info()
    if info.get("method") == "zhou":
        raise InputError(FLAGS.model_dir, "is one zhou model; pass its pipeline directory "
                         "(the folder holding pipeline.json)")
    if info.get("method") != "cai":
        raise InputError(FLAGS.model_dir, f"unsupported method {info.get('method')!r} in run.json")
    # The first input is read before the model is built: a bad file fails fast.
    first = load_input(jobs[0][0])
    from tfpanc.methods.cai_evaluation import CaiPredictor

    predictor = CaiPredictor(FLAGS.model_dir)
    threshold = predictor.threshold if threshold is None else threshold
    for n, (image_path, mask_path, prob_path) in enumerate(jobs):
        volume = first if n == 0 else load_input(image_path)
        predict_file(predictor, image_path, volume, mask_path, prob_path, threshold)


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))
    sys.exit(0)
