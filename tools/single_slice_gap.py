r"""What does losing a slice's neighbours cost a 2D run? DSC on its held-out cases both ways.

The NIH slices of ``../shared/realdata`` are exported one slice at a time,
so ``python -m tfpanc.evaluate_real`` gives a 3-slice network each of them
as the same slice three times. This tool asks how much that alone costs,
on data the run knows: for each held-out case of the run's own cache, the
``--slices`` slices with the most pancreas are scored twice by
``evaluate_real``'s own scoring of 2D slices (``predict``'s pipeline, the
centre slice's DSC), once with their true neighbours and once as three
copies, and the mean slice DSC of each way is printed.

    python tools/single_slice_gap.py --model_dirs='runs/synthetic/r*_long*'
"""

from __future__ import annotations

import argparse

import numpy as np
from run_held_out import held_out, matching_runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dirs", action="append", required=True, help="finished 2D runs (glob)")
    parser.add_argument("--slices", type=int, default=5, help="slices per held-out case, most pancreas first")
    args = parser.parse_args()

    from tfpanc.evaluate_real import score

    for run in matching_runs(args.model_dirs):
        predict, cases = held_out(run)
        stacks = {"neighbours": [], "copies": []}
        for case_id, case in cases:
            image, label = np.asarray(case.image), np.asarray(case.label) > 0
            area = label.sum(axis=(0, 1))
            area[[0, -1]] = 0   # a slice needs both neighbours
            for k in [int(k) for k in np.argsort(area)[::-1][:args.slices] if area[k]]:
                name, spacing = f"{case_id}:{k}", tuple(case.spacing)
                stacks["neighbours"].append((name, image[:, :, k - 1:k + 2], label[:, :, k - 1:k + 2], spacing))
                stacks["copies"].append((name, np.repeat(image[:, :, k:k + 1], 3, axis=2),
                                         np.repeat(label[:, :, k:k + 1], 3, axis=2), spacing))
        dsc = {way: np.array([row["dsc"] for row in score(predict, cases, "slices", log=lambda s: None)[0]])
               for way, cases in stacks.items()}
        print(f"{run}: " + ", ".join(f"{way} {100 * v.mean():.1f} +- {100 * v.std():.1f} %" for way, v in dsc.items())
              + f" ({len(dsc['copies'])} slices)", flush=True)


if __name__ == "__main__":
    main()
