r"""Exports a trained run as a TF SavedModel for TF Serving.

Usage::

    python -m tfpanc.export --model_dir=runs/quickstart --export_dir=serving/tfpanc \
        [--version=N] [--slice_size=N] [--threshold=T]

``--export_dir`` is the model's base path in TF Serving; the SavedModel is
written to its version folder ``<export_dir>/<N>`` (``--version``, default
one more than the highest there), atomically. An existing version is
refused (TF Serving treats versions as immutable), and so is an
``--export_dir`` that is itself a number (the old layout, which took the
version folder). The signature is :mod:`tfpanc.export.savedmodel`'s contract
(``ct`` and ``spacing`` in; ``probability``, ``mask``, ``volume_ml`` out). The
run's method provides the serving graph and its flags (cai: ``--slice_size``
pins the in-plane size, ``--threshold`` the mask's threshold; see
:mod:`tfpanc.methods.cai.serving`). A method without an export, a flag of
another method, no run.json, an MRI run of a method other than cai, a bad
size or an existing export end with one line and write nothing.
"""

from __future__ import annotations

import dataclasses
import os

# A SavedModel is TensorFlow: pick its backend before Keras is imported.
os.environ["KERAS_BACKEND"] = "tensorflow"

from absl import flags, logging  # noqa: E402

from tfpanc import cli  # noqa: E402
from tfpanc.errors import InputError  # noqa: E402
from tfpanc.export import export_model  # noqa: E402
from tfpanc.methods import registry  # noqa: E402


def define_flags(fv):
    flags.DEFINE_string("model_dir", None, "A finished training run (holds run.json).", flag_values=fv)
    flags.DEFINE_string("export_dir", None, "The model's folder in TF Serving's base path, e.g. "
                        "serving/tfpanc; the export goes to its version subfolder.", flag_values=fv)
    flags.DEFINE_integer("version", None, "Version number to write (default: the next free one).",
                         flag_values=fv)
    registry.define_method_flags("export", fv)


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("model_dir", "export_dir"):
        if not getattr(fv, name):
            raise InputError(f"--{name}", "is required")
    method, _ = registry.method_of_run(fv.model_dir)
    options = registry.options_from_flags(method, "export", fv)
    logging.set_verbosity(logging.WARNING)  # TF's per-file save chatter
    export_model(fv.model_dir, fv.export_dir, fv.version,
                 **({} if options is None else dataclasses.asdict(options)))


if __name__ == "__main__":
    cli.run_command(define_flags, main)
