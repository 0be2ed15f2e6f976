r"""Tables 1 and 2 of the two-stage paper from trained folds, and center loss on vs off.

Usage::

    python -m tfpanc.methods.two_stage.tables --model_dir=runs/two_stage/fold0 \
        [--model_dir=runs/two_stage/fold1 ...] [--nocenter_dir=runs/two_stage_nocenter/fold0 ...] \
        [--output_dir=runs/two_stage/tables]

Each run is scored on its held-out fold (``run.json``'s split); a run whose
``eval/tables.json`` exists (written by training) is read, not predicted
again. Printed and written (``--output_dir``, default ``tables/`` beside the
runs): per fold and pooled, Table 1 (stage 1 and stage 2 DSC), Table 2
(box 1 and box 2 recall and IoU) and each box alone against the vote, as
mean ± std, max, min in percent (``tables.json``, ``per_fold.csv``,
``per_case.csv``). With ``--nocenter_dir`` (the same folds trained with
``--center_gamma=0``), the pooled rows of both and ``center_loss_curves.png``:
each stage's training loss and validation DSC per epoch, center loss on and
off side by side (the paper: the center term speeds convergence and adds
isolated false positives).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from absl import flags

from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.result_files import save_figure

ON_OFF = ("center loss on", "center loss off")


def define_flags(fv):
    flags.DEFINE_multi_string("model_dir", [], "A trained two_stage run (one fold); repeatable.", flag_values=fv)
    flags.DEFINE_multi_string("nocenter_dir", [], "The same folds trained with --center_gamma=0; repeatable.",
                              flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where the tables and the figure go.", flag_values=fv)


def _run_info(run_dir):
    from tfpanc.training.run_dir import RunDir

    info = RunDir(run_dir).run_info()
    if info.get("method") != "two_stage":
        raise InputError(Path(run_dir) / "run.json", f"is a {info.get('method')} run, not two_stage")
    return info


def fold_rows(run_dir, info, log=print):
    """The per-case rows of one run's held-out fold (from ``eval/tables.json`` when present)."""
    saved = Path(run_dir) / "eval" / "tables.json"
    if saved.exists():
        try:
            return json.loads(saved.read_text())["cases"]
        except (ValueError, KeyError):
            raise InputError(saved, "is not a two_stage tables file; delete it to evaluate again") from None
    from tfpanc.data.cache import CaseCache
    from tfpanc.methods.two_stage.evaluation import evaluate_cases
    from tfpanc.methods.two_stage.predictor import TwoStagePredictor

    cases = info["split"]["test"]
    if not cases:
        raise InputError(run_dir, "has no held-out cases (trained with --fold=-1)")
    return evaluate_cases(TwoStagePredictor.load(run_dir), CaseCache(info["data_dir"]), cases, log=log)


def plot_center_curves(runs_by_setting, path):
    """Training loss and validation DSC per epoch of each stage, for each setting (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfpanc.training.callbacks import read_history

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), squeeze=False)
    for col, stage in enumerate(("coarse", "fine")):
        for setting, runs in runs_by_setting.items():
            for n, run in enumerate(runs):
                history = read_history(Path(run) / stage / "history.csv")
                epochs = range(1, len(history) + 1)
                style = "-" if setting == ON_OFF[0] else "--"
                label = setting if n == 0 else None
                color = "C0" if setting == ON_OFF[0] else "C3"
                axes[0, col].plot(epochs, [float(r["loss"]) for r in history], style, color=color, label=label,
                                  alpha=0.8)
                dsc = [float(r["val_dsc"]) if r.get("val_dsc") not in (None, "") else float("nan")
                       for r in history]
                axes[1, col].plot(epochs, dsc, style, color=color, label=label, alpha=0.8)
        axes[0, col].set_title(f"{stage}: training loss (Dice + gamma center, then Dice)")
        axes[1, col].set_title(f"{stage}: validation DSC")
        axes[1, col].set_xlabel("epoch")
        for row in range(2):
            axes[row, col].legend()
            axes[row, col].grid(alpha=0.3)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)


def run_tables(model_dirs, nocenter_dirs=(), output_dir=None, log=print):
    """Scores the runs and writes the tables; returns ``{setting: pooled rows}``."""
    from tfpanc.methods.two_stage.evaluation import format_rows, table_rows
    from tfpanc.result_files import write_csv_rows, write_json

    if not model_dirs:
        raise InputError("--model_dir", "is required")
    settings = {ON_OFF[0]: list(model_dirs)}
    if nocenter_dirs:
        settings[ON_OFF[1]] = list(nocenter_dirs)
    infos = {d: _run_info(d) for dirs in settings.values() for d in dirs}  # all checked before any work
    out = Path(output_dir) if output_dir else Path(
        os.path.commonpath([os.path.abspath(d) for d in infos])) / "tables"
    pooled, per_fold, all_cases = {}, [], []
    for setting, dirs in settings.items():
        rows = []
        for d in dirs:
            fold = fold_rows(d, infos[d], log=log)
            for r in table_rows(fold):
                per_fold.append({"setting": setting, "run": str(d), "fold": infos[d]["fold"], **r})
            log(f"{setting}, fold {infos[d]['fold']} ({d}):\n{format_rows(table_rows(fold))}")
            rows += [{**r, "setting": setting, "run": str(d)} for r in fold]
        pooled[setting] = table_rows(rows)
        all_cases += rows
        log(f"{setting}, pooled over {len(dirs)} fold(s), {len(rows)} cases:\n{format_rows(pooled[setting])}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "tables.json", {"pooled": pooled, "per_fold": per_fold})
    write_csv_rows(out / "per_fold.csv", per_fold)
    write_csv_rows(out / "per_case.csv", all_cases)
    if nocenter_dirs:
        plot_center_curves(settings, out / "center_loss_curves.png")
    log(f"written under {out}")
    return pooled


def main(argv, fv):
    run_tables(list(fv.model_dir) + list(argv[1:]), fv.nocenter_dir, fv.output_dir)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
