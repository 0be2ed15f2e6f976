"""What every method's SavedModel shares: the serving contract, TF Serving's layout, the atomic write.

Serving contract (signature ``serving_default``, the same for every method):

* inputs: ``ct`` float32 ``[n, x, y, z]``, raw intensities (HU for CT)
  indexed like :func:`tfpanc.data.io.load_volume`'s array (nibabel's
  closest-canonical RAS+ order; an axial slice is ``volume[:, :, k]``), and
  ``spacing`` float32 ``[n, 3]``, each volume's voxel size in mm (x, y, z).
  Every graph predicts at the run's training spacing (multitask in its own
  graph, the others through :mod:`tfpanc.export.graph_spacing`) and uses
  the spacing for the volume.
* outputs: ``probability`` float32 ``[n, x, y, z]`` and ``mask`` uint8
  ``[n, x, y, z]`` on the input's grid, and ``volume_ml`` float32 ``[n]``,
  the mask's volume in mL.

Layout: TF Serving loads ``<base>/<name>/<version>/`` (a positive integer
folder per version). :func:`version_folder` picks the next free version or
checks a requested one; :func:`write_archive` writes the SavedModel to
``<version>.partial`` and renames it when complete, so TF Serving (which
polls the model folder) never sees half an export, and an interrupted
export is cleaned up by the next one. A method's ``export_run`` builds its
``keras.export.ExportArchive`` (Keras 3's export; ``tf.saved_model.save`` of a
Keras 3 model gets names and dtypes wrong, keras-team/keras#19458) and hands
it here.

Example:
>>> from pathlib import Path
>>> import tempfile
>>> base = Path(tempfile.mkdtemp())
>>> version_folder(base / "tfpanc_cai").name                 # a new model starts at 1
'1'
>>> (base / "tfpanc_cai" / "1").mkdir(parents=True)
>>> version_folder(base / "tfpanc_cai").name, version_folder(base / "tfpanc_cai", 7).name
('2', '7')
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tfpanc.errors import InputError
from tfpanc.output_paths import holds_only

SIGNATURE = "serving_default"
CT = "ct"
SPACING = "spacing"
OUTPUTS = ("probability", "mask", "volume_ml")
METADATA_FILE = "assets.extra/tfpanc_export.json"
SAVED_MODEL_ENTRIES = ("saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra")


def versions(model_folder):
    """The numbered version folders under a model folder, ascending (TF Serving's versions)."""
    folder = Path(model_folder)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0)


def version_folder(model_folder, version=None):
    """``<model_folder>/<version>``: the next free version by default; an existing one is refused.

    Args:
        model_folder: ``BASE/NAME``, the model's base path in TF Serving.
        version: a positive integer, or None for one more than the highest.

    Raises:
        InputError: a bad version, an existing version, a model folder that
            is a file, or one that looks like a version folder itself.
    """
    folder = Path(model_folder)
    if folder.name.isdigit() and version is None:
        # The export CLI used to take the version folder itself: refuse rather than nest a version in it.
        raise InputError("--export_dir", f"{folder} looks like a version folder; pass the model folder "
                         f"(--export_dir={folder.parent}) and --version={folder.name}")
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is not a folder")
    if version is None:
        return folder / str((versions(folder) or [0])[-1] + 1)
    if int(version) < 1:
        raise InputError("--version", f"must be a positive integer, got {version}")
    target = folder / str(int(version))
    if target.exists():
        raise InputError(target, "already exists; TF Serving versions are immutable, export a new version")
    return target


def check_target(export_dir):
    """Refuses an ``export_dir`` that holds anything, or a ``.partial`` folder that is not tfpanc's.

    TensorFlow-free, so a bad request fails in a second.

    Returns:
        the ``.partial`` path the export is written to.
    """
    export_dir = Path(export_dir)
    if export_dir.exists() and (not export_dir.is_dir() or any(export_dir.iterdir())):
        raise InputError(export_dir, "already exists; export to a new (version) folder")
    if export_dir.parent.exists() and not export_dir.parent.is_dir():
        raise InputError(export_dir.parent, "is not a folder")
    partial = Path(f"{export_dir}.partial")
    # Left by an interrupted export; a folder of that name holding anything else is the user's.
    if partial.exists() and (not partial.is_dir() or not holds_only(partial, SAVED_MODEL_ENTRIES)):
        raise InputError(partial, "exists and is not an interrupted tfpanc export; move it away first")
    return partial


# Why zhou's, two_stage's and multitask's graphs serve CT only: MRI's per-volume normalisation
# is in cai's graph alone (tfpanc.export.graph_intensity), the only paper with MRI rows.
CT_ONLY = "export serves CT runs only (MRI needs per-volume statistics the graph does not compute)"


def served_run(model_dir, method, weight_files, required=(), ct_only=CT_ONLY):
    """``run.json`` of a run ``method``'s export can serve, else a one-line InputError (TensorFlow-free).

    Args:
        model_dir: the run folder.
        method: the method its run.json must name.
        weight_files: ``info -> [weights file names]`` (relative to the run).
        required: run.json keys the graph needs.
        ct_only: the reason a non-CT run is refused; None serves MRI runs too.
    """
    from tfpanc.training.run_dir import RunDir

    run = RunDir(model_dir)
    if not run.path.is_dir():
        raise InputError(run.path, "no such run folder")
    info = run.run_info()
    if info.get("method") != method:
        raise InputError(run.path / "run.json", f"unsupported method {info.get('method')!r} "
                         f"(this export serves {method} runs)")
    if ct_only is not None and info.get("modality", "ct") != "ct":
        raise InputError(run.path / "run.json", f"modality {info.get('modality')!r}: {ct_only}")
    missing = [k for k in required if k not in info]
    if missing:
        raise InputError(run.path / "run.json", f"lacks {', '.join(missing)}; retrain the run with this tfpanc")
    for name in weight_files(info):
        if not name or not (run.path / str(name)).is_file():
            raise InputError(run.path / str(name), "weights file named in run.json is missing")
    return info


def require_tensorflow_backend():
    """Keras on the TensorFlow backend (a SavedModel is TensorFlow), else a one-line error."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise InputError(None, f"export needs KERAS_BACKEND=tensorflow, not {keras.backend.backend()}")
    return keras


def input_signature(in_plane=None):
    """``[ct, spacing]`` TensorSpecs; ``in_plane`` pins ``x = y`` (None: any size)."""
    import tensorflow as tf

    return [tf.TensorSpec([None, in_plane, in_plane, None], tf.float32, name=CT),
            tf.TensorSpec([None, 3], tf.float32, name=SPACING)]


def serving_outputs(probability, spacing, threshold):
    """The contract's outputs of a ``[n, x, y, z]`` probability (inside a tf.function).

    The mask is ``probability > threshold`` (or ``>=`` where a method's
    predictor uses ``>=``: pass ``threshold`` as ``("ge", t)``); ``volume_ml``
    is its voxel count times the voxel volume.
    """
    import tensorflow as tf

    op, value = threshold if isinstance(threshold, tuple) else ("gt", threshold)
    value = tf.constant(float(value), tf.float32)
    mask = probability >= value if op == "ge" else probability > value
    return outputs_from_mask(probability, mask, spacing)


def outputs_from_mask(probability, mask, spacing):
    """The contract's outputs of a probability and a mask made otherwise (inside a tf.function).

    For methods whose mask is not a threshold of the served probability
    (two_stage: a 2-of-3 vote); ``volume_ml`` is the mask's voxel count
    times the voxel volume.
    """
    import tensorflow as tf

    voxel_ml = tf.reduce_prod(tf.cast(spacing, tf.float32), axis=-1) / 1000.0
    count = tf.reduce_sum(tf.cast(tf.cast(mask, tf.bool), tf.float32), axis=[1, 2, 3])
    return {"probability": probability, "mask": tf.cast(mask, tf.uint8), "volume_ml": count * voxel_ml}


def check_spacing(spacing):
    """An assertion op: every spacing positive and finite (inside a tf.function)."""
    import tensorflow as tf

    spacing = tf.convert_to_tensor(spacing, tf.float32)
    return tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(spacing) & (spacing > 0)),
                               ["spacing must be [n, 3] positive mm, got", spacing])


def write_archive(serving_fn, export_dir, metadata, log=print, summary="", in_plane=None, training_spacing=None,
                  extra_outputs=None):
    """Writes ``serving_fn`` as the SavedModel's ``serving_default`` endpoint to ``export_dir`` atomically.

    Args:
        serving_fn: the method's ``(ct, spacing) -> outputs`` function (TensorFlow ops).
        training_spacing: the run's ``training_spacing``: each volume is served at it and answered
            on its own grid (:mod:`tfpanc.export.graph_spacing`); None (a method that resamples in
            its own graph, or a run from before the record) serves the voxels as given.
        extra_outputs: ``{name: dtype}`` of the method's ``[n]`` outputs beyond the contract's.
        export_dir: the version folder to create (checked by :func:`check_target`).
        metadata: JSON-able description, stored as ``assets.extra/tfpanc_export.json``
            (TF Serving ignores ``assets.extra``); the contract is added.
        log: progress printer.
        summary: the log line's description of what was exported.
        in_plane: pins the signature's ``x = y`` (:func:`input_signature`); None: any size.

    Returns:
        ``Path(export_dir)``.
    """
    import keras

    if training_spacing is not None:
        from tfpanc.export.graph_spacing import at_training_spacing

        serving_fn = at_training_spacing(serving_fn, training_spacing, extra_outputs)
        metadata = dict(metadata, training_spacing=[float(v) for v in training_spacing])
    archive = keras.export.ExportArchive()
    # No archive.track(): the endpoint captures every variable it uses, and Keras 3.15 saves a
    # tracked model's variables a second time (0.74 vs 0.46 MB for a K=2, F=16 cai BiRNN run,
    # same answers).
    archive.add_endpoint(SIGNATURE, serving_fn, input_signature=input_signature(in_plane))
    export_dir = Path(export_dir)
    partial = check_target(export_dir)
    if partial.exists():
        shutil.rmtree(partial)  # an interrupted export's (checked above)
    partial.parent.mkdir(parents=True, exist_ok=True)
    record = dict(metadata, signature=SIGNATURE,
                  inputs={CT: "float32 [n, x, y, z], raw intensities (HU for CT), as tfpanc.data.io.load_volume",
                          SPACING: "float32 [n, 3], voxel spacing in mm (x, y, z)"},
                  outputs={"probability": "float32 [n, x, y, z]", "mask": "uint8 [n, x, y, z]",
                           "volume_ml": "float32 [n]"})
    try:
        archive.write_out(str(partial), verbose=False)
        meta = partial / METADATA_FILE
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(partial, export_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    at = "" if training_spacing is None else \
        f"; served at the training spacing {' x '.join(f'{float(v):g}' for v in training_spacing)} mm"
    log(f"exported {summary} -> {export_dir} (signature {SIGNATURE!r}: {CT} float32 [n, x, y, z], "
        f"{SPACING} [n, 3] mm -> probability, mask, volume_ml{at})")
    return export_dir


def read_metadata(export_dir):
    """The ``tfpanc_export.json`` of an export (or ``{}`` for a SavedModel not made by tfpanc)."""
    path = Path(export_dir) / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
