r"""How much predict's body crop changes a trained run's masks, on unseen phantom cases.

For each case (phantom seed ``--seed``, never a training case of a run made
with the default phantom seed) the run predicts the whole field of view, the
body crop as ``predict`` makes it (start aligned to the method's
``crop_multiple``), and the same crop unaligned (the crop before the
alignment), both through :func:`tfpanc.inference.body_crop.predict_in_body`;
each line gives the DSC of the cropped mask against the whole one and the
largest probability difference. A method ``predict`` does not crop
(two_stage) gets the unaligned crop only, to show why. Cases are drawn on
the run's training grid (``--shape``), so no resampling enters the
comparison.

    python tools/body_crop_agreement.py --model_dir=runs/quickstart --shape=128,128,48 --cases=4
    python tools/body_crop_agreement.py --model_dir=runs/quickstart --shape=128,128,48 --margin_mm=40
    python tools/body_crop_agreement.py --model_dir=runs/zhou_quick --shape=128,128,64 --cases=3
    python tools/body_crop_agreement.py --model_dir=runs/two_stage_quick --shape=128,128,64 --cases=3

The issue's bar (#16): DSC >= 0.99 between cropped and uncropped masks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="a trained CT run (cai, zhou or two_stage)")
    parser.add_argument("--shape", required=True, help="phantom x,y,z: the run's training grid (its config's "
                        "--phantom_shape)")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--seed", type=int, default=77, help="phantom seed of the unseen cases")
    parser.add_argument("--margin_mm", type=float, default=None, help="crop margin (default predict's 20 mm)")
    args = parser.parse_args()

    from tfpanc.data.phantom import make_case
    from tfpanc.inference.body_crop import BODY_MARGIN_MM, predict_in_body
    from tfpanc.methods import registry
    from tfpanc.metrics.overlap import dice

    method, info = registry.method_of_run(args.model_dir)
    if method.crops_body:
        raise SystemExit(f"{method.name} crops the body in its own preprocessing; nothing to compare")
    multiple = method.call("crop_multiple", info) if method.has("crop_multiple") else 1
    crops = {"aligned": multiple, "unaligned": 1} if multiple is not None else {"unaligned": 1}
    margin = BODY_MARGIN_MM if args.margin_mm is None else args.margin_mm
    predict = method.call("predictor", args.model_dir, info, None)
    shape = tuple(int(v) for v in args.shape.split(","))
    aligned = "predicted whole by predict" if multiple is None else f"crop start aligned to {tuple(multiple)}"
    print(f"{args.model_dir} ({method.name}), {aligned}, margin {margin:g} mm, phantom {shape} seed {args.seed}")
    rows = {name: [] for name in crops}
    for index in range(args.cases):
        case = make_case(shape, seed=args.seed, case_index=index)
        image, spacing = np.asarray(case.image, np.float32), tuple(case.spacing)
        start = time.time()
        whole = predict(image, probability=True, spacing=spacing)
        line = [f"case {index}: whole vs label DSC {dice(whole['mask'], case.label > 0):.3f} "
                f"({time.time() - start:.1f} s)"]
        for name, m in crops.items():
            out = predict_in_body(predict, image, spacing, probability=True, margin_mm=margin, multiple=m)
            d = dice(out["mask"], whole["mask"])
            rows[name].append(d)
            line.append(f"{name} crop {out['body_box'][:, 0].tolist()}-{out['body_box'][:, 1].tolist()}: "
                        f"DSC {d:.4f}, max |dp| {float(np.abs(out['probability'] - whole['probability']).max()):.4f}")
        print("; ".join(line), flush=True)
    for name, values in rows.items():
        print(f"{name}: DSC against the uncropped mask {min(values):.4f} to {max(values):.4f} "
              f"over {len(values)} cases")


if __name__ == "__main__":
    main()
