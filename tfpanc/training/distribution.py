"""Data-parallel training for every method: ``--distribution={none,mirrored,multi_worker}``.

One mechanism for all recipes: the train command turns the flags into a
:class:`Distribution` (:func:`plan` validates them, :func:`setup` makes the
devices and the strategy) and runs the method's recipe inside
:func:`activate`, so every model a recipe builds (cai's grown networks and
its BiRNN stack included) and every ``compile`` happen inside the
strategy's scope, and :func:`tfpanc.training.fit.make_input` distributes
the recipe's sampler through :meth:`Distribution.make_input`.

What each backend runs (:data:`SUPPORT`; any other pair is refused in one
line, :data:`REFUSED` saying why):

============  ==================================  =========================================
mode          TensorFlow                          JAX
============  ==================================  =========================================
none          one device                          one device
mirrored      ``tf.distribute.MirroredStrategy``  ``keras.distribution.DataParallel`` over
              over the visible GPUs, or           the local GPUs, or ``--num_devices`` CPU
              ``--num_devices`` logical CPUs      devices (``jax_num_cpu_devices``)
multi_worker  refused: Keras 3 cannot ``fit``     ``jax.distributed`` over the processes
              under MultiWorkerMirroredStrategy   of ``TF_CONFIG`` + ``DataParallel`` over
              (keras-team/keras#20585)            every process's devices
============  ==================================  =========================================

Batches and learning rate: ``--batch_size`` (and cai's ``--rnn_batch_size``)
is per replica, so the global batch is ``replicas x batch_size``; the
learning rate is not scaled with it (each phase's peak stays
``--learning_rate``): a run on R replicas is the single-device run with an
R times larger batch, nothing else changed. Both are logged and recorded in
``run.json`` (``distribution``).

Input: on TensorFlow the sampler's tf.data pipeline is built per input
pipeline by ``strategy.distribute_datasets_from_function`` (pipeline
``input_pipeline_id`` keeps its own shard of the seeded sample stream,
``drop_remainder=True``); on JAX each process's ``PyDataset`` yields its
block of every global batch. Either way, one step's global batch holds
exactly the samples of the single-device batch of the same size (the
samplers draw sample i of epoch e from ``(seed, epoch, i)`` alone,
:mod:`tfpanc.data.pipeline`).

BatchNormalization: each replica normalises with its own batch statistics
on TensorFlow unless ``--sync_batchnorm``
(:func:`synchronize_batchnorm`: ``synchronized=True`` on every
BatchNormalization layer before compile); under JAX's DataParallel the
statistics are always those of the global batch (one SPMD program), so
the flag changes nothing there.

Multi-worker files: only the chief (process 0: TF_CONFIG's ``chief``, else
``worker`` 0) writes the run directory (the flags, logs, checkpoints,
``run.json``, the evaluation); every other worker trains in a private copy
of it taken when the chief has set the run up (:func:`worker_run_dir`), so
a resumed run resumes on every worker from the chief's state. The
run directory must be on a file system every worker sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os

from tfpanc.errors import InputError

MODES = ("none", "mirrored", "multi_worker")

SUPPORT = {
    "tensorflow": {
        "none": "one device",
        "mirrored": "tf.distribute.MirroredStrategy over the visible GPUs (or --num_devices logical CPU devices)",
    },
    "jax": {
        "none": "one device",
        "mirrored": "keras.distribution.DataParallel over the local devices (GPUs, or --num_devices CPU devices)",
        "multi_worker": "jax.distributed over the processes of TF_CONFIG, keras.distribution.DataParallel "
                        "over every process's devices",
    },
}

TF_MULTI_WORKER_BUG = (
    "Keras 3 cannot fit under tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras#20585; with "
    "Keras 3.15 / TF 2.21 model.fit fails converting the PerReplica batch, and past that "
    "tensorflow/tensorflow#72388); use KERAS_BACKEND=jax for multi_worker")
REFUSED = {("tensorflow", "multi_worker"): TF_MULTI_WORKER_BUG}

LEARNING_RATE_RULE = ("not scaled: each phase's peak is the flag's learning rate whatever the replicas "
                      "(the global batch is replicas x the per-replica batch)")

CLUSTER_JOBS = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The processes of a multi-worker run, from ``TF_CONFIG``: chief first, then the workers."""

    addresses: tuple
    index: int

    @property
    def size(self):
        return len(self.addresses)


def read_cluster(environ=None):
    """The :class:`Cluster` of ``TF_CONFIG`` (``environ``, default ``os.environ``); one-line errors.

    Example:
    >>> tf_config = '{"cluster": {"worker": ["h0:2222", "h1:2222"]}, "task": {"type": "worker", "index": 1}}'
    >>> read_cluster({"TF_CONFIG": tf_config})
    Cluster(addresses=('h0:2222', 'h1:2222'), index=1)
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    example = '{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}'
    if not raw.strip():
        raise InputError("TF_CONFIG", f"is not set; --distribution=multi_worker reads the cluster from it, e.g. "
                         f"{example}")
    try:
        config = json.loads(raw)
    except ValueError:
        raise InputError("TF_CONFIG", f"is not valid JSON; expected e.g. {example}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise InputError("TF_CONFIG", f"needs a cluster and a task, e.g. {example}")
    other = sorted(set(cluster) - set(CLUSTER_JOBS))
    if other:
        raise InputError("TF_CONFIG", f"has {', '.join(other)} jobs; multi_worker trains with chief and worker "
                         "jobs only")
    jobs = {job: cluster.get(job, []) for job in CLUSTER_JOBS}
    if not all(isinstance(v, list) and all(isinstance(a, str) and a for a in v) for v in jobs.values()):
        raise InputError("TF_CONFIG", "cluster jobs must be lists of host:port addresses")
    if len(jobs["chief"]) > 1:
        raise InputError("TF_CONFIG", f"has {len(jobs['chief'])} chiefs; at most one")
    addresses = tuple(jobs["chief"] + jobs["worker"])
    if not addresses:
        raise InputError("TF_CONFIG", "names no worker")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in CLUSTER_JOBS or not isinstance(index, int) or not 0 <= index < len(jobs.get(kind, [])):
        raise InputError("TF_CONFIG", f"task {kind!r} {index!r} is not in the cluster")
    return Cluster(addresses, index if kind == "chief" else len(jobs["chief"]) + index)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What :func:`setup` will make: validated flags, no device touched yet."""

    mode: str
    backend: str
    num_devices: int = None
    sync_batchnorm: bool = False
    cluster: Cluster = None


def plan(cfg, backend=None, environ=None):
    """Validates ``--distribution`` for ``backend`` (default: Keras'); one-line InputError otherwise.

    Example:
    >>> from types import SimpleNamespace as Cfg
    >>> plan(Cfg(distribution="mirrored", num_devices=2, sync_batchnorm=False), "jax").mode
    'mirrored'
    >>> plan(Cfg(distribution="mirrored", num_devices=None, sync_batchnorm=False), "torch")
    Traceback (most recent call last):
    ...
    tfpanc.errors.InputError: error: --distribution: mirrored is not supported on the torch backend; \
there: none
    """
    if backend is None:
        import keras

        backend = keras.backend.backend()
    mode = cfg.distribution
    if mode not in MODES:
        raise InputError("--distribution", f"{mode} is not one of {', '.join(MODES)}")
    if mode not in SUPPORT.get(backend, {"none": "one device"}):
        reason = REFUSED.get((backend, mode))
        if reason:
            raise InputError("--distribution", f"{mode} is refused on the {backend} backend: {reason}")
        supported = ", ".join(SUPPORT.get(backend, {"none": ""}))
        raise InputError("--distribution", f"{mode} is not supported on the {backend} backend; there: {supported}")
    cluster = read_cluster(environ) if mode == "multi_worker" else None
    return Plan(mode, backend, cfg.num_devices, bool(cfg.sync_batchnorm), cluster)


class Distribution:
    """A made distribution: its devices, strategy (TF) or Keras distribution (JAX), and input.

    Attributes:
        mode, backend: as in :class:`Plan`.
        replicas: replicas in sync over every worker.
        local_replicas: replicas of this worker (process).
        workers, worker_index: processes and this one's index (0 is the chief).
        devices: names of this worker's devices.
        strategy: the ``tf.distribute.Strategy`` (TensorFlow, else None).
        keras_distribution: the ``keras.distribution.DataParallel`` (JAX, else None).
    """

    def __init__(self, mode="none", backend=None, replicas=1, local_replicas=1, workers=1, worker_index=0,
                 devices=(), strategy=None, keras_distribution=None, sync_batchnorm=False):
        self.mode, self._backend = mode, backend
        self.replicas, self.local_replicas = int(replicas), int(local_replicas)
        self.workers, self.worker_index = int(workers), int(worker_index)
        self.devices = tuple(devices)
        self.strategy, self.keras_distribution = strategy, keras_distribution
        self.sync_batchnorm = sync_batchnorm

    @property
    def backend(self):
        """The Keras backend (Keras' own when not given)."""
        if self._backend is None:
            import keras

            return keras.backend.backend()
        return self._backend

    @property
    def is_chief(self):
        return self.worker_index == 0

    @contextlib.contextmanager
    def scope(self):
        """The strategy's (TF) or the Keras distribution's (JAX) scope; nothing for ``none``."""
        if self.strategy is not None:
            with self.strategy.scope():
                yield
        elif self.keras_distribution is not None:
            with self.keras_distribution.scope():
                yield
        else:
            yield

    def make_input(self, sampler, batch_size, steps_per_epoch, start_step=0):
        """An endless stream of ``sampler`` batches for ``model.fit``; ``batch_size`` per replica;
        its first batch is global step ``start_step`` of the uninterrupted stream."""
        from tfpanc.data import pipeline

        if self.strategy is not None:
            def dataset(context):
                return pipeline.make_tf_dataset(
                    sampler, batch_size, steps_per_epoch=steps_per_epoch, shard_index=context.input_pipeline_id,
                    num_shards=context.num_input_pipelines,
                    replicas_per_shard=context.num_replicas_in_sync // context.num_input_pipelines,
                    start_step=start_step)

            return self.strategy.distribute_datasets_from_function(dataset)
        if self.backend == "tensorflow":
            return pipeline.make_tf_dataset(sampler, batch_size, steps_per_epoch=steps_per_epoch,
                                            start_step=start_step)
        # endless: the batches depend on their index alone, not on when Keras' epoch calls come
        # (worker threads prefetch across them). Keras' symbolic build takes batch 0 before training.
        return pipeline.SamplerPyDataset(sampler, batch_size * self.local_replicas, steps=steps_per_epoch, workers=2,
                                         shard_index=self.worker_index, num_shards=self.workers, endless=True,
                                         start_step=start_step)

    def barrier(self, name):
        """Waits until every worker got here (multi-worker JAX; nothing otherwise)."""
        if self.workers > 1 and self.backend == "jax":
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(name)

    def batchnorm_statistics(self):
        """Over what BatchNormalization normalises in training: ``global batch`` or ``per replica``."""
        if self.replicas == 1 or self.backend == "jax" or self.sync_batchnorm:
            return "global batch"
        return "per replica"

    def record(self, cfg):
        """What ``run.json`` records: mode, replicas, batches, the learning-rate rule."""
        return {"mode": self.mode, "backend": self.backend, "replicas": self.replicas, "workers": self.workers,
                "replicas_per_worker": self.local_replicas, "batch_size_per_replica": cfg.batch_size,
                "global_batch_size": cfg.batch_size * self.replicas, "learning_rate": LEARNING_RATE_RULE,
                "batchnorm_statistics": self.batchnorm_statistics()}

    def describe(self, cfg):
        """One log line: where it runs, the replicas, the global batch and the learning-rate rule."""
        where = {"none": "one device", "mirrored": f"{self.replicas} replicas on {', '.join(self.devices)}",
                 "multi_worker": f"{self.workers} workers x {self.local_replicas} devices, worker "
                                 f"{self.worker_index}{' (chief)' if self.is_chief else ''} on "
                                 f"{', '.join(self.devices)}"}[self.mode]
        line = (f"distribution {self.mode} ({self.backend}): {where}; global batch {self.replicas} x "
                f"{cfg.batch_size} = {self.replicas * cfg.batch_size} (--batch_size is per replica); learning "
                "rate not scaled")
        if self.replicas > 1:
            line += f"; BatchNormalization statistics {self.batchnorm_statistics()}"
            if self.batchnorm_statistics() == "per replica":
                line += " (--sync_batchnorm synchronises them)"
        return line


NONE = Distribution()
_STRATEGIES = {}


def _tf_cpu_devices(count):
    """``count`` logical CPU devices (configured now: before TensorFlow runs any op)."""
    import tensorflow as tf

    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        current = tf.config.get_logical_device_configuration(cpu) or []
        if len(current) < count:
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
            except RuntimeError:
                raise InputError("--num_devices", f"TensorFlow already runs on {max(1, len(current))} CPU "
                                 "device(s); logical devices are made before its first op (start a fresh "
                                 "process)") from None
    return [f"/cpu:{i}" for i in range(count)]


def _setup_tensorflow(p):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        count = p.num_devices or len(gpus)
        if count > len(gpus):
            raise InputError("--num_devices", f"{count} devices asked for, {len(gpus)} GPUs visible")
        devices = [f"/gpu:{i}" for i in range(count)]
    else:
        devices = _tf_cpu_devices(p.num_devices or 1)
    key = ("mirrored", tuple(devices))
    if key not in _STRATEGIES:
        # One per process and devices: a second MirroredStrategy over the same CPU devices restarts
        # the collective keys and its all-reduces clash with the first one's ("Shape mismatch in the
        # collective instance").
        _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices)
    strategy = _STRATEGIES[key]
    return Distribution(p.mode, p.backend, strategy.num_replicas_in_sync, strategy.num_replicas_in_sync, 1, 0,
                        devices, strategy=strategy, sync_batchnorm=p.sync_batchnorm)


def _setup_jax(p):
    import jax
    import keras

    if p.num_devices:
        try:  # CPU devices: only before JAX's backends start (a GPU backend ignores it)
            jax.config.update("jax_num_cpu_devices", int(p.num_devices))
        except RuntimeError:
            pass  # already started: the count check below decides
    if p.cluster is not None and p.cluster.size > 1:
        keras.distribution.initialize(",".join(p.cluster.addresses), p.cluster.size, p.cluster.index)
    local = jax.local_devices()
    count = p.num_devices or len(local)
    if count > len(local):
        raise InputError("--num_devices", f"{count} devices asked for, JAX has {len(local)} "
                         f"{local[0].platform} devices here (CPU devices are set before JAX starts)")
    by_process = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    devices = [d for proc in sorted(by_process) for d in by_process[proc][:count]]
    workers = jax.process_count()
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    return Distribution(p.mode, p.backend, len(devices), count, workers, jax.process_index(),
                        [str(d) for d in local[:count]], keras_distribution=distribution,
                        sync_batchnorm=p.sync_batchnorm)


def setup(p):
    """The :class:`Distribution` of a :class:`Plan`: devices configured, strategy made.

    Call it before TensorFlow runs any op when ``--num_devices`` asks for
    logical CPU devices (the train command does).
    """
    if p.mode == "none":
        return Distribution("none", p.backend, sync_batchnorm=p.sync_batchnorm)
    if p.backend == "tensorflow":
        return _setup_tensorflow(p)
    return _setup_jax(p)


_ACTIVE = [NONE]


def active():
    """The distribution training runs under now (:data:`NONE` outside :func:`activate`)."""
    return _ACTIVE[-1]


@contextlib.contextmanager
def activate(distribution):
    """Makes ``distribution`` the one :func:`active` returns, inside its scope."""
    _ACTIVE.append(distribution)
    try:
        with distribution.scope():
            yield distribution
    finally:
        _ACTIVE.pop()


def synchronize_batchnorm(model):
    """Sets ``synchronized=True`` on every BatchNormalization layer of ``model`` (TensorFlow only).

    The layer reads the attribute when its training step is traced, so
    setting it before ``compile``/``fit`` is the same as building it so;
    the weights and the saved ``.weights.h5`` are unchanged.

    Returns:
        the number of layers changed.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0
    layers = model._flatten_layers(include_self=False, recursive=True)
    changed = 0
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed += 1
    return changed


def worker_run_dir(model_dir, scratch):
    """Copies the chief's run ``model_dir`` into ``scratch`` for a non-chief worker (its evaluation and
    TensorBoard logs left out); returns ``scratch``."""
    import shutil

    from tfpanc.training.run_dir import LOCK_FILE

    shutil.copytree(model_dir, scratch, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("eval", "tensorboard", LOCK_FILE))
    return scratch
