"""Times tfpanc.metrics.all_metrics on one CT-sized synthetic case.

The case: a 512x512x240 grid at 0.8x0.8x1.5 mm holding a bent, elongated
ellipsoid of about 80 mL (a pancreas-sized blob) as the label, and a copy
with a smoothly perturbed boundary, shifted by one voxel, as the prediction.
The target is all metrics in under 2 s per case.

    python tools/benchmark_metrics.py [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfpanc.metrics import all_metrics, overlap, surface  # noqa: E402

SHAPE = (512, 512, 240)
SPACING = (0.8, 0.8, 1.5)


def synthetic_case(seed=0):
    """(pred, label) boolean arrays of SHAPE."""
    rng = np.random.default_rng(seed)
    # Build in a sub-box (the organ's neighbourhood) and paste into the grid.
    sub = (200, 110, 60)
    x, y, z = np.meshgrid(*[(np.arange(n) - n / 2) * s for n, s in zip(sub, SPACING)],
                          indexing="ij")
    y_bent = y - 12.0 * np.sin(x / 25.0)  # a gentle S, like head-body-tail
    level = (x / 62.0) ** 2 + (y_bent / 17.0) ** 2 + (z / 18.0) ** 2 - 1.0
    label_sub = level <= 0
    dist = (ndimage.distance_transform_edt(~label_sub, sampling=SPACING)
            - ndimage.distance_transform_edt(label_sub, sampling=SPACING))
    noise = ndimage.gaussian_filter(rng.normal(size=sub), sigma=(6, 6, 3))
    pred_sub = dist + 2.5 * noise / noise.std() < 0.5
    label = np.zeros(SHAPE, bool)
    pred = np.zeros(SHAPE, bool)
    at = (150, 180, 90)
    label[tuple(slice(a, a + n) for a, n in zip(at, sub))] = label_sub
    pred[tuple(slice(a + 1, a + 1 + n) for a, n in zip(at, sub))] = pred_sub
    return pred, label


def _timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times), statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pred, label = synthetic_case(args.seed)
    print(f"grid {SHAPE} at {SPACING} mm; label {overlap.volume_ml(label, SPACING):.1f} mL, "
          f"prediction {overlap.volume_ml(pred, SPACING):.1f} mL")
    crop = surface.union_crop(pred, label)
    p, l = pred[crop], label[crop]
    parts = {
        "union bounding box (full grid)": lambda: surface.union_crop(pred, label),
        "overlap metrics (on the crop)": lambda: overlap.dice(p, l),
        "surface distances (on the crop)": lambda: surface.surface_distances(p, l, SPACING),
        "voxel distances for avd (on the crop)": lambda: surface.voxel_distances(p, l, SPACING),
        "abnormal shape changes (prediction)": lambda: surface.abnormal_shape_changes(p, SPACING),
    }
    for name, fn in parts.items():
        _, best, median = _timed(fn, args.repeats)
        print(f"  {name:40s} best {best:6.3f} s  median {median:6.3f} s")
    metrics, best, median = _timed(lambda: all_metrics(pred, label, SPACING), args.repeats)
    print(f"all_metrics on the full grid ({len(metrics)} metrics): best {best:.3f} s, "
          f"median {median:.3f} s over {args.repeats} runs (target < 2 s)")
    print("  " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
