"""Mid-epoch backups of a training phase, and resuming at the step they were taken.

Keras' ``BackupAndRestore`` saves every few steps but restores only the
epoch number: a run killed at step 150 of a 300-step epoch trained that
epoch again from step 0 on top of the step-150 weights (450 steps), on the
input stream's first batches, not its step-150 ones, and forgot
EarlyStopping's patience. :class:`StepBackup` records the position
(epoch, step), the weights with the optimizer state (a compiled Keras
model's weights file holds both, so the learning-rate schedule goes on from
the optimizer's step count), the running means of the partial epoch's
metrics, and every finished epoch's logs. :func:`tfpanc.training.fit.fit_phase`
resumes from it exactly: the input stream from that global step, the
partial epoch's remaining steps alone, its logged loss the mean over all of
its steps, and the finished epochs' logs fed again to the callbacks that
keep state across epochs (EarlyStopping).

``backup/<phase>/`` holds ``progress.json`` and the weights file it names.
Each save writes the weights under a new name, then ``progress.json``
(atomically), then removes the older weights: a ``kill -9`` at any moment
leaves a consistent backup.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import keras

from tfpanc.result_files import read_json, write_json, write_with

PROGRESS_FILE = "progress.json"


@dataclasses.dataclass
class ResumePoint:
    """Where a backup was taken.

    Attributes:
        epoch: epochs finished.
        step: steps done in epoch ``epoch`` (0 at an epoch's end).
        weights: the weights file (model and optimizer).
        partial_logs: running metric means over those ``step`` steps.
        epochs: each finished epoch's logs.
        stopped: a callback (EarlyStopping) ended the phase at that point.
    """

    epoch: int
    step: int
    weights: Path
    partial_logs: dict
    epochs: list
    stopped: bool = False


def read_resume_point(backup_dir):
    """The :class:`ResumePoint` of ``backup_dir``, or None when there is no backup."""
    backup_dir = Path(backup_dir)
    path = backup_dir / PROGRESS_FILE
    if not path.exists():
        return None
    record = read_json(path, f"delete {backup_dir} to train the phase from its start")
    return ResumePoint(int(record["epoch"]), int(record["step"]), backup_dir / record["weights"],
                       dict(record.get("partial_logs", {})), list(record.get("epochs", [])),
                       bool(record.get("stopped", False)))


def remove_backup(backup_dir):
    shutil.rmtree(backup_dir, ignore_errors=True)


def _floats(logs):
    return {k: float(v) for k, v in (logs or {}).items()}


class StepBackup(keras.callbacks.Callback):
    """Saves a phase's position every ``save_every`` steps and at each epoch's end.

    Put it after the callbacks that complete an epoch's logs or stop the
    run (``val_dsc``, EarlyStopping) and before those that only report it
    (history, plot): its epoch-end save is the moment an epoch counts as
    done. :attr:`carry` goes first (it completes the partial epoch's logs
    before the others read them).

    Args:
        backup_dir: the phase's backup folder.
        steps_per_epoch: steps of a whole epoch.
        save_every: steps between mid-epoch saves.
        point: the :class:`ResumePoint` this run starts from, or None.
        replay: callbacks that get the finished epochs' ``on_epoch_end``
            again when a fit starts, so their state carries over a resume.

    Example:
    >>> cb = StepBackup("/tmp/run/backup/p", steps_per_epoch=8, save_every=2)  # doctest: +SKIP
    >>> model.fit(data, epochs=3, steps_per_epoch=8, callbacks=[cb.carry, ..., cb])  # doctest: +SKIP
    """

    def __init__(self, backup_dir, steps_per_epoch, save_every, point=None, replay=()):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.steps_per_epoch = int(steps_per_epoch)
        self.save_every = max(1, int(save_every))
        self.point = point
        self.replay_to = list(replay)
        self.epoch_logs = list(point.epochs) if point else []
        self.stopped = bool(point and point.stopped)
        self.offset = 0  # steps of the current epoch done before this fit
        self._restore = point is not None
        self.carry = _CarryPartialEpoch(self)

    def replay(self):
        for cb in self.replay_to:
            for epoch, logs in enumerate(self.epoch_logs):
                cb.on_epoch_end(epoch, dict(logs))

    def restore(self, model):
        """Loads the backup's weights and optimizer state into ``model`` (compiled)."""
        # The optimizer's variables must exist before its state can be loaded into them.
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.point.weights)
        self._restore = False

    def on_train_begin(self, logs=None):
        if self._restore:  # here, not before fit: Keras has built the model by now
            self.restore(self.model)
        self.replay()

    def on_train_batch_end(self, batch, logs=None):
        step = self.offset + batch + 1
        if step % self.save_every == 0 and step < self.steps_per_epoch:
            self._save(len(self.epoch_logs), step, _floats(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs = self.epoch_logs[:epoch] + [_floats(logs)]
        self.stopped = bool(self.model.stop_training)
        self._save(epoch + 1, 0, {})

    def _save(self, epoch, step, partial_logs):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch{epoch}_step{step}.weights.h5"
        write_with(self.backup_dir / name, self.model.save_weights, ".weights.h5")
        write_json(self.backup_dir / PROGRESS_FILE,
                   {"epoch": epoch, "step": step, "steps_per_epoch": self.steps_per_epoch, "weights": name,
                    "partial_logs": partial_logs, "epochs": self.epoch_logs, "stopped": self.stopped})
        for old in self.backup_dir.glob("epoch*_step*.weights.h5"):
            if old.name != name:
                old.unlink()


class _CarryPartialEpoch(keras.callbacks.Callback):
    """Makes a resumed epoch's metrics the means over all its steps, not the remaining ones."""

    def __init__(self, backup):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        b = self.backup
        if logs is None or not b.offset or b.point is None or epoch != b.point.epoch:
            return
        done, total = b.offset, b.steps_per_epoch
        for k, before in b.point.partial_logs.items():
            if k in logs and not k.startswith("val_"):
                logs[k] = (done * before + (total - done) * float(logs[k])) / total
