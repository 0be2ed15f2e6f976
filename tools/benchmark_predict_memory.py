r"""Peak memory and time of ``python -m tfpanc.predict`` against the volume's slice count.

For each model configuration and each slice count Z, writes a synthetic
S x S x Z CT NIfTI (int16 HU: an air background, a soft-tissue body ellipse
with noise), makes a randomly initialised cai run
(:func:`tfpanc.methods.cai.random_run.write_random_run`: weights do not change
memory or time), runs ``python -m tfpanc.predict`` on it as a subprocess and
reads that child's own peak RSS (``ru_maxrss`` of ``os.wait4`` on its pid,
so earlier runs do not count).

Reading the figures: prediction feeds the CNN min(16, 2**25 / (S*S*filters))
slices at a time (:func:`tfpanc.methods.cai.networks.slices_per_call`), so a volume with fewer
slices than that runs a smaller batch and is not a fair "fixed cost" point.
Compare slice counts of at least one full batch: the growth between the last
two, divided by their difference, is the per-slice (O(volume)) cost, to set
against the arrays a volume needs (int16 input 0.5 MiB, float32
probabilities 1 MiB per 512 x 512 slice); the rest is fixed (Python,
TensorFlow, the model, one batch's activations).

Paper-scale inference (5 units, 64 channels) is ~6 s per 512 x 512 slice on a
2-core CPU, so time it on small slice counts; memory is what this tool is
for. Usage::

    nice -n 10 python tools/benchmark_predict_memory.py --configs=3x16 --slices=100,400
    nice -n 10 python tools/benchmark_predict_memory.py --configs=5x64 --slices=16,48 \
        --models=pnet_msa_birnn
    python tools/benchmark_predict_memory.py --configs=5x64 --slices=16 --base_slices=0 \
        --models=pnet_msa_birnn --predict_flags=--nobody_crop     # the whole field of view
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def synthetic_ct(path, size, slices, seed=0):
    """An int16 HU volume S x S x Z: air, a body ellipse (~40 HU) with noise."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    body = ((x - size / 2) / (0.42 * size)) ** 2 + ((y - size / 2) / (0.32 * size)) ** 2 <= 1
    image = np.empty((size, size, slices), np.int16)
    for k in range(slices):  # slice by slice: the generator itself stays small
        image[..., k] = np.where(body, 40, -1000) + rng.normal(0, 20, (size, size)).astype(np.int16)
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    nib.save(nib.Nifti1Image(image, affine), str(path))  # .nii: no gzip time in the figures
    return path


def run_measured(cmd, env=None):
    """(exit code, seconds, peak RSS MiB, output) of a subprocess, its own peak only."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    # Read the output while it runs (a full pipe would block it), then reap it with wait4,
    # whose rusage is this child's alone (RUSAGE_CHILDREN would keep the max over all runs).
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.time() - start, usage.ru_maxrss / 1024.0, output


def measure(run_dir, size, slices, workdir, model_label, extra=()):
    ct = synthetic_ct(workdir / f"ct_{size}_{slices}.nii", size, slices)
    mask = workdir / f"mask_{model_label}_{size}_{slices}.nii.gz"
    cmd = [sys.executable, "-m", "tfpanc.predict", f"--model_dir={run_dir}", f"--input={ct}", f"--output={mask}",
           "--noprogress", *extra]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code, seconds, peak, output = run_measured(cmd, env)
    ct.unlink()
    mask.unlink(missing_ok=True)
    if code != 0:
        raise SystemExit(f"predict failed ({code}) on {size}x{size}x{slices}:\n{output[-2000:]}")
    return seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="3x16", help="comma list of UNITSxFILTERS, e.g. 3x16,5x64")
    parser.add_argument("--models", default="pnet_msa_birnn,pnet_msa", help="cai models to run")
    parser.add_argument("--size", type=int, default=512, help="in-plane size S")
    parser.add_argument("--slices", default="100,400", help="comma list of slice counts Z")
    parser.add_argument("--base_slices", type=int, default=8,
                        help="an extra small volume measured first (0: none); below one batch "
                             "(8 slices at 512^2) it runs a smaller batch")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--predict_flags", default="", help="extra predict flags, space separated "
                        "(e.g. --nobody_crop to time the whole field of view)")
    args = parser.parse_args()
    slice_counts = ([args.base_slices] if args.base_slices else []) + [int(s) for s in args.slices.split(",")]
    sys.path.insert(0, str(REPO))
    from tfpanc.methods.cai.random_run import write_random_run

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        print(f"{'model':16s} {'K x F':>7s} {'volume':>14s} {'seconds':>8s} {'s/slice':>8s} {'peak RSS MiB':>13s}")
        for config in args.configs.split(","):
            units, filters = (int(v) for v in config.lower().split("x"))
            for model in args.models.split(","):
                run = write_random_run(workdir / f"run_{model}_{config}", model, units, filters)
                points = []
                for z in slice_counts:
                    seconds, peak = measure(run, args.size, z, workdir, model, args.predict_flags.split())
                    points.append((z, peak))
                    print(f"{model:16s} {config:>7s} {f'{args.size}x{args.size}x{z}':>14s} {seconds:8.1f} "
                          f"{seconds / z:8.3f} {peak:13.0f}", flush=True)
                if len(points) >= 2:
                    (z1, m1), (z2, m2) = points[-2], points[-1]
                    per_slice = (m2 - m1) / (z2 - z1)
                    print(f"  -> {per_slice:.2f} MiB per extra slice ({per_slice / (args.size ** 2 * 4 / 2 ** 20):.1f}"
                          f" float32 slice-equivalents); fixed part ~{m2 - per_slice * z2:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
