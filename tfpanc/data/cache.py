"""The prepared-case cache every sampler reads from.

Each case is converted once (by ``python -m tfpanc.data.prepare``) into::

    ROOT/cache.json                  dataset name, modality, case ids
    ROOT/splits.json                 the persisted 4-fold cross-validation
    ROOT/cases/<id>/image.npy        int16 HU (CT) or float32 (MRI), [x, y, z] RAS+,
                                     Fortran order (axial slices contiguous)
    ROOT/cases/<id>/label.npy        uint8 0/1 pancreas (absent for unlabelled cases)
    ROOT/cases/<id>/meta.json        spacing, geometry, shape, pancreas box, volume,
                                     per-view lists of slices holding pancreas

Arrays are plain ``.npy`` so that :class:`CaseCache` can memory-map them: a
sampler that cuts one slice reads only that slice's pages, and memory stays
flat whatever the number of cases. The per-view slice lists let samplers pick
pancreas slices without reading whole labels.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from tfpanc.data.io import Geometry
from tfpanc.data.patches import VIEWS
from tfpanc.errors import InputError
from tfpanc.result_files import read_json, write_json, write_with

CACHE_FILE = "cache.json"
SPLITS_FILE = "splits.json"
# Caches derived from this one (resampled, decimated) by a method, made on first use: inside the
# cache so that prepare --overwrite, which replaces the whole folder, drops them with the data they
# came from.
DERIVED_DIR = "derived"
# np.load parses the .npy header with ast.literal_eval, which CPython 3.11 can
# break when several threads parse at once ("AST constructor recursion depth
# mismatch"), as tf.data's parallel map does: serialise the (cheap) opening.
_OPEN_LOCK = threading.Lock()


def open_npy(path):
    """Memory-maps a cached array, read-only, safely from any thread."""
    with _OPEN_LOCK:
        return np.load(path, mmap_mode="r")


def atomic_save_npy(path, array):
    # Fortran order puts each axial slice [:, :, k] in contiguous pages, so an
    # axial sample maps one slice instead of touching the whole file (axial is
    # the view most methods train on; sagittal reads become the scattered ones).
    write_with(path, lambda tmp: np.save(tmp, np.asfortranarray(array)), ".npy")


def label_summary(label, spacing):
    """Pancreas box, volume and per-view slice lists of a 0/1 label.

    Args:
        label: ``[x, y, z]`` array, nonzero = pancreas.
        spacing: voxel size in mm.

    Returns:
        dict with ``pancreas_box`` (half-open, or None when empty),
        ``pancreas_volume_ml``, ``pancreas_slices`` and ``pancreas_pixels``
        (per view: indices of slices holding pancreas and their pixel counts).
    """
    mask = np.asarray(label) > 0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = {"pancreas_volume_ml": float(mask.sum()) * voxel_ml,
           "pancreas_slices": {}, "pancreas_pixels": {}, "pancreas_box": None}
    box = []
    for axis, view in enumerate(VIEWS):
        other = tuple(a for a in range(3) if a != axis)
        counts = mask.sum(axis=other)
        idx = np.flatnonzero(counts)
        out["pancreas_slices"][view] = idx.tolist()
        out["pancreas_pixels"][view] = counts[idx].astype(int).tolist()
        if idx.size:
            box.append([int(idx[0]), int(idx[-1]) + 1])
    if len(box) == 3:
        out["pancreas_box"] = box
    return out


def write_case(root, case_id, image, label, geometry, modality="ct", extra=None):
    """Writes one case into a cache folder (creating it) and returns its meta.

    Args:
        root: the cache folder.
        case_id: a file-name-safe identifier.
        image: ``[x, y, z]`` image, int16 HU for CT or float for MRI.
        label: matching uint8 mask, or None.
        geometry: the :class:`tfpanc.data.io.Geometry` of ``image``.
        modality: ``"ct"`` or ``"mri"``.
        extra: more metadata to store (source file names, say).

    Example:
    >>> import numpy as np, tempfile
    >>> from tfpanc.data.io import Geometry
    >>> img = np.zeros((8, 8, 4), np.int16); lab = np.zeros_like(img, np.uint8); lab[2:4, 2:4, 1] = 1
    >>> tmp = tempfile.TemporaryDirectory()
    >>> meta = write_case(tmp.name, "c0", img, lab, Geometry.from_spacing(img.shape, (1, 1, 2)))
    >>> meta["pancreas_box"], meta["pancreas_volume_ml"]
    ([[2, 4], [2, 4], [1, 2]], 0.008)
    >>> tmp.cleanup()
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"case {case_id}: image must be 3D, got shape {image.shape}")
    if tuple(image.shape) != tuple(geometry.shape):
        raise ValueError(f"case {case_id}: image shape {image.shape} != geometry {geometry.shape}")
    if modality == "ct" and image.dtype != np.int16:
        image = np.clip(np.round(image), -32768, 32767).astype(np.int16)
    elif modality != "ct":
        image = image.astype(np.float32)
    folder = Path(root) / "cases" / case_id
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"case_id": case_id, "modality": modality, "shape": list(image.shape),
            "spacing": list(geometry.spacing), "geometry": geometry.to_json(),
            "has_label": label is not None}
    if label is not None:
        label = (np.asarray(label) > 0).astype(np.uint8)
        if label.shape != image.shape:
            raise ValueError(f"case {case_id}: label shape {label.shape} != image shape {image.shape}")
        atomic_save_npy(folder / "label.npy", label)
        meta.update(label_summary(label, geometry.spacing))
    atomic_save_npy(folder / "image.npy", image)
    meta.update(extra or {})
    # meta.json last: a case counts as present only once it is complete.
    write_json(folder / "meta.json", meta)
    return meta


def nih_folds(case_ids):
    """NIH Pancreas-CT folds by case number, as in the papers' public code.

    Cases 1-20, 21-40, 41-61 and 62-82 (the number is the last run of digits
    in the id).
    """
    bounds = [(1, 20), (21, 40), (41, 61), (62, 82)]
    folds = [[] for _ in bounds]
    for cid in case_ids:
        digits = "".join(c if c.isdigit() else " " for c in cid).split()
        if not digits:
            raise ValueError(f"NIH case id {cid!r} holds no case number")
        n = int(digits[-1])
        for f, (lo, hi) in enumerate(bounds):
            if lo <= n <= hi:
                folds[f].append(cid)
                break
        else:
            raise ValueError(f"NIH case number {n} of {cid!r} is outside 1-82")
    return folds


def shuffled_folds(case_ids, num_folds=4, seed=0):
    """Folds of a seeded shuffle, sizes differing by at most one."""
    ids = sorted(case_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    return [sorted(ids[i] for i in order[f::num_folds]) for f in range(num_folds)]


def write_splits(root, folds, method):
    """Persists folds as ``splits.json``: one {"train", "val"} entry per fold."""
    splits = {"method": method, "folds": [
        {"train": sorted(c for g, fold in enumerate(folds) if g != f for c in fold),
         "val": sorted(folds[f])} for f in range(len(folds))]}
    write_json(Path(root) / SPLITS_FILE, splits)
    return splits


class CachedCase:
    """One cached case: memory-mapped arrays and metadata.

    Args:
        folder: the case folder inside a cache.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.meta = read_json(self.folder / "meta.json", "re-run prepare (--overwrite) to rebuild the cache")
        self.case_id = self.meta["case_id"]
        self._image = None
        self._label = None

    @property
    def image(self):
        if self._image is None:
            self._image = open_npy(self.folder / "image.npy")
        return self._image

    @property
    def label(self):
        if not self.meta.get("has_label"):
            return None
        if self._label is None:
            self._label = open_npy(self.folder / "label.npy")
        return self._label

    @property
    def spacing(self):
        return tuple(self.meta["spacing"])

    @property
    def geometry(self):
        return Geometry.from_json(self.meta["geometry"])


class CaseCache:
    """Read access to a prepared cache folder.

    Args:
        root: the folder written by ``python -m tfpanc.data.prepare``.

    Example:
    >>> cache = CaseCache("cache/phantom")              # doctest: +SKIP
    >>> train_ids, val_ids = cache.split(0)             # doctest: +SKIP
    >>> slice_ = cache.case(train_ids[0]).image[:, :, 40]  # doctest: +SKIP
    """

    def __init__(self, root):
        self.root = Path(root)
        index = self.root / CACHE_FILE
        if not index.exists():
            raise InputError(self.root, "not a tfpanc cache (no cache.json); run python -m tfpanc.data.prepare")
        self.info = read_json(index, "re-run prepare (--overwrite) to rebuild the cache")
        if not isinstance(self.info, dict) or not isinstance(self.info.get("case_ids"), list):
            raise InputError(index, "is not a tfpanc cache index (no case_ids); re-run prepare (--overwrite)")
        self.case_ids = sorted(self.info["case_ids"])
        self._splits = None

    @property
    def modality(self):
        return self.info.get("modality", "ct")

    def case(self, case_id):
        folder = self.root / "cases" / case_id
        if not (folder / "meta.json").exists():
            raise InputError(folder, "cached case is missing or incomplete; re-run prepare")
        return CachedCase(folder)

    @property
    def splits(self):
        if self._splits is None:
            path = self.root / SPLITS_FILE
            if not path.exists():
                raise InputError(path, "cache has no cross-validation splits")
            self._splits = read_json(path, "re-run prepare (--overwrite) to rebuild the cache")
        return self._splits

    @property
    def num_folds(self):
        return len(self.splits["folds"])

    def split(self, fold):
        """(train_ids, val_ids) of fold ``fold``; ``fold=-1`` trains on all."""
        if fold == -1:
            return list(self.case_ids), []
        if not 0 <= fold < self.num_folds:
            raise InputError(self.root / SPLITS_FILE, f"fold {fold} is not in 0..{self.num_folds - 1}")
        entry = self.splits["folds"][fold]
        return list(entry["train"]), list(entry["val"])


def write_index(root, dataset, case_ids, modality, source):
    """Writes ``cache.json``, the file that makes a folder a cache."""
    write_json(Path(root) / CACHE_FILE, {
        "format": 1, "dataset": dataset, "modality": modality,
        "source": str(source), "case_ids": sorted(case_ids)})
