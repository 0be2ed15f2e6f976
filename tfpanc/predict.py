r"""Segments the pancreas in CT/MRI files with a trained run.

Usage::

    python -m tfpanc.predict --model_dir=runs/quickstart --input=ct.nii.gz \
        --output=mask.nii.gz [--probabilities=prob.nii.gz]

``--input`` is a NIfTI / .mha / .nrrd file or a DICOM series folder; the mask
(uint8, 1 = pancreas) is written on the input's own grid, so it overlays the
input in 3D Slicer or ITK-SNAP. A folder of image files is processed file by
file into the ``--output`` folder (``<name>.nii.gz`` each). The pancreas
volume in mL is printed per input. Input that cannot be used gets a one-line
error and a non-zero exit, and no output file is written; outputs that
overlap the inputs or each other are refused before any work.

The run's ``run.json`` names its method; the method's predictor (from
:mod:`tfpanc.methods.registry`) does the work, and the method's own flags
apply: cai ``--threshold``; zhou (a pipeline directory) ``--max_rounds`` and
``--stop_threshold``, with the rounds taken and each d(t) printed. A flag of
another method is refused in one line.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from absl import flags

from tfpanc import cli
from tfpanc.data import io
from tfpanc.data.layouts import strip_suffix
from tfpanc.errors import InputError
from tfpanc.methods import registry
from tfpanc.output_paths import refuse_overlap, refuse_same_outputs


def define_flags(fv):
    flags.DEFINE_string("model_dir", None, "A finished training run (holds run.json).", flag_values=fv)
    flags.DEFINE_string("input", None, "CT/MRI file, DICOM series folder, or folder of image files.",
                        flag_values=fv)
    flags.DEFINE_string("output", None, "Mask file (.nii.gz, .nii, .mha, .nrrd), or a folder for a folder "
                        "input.", flag_values=fv)
    flags.DEFINE_string("probabilities", None, "Optional probability map file (folder for a folder input).",
                        flag_values=fv)
    registry.define_method_flags("predict", fv)


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


def predict_file(predict, image_path, volume, mask_path, prob_path, log=print):
    """Predicts one loaded input with a method's predictor; writes the mask (and probabilities); returns mL."""
    start = time.time()
    out = predict(volume.array, probability=prob_path is not None, spacing=tuple(volume.spacing))
    mask = np.asarray(out["mask"]).astype(np.uint8)
    ml = float(mask.sum()) * float(np.prod(volume.spacing)) / 1000.0
    io.save_volume(mask, volume.geometry, mask_path)
    if prob_path is not None:
        io.save_volume(np.asarray(out["probability"], np.float32), volume.geometry, prob_path)
    summary = f", {out['summary']}" if out.get("summary") else ""
    log(f"{image_path}: pancreas {ml:.1f} mL{summary} -> {mask_path} ({time.time() - start:.1f} s)")
    return ml


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("model_dir", "input", "output"):
        if not getattr(fv, name):
            raise InputError(f"--{name}", "is required")
    jobs = plan_jobs(fv.input, fv.output, fv.probabilities)
    method, info = registry.method_of_run(fv.model_dir)
    options = registry.options_from_flags(method, "predict", fv)
    # The first input is read before Keras is imported and the models are built: a bad file fails fast.
    first = load_input(jobs[0][0])
    predict = method.call("predictor", fv.model_dir, info, options)
    for n, (image_path, mask_path, prob_path) in enumerate(jobs):
        volume = first if n == 0 else load_input(image_path)
        predict_file(predict, image_path, volume, mask_path, prob_path)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
