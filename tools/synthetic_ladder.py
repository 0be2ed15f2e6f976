"""The sim-to-real ablation ladder (issue #17): train each rung, score it on real CT, print the table.

For each rung config (``configs/synthetic/<rung>.cfg``): ``python -m
tfpanc.train`` (skipped when the run is finished: train resumes or skips
finished phases itself), then ``python -m tfpanc.evaluate_real`` on every
``--real_dirs`` folder. The table has the held-out phantom fold's DSC (the
train command's evaluation) and each real folder's mean DSC over its cases.

Settings are chosen on the TotalSegmentator cases; the NIH slices are the
final, untuned figure (list them last and read them last).

Usage:
    python tools/synthetic_ladder.py \\
        --real_dirs=../shared/realdata/totalsegmentator_s0009,../shared/realdata/totalsegmentator_example,../shared/realdata/nih_pancreas_ct_slices
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_list("rungs", ["r0_phantom", "r1_intensity", "r2_resolution", "r3_deformation", "r4_shapes",
                            "r5_real_shapes"],
                  "Config names under configs/synthetic/.")
flags.DEFINE_list("real_dirs", [], "Real labelled folders (slices or volumes) to score every rung on.")
flags.DEFINE_list("extra_flags", [], "Flags appended to every train command (e.g. --steps_per_epoch=100).")
flags.DEFINE_string("model_dir_suffix", "", "Appended to each rung's --model_dir (a second ladder beside the first).")
flags.DEFINE_bool("train", True, "Train the rungs (off: only score and tabulate finished runs).")


def model_dir_of(config):
    for line in config.read_text().splitlines():
        if line.startswith("--model_dir="):
            return line.split("=", 1)[1] + FLAGS.model_dir_suffix
    raise SystemExit(f"error: {config}: no --model_dir line")


def run(cmd):
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: {cmd[2]} failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def phantom_dsc(model_dir):
    path = REPO / model_dir / "eval" / "summary.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["final"]["dsc"]["mean"]


def main(argv):
    del argv
    rows = []
    for rung in FLAGS.rungs:
        config = REPO / "configs" / "synthetic" / f"{rung}.cfg"
        model_dir = model_dir_of(config)
        if FLAGS.train:
            run([sys.executable, "-m", "tfpanc.train", f"--flagfile={config}", f"--model_dir={model_dir}",
                 *FLAGS.extra_flags])
        real = []
        for folder in FLAGS.real_dirs:
            out = REPO / model_dir / "real" / Path(folder).resolve().name
            run([sys.executable, "-m", "tfpanc.evaluate_real", f"--model_dir={model_dir}", f"--real_dir={folder}",
                 f"--output_dir={out}"])
            real.append(json.loads((out / "summary.json").read_text()))
        rows.append((rung, phantom_dsc(model_dir), real))
    names = [Path(f).resolve().name for f in FLAGS.real_dirs]
    print("\nDSC % (mean over cases; real folders: a model that never saw a real image)")
    print(f"{'rung':18s} {'phantom held-out':>17s} " + " ".join(f"{n:>28s}" for n in names))
    for rung, ph, real in rows:
        cells = [f"{100 * r['dsc_mean']:5.1f} +- {100 * r['dsc_std']:4.1f} (n={r['cases']})" for r in real]
        print(f"{rung:18s} {'-' if ph is None else f'{100 * ph:.1f}':>17s} " + " ".join(f"{c:>28s}" for c in cells))


if __name__ == "__main__":
    app.run(main)
