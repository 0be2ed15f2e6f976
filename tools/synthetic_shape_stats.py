"""Pancreas shape statistics of anatomy banks beside the real MSD labels (issue #17).

For each bank folder (``--banks``) and for the real label maps of
``--real_labels``, prints the 10th, 50th and 90th percentile of the gland's
volume, its three principal extents, its maximum and 90th-percentile
thickness (:func:`tfpanc.data.phantom.stats.shape_stats`), and how many
glands fall outside the real range (:data:`~tfpanc.data.phantom.stats.REAL_SHAPE_RANGE`).

Usage:
    python tools/synthetic_shape_stats.py --banks cache/synthetic_bank,cache/synthetic_bank_varied \\
        --real_labels ../shared/realdata/msd_task07_labels
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FLAGS = flags.FLAGS
flags.DEFINE_list("banks", ["cache/synthetic_bank"], "Built anatomy banks.")
flags.DEFINE_string("real_labels", "", "Folder of real NIfTI pancreas labels (optional).")
flags.DEFINE_float("outlier_ml", 500.0, "Real labels above this volume are left out (MSD has one of 868 mL).")

KEYS = ("volume_ml", "extent_mm_0", "extent_mm_1", "extent_mm_2", "thickness_max_mm", "thickness_p90_mm")


def flat(stats):
    out = dict(stats)
    for i, e in enumerate(stats["extent_mm"]):
        out[f"extent_mm_{i}"] = e
    return out


def bank_stats(root):
    from tfpanc.data.phantom.stats import shape_stats
    from tfpanc.data.phantom.tissues import Tissue
    from tfpanc.data.synthetic.bank import AnatomyBank

    bank = AnatomyBank(root)
    return [flat(shape_stats(np.asarray(bank.arrays(i)[0]) == Tissue.PANCREAS, bank.spacing)) for i in range(len(bank))]


def real_stats(folder):
    import nibabel as nib

    from tfpanc.data.phantom.stats import shape_stats

    out = []
    for path in sorted(Path(folder).glob("*.nii*")):
        img = nib.load(str(path))
        s = flat(shape_stats(np.asarray(img.dataobj) > 0, img.header.get_zooms()[:3]))
        if s["volume_ml"] <= FLAGS.outlier_ml:
            out.append(s)
    return out


def report(name, rows):
    from tfpanc.data.phantom.stats import outside_real_range

    outside = sum(bool(outside_real_range(r)) for r in rows)
    cells = []
    for k in KEYS:
        p10, p50, p90 = np.percentile([r[k] for r in rows], [10, 50, 90])
        cells.append(f"{p50:6.1f} [{p10:5.1f},{p90:6.1f}]")
    print(f"{name:34s} n={len(rows):3d} outside={outside:3d}  " + "  ".join(cells))


def main(argv):
    del argv
    print(f"{'source':34s} {'':17s}" + "  ".join(f"{k:>20s}" for k in KEYS) + "   (median [p10, p90])")
    for root in FLAGS.banks:
        report(root, bank_stats(root))
    if FLAGS.real_labels:
        report(f"real: {Path(FLAGS.real_labels).name}", real_stats(FLAGS.real_labels))


if __name__ == "__main__":
    app.run(main)
