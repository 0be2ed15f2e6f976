"""Helpers shared by the benchmarks in tools/ (run them as ``python tools/<name>.py``)."""

from __future__ import annotations

import resource

import numpy as np

from tfpanc.inference.compiled import compiled_forward

__all__ = ["compiled_forward", "peak_rss_mib", "synthetic_ct"]


def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_ct(shape):
    """(int16 HU volume, bool pancreas) of an abdomen-like scan."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1
    pancreas = ((x - 0.1) / 0.22) ** 2 + ((y + 0.05) / 0.08) ** 2 + (z / 0.25) ** 2 <= 1
    image = np.where(body, np.int16(40), np.int16(-1000)) * np.ones(shape, np.int16)
    image[np.broadcast_to(pancreas, shape)] = 110
    return image, np.broadcast_to(pancreas, shape).copy()
