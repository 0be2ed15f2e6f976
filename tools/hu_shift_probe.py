r"""How much does a global HU shift cost a run? DSC on its held-out cases with every HU value moved.

Real scanners and contrast timings move a tissue's HU by tens of units
(the NIH pancreas means alone span 89-107 HU), while the phantom draws its
pancreas at 103.5 +- 1.5 HU. This tool scores each run's own held-out cases,
whole volumes through ``predict``'s pipeline (``evaluate_real``'s scoring),
once per ``--offsets`` value added to every voxel, and prints the mean DSC
at each offset: a run that learnt one HU band loses most of it at +-20 HU.
Needs no real data.

    python tools/hu_shift_probe.py --model_dirs='runs/synthetic/unet_shapes*' --offsets=-20,0,20
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
from run_held_out import held_out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dirs", action="append", required=True, help="finished runs (glob)")
    parser.add_argument("--offsets", default="-20,0,20", help="HU added to every voxel, comma list")
    args = parser.parse_args()
    try:
        offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"error: --offsets: {args.offsets!r} is not a comma list of numbers") from None

    from tfpanc.evaluate_real import score

    runs = sorted({p for pattern in args.model_dirs for p in glob.glob(pattern)})
    if not runs or not offsets:
        raise SystemExit(f"error: --model_dirs / --offsets: no run matches {args.model_dirs} or no offset given")
    print("run, " + ", ".join(f"{o:+g} HU" for o in offsets) + " (held-out DSC %, mean +- std over cases)")
    for run in runs:
        predict, cases = held_out(run)
        volumes = [(case_id, np.asarray(case.image, np.float32), np.asarray(case.label) > 0, tuple(case.spacing))
                   for case_id, case in cases]
        cells = []
        for offset in offsets:
            shifted = ((name, image + np.float32(offset), label, sp) for name, image, label, sp in volumes)
            dsc = 100 * np.array([row["dsc"] for row in score(predict, shifted, "volumes", log=lambda s: None)[0]])
            cells.append(f"{dsc.mean():.1f} +- {dsc.std():.1f}")
        print(f"{run}, " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
