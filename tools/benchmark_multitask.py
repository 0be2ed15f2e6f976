r"""Seconds and peak memory of multitask prediction per volume, part by part, and the window loop's cost.

Builds C1 and C2 with random weights at the widths of
``configs/multitask/paper.cfg`` (C1: 3D U-Net, 3 poolings, 32 channels; C2:
multitask dense 3D U-Net, 5 levels, 16 channels + growth 8, patch
16x64x64 = 64,64,16) and a synthetic CT of ``--size`` x ``--size`` x
``--depth`` at 0.8 x 0.8 x 1.5 mm (an abdomen-sized body of soft tissue with
a pancreas-sized bright ellipsoid), then times the predictor's parts on it:
resampling to 1 mm and the body crop, C1 on the 1/4 volume, C2's sliding
window over the 128x224x224 region at ``--step`` (paper 4x16x16), the 3D
dense CRF, and the paste back onto the input grid. Random weights give a
random C1 mask, so C1 runs (and is timed) but the region is centred on the
ellipsoid, as a trained model's would be. Peak RSS is the process's
high-water mark.

Then the window loop's overhead, measured directly: the same sliding window
over the region with C2 replaced by a function answering zeros (cutting,
normalising, padding and averaging, no network), as a share of the real
sliding window's seconds; and C2's compiled forward alone (windows per
second of the network). ``--loop_only`` skips the whole-volume prediction
and prints those two (an estimate of the sliding window from them: windows /
network rate + loop). Usage::

    python tools/benchmark_multitask.py                          # 512x512x240, step 4x16x16, this CPU
    python tools/benchmark_multitask.py --step=8x32x32           # the paper's coarsest step
    python tools/benchmark_multitask.py --loop_only              # the loop's cost in a minute
    KERAS_BACKEND=jax python tools/benchmark_multitask.py        # JAX (the GPU when present)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_util import compiled_forward, peak_rss_mib, synthetic_ct

from tfpanc.inference.sliding_window import PatchGrid


def build_predictor(args):
    import keras

    from tfpanc.methods.multitask.config import MultitaskConfig
    from tfpanc.methods.multitask.predictor import MultitaskPredictor
    from tfpanc.methods.multitask.recipe import (build_c1, build_c2, c1_model_config, c2_model_config,
                                                 prediction_record)

    keras.utils.set_random_seed(0)
    cfg = MultitaskConfig(filters=args.filters, growth=args.growth, step=args.step, model_dir="unused")
    info = prediction_record(cfg)
    c2 = build_c2(c2_model_config(cfg))
    return MultitaskPredictor(build_c1(c1_model_config(cfg)), c2, info, window_batch=args.window_batch), c2, cfg


def main():
    from tfpanc.methods.multitask.config import paper_label, parse_paper_size

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--depth", type=int, default=240, help="slices of the volume")
    parser.add_argument("--step", type=lambda s: parse_paper_size(s, "--step"), default=(16, 16, 4),
                        help="C2 step DxHxW (the paper's order), default 4x16x16")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--growth", type=int, default=8)
    parser.add_argument("--window_batch", type=int, default=16)
    parser.add_argument("--loop_only", action="store_true", help="time the window loop and the network only")
    args = parser.parse_args()
    import keras

    from tfpanc.methods.multitask.preprocess import label_to_model_grid, to_model_grid

    shape, spacing = (args.size, args.size, args.depth), (0.8, 0.8, 1.5)
    image, label = synthetic_ct(shape)
    predictor, c2, cfg = build_predictor(args)
    _, grid = to_model_grid(image, spacing, cfg.spacing, cfg.body_threshold)
    truth = label_to_model_grid(label, grid).astype(bool)
    real_c1 = predictor.c1_mask
    c1_seconds = {}

    def c1_mask(crop_image):  # the network runs; the region comes from the ellipsoid
        t = time.perf_counter()
        real_c1(crop_image)
        c1_seconds["c1"] = time.perf_counter() - t
        return truth

    predictor.c1_mask = c1_mask
    # Compile both networks outside the timing.
    predictor._c1_forward(np.zeros((4,) + cfg.c1_patch + (1,), np.float32))
    predictor._c2_forward(np.zeros((args.window_batch,) + cfg.patch + (1,), np.float32))
    parts = None
    if not args.loop_only:
        start = time.perf_counter()
        out = predictor(image, spacing=spacing)
        total = time.perf_counter() - start
        parts = dict(out["seconds_by_part"], c1=c1_seconds["c1"])
        print(f"multitask predict on {'x'.join(map(str, shape))} at 0.8 x 0.8 x 1.5 mm "
              f"({keras.backend.backend()}, C2 {cfg.filters} channels + growth {cfg.growth}, patch "
              f"{paper_label(cfg.patch)}, step {paper_label(cfg.step)}, {out['windows']} windows of "
              f"{args.window_batch} a call):")
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()) + f"; total {total:.1f} s per volume; "
              f"peak RSS {peak_rss_mib():.0f} MiB")
    forward = compiled_forward(c2)
    batch = np.random.default_rng(0).standard_normal((args.window_batch,) + cfg.patch + (1,)).astype(np.float32)
    forward(batch)
    reps = 3
    t = time.perf_counter()
    for _ in range(reps):
        forward(batch)
    network = reps * args.window_batch / (time.perf_counter() - t)
    region = np.random.default_rng(1).normal(40.0, 100.0, cfg.region).astype(np.float32)
    channels = 2 if cfg.skeleton else 1
    predictor._c2_forward = lambda b: np.zeros(b.shape[:4] + (channels,), np.float32)
    t = time.perf_counter()
    predictor.c2_outputs(region, predictor.normalizer.stats(region))
    loop = time.perf_counter() - t
    windows = len(PatchGrid(cfg.region, cfg.patch, cfg.step))
    print(f"  C2 network alone {network:.2f} windows/s; the loop without the network {loop:.2f} s for "
          f"{windows} windows ({1000 * loop / windows:.2f} ms a window)")
    if parts is None:
        estimate = windows / network + loop
        print(f"  sliding window estimated at {estimate:.0f} s, of which the loop {100 * loop / estimate:.1f}%")
    else:
        print(f"  the loop is {100 * loop / parts['sliding_window']:.1f}% of the sliding window's "
              f"{parts['sliding_window']:.1f} s")


if __name__ == "__main__":
    main()
