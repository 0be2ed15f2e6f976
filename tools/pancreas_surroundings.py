"""How much of the pancreas's surroundings is fat: anatomy banks (at each lean reach) beside real scans.

For every axial slice through the gland, the share of the in-plane ring
``--ring_mm`` (default 1.5 to 5 mm outside the label) that is fat: on a bank
the fat tissues (subcutaneous, visceral, fat planes) after the ``lean``
step's fill at each reach of ``--lean_mm``; on a real folder the pixels
below ``--fat_hu``. Prints the mean and the 10th / 90th percentile over
slices (issue #17: the phantom's gland lies in fat, the NIH glands touch
bowel, vessels and stomach; :mod:`tfpanc.data.synthetic.lean`).

Usage:
    python tools/pancreas_surroundings.py --banks=cache/synthetic_bank_varied --lean_mm=0,2,4,6,8 \\
        --real_dirs=../shared/realdata/nih_pancreas_ct_slices,../shared/realdata/totalsegmentator_s0009
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import app, flags
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FLAGS = flags.FLAGS
flags.DEFINE_list("banks", [], "Built anatomy banks (the lean step's arrays are added where missing).")
flags.DEFINE_list("lean_mm", ["0", "4", "8"], "Lean reaches (mm) to measure each bank at.")
flags.DEFINE_list("real_dirs", [], "Real labelled folders, as tfpanc.evaluate_real reads them.")
flags.DEFINE_list("ring_mm", ["1.5", "5"], "Inner and outer distance of the ring from the label (mm).")
flags.DEFINE_float("fat_hu", -30.0, "Real pixels below this are fat.")
flags.DEFINE_float("slice_spacing", 0.78, "Pixel of 2D slice exports that store none (mm).")
flags.DEFINE_integer("anatomy_step", 3, "Every n-th bank anatomy.")
flags.DEFINE_integer("slice_step", 4, "Every n-th bank slice through the gland.")
flags.DEFINE_integer("min_pixels", 30, "Slices with fewer label pixels are skipped.")


def ring(mask, pixel, inner, outer):
    """The in-plane ring of pixels more than ``inner`` and at most ``outer`` mm outside ``mask``."""
    distance = ndi.distance_transform_edt(~mask, sampling=pixel)
    return (distance > inner) & (distance <= outer)


def bank_shares(root, reaches_mm, inner, outer):
    """``{reach: [fat share per slice]}`` over the bank's sampled anatomies and slices."""
    from tfpanc.data.phantom.tissues import Tissue
    from tfpanc.data.synthetic.bank import AnatomyBank
    from tfpanc.data.synthetic.lean import DISTANCE_UNIT_MM, lean_tissue

    bank = AnatomyBank(root)
    bank.ensure_fat_fill()
    fat = (Tissue.FAT, Tissue.VISCERAL_FAT, Tissue.FAT_PLANE)
    out = {r: [] for r in reaches_mm}
    for a in range(0, len(bank), FLAGS.anatomy_step):
        tissue, texture = bank.arrays(a)
        fill_tissue, fill_distance = bank.fat_fill_arrays(a)
        for k in bank.entries[a].pancreas_slices[::FLAGS.slice_step]:
            t = np.asarray(tissue[:, :, k])
            mask = t == Tissue.PANCREAS
            if mask.sum() < FLAGS.min_pixels:
                continue
            band = ring(mask, bank.spacing[:2], inner, outer)
            tex, fill_t, fill_d = (np.asarray(a[:, :, k]) for a in (texture, fill_tissue, fill_distance))
            for r in reaches_mm:
                leaned, _ = lean_tissue(t, tex, fill_t, fill_d, int(round(r / DISTANCE_UNIT_MM)))
                out[r].append(float(np.isin(leaned[band], fat).mean()))
    return out


def real_shares(folder, inner, outer):
    """``{case: [fat share per slice]}`` of a real folder."""
    from tfpanc.evaluate_real import find_cases

    cases, kind = find_cases(folder, FLAGS.slice_spacing, 2.0)
    out = {}
    for name, image, label, spacing in cases:
        # A 2D export comes as three copies of its slice: measure one.
        slices = [1] if kind == "slices" else np.nonzero(label.sum(axis=(0, 1)) >= FLAGS.min_pixels)[0]
        shares = []
        for k in slices:
            band = ring(np.asarray(label[:, :, k]), spacing[:2], inner, outer)
            shares.append(float((np.asarray(image[:, :, k])[band] < FLAGS.fat_hu).mean()))
        out[name] = shares
    return out


def row(name, shares):
    p10, p90 = np.percentile(shares, [10, 90])
    print(f"{name:48s} {len(shares):5d} {100 * np.mean(shares):7.1f} {100 * p10:7.1f} {100 * p90:7.1f}")


def main(argv):
    del argv
    inner, outer = (float(v) for v in FLAGS.ring_mm)
    print(f"fat share (%) of the {inner:g}-{outer:g} mm ring around the pancreas, per slice")
    print(f"{'source':48s} {'n':>5s} {'mean':>7s} {'p10':>7s} {'p90':>7s}")
    for root in FLAGS.banks:
        for reach, shares in bank_shares(root, [float(r) for r in FLAGS.lean_mm], inner, outer).items():
            row(f"{Path(root).name}, lean reach {reach:g} mm", shares)
    for folder in FLAGS.real_dirs:
        per_case = real_shares(folder, inner, outer)
        row(f"{Path(folder).name} (all)", [s for v in per_case.values() for s in v])
        for name, shares in per_case.items():
            if len(per_case) <= 20:
                row(f"  {name}", shares)


if __name__ == "__main__":
    app.run(main)
