r"""How much predict's body crop changes a trained run's masks, on unseen phantom cases.

For each case (phantom seed ``--seed``, never a training case of a run made
with the default phantom seed) the run predicts the whole field of view, the
body crop as ``predict`` makes it (start aligned to the method's
``crop_multiple``), and the same crop unaligned (the crop before the
alignment); each line gives the DSC of the cropped mask against the whole
one and the largest probability difference. Cases are drawn on the run's
training grid (``--shape``), so no resampling enters the comparison.

    python tools/body_crop_agreement.py --model_dir=runs/quickstart --shape=128,128,48
    python tools/body_crop_agreement.py --model_dir=runs/zhou_quick --shape=128,128,64 --cases=3

The issue's bar (#16): DSC >= 0.99 between cropped and uncropped masks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def crop_and_paste(predict, image, spacing, box):
    """The predictor on ``image[box]``, mask and probability pasted onto the whole grid."""
    from tfpanc.data.boxes import box_slices

    out = predict(np.ascontiguousarray(image[box_slices(box)]), probability=True, spacing=spacing)
    mask, prob = np.zeros(image.shape, bool), np.zeros(image.shape, np.float32)
    mask[box_slices(box)], prob[box_slices(box)] = out["mask"], out["probability"]
    return mask, prob


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="a trained CT run (cai or zhou)")
    parser.add_argument("--shape", required=True, help="phantom x,y,z: the run's training grid (its config's "
                        "--phantom_shape)")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--seed", type=int, default=77, help="phantom seed of the unseen cases")
    args = parser.parse_args()

    from tfpanc.data.phantom import make_case
    from tfpanc.inference.body_crop import body_region
    from tfpanc.methods import registry
    from tfpanc.metrics.overlap import dice

    method, info = registry.method_of_run(args.model_dir)
    multiple = method.call("crop_multiple", info) if method.has("crop_multiple") else 1
    if multiple is None or method.crops_body:
        raise SystemExit(f"{method.name}: predict does not body-crop this method; nothing to compare")
    predict = method.call("predictor", args.model_dir, info, None)
    shape = tuple(int(v) for v in args.shape.split(","))
    print(f"{args.model_dir} ({method.name}), crop start aligned to {tuple(multiple)}, phantom {shape} seed "
          f"{args.seed}")
    rows = {"aligned": [], "unaligned": []}
    for index in range(args.cases):
        case = make_case(shape, seed=args.seed, case_index=index)
        image, spacing = np.asarray(case.image, np.float32), tuple(case.spacing)
        start = time.time()
        whole = predict(image, probability=True, spacing=spacing)
        line = [f"case {index}: whole vs label DSC {dice(whole['mask'], case.label > 0):.3f} "
                f"({time.time() - start:.1f} s)"]
        for name, m in (("aligned", multiple), ("unaligned", 1)):
            box = body_region(image, spacing, multiple=m)
            mask, prob = crop_and_paste(predict, image, spacing, box)
            d = dice(mask, whole["mask"])
            rows[name].append(d)
            line.append(f"{name} crop {box[:, 0].tolist()}-{box[:, 1].tolist()}: DSC {d:.4f}, "
                        f"max |dp| {float(np.abs(prob - whole['probability']).max()):.4f}")
        print("; ".join(line), flush=True)
    for name, values in rows.items():
        print(f"{name}: DSC against the uncropped mask {min(values):.4f} to {max(values):.4f} "
              f"over {len(values)} cases")


if __name__ == "__main__":
    main()
