"""Dataset layouts on disk -> a list of (case id, image, label) entries.

Supported layouts:

* ``nih``: NIH Pancreas-CT as TCIA distributes it: one folder per patient
  ``PANCREAS_0001`` ... ``PANCREAS_0082`` holding a DICOM series (nested
  study/series folders are searched), and labels ``label0001.nii.gz`` ...
  anywhere below the input folder (TCIA ships them in a separate folder).
* ``msd``: Medical Segmentation Decathlon Task07: ``imagesTr/`` and
  ``labelsTr/`` with the same file names (nnU-Net's ``_0000`` channel suffix
  on images is accepted); macOS ``._*`` litter from the MSD tarball is ignored.
* ``folder``: ``images/`` and ``labels/`` with matching names (NIfTI, .mha or
  .nrrd); images without a label are kept as unlabelled cases.
* ``phantom``: tfpanc's synthetic dataset, written in the MSD layout.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from tfpanc.errors import InputError

DATASETS = ("nih", "msd", "folder", "phantom")
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


@dataclasses.dataclass(frozen=True)
class CaseEntry:
    """One case of a dataset on disk.

    Args:
        case_id: identifier used in the cache and in splits.
        image: image file or DICOM series folder.
        label: label file, or None for an unlabelled case.
    """

    case_id: str
    image: Path
    label: Path | None


def strip_suffix(name):
    """``case.nii.gz`` -> ``case``; also drops nnU-Net's ``_0000``."""
    lower = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"_0000$", "", name)


def _volume_files(folder):
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.name.lower().endswith(_IMAGE_SUFFIXES))


def _paired(image_dir, label_dir, require_labels):
    if not image_dir.is_dir():
        raise InputError(image_dir, "folder not found")
    labels = {strip_suffix(p.name): p for p in _volume_files(label_dir)} if label_dir.is_dir() else {}
    if require_labels and not label_dir.is_dir():
        raise InputError(label_dir, "folder not found")
    entries = []
    for image in _volume_files(image_dir):
        cid = strip_suffix(image.name)
        label = labels.pop(cid, None)
        if label is None and require_labels:
            raise InputError(image, f"no label for case '{cid}' in {label_dir}")
        entries.append(CaseEntry(cid, image, label))
    if labels:
        orphan = sorted(labels.values())[0]
        raise InputError(orphan, f"label has no image in {image_dir}")
    if not entries:
        raise InputError(image_dir, "folder holds no image files (.nii.gz, .nii, .mha, .nrrd)")
    return entries


def _dicom_folder(patient_dir):
    """The folder below ``patient_dir`` holding the most DICOM files."""
    best, best_count = None, 0
    for folder in [patient_dir, *(p for p in patient_dir.rglob("*") if p.is_dir())]:
        count = sum(1 for f in folder.iterdir() if f.is_file() and
                    (f.suffix.lower() == ".dcm" or "." not in f.name))
        if count > best_count:
            best, best_count = folder, count
    return best


def _nih(input_dir):
    patients = sorted(p for p in input_dir.rglob("PANCREAS_*") if p.is_dir()
                      and re.fullmatch(r"PANCREAS_\d{4}", p.name))
    if not patients:
        raise InputError(input_dir, "no PANCREAS_NNNN patient folders found (NIH Pancreas-CT layout)")
    labels = {re.search(r"(\d{4})", p.name).group(1): p
              for p in input_dir.rglob("label*.nii*") if re.fullmatch(r"label\d{4}\.nii(\.gz)?", p.name)}
    entries = []
    for patient in patients:
        number = patient.name.split("_")[1]
        series = _dicom_folder(patient)
        if series is None:
            raise InputError(patient, "patient folder holds no DICOM files")
        label = labels.get(number)
        if label is None:
            raise InputError(patient, f"no label{number}.nii.gz found below {input_dir}")
        entries.append(CaseEntry(patient.name, series, label))
    return entries


def list_cases(dataset, input_dir):
    """Lists the cases of a dataset folder.

    Args:
        dataset: one of ``nih``, ``msd``, ``folder``, ``phantom``.
        input_dir: the dataset's root folder.

    Returns:
        A list of :class:`CaseEntry`, sorted by case id.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(input_dir, "dataset folder not found")
    if dataset == "nih":
        entries = _nih(input_dir)
    elif dataset in ("msd", "phantom"):
        entries = _paired(input_dir / "imagesTr", input_dir / "labelsTr", require_labels=True)
    elif dataset == "folder":
        entries = _paired(input_dir / "images", input_dir / "labels", require_labels=False)
    else:
        raise InputError(None, f"unknown dataset '{dataset}' (choose from {', '.join(DATASETS)})")
    return sorted(entries, key=lambda e: e.case_id)


def dataset_modality(input_dir):
    """``"ct"`` or ``"mri"`` from an MSD-style ``dataset.json``; None if absent."""
    path = Path(input_dir) / "dataset.json"
    if not path.exists():
        return None
    try:
        with open(path) as f:
            modality = json.load(f).get("modality", {})
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot read dataset.json: {e}") from None
    first = str(next(iter(modality.values()), "")).lower() if isinstance(modality, dict) else str(modality).lower()
    if first.startswith("mr") or "t1" in first or "t2" in first:
        return "mri"
    return "ct" if first else None
