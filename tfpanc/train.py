r"""Trains a method's models: ``python -m tfpanc.train --flagfile=configs/…``.

Flags come from a flagfile plus command-line overrides (the later wins), are
validated at start (one-line errors), and are recorded in the run directory
(``--model_dir``/flags.cfg). When ``--phantom_cases`` is set and
``--data_dir`` holds no cache yet, a phantom dataset is generated and
prepared there first, so one command takes a fresh machine to a trained,
evaluated model. ``--method=zhou --stage=all --view=all`` trains the six
models of a fold into ``--model_dir``/<stage>_<view>/ and writes
``--model_dir``/pipeline.json (see :mod:`tfpanc.methods.zhou`).

The same command runs under ``KERAS_BACKEND=jax``: nothing here imports
TensorFlow unless the backend is TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app

from tfpanc import flags as tfpanc_flags
from tfpanc.errors import InputError, run_cli
from tfpanc.training.callbacks import RunLog
from tfpanc.training.run_dir import RunDir


def ensure_data(cfg, log):
    """Makes and prepares a phantom cache at ``cfg.data_dir`` if asked to."""
    from tfpanc.data import cache as cache_lib

    data_dir = Path(cfg.data_dir)
    if (data_dir / cache_lib.CACHE_FILE).exists():
        return
    if cfg.phantom_cases <= 0:
        raise InputError(data_dir, "no tfpanc cache here: run python -m tfpanc.data.prepare, "
                         "or pass --phantom_cases=N to generate a phantom dataset")
    from tfpanc.data import phantom, prepare

    raw = data_dir.with_name(data_dir.name + "_nifti")
    log(f"no cache at {data_dir}: generating {cfg.phantom_cases} phantom cases of shape "
        f"{cfg.phantom_shape} into {raw}")
    phantom.write_dataset(raw, cfg.phantom_cases, cfg.phantom_shape, cfg.phantom_seed)
    prepare.prepare("phantom", raw, data_dir, log=log)


def main(argv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    cfg = tfpanc_flags.train_config()
    run = RunDir(cfg.model_dir)
    run.create(cfg.to_flagfile())
    log = RunLog(run.path / "train.log")
    import keras

    log(f"tfpanc.train: method {cfg.method}, model {cfg.model}, run dir {run.path}, "
        f"Keras {keras.__version__} on {keras.backend.backend()}")
    ensure_data(cfg, log)
    if cfg.method == "cai":
        from tfpanc.methods import cai as method
    elif cfg.method == "zhou":
        from tfpanc.methods import zhou as method
    else:  # flags validation keeps this unreachable
        raise InputError("--method", f"unknown method {cfg.method}")
    method.train(cfg, run, log)


if __name__ == "__main__":
    tfpanc_flags.define_train_flags()
    app.run(run_cli(main))
    sys.exit(0)
