"""Throughput and memory of tfpanc's samplers on a cache of full-size CT cases.

Builds (or reuses) a cache of synthetic 512x512x240 int16 CT volumes with a
blob "pancreas" in ``--work_dir`` through the cache writer, then, for every
sampler configuration and every case count in ``--case_counts``, runs a fresh
process that draws ``--samples`` samples and reports samples/s and memory:

* ``peak_rss``: the process's peak RSS (``VmHWM``; ``getrusage``'s maxrss
  is not used because Linux carries it over from the parent across exec).
  It includes the pages of the memory-mapped cache that are mapped while a
  sample is read (file-backed, shared with the page cache);
* ``+peak``: peak RSS minus the RSS after imports and sampler set-up;
* ``heap``: peak of Python/numpy allocations while sampling (tracemalloc);
* ``anon``: anonymous RSS at the end, i.e. memory the process owns.

Memory that does not grow between 2 and 10 cases shows that samplers keep
nothing per case but metadata. The page cache is warm (the cases were just
written or read), so these are in-memory read speeds, not disk speeds.

Usage:
    python tools/benchmark_sampling.py --work_dir /tmp/tfpanc_bench --samples 100
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "/tmp/tfpanc_bench_cache", "cache folder (created, or reused if complete)")
flags.DEFINE_integer("num_cases", 10, "cases in the cache")
flags.DEFINE_list("shape", ["512", "512", "240"], "case shape x,y,z")
flags.DEFINE_integer("samples", 100, "samples timed per configuration")
flags.DEFINE_list("case_counts", ["2", "10"], "numbers of cases the sampler draws from")
flags.DEFINE_list("configs", None, "configurations to run (default: all)")
flags.DEFINE_string("child", None, "internal: run one 'config:num_cases' measurement")


def _samplers():
    from tfpanc.data import sampling as s
    from tfpanc.data import sampling3d as s3
    from tfpanc.data.sampler_base import MarginRange

    return {
        "2d_axial_cai": lambda c, ids: s.SliceSampler(c, ids, "axial", size=(512, 512), positive_fraction=0.5),
        "2d_coronal_zhou": lambda c, ids: s.SliceSampler(c, ids, "coronal", min_pixels=100),
        "2d_sagittal_zhou": lambda c, ids: s.SliceSampler(c, ids, "sagittal", min_pixels=100),
        "2d_crop_zhou_fine": lambda c, ids: s.SliceCropSampler(c, ids, "axial", margin=MarginRange(0, 60)),
        "2d_run8_cai_rnn": lambda c, ids: s.SliceRunSampler(c, ids, "axial", length=8, size=(512, 512),
                                                             positive_fraction=0.5),
        "3d_patch_64x64x16": lambda c, ids: s3.PatchSampler(c, ids, (64, 64, 16), positive_fraction=0.5),
        "3d_patch_160x160x64": lambda c, ids: s3.PatchSampler(c, ids, (160, 160, 64), positive_fraction=0.5),
        "3d_boxcrop_128x128x64": lambda c, ids: s3.BoxCropSampler3D(c, ids, margin=MarginRange(0, 10),
                                                                    size=(128, 128, 64)),
    }


def synthetic_case(rng, shape):
    """An int16 CT-like volume (noisy elliptic body, air outside) and a blob label."""
    import numpy as np

    x, y = np.ogrid[:shape[0], :shape[1]]
    body = ((x - shape[0] / 2) / (0.4 * shape[0])) ** 2 + ((y - shape[1] / 2) / (0.3 * shape[1])) ** 2 < 1
    image = np.full(shape, -1000, np.int16)
    image[body] = rng.integers(-150, 250, (int(body.sum()), shape[2]), dtype=np.int16)
    label = np.zeros(shape, np.uint8)
    centre = np.asarray(shape) // 2 + rng.integers(-20, 21, 3)
    radii = np.array([40, 25, 30])
    lo = np.maximum(centre - radii, 0)
    hi = np.minimum(centre + radii + 1, shape)
    g = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    blob = sum(((gi - c) / r) ** 2 for gi, c, r in zip(g, centre, radii)) < 1
    label[tuple(slice(a, b) for a, b in zip(lo, hi))] = blob
    return image, label


def ensure_cache(root, num_cases, shape):
    import numpy as np

    from tfpanc.data.cache import CaseCache, write_case, write_index
    from tfpanc.data.io import Geometry

    root = Path(root)
    ids = [f"bench_{i:03d}" for i in range(num_cases)]
    made = 0
    for i, cid in enumerate(ids):
        meta = root / "cases" / cid / "meta.json"
        if meta.exists() and json.loads(meta.read_text())["shape"] == list(shape):
            continue
        image, label = synthetic_case(np.random.default_rng(i), shape)
        write_case(root, cid, image, label, Geometry.from_spacing(shape, (0.8, 0.8, 1.5)))
        made += 1
    write_index(root, "benchmark", ids, "ct", "synthetic")
    return CaseCache(root), made


def _proc_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024.0  # MiB
    return out


def run_child(spec):
    from tfpanc.data.cache import CaseCache

    name, count = spec.split(":")
    cache = CaseCache(FLAGS.work_dir)
    sampler = _samplers()[name](cache, cache.case_ids[:int(count)])
    sampler.sample(0, epoch=0)  # warm-up (imports, first open)
    base = _proc_status()["VmRSS"]
    t = time.perf_counter()
    for i in range(FLAGS.samples):
        arrays = sampler.sample(i, epoch=1)
    dt = time.perf_counter() - t
    # A second, traced pass (tracemalloc slows allocation, so it is not timed).
    tracemalloc.start()
    for i in range(min(FLAGS.samples, 20)):
        sampler.sample(i, epoch=2)
    heap_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    end = _proc_status()
    print(json.dumps({"config": name, "cases": int(count), "samples_per_s": FLAGS.samples / dt,
                      "peak_rss_mib": end["VmHWM"], "rss_after_setup_mib": base, "heap_peak_mib": heap_peak,
                      "anon_end_mib": end["RssAnon"], "file_end_mib": end["RssFile"],
                      "shapes": [list(a.shape) for a in arrays]}))


def main(argv):
    del argv
    if FLAGS.child:
        run_child(FLAGS.child)
        return
    shape = tuple(int(s) for s in FLAGS.shape)
    t = time.perf_counter()
    cache, made = ensure_cache(FLAGS.work_dir, FLAGS.num_cases, shape)
    print(f"cache {FLAGS.work_dir}: {len(cache.case_ids)} cases of {shape} int16 "
          f"({made} written in {time.perf_counter() - t:.0f} s); {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; "
          f"{FLAGS.samples} samples per row, one process per row")
    configs = FLAGS.configs or list(_samplers())
    header = (f"{'config':24s} {'cases':>5s} {'samples/s':>10s} {'peak_rss':>9s} {'+peak':>7s} {'heap':>7s} "
              f"{'anon':>7s}  output shapes")
    print(header)
    print("-" * len(header))
    for name in configs:
        for count in FLAGS.case_counts:
            cmd = [sys.executable, __file__, f"--work_dir={FLAGS.work_dir}", f"--samples={FLAGS.samples}",
                   f"--child={name}:{count}"]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
            if out.returncode != 0:
                print(f"{name:24s} {count:>5s} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name:24s} {r['cases']:5d} {r['samples_per_s']:10.1f} {r['peak_rss_mib']:7.0f}Mi "
                  f"{r['peak_rss_mib'] - r['rss_after_setup_mib']:5.0f}Mi {r['heap_peak_mib']:5.0f}Mi "
                  f"{r['anon_end_mib']:5.0f}Mi  "
                  f"{' '.join('x'.join(map(str, s)) for s in r['shapes'])}", flush=True)


if __name__ == "__main__":
    app.run(main)
