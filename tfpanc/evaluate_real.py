"""DSC of a trained run on a folder of real labelled slices or volumes.

Usage::

    python -m tfpanc.evaluate_real --model_dir R --real_dir D [--output_dir O] \\
        [--slice_spacing 0.78] [--slice_thickness 2.0]

The question this answers is the sim-to-real one: how well does a model
that never saw a real image segment real scans? Two folder layouts:

* **2D slices** (``img_NNN.npy`` int16 HU with ``mask_NNN.npy`` 0/1, the NIH
  Pancreas-CT exports in ``../shared/realdata``): each slice is predicted as
  a volume of three copies of itself (the exports carry no neighbours), at
  ``--slice_spacing`` mm pixels (the exports store none; NIH's are 0.66-0.98
  mm) and ``--slice_thickness``. The arrays are in the exports' layout (rows
  posterior to anterior, columns the patient's right to left: upside down
  in a plain ``imshow``, as the realdata folder's README says);
  they are turned to tfpanc's ``[x, y]`` by :func:`nih_slice_to_ras`, a
  fixed rule, never by trying orientations against the labels. Three
  copies are not three neighbours: ``tools/single_slice_gap.py`` measures
  what that costs a run on its own held-out cases, and cai's
  ``--single_slice_fraction`` trains for it.
* **volumes**: ``X.nii.gz`` with ``X_pancreas.nii.gz`` beside it (the
  TotalSegmentator example), or a ``ct.nii.gz`` with ``pancreas.nii.gz``
  (a TotalSegmentator subject folder); subfolders are searched one level
  deep. Read with :func:`tfpanc.data.io.load_volume` into RAS+.

Several ``--model_dir`` runs (comma-separated, one method) are scored as
``predict``'s ensemble: the voxels more than half of them mark
(:mod:`tfpanc.inference.ensemble`); ``--output_dir`` is then required.

Prediction is ``predict``'s own pipeline (body crop, the run's training
spacing). Outputs, written together: ``O/per_case.csv`` (case, dsc,
precision, recall, predicted and labelled pixels), ``O/summary.json``
(means, std, and the pooled DSC over all pixels) and, unless
``--nofigure``, ``O/cases.png``: each case's slice (a volume's slice with
the most label, and its slice with the most prediction where that is
another) with the label's outline in green and the prediction's in red,
to tell a model that misses the gland from one that marks other
organs. Default ``O``: ``<model_dir>/real/<folder name>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import flags

from tfpanc import cli
from tfpanc.data.io import load_volume
from tfpanc.errors import InputError
from tfpanc.metrics.overlap import dice, precision, recall
from tfpanc.result_files import sweep_temporaries, write_csv_rows, write_json, written_together


def define_flags(fv):
    flags.DEFINE_list("model_dir", None, "A finished training run, or several runs of one method "
                      "(comma-separated) scored as an ensemble (the voxels most of them mark).", flag_values=fv)
    flags.DEFINE_string("real_dir", None, "Folder of real labelled slices or volumes (see the module doc).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where per_case.csv and summary.json go; default "
                        "<model_dir>/real/<real_dir's name> (required for an ensemble).", flag_values=fv)
    flags.DEFINE_float("slice_spacing", 0.78, "In-plane pixel (mm) of .npy slices, which store none.",
                       flag_values=fv)
    flags.DEFINE_float("slice_thickness", 2.0, "Slice thickness (mm) given to .npy slices.", flag_values=fv)
    flags.DEFINE_bool("figure", True, "Also write cases.png (each case's slice, label and prediction outlined).",
                      flag_values=fv)
    flags.mark_flags_as_required(["model_dir", "real_dir"], flag_values=fv)


def nih_slice_to_ras(array):
    """An NIH export slice (rows posterior->anterior, columns patient right->left) as tfpanc ``[x, y]``."""
    return np.ascontiguousarray(np.asarray(array).T[::-1, :])


def _load_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot read .npy array: {e}") from None


def slice_cases(folder, spacing, thickness):
    """``(name, image [x, y, 3], label [x, y, 3], spacing)`` for every ``img_*.npy`` with its mask."""
    images = sorted(folder.glob("img_*.npy"))
    for path in images:
        mask_path = path.with_name("mask_" + path.name[len("img_"):])
        if not mask_path.exists():
            raise InputError(path, f"has no mask {mask_path.name} beside it")
        image, mask = _load_npy(path), _load_npy(mask_path)
        if image.ndim != 2 or image.shape != mask.shape:
            raise InputError(mask_path, f"shape {mask.shape} does not match its 2D image {image.shape}")
        image, mask = nih_slice_to_ras(image), nih_slice_to_ras(mask) > 0
        yield (path.stem[len("img_"):], np.repeat(image[..., None], 3, axis=2),
               np.repeat(mask[..., None], 3, axis=2), (spacing, spacing, thickness))


def _volume_pairs(folder):
    pairs = []
    for d in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (d / "ct.nii.gz").exists() and (d / "pancreas.nii.gz").exists():
            pairs.append((d.name, d / "ct.nii.gz", d / "pancreas.nii.gz"))
        for label in sorted(d.glob("*_pancreas.nii.gz")):
            image = label.with_name(label.name[:-len("_pancreas.nii.gz")] + ".nii.gz")
            if image.exists():
                pairs.append((image.name[:-len(".nii.gz")], image, label))
    return pairs


def volume_cases(folder):
    """``(name, image, label, spacing)`` for every image/label pair of the folder."""
    for name, image_path, label_path in _volume_pairs(folder):
        image, label = load_volume(image_path), load_volume(label_path)
        if image.array.shape != label.array.shape:
            raise InputError(label_path, f"shape {label.array.shape} does not match {image_path.name} "
                             f"{image.array.shape}")
        yield name, image.array, np.asarray(label.array) > 0, image.spacing


def find_cases(folder, spacing, thickness):
    """``(cases, kind)``: the cases are read one at a time as they are scored, never all at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("--real_dir", f"{folder} is not a folder")
    if any(folder.glob("img_*.npy")):
        return slice_cases(folder, spacing, thickness), "slices"
    if _volume_pairs(folder):
        return volume_cases(folder), "volumes"
    raise InputError("--real_dir", f"{folder} holds neither img_*.npy slices nor NIfTI image/pancreas pairs")


def score(predict, cases, kind, log=print):
    """Per-case rows, the summary and one ``(name, image, label, mask)`` 2D view per case."""
    rows, views, inter, total = [], [], 0, 0
    for name, image, label, spacing in cases:
        mask = np.asarray(predict(image, spacing=spacing)["mask"]) > 0
        label, image = np.asarray(label) > 0, np.asarray(image)
        if kind == "slices":  # the centre copy is the slice; the others are its stand-in neighbours
            mask, label, image = mask[:, :, 1], label[:, :, 1], image[:, :, 1]
        rows.append({"case": name, "dsc": dice(mask, label), "precision": precision(mask, label),
                     "recall": recall(mask, label), "predicted": int(mask.sum()), "labelled": int(label.sum())})
        if mask.ndim == 2:
            views.append((name, image, label, mask))
        else:  # the slice with the most label and, where the prediction lies elsewhere, its own
            picks = {int(np.argmax(label.sum(axis=(0, 1)))): name}
            picks.setdefault(int(np.argmax(mask.sum(axis=(0, 1)))), f"{name}, most predicted")
            views += [(title, image[:, :, z], label[:, :, z], mask[:, :, z]) for z, title in picks.items()]
        inter += int(np.logical_and(mask, label).sum())
        total += int(mask.sum()) + int(label.sum())
        log(f"{name}: DSC {100 * rows[-1]['dsc']:.1f} %, precision {100 * rows[-1]['precision']:.1f} %, "
            f"recall {100 * rows[-1]['recall']:.1f} %")
    dsc = np.array([r["dsc"] for r in rows])
    summary = {"cases": len(rows), "kind": kind, "dsc_mean": float(dsc.mean()), "dsc_std": float(dsc.std()),
               "dsc_pooled": 2.0 * inter / total if total else 1.0,
               "precision_mean": float(np.mean([r["precision"] for r in rows])),
               "recall_mean": float(np.mean([r["recall"] for r in rows]))}
    return rows, summary, views


def plot_cases(views, path, columns=5):
    """``cases.png``: each view in radiological display at the CT window, label green, prediction red;
    each title gives the DSC on the slice shown."""
    from tfpanc.compare.figures import pyplot, save_and_close
    from tfpanc.inference.preview import CT_WINDOW, radiological

    plt = pyplot()
    columns = min(columns, len(views))
    n_rows = -(-len(views) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(3 * columns, 3 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, image, label, mask) in zip(axes.ravel(), views):
        ax.imshow(radiological(image), cmap="gray", vmin=CT_WINDOW[0], vmax=CT_WINDOW[1])
        for outline, colour in ((label, "lime"), (mask, "red")):
            if outline.any():
                ax.contour(radiological(outline).astype(float), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(f"{name}\nslice DSC {100 * dice(mask, label):.0f} %", fontsize=9)
    save_and_close(fig, path)


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("slice_spacing", "slice_thickness"):
        if not fv[name].value > 0:
            raise InputError(f"--{name}", f"must be positive, got {fv[name].value}")
    from tfpanc.predict import load_runs, local_predictor

    if len(fv.model_dir) > 1 and not fv.output_dir:
        raise InputError("--output_dir", "is required with several --model_dir runs (an ensemble has no run folder)")
    runs = load_runs(fv.model_dir)
    cases, kind = find_cases(fv.real_dir, fv.slice_spacing, fv.slice_thickness)
    out = Path(fv.output_dir or Path(fv.model_dir[0]) / "real" / Path(fv.real_dir).resolve().name)
    rows, summary, views = score(local_predictor(runs, log=lambda s: None), cases, kind)
    summary.update({"model_dir": ",".join(fv.model_dir), "real_dir": str(fv.real_dir),
                    "slice_spacing": fv.slice_spacing if kind == "slices" else None})
    sweep_temporaries(out)
    with written_together(folder=out):
        write_csv_rows(out / "per_case.csv", rows)
        write_json(out / "summary.json", summary)
        if fv.figure:
            plot_cases(views, out / "cases.png")
    print(f"{summary['cases']} real {kind}: DSC {100 * summary['dsc_mean']:.1f} +- {100 * summary['dsc_std']:.1f} %"
          f" (pooled {100 * summary['dsc_pooled']:.1f} %), precision {100 * summary['precision_mean']:.1f} %, "
          f"recall {100 * summary['recall_mean']:.1f} %; per case in {out / 'per_case.csv'}")


if __name__ == "__main__":
    cli.run_command(define_flags, main)
