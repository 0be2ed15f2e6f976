"""The scratch tree the CLI safety and bad-input tables run on, and its snapshot."""

import hashlib
import os

import nibabel as nib
import numpy as np


def write_msd(root, blob_case, n=4):
    image, label = blob_case
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([0.7, 0.7, 2.0, 1.0])
    for i in range(n):
        nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / f"pancreas_{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / f"pancreas_{i:03d}.nii.gz"))


def make_tree(tmp_path, blob_case):
    """tmp/work/{msd/, notes.txt, cts/{a.nii.gz, b.nii.gz}, foreign/keep.txt, run/}"""
    work = tmp_path / "work"
    write_msd(work / "msd", blob_case)
    (work / "notes.txt").write_text("a user's unrelated file")
    (work / "cts").mkdir()
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(blob_case[0], np.eye(4)), str(work / "cts" / f"{name}.nii.gz"))
    (work / "foreign").mkdir()
    (work / "foreign" / "keep.txt").write_text("not a cache")
    (work / "run").mkdir()
    return work


def snapshot(root):
    """``{path: sha256 or "dir"}`` of everything under ``root``."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.join(folder, d)] = "dir"
        for f in files:
            path = os.path.join(folder, f)
            with open(path, "rb") as fh:
                out[path] = hashlib.sha256(fh.read()).hexdigest()
    return out
