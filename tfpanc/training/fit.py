"""One training phase: input pipeline, compile, fit, checkpoint, resume.

Backend-neutral: on TensorFlow the sampler is wrapped in tf.data (parallel
map, prefetch); on JAX (or any other backend) in a ``keras.utils.PyDataset``,
and TensorFlow is never imported. Under ``--distribution`` the input is
distributed and BatchNormalization synchronised by
:mod:`tfpanc.training.distribution` (the train command runs the recipe
inside its scope).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

from tfpanc.data.pipeline import stack_batch
from tfpanc.metrics import dice
from tfpanc.training import distribution
from tfpanc.training.callbacks import HistoryCallback
from tfpanc.training.run_dir import load_weights
from tfpanc.training.step_backup import StepBackup, read_resume_point, remove_backup


def start_training(cfg, run_path=None):
    """What every training run starts with: precision policy, seeds, cache, case split.

    Returns:
        the :class:`tfpanc.training.data_split.TrainingData` of ``cfg.data_dir``
        and ``cfg.fold`` (its split persisted in ``run_path`` when given).
    """
    from tfpanc.data.cache import CaseCache
    from tfpanc.training.data_split import split_cases

    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(cfg.seed)
    return split_cases(CaseCache(cfg.data_dir), cfg.fold, cfg.val_fraction, cfg.seed,
                       None if run_path is None else Path(run_path))


class TrainingInput:
    """A recipe's training stream, made when :func:`fit_phase` knows where it starts.

    Args:
        sampler: the phase's sampler.
        batch_size: per replica of the active distribution.
        steps_per_epoch: steps of one epoch.
    """

    def __init__(self, sampler, batch_size, steps_per_epoch):
        self.sampler, self.batch_size, self.steps_per_epoch = sampler, batch_size, steps_per_epoch

    def stream(self, start_step=0):
        """The endless batch stream for ``model.fit``, from global step ``start_step`` on."""
        return distribution.active().make_input(self.sampler, self.batch_size, self.steps_per_epoch, start_step)

    def __iter__(self):
        return iter(self.stream())


def make_input(sampler, batch_size, steps_per_epoch):
    """The batch stream of ``sampler`` for :func:`fit_phase`; ``batch_size`` per replica of the
    active distribution (:func:`tfpanc.training.distribution.active`)."""
    return TrainingInput(sampler, batch_size, steps_per_epoch)


def fixed_samples(sampler, count):
    """``count`` samples of ``sampler`` (epoch 0), stacked: a fixed validation set.

    Returns:
        ``(images, masks)`` arrays for :class:`ValidationDSC`.
    """
    samples = [sampler.sample(i, epoch=0) for i in range(count)]
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


class ValidationDSC(keras.callbacks.Callback):
    """DSC of the fused output on a fixed validation set, logged as ``val_dsc``.

    Args:
        images: validation inputs (a few slices or slice runs).
        masks: their masks, same leading shape, last axis 1.
        threshold: probability threshold.
        batch_size: inference batch.
    """

    def __init__(self, images, masks, threshold=0.5, batch_size=4):
        super().__init__()
        self.images = images
        self.masks = masks > 0.5
        self.threshold = threshold
        self.batch_size = batch_size

    def _predict(self, images):
        if distribution.active().replicas > 1:
            # Under a strategy Keras' predict_on_batch runs the whole batch on every replica
            # (TensorFlow returns it once per replica): one plain call instead.
            return self.model(images, training=False)
        return self.model.predict_on_batch(images)

    def on_epoch_end(self, epoch, logs=None):
        pred = np.concatenate([
            ops.convert_to_numpy(ops.sigmoid(self._predict(self.images[i:i + self.batch_size])[..., :1]))
            > self.threshold for i in range(0, len(self.images), self.batch_size)])
        if logs is not None:
            logs["val_dsc"] = float(dice(pred, self.masks))


def learning_rate_schedule(peak, epochs, steps_per_epoch):
    """Per-phase schedule: linear warm-up to ``peak``, then cosine decay to 1 % of it.

    Why: every phase (each growth step, the final phase, the BiRNN) starts
    a fresh Adam, whose first updates move every weight by about the full
    learning rate; on a network whose earlier units are already trained that
    wipes out what they learned (the quickstart's validation DSC fell to 0
    after each growth step at a constant 3e-3). The warm-up (half an epoch,
    at most 100 steps) avoids it, and the decay lets each phase settle.
    The paper states only "SGD until convergence"; this is our choice.

    Example:
    >>> s = learning_rate_schedule(1e-3, epochs=2, steps_per_epoch=40)
    >>> [round(float(s(step)), 6) for step in (0, 20, 80)]
    [0.0, 0.001, 1e-05]
    """
    warmup = max(1, min(steps_per_epoch // 2, 100))
    total = max(warmup + 1, epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        0.0, total - warmup, alpha=0.01, warmup_target=float(peak), warmup_steps=warmup)


def _tensorboard(log_dir):
    # Keras' TensorBoard callback writes through TensorFlow's summary API,
    # which needs the tensorboard package as well.
    try:
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False)]


class AdamWithWeightAverage(keras.optimizers.Adam):
    """Adam that keeps an exponential moving average of the weights (Keras' ``use_ema``) and copies it
    into the model only when :meth:`copy_average_into` is called.

    Keras copies the average at the end of every ``fit`` call; a phase
    resumed mid-epoch calls ``fit`` twice, and the second would then train
    on from the average instead of the weights an uninterrupted run has.
    The average itself is an optimizer variable, so the step backups hold it.

    Args:
        learning_rate: a float or schedule, as Adam's.
        ema_momentum: the average's momentum per step (0.998: about the last 500 steps).

    Example:
    >>> opt = AdamWithWeightAverage(1e-3, ema_momentum=0.99)
    >>> opt.use_ema, opt.ema_momentum
    (True, 0.99)
    """

    def __init__(self, learning_rate=1e-3, ema_momentum=0.99, **kwargs):
        kwargs.pop("use_ema", None)
        super().__init__(learning_rate, use_ema=True, ema_momentum=ema_momentum, **kwargs)

    def finalize_variable_values(self, var_list):
        """Left to :meth:`copy_average_into` (Keras calls this at the end of each ``fit``)."""

    def copy_average_into(self, var_list):
        super().finalize_variable_values(var_list)


# The sampler epoch of the batches drawn outside training (building, BatchNorm refresh): far past any
# a training reaches.
REFRESH_EPOCH = 1_000_000


def outside_batch(sampler, batch_size, index=0):
    """Batch ``index`` of the sampler's epoch :data:`REFRESH_EPOCH`: ``(x, y)`` stacked, never trained on."""
    return stack_batch(sampler, index * batch_size, batch_size, sampler.epoch_size, REFRESH_EPOCH)


def build_outside_stream(model, sampler, batch_size):
    """Builds the model, its loss and metrics on a batch that is not the training stream's (JAX).

    Keras' JAX trainer builds what is unbuilt at the start of ``fit`` by
    taking the stream's first batch, and an endless PyDataset, unlike a
    tf.data iterator, does not give it back: every JAX phase trained from
    its second batch on, and a resumed phase, whose second ``fit`` takes
    none, trained other batches than the uninterrupted phase. An
    ``evaluate`` on an outside batch builds the same state and trains nothing.
    """
    x, y = outside_batch(sampler, batch_size)[:2]
    model.evaluate(x, y, batch_size=batch_size, verbose=0)


def refresh_batch_norm(model, sampler, batch_size, batches=50):
    """Re-estimates every BatchNormalization layer's moving statistics for the model's current weights.

    Averaged weights give other activations than the last step's, whose
    statistics the layers hold (the SWA paper's ``update_bn`` step):
    ``batches`` batches of ``sampler`` (epoch :data:`REFRESH_EPOCH`, never
    trained on) go through the model in training mode, without gradients,
    and each layer's momentum is set so that its statistics become the
    plain mean over those batches. Models without BatchNorm are left alone.

    Returns:
        the number of BatchNormalization layers refreshed.
    """
    layers = [layer for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    try:
        for b in range(batches):
            for layer in layers:
                layer.momentum = b / (b + 1)  # the running mean of the batches' statistics
            model(outside_batch(sampler, batch_size, b)[0], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


def fit_phase(cfg, run, log, phase, model, loss, learning_rate, data, epochs, extra=None, val=None,
              callbacks=(), optimizer=None, weight_average=0.0):
    """Trains one named phase, or loads its weights when it finished before.

    A phase cut short (a kill, a preemption) resumes from its backup at the
    step it was saved at (:mod:`tfpanc.training.step_backup`), on the same
    batches and learning rates an uninterrupted run would have used.

    Args:
        data: the :func:`make_input` of the phase's sampler.
        callbacks: extra callbacks; they get the finished epochs' logs again
            on a resume (EarlyStopping's patience carries over).
        optimizer: ``(learning_rate, epochs, steps_per_epoch) -> keras optimizer``
            for a paper's own optimiser and schedule; default Adam with
            :func:`learning_rate_schedule`.
        weight_average: momentum of an exponential moving average of the
            weights over the phase (default Adam only), which becomes the
            phase's weights at its end, with BatchNorm statistics
            re-estimated for it (:func:`refresh_batch_norm`); 0: none.
            Validation DSC is of the current weights, not the average.

    Returns:
        the number of epochs run, or None when the phase was already done.
    """
    backup_dir = run.backup_dir(phase)
    if run.is_done(phase):
        load_weights(model, run.weights_path(phase))
        remove_backup(backup_dir)  # left when a kill came between the two
        log(f"{phase}: finished in an earlier run; weights loaded from {run.weights_path(phase).name}")
        return None
    if epochs <= 0:
        run.save_weights(model, phase)
        run.mark_done(phase, epochs=0)
        return 0
    compile_args = {"jit_compile": cfg.jit_compile} if keras.backend.backend() == "tensorflow" else {}
    if getattr(cfg, "sync_batchnorm", False) and distribution.active().replicas > 1:
        distribution.synchronize_batchnorm(model)
    if weight_average and optimizer is not None:
        raise ValueError("weight_average applies to the default Adam only")
    if weight_average:
        opt = AdamWithWeightAverage(learning_rate_schedule(learning_rate, epochs, cfg.steps_per_epoch),
                                    ema_momentum=weight_average)
    elif optimizer is None:
        opt = keras.optimizers.Adam(learning_rate_schedule(learning_rate, epochs, cfg.steps_per_epoch))
    else:
        opt = optimizer(learning_rate, epochs, cfg.steps_per_epoch)
    model.compile(optimizer=opt, loss=loss, **compile_args)
    steps = cfg.steps_per_epoch
    point = read_resume_point(backup_dir)
    if point is not None:
        log(f"{phase}: resuming at epoch {point.epoch + 1}, step {point.step} of {steps}, "
            f"from the backup in {backup_dir}")
    log(f"{phase}: training up to {epochs} epochs of {steps} steps "
        f"({model.count_params():,} parameters)")
    backup = StepBackup(backup_dir, steps, save_every=max(1, steps // 4), point=point, replay=callbacks)
    cbs = [backup.carry]
    if val is not None:
        cbs.append(ValidationDSC(*val, threshold=cfg.threshold))
    cbs += list(callbacks)
    cbs += _tensorboard(run.path / "tensorboard" / phase)
    # The backup's epoch-end save is the commit point: before the history row and the plot (a
    # second), so a kill after it never trains the epoch again; a row it missed is written now.
    history = HistoryCallback(run.path / "history.csv", phase, log, extra=extra, plot_path=run.path / "progress.png")
    if point is not None:
        history.add_missing_rows(point.epochs)
    cbs += [backup, history]
    epoch = point.epoch if point else 0
    if point is not None and (point.stopped or epoch >= epochs):
        backup.replay()  # no fit: the callbacks' state comes from the record alone
        backup.restore(model)
    else:
        if keras.backend.backend() == "jax":
            build_outside_stream(model, data.sampler, data.batch_size)
        if point is not None and point.step:
            # The interrupted epoch's remaining steps alone, then the whole epochs after it.
            backup.offset = point.step
            model.fit(data.stream(epoch * steps + point.step), initial_epoch=epoch, epochs=epoch + 1,
                      steps_per_epoch=steps - point.step, callbacks=cbs, verbose=cfg.verbose, shuffle=False)
            backup.offset, epoch = 0, epoch + 1
        if epoch < epochs and not backup.stopped:
            model.fit(data.stream(epoch * steps), initial_epoch=epoch, epochs=epochs, steps_per_epoch=steps,
                      callbacks=cbs, verbose=cfg.verbose, shuffle=False)
    if weight_average:
        opt.copy_average_into(model.trainable_variables)
        refreshed = refresh_batch_norm(model, data.sampler, data.batch_size)
        log(f"{phase}: weights are the moving average of the phase's steps (momentum {weight_average:g})"
            + (f"; BatchNorm statistics of {refreshed} layers re-estimated for them" if refreshed else ""))
    run.save_weights(model, phase)
    last = backup.epoch_logs[-1] if backup.epoch_logs else {}
    run.mark_done(phase, epochs=len(backup.epoch_logs), **last)
    remove_backup(backup_dir)
    return len(backup.epoch_logs)
