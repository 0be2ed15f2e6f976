r"""Trains a method's models: ``python -m tfpanc.train --flagfile=configs/…``.

Flags come from a flagfile plus command-line overrides (the later wins).
``--method`` picks the method from :mod:`tfpanc.methods.registry`; its
config validates the flags at start (one-line errors; a flag only other
methods read is refused), and the resolved flags are recorded in the run
directory (``--model_dir``/flags.cfg). When ``--phantom_cases`` is set and
``--data_dir`` holds no cache yet, a phantom dataset is generated and
prepared there first, so one command takes a fresh machine to a trained,
evaluated model.

Every method goes through the same steps here: the case split (training
cases, validation cases drawn from the training folds, the held-out fold;
:mod:`tfpanc.training.data_split`), the method's recipe, ``run.json``
(what the recipe returned, plus ``method`` and the split), then the
method's evaluation of the held-out fold under ``<model_dir>/eval``.

The same command runs under ``KERAS_BACKEND=jax``: nothing here imports
TensorFlow unless the backend is TensorFlow. ``--distribution`` trains
data-parallel (:mod:`tfpanc.training.distribution`); ``run.json`` then
records the replicas and the global batch.
"""

from __future__ import annotations

from pathlib import Path

from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.methods import registry
from tfpanc.output_paths import check_writable
from tfpanc.training.callbacks import RunLog
from tfpanc.training.run_dir import RunDir


def _is_phantom_folder(folder):
    import json

    try:
        return json.loads((folder / "dataset.json").read_text()).get("name") == "tfpanc-phantom"
    except (OSError, ValueError, AttributeError):
        return False


def check_data(cfg):
    """Refuses, before anything is written, a ``--data_dir`` that holds no cache and cannot get one.

    Returns:
        the folder a phantom would be generated into, or None when the cache exists.
    """
    from tfpanc.data import cache as cache_lib

    data_dir = Path(cfg.data_dir)
    if (data_dir / cache_lib.CACHE_FILE).exists():
        if cfg.phantom_cases > 0:
            # The phantom flags ask for a modality: a cache of the other one would train silently on it.
            modality = cache_lib.CaseCache(data_dir).modality
            if modality != cfg.phantom_modality:
                raise InputError("--phantom_modality", f"asks for {cfg.phantom_modality} phantom cases but "
                                 f"{data_dir} holds a {modality} cache; use another --data_dir")
        return None
    if cfg.phantom_cases <= 0:
        raise InputError(data_dir, "no tfpanc cache here: run python -m tfpanc.data.prepare, "
                         "or pass --phantom_cases=N to generate a phantom dataset")
    raw = data_dir.with_name(data_dir.name + "_nifti")
    if raw.exists() and (not raw.is_dir() or (any(raw.iterdir()) and not _is_phantom_folder(raw))):
        # The phantom would overwrite case files there: only a folder it made may be reused.
        raise InputError(raw, "exists and is not a tfpanc phantom folder; move it away or choose another "
                         "--data_dir")
    return raw


def ensure_data(cfg, log, raw):
    """Makes and prepares a phantom cache at ``cfg.data_dir`` from :func:`check_data`'s folder ``raw``."""
    if raw is None:
        return
    from tfpanc.data import phantom, prepare

    log(f"no cache at {cfg.data_dir}: generating {cfg.phantom_cases} {cfg.phantom_modality} phantom cases of "
        f"shape {cfg.phantom_shape} into {raw}")
    phantom.write_dataset(raw, cfg.phantom_cases, cfg.phantom_shape, cfg.phantom_seed, modality=cfg.phantom_modality)
    prepare.prepare("phantom", raw, Path(cfg.data_dir), log=log)


def run_training(method, cfg, log=None):
    """Trains ``cfg`` with ``method`` into ``cfg.model_dir``; returns the run.json record (or None).

    Under ``--distribution`` (:mod:`tfpanc.training.distribution`) the
    recipe runs inside the strategy's scope; with several workers only the
    chief writes ``cfg.model_dir`` and returns the record, every other
    worker trains in a private copy of it and returns None.
    """
    from tfpanc.training import distribution

    plan = distribution.plan(cfg)  # a user mistake ends here or in check_data, before the run folder is made
    if plan.cluster is not None and plan.cluster.index > 0:
        return _train_worker(method, cfg, distribution.setup(plan), log)
    raw = check_data(cfg)
    if raw is None:  # a cache is there already (a phantom always holds pancreas)
        from tfpanc.data.cache import CaseCache
        from tfpanc.training.data_split import check_training_labels

        check_training_labels(CaseCache(cfg.data_dir), cfg.fold)
    check_writable(cfg.model_dir, "--model_dir", folder_output=True)
    dist = distribution.setup(plan)  # devices first: before TensorFlow runs an op
    run = RunDir(cfg.model_dir)
    with run.lock():
        return _train_locked(method, cfg, run, dist, raw, log)


def _train_locked(method, cfg, run, dist, raw, log):
    from tfpanc.training import distribution
    from tfpanc.training.fit import start_training

    run.create(cfg.to_flagfile())
    log = log or RunLog(run.path / "train.log")
    import keras

    log(f"tfpanc.train: method {method.name}, model {cfg.model}, run dir {run.path}, "
        f"Keras {keras.__version__} on {keras.backend.backend()}")
    log(dist.describe(cfg))
    ensure_data(cfg, log, raw)
    data = start_training(cfg, run.path)
    dist.barrier("tfpanc.train: run set up")  # the other workers copy the run now
    with distribution.activate(dist):
        info = method.call("train", cfg, run, log, data)
    if info is None:
        return None
    info = {"method": method.name, **info, **data_record(data), "split": data.as_record(),
            "distribution": dist.record(cfg)}
    run.write_run_info(info)
    log(f"run complete: {run.path / 'run.json'}")
    if cfg.evaluate and data.test_ids and method.has("evaluate"):
        method.call("evaluate", run.path, data.cache, data.test_ids, log)
    return info


def data_record(data):
    """What ``run.json`` says about the training data: the data set, the voxel spacing, the orientation.

    ``training_spacing`` is the per-axis median of the training cases'
    spacings (nnU-Net's target spacing); ``predict`` resamples inputs to it
    (:mod:`tfpanc.inference.spacing`). Every cached case is in
    :func:`tfpanc.data.io.load_volume`'s closest-canonical RAS+ order, as
    every input to ``predict`` is brought to.
    """
    from tfpanc.inference.spacing import median_spacing

    return {"dataset": data.cache.info.get("dataset", "unknown"),
            "training_spacing": median_spacing([data.cache.case(c).spacing for c in data.train_ids]),
            "orientation": "RAS"}


def _train_worker(method, cfg, dist, log=None):
    """A non-chief worker: the chief's run, copied once it is set up, trained in a private folder."""
    import dataclasses
    import tempfile

    from tfpanc.training import distribution
    from tfpanc.training.fit import start_training

    dist.barrier("tfpanc.train: run set up")
    with tempfile.TemporaryDirectory(prefix=f"tfpanc-worker{dist.worker_index}-") as scratch:
        distribution.worker_run_dir(cfg.model_dir, scratch)
        cfg = dataclasses.replace(cfg, model_dir=scratch, evaluate=False)
        run = RunDir(scratch)
        base = log or RunLog(run.path / "train.log")
        log = lambda message: base(f"[worker {dist.worker_index}] {message}")  # noqa: E731
        log(f"{dist.describe(cfg)}; the chief writes the run, this worker trains in {scratch}")
        data = start_training(cfg, run.path)
        with distribution.activate(dist):
            method.call("train", cfg, run, log, data)
    return None


def define_flags(fv):
    registry.define_train_flags(fv)


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    method, cfg = registry.train_config(fv)
    run_training(method, cfg)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
