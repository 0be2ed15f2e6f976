"""The per-case metric set, and summaries over cases in the papers' form.

:func:`all_metrics` computes every metric of one case from its prediction
and label (surface distance transforms once, on a crop around the two
masks). :func:`summarize` turns a list of per-case dicts into
``{metric: {mean, std, min, max, n, n_nonfinite}}`` and :func:`format_table`
prints it as the papers do, ``mean ± std [min, max]``, with overlap metrics
in percent (per-case values and JSON summaries keep raw fractions).

Non-finite values (``inf`` distances when exactly one mask is empty, ``nan``
from callers) are left out of the statistics and counted in
``n_nonfinite``; the table shows that count next to the metric so that a
missed organ cannot hide. The standard deviation is the sample one
(``ddof=1``, as MATLAB's ``std``), 0 for a single case.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.boxes import box_from_mask
from tfpanc.metrics import overlap, surface

# name: (unit, shown in percent, decimals in tables, description)
METRICS = {
    "dsc": ("%", True, 1, "Dice similarity coefficient"),
    "jaccard": ("%", True, 1, "Jaccard index"),
    "precision": ("%", True, 1, "voxel precision"),
    "recall": ("%", True, 1, "voxel recall"),
    "volume_ml": ("mL", False, 1, "predicted volume"),
    "label_volume_ml": ("mL", False, 1, "label volume"),
    "hd": ("mm", False, 2, "Hausdorff distance between surfaces"),
    "hd95": ("mm", False, 2, "95th-percentile Hausdorff distance"),
    "assd": ("mm", False, 2, "average symmetric surface distance"),
    "avd": ("mm", False, 2, "average Hausdorff distance over voxels (ITK)"),
    "avd_surface": ("mm", False, 2, "average Hausdorff distance over surfaces"),
    "box_iou": ("%", True, 1, "IoU of the bounding boxes"),
    "box_recall": ("%", True, 1, "label voxels inside the predicted box"),
    "abnormal_shape_changes": ("count", False, 1, "predicted slice pairs with AVD > 0.5 mm"),
    "mean_slice_avd": ("mm", False, 2, "mean AVD between consecutive predicted slices"),
}
DEFAULT_METRICS = tuple(METRICS)
_SURFACE = ("hd", "hd95", "assd", "avd_surface")


def all_metrics(pred, label, spacing, metrics=None):
    """Every requested metric of one case.

    Args:
        pred, label: ``[x, y, z]`` masks of one shape (nonzero = object).
        spacing: ``(sx, sy, sz)`` voxel size in mm (use the label's).
        metrics: names from :data:`METRICS`; ``None`` for all.

    Returns:
        ``{name: float}`` in the order of ``metrics``; overlap metrics as
        fractions, distances in mm, volumes in mL.

    Example:
    >>> a = np.zeros((20, 20, 10), bool); a[5:15, 5:15, 2:8] = True
    >>> m = all_metrics(a, a, (0.8, 0.8, 1.5))
    >>> m["dsc"], m["hd95"], round(m["volume_ml"], 3)
    (1.0, 0.0, 0.576)
    """
    names = DEFAULT_METRICS if metrics is None else tuple(metrics)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    pred = np.asarray(pred).astype(bool, copy=False)
    label = np.asarray(label).astype(bool, copy=False)
    if pred.shape != label.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {label.shape}")
    spacing = tuple(float(s) for s in spacing)
    # Everything below is translation invariant and zero outside the union
    # of the two masks, so one crop serves all metrics.
    crop = surface.union_crop(pred, label) or tuple(slice(0, 0) for _ in pred.shape)
    p, l = pred[crop], label[crop]
    values = {}
    if any(n in names for n in _SURFACE):
        values.update(surface.distance_summary(*surface.surface_distances(p, l, spacing)))
        values["avd_surface"] = values.pop("avd")
    if "avd" in names:
        values["avd"] = surface.distance_summary(*surface.voxel_distances(p, l, spacing))["avd"]
    simple = {
        "dsc": lambda: overlap.dice(p, l),
        "jaccard": lambda: overlap.jaccard(p, l),
        "precision": lambda: overlap.precision(p, l),
        "recall": lambda: overlap.recall(p, l),
        "volume_ml": lambda: overlap.volume_ml(p, spacing),
        "label_volume_ml": lambda: overlap.volume_ml(l, spacing),
        "box_iou": lambda: overlap.box_iou(box_from_mask(p), box_from_mask(l)),
        "box_recall": lambda: overlap.box_recall(box_from_mask(p), l),
        "abnormal_shape_changes": lambda: float(surface.abnormal_shape_changes(p, spacing)),
        "mean_slice_avd": lambda: surface.mean_slice_avd(p, spacing),
    }
    return {n: float(values[n]) if n in values else float(simple[n]()) for n in names}


def summarize(per_case, metrics=None, ddof=1):
    """Statistics of each metric over cases.

    Args:
        per_case: a list of ``{name: value}`` dicts (one per case); keys whose
            values are not numbers (such as ``"case"``) are skipped.
        metrics: names to summarize, in order; ``None`` for every numeric key
            in order of first appearance.
        ddof: delta degrees of freedom of the standard deviation.

    Returns:
        ``{name: {"mean", "std", "min", "max", "n", "n_nonfinite"}}``; ``n``
        counts the finite values the statistics use; the statistics are
        ``None`` when there is none.

    Example:
    >>> s = summarize([{"case": "a", "dsc": 0.8}, {"case": "b", "dsc": 0.9}])
    >>> round(s["dsc"]["mean"], 3), s["dsc"]["n"]
    (0.85, 2)
    """
    if metrics is None:
        metrics = []
        for row in per_case:
            for k, v in row.items():
                if k not in metrics and isinstance(v, (int, float, np.number)) \
                        and not isinstance(v, bool):
                    metrics.append(k)
    out = {}
    for name in metrics:
        values = np.array([float(row[name]) for row in per_case if name in row], float)
        finite = values[np.isfinite(values)]
        stats = {"mean": None, "std": None, "min": None, "max": None,
                 "n": int(finite.size), "n_nonfinite": int(values.size - finite.size)}
        if finite.size:
            stats.update(
                mean=float(finite.mean()),
                std=float(finite.std(ddof=ddof)) if finite.size > ddof else 0.0,
                min=float(finite.min()), max=float(finite.max()))
        out[name] = stats
    return out


def format_stat(stats, scale=1.0, decimals=1):
    """``mean ± std [min, max]`` of one summary dict.

    Example:
    >>> format_stat({"mean": 0.837, "std": 0.054, "min": 0.584, "max": 0.904,
    ...              "n": 82, "n_nonfinite": 0}, scale=100)
    '83.7 ± 5.4 [58.4, 90.4]'
    """
    if stats["mean"] is None:
        return "n/a"
    f = lambda v: f"{v * scale:.{decimals}f}"  # noqa: E731
    return f"{f(stats['mean'])} ± {f(stats['std'])} [{f(stats['min'])}, {f(stats['max'])}]"


def format_table(summary):
    """A plain-text table of a :func:`summarize` result.

    Overlap metrics are shown in percent; metrics not in :data:`METRICS`
    with two decimals and no unit.

    Example:
    >>> print(format_table(summarize([{"dsc": 0.8}, {"dsc": 0.9}])))
    metric  unit  mean ± std [min, max]    n
    dsc     %     85.0 ± 7.1 [80.0, 90.0]  2
    """
    rows = [("metric", "unit", "mean ± std [min, max]", "n")]
    for name, stats in summary.items():
        unit, percent, decimals, _ = METRICS.get(name, ("", False, 2, ""))
        n = str(stats["n"])
        if stats["n_nonfinite"]:
            n += f" (+{stats['n_nonfinite']} non-finite, excluded)"
        rows.append((name, unit, format_stat(stats, 100.0 if percent else 1.0, decimals), n))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows)
