"""Helpers shared by the benchmarks in tools/ (run them as ``python tools/<name>.py``)."""

from __future__ import annotations

import resource

from tfpanc.inference.compiled import compiled_forward  # noqa: F401 (the benchmarks import it from here)


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
