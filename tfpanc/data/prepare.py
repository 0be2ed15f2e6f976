r"""Converts a dataset folder into a tfpanc case cache, once.

Usage::

    python -m tfpanc.data.prepare --dataset=msd --input_dir=Task07_Pancreas \
        --output_dir=cache/msd

Each case is read (NIfTI / DICOM series / SimpleITK formats), checked
(label shape and geometry must match the image), reoriented to the
canonical RAS+ array order, and stored as memory-mappable ``.npy`` with its
metadata (see :mod:`tfpanc.data.cache`). Four cross-validation folds are
persisted in ``splits.json``: by case number for NIH (as the papers' public
code does), by a seeded shuffle otherwise.

The cache is assembled in ``<output_dir>.partial`` and renamed into place
only when every case succeeded, so a failed run leaves no half cache; a
re-run resumes from the cases already converted in the partial folder.

Nothing that tfpanc did not write is ever deleted or overwritten: an
``--output_dir`` that is, contains or lies inside ``--input_dir`` is
refused, and so is an existing ``--output_dir`` (or ``<output_dir>.partial``)
that holds anything but a tfpanc cache; ``--overwrite`` replaces only a
folder that holds nothing but a cache's own files.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from absl import flags

from tfpanc.data import cache as cache_lib
from tfpanc.data import io, layouts
from tfpanc import cli
from tfpanc.data.labels import label_mask
from tfpanc.errors import InputError
from tfpanc.output_paths import holds_only, refuse_overlap

# What a cache folder holds: the only entries --overwrite may delete with it.
CACHE_ENTRIES = (cache_lib.CACHE_FILE, cache_lib.SPLITS_FILE, "cases", cache_lib.DERIVED_DIR)


def define_flags(fv):
    flags.DEFINE_enum("dataset", None, list(layouts.DATASETS), "Layout of --input_dir.", flag_values=fv)
    flags.DEFINE_string("input_dir", None, "Dataset folder.", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Cache folder to create.", flag_values=fv)
    flags.DEFINE_enum("modality", "auto", ["auto", "ct", "mri"],
                      "auto: from dataset.json when present, else ct.", flag_values=fv)
    flags.DEFINE_list("label_values", ["1", "2"],
                      "Label values that count as pancreas (MSD: 1 pancreas, 2 tumour).", flag_values=fv)
    flags.DEFINE_integer("num_folds", 4, "Cross-validation folds.", flag_values=fv)
    flags.DEFINE_integer("split_seed", 0, "Seed of the shuffled folds (not used for NIH).", flag_values=fv)
    flags.DEFINE_float("geometry_tolerance_mm", 0.01,
                       "Largest allowed difference between image and label voxel-to-world matrices.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace an existing cache at --output_dir.", flag_values=fv)


def convert_case(entry, modality, label_values, tolerance_mm):
    """Reads and checks one case; returns (image Volume, label array or None)."""
    image = io.load_volume(entry.image)
    if modality == "ct" and image.array.dtype != np.int16:
        # Rescaled CT (float after NIfTI slope/intercept) is rounded to whole HU.
        image.array = np.clip(np.round(image.array), -32768, 32767).astype(np.int16)
    label = None
    if entry.label is not None:
        lab = io.load_volume(entry.label)
        if lab.array.shape != image.array.shape:
            raise InputError(entry.label, f"label shape {lab.array.shape} does not match "
                             f"image shape {image.array.shape} of {entry.image}")
        diff = float(np.abs(lab.geometry.affine - image.geometry.affine).max())
        if diff > tolerance_mm:
            raise InputError(entry.label, f"label geometry differs from image {entry.image} by "
                             f"{diff:.3g} mm (voxel-to-world matrices disagree)")
        label = label_mask(lab.array, entry.label, label_values).astype(np.uint8)
    return image, label


def staging_dir(output_dir):
    """``<output_dir>.partial``, the folder a cache is assembled in."""
    output_dir = Path(output_dir)
    if not output_dir.resolve().name:
        raise InputError(output_dir, "--output_dir must be a folder below the file system root")
    return output_dir.with_name(output_dir.resolve().name + ".partial")


def check_output(input_dir, output_dir, overwrite):
    """Refuses output folders that would destroy data (see the module docstring).

    Returns:
        the staging folder.

    Raises:
        InputError: naming the folder and what is wrong with it.
    """
    refuse_overlap(output_dir, "--output_dir", [input_dir], "--input_dir")
    staging = staging_dir(output_dir)
    refuse_overlap(staging, "--output_dir (its staging folder)", [input_dir], "--input_dir")
    if output_dir.exists():
        if not output_dir.is_dir():
            raise InputError(output_dir, "--output_dir exists and is not a folder")
        is_cache = (output_dir / cache_lib.CACHE_FILE).exists()
        if is_cache and not overwrite:
            raise InputError(output_dir, "a cache exists already (pass --overwrite to rebuild it)")
        if not holds_only(output_dir, CACHE_ENTRIES):
            raise InputError(output_dir, "holds files that are not part of a tfpanc cache; tfpanc "
                             "replaces only its own caches: choose a new or empty --output_dir")
    if staging.exists() and (not staging.is_dir() or not holds_only(staging, CACHE_ENTRIES)):
        raise InputError(staging, "exists and is not a tfpanc staging folder; move it away first")
    return staging


def prepare(dataset, input_dir, output_dir, modality="auto", label_values=(1, 2),
            num_folds=4, split_seed=0, tolerance_mm=0.01, overwrite=False, log=print):
    """Builds a cache; returns the :class:`tfpanc.data.cache.CaseCache`.

    Args:
        dataset: layout name (see :mod:`tfpanc.data.layouts`).
        input_dir: dataset folder.
        output_dir: cache folder to create.
        modality: ``"ct"``, ``"mri"`` or ``"auto"``.
        label_values: label values merged into the pancreas class.
        num_folds: number of cross-validation folds.
        split_seed: seed of the shuffled folds.
        tolerance_mm: allowed image/label geometry difference.
        overwrite: replace an existing cache.
        log: where progress lines go.
    """
    output_dir = Path(output_dir)
    staging = check_output(input_dir, output_dir, overwrite)
    entries = layouts.list_cases(dataset, input_dir)
    if modality == "auto":
        modality = layouts.dataset_modality(input_dir) or "ct"
    if len(entries) < num_folds:
        raise InputError(input_dir, f"{len(entries)} cases are too few for {num_folds} folds")
    staging.mkdir(parents=True, exist_ok=True)
    start = time.time()
    for n, entry in enumerate(entries, 1):
        meta_path = staging / "cases" / entry.case_id / "meta.json"
        if meta_path.exists() and json.loads(meta_path.read_text()).get("source_image") == str(entry.image):
            log(f"[{n}/{len(entries)}] {entry.case_id}: already converted")
            continue
        image, label = convert_case(entry, modality, list(label_values), tolerance_mm)
        meta = cache_lib.write_case(
            staging, entry.case_id, image.array, label, image.geometry, modality,
            extra={"source_image": str(entry.image),
                   "source_label": None if entry.label is None else str(entry.label)})
        volume = meta.get("pancreas_volume_ml")
        log(f"[{n}/{len(entries)}] {entry.case_id}: shape {tuple(meta['shape'])}, spacing "
            f"{tuple(round(s, 3) for s in meta['spacing'])} mm"
            + ("" if volume is None else f", pancreas {volume:.1f} mL"))
    ids = [e.case_id for e in entries]
    if dataset == "nih":
        folds, method = cache_lib.nih_folds(ids), "nih_case_number"
    else:
        folds, method = cache_lib.shuffled_folds(ids, num_folds, split_seed), f"shuffle_seed_{split_seed}"
    cache_lib.write_splits(staging, folds, method)
    cache_lib.write_index(staging, dataset, ids, modality, input_dir)
    check_output(input_dir, output_dir, overwrite)  # again: the folder may have changed meanwhile
    if output_dir.exists():
        if any(output_dir.iterdir()):
            shutil.rmtree(output_dir)
        else:
            output_dir.rmdir()
    staging.rename(output_dir)
    log(f"prepared {len(ids)} cases into {output_dir} in {time.time() - start:.1f} s "
        f"({method} folds of sizes {[len(f) for f in folds]})")
    return cache_lib.CaseCache(output_dir)


def _label_values(raw):
    try:
        values = [int(v) for v in raw]
    except ValueError:
        raise InputError("--label_values", f"expected integers, got {','.join(raw)}") from None
    if not values:
        raise InputError("--label_values", "give at least one label value")
    return values


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("dataset", "input_dir", "output_dir"):
        if not getattr(fv, name):
            raise InputError(f"--{name}", "is required")
    if fv.num_folds < 2:
        raise InputError("--num_folds", "must be at least 2")
    prepare(fv.dataset, fv.input_dir, fv.output_dir, fv.modality,
            _label_values(fv.label_values), fv.num_folds, fv.split_seed,
            fv.geometry_tolerance_mm, fv.overwrite)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
