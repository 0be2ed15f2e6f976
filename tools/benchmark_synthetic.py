"""Synthetic generation speed against what training consumes (issue #17).

For each ladder rung's steps, renders ``--samples`` slices of ``--size``
pixels from the bank in one process (one core) and prints samples/s; then
times ``--train_steps`` optimizer steps of the synthetic configs' network
(PNet-MSA, 3 units, 16 filters, batch ``--batch_size``) on fixed arrays and
prints how many samples per second training takes, and so how many cores of
generation keep one training process fed.

Usage:
    python tools/benchmark_synthetic.py --bank cache/synthetic_bank --samples 100
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FLAGS = flags.FLAGS
flags.DEFINE_string("bank", "cache/synthetic_bank", "A built anatomy bank (train builds one on first use).")
flags.DEFINE_integer("samples", 100, "Samples rendered per step set.")
flags.DEFINE_integer("size", 128, "Output slice size.")
flags.DEFINE_integer("batch_size", 8, "Training batch.")
flags.DEFINE_integer("train_steps", 30, "Timed training steps (after 3 warm-up steps).")
flags.DEFINE_list("extra_steps", [], "More step sets to time beside the ladder's, each as steps joined by "
                  "'+' (e.g. hu+shapes,texture+shapes).")

LADDER = ((), ("intensity",), ("intensity", "resolution"), ("intensity", "resolution", "deformation"))


def generation_rate(bank, steps, samples, size):
    from tfpanc.data.synthetic.slice_generator import SliceGenerator

    gen = SliceGenerator(bank, steps, size=size, positive_fraction=0.7)
    for i in range(3):
        gen.render(np.random.default_rng([9, i]))
    t0 = time.process_time()
    for i in range(samples):
        gen.render(np.random.default_rng([0, i]))
    return samples / (time.process_time() - t0)


def training_rate(size, batch, steps):
    import keras

    from tfpanc.losses import deep_supervision_loss
    from tfpanc.models import PNetMSA, grow

    model = grow(grow(PNetMSA(num_units=1, filters=16)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=deep_supervision_loss("jac"))
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    y = (rng.random((batch, size, size, 1)) > 0.9).astype(np.float32)
    for _ in range(3):
        model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - t0)


def main(argv):
    del argv
    from tfpanc.data.synthetic.bank import AnatomyBank
    from tfpanc.data.synthetic.slice_generator import parse_steps
    from tfpanc.errors import InputError

    try:
        extra = tuple(parse_steps(text.replace("+", ",")) for text in FLAGS.extra_steps)
    except InputError as err:
        raise SystemExit(f"error: --extra_steps: {err.problem}") from None

    bank = AnatomyBank(FLAGS.bank)
    print(f"bank {FLAGS.bank}: {len(bank)} anatomies; {FLAGS.samples} samples of {FLAGS.size}x{FLAGS.size}x3 "
          "per step set, CPU time of this process")
    rates = {}
    for steps in LADDER + extra:
        rates[steps] = generation_rate(bank, steps, FLAGS.samples, FLAGS.size)
        print(f"  {'+'.join(steps) or 'phantom look':38s} {rates[steps]:6.1f} samples/s per core "
              f"({1000 / rates[steps]:.0f} ms/sample)")
    consumed = training_rate(FLAGS.size, FLAGS.batch_size, FLAGS.train_steps)
    slowest = min(rates.values())
    print(f"training (PNet-MSA K=3, 16 filters, batch {FLAGS.batch_size}, all cores): {consumed:.1f} samples/s")
    print(f"cores of generation per training process at the slowest rung: {consumed / slowest:.2f}")


if __name__ == "__main__":
    app.run(main)
