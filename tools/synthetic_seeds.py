r"""How far does the seed move a sim-to-real result, and is one setting better than another over seeds? (#17)

One run per setting cannot say: on the 15 NIH slices the same recipe
trained with ``--seed`` 0, 1 and 2 scored 31.2, 15.1 and 13.6 % DSC. Given
each setting's finished runs (a glob; each run's seed is read from its
``flags.cfg``, default 0), this prints, per setting, the phantom held-out
DSC and every real folder's mean DSC for each seed, their mean ± std over
seeds, and each setting against ``--baseline`` paired by seed
(:func:`tfpanc.metrics.paired.paired_tests`: the t-test and Wilcoxon over
seeds). With ``--ensemble_dir`` it also scores each setting's runs together
as one ensemble (``evaluate_real`` with every run in ``--model_dir``: the
voxels most of them mark) on each ``--real_dirs`` folder.

The runs are scored on a real folder beforehand (``tools/synthetic_ladder.py
--real_dirs`` writes ``<run>/real/<folder>/summary.json``); a run without a
folder's summary is left out of that folder's column, and says so.

    python tools/synthetic_seeds.py \
        --setting='phantom look=runs/synthetic/r0_phantom_long_single50_final3e3*' \
        --setting='shapes=runs/synthetic/r0_phantom_shapes_single50_final3e3;runs/synthetic/r0_phantom_shapes_single50_final3e3_seed?' \
        --real_dirs=../shared/realdata/totalsegmentator_s0009,../shared/realdata/nih_pancreas_ct_slices \
        [--ensemble_dir=runs/synthetic/ensembles]
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tfpanc.metrics.paired import describe, paired_tests  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("setting", [], "NAME=GLOB[;GLOB...]: the finished runs of one setting, one per seed.")
flags.DEFINE_string("baseline", None, "The setting every other is compared with (default: the first).")
flags.DEFINE_list("real_dirs", [], "Real labelled folders the runs were scored on (their names are the columns).")
flags.DEFINE_string("ensemble_dir", None, "Also score each setting's runs as one ensemble into DIR/<setting>/.")


def seed_of(run):
    seed = 0
    for line in (Path(run) / "flags.cfg").read_text().splitlines():
        if line.startswith("--seed="):
            seed = int(line.split("=", 1)[1])
    return seed


def results_of(run, folders):
    """``{column: DSC fraction}``: the phantom held-out fold's and each real folder's scored so far."""
    out = {}
    phantom = Path(run) / "eval" / "summary.json"
    if phantom.exists():
        out["phantom held-out"] = json.loads(phantom.read_text())["final"]["dsc"]["mean"]
    for folder in folders:
        summary = Path(run) / "real" / folder / "summary.json"
        if summary.exists():
            out[folder] = json.loads(summary.read_text())["dsc_mean"]
    return out


def parse_settings(specs):
    settings = {}
    for spec in specs:
        name, sep, pattern = spec.partition("=")
        runs = sorted({p for one in pattern.split(";") if one for p in glob.glob(one)
                       if (Path(p) / "flags.cfg").exists()}) if sep else []
        if not name or not runs:
            raise app.UsageError(f"--setting={spec}: want NAME=GLOB[;GLOB...] matching finished runs")
        by_seed = {}
        for run in runs:
            seed = seed_of(run)
            if seed in by_seed:
                raise app.UsageError(f"--setting={spec}: {by_seed[seed]} and {run} both have seed {seed}")
            by_seed[seed] = run
        settings[name] = by_seed
    return settings


def ensemble(name, by_seed, out_dir):
    """The setting's runs scored together on each real folder: ``{folder: DSC fraction}``."""
    scores = {}
    for folder in FLAGS.real_dirs:
        out = Path(out_dir) / name.replace(" ", "_") / Path(folder).resolve().name
        done = subprocess.run([sys.executable, "-m", "tfpanc.evaluate_real",
                               f"--model_dir={','.join(by_seed.values())}", f"--real_dir={folder}",
                               f"--output_dir={out}", "--nofigure"], cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"error: evaluate_real of {name} failed: {done.stderr.strip().splitlines()[-1:]}")
        scores[Path(folder).resolve().name] = json.loads((out / "summary.json").read_text())["dsc_mean"]
    return scores


def main(argv):
    del argv
    settings = parse_settings(FLAGS.setting)
    baseline = FLAGS.baseline or next(iter(settings))
    if baseline not in settings:
        raise app.UsageError(f"--baseline={baseline}: not one of the settings ({', '.join(settings)})")
    folders = [Path(f).resolve().name for f in FLAGS.real_dirs]
    columns = ["phantom held-out", *folders]
    table = {name: {seed: results_of(run, folders) for seed, run in by_seed.items()}
             for name, by_seed in settings.items()}
    print("DSC % per seed (synthetic phantom held-out fold; real folders: models that never saw a real image)")
    for column in columns:
        print(f"\n{column}")
        for name, by_seed in table.items():
            values = {seed: r[column] for seed, r in sorted(by_seed.items()) if column in r}
            missing = sorted(set(by_seed) - set(values))
            cells = " ".join(f"s{seed} {100 * v:5.1f}" for seed, v in values.items())
            spread = (f"mean {100 * np.mean(list(values.values())):5.1f} +- "
                      f"{100 * np.std(list(values.values()), ddof=1):4.1f}" if len(values) > 1 else "")
            print(f"  {name:18s} {cells}  {spread}" + (f"  (not scored: seeds {missing})" if missing else ""))
        for name in table:
            if name != baseline:
                pairs = [{seed: r.get(column) for seed, r in table[s].items()} for s in (name, baseline)]
                print("  " + describe(paired_tests(*pairs), name, baseline).replace("cases", "seeds"))
    if FLAGS.ensemble_dir:
        print("\nEnsembles (each setting's runs voting together), DSC %")
        for name, by_seed in settings.items():
            scores = ensemble(name, by_seed, FLAGS.ensemble_dir)
            print(f"  {name:18s} {len(by_seed)} runs: " +
                  ", ".join(f"{folder} {100 * v:.1f}" for folder, v in scores.items()))


if __name__ == "__main__":
    app.run(main)
