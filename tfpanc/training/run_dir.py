"""The run directory: resolved flags, completed phases, weights, logs.

A run is a sequence of named phases (``pnet_k1`` ... ``pnet_k5``,
``pnet_final``, ``birnn``). Each finished phase leaves its weights
``<phase>.weights.h5`` and an entry in ``state.json``; a phase cut short
leaves a backup under ``backup/<phase>`` (:mod:`tfpanc.training.step_backup`).
Running the same command again skips finished phases, restores the
interrupted one at the step of its backup, and goes on: a killed run resumes
where it stopped.
``run.json`` holds what prediction needs to rebuild the model (no pickles).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from tfpanc.result_files import process_alive, read_json, sweep_temporaries, write_json as _write_json, write_with
from tfpanc.errors import InputError
from tfpanc.flags import RUN_ONLY_SETTINGS, training_lines

STATE_FILE = "state.json"
RUN_FILE = "run.json"
FLAGS_FILE = "flags.cfg"
LOCK_FILE = "train.lock"
LEGACY_PIPELINE_FILE = "pipeline.json"  # zhou pipelines before every run.json named its method


class RunDir:
    """Reads and writes a training run directory.

    Args:
        path: the ``--model_dir``.

    Example:
    >>> import tempfile
    >>> run = RunDir(tempfile.mkdtemp())
    >>> run.mark_done("pnet_k1", epochs=3); run.is_done("pnet_k1")
    True
    """

    def __init__(self, path):
        self.path = Path(path)

    def create(self, flagfile_text, ignored=RUN_ONLY_SETTINGS):
        """Records the run's flags; refuses to resume a started run under other training flags.

        Args:
            flagfile_text: the resolved flags.
            ignored: flags that may differ on a resume (by default those that
                only change reporting, :data:`tfpanc.flags.RUN_ONLY_SETTINGS`).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(self.path, recursive=True)  # what a killed run left half-written
        previous = self.path / FLAGS_FILE
        if previous.exists() and self.state()["done"] and \
                training_lines(previous.read_text(), ignored) != training_lines(flagfile_text, ignored):
            # Resuming under other settings would silently mix two experiments.
            raise InputError(previous, "this run was started with other flags; use a new --model_dir "
                             "or the same flags to resume")
        previous.write_text(flagfile_text)

    @contextlib.contextmanager
    def lock(self):
        """Holds ``train.lock`` while a training writes the run; a second training of it is refused.

        Two trainings of one ``--model_dir`` at once would interleave their
        phases, weights and ``state.json`` without an error. The lock names
        the process and host; a lock left by a process of this host that no
        longer runs (a killed training) is taken over, one of another host
        is refused (its process cannot be checked from here).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / LOCK_FILE
        mine = f"{os.getpid()} {socket.gethostname()}"
        if path.exists() and _lock_holder(path) is None:
            path.unlink(missing_ok=True)  # left by a training of this host that is gone
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _lock_holder(path) or "one starting now"
            raise InputError(self.path, f"another training ({holder}) is writing this run; wait for it, or use "
                             f"another --model_dir (delete {LOCK_FILE} if none runs)") from None
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if path.read_text() == mine:
                    path.unlink()

    def state(self):
        path = self.path / STATE_FILE
        if not path.exists():
            return {"done": {}}
        state = read_json(path, "delete it to retrain the run's phases, or use a new --model_dir")
        if not isinstance(state, dict) or not isinstance(state.get("done"), dict):
            raise InputError(path, "is not a tfpanc training state; delete it to retrain the run's phases")
        return state

    def is_done(self, phase):
        return phase in self.state()["done"]

    def mark_done(self, phase, **info):
        state = self.state()
        state["done"][phase] = info
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.path / STATE_FILE, state)

    def weights_path(self, phase):
        return self.path / f"{phase}.weights.h5"

    def save_weights(self, model, phase):
        """Writes ``phase``'s weights atomically (a kill leaves the old file or none, not half)."""
        write_with(self.weights_path(phase), model.save_weights, ".weights.h5")

    def backup_dir(self, phase):
        return self.path / "backup" / phase

    def write_json(self, name, record):
        """Writes a JSON record file of the run (atomically)."""
        _write_json(self.path / name, record)

    def read_json(self, name):
        """A JSON record file of the run; a missing or corrupt one is a one-line InputError."""
        return read_json(self.path / name, "retrain the run")

    def write_run_info(self, info):
        _write_json(self.path / RUN_FILE, info)

    def run_info(self):
        path = self.path / RUN_FILE
        if not path.exists():
            if (self.path / LEGACY_PIPELINE_FILE).exists():
                raise InputError(self.path, "a zhou pipeline from before run.json recorded every run's "
                                 f"method: copy {LEGACY_PIPELINE_FILE} to {RUN_FILE} to use it")
            raise InputError(self.path, "not a finished tfpanc run (no run.json); train it first")
        info = read_json(path, "retrain the run")
        if not isinstance(info, dict):
            raise InputError(path, "is not a tfpanc run record")
        return info


def _lock_holder(path):
    """``"pid N on HOST"`` of a lock whose training may still run, or None for a stale one."""
    try:
        pid, host = path.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None  # half-written or emptied: its writer died before it wrote its name
    if host == socket.gethostname() and not process_alive(pid):
        return None
    return f"pid {pid} on {host}"


def load_weights(model, path):
    """``model.load_weights(path)``, with a one-line error naming the file if it is missing or unreadable.

    A run folder copied in part, or a weights file cut short by a full disk,
    would otherwise end in an h5py traceback that does not name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file missing: the run is incomplete (train it again, or copy the "
                               "whole run folder)")
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"cannot load these weights (truncated, or not this run's network): "
                               f"{reason}") from None
