r"""Latency of one CT through TF Serving's APIs against local predict, with the in-test server.

Exports a trained run of any method (``--model_dir``), or by default a
randomly initialised cai run (``write_random_run``: the weights do not change
the cost), serves it with ``tfpanc_tests/export/serving_stub.py``
on loopback, and prints for a synthetic abdomen CT of each ``--shape`` (or
the CT file ``--input``)
(median of ``--repeats`` after one warm-up call):

* the SavedModel's size, export time and ``tf.saved_model.load`` time,
* ``local``: the method's predictor in this process (what the served graph
  equals; ``predict --model_dir`` runs it),
* ``local pipeline``: that predictor inside ``predict``'s own steps (body crop
  and resampling to the training spacing, where the method does not do them
  itself): what ``predict --model_dir`` costs; every other case's mask is
  compared with its mask (DSC; the served graphs resample but do not crop),
* ``signature``: the loaded SavedModel's ``serving_default`` called in
  process (the served graph without transport),
* ``grpc`` (probability and mask) and ``grpc mask`` (``output_filter``: the
  mask and volume only, what ``predict --server`` asks without
  ``--probabilities``), ``rest instances`` and ``rest inputs``: through
  :mod:`tfpanc.export.client`, request and answer bytes included.

The stub runs in this process and shares its CPUs with the client, so the
transport figures include serialisation on both sides (as on one machine);
the stub is Python, so they bound what ``tensorflow_model_server`` (C++)
adds from above. Usage::

    python tools/benchmark_serving.py                                   # 128x128x48, pnet_msa_birnn K=2 F=8
    python tools/benchmark_serving.py --shape 128,128,48 --shape 512,512,240 --repeats 1
    python tools/benchmark_serving.py --model_dir=runs/two_stage_quick --input=ct.nii.gz
    python tools/benchmark_serving.py --model_dir=runs/zhou_quick --input=ct512.nii.gz --warmups=0 --repeats=1 \
        --cases="local pipeline,signature,grpc mask"
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tfpanc_tests' stub

import numpy as np  # noqa: E402
from bench_util import synthetic_ct  # noqa: E402


def timed(fn, repeats, warmups=1):
    """(median seconds of ``repeats`` calls after ``warmups`` untimed ones, the last call's answer)."""
    for _ in range(warmups):
        fn()  # tracing, first loads, connection set-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), answer


def answer_mask(answer):
    """The ``[x, y, z]`` bool mask of a predictor's, a signature's or a client's answer."""
    mask = np.asarray(answer["mask"])
    return (mask[0] if mask.ndim == 4 else mask) > 0



CASES = ("local", "local pipeline", "signature", "grpc", "grpc mask", "rest instances", "rest inputs")


def folder_mib(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2 ** 20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", help="x,y,z of the CT (repeatable; default 128,128,48)")
    parser.add_argument("--input", help="a CT file (NIfTI, DICOM folder) instead of the synthetic --shape ones")
    parser.add_argument("--model_dir", help="a trained run of any method (default: a random cai run)")
    parser.add_argument("--model", default="pnet_msa_birnn", help="cai --model of the random run")
    parser.add_argument("--num_units", type=int, default=2)
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip_rest", action="store_true", help="no REST (JSON of a 512^2 scan is ~1 GB)")
    parser.add_argument("--cases", help="comma-separated subset of " + ",".join(CASES) + " (default: all)")
    parser.add_argument("--warmups", type=int, default=1,
                        help="untimed calls before the timed ones (0: the one timed call includes tracing)")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split(",")) for s in (args.shape or ["128,128,48"])]
    wanted = args.cases.split(",") if args.cases else list(CASES)
    unknown = sorted(set(wanted) - set(CASES))
    if unknown or args.repeats < 1 or args.warmups < 0:
        parser.error(f"--cases: unknown {unknown}" if unknown else "--repeats >= 1 and --warmups >= 0")
    if args.skip_rest:
        wanted = [name for name in wanted if not name.startswith("rest")]

    import tensorflow as tf

    from tfpanc.export import export_run
    from tfpanc.export.client import connect
    from tfpanc.methods import registry
    from tfpanc.methods.cai.random_run import write_random_run
    from tfpanc.metrics.overlap import dice
    from tfpanc.predict import local_pipeline
    from tfpanc_tests.export.serving_stub import ServingStub

    root = Path(tempfile.mkdtemp(prefix="benchmark_serving_"))
    try:
        if args.model_dir:
            run, what = Path(args.model_dir), args.model_dir
        else:
            run = write_random_run(root / "run", args.model, num_units=args.num_units, filters=args.filters)
            what = f"random cai {args.model} K={args.num_units} F={args.filters}"
        method, info = registry.method_of_run(run)
        name = f"tfpanc_{method.name}"
        start = time.perf_counter()
        export = export_run(run, root / "base" / name / "1", log=lambda _: None)
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        signature = tf.saved_model.load(str(export)).signatures["serving_default"]
        load_s = time.perf_counter() - start
        print(f"{what}: SavedModel {folder_mib(export):.1f} MiB, export {export_s:.1f} s, load {load_s:.1f} s")
        options = method.predict_options() if method.predict_options else None
        if options is not None and hasattr(options, "crf"):
            options = dataclasses.replace(options, crf=False)  # the served graph is predict --nocrf
        local = method.call("predictor", run, info, options)
        pipeline = local_pipeline(local, method, info, log=lambda _: None)
        with ServingStub(root / "base") as stub:
            clients = {"grpc": connect(stub.grpc_address, name, protocol="grpc", timeout=3600)}
            for fmt in ("instances", "inputs"):
                if f"rest {fmt}" in wanted:
                    clients[f"rest {fmt}"] = connect(stub.rest_address, name, protocol="rest",
                                                     rest_format=fmt, timeout=3600)
            if args.input:
                from tfpanc.data.io import load_volume

                volume = load_volume(args.input)
                inputs = [(volume.array.astype(np.float32), tuple(float(v) for v in volume.spacing))]
            else:
                inputs = [(synthetic_ct(shape)[0].astype(np.float32), (0.8, 0.8, 2.5)) for shape in shapes]
            for ct, spacing in inputs:
                shape = ct.shape
                feed = {"ct": tf.constant(ct[None]), "spacing": tf.constant(np.float32([spacing]))}
                cases = {"local": lambda: local(ct, probability=True, spacing=spacing),
                         "local pipeline": lambda: pipeline(ct, probability=True, spacing=spacing),
                         "signature": lambda: {k: v.numpy() for k, v in signature(**feed).items()}}
                for name, client in clients.items():
                    cases[name] = lambda c=client: c.predict(ct, spacing)
                cases["grpc mask"] = lambda: clients["grpc"].predict(ct, spacing, ["mask", "volume_ml"])
                figures, masks = {}, {}
                for case in wanted:  # each figure as it comes: a 512x512x240 case takes minutes
                    figures[case], answer = timed(cases[case], args.repeats, args.warmups)
                    masks[case] = answer_mask(answer)
                    print(f"  {case}: {figures[case]:.2f} s, mask {int(masks[case].sum())} voxels", flush=True)
                reference = next((c for c in ("local pipeline", "local") if c in masks), None)
                if reference:  # the served graph predicts at the training spacing but without the body crop
                    print(f"  mask DSC against {reference}: " + ", ".join(
                        f"{c} {dice(m, masks[reference]):.4f}" for c, m in masks.items() if c != reference))
                print(f"{'x'.join(map(str, shape))} ({ct.nbytes / 2 ** 20:.0f} MiB float32): " +
                      ", ".join(f"{name} {s:.2f} s" for name, s in figures.items()))
                base = figures.get("local")
                if base:
                    print("  vs local: " + ", ".join(f"{name} {s / base:.2f}x" for name, s in figures.items()
                                                    if name != "local"))
            for client in clients.values():
                client.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
