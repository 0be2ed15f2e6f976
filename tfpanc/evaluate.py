"""Scores predicted masks against labels, case by case and in summary.

Usage::

    python -m tfpanc.evaluate --pred_dir P --label_dir L --output_dir O \\
        [--metrics dsc,hd95,...] [--label_values 1]

Cases are matched by file name: ``L/case.nii.gz`` is scored against the
prediction in ``P`` with the same name once ``.nii.gz``, ``.nii``, ``.mha``,
``.mhd`` or ``.nrrd`` is stripped (``P/case.nii.gz``, ``P/case.mha``, ...).
Every label needs a prediction; predictions without a label are ignored
(with a warning). The prediction must lie on the label's voxel grid (same
shape, and voxel-to-world matrix within 1e-3 mm). Metrics use the label's
spacing; see :mod:`tfpanc.metrics` for their definitions.

What counts as pancreas: by default any nonzero voxel, in labels and
predictions alike (MSD Task07 labels hold 1 = pancreas, 2 = tumour, and the
papers score the whole organ). ``--label_values 1`` (a comma list) keeps only
those values, in both.

Outputs, written only once every case has been scored: ``O/per_case.csv``
(a ``case`` column, then one column per metric, raw values: overlap metrics
as fractions, distances in mm, ``inf`` where exactly one mask is empty) and
``O/summary.json`` (``{metric: {mean, std, min, max, n, n_nonfinite}}`` and
the run's settings). The summary table, with overlap metrics in percent, is
printed. A missing prediction, a grid mismatch or an unreadable file stops
the run with a one-line error naming the file, and nothing is written.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from absl import flags, logging

from tfpanc.data.io import load_volume
from tfpanc import cli
from tfpanc.data.labels import label_mask
from tfpanc.errors import InputError
from tfpanc.metrics.summary import DEFAULT_METRICS, METRICS, all_metrics, format_table, summarize
from tfpanc.result_files import sweep_temporaries, write_json, write_text, written_together

SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


def define_flags(flag_values):
    """Defines this command's flags (only when run as a command, so that
    importing the module never clashes with other commands' flags)."""
    flags.DEFINE_string("pred_dir", None, "Folder of predicted masks.", flag_values=flag_values)
    flags.DEFINE_string("label_dir", None, "Folder of label masks.", flag_values=flag_values)
    flags.DEFINE_string("output_dir", None, "Where per_case.csv and summary.json go.",
                        flag_values=flag_values)
    flags.DEFINE_list("metrics", list(DEFAULT_METRICS),
                      f"Metrics to compute, from: {', '.join(METRICS)}.", flag_values=flag_values)
    flags.DEFINE_list("label_values", [],
                      "Voxel values that count as pancreas in labels and predictions; "
                      "empty (default): any nonzero value.", flag_values=flag_values)
    flags.mark_flags_as_required(["pred_dir", "label_dir", "output_dir"], flag_values=flag_values)


def case_id(name):
    """The case name of a file: its name without the image suffix.

    Example:
    >>> case_id("pancreas_001.nii.gz")
    'pancreas_001'
    """
    lower = name.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _volumes_by_case(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    found = {}
    for path in sorted(folder.iterdir()):
        cid = None if path.name.startswith(".") or not path.is_file() else case_id(path.name)
        if cid is None:
            continue
        if cid in found:
            raise InputError(path, f"a second file for case '{cid}' (also {found[cid].name})")
        found[cid] = path
    return found


def match_cases(pred_dir, label_dir):
    """``[(case, pred_path, label_path)]`` sorted by case.

    Raises:
        InputError: no labels, or a label without a prediction.
    """
    labels = _volumes_by_case(label_dir)
    preds = _volumes_by_case(pred_dir)
    if not labels:
        raise InputError(label_dir, f"holds no label volumes ({', '.join(SUFFIXES)})")
    for cid, path in labels.items():
        if cid not in preds:
            raise InputError(path, f"no prediction for this label in {pred_dir} "
                                   f"(expected {cid}.nii.gz or another {'/'.join(SUFFIXES)} file)")
    extra = sorted(set(preds) - set(labels))
    if extra:
        logging.warning("%d prediction(s) without a label ignored: %s", len(extra),
                        ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
    return [(cid, preds[cid], labels[cid]) for cid in sorted(labels)]


def _mask(volume, path, label_values):
    return label_mask(volume.array, path, label_values)


def _grid_problem(pred_geometry, label_geometry, label_path):
    if pred_geometry.shape != label_geometry.shape:
        return (f"shape {pred_geometry.shape} differs from its label {label_path} "
                f"{label_geometry.shape}")
    ps = ", ".join(f"{s:.4g}" for s in pred_geometry.spacing)
    ls = ", ".join(f"{s:.4g}" for s in label_geometry.spacing)
    po = ", ".join(f"{v:.4g}" for v in pred_geometry.affine[:3, 3])
    lo = ", ".join(f"{v:.4g}" for v in label_geometry.affine[:3, 3])
    return (f"voxel grid differs from its label {label_path} (spacing {ps} vs {ls} mm, "
            f"origin {po} vs {lo} mm)")


def evaluate_case(pred_path, label_path, metrics=None, label_values=()):
    """The metrics of one prediction file against one label file.

    Raises:
        InputError: unreadable file, non-integer mask, or grid mismatch.
    """
    label = load_volume(label_path)
    pred = load_volume(pred_path)
    if not pred.geometry.same_grid(label.geometry):
        raise InputError(pred_path, _grid_problem(pred.geometry, label.geometry, label_path))
    return all_metrics(_mask(pred, pred_path, label_values), _mask(label, label_path, label_values),
                       label.spacing, metrics)


def evaluate_folders(pred_dir, label_dir, metrics=None, label_values=()):
    """Scores every case; returns ``(rows, summary)``, writes nothing.

    Args:
        pred_dir, label_dir: folders matched as in the module docstring.
        metrics: names from :data:`tfpanc.metrics.METRICS`; ``None`` for all.
        label_values: voxel values that count as pancreas; empty: nonzero.

    Returns:
        ``rows``: one ``{"case": .., metric: ..}`` dict per case;
        ``summary``: :func:`tfpanc.metrics.summarize` of the rows.
    """
    metrics = list(DEFAULT_METRICS if metrics is None else metrics)
    rows = []
    for cid, pred_path, label_path in match_cases(pred_dir, label_dir):
        row = {"case": cid}
        row.update(evaluate_case(pred_path, label_path, metrics, label_values))
        logging.info("%s: %s", cid,
                     ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "case"))
        rows.append(row)
    return rows, summarize(rows, metrics)


def write_outputs(output_dir, rows, summary, settings):
    """Writes ``per_case.csv`` and ``summary.json``, together (both appear, or neither)."""
    output_dir = Path(output_dir)
    sweep_temporaries(output_dir)
    columns = ["case"] + list(summary)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row["case"]] + [repr(float(row[m])) for m in columns[1:]])
    # JSON keeps raw values: overlap metrics are fractions there, not percent.
    units = {m: "fraction" if METRICS[m][1] else METRICS[m][0] for m in summary}
    doc = dict(settings, n_cases=len(rows), units=units, metrics=summary)
    with written_together(folder=output_dir):  # both files or neither
        write_text(output_dir / "per_case.csv", buf.getvalue())
        write_json(output_dir / "summary.json", doc, indent=2, allow_nan=False)


def _parse_label_values(values):
    try:
        return [int(v) for v in values if v.strip()]
    except ValueError:
        raise InputError("--label_values",
                         f"expected whole numbers, got {','.join(values)}") from None


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    unknown = [m for m in fv.metrics if m not in METRICS]
    if unknown or not fv.metrics:
        raise InputError("--metrics", f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                                      f"choose from {', '.join(METRICS)}")
    label_values = _parse_label_values(fv.label_values)
    rows, summary = evaluate_folders(fv.pred_dir, fv.label_dir, fv.metrics, label_values)
    settings = {"pred_dir": str(fv.pred_dir), "label_dir": str(fv.label_dir),
                "label_values": label_values or "nonzero"}
    write_outputs(fv.output_dir, rows, summary, settings)
    print(format_table(summary))
    print(f"{len(rows)} cases; per-case values in {Path(fv.output_dir) / 'per_case.csv'}")


if __name__ == "__main__":
    cli.run_command(define_flags, main)
