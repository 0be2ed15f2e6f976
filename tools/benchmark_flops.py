r"""How close each method's network runs to this CPU's measured rate (issue #16's figure of merit).

Prints, on the active Keras backend (TensorFlow by default, as ``predict``):

* the machine's rates: a 3x3, 64-to-64-channel convolution on a 512x512 image
  and a 2048^3 matrix product, in GFLOP/s (``--precision=bfloat16`` too);
* for each method's network at the paper's size, one inference call as
  ``predict`` makes it (cai: PNet-MSA K=5, 64 channels, 2 slices of 512x512;
  zhou: FCN-8s on a 512x256 slice; two_stage: the depth-4, 32-channel 3D U-Net
  on its 128x128x64 fine patch; multitask: the dense C2 of configs/multitask/paper.cfg
  (16 channels, growth 8) on 16 windows of 64x64x16): GFLOP per call, seconds per call (median of compiled calls, the
  first excluded), achieved GFLOP/s, that as a share of the convolution rate,
  and CPU utilisation (process CPU time / wall time / cores).

The FLOPs are XLA's cost analysis of the network's jitted forward pass, in a
``KERAS_BACKEND=jax`` subprocess: TensorFlow's profiler counts no FLOPs for
``Conv3DTranspose`` (measured: 0 for a layer of 262,144), so it cannot count
the 3D U-Nets. XLA counts only the multiply-adds inside the image (not the
zero padding), so a 3x3 "same" convolution counts slightly under 18 FLOP
per output value and channel pair. Usage::

    python tools/benchmark_flops.py
    python tools/benchmark_flops.py --networks=cai --intra_op_threads=1   # thread settings (TF)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

NETWORKS = ("cai", "zhou", "two_stage", "multitask")


def build_network(name):
    """(model, input shape of one call) of a method's network at the paper's size."""
    if name == "cai":
        from tfpanc.models import PNetMSA

        return PNetMSA(num_units=5, filters=64), (2, 512, 512, 3)
    if name == "zhou":
        from tfpanc.models.fcn8s import FCN8s

        return FCN8s(), (1, 512, 256, 3)
    if name == "two_stage":
        from tfpanc.models import UNet3D

        return UNet3D(depth=4, filters=32, norm="batch"), (1, 128, 128, 64, 1)
    if name == "multitask":
        from tfpanc.methods.multitask.config import MultitaskConfig
        from tfpanc.methods.multitask.recipe import build_c2, c2_model_config

        # configs/multitask/paper.cfg's widths (the config class's defaults are wider).
        cfg = MultitaskConfig(filters=16, growth=8, model_dir="unused")
        return build_c2(c2_model_config(cfg)), (16, 64, 64, 16, 1)
    raise ValueError(name)


def count_flops(names):
    """{name: FLOPs of one call} from XLA's cost analysis (run under KERAS_BACKEND=jax)."""
    import jax

    out = {}
    for name in names:
        model, shape = build_network(name)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        forward = jax.jit(lambda x, m=model, t=trainable, n=non_trainable: m.stateless_call(t, n, x)[0])
        cost = forward.lower(jax.ShapeDtypeStruct(shape, np.float32)).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        out[name] = float(cost["flops"])
    return out


def flops_from_subprocess(names):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, __file__, "--count_only", "--networks", ",".join(names)],
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: counting FLOPs under JAX failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_call(fn, x, repeats):
    """(median seconds per call, CPU utilisation over the timed calls)."""
    fn(x)  # compile / warm up
    cores = len(os.sched_getaffinity(0))
    walls = []
    cpu0, wall0 = os.times(), time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        walls.append(time.perf_counter() - t)
    cpu1, wall = os.times(), time.perf_counter() - wall0
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return float(np.median(walls)), cpu / wall / cores


def machine_rates(dtype, repeats):
    """GFLOP/s of the reference convolution and matrix product in ``dtype``."""
    from keras import ops

    rng = np.random.default_rng(0)
    image = ops.convert_to_tensor(rng.random((1, 512, 512, 64), dtype=np.float32), dtype=dtype)
    kernel = ops.convert_to_tensor(rng.random((3, 3, 64, 64), dtype=np.float32), dtype=dtype)
    a = ops.convert_to_tensor(rng.random((2048, 2048), dtype=np.float32), dtype=dtype)
    conv = _compiled(lambda x: ops.conv(x, kernel, padding="same"))
    matmul = _compiled(lambda x: ops.matmul(x, a))
    conv_s, _ = timed_call(conv, image, repeats)
    matmul_s, _ = timed_call(matmul, a, repeats)
    return 2 * 512 * 512 * 64 * 64 * 9 / conv_s / 1e9, 2 * 2048 ** 3 / matmul_s / 1e9


def _compiled(fn):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(fn)
        return lambda x: compiled(x).numpy()
    if keras.backend.backend() == "jax":
        import jax

        compiled = jax.jit(fn)
        return lambda x: jax.block_until_ready(compiled(x))
    return fn


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16: Keras mixed_bfloat16, as predict --precision=bfloat16")
    parser.add_argument("--intra_op_threads", type=int, default=0, help="TensorFlow only; 0: its default")
    parser.add_argument("--inter_op_threads", type=int, default=0, help="TensorFlow only; 0: its default")
    parser.add_argument("--flops_cache", help="JSON file of the counts: read if present, else written "
                        "(the count compiles every network under JAX, about a minute)")
    parser.add_argument("--count_only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = [n for n in args.networks.split(",") if n]
    unknown = sorted(set(names) - set(NETWORKS))
    if unknown:
        sys.exit(f"error: --networks: unknown {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    if args.count_only:
        print(json.dumps(count_flops(names)))
        return

    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Thread pools are fixed at TensorFlow's first op, so these come first.
        if args.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
        if args.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
        threads = (tf.config.threading.get_intra_op_parallelism_threads(),
                   tf.config.threading.get_inter_op_parallelism_threads())
    elif args.intra_op_threads or args.inter_op_threads:
        sys.exit("error: --intra_op_threads: applies to the TensorFlow backend only")
    else:
        threads = ("default", "default")
    if args.flops_cache and os.path.exists(args.flops_cache):
        with open(args.flops_cache) as f:
            flops = json.load(f)
        missing = [n for n in names if n not in flops]
        flops.update(flops_from_subprocess(missing) if missing else {})
    else:
        flops = flops_from_subprocess(names)
    if args.flops_cache:
        with open(args.flops_cache, "w") as f:
            json.dump(flops, f)
    from bench_util import compiled_forward

    cores = len(os.sched_getaffinity(0))
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, {cores} cores, "
          f"intra/inter-op threads {threads[0]}/{threads[1]} (0: TensorFlow's default), {args.precision}")
    conv_rate, matmul_rate = machine_rates(args.precision, args.repeats)
    print(f"machine: 3x3 conv 64->64 on 512x512 {conv_rate:.1f} GFLOP/s, matmul 2048^3 {matmul_rate:.1f} GFLOP/s")
    if args.precision == "bfloat16":
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    print("| network | input per call | GFLOP per call | s per call | GFLOP/s | share of conv rate | CPU use |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name in names:
        keras.utils.set_random_seed(0)
        model, shape = build_network(name)
        forward = compiled_forward(model)
        seconds, use = timed_call(forward, rng.random(shape, dtype=np.float32), args.repeats)
        gflop = flops[name] / 1e9
        print(f"| {name} | {'x'.join(map(str, shape))} | {gflop:.1f} | {seconds:.3f} | {gflop / seconds:.1f} | "
              f"{gflop / seconds / conv_rate:.0%} | {use:.0%} |")


if __name__ == "__main__":
    main()
