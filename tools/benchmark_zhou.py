r"""Seconds per volume of the zhou pipeline: three coarse views plus fixed-point rounds.

Builds FCN-8s at full width (VGG16: 64 channels, fc 4096) with random
weights and a synthetic S x S x Z volume with a pancreas-sized ellipsoid as
Z(0), then times, with the pipeline's own code
(:func:`tfpanc.inference.slicewise.predict_slices` and
:func:`tfpanc.methods.zhou.fixed_point.fine_round`):

  * the coarse pass of each view (every slice of the view; timed on
    ``--coarse_slices`` slices per view and scaled to the view's slice count
    unless ``--full``),
  * one fine round (crops of every slice of the three views around Z(0)
    with the 30-pixel frame, fused; timed on ``--fine_crops`` crops per view
    and scaled by the crop count unless ``--full``),
  * the whole pipeline for 1 round and for ``--rounds`` rounds (paper: 2.89
    rounds on average at R = 0.95).

Forward passes run as compiled calls (``tf.function`` with relaxed shapes on
TensorFlow, ``jax.jit`` on JAX; ``--eager``: plain calls as
:class:`tfpanc.methods.zhou.predictor.ZhouPredictor` makes them); each distinct input shape is compiled once
before timing (a long-running predictor pays that once, too). One network
serves every view and stage: the six models have the same cost. Usage::

    python tools/benchmark_zhou.py                                   # 512x512x240, scaled
    python tools/benchmark_zhou.py --full --batch 8                  # on a GPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_util import compiled_forward, peak_rss_mib


def _subset(sb, n):
    """The SliceBoxes of ``n`` evenly spaced crops of ``sb``."""
    from tfpanc.methods.zhou.crops import SliceBoxes

    if n <= 0 or n >= len(sb):
        return sb
    keep = np.unique(np.linspace(0, len(sb) - 1, n).round().astype(int))
    return SliceBoxes(sb.view, sb.indices[keep], sb.boxes[keep])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--depth", type=int, default=240)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--fc_filters", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=2, help="slices/crops per network call")
    parser.add_argument("--coarse_slices", type=int, default=4, help="slices timed per view")
    parser.add_argument("--fine_crops", type=int, default=8, help="crops timed per view")
    parser.add_argument("--rounds", type=float, default=2.89, help="fine rounds of a typical volume")
    parser.add_argument("--margin", type=int, default=30)
    parser.add_argument("--train_margin", type=int, default=60,
                        help="largest training margin: crops pad to the box plus twice this, as in training")
    parser.add_argument("--full", action="store_true", help="time every slice and crop")
    parser.add_argument("--eager", action="store_true",
                        help="eager model calls, as ZhouPredictor makes them, instead of compiled ones")
    args = parser.parse_args()

    import keras

    from tfpanc.data.patches import VIEWS, view_axis
    from tfpanc.data.boxes import box_from_mask
    from tfpanc.data.preprocess import round_up
    from tfpanc.inference.slicewise import predict_slices
    from tfpanc.methods.zhou.crops import FineViewPredictor, slice_boxes
    from tfpanc.methods.zhou.fixed_point import fine_round
    from tfpanc.methods.zhou.recipe import box_crop_size
    from tfpanc.models.fcn8s import FCN8s

    shape = (args.size, args.size, args.depth)
    model = FCN8s(filters=args.filters, fc_filters=args.fc_filters)
    if args.eager:
        from tfpanc.methods.zhou.predictor import forward
        forward = forward(model)
    else:
        forward = compiled_forward(model)
    print(f"Keras {keras.__version__} on {keras.backend.backend()}; FCN-8s {model.count_params():,} "
          f"parameters; volume {shape}, batch {args.batch}")
    rng = np.random.default_rng(0)
    volume = rng.normal(0.3, 0.2, shape).astype(np.float32)  # already "normalised"
    # Z(0): an ellipsoid of about a pancreas' extent at 0.8 x 0.8 x 1 mm (120 x 70 x 60 voxels).
    x, y, z = np.ogrid[:shape[0], :shape[1], :shape[2]]
    c = np.array(shape) / 2
    z0 = ((x - c[0]) / 60) ** 2 + ((y - c[1]) / 35) ** 2 + ((z - c[2]) / 30) ** 2 <= 1

    def predict_fn(view, batch):
        return 1 / (1 + np.exp(-forward(batch)[..., 0]))

    coarse_total = 0.0
    for view in VIEWS:
        axis = view_axis(view)
        n = shape[axis]
        plane = [round_up(s, 32) for a, s in enumerate(shape) if a != axis]
        count = n if args.full else min(n, args.coarse_slices)
        idx = np.linspace(0, n - 1, count).round().astype(int)
        forward(np.zeros((args.batch, *plane, 3), np.float32))  # compile this shape
        t = time.perf_counter()
        predict_slices(lambda b, v=view: predict_fn(v, b), volume, view, batch_size=args.batch,
                       multiple=32, indices=idx)
        seconds = (time.perf_counter() - t) * n / len(idx)
        coarse_total += seconds
        print(f"coarse {view}: {n} slices of {plane[0]}x{plane[1]}: {seconds:.1f} s "
              f"({'all timed' if len(idx) == n else f'scaled from {len(idx)}'})")

    bounds = box_from_mask(z0)
    # The fine models' training size, as tfpanc.methods.zhou.recipe.fine_size makes it for this box.
    train_size = {v: box_crop_size(bounds, shape, v, args.train_margin) for v in VIEWS}
    fine = FineViewPredictor(predict_fn, mode="pad", multiple=32, size=train_size, batch_size=args.batch)
    boxes = {v: slice_boxes(z0, v, args.margin, 1, "slice", bounds) for v in VIEWS}
    timed_boxes = {v: sb if args.full else _subset(sb, args.fine_crops) for v, sb in boxes.items()}
    for view, sb in timed_boxes.items():  # compile every padded crop shape first
        for shape_hw in {fine._input_shape(view, int(b[0, 1] - b[0, 0]), int(b[1, 1] - b[1, 0]))
                         for b in sb.boxes}:
            forward(np.zeros((args.batch, *shape_hw, 3), np.float32))
    fine_total = 0.0
    for view, sb in timed_boxes.items():
        t = time.perf_counter()
        for _ in fine.predict(volume, sb):
            pass
        seconds = (time.perf_counter() - t) * len(boxes[view]) / max(1, len(sb))
        fine_total += seconds
        print(f"fine {view}: {len(boxes[view])} crops: {seconds:.1f} s "
              f"({'all timed' if len(sb) == len(boxes[view]) else f'scaled from {len(sb)}'})")
    t = time.perf_counter()
    fine_round(volume, lambda v, b: np.full(b.shape[:3], 0.9, np.float32), z0, args.margin)
    fusion = time.perf_counter() - t  # crops, paste-back, vote and components without the network
    round_seconds = fine_total + fusion
    print(f"one fine round: {round_seconds:.1f} s (network {fine_total:.1f} s, crop/fuse {fusion:.1f} s)")
    print(f"pipeline per volume: coarse {coarse_total:.1f} s + 1 round = {coarse_total + round_seconds:.1f} s; "
          f"+ {args.rounds:g} rounds = {coarse_total + args.rounds * round_seconds:.1f} s")
    print(f"peak memory: {peak_rss_mib():.0f} MiB resident")


if __name__ == "__main__":
    main()
