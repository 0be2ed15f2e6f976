"""Writes a synthetic phantom dataset (MSD layout) to a folder.

    python -m tfpanc.data.phantom --output_dir D --num_cases N \
        [--shape 512,512,240] [--seed S] [--modality ct|mri]

``--shape`` is the number of voxels over the fixed 400 x 400 x 300 mm field
of view: a smaller shape gives coarser voxels of the same anatomy. Its
default is 512,512,240 for CT (0.78 x 0.78 x 1.25 mm) and 256,256,40 for MRI
(1.56 x 1.56 x 7.5 mm slices).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from absl import flags

from tfpanc import cli
from tfpanc.errors import InputError


def define_flags(fv):
    flags.DEFINE_string("output_dir", None, "folder to write imagesTr/, labelsTr/ and dataset.json into",
                        flag_values=fv)
    flags.DEFINE_integer("num_cases", None, "number of cases (>= 1)", flag_values=fv)
    flags.DEFINE_string("shape", None, "voxels x,y,z over the fixed field of view (default 512,512,240 for "
                        "CT, 256,256,40 for MRI)", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "dataset seed (>= 0)", flag_values=fv)
    flags.DEFINE_string("modality", "ct", "ct or mri", flag_values=fv)


def parse_shape(text):
    """``"512,512,240"`` -> ``(512, 512, 240)``; InputError naming ``--shape`` otherwise."""
    from tfpanc.data.phantom.case import MIN_EDGE

    try:
        shape = tuple(int(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        raise InputError("--shape", f"expected 3 comma-separated integers, got '{text}'") from None
    if len(shape) != 3 or min(shape) < MIN_EDGE:
        raise InputError("--shape", f"expected 3 integers each >= {MIN_EDGE}, got '{text}'")
    if shape[0] * shape[1] * shape[2] > 1024 ** 3:
        raise InputError("--shape", f"{text} is too large (more than 1024^3 voxels)")
    return shape


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    from tfpanc.data.phantom.case import DEFAULT_SHAPE, MODALITIES

    if not fv.output_dir:
        raise InputError("--output_dir", "is required")
    if fv.num_cases is None or fv.num_cases < 1:
        raise InputError("--num_cases", f"must be an integer >= 1, got {fv.num_cases}")
    if fv.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {fv.seed}")
    modality = fv.modality.lower()
    if modality not in MODALITIES:
        raise InputError("--modality", f"must be one of {', '.join(MODALITIES)}, got '{fv.modality}'")
    shape = parse_shape(fv.shape) if fv.shape else DEFAULT_SHAPE[modality]
    out = Path(fv.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out, f"cannot create folder: {e.strerror}") from None

    from tfpanc.data.phantom.dataset import write_dataset

    t0 = time.perf_counter()
    path = write_dataset(out, fv.num_cases, shape, fv.seed, modality,
                         log=lambda line: print(line, file=sys.stderr))
    print(f"wrote {fv.num_cases} {modality} cases of shape {shape} to {out} "
          f"({time.perf_counter() - t0:.1f} s); {path.name} lists them")


if __name__ == "__main__":
    cli.run_command(define_flags, main)
