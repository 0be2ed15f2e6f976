"""Input pipelines around a sampler: tf.data for TensorFlow, PyDataset for JAX.

Both wrappers number samples globally: element ``g`` of the stream is sample
``index = g % epoch_size`` of epoch ``start_epoch + g // epoch_size``, where
``epoch_size = steps_per_epoch * global batch`` (``batch_size * num_shards``,
times ``replicas_per_shard`` under ``tf.distribute``). Because a
sampler's output depends only on (seed, epoch, index), both wrappers give the
same batches, whatever the number of parallel calls or workers.

TensorFlow is imported inside :func:`make_tf_dataset` only, and Keras inside
the first use of :class:`SamplerPyDataset`, so importing this module works on
a JAX-only installation.
"""

from __future__ import annotations

import numpy as np


def _epoch_size(sampler, batch_size, steps_per_epoch, num_shards):
    # num_shards: batches of batch_size that together make one global batch.
    if steps_per_epoch is None:
        steps_per_epoch = max(1, sampler.epoch_size // (batch_size * num_shards))
    return int(steps_per_epoch), int(steps_per_epoch) * int(batch_size) * int(num_shards)


def _check_batchable(sampler, batch_size):
    variable = any(d is None for shape, _ in sampler.output_signature() for d in shape)
    if variable and batch_size != 1:
        raise ValueError("this sampler's outputs vary in shape (size=None): use batch_size=1 "
                         "or give the sampler a fixed size")


def make_tf_dataset(sampler, batch_size, steps_per_epoch=None, epochs=None, start_epoch=0,
                    num_parallel_calls=None, shard_index=0, num_shards=1, deterministic=True,
                    prefetch=None, replicas_per_shard=1, start_step=0):
    """A ``tf.data.Dataset`` of ``(image, mask)`` batches drawn by ``sampler``.

    ``range -> map(tf.numpy_function(sampler.sample)) -> set_shape -> batch ->
    prefetch``. Sharding keeps every ``num_shards``-th global sample starting
    at ``shard_index`` (give each replica of ``tf.distribute`` its input
    context's ``input_pipeline_id`` / ``num_input_pipelines``); shards are
    disjoint and together are exactly the unsharded stream.

    Args:
        sampler: a :class:`tfpanc.data.sampler_base.Sampler`.
        batch_size: batch size of this shard (per replica).
        steps_per_epoch: batches per epoch and shard; default: the
            sampler's ``epoch_size`` divided by the global batch.
        epochs: number of epochs, or None for an endless stream (use with
            ``model.fit(steps_per_epoch=...)``).
        start_epoch: epoch of the first element (resume training).
        num_parallel_calls: map parallelism; default ``tf.data.AUTOTUNE``.
        shard_index, num_shards: this shard and the number of shards.
        replicas_per_shard: replicas one shard's consecutive batches go to
            (``tf.distribute`` hands a pipeline's batches to its worker's
            replicas in turn): one step then takes ``replicas_per_shard``
            batches of every shard, and an epoch is ``steps_per_epoch`` such
            global batches. Each step's global batch holds exactly the samples
            of one unsharded batch of ``batch_size * num_shards *
            replicas_per_shard``.
        deterministic: keep element order under parallel map (the content
            of each sample is deterministic either way).
        prefetch: batches to prefetch; default ``tf.data.AUTOTUNE``.
        start_step: global step of the first batch (a run resumed in the
            middle of an epoch): the stream is the uninterrupted one from
            that step on.

    Example:
    >>> ds = make_tf_dataset(sampler, batch_size=8, steps_per_epoch=100)  # doctest: +SKIP
    >>> model.fit(ds, steps_per_epoch=100, epochs=50)                      # doctest: +SKIP

    With ``tf.distribute``, one pipeline per input worker:

    >>> dist = strategy.distribute_datasets_from_function(
    ...     lambda ctx: make_tf_dataset(sampler, ctx.get_per_replica_batch_size(16), 100,
    ...                                 shard_index=ctx.input_pipeline_id,
    ...                                 num_shards=ctx.num_input_pipelines))  # doctest: +SKIP
    """
    import tensorflow as tf

    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} is not in 0..{num_shards - 1}")
    _check_batchable(sampler, batch_size)
    _, epoch_size = _epoch_size(sampler, batch_size, steps_per_epoch, num_shards * int(replicas_per_shard))
    # A global step takes batch_size * num_shards * replicas_per_shard samples, a multiple of
    # num_shards: every shard skips its own share of them.
    first = shard_index + int(start_step) * int(batch_size) * num_shards * int(replicas_per_shard)
    signature = sampler.output_signature()
    out_types = [tf.as_dtype(dtype) for _, dtype in signature]

    def draw(g):
        g = int(g)
        return tuple(np.asarray(a, dtype=d) for a, (_, d) in
                     zip(sampler.sample(g % epoch_size, start_epoch + g // epoch_size), signature))

    def load(g):
        arrays = tf.numpy_function(draw, [g], out_types, stateful=False)
        for a, (shape, _) in zip(arrays, signature):
            a.set_shape(shape)
        return tuple(arrays)

    if epochs is None:
        ds = tf.data.Dataset.counter(start=first, step=num_shards, dtype=tf.int64)
    else:
        ds = tf.data.Dataset.range(first, int(epochs) * epoch_size, num_shards)
    autotune = tf.data.AUTOTUNE
    ds = ds.map(load, num_parallel_calls=autotune if num_parallel_calls is None else num_parallel_calls,
                deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(autotune if prefetch is None else prefetch)


def stack_batch(sampler, first, batch_size, epoch_size, start_epoch=0):
    """Samples of global positions ``first .. first + batch_size - 1``, stacked.

    The numpy counterpart of one :func:`make_tf_dataset` batch.
    """
    samples = [sampler.sample(g % epoch_size, start_epoch + g // epoch_size)
               for g in range(first, first + batch_size)]
    return tuple(np.stack(parts) for parts in zip(*samples))


def _py_dataset_class():
    import keras

    class SamplerPyDataset(keras.utils.PyDataset):
        """A ``keras.utils.PyDataset`` of sampler batches (any Keras backend).

        Batch ``b`` of epoch ``e`` holds samples ``b * batch_size ...`` of
        epoch ``e``, the same batches :func:`make_tf_dataset` yields with one
        shard. With ``num_shards`` (one per process of a multi-process JAX
        run) shard ``p``'s batch ``b`` is the ``p``-th ``batch_size`` block of
        global batch ``b`` (``batch_size * num_shards`` samples): the shards
        together are exactly the unsharded stream of the global batch. The
        epoch advances when Keras ends an epoch it began
        (:meth:`on_epoch_begin` then :meth:`on_epoch_end`); ``ds.epoch`` can
        also be set directly.

        Args:
            sampler: a :class:`tfpanc.data.sampler_base.Sampler`.
            batch_size: samples per batch.
            steps: batches per epoch; default ``sampler.epoch_size // batch_size``.
            start_epoch: epoch of the first batch (resume training).
            workers, use_multiprocessing, max_queue_size: as for PyDataset
                (samplers pickle small: no arrays travel to worker processes).
            shard_index, num_shards: this shard and the number of shards.
            endless: one endless stream (``num_batches`` None) whose batch ``i``
                is batch ``i % steps`` of epoch ``start_epoch + i // steps``:
                no state changes with Keras' epoch calls, so worker threads
                that prefetch across an epoch's end cannot shift the batches.
                A batch taken is not given back: Keras' JAX ``fit`` takes
                the first to build an unbuilt model, loss or metrics, so
                build them first (:func:`tfpanc.training.fit.build_outside_stream`).
                Use it with ``model.fit(steps_per_epoch=steps)``.
            start_step: with ``endless``, the stream's first batch is batch
                ``start_step`` of it (a run resumed in the middle of an epoch).

        Example:
        >>> ds = SamplerPyDataset(sampler, batch_size=8, steps=100, workers=4)  # doctest: +SKIP
        >>> model.fit(ds, epochs=50)                                            # doctest: +SKIP
        """

        def __init__(self, sampler, batch_size, steps=None, start_epoch=0, workers=1,
                     use_multiprocessing=False, max_queue_size=10, shard_index=0, num_shards=1, endless=False,
                     start_step=0):
            super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                             max_queue_size=max_queue_size)
            _check_batchable(sampler, batch_size)
            if not 0 <= shard_index < num_shards:
                raise ValueError(f"shard_index {shard_index} is not in 0..{num_shards - 1}")
            self.sampler = sampler
            self.batch_size = int(batch_size)
            self.shard_index, self.num_shards = int(shard_index), int(num_shards)
            self.steps, self.epoch_size = _epoch_size(sampler, batch_size, steps, num_shards)
            self.epoch = int(start_epoch)
            self.endless = bool(endless)
            if start_step and not self.endless:
                raise ValueError("start_step needs endless=True")
            self.start_step = int(start_step)
            self._in_epoch = False

        @property
        def num_batches(self):
            return None if self.endless else self.steps

        def __len__(self):
            return self.steps

        def __getitem__(self, index):
            index = int(index)
            if self.endless:  # batch `index` of the whole stream, from start_epoch on
                index += self.start_step
                epoch, index = self.epoch + index // self.steps, index % self.steps
            elif not 0 <= index < self.steps:
                raise IndexError(f"batch {index} is not in 0..{self.steps - 1}")
            else:
                epoch = self.epoch
            first = (epoch * self.epoch_size + index * self.batch_size * self.num_shards
                     + self.shard_index * self.batch_size)
            return stack_batch(self.sampler, first, self.batch_size, self.epoch_size)

        def on_epoch_begin(self):
            self._in_epoch = True

        def on_epoch_end(self):
            if self.endless:  # the index says the epoch
                return
            # Keras also calls on_epoch_end once before training starts (its
            # epoch iterator's reset) and may call it twice at the end of an
            # interrupted epoch: only an end that closes a begun epoch counts.
            # Advancing here, not in on_epoch_begin, is race-free: Keras stops
            # its worker queue before on_epoch_end and restarts it before
            # on_epoch_begin.
            if self._in_epoch:
                self.epoch += 1
            self._in_epoch = False

    # Importable by name (pickle, multiprocessing workers) via __getattr__.
    SamplerPyDataset.__module__ = __name__
    SamplerPyDataset.__qualname__ = "SamplerPyDataset"
    return SamplerPyDataset


_CLASSES = {}


def __getattr__(name):
    # SamplerPyDataset subclasses keras.utils.PyDataset; it is built on first
    # use so that importing this module needs neither Keras nor TensorFlow.
    if name == "SamplerPyDataset":
        if name not in _CLASSES:
            _CLASSES[name] = _py_dataset_class()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SamplerPyDataset", "make_tf_dataset", "stack_batch"]
