"""Pooled 4-fold report from fabricated fold evaluations (analytic means, refusals)."""

import csv
import json
import statistics
import subprocess
import sys

import numpy as np
import pytest

from tfpanc import cv_report
from tfpanc.errors import InputError

THRESHOLDS = [0.05, 0.5, 0.95]


def _write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _fold(root, fold, cases, model="pnet_msa_birnn", sweep=True, cnn=True, **info):
    """A fold run with eval files; cases: [(id, dsc, avd, shape changes after, before)]."""
    run = root / f"f{fold}"
    run.mkdir(parents=True)
    meta = {"method": "cai", "model": model, "loss": "jac", "modality": "ct", "fold": fold, "threshold": 0.5}
    (run / "run.json").write_text(json.dumps({**meta, **info}))
    header = ["case", "dsc", "jaccard", "avd", "abnormal_shape_changes"]
    _write_csv(run / "eval" / "per_case.csv", header,
               [(c, d, d / (2 - d), a, after) for c, d, a, after, _ in cases])
    if cnn:
        _write_csv(run / "eval" / "per_case_cnn_only.csv", header,
                   [(c, d - 0.1, (d - 0.1) / (2.1 - d), a + 1, before) for c, d, a, _, before in cases])
    if sweep:
        # A flat curve at this fold's own level: the pooled value is a case-weighted mean.
        level = 0.1 * (fold + 1)
        _write_csv(run / "eval" / "threshold_sweep.csv", ["threshold", "PNet-MSA + BiRNN", "PNet-MSA alone"],
                   [(t, level, level / 2) for t in THRESHOLDS])
    return run


@pytest.fixture
def four_folds(tmp_path):
    runs = [
        _fold(tmp_path, 0, [("a", 0.80, 1.0, 1, 3)]),
        _fold(tmp_path, 1, [("b", 0.90, 0.5, 0, 2), ("c", 0.70, 2.0, 2, 4)]),
        _fold(tmp_path, 2, [("d", 0.60, 3.0, 1, 1), ("e", 0.85, 0.8, 0, 1), ("f", 0.75, 1.2, 1, 2)]),
        _fold(tmp_path, 3, [("g", 0.95, 0.2, 0, 0), ("h", 0.65, 2.5, 0, 3)]),
    ]
    return tmp_path, runs


def test_pooled_statistics_are_over_all_cases(four_folds):
    _, runs = four_folds
    report = cv_report.pool_folds(runs)
    dsc = [0.80, 0.90, 0.70, 0.60, 0.85, 0.75, 0.95, 0.65]
    assert len(report.rows) == 8 and [r["fold"] for r in report.rows] == [0, 1, 1, 2, 2, 2, 3, 3]
    s = report.summary["dsc"]
    assert s["mean"] == pytest.approx(statistics.mean(dsc)) and s["std"] == pytest.approx(statistics.stdev(dsc))
    assert (s["min"], s["max"], s["n"]) == (0.60, 0.95, 8)
    assert list(report.summary)[:3] == ["dsc", "jaccard", "avd"]  # the paper's order, no 'fold' metric
    assert report.cnn_summary["dsc"]["mean"] == pytest.approx(statistics.mean(dsc) - 0.1)
    text = cv_report.format_report(report)
    assert "4-fold cross-validation of cai pnet_msa_birnn (loss jac, ct), 8 cases" in text
    mean, std = 100 * statistics.mean(dsc), 100 * statistics.stdev(dsc)
    assert f"{mean:.1f} ± {std:.1f} [60.0, 95.0]" in text
    # 3+2+4+1+1+2+0+3 = 16 before, 1+0+2+1+0+1+0+0 = 5 after.
    assert "16 before the BiRNN -> 5 after" in text


def test_threshold_sweep_weighted_by_cases_and_written(four_folds):
    root, runs = four_folds
    report = cv_report.pool_folds(runs)
    expected = (1 * 0.1 + 2 * 0.2 + 3 * 0.3 + 2 * 0.4) / 8
    np.testing.assert_allclose(report.sweep["PNet-MSA + BiRNN"], expected)
    np.testing.assert_allclose(report.sweep["PNet-MSA alone"], expected / 2)
    out = cv_report.write_report(report, root / "cv")
    with open(out / "threshold_sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert [float(r["threshold"]) for r in table] == THRESHOLDS
    assert float(table[1]["PNet-MSA + BiRNN"]) == pytest.approx(expected, abs=1e-5)
    assert (out / "threshold_sweep.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 8 and summary["final"]["dsc"]["n"] == 8
    with open(out / "per_case.csv") as f:
        assert [r["case"] for r in csv.DictReader(f)] == list("abcdefgh")
    assert (out / "report.txt").read_text().startswith("4-fold cross-validation")


def test_cnn_only_runs_and_missing_sweep(tmp_path):
    runs = [_fold(tmp_path, 0, [("a", 0.8, 1.0, 0, 0)], model="unet", cnn=False),
            _fold(tmp_path, 1, [("b", 0.6, 1.0, 0, 0)], model="unet", cnn=False, sweep=False)]
    report = cv_report.pool_folds(runs)
    assert report.cnn_summary is None and report.sweep is None
    text = cv_report.format_report(report)
    assert "unet:" in text and "CNN alone" not in text
    assert f"{runs[1]} has no eval/threshold_sweep.csv" in text
    assert report.summary["dsc"]["mean"] == pytest.approx(0.7)


def test_glob_expansion(four_folds):
    root, runs = four_folds
    assert cv_report.expand_model_dirs(f"{root}/f*") == runs
    with pytest.raises(InputError, match="matches no run folder"):
        cv_report.expand_model_dirs(f"{root}/nothing*")


def test_refusals(tmp_path):
    a = _fold(tmp_path / "dup", 0, [("a", 0.8, 1.0, 0, 0)])
    b = _fold(tmp_path / "dup", 1, [("a", 0.7, 1.0, 0, 0)])
    with pytest.raises(InputError, match="case a is also in"):
        cv_report.pool_folds([a, b])
    c = _fold(tmp_path / "mixed", 0, [("a", 0.8, 1.0, 0, 0)])
    d = _fold(tmp_path / "mixed", 1, [("b", 0.7, 1.0, 0, 0)], loss="ce")
    with pytest.raises(InputError, match="loss 'ce' differs from 'jac'"):
        cv_report.pool_folds([c, d])
    e = _fold(tmp_path / "cnn", 0, [("a", 0.8, 1.0, 0, 0)])
    f = _fold(tmp_path / "cnn", 1, [("b", 0.7, 1.0, 0, 0)], cnn=False)
    with pytest.raises(InputError, match="per_case_cnn_only.csv: missing while other folds have one"):
        cv_report.pool_folds([e, f])


def test_cli_missing_eval_one_line_nothing_written(four_folds):
    root, runs = four_folds
    (runs[2] / "eval" / "per_case.csv").unlink()
    out = subprocess.run([sys.executable, "-m", "tfpanc.cv_report", f"--model_dirs={root}/f*",
                          f"--output_dir={root / 'cv'}"], capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {runs[2] / 'eval' / 'per_case.csv'}: missing: evaluate this run first (train with --evaluate)")
    assert not (root / "cv").exists()


def test_cli_prints_and_writes(four_folds):
    root, runs = four_folds
    out = subprocess.run([sys.executable, "-m", "tfpanc.cv_report", f"--model_dirs={','.join(map(str, runs))}",
                          f"--output_dir={root / 'cv'}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "PNet-MSA + BiRNN:" in out.stdout and "CNN alone" in out.stdout
    assert (root / "cv" / "summary.json").is_file()
