"""tfpanc.compare: runs found from their records, folds pooled, paper rows beside ours, report files."""

import json
from pathlib import Path

import numpy as np
import pytest

from tfpanc.compare import compare_runs, write_report
from tfpanc.compare.tables import format_stats, paper_tables
from tfpanc.errors import InputError

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "paper_results.json"


def _run(root, name, info, rows, dataset="phantom", cnn_rows=None):
    """A finished, evaluated run folder: run.json, eval/per_case.csv and its cache's cache.json."""
    run = root / name
    (run / "eval").mkdir(parents=True)
    cache = root / f"cache_{dataset}"
    cache.mkdir(exist_ok=True)
    (cache / "cache.json").write_text(json.dumps({"dataset": dataset}))
    (run / "run.json").write_text(json.dumps(dict(info, data_dir=str(cache))))
    for file, table in (("per_case.csv", rows), ("per_case_cnn_only.csv", cnn_rows)):
        if table:
            columns = list(table[0])
            lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in table]
            (run / "eval" / file).write_text("\n".join(lines) + "\n")
    return run


def _multitask_info(fold, skeleton=True, dense=True):
    return {"method": "multitask", "fold": fold, "modality": "ct", "patch": [24, 24, 8], "step": [6, 6, 2],
            "c2_model": {"skeleton": skeleton, "dense": dense, "feature_consistency": True}}


def _multitask_rows(fold, c2, crf=None):
    rows = []
    for i, d in enumerate(c2):
        row = {"case": f"case_{fold}_{i}", "c1_dsc": 0.5, "c2_dsc": d, "c2_jaccard": d / (2 - d),
               "c2_precision": 0.6, "c2_recall": 0.4, "seconds_sliding_window": 10.0 + i}
        if crf is not None:
            row["crf_dsc"] = crf[i]
        rows.append(row)
    return rows


def _rows(report, table_id):
    return {(r["row"], r["metric"]): r for t, rows, _ in report.tables if t["id"] == table_id for r in rows}


def test_shipped_numbers_match_the_checked_transcription():
    if not REFERENCE.is_file():
        pytest.skip("../shared/reference is not beside this checkout")
    ref = json.loads(REFERENCE.read_text())
    tables = {t["id"]: t for t in paper_tables()}
    cai, ts, mt, zhou = ref["cai"], ref["two_stage"], ref["multitask"], ref["zhou"]
    assert tables["cai_I_mri"]["rows"] == cai["table_I_losses_pnet_msa"]["MRI"]
    assert tables["cai_II_ct"]["rows"] == cai["table_II_architectures"]["CT"]
    assert tables["cai_III"]["rows"] == cai["table_III_birnn_CT"]
    assert tables["zhou_1"]["rows"] == zhou["table_1"]
    assert tables["two_stage_1"]["rows"]["stage 2 (refine) F1"]["DSC"] == ts["table_1_per_fold"]["stage2"]["F1"]
    assert tables["two_stage_2"]["rows"]["box2 F3"]["IoU"] == ts["table_2_bounding_boxes"]["box2_IoU"]["F3"]
    for label, row in mt["results_NIH"].items():
        assert tables["multitask_I"]["rows"][label] == row


def test_every_shipped_table_is_well_formed():
    tables = paper_tables()
    assert len({t["id"] for t in tables}) == len(tables)
    for t in tables:
        assert t["source"] and t["dataset"] and t["metrics"] and t["method"] in {"cai", "zhou", "two_stage",
                                                                                  "multitask"}
        for label, row in t["rows"].items():
            assert set(row) <= set(t["metrics"]), (t["id"], label)
            for stats in row.values():
                assert "mean" in stats and all(np.isfinite(v) for v in stats.values())
    assert "PNet-64" in next(t for t in tables if t["id"] == "cai_II_ct")["not_reproducible"]


def test_multitask_folds_pool_into_table_one_and_ablation_rows(tmp_path):
    _run(tmp_path, "full_f0", _multitask_info(0), _multitask_rows(0, [0.4, 0.6], crf=[0.5, 0.7]))
    _run(tmp_path, "full_f1", _multitask_info(1), _multitask_rows(1, [0.5, 0.3], crf=[0.6, 0.4]))
    _run(tmp_path, "single_f0", _multitask_info(0, skeleton=False), _multitask_rows(0, [0.2, 0.3]))
    _run(tmp_path, "nodense_f0", _multitask_info(0, dense=False), _multitask_rows(0, [0.1, 0.1]))
    report = compare_runs([str(tmp_path / "*_f*")])
    rows = _rows(report, "multitask_I")
    c2 = rows[("multitask C2 (before CRF)", "DSC")]
    assert c2["cases"] == 4 and c2["ours"] == format_stats(
        {"mean": 45.0, "std": float(np.std([40, 60, 50, 30], ddof=1)), "min": 30.0, "max": 60.0})
    assert c2["difference"] == pytest.approx(45.0 - 85.9)
    assert rows[("multitask C2 + 3D dense CRF", "DSC")]["difference"] == pytest.approx(55.0 - 86.4)
    assert rows[("single-task C2", "DSC")]["cases"] == 2 and rows[("single-task C2", "DSC")]["ours"].startswith("25.0")
    assert rows[("no dense connections", "DSC")]["ours"].startswith("10.0")
    assert rows[("C1 coarse", "DSC")]["ours"].startswith("50.0 ± 0.0")
    assert rows[("no feature consistency", "DSC")]["note"].startswith("not trained")
    assert "phantom, 4 cases, 2 run(s)" in report.text and "NIH Pancreas-CT" in report.text


def test_zhou_rows_follow_the_stopping_rule_from_the_trace(tmp_path):
    info = {"method": "zhou", "fold": 0, "modality": "ct", "max_rounds": 3}
    # d(t) per round and DSC(Z(t)) for t = 0..3: case a stops at t=2 for R=0.90, never for 0.95.
    rows = [{"case": "a", "coarse_fused": 0.5, "coarse_axial": 0.4, "coarse_coronal": 0.3, "coarse_sagittal": 0.2,
             "oracle": 0.9, "d_t": "0.80 0.92 0.94", "round_dsc": "0.50 0.60 0.70 0.65"},
            {"case": "b", "coarse_fused": 0.7, "coarse_axial": 0.4, "coarse_coronal": 0.3, "coarse_sagittal": 0.2,
             "oracle": 0.8, "d_t": "0.96 0.99 1.0", "round_dsc": "0.70 0.80 0.75 0.74"}]
    _run(tmp_path, "zhou", info, rows)
    rows = _rows(compare_runs([str(tmp_path / "zhou")], paper_name="zhou"), "zhou_1")
    assert rows[("After d(t) > 0.90", "DSC")]["ours"].startswith("75.0")  # a: t=2 (70), b: t=1 (80)
    assert rows[("After d(t) > 0.90", "iterations")]["ours"].startswith("1.5")
    assert rows[("After d(t) > 0.95", "DSC")]["ours"].startswith("72.5")  # a: T=3 (65), b: t=1 (80)
    assert rows[("Best among All Iterations", "DSC")]["ours"].startswith("75.0")
    assert rows[("After 2 Iterations", "DSC")]["ours"].startswith("72.5")
    assert rows[("Coarse Segmentation", "DSC")]["ours"].startswith("60.0")
    # T = 3: "After 5" needs a case that settled (b's d(3) = 1, a fixed point: its last mask stands);
    # a ran out of rounds unsettled and is left out.
    assert rows[("After 5 Iterations", "DSC")]["ours"].startswith("74.0") and \
        rows[("After 5 Iterations", "DSC")]["cases"] == 1
    assert rows[("Oracle Bounding Box", "DSC")]["ours"].startswith("85.0")


def test_cai_birnn_run_fills_table_three_and_two_stage_folds(tmp_path):
    cai = {"method": "cai", "model": "pnet_msa_birnn", "loss": "jac", "modality": "ct", "fold": 0}
    _run(tmp_path, "cai", cai, [{"case": "a", "dsc": 0.8, "jaccard": 0.67, "avd": 0.5},
                                {"case": "b", "dsc": 0.6, "jaccard": 0.43, "avd": 0.7}],
         cnn_rows=[{"case": "a", "dsc": 0.7, "jaccard": 0.54, "avd": 0.9},
                   {"case": "b", "dsc": 0.5, "jaccard": 0.33, "avd": 1.1}])
    ts = {"method": "two_stage", "modality": "ct", "center_gamma": 0.001}
    for fold in (0, 1):
        _run(tmp_path, f"ts{fold}", dict(ts, fold=fold),
             [{"case": f"c{fold}", "stage1_dsc": 0.3 + fold / 10, "stage2_dsc": 0.6, "box1_recall": 1.0,
               "box1_iou": 0.2, "box2_recall": 0.9, "box2_iou": 0.3}])
    report = compare_runs([str(tmp_path / "cai"), f"{tmp_path / 'ts0'},{tmp_path / 'ts1'}"])
    t3 = _rows(report, "cai_III")
    assert t3[("PNet-MSA+BiRNN", "DSC")]["ours"].startswith("70.0")
    assert t3[("PNet-MSA", "AVD_mm")]["ours"].startswith("1.00")
    assert _rows(report, "cai_I_ct")[("JAC", "DSC")]["note"].startswith("CNN alone of a BiRNN run")
    t1 = _rows(report, "two_stage_1")
    assert t1[("stage 1 (coarse) F1", "DSC")]["ours"].startswith("40.0") and t1[("stage 1 (coarse) F1", "DSC")]["cases"] == 1
    assert _rows(report, "two_stage_2")[("box2 F0", "recall")]["ours"].startswith("90.0")


def test_report_files_and_refusals(tmp_path):
    _run(tmp_path, "f0", _multitask_info(0), _multitask_rows(0, [0.4, 0.6]))
    report = compare_runs([str(tmp_path / "f0")])
    out = write_report(report, tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "### multitask Table I and ablations" in md and "![multitask Table I and ablations](multitask_I.png)" in md
    lines = (out / "multitask_I.csv").read_text().splitlines()
    assert lines[0] == "row,metric,paper,ours,difference,cases,note" and any(l.startswith("multitask C2 (before CRF),DSC") for l in lines)
    import matplotlib.image as mpimg

    png = mpimg.imread(out / "multitask_I.png")
    assert png.shape[0] > 100 and png.shape[1] > 100 and png[..., :3].std() > 0.05  # drawn, not blank
    # The same case in two runs of one experiment: folds overlap.
    _run(tmp_path, "f0_again", _multitask_info(1), _multitask_rows(0, [0.4, 0.6]))
    with pytest.raises(InputError, match="case case_0_0 is also in another run"):
        compare_runs([str(tmp_path / "f0"), str(tmp_path / "f0_again")])
    (tmp_path / "noeval").mkdir()
    (tmp_path / "noeval" / "run.json").write_text(json.dumps(_multitask_info(0)))
    with pytest.raises(InputError, match="per_case.csv: missing: evaluate this run first"):
        compare_runs([str(tmp_path / "noeval")])
    with pytest.raises(InputError, match="unknown paper 'nope'"):
        compare_runs([str(tmp_path / "f0")], paper_name="nope")


def test_cli_one_line_error(tmp_path, capsys):
    from tfpanc import cli
    from tfpanc.compare.__main__ import define_flags, main

    assert cli.invoke(define_flags, main, [f"--runs={tmp_path / 'missing_*'}"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {tmp_path / 'missing_*'}: matches no run folder"
