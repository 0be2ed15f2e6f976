r"""``kill -9`` the train command at random moments, rerun it, and compare with an uninterrupted run.

Trains a small cai run (growth K=1..2, the final phase, the BiRNN) on a
phantom cache once without interruption, then again under ``kill -9``:
until each phase was killed ``--kills_per_phase`` times, it reruns the
command, waits until a phase that wants kills starts (its "training up to"
log line), sleeps a random fraction of that phase and kills the process;
finally it lets the rerun finish. It prints where each kill landed and where each rerun
resumed, and checks: the same phases and epochs per phase in ``state.json``,
the same history rows (phase, epoch) with their losses, no epoch trained to
its end twice (each "<phase> epoch N:" line once in ``train.log``), and the
final weights of the two runs.

Usage::

    python tools/kill_resume_check.py [--kills_per_phase=2] [--seed=0] [--workdir=/tmp/kill_resume]

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHASES = ["pnet_k1", "pnet_k2", "pnet_final", "birnn"]
FLAGS = ["--method=cai", "--model=pnet_msa_birnn", "--num_units=2", "--filters=4", "--batch_size=4",
         "--steps_per_epoch=48", "--epochs_per_unit=2", "--final_epochs=2", "--growth_patience=5",
         "--rnn_epochs=2", "--rnn_length=4", "--rnn_batch_size=1", "--verbose=0", "--noevaluate",
         "--phantom_shape=64,64,32", "--phantom_cases=4"]


def _command(workdir, run):
    return [sys.executable, "-m", "tfpanc.train", *FLAGS, f"--data_dir={workdir / 'cache'}", f"--model_dir={run}"]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _log(run):
    path = run / "train.log"
    return path.read_text() if path.exists() else ""


def _history(run):
    with open(run / "history.csv", newline="") as f:
        return [(r["phase"], int(r["epoch"]), float(r["loss"])) for r in csv.DictReader(f)]


def _weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj)) if isinstance(obj, h5py.Dataset)
                     else None)
    return out


def _phase_seconds(run):
    """Seconds from each phase's "training up to" line to its last epoch's line (train.log's clock)."""
    begun, ended = {}, {}
    for line in _log(run).splitlines():
        stamp, text = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")), line[20:]
        start, epoch = re.match(r"(\w+): training up to", text), re.match(r"(\w+) epoch \d+: ", text)
        if start:
            begun.setdefault(start.group(1), stamp)
        elif epoch:
            ended[epoch.group(1)] = stamp
    return {p: max(1.0, ended[p] - begun[p]) for p in begun if p in ended}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills_per_phase", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/kill_resume")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    whole, killed = workdir / "whole", workdir / "killed"

    start = time.time()
    subprocess.run(_command(workdir, whole), check=True, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL)
    print(f"uninterrupted run: {time.time() - start:.0f} s")
    seconds = _phase_seconds(whole)
    print("phase seconds (uninterrupted): " + ", ".join(f"{p} {v:.0f}" for p, v in seconds.items()))

    kills, counts = [], {phase: 0 for phase in PHASES}
    started = re.compile(r"(\w+): training up to")
    while min(counts.values()) < args.kills_per_phase and len(kills) < 4 * len(PHASES) * args.kills_per_phase:
        proc = subprocess.Popen(_command(workdir, killed), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # The phase to kill in: the first one this rerun starts that still wants kills.
        seen, phase = len(started.findall(_log(killed))), None
        while proc.poll() is None:
            found = started.findall(_log(killed))
            if len(found) > seen:
                seen = len(found)
                if counts.get(found[-1], args.kills_per_phase) < args.kills_per_phase:
                    phase = found[-1]
                    break
            time.sleep(0.05)
        if phase is None:  # the rerun finished every phase
            break
        if counts[phase] % 2 == 0:
            # Anywhere in the phase's tracing and training (a resumed phase has less left: it may miss).
            delay = rng.uniform(0.2, 0.95) * seconds[phase]
        else:
            # Surely while it trains (tracing takes longer under load): soon after its next backup.
            progress = killed / "backup" / phase / "progress.json"
            before = progress.read_text() if progress.exists() else None
            while proc.poll() is None and (not progress.exists() or progress.read_text() == before):
                time.sleep(0.05)
            delay = rng.uniform(0.0, 0.15) * seconds[phase]
        time.sleep(delay)
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        counts[phase] += 1
        last = [x for x in _log(killed).splitlines() if " epoch " in x or "resuming" in x][-1:]
        kills.append((phase, round(delay, 2), alive))
        print(f"kill in {phase} after {delay:.2f} s{'' if alive else ' (it had finished)'}; "
              f"last line: {last[0][20:] if last else '-'}")
    final = subprocess.run(_command(workdir, killed), env=_env(), cwd=REPO, capture_output=True, text=True)
    if final.returncode != 0:
        print(final.stderr[-3000:])
        return 1

    failures = []
    log = _log(killed)
    resumes = re.findall(r"(\w+): resuming at epoch (\d+), step (\d+) of (\d+)", log)
    print("resumed at: " + "; ".join(f"{p} epoch {e} step {s}/{n}" for p, e, s, n in resumes))
    done = [json.loads((r / "state.json").read_text())["done"] for r in (whole, killed)]
    phases = [{p: v["epochs"] for p, v in d.items()} for d in done]
    print(f"phases and epochs: uninterrupted {phases[0]}, killed {phases[1]}")
    if phases[0] != phases[1]:
        failures.append("the phases or their epoch counts differ")
    ends = re.findall(r"(\w+) epoch (\d+): ", log)
    twice = sorted({e for e in ends if ends.count(e) > 1})
    print(f"epochs trained to their end twice: {twice or 'none'}")
    if twice:
        failures.append(f"epochs trained twice: {twice}")
    h0, h1 = _history(whole), _history(killed)
    if [r[:2] for r in h0] != [r[:2] for r in h1]:
        failures.append("history rows differ")
    else:
        diff = max(abs(a[2] - b[2]) / max(abs(a[2]), 1e-12) for a, b in zip(h0, h1))
        print(f"history: {len(h1)} rows, largest relative loss difference {diff:.2e}")
        if diff > 1e-3:
            failures.append(f"losses differ by {diff:.2e}")
    for name in ("birnn_cnn.weights.h5", "birnn_head.weights.h5"):
        a, b = _weights(whole / name), _weights(killed / name)
        # The layers' variables (a phase loaded from disk is saved without its optimizer's).
        diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a if not k.startswith("optimizer"))
        print(f"{name}: largest weight difference {diff:.2e}")
        if diff > 1e-3:
            failures.append(f"{name} differs by {diff:.2e}")
    leftovers = [p for p in killed.rglob(".*tfpanc-tmp-*")]
    print(f"temporaries left: {len(leftovers)}; backups left: {sorted(p.name for p in (killed / 'backup').glob('*'))}"
          if (killed / "backup").exists() else f"temporaries left: {len(leftovers)}; backups left: none")
    print(f"{len(kills)} kills, {sum(alive for *_, alive in kills)} of them while training; "
          + ("all checks passed" if not failures else "FAILED: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
