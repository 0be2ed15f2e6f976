r"""How much does a global HU shift cost a run? DSC on its held-out cases with every HU value moved.

Real scanners and contrast timings move a tissue's HU by tens of units
(the NIH pancreas means alone span 89-107 HU), while the phantom draws its
pancreas at 103.5 +- 1.5 HU. This tool scores each run's own held-out cases,
whole volumes through ``predict``'s pipeline (``evaluate_real``'s scoring),
once per ``--offsets`` value added to every voxel, and prints the mean DSC
at each offset: the U-Net on shapes fell from 80-83 % to 25-38 % with its
cases 20 HU darker. Needs no real data. Each case is read once and held
alone while its offsets are scored.

    python tools/hu_shift_probe.py --model_dirs='runs/synthetic/unet_shapes*' --offsets=-20,0,20
"""

from __future__ import annotations

import argparse

import numpy as np
from run_held_out import held_out, matching_runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dirs", action="append", required=True, help="finished runs (glob)")
    parser.add_argument("--offsets", default="-20,0,20", help="HU added to every voxel, comma list")
    args = parser.parse_args()
    try:
        offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"error: --offsets: {args.offsets!r} is not a comma list of numbers") from None
    if not offsets:
        raise SystemExit("error: --offsets: no offset given")
    runs = matching_runs(args.model_dirs)

    from tfpanc.evaluate_real import score

    print("run, " + ", ".join(f"{o:+g} HU" for o in offsets) + " (held-out DSC %, mean +- std over cases)")
    for run in runs:
        predict, cases = held_out(run)
        dsc = {offset: [] for offset in offsets}
        for case_id, case in cases:
            image, label = np.asarray(case.image, np.float32), np.asarray(case.label) > 0
            for offset in offsets:
                shifted = [(case_id, image + np.float32(offset), label, tuple(case.spacing))]
                dsc[offset].append(100 * score(predict, shifted, "volumes", log=lambda s: None)[0][0]["dsc"])
        print(f"{run}, " + ", ".join(f"{np.mean(v):.1f} +- {np.std(v):.1f}" for v in dsc.values()), flush=True)


if __name__ == "__main__":
    main()
