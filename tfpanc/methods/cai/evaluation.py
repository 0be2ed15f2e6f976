"""A trained cai run's evaluation in the paper's form.

:func:`evaluate_run` predicts a fold's validation cases and writes, under
``<run>/eval``: ``per_case.csv`` and ``summary.json`` (DSC, JI, precision,
recall, AVD, HD95, ... as mean ± std [min, max], Tables I-III), the
threshold sweep 0.05-0.95 of Fig. 5 (``threshold_sweep.csv`` and ``.png``),
and for BiRNN runs the same metrics of the CNN alone, with the number of
abnormal shape changes (slice-to-slice AVD > 0.5 mm) before and after the
BiRNN (Sec. IV-D).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpanc.methods.cai.predictor import CaiPredictor
from tfpanc.metrics import all_metrics, format_table, summarize
from tfpanc.metrics.threshold_sweep import THRESHOLDS, plot_threshold_sweep, threshold_sweep
from tfpanc.result_files import write_csv_rows, write_json, written_together

PAPER_METRICS = ("dsc", "jaccard", "precision", "recall", "avd", "hd95", "assd", "volume_ml",
                 "label_volume_ml", "abnormal_shape_changes", "mean_slice_avd")


def evaluate_run(run_dir, cache, case_ids, log=print, threshold=None, output_dir=None):
    """Predicts ``case_ids`` of ``cache`` with a run; writes and returns the summaries."""
    predictor = CaiPredictor(run_dir)
    threshold = predictor.threshold if threshold is None else float(threshold)
    out_dir = Path(output_dir or Path(run_dir) / "eval")
    rows, cnn_rows, sweeps, cnn_sweeps = [], [], [], []
    for cid in case_ids:
        case = cache.case(cid)
        label = np.asarray(case.label) > 0
        probs = predictor(np.asarray(case.image), with_cnn_only=True)
        row = all_metrics(probs["probability"] > threshold, label, case.spacing, PAPER_METRICS)
        rows.append({"case": cid, **row})
        sweeps.append(threshold_sweep(probs["probability"], label))
        line = f"{cid}: DSC {100 * row['dsc']:.1f}%, AVD {row['avd']:.2f} mm"
        if "cnn_probability" in probs:
            cnn_row = all_metrics(probs["cnn_probability"] > threshold, label, case.spacing, PAPER_METRICS)
            cnn_rows.append({"case": cid, **cnn_row})
            cnn_sweeps.append(threshold_sweep(probs["cnn_probability"], label))
            line += (f" (CNN alone: DSC {100 * cnn_row['dsc']:.1f}%, AVD {cnn_row['avd']:.2f} mm; "
                     f"abnormal shape changes {cnn_row['abnormal_shape_changes']:.0f} -> "
                     f"{row['abnormal_shape_changes']:.0f}, mean slice-to-slice AVD "
                     f"{cnn_row['mean_slice_avd']:.2f} -> {row['mean_slice_avd']:.2f} mm)")
        log(line)
    result = {"threshold": threshold, "cases": list(case_ids), "final": summarize(rows, PAPER_METRICS)}
    curves = {"final": np.mean(sweeps, axis=0)}
    if cnn_rows:
        result["cnn_only"] = summarize(cnn_rows, PAPER_METRICS)
        curves = {"PNet-MSA + BiRNN": curves["final"], "PNet-MSA alone": np.mean(cnn_sweeps, axis=0)}
    result["threshold_sweep"] = {"thresholds": THRESHOLDS.tolist(),
                                 **{k: np.round(v, 5).tolist() for k, v in curves.items()}}
    with written_together(folder=out_dir):  # the evaluation's files appear together, or none
        write_csv_rows(out_dir / "per_case.csv", rows)
        if cnn_rows:
            write_csv_rows(out_dir / "per_case_cnn_only.csv", cnn_rows)
        write_csv_rows(out_dir / "threshold_sweep.csv",
                       [{"threshold": t, **{k: f"{v[i]:.5f}" for k, v in curves.items()}}
                        for i, t in enumerate(THRESHOLDS)])
        plot_threshold_sweep(THRESHOLDS, curves, out_dir / "threshold_sweep.png",
                             f"threshold vs DSC ({len(case_ids)} cases)")
        write_json(out_dir / "summary.json", result)
    log("evaluation at threshold %.2f over %d cases:\n%s" % (threshold, len(case_ids),
                                                             format_table(result["final"])))
    if cnn_rows:
        log("CNN alone (before the BiRNN):\n" + format_table(result["cnn_only"]))
    return result
