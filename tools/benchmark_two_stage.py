r"""Seconds and peak memory of two_stage prediction per volume, and its training input rate.

Writes a two_stage run with random weights at the widths of
``configs/two_stage/paper.cfg`` (3D U-Net depth 4, 32 channels, fine patch
128x128x64, R = 4) and a synthetic CT NIfTI of ``--size`` x ``--size`` x
``--depth`` (an abdomen-sized body of soft tissue with a pancreas-sized
bright ellipsoid), then times ``python -m tfpanc.predict``'s path in this
process: read the NIfTI, the coarse U-Net on the 1/4 volume, both boxes'
fine windows, the vote, write the mask. Random weights give a random coarse
mask, so the coarse network runs (and is timed) but the boxes come from the
ellipsoid's 1/4 mask, as a trained model's would. Peak RSS is the process's
high-water mark.

Then the training input: patches/s of the fine stage's tf.data pipeline
(:class:`tfpanc.data.sampling3d.PatchSampler` over a two-case cache of the
same size, parallel map, prefetch) against training steps/s of the fine
U-Net on those patches: the pipeline must outrun the model. Usage::

    python tools/benchmark_two_stage.py                      # 512x512x240 on this CPU
    KERAS_BACKEND=jax python tools/benchmark_two_stage.py    # the same on JAX (GPU when present)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_util import peak_rss_mib, synthetic_ct

REPO = Path(__file__).resolve().parents[1]


def write_random_run(root, args, volume_shape):
    import keras

    from tfpanc.data.preprocess import decimated_shape, round_up
    from tfpanc.models import UNet3D
    from tfpanc.training.run_dir import RunDir

    keras.utils.set_random_seed(0)
    run = RunDir(root)
    run.path.mkdir(parents=True, exist_ok=True)
    for stage in ("coarse", "fine"):
        (run.path / stage).mkdir(exist_ok=True)
        UNet3D(depth=args.depth_unet, filters=args.filters, norm="batch").save_weights(
            run.path / stage / f"{stage}.weights.h5")
    frame = [round_up(n, 2 ** args.depth_unet) for n in decimated_shape(volume_shape, 4)]
    run.write_run_info({
        "method": "two_stage", "model": "unet3d", "depth": args.depth_unet, "filters": args.filters,
        "norm": "batch", "modality": "ct", "window": [-100.0, 240.0], "decimation": 4, "threshold": 0.5,
        "coarse_weights": "coarse/coarse.weights.h5", "coarse_frame": frame,
        "fine_weights": "fine/fine.weights.h5", "fine_patch": list(args.patch),
        "coarse_box_margin": 2, "fine_margin": 10, "fold": 0, "data_dir": "", "split": {}})
    return run.path


def time_prediction(run_dir, ct_path, out_path, label):
    from tfpanc.data import io
    from tfpanc.data.preprocess import decimate_label
    from tfpanc.methods.two_stage.predictor import TwoStagePredictor

    predictor = TwoStagePredictor.load(run_dir)
    low_label = decimate_label(label, 4).astype(np.float32)
    real_coarse = predictor.coarse_probability
    timings = {}

    def coarse_probability(image, stats):  # the real network runs; the boxes come from the label
        t = time.perf_counter()
        real_coarse(image, stats)
        timings["coarse"] = time.perf_counter() - t
        return low_label

    predictor.coarse_probability = coarse_probability
    start = time.perf_counter()
    volume = io.load_volume(ct_path)
    t_read = time.perf_counter() - start
    out = predictor(volume.array, spacing=volume.spacing)
    t_pred = time.perf_counter() - start - t_read
    io.save_volume(out["mask"].astype(np.uint8), volume.geometry, out_path)
    total = time.perf_counter() - start
    return {"read": t_read, "coarse": timings["coarse"], "fine+vote": t_pred - timings["coarse"],
            "write": total - t_read - t_pred, "total": total, "boxes": out["summary"]}


def time_training_input(root, image, label, patch, steps, depth_unet, filters):
    import keras

    from tfpanc.data import cache as cache_lib
    from tfpanc.data.intensity import IntensityNormalizer
    from tfpanc.data.io import Geometry
    from tfpanc.data.sampling3d import PatchSampler
    from tfpanc.methods.two_stage.losses import DiceCenterLoss
    from tfpanc.models import UNet3D
    from tfpanc.training.fit import make_input

    ids = []
    for i in range(2):
        cid = f"case_{i}"
        cache_lib.write_case(root, cid, np.roll(image, 7 * i, axis=0), np.roll(label, 7 * i, axis=0).astype(np.uint8),
                             Geometry.from_spacing(image.shape, (0.8, 0.8, 1.5)))
        ids.append(cid)
    cache_lib.write_index(root, "bench", ids, "ct", "synthetic")
    cache = cache_lib.CaseCache(root)
    sampler = PatchSampler(cache, ids, patch, positive_fraction=0.0, roi_margin=10,
                           normalizer=IntensityNormalizer("ct"))
    data = iter(make_input(sampler, 1, steps))
    next(data)
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(data)
    pipeline = steps / (time.perf_counter() - start)
    model = UNet3D(depth=depth_unet, filters=filters, norm="batch")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=DiceCenterLoss())
    x, y = np.asarray(x), np.asarray(y)
    model.train_on_batch(x, y)  # compile
    n = max(1, steps // 8)
    start = time.perf_counter()
    for _ in range(n):
        model.train_on_batch(x, y)
    return pipeline, n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--depth", type=int, default=240, help="slices of the volume")
    parser.add_argument("--depth_unet", type=int, default=4)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--patch", type=lambda s: tuple(int(v) for v in s.split(",")), default=(128, 128, 64))
    parser.add_argument("--train_steps", type=int, default=16, help="patches read to time the pipeline")
    parser.add_argument("--skip_training", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import keras
    import nibabel as nib

    shape = (args.size, args.size, args.depth)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image, label = synthetic_ct(shape)
        nib.save(nib.Nifti1Image(image, np.diag([0.8, 0.8, 1.5, 1.0])), str(tmp / "ct.nii.gz"))
        run = write_random_run(tmp / "run", args, shape)
        t = time_prediction(run, tmp / "ct.nii.gz", tmp / "mask.nii.gz", label)
        print(f"two_stage predict on {'x'.join(map(str, shape))} ({keras.backend.backend()}, 3D U-Net depth "
              f"{args.depth_unet}, {args.filters} channels, fine patch {args.patch}):")
        print(f"  read {t['read']:.1f} s, coarse {t['coarse']:.1f} s, fine + vote {t['fine+vote']:.1f} s, "
              f"write {t['write']:.1f} s; total {t['total']:.1f} s per volume; peak RSS "
              f"{peak_rss_mib():.0f} MiB")
        print(f"  {t['boxes']}")
        if not args.skip_training:
            pipeline, model = time_training_input(tmp / "cache", image, label, args.patch, args.train_steps,
                                                  args.depth_unet, args.filters)
            print(f"training input: tf.data/PyDataset {pipeline:.1f} patches/s of {args.patch}; the fine U-Net "
                  f"trains {model:.2f} steps/s at batch 1 -> the pipeline is "
                  f"{pipeline / model:.0f}x faster than the model")


if __name__ == "__main__":
    main()
