r"""Speed and memory of the cai networks: training and inference slices/s.

Prints, for PNet-MSA (K units, F channels) on S x S slices:
  * training slices/s (train_on_batch with the deeply supervised JAC loss),
  * inference slices/s and s per slice (compiled forward of a batch),
  * seconds for a S x S x Z volume: PNet-MSA (timed on --slices slices and
    scaled to Z unless --full), the BiRNN over the whole Z-slice sequence
    (always timed in full), and both,
  * peak resident memory of the process.

Forward passes are timed as compiled calls, not ``model.predict`` (whose
per-call overhead hides the network's speed): ``jax.jit`` of the stateless
call on JAX, ``tf.function`` on TensorFlow; the first (compiling) call is
excluded. Usage::

    python tools/benchmark_cai.py                       # paper size: K=5, 64 ch, 512x512x240
    KERAS_BACKEND=jax python tools/benchmark_cai.py --batch 16 --full
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_util import compiled_forward, peak_rss_mib


def timed(fn, x, repeats):
    fn(x)  # compile / warm up
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        best.append(time.perf_counter() - t)
    return float(np.median(best))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_units", type=int, default=5)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--depth", type=int, default=240, help="slices per volume")
    parser.add_argument("--batch", type=int, default=2, help="slices per inference call")
    parser.add_argument("--train_batch", type=int, default=2)
    parser.add_argument("--slices", type=int, default=8, help="slices timed for inference")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="time PNet-MSA over the whole volume")
    parser.add_argument("--skip_train", action="store_true")
    args = parser.parse_args()

    import keras

    from tfpanc.losses import deep_supervision_loss
    from tfpanc.models import BiRNNHead, PNetMSA

    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
    rng = np.random.default_rng(0)
    pnet = PNetMSA(num_units=args.num_units, filters=args.filters)
    print(f"PNet-MSA K={args.num_units} F={args.filters}: {pnet.count_params():,} parameters; "
          f"slices {args.size}x{args.size}, volume depth {args.depth}")

    if not args.skip_train:
        pnet.compile(optimizer=keras.optimizers.Adam(1e-3), loss=deep_supervision_loss("jac"))
        x = rng.random((args.train_batch, args.size, args.size, 3), dtype=np.float32)
        y = (rng.random((args.train_batch, args.size, args.size, 1)) > 0.9).astype(np.float32)
        pnet.train_on_batch(x, y)
        t = time.perf_counter()
        for _ in range(args.repeats):
            pnet.train_on_batch(x, y)
        per_step = (time.perf_counter() - t) / args.repeats
        print(f"training: {args.train_batch / per_step:.2f} slices/s ({per_step:.3f} s per batch of "
              f"{args.train_batch})")

    forward = compiled_forward(pnet, to_numpy=False)
    x = rng.random((args.batch, args.size, args.size, 3), dtype=np.float32)
    per_batch = timed(forward, x, args.repeats)
    per_slice = per_batch / args.batch
    print(f"inference: {1 / per_slice:.2f} slices/s, {per_slice:.4f} s per slice (batch {args.batch})")

    if args.full:
        n_calls = -(-args.depth // args.batch)
        t = time.perf_counter()
        for _ in range(n_calls):
            forward(x)
        pnet_volume = time.perf_counter() - t
        how = "timed over the whole volume"
    else:
        pnet_volume = per_slice * args.depth
        how = f"scaled from {args.batch}-slice batches"
    head = BiRNNHead(args.size, args.size)
    birnn = compiled_forward(head, to_numpy=False)
    seq = rng.random((1, args.depth, args.size, args.size, 1), dtype=np.float32)
    birnn_volume = timed(birnn, seq, max(1, args.repeats - 1))
    print(f"volume {args.size}x{args.size}x{args.depth}: PNet-MSA {pnet_volume:.2f} s ({how}), "
          f"BiRNN {birnn_volume:.2f} s (timed), both {pnet_volume + birnn_volume:.2f} s")
    print(f"peak memory: {peak_rss_mib():.0f} MiB resident")


if __name__ == "__main__":
    main()
