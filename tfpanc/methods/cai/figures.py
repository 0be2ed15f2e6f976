"""Cai et al.'s Figs. 5-7 from evaluated cai runs (for ``tfpanc.compare``'s report).

* Fig. 5: mean DSC against the probability threshold, one curve per
  PNet-MSA experiment (loss, modality), from each fold's
  ``eval/threshold_sweep.csv`` weighted by its number of cases (a BiRNN
  run's "PNet-MSA alone" curve stands for its loss when no PNet-MSA run
  does).
* Fig. 6: automatic against manual pancreas volume per case, with the
  linear fit's R^2 (``scipy.stats.linregress``), per experiment.
* Fig. 7-style: per-case DSC of a BiRNN experiment, cases sorted by the
  CNN-alone DSC, with and without the BiRNN.

Each PNG has a CSV of the numbers drawn beside it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tfpanc.compare.figures import pyplot, save_and_close
from tfpanc.result_files import write_csv_rows


def _label(exp):
    return f"{exp.key.get('model')} {exp.key.get('loss')} ({exp.key.get('modality')})"


def _fold_sweep(run_dir):
    path = Path(run_dir) / "eval" / "threshold_sweep.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]} if rows else None


def threshold_curves(experiments):
    """``{curve label: (thresholds, mean DSC)}``, folds weighted by their case counts."""
    curves = {}
    for exp in experiments:
        if exp.key.get("model") not in ("pnet_msa", "pnet_msa_birnn"):
            continue
        column = "final" if exp.key["model"] == "pnet_msa" else "PNet-MSA alone"
        label = f"PNet-MSA {exp.key.get('loss')} ({exp.key.get('modality')})"
        if label in curves and exp.key["model"] == "pnet_msa_birnn":
            continue
        sums, weight, thresholds = None, 0, None
        for run, info in zip(exp.runs, exp.infos):
            sweep = _fold_sweep(run)
            if sweep is None or column not in sweep:
                continue
            n = max(1, sum(1 for r in exp.rows if r.get("fold") == info.get("fold")))
            thresholds = sweep["threshold"]
            sums = sweep[column] * n if sums is None else sums + sweep[column] * n
            weight += n
        if weight:
            curves[label] = (thresholds, sums / weight)
    return curves


def volume_fit(rows):
    """``(manual, automatic, r_squared)`` mL of the rows with both volumes; R^2 None below 3 cases."""
    from scipy import stats

    pairs = [(r["label_volume_ml"], r["volume_ml"]) for r in rows
             if isinstance(r.get("label_volume_ml"), float) and isinstance(r.get("volume_ml"), float)]
    manual, auto = (np.array(v) for v in zip(*pairs)) if pairs else (np.array([]), np.array([]))
    r2 = float(stats.linregress(manual, auto).rvalue ** 2) if len(pairs) >= 3 and np.ptp(manual) > 0 else None
    return manual, auto, r2


def write_figures(experiments, out):
    """Writes the figures the experiments can fill under ``out``; returns ``[(title, png name)]``."""
    plt = pyplot()
    out = Path(out)
    made = []
    curves = threshold_curves(experiments)
    if curves:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        rows = []
        for label, (t, dsc) in curves.items():
            ax.plot(t, 100 * dsc, marker="o", ms=3, label=label)
            rows += [{"curve": label, "threshold": f"{a:.2f}", "dsc": f"{b:.5f}"} for a, b in zip(t, dsc)]
        ax.set_xlabel("probability threshold")
        ax.set_ylabel("mean DSC (%)")
        ax.set_title("Fig. 5: DSC against the threshold", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save_and_close(fig, out / "cai_fig5_threshold.png")
        write_csv_rows(out / "cai_fig5_threshold.csv", rows)
        made.append(("Cai Fig. 5: DSC against the probability threshold", "cai_fig5_threshold.png"))
    fits = [(exp, *volume_fit(exp.rows)) for exp in experiments]
    fits = [f for f in fits if len(f[1])]
    if fits:
        fig, ax = plt.subplots(figsize=(4.8, 4.4))
        rows = []
        for exp, manual, auto, r2 in fits:
            ax.scatter(manual, auto, s=12, label=f"{_label(exp)}" + (f", R² {r2:.3f}" if r2 is not None else ""))
            rows += [{"experiment": _label(exp), "manual_ml": f"{m:.3f}", "automatic_ml": f"{a:.3f}",
                      "r_squared": "" if r2 is None else f"{r2:.5f}"} for m, a in zip(manual, auto)]
        top = max(max(m.max(), a.max()) for _, m, a, _ in fits)
        ax.plot([0, top], [0, top], color="grey", lw=0.8)
        ax.set_xlabel("manual volume (mL)")
        ax.set_ylabel("automatic volume (mL)")
        ax.set_title("Fig. 6: automatic against manual volume", fontsize=9)
        ax.legend(fontsize=7)
        save_and_close(fig, out / "cai_fig6_volume.png")
        write_csv_rows(out / "cai_fig6_volume.csv", rows)
        made.append(("Cai Fig. 6: automatic against manual volume", "cai_fig6_volume.png"))
    for i, exp in enumerate(e for e in experiments if e.cnn_rows):
        cnn = {r["case"]: r["dsc"] for r in exp.cnn_rows if isinstance(r.get("dsc"), float)}
        both = sorted((cnn[r["case"]], r["dsc"], r["case"]) for r in exp.rows
                      if r["case"] in cnn and isinstance(r.get("dsc"), float))
        if not both:
            continue
        name = f"cai_fig7_per_case_{i}.png"
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
        x = np.arange(len(both))
        ax.plot(x, [100 * b[0] for b in both], "o-", ms=3, label="PNet-MSA alone")
        ax.plot(x, [100 * b[1] for b in both], "s-", ms=3, label="PNet-MSA + BiRNN")
        ax.set_xlabel("case (sorted by the CNN-alone DSC)")
        ax.set_ylabel("DSC (%)")
        ax.set_title(f"Fig. 7-style per-case DSC, {_label(exp)}", fontsize=9)
        ax.legend(fontsize=7)
        save_and_close(fig, out / name)
        write_csv_rows(out / name.replace(".png", ".csv"),
                       [{"case": c, "cnn_dsc": f"{a:.5f}", "birnn_dsc": f"{b:.5f}"} for a, b, c in both])
        made.append((f"Cai Fig. 7-style: per-case DSC with and without the BiRNN, {_label(exp)}", name))
    return made
