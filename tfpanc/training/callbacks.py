"""Keras callbacks shared by the training recipes: plain log, history, plot.

nnU-Net's user experience in three pieces: a plain text log a person can
``tail -f``, a CSV history that spans every phase of a run (progressive
growth, fine-tuning), and a progress plot PNG redrawn after each epoch.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import keras
from tfpanc.result_files import save_figure, write_csv_rows


class RunLog:
    """Appends timestamped lines to ``<run>/train.log`` and echoes them.

    Args:
        path: the log file.
        echo: also print each line.
    """

    def __init__(self, path, echo=True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.echo = echo

    def __call__(self, message):
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        with open(self.path, "a") as f:
            f.write(line + "\n")
        if self.echo:
            print(line, flush=True)


class HistoryCallback(keras.callbacks.Callback):
    """Writes one CSV row per epoch (with the phase and K) and logs it.

    Args:
        csv_path: ``history.csv`` of the run; appended to, so it spans phases.
        phase: name of the training phase (``pnet_k3``, ``birnn``, ...).
        log: a :class:`RunLog`.
        extra: constant columns for this phase, e.g. ``{"K": 3}``.
        plot_path: if given, the progress plot is redrawn there each epoch.
    """

    def __init__(self, csv_path, phase, log, extra=None, plot_path=None):
        super().__init__()
        self.csv_path = Path(csv_path)
        self.phase = phase
        self.log = log
        self.extra = dict(extra or {})
        self.plot_path = plot_path
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def _write_row(self, epoch, logs, seconds):
        row = {"phase": self.phase, "epoch": epoch + 1, **self.extra, "seconds": seconds, **logs}
        # A row written again (an epoch resumed from its last mid-epoch backup) replaces the old one.
        rows = [r for r in read_history(self.csv_path)
                if (r.get("phase"), r.get("epoch")) != (self.phase, str(epoch + 1))]
        rows.append({k: str(v) for k, v in row.items()})
        columns = []
        for r in rows:
            columns += [c for c in r if c not in columns]
        write_csv_rows(self.csv_path, [{c: r.get(c, "") for c in columns} for r in rows], columns)

    def add_missing_rows(self, epoch_logs):
        """Rows for finished epochs (a backup's record) that a kill kept out of the history."""
        have = {r.get("epoch") for r in read_history(self.csv_path) if r.get("phase") == self.phase}
        for epoch, logs in enumerate(epoch_logs):
            if str(epoch + 1) not in have:
                self._write_row(epoch, logs, "")
                self.log(f"{self.phase} epoch {epoch + 1}: {self._shown(logs)} (from the backup: the run "
                         "was killed before its history row)")

    @staticmethod
    def _shown(logs):
        return ", ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_dsc") or k.startswith("val_"))

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        seconds = round(time.time() - (self._start or time.time()), 2)
        self._write_row(epoch, logs, seconds)
        self.log(f"{self.phase} epoch {epoch + 1}: {self._shown(logs)} ({seconds} s)")
        if self.plot_path:
            plot_history(self.csv_path, self.plot_path)


def read_history(csv_path):
    path = Path(csv_path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def plot_history(csv_path, png_path):
    """Draws losses, validation DSC and K per epoch from ``history.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(csv_path)
    if not rows:
        return
    x = list(range(1, len(rows) + 1))
    fig, (ax_loss, ax_k) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1]})
    ax_loss.plot(x, [_num(r.get("loss")) for r in rows], label="train loss")
    if any(r.get("val_dsc") for r in rows):
        ax_dsc = ax_loss.twinx()
        ax_dsc.plot(x, [_num(r.get("val_dsc")) for r in rows], "g.-", label="val DSC")
        ax_dsc.set_ylabel("validation DSC")
        ax_dsc.set_ylim(0, 1)
        ax_dsc.legend(loc="upper right")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper left")
    ax_k.step(x, [_num(r.get("K")) for r in rows], where="mid")
    ax_k.set_ylabel("K (units)")
    ax_k.set_xlabel("epoch (all phases)")
    phases = [r["phase"] for r in rows]
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            for ax in (ax_loss, ax_k):
                ax.axvline(i + 0.5, color="grey", lw=0.5)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        save_figure(fig, png_path, dpi=80)
    finally:
        plt.close(fig)
