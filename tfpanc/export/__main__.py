r"""Exports a trained cai run as a TF SavedModel for TF Serving.

Usage::

    python -m tfpanc.export --model_dir=runs/quickstart --export_dir=serving/tfpanc/1 \
        [--slice_size=N] [--threshold=T]

``--export_dir`` is created (it must not exist, or be empty); TF Serving
wants it to be a numbered version folder under the model's base path. The
signature ``serving_default`` takes ``ct``, float32 ``[n, x, y, z]`` raw CT in
HU (axes as ``tfpanc.data.io.load_volume``), and returns ``probability``
(float32) and ``mask`` (uint8) of the same shape; see
:mod:`tfpanc.export.serving`. Errors (no run.json, an MRI run, a bad size, an
existing export) end with one line and write nothing.
"""

from __future__ import annotations

import os
import sys

# A SavedModel is TensorFlow: pick its backend before Keras is imported.
os.environ["KERAS_BACKEND"] = "tensorflow"

from absl import app, flags, logging  # noqa: E402

from tfpanc.errors import InputError, run_cli  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model_dir", None, "A finished cai training run (holds run.json).")
    flags.DEFINE_string("export_dir", None, "SavedModel folder to create, e.g. serving/tfpanc/1.")
    flags.DEFINE_integer("slice_size", 0, "Pin the signature's in-plane size to N x N; 0 accepts any size.")
    flags.DEFINE_float("threshold", None, "Threshold of the mask output; default: the run's.")


def main(argv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("model_dir", "export_dir"):
        if not getattr(FLAGS, name):
            raise InputError(f"--{name}", "is required")
    if FLAGS.slice_size < 0:
        raise InputError("--slice_size", f"must be 0 (any size) or a positive size, got {FLAGS.slice_size}")
    logging.set_verbosity(logging.WARNING)  # TF's per-file save chatter
    from tfpanc.export.serving import export_run

    export_run(FLAGS.model_dir, FLAGS.export_dir, slice_size=FLAGS.slice_size or None,
               threshold=FLAGS.threshold)


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))
    sys.exit(0)
