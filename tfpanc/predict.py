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

import time
from pathlib import Path

import numpy as np
from absl import flags

from tfpanc.data import io
from tfpanc.data.layouts import strip_suffix
from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.output_paths import refuse_overlap, refuse_same_outputs



def define_flags(fv):
    flags.DEFINE_string("model_dir", None, "A finished training run (holds run.json).", flag_values=fv)
    flags.DEFINE_string("input", None, "CT/MRI file, DICOM series folder, or folder of image files.", flag_values=fv)
    flags.DEFINE_string("output", None, "Mask file (.nii.gz, .nii, .mha, .nrrd), or a folder for a folder input.", flag_values=fv)
    flags.DEFINE_string("probabilities", None, "Optional probability map file (folder for a folder input).", flag_values=fv)
    flags.DEFINE_float("threshold", None, "Probability threshold; default: the run's (0.5).", flag_values=fv)
    flags.DEFINE_integer("max_rounds", None, "zhou: fixed-point rounds T; default: the pipeline's (10).", flag_values=fv)
    flags.DEFINE_float("stop_threshold", None, "zhou: stop when d(t) > R; default: the pipeline's (0.95).", flag_values=fv)


def _image_files(folder):
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and
                  p.name.lower().endswith((".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")))


def plan_jobs(input_path, output, probabilities):
    """[(input, mask path, probability path or None)] for a file or a folder input.

    Outputs never overlap inputs or each other: an ``--output`` (or
    ``--probabilities``) that is, contains or lies inside ``--input``, or two
    outputs naming one file (``--probabilities`` equal to ``--output``, or
    ``a.nii`` and ``a.nii.gz`` in one input folder), are refused before any
    model is loaded.
    """
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(input_path, "no such file or folder")
    for flag, path in (("--output", output), ("--probabilities", probabilities)):
        if path is not None:
            refuse_overlap(path, flag, [input_path], "--input")
    files = _image_files(input_path) if input_path.is_dir() else []
    if not files:
        for flag, path in (("--output", output), ("--probabilities", probabilities)):
            if path is None:
                continue
            if Path(path).is_dir():
                raise InputError(path, f"{flag} is a folder; name the file to write")
            if not io.is_nifti(path) and not str(path).lower().endswith((".mha", ".nrrd")):
                raise InputError(path, f"{flag} must end in .nii.gz, .nii, .mha or .nrrd")
        jobs = [(input_path, Path(output), None if probabilities is None else Path(probabilities))]
    else:
        for flag, path in (("--output", output), ("--probabilities", probabilities)):
            if path is not None and Path(path).exists() and not Path(path).is_dir():
                raise InputError(path, f"{flag} must be a folder for a folder --input")
        jobs = []
        for f in files:
            name = strip_suffix(f.name) + ".nii.gz"
            jobs.append((f, Path(output) / name, None if probabilities is None else Path(probabilities) / name))
    refuse_same_outputs([(f"--output for {src.name}", mask) for src, mask, _ in jobs] +
                        [(f"--probabilities for {src.name}", prob) for src, _, prob in jobs])
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


def _zhou_main(jobs, fv):
    if fv.threshold is not None:
        raise InputError("--threshold", "applies to cai runs; a zhou pipeline thresholds at 0.5 "
                         "inside the fixed-point fusion")
    if fv.max_rounds is not None and fv.max_rounds < 0:
        raise InputError("--max_rounds", f"must not be negative, got {fv.max_rounds}")
    if fv.stop_threshold is not None and not 0.0 < fv.stop_threshold <= 1.0:
        raise InputError("--stop_threshold", f"must be in (0, 1], got {fv.stop_threshold}")
    # The first input is read before Keras is imported and the six models are built.
    first = load_input(jobs[0][0])
    from tfpanc.methods import zhou
    from tfpanc.methods.zhou_evaluation import ZhouPredictor

    zhou.read_pipeline(fv.model_dir)

    predictor = ZhouPredictor(fv.model_dir, max_rounds=fv.max_rounds,
                              stop_threshold=fv.stop_threshold)
    for n, (image_path, mask_path, prob_path) in enumerate(jobs):
        volume = first if n == 0 else load_input(image_path)
        predict_zhou_file(predictor, image_path, volume, mask_path, prob_path)


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("model_dir", "input", "output"):
        if not getattr(fv, name):
            raise InputError(f"--{name}", "is required")
    threshold = fv.threshold
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise InputError("--threshold", f"must be in (0, 1), got {threshold}")
    jobs = plan_jobs(fv.input, fv.output, fv.probabilities)
    if (Path(fv.model_dir) / "pipeline.json").exists():
        return _zhou_main(jobs, fv)
    from tfpanc.training.run_dir import RunDir

    info = RunDir(fv.model_dir).run_info()
    if info.get("method") == "zhou":
        raise InputError(fv.model_dir, "is one zhou model; pass its pipeline directory "
                         "(the folder holding pipeline.json)")
    if info.get("method") != "cai":
        raise InputError(fv.model_dir, f"unsupported method {info.get('method')!r} in run.json")
    # The first input is read before the model is built: a bad file fails fast.
    first = load_input(jobs[0][0])
    from tfpanc.methods.cai_evaluation import CaiPredictor

    predictor = CaiPredictor(fv.model_dir)
    threshold = predictor.threshold if threshold is None else threshold
    for n, (image_path, mask_path, prob_path) in enumerate(jobs):
        volume = first if n == 0 else load_input(image_path)
        predict_file(predictor, image_path, volume, mask_path, prob_path, threshold)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
