r"""Mixed bfloat16 against float32 prediction: seconds per case and the masks' agreement.

For each held-out case of a finished run (its ``split.json`` test cases, or
``--cases``), runs ``python -m tfpanc.predict`` in-process once per
precision and prints, per case: seconds of each, the DSC of the bfloat16
mask against the float32 one (the issue asks >= 0.99), the largest
probability difference, each mask's DSC against the label, and the CPU
utilisation (process CPU seconds / wall seconds / cores).

Usage::

    python tools/benchmark_precision.py --model_dir=runs/multitask_quick \
        --images=cache/multitask_quick_nifti/imagesTr --labels=cache/multitask_quick_nifti/labelsTr

Prints whether this CPU has bfloat16 units (AVX512_BF16 / AMX): without
them bfloat16 is emulated and slower than float32.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def _cpu_bf16():
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return ", ".join(found) if found else "none"


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _dsc(a, b):
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--images", required=True, help="folder of <case>.nii.gz images")
    parser.add_argument("--labels", help="folder of <case>.nii.gz labels (for DSC against the label)")
    parser.add_argument("--cases", help="comma-separated case ids; default: the run's test cases")
    parser.add_argument("--extra", default="", help="extra predict flags, space separated")
    args = parser.parse_args()

    from tfpanc import cli, predict

    cases = args.cases.split(",") if args.cases else json.loads(
        (Path(args.model_dir) / "split.json").read_text())["test"]
    print(f"run {args.model_dir}; CPU bfloat16 units: {_cpu_bf16()}")
    print("case | float32 s | bfloat16 s | DSC bf16 vs fp32 | max |dp| | DSC fp32 / bf16 vs label")
    out = Path(tempfile.mkdtemp(prefix="tfpanc-precision-"))
    agreement = []
    for case in cases:
        seconds, busy, masks, probs = {}, {}, {}, {}
        for precision in ("float32", "bfloat16"):
            mask, prob = out / f"{case}_{precision}_mask.nii.gz", out / f"{case}_{precision}_prob.nii.gz"
            start, cpu = time.perf_counter(), _cpu_seconds()
            code = cli.invoke(predict.define_flags, predict.main,
                              [f"--model_dir={args.model_dir}", f"--input={Path(args.images) / (case + '.nii.gz')}",
                               f"--output={mask}", f"--probabilities={prob}", f"--precision={precision}",
                               "--noprogress", *args.extra.split()])
            if code != 0:
                raise SystemExit(f"predict failed on {case} ({precision})")
            seconds[precision] = time.perf_counter() - start
            busy[precision] = (_cpu_seconds() - cpu) / seconds[precision] / os.cpu_count()
            masks[precision] = np.asarray(nib.load(str(mask)).dataobj) > 0
            probs[precision] = np.asarray(nib.load(str(prob)).dataobj, np.float32)
        agree = _dsc(masks["bfloat16"], masks["float32"])
        agreement.append(agree)
        vs_label = ""
        if args.labels:
            label = np.asarray(nib.load(str(Path(args.labels) / (case + ".nii.gz"))).dataobj) > 0
            vs_label = f"{_dsc(masks['float32'], label):.3f} / {_dsc(masks['bfloat16'], label):.3f}"
        print(f"{case} | {seconds['float32']:.1f} ({100 * busy['float32']:.0f} % CPU) | "
              f"{seconds['bfloat16']:.1f} ({100 * busy['bfloat16']:.0f} % CPU) | {agree:.4f} | "
              f"{float(np.abs(probs['float32'] - probs['bfloat16']).max()):.3f} | {vs_label}", flush=True)
    print(f"lowest DSC bfloat16 vs float32: {min(agreement):.4f} over {len(agreement)} cases "
          f"({'holds' if min(agreement) >= 0.99 else 'below'} the 0.99 bar)")


if __name__ == "__main__":
    main()
