r"""Segments the pancreas in CT/MRI files with a trained run.

Usage::

    python -m tfpanc.predict --model_dir=runs/quickstart --input=ct.nii.gz \
        --output=mask.nii.gz [--probabilities=prob.nii.gz] [--preview=preview.png]

``--input`` is a NIfTI / .mha / .nrrd file or a DICOM series folder; the mask
(uint8, 1 = pancreas) is written on the input's own grid, so it overlays the
input in 3D Slicer or ITK-SNAP. A folder of image files is processed file by
file into the ``--output`` folder (``<name>.nii.gz`` each). The pancreas
volume in mL is printed per input. Input that cannot be used gets a one-line
error and a non-zero exit, and no output file is written; outputs that
overlap the inputs or each other are refused before any work.

``--model_dir=A,B,C`` predicts with several runs of one method (the folds of
a cross-validation, or seeds): each predicts the input through its own
pipeline and a voxel is pancreas where more than half of them mark it
(:mod:`tfpanc.inference.ensemble`); ``--probabilities`` writes their mean.

The run's ``run.json`` names its method; the method's predictor (from
:mod:`tfpanc.methods.registry`) does the work, and the method's own flags
apply: cai ``--threshold``; zhou (a pipeline directory) ``--max_rounds`` and
``--stop_threshold``, with the rounds taken and each d(t) printed. A flag of
another method is refused in one line.

CT is predicted inside the body only (``--body_crop``, default on;
:mod:`tfpanc.inference.body_crop`): the box of the largest connected
component above -500 HU plus 20 mm, its start aligned to the network's
down-sampling, the rest written as background, which spares the networks
the air around the patient. Methods whose own preprocessing crops to the
body (multitask), or whose answer depends on the field of view (two_stage's
fixed coarse frame), are left alone; ``--nobody_crop`` predicts the whole
field of view. A DICOM folder holding two series of the
largest size needs ``--series_uid``; a series with a missing, repeated or
unequally spaced slice, and NaN or infinite voxels in any input, are refused.

With ``--server=HOST:PORT --model=NAME [--version=N|LABEL]`` (and no
``--model_dir``) TF Serving answers instead of a local run: each input
volume and its spacing go to the exported model (:mod:`tfpanc.export.client`;
gRPC by default, ``--protocol=rest`` for the REST API with
``--rest_format=instances|inputs``) and the answer is written the same way.
The threshold is the export's, so method flags are refused. A server error
(its ``{"error": ...}``, an HTTP 4xx/5xx or gRPC status, no server, no
answer within ``--timeout``) is one line and writes nothing for that input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from pathlib import Path

import numpy as np
from absl import flags

from tfpanc import cli
from tfpanc.data import io
from tfpanc.data.layouts import strip_suffix
from tfpanc.errors import InputError
from tfpanc.inference.body_crop import predict_in_body
from tfpanc.inference.ensemble import check_runs, majority_predictor
from tfpanc.inference.precision import PRECISIONS, compute_precision
from tfpanc.inference.preview import write_preview
from tfpanc.inference.progress import reporting
from tfpanc.inference.spacing import predict_at_spacing
from tfpanc.methods import registry
from tfpanc.output_paths import check_writable, refuse_overlap, refuse_same_outputs
from tfpanc.result_files import sweep_temporaries, written_together


def define_flags(fv):
    flags.DEFINE_list("model_dir", None, "A finished training run (holds run.json), or several runs of one "
                      "method, comma-separated, predicting as an ensemble (the voxels most of them mark).",
                      flag_values=fv)
    flags.DEFINE_string("input", None, "CT/MRI file, DICOM series folder, or folder of image files.",
                        flag_values=fv)
    flags.DEFINE_string("output", None, "Mask file (.nii.gz, .nii, .mha, .nrrd), or a folder for a folder "
                        "input.", flag_values=fv)
    flags.DEFINE_string("probabilities", None, "Optional probability map file (folder for a folder input).",
                        flag_values=fv)
    flags.DEFINE_string("preview", None, "Optional PNG: axial, coronal and sagittal slices through the "
                        "pancreas with the mask's outline and its volume (a folder for a folder input).",
                        flag_values=fv)
    flags.DEFINE_string("server", None, "TF Serving HOST:PORT to predict with instead of --model_dir "
                        "(gRPC 8500, REST 8501 by default).", flag_values=fv)
    flags.DEFINE_string("model", None, "The model name on --server.", flag_values=fv)
    flags.DEFINE_string("version", None, "The model version (a number or a label such as stable) on --server; "
                        "default: the server's latest.", flag_values=fv)
    flags.DEFINE_enum("protocol", "grpc", ["grpc", "rest"], "TF Serving API of --server.", flag_values=fv)
    flags.DEFINE_enum("rest_format", "instances", ["instances", "inputs"], "REST body: row (instances) or "
                      "columnar (inputs) format.", flag_values=fv)
    flags.DEFINE_float("timeout", 600.0, "Seconds to wait for each answer of --server.", flag_values=fv)
    flags.DEFINE_bool("body_crop", True, "CT: predict inside the body's box only (the largest component above "
                      "-500 HU plus 20 mm, start aligned to the network's down-sampling), background outside; "
                      "not two_stage (fixed coarse frame) nor multitask (crops itself); --nobody_crop predicts "
                      "the whole field of view.",
                      flag_values=fv)
    flags.DEFINE_bool("resample", True, "Resample each input to the run's training spacing (run.json's "
                      "training_spacing) and the result back; --noresample predicts at the input's spacing.",
                      flag_values=fv)
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Compute precision of the networks: bfloat16 is "
                      "mixed (bfloat16 compute, float32 weights and outputs), faster where the hardware has "
                      "bfloat16 units; README, 'Prediction speed', gives its DSC against float32.", flag_values=fv)
    flags.DEFINE_bool("progress", True, "Show slices or windows done and the time left while an input is "
                      "predicted (redrawn on a terminal, a line every 10 s otherwise).", flag_values=fv)
    flags.DEFINE_string("series_uid", None, "For a DICOM folder holding several series: the one to read.",
                        flag_values=fv)
    registry.define_method_flags("predict", fv)


def _image_files(folder):
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and
                  p.name.lower().endswith((".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")))


@dataclasses.dataclass(frozen=True)
class Job:
    """One input and the files predict writes for it (None: not asked for)."""

    source: Path
    mask: Path
    probabilities: Path = None
    preview: Path = None

    def outputs(self):
        return [(flag, path) for flag, path in (("--output", self.mask), ("--probabilities", self.probabilities),
                                                 ("--preview", self.preview)) if path is not None]


def _check_file_output(flag, path):
    if Path(path).is_dir():
        raise InputError(path, f"{flag} is a folder; name the file to write")
    if flag == "--preview":
        if not str(path).lower().endswith(".png"):
            raise InputError(path, "--preview must end in .png")
    elif not io.is_nifti(path) and not str(path).lower().endswith((".mha", ".nrrd")):
        raise InputError(path, f"{flag} must end in .nii.gz, .nii, .mha or .nrrd")


def plan_jobs(input_path, output, probabilities=None, preview=None):
    """The :class:`Job` of each input, for a file or a folder input.

    Outputs never overlap inputs or each other: an ``--output`` (or
    ``--probabilities``, ``--preview``) that is, contains or lies inside
    ``--input``, or two outputs naming one file (``--probabilities`` equal
    to ``--output``, or ``a.nii`` and ``a.nii.gz`` in one input folder), are
    refused before any model is loaded, and so is one that cannot be written.
    """
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(input_path, "no such file or folder")
    given = [(flag, path) for flag, path in (("--output", output), ("--probabilities", probabilities),
                                             ("--preview", preview)) if path is not None]
    for flag, path in given:
        refuse_overlap(path, flag, [input_path], "--input")
    files = _image_files(input_path) if input_path.is_dir() else []
    if not files:
        for flag, path in given:
            _check_file_output(flag, path)
        jobs = [Job(input_path, Path(output), probabilities and Path(probabilities), preview and Path(preview))]
    else:
        for flag, path in given:
            if Path(path).exists() and not Path(path).is_dir():
                raise InputError(path, f"{flag} must be a folder for a folder --input")
        jobs = []
        for f in files:
            name = strip_suffix(f.name)
            jobs.append(Job(f, Path(output) / f"{name}.nii.gz",
                            probabilities and Path(probabilities) / f"{name}.nii.gz",
                            preview and Path(preview) / f"{name}.png"))
    refuse_same_outputs([(f"{flag} for {job.source.name}", path) for job in jobs for flag, path in job.outputs()])
    for job in jobs:
        for flag, path in job.outputs():
            check_writable(path, flag)
    return jobs


def load_input(image_path, series_uid=None):
    volume = io.load_volume(image_path, series_uid=series_uid)
    if min(volume.array.shape) < 2:
        raise InputError(image_path, f"volume of shape {volume.array.shape} is too small to segment")
    return volume


def predict_file(predict, job, volume, log=print, progress=True, modality="ct"):
    """Predicts one loaded input with a method's predictor; writes the job's files; returns mL."""
    start = time.time()
    with reporting(job.source.name) if progress else contextlib.nullcontext():
        out = predict(volume.array, probability=job.probabilities is not None, spacing=tuple(volume.spacing))
    mask = np.asarray(out["mask"]).astype(np.uint8)
    # A served answer carries the model's own volume; a local predictor's is counted here.
    ml = out.get("volume_ml", float(mask.sum()) * float(np.prod(volume.spacing)) / 1000.0)
    with written_together():  # a mask without its probabilities would pass for a finished case
        io.save_volume(mask, volume.geometry, job.mask)
        if job.probabilities is not None:
            io.save_volume(np.asarray(out["probability"], np.float32), volume.geometry, job.probabilities)
        if job.preview is not None:
            job.preview.parent.mkdir(parents=True, exist_ok=True)
            write_preview(job.preview, volume.array, mask, tuple(volume.spacing), modality, job.source.name)
    summary = f", {out['summary']}" if out.get("summary") else ""
    log(f"{job.source}: pancreas {ml:.1f} mL{summary} -> {job.mask} ({time.time() - start:.1f} s)")
    return ml


def local_pipeline(predict, method, info, body_crop=True, resample=True, log=print):
    """The method's predictor with predict's own steps around it: training spacing, then body crop.

    The volume is resampled whole and the body cropped on the training grid,
    as multitask does in its own preprocessing: cropping first resamples the
    crop on a grid of its own, shifted by up to half a training voxel. The
    crop's start is aligned to the network's down-sampling there (the
    method's ``crop_multiple``): a crop off that grid changed the quick runs'
    masks by 5-10 % DSC (:mod:`tfpanc.inference.body_crop`). Methods that
    crop or resample in their own preprocessing (multitask), or whose answer
    a crop would change at any alignment (two_stage), are left alone for
    that step.
    """
    if body_crop and info.get("modality") == "ct" and not method.crops_body:
        multiple = method.call("crop_multiple", info) if method.has("crop_multiple") else 1
        if multiple is not None:
            predict = functools.partial(predict_in_body, predict, multiple=multiple)
    if resample and not method.resamples:
        target = info.get("training_spacing")
        if target is None:
            log("note: run.json records no training spacing (a run from before it did): predicting at each "
                "input's own spacing")
        else:
            inner = predict

            def predict(image, probability=False, spacing=None):
                return predict_at_spacing(inner, image, spacing or (1.0, 1.0, 1.0), target, probability, log)
    return predict


def load_runs(model_dirs, flag="--model_dir"):
    """``[(run_dir, method, info)]`` of one run or an ensemble's runs (one method, one modality)."""
    runs = [(run_dir, *registry.method_of_run(run_dir)) for run_dir in model_dirs]
    check_runs(runs, flag)
    return runs


def local_predictor(runs, options=None, body_crop=True, resample=True, log=print):
    """The predictor of :func:`load_runs`' runs, each inside :func:`local_pipeline`; several vote."""
    return majority_predictor(
        local_pipeline(method.call("predictor", run_dir, info, options), method, info, body_crop, resample, log)
        for run_dir, method, info in runs)


def warn_if_off_range(image, info, image_path, log=print):
    """A one-line warning when a CT run gets an input that cannot be HU (nothing below 0: an MR volume?)."""
    if info.get("modality") == "ct" and image.size and float(np.min(image)) >= 0:
        log(f"warning: {image_path}: values {float(np.min(image)):g} to {float(np.max(image)):g}, never below "
            "0; this run is a CT run (HU: air -1000, fat -100); is the input an MR image or shifted CT?")


def _serving_client(fv):
    """The TF Serving client of ``--server``, its flags checked (before TensorFlow loads)."""
    from tfpanc.export import client

    if fv.model_dir:
        raise InputError("--model_dir", "give --model_dir (a local run) or --server (TF Serving), not both")
    if not fv.model:
        raise InputError("--model", "is required with --server (the model name in the server's config)")
    for name in registry.owners("predict"):
        if fv[name].present:
            raise InputError(f"--{name}", "is fixed in the exported model; it does not apply with --server")
    if fv.timeout <= 0:
        raise InputError("--timeout", f"must be a positive number of seconds, got {fv.timeout:g}")
    client.parse_server(fv.server)
    client.parse_version(fv.version)
    return lambda: client.connect(fv.server, fv.model, fv.version, fv.protocol, fv.rest_format, fv.timeout)


def predict_all(predict, jobs, first, fv, info=None):
    """Predicts every :class:`Job`; ``first`` is the first input, loaded.

    On a failure part-way through a folder, says which inputs are finished
    (their outputs are complete: each is written as one unit) before the
    error propagates.
    """
    for folder in {path.parent for job in jobs for _, path in job.outputs()}:
        sweep_temporaries(folder)
    modality = (info or {}).get("modality", "ct")
    done = []
    try:
        for n, job in enumerate(jobs):
            volume = first if n == 0 else load_input(job.source, fv.series_uid)
            if info is not None:
                warn_if_off_range(volume.array, info, job.source)
            predict_file(predict, job, volume, progress=fv.progress, modality=modality)
            done.append(job.source.name)
    except BaseException:
        if len(jobs) > 1:  # a rerun may leave out what is finished
            print(f"{len(done)} of {len(jobs)} inputs finished before the failure"
                  f"{': ' + ', '.join(done) if done else ''}; their outputs are complete", flush=True)
        raise


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("input", "output") + (() if fv.server else ("model_dir",)):
        if not getattr(fv, name):
            raise InputError(f"--{name}", "is required")
    if fv.server and fv["precision"].present:
        raise InputError("--precision", "applies to a local run (--model_dir); the served model has its own")
    if not fv.server:
        for name in ("model", "version"):
            if fv[name].present:
                raise InputError(f"--{name}", "names a model on --server; a local run is --model_dir")
    connect = _serving_client(fv) if fv.server else None
    jobs = plan_jobs(fv.input, fv.output, fv.probabilities, fv.preview)
    if connect is None:
        runs = load_runs(fv.model_dir)
        _, method, info = runs[0]
        options = registry.options_from_flags(method, "predict", fv)
    # The first input is read before Keras is imported and the models are built: a bad file fails fast.
    first = load_input(jobs[0].source, fv.series_uid)
    if connect is not None:
        server = connect()
        try:
            predict_all(server.predictor(), jobs, first, fv)
        finally:
            server.close()
        return
    with compute_precision(fv.precision):  # the networks are built, and run, in it
        predict_all(local_predictor(runs, options, fv.body_crop, fv.resample), jobs, first, fv, info)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
