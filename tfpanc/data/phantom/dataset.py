"""Writing phantom cases as an MSD-style dataset folder.

``output_dir/imagesTr/phantom_000.nii.gz``, ``output_dir/labelsTr/phantom_000.nii.gz``
(the same name in both; pancreas = 1) and ``output_dir/dataset.json`` in the
Medical Segmentation Decathlon's format, plus tfpanc's own keys (seed, shape,
spacing, field of view, generator version) so that a folder says how it was
made. Files are written atomically by :func:`tfpanc.data.io.save_volume`, and
``dataset.json`` last, so an interrupted run never leaves a folder that looks
complete.
"""

from __future__ import annotations

from pathlib import Path

from tfpanc.data.io import save_volume
from tfpanc.result_files import write_json
from tfpanc.data.phantom.case import DEFAULT_SHAPE, FOV_HI, FOV_LO, make_case

VERSION = 1
MODALITY_NAMES = {"ct": "CT", "mri": "MRI"}


def case_name(index):
    return f"phantom_{index:03d}"


def write_case(case, output_dir, name):
    """Writes one :class:`~tfpanc.data.phantom.case.PhantomCase`; returns its dataset.json entry."""
    output_dir = Path(output_dir)
    geometry = case.geometry()
    save_volume(case.image, geometry, output_dir / "imagesTr" / f"{name}.nii.gz")
    save_volume(case.label, geometry, output_dir / "labelsTr" / f"{name}.nii.gz")
    return {"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"}


def write_dataset(output_dir, num_cases, shape=None, seed=0, modality="ct", log=None):
    """Generates ``num_cases`` phantom cases into ``output_dir`` (MSD layout).

    Args:
        output_dir: folder to create or fill (existing case files are replaced).
        num_cases: how many cases (case ``i`` is the same whatever the count).
        shape: voxels ``(x, y, z)``; default 512x512x240 for CT, 256x256x40 for MRI.
        seed: dataset seed.
        modality: ``"ct"`` or ``"mri"``.
        log: optional ``print``-like callable for progress lines.

    Returns:
        The path of the written ``dataset.json``.

    Example:
    >>> write_dataset("/tmp/phantom", 2, (96, 96, 48), seed=0)  # doctest: +SKIP
    PosixPath('/tmp/phantom/dataset.json')
    """
    shape = tuple(int(s) for s in (shape or DEFAULT_SHAPE[modality]))
    output_dir = Path(output_dir)
    training, spacing = [], None
    for i in range(int(num_cases)):
        case = make_case(shape, seed=seed, case_index=i, modality=modality)
        training.append(write_case(case, output_dir, case_name(i)))
        spacing = case.spacing
        if log:
            log(f"{case_name(i)}: pancreas {int(case.label.sum())} voxels")
    meta = {
        "name": "tfpanc-phantom",
        "description": "Synthetic contrast-enhanced abdominal CT (or T1 MRI) with pancreas labels, made by "
                       "tfpanc.data.phantom",
        "tensorImageSize": "3D",
        "modality": {"0": MODALITY_NAMES[modality]},
        "labels": {"0": "background", "1": "pancreas"},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
        "tfpanc": {"generator": "tfpanc.data.phantom", "version": VERSION, "seed": int(seed),
                   "shape": list(shape), "spacing": list(spacing), "modality": modality,
                   "field_of_view_mm": [hi - lo for lo, hi in zip(FOV_LO, FOV_HI)]},
    }
    path = output_dir / "dataset.json"
    write_json(path, meta, indent=2)
    return path
