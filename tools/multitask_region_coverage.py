r"""Does the multitask C2 region hold the whole pancreas? C1 alone, per held-out case, two region rules.

The paper centres a fixed region on the box of C1's cleaned mask and sizes
it "to cover the entire pancreas" (#12: it must, in every phantom case).
For each fold's held-out cases this runs C1 only (a finished ``--stage=c1``
is enough, C2 is not needed) and prints the share of the pancreas inside
the region placed by

* ``largest``: the box of C1's largest component (tfpanc before the rule
  below; the same function with a region of size 0 keeps the largest only);
* ``fitting``: the box of the largest component and the next largest ones
  that fit in one region with it (:func:`tfpanc.inference.components.components_fitting`,
  what the predictor does now).

Shares are counted on the run's resampled, body-cropped grid (the tables
command's ``region_recall`` counts on the input's grid).

    python -m tfpanc.train --flagfile=configs/multitask/phantom.cfg --fold=F \
        --model_dir=runs/multitask_phantom/foldF --stage=c1            # F = 0..3
    python tools/multitask_region_coverage.py --model_dirs='runs/multitask_phantom/fold*'
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np


def prediction_settings(run_dir):
    """The run's test-time record (what ``run.json`` holds), from its ``flags.cfg``."""
    from absl import flags

    from tfpanc.methods import registry
    from tfpanc.methods.multitask.recipe import prediction_record

    fv = flags.FlagValues()
    registry.define_train_flags(fv)
    fv(["coverage", f"--flagfile={Path(run_dir) / 'flags.cfg'}"])
    _, cfg = registry.train_config(fv)
    return prediction_record(cfg), cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dirs", action="append", required=True,
                        help="multitask run folders (glob), each with c1/ trained and split.json")
    parser.add_argument("--region", default=None, help="x,y,z voxels instead of each run's --region")
    parser.add_argument("--c1_opening", type=int, default=None,
                        help="radius of C1's opening instead of each run's --c1_opening (0: none)")
    parser.add_argument("--c1_threshold", type=float, default=0.5,
                        help="C1 probability threshold (the predictor's is 0.5): does a looser mask reach further?")
    args = parser.parse_args()

    from tfpanc.data.boxes import box_slices, clip_box
    from tfpanc.data.cache import CaseCache
    from tfpanc.inference.components import components_fitting
    from tfpanc.methods.multitask.predictor import MultitaskPredictor
    from tfpanc.methods.multitask.preprocess import label_to_model_grid, to_model_grid
    from tfpanc.methods.multitask.recipe import build_c1
    from tfpanc.training.run_dir import load_weights

    runs = sorted({p for pattern in args.model_dirs for p in glob.glob(pattern)})
    covered = {"largest": [], "fitting": []}
    for run in runs:
        info, cfg = prediction_settings(run)
        if args.region:
            info["region"] = [int(v) for v in args.region.split(",")]
        if args.c1_opening is not None:
            info["c1_opening"] = args.c1_opening
        stage = json.loads((Path(run) / "c1" / "stage.json").read_text())
        c1 = build_c1(stage["model"])
        load_weights(c1, Path(run) / "c1" / stage["weights"])
        info.update(crf=False)
        predictor = MultitaskPredictor(c1, None, info)
        rules = {"largest": (0, 0, 0), "fitting": tuple(info["region"])}
        cache = CaseCache(cfg.data_dir)
        test_ids = json.loads((Path(run) / "split.json").read_text())["test"]
        for case_id in test_ids:
            case = cache.case(case_id)
            image, spacing = np.asarray(case.image), tuple(case.spacing)
            crop_image, grid = to_model_grid(image, spacing, info["spacing"], info["body_threshold"])
            pancreas = label_to_model_grid(np.asarray(case.label), grid).astype(bool)
            opened = predictor.c1_opened(crop_image, args.c1_threshold)
            line = [f"{run} {case_id}:"]
            for name, size in rules.items():
                share = 0.0
                if opened.any():
                    region = predictor.region_of(components_fitting(opened, size), crop_image.shape)
                    share = float(pancreas[box_slices(clip_box(region, pancreas.shape))].sum() / pancreas.sum())
                covered[name].append(share)
                line.append(f"{name} {100 * share:.1f}%")
            print(" ".join(line), flush=True)
    for name, shares in covered.items():
        whole = sum(1 for s in shares if s >= 1.0)
        print(f"{name}: the region holds the whole pancreas in {whole} of {len(shares)} cases "
              f"(lowest share {100 * min(shares):.1f}%)")


if __name__ == "__main__":
    main()
