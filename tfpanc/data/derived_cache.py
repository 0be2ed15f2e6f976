"""Case caches derived from a prepared one (decimated, resampled), made once on first use.

A method that trains on a transformed copy of the data (the two-stage and
multitask coarse stages on the 1/4 volume, multitask on 1 mm voxels with a
skeleton target) writes it as a case cache of its own, so that samplers
read it like any other (memory-mapped, one patch at a time), and the work
is done once per case, not per sample or per fold. A case is present once
its ``meta.json`` is (written last, :func:`tfpanc.data.cache.write_case`), so
an interrupted build resumes and two runs building the same folder at once
write identical files by atomic renames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpanc.data.cache import CaseCache, atomic_save_npy, write_case, write_index
from tfpanc.data.io import Geometry
from tfpanc.data.preprocess import decimate_image, decimate_label


def derived_cache(cache, case_ids, root, make, name, log=print):
    """The case cache under ``root`` holding ``make(case)`` of each of ``case_ids``.

    Args:
        cache: the source :class:`tfpanc.data.cache.CaseCache`.
        case_ids: cases needed (missing ones are made, present ones reused).
        root: the derived cache's folder.
        make: ``case -> dict(image, label, geometry, extra=None, arrays=None)``;
            ``arrays`` maps file stems to more ``[x, y, z]`` arrays stored beside
            the case (``<stem>.npy``, written before ``meta.json``).
        name: the dataset name recorded in ``cache.json`` and the log.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done = set(CaseCache(root).case_ids) if (root / "cache.json").exists() else set()
    missing = [c for c in case_ids if c not in done or not (root / "cases" / c / "meta.json").exists()]
    for cid in missing:
        out = make(cache.case(cid))
        folder = root / "cases" / cid
        folder.mkdir(parents=True, exist_ok=True)
        for stem, array in (out.get("arrays") or {}).items():
            atomic_save_npy(folder / f"{stem}.npy", array)
        write_case(root, cid, out["image"], out["label"], out["geometry"], cache.modality, extra=out.get("extra"))
    if missing:
        log(f"{name}: {len(missing)} cases written into {root}")
        write_index(root, name, sorted(done | set(case_ids)), cache.modality, cache.root)
    return CaseCache(root)


def decimated_cache(cache, case_ids, factor, root, log=print):
    """A case cache of ``case_ids`` decimated by ``factor`` (block mean image, block max mask)."""

    def make(case):
        image = decimate_image(np.asarray(case.image), factor)
        if cache.modality == "ct":
            image = np.round(image).astype(np.int16)
        label = None if case.label is None else decimate_label(np.asarray(case.label), factor)
        spacing = tuple(float(s) * factor for s in case.spacing)
        return {"image": image, "label": label, "geometry": Geometry.from_spacing(image.shape, spacing)}

    return derived_cache(cache, case_ids, root, make, f"decimated by {factor}", log)
