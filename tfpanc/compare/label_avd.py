"""The ground truth's own neighbouring-slice AVD, over every label of a prepared cache.

Cai et al. (Sec. IV-D) measure how much a manual pancreas outline changes
from one axial slice to the next, to set the threshold of an "abnormal
shape change" (0.5 mm): 0.35 ± 0.94 mm over NIH's CT labels, 2.69 ± 4.45 mm
over their MRI labels. ``python -m tfpanc.compare --label_avd=CACHE`` gives
the same figure for a data set: the 2D AVD (:func:`tfpanc.metrics.slice_avd`)
of every pair of consecutive slices inside each label's axial extent,
pooled over the cases (mean ± std over the pairs, the paper's reading);
pairs across an empty slice inside the extent are counted apart as gaps.
Labels are read one case at a time: from a cache's memory maps, or from a
folder of label files (NIfTI, .mha, .nrrd; any nonzero value is pancreas,
so MSD's tumour label counts as pancreas) such as real labels without their
images.
"""

from __future__ import annotations

import numpy as np

from tfpanc.compare import tables as paper
from tfpanc.data.cache import CaseCache
from tfpanc.metrics import slice_avd


def _labels(source):
    """``(dataset, modality, [(label array, spacing)...])`` lazily, one case at a time."""
    from pathlib import Path

    from tfpanc.data import io
    from tfpanc.data.layouts import strip_suffix
    from tfpanc.errors import InputError

    source = Path(source)
    if (source / "cache.json").is_file() or not source.is_dir():
        cache = CaseCache(source)
        return (cache.info.get("dataset", "unknown"), cache.modality,
                ((cache.case(c).label, cache.case(c).spacing) for c in cache.case_ids))
    files = sorted(f for f in source.iterdir() if strip_suffix(f.name) != f.name)
    if not files:
        raise InputError(source, "holds neither a cache (cache.json) nor label files")
    return (f"label files in {source}", "ct",
            ((v.array, v.spacing) for v in (io.load_volume(f) for f in files)))


def label_slice_avd(source):
    """``{"dataset", "modality", "cases", "pairs", "gaps", "mean", "std", "per_case_mean"}`` in mm of a
    cache's labels or a folder of label files."""
    dataset, modality, labels = _labels(source)
    pairs, gaps, per_case = [], 0, []
    for array, spacing in labels:
        label = np.asarray(array) > 0
        nonempty = np.flatnonzero(label.any(axis=(0, 1)))
        if nonempty.size < 2:
            continue
        values = slice_avd(label, spacing)[nonempty[0]:nonempty[-1]]
        finite = values[np.isfinite(values)]
        gaps += int(values.size - finite.size)
        pairs.extend(finite.tolist())
        if finite.size:
            per_case.append(float(finite.mean()))
    values = np.asarray(pairs)
    return {"dataset": dataset, "modality": modality, "cases": len(per_case),
            "pairs": int(values.size), "gaps": gaps,
            "mean": float(values.mean()) if values.size else None,
            "std": float(values.std(ddof=1)) if values.size > 1 else None,
            "per_case_mean": float(np.mean(per_case)) if per_case else None}


def describe(result):
    """Our figure beside the paper's for the cache's modality."""
    r = result
    ref = paper.fact("cai", "neighbour_slice_AVD_mm_ground_truth")
    theirs = ref["values"]["MRI" if r["modality"] == "mri" else "CT"]
    ours = ("no label spans two slices" if r["mean"] is None else
            f"{r['mean']:.2f} ± {r['std'] if r['std'] is not None else 0:.2f} mm over {r['pairs']} slice pairs "
            f"of {r['cases']} cases ({r['gaps']} pair(s) across an empty slice left out)")
    return (f"ground-truth neighbouring-slice AVD, {r['dataset']} ({r['modality']}): {ours}; "
            f"{ref['source']}: {theirs['mean']} ± {theirs['std']} mm ({ref['dataset']})")
