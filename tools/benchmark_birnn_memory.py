r"""Peak memory of cai's BiRNN pass per 512 x 512 slice (issue #16: bounded memory).

Usage::

    python tools/benchmark_birnn_memory.py [--size 512] [--slices 8,64] [--chunk 16]

Runs :class:`tfpanc.methods.cai.birnn_over_volume.BiRNNOverVolume` over
random probability volumes of each slice count, each in a fresh process,
and prints the peak RSS above the process's footprint with its input
allocated, then the growth per slice between the two counts (the input
itself is not in it). The BiRNN's cost does not depend on its weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _one(size, slices, chunk):
    import numpy as np

    from tfpanc.methods.cai.birnn_over_volume import BiRNNOverVolume
    from tfpanc.models import BiRNNHead

    smooth = BiRNNOverVolume(BiRNNHead(8, 8), chunk_slices=chunk)
    volume = np.random.default_rng(0).random((size, size, slices), dtype=np.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.time()
    smooth(volume)
    print(json.dumps({"slices": slices, "base_mib": base, "seconds": time.time() - start,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", default="8,64")
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return _one(args.size, args.one, args.chunk)
    rows = []
    for n in (int(v) for v in args.slices.split(",")):
        out = subprocess.run([sys.executable, __file__, f"--size={args.size}", f"--one={n}", f"--chunk={args.chunk}"],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{n} slices of {args.size}^2: peak {r['peak_mib']:.0f} MiB ({r['peak_mib'] - r['base_mib']:.0f} MiB "
              f"above the loaded input), {r['seconds']:.1f} s ({r['seconds'] / n:.2f} s/slice)")
    a, b = rows[0], rows[-1]
    growth = ((b["peak_mib"] - b["base_mib"]) - (a["peak_mib"] - a["base_mib"])) / (b["slices"] - a["slices"])
    print(f"growth beyond the input: {growth:.1f} MiB per slice (chunk {args.chunk} slices)")


if __name__ == "__main__":
    main()
