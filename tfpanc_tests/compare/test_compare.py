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


def test_paired_tests_between_two_experiments_over_their_common_cases(tmp_path, capsys):
    from scipy import stats

    from tfpanc import cli
    from tfpanc.compare.__main__ import define_flags, main

    a = [0.80, 0.72, 0.65, 0.90, 0.55]
    b = [0.70, 0.71, 0.60, 0.80, 0.56]
    for fold in (0, 1):
        _run(tmp_path, f"full/fold{fold}", _multitask_info(fold), _multitask_rows(fold, a[fold::2], a[fold::2]))
        _run(tmp_path, f"single/fold{fold}", _multitask_info(fold, skeleton=False),
             _multitask_rows(fold, b[fold::2], b[fold::2]))
    # one more case on one side only: left out of the pairing, and said
    _run(tmp_path, "single/fold2", _multitask_info(2, skeleton=False), _multitask_rows(2, [0.3], [0.3]))
    out = tmp_path / "report"
    code = cli.invoke(define_flags, main, [f"--paired={tmp_path / 'full' / 'fold*'}",
                                           f"--paired={tmp_path / 'single' / 'fold*'}", f"--output_dir={out}"])
    line = capsys.readouterr().out
    assert code == 0
    record = json.loads((out / "paired.json").read_text())
    x, y = np.array(a[0::2] + a[1::2]), np.array(b[0::2] + b[1::2])
    assert record["metric"] == "crf_dsc" and record["n"] == 5
    assert record["t"] == pytest.approx(stats.ttest_rel(x, y).statistic)
    assert record["p_wilcoxon"] == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert record["mean_diff"] == pytest.approx(100 * (x - y).mean())
    assert "paired t-test t(4)" in line and "Wilcoxon" in line and "1 case(s) on one side only" in line
    # a column the runs do not have, and --paired given once: one line each
    assert cli.invoke(define_flags, main, [f"--paired={tmp_path / 'full' / 'fold*'}",
                                           f"--paired={tmp_path / 'single' / 'fold*'}", "--metric=hd95"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --metric: hd95 is not a per-case column")
    assert cli.invoke(define_flags, main, [f"--paired={tmp_path / 'full' / 'fold*'}"]) == 2
    assert "--paired: give it exactly twice" in capsys.readouterr().err


def test_ground_truth_neighbouring_slice_avd_of_a_cache_and_of_label_files(tmp_path, capsys):
    import nibabel as nib

    from tfpanc import cli
    from tfpanc.compare.__main__ import define_flags, main
    from tfpanc.compare.label_avd import label_slice_avd
    from tfpanc.data import cache as cache_lib
    from tfpanc.data.io import Geometry
    from tfpanc.metrics import slice_avd

    # A prism (every slice alike: AVD 0) and a growing block (a row more per slice).
    prism = np.zeros((16, 16, 6), np.uint8)
    prism[4:10, 4:10, 1:5] = 1
    grow = np.zeros((16, 16, 6), np.uint8)
    for k in range(4):
        grow[3:8 + k, 4:10, k] = 1
    image = np.zeros((16, 16, 6), np.int16)
    root = tmp_path / "cache"
    for cid, label in (("prism", prism), ("grow", grow)):
        cache_lib.write_case(root, cid, image, label, Geometry.from_spacing(label.shape, (1.0, 1.0, 2.0)))
    cache_lib.write_index(root, "toy", ["prism", "grow"], "ct", "synthetic")
    expected = np.concatenate([slice_avd(prism > 0, (1, 1, 2))[1:4], slice_avd(grow > 0, (1, 1, 2))[0:3]])
    assert expected[:3].tolist() == [0.0, 0.0, 0.0] and np.all(expected[3:] > 0)
    result = label_slice_avd(root)
    assert result["pairs"] == 6 and result["cases"] == 2 and result["gaps"] == 0
    assert result["mean"] == pytest.approx(expected.mean()) and result["std"] == pytest.approx(expected.std(ddof=1))
    labels = tmp_path / "labels"
    labels.mkdir()
    for cid, label in (("prism", prism), ("grow", 2 * grow)):  # MSD's tumour value 2 counts as pancreas
        nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 2.0, 1.0])), str(labels / f"{cid}.nii.gz"))
    assert label_slice_avd(labels)["mean"] == pytest.approx(result["mean"])
    assert cli.invoke(define_flags, main, [f"--label_avd={root}"]) == 0
    line = capsys.readouterr().out
    assert f"{result['mean']:.2f} ± {result['std']:.2f} mm over 6 slice pairs of 2 cases" in line
    assert "Cai et al., Sec. IV-D: 0.35 ± 0.94 mm" in line


def test_shipped_ground_truth_avd_matches_the_transcription():
    if not REFERENCE.is_file():
        pytest.skip("../shared/reference is not beside this checkout")
    from tfpanc.compare.tables import fact

    ref = json.loads(REFERENCE.read_text())["cai"]["facts"]["neighbour_slice_AVD_mm_ground_truth"]
    assert fact("cai", "neighbour_slice_AVD_mm_ground_truth")["values"] == ref


def test_cai_figures_five_to_seven_from_the_runs_records(tmp_path):
    import csv

    import matplotlib.image
    from scipy import stats

    manual = [10.0, 20.0, 30.0, 40.0]
    auto = [12.0, 18.0, 33.0, 39.0]
    for fold in (0, 1):
        rows = [{"case": f"c{fold}{i}", "dsc": 0.5 + 0.1 * i, "jaccard": 0.4, "volume_ml": auto[2 * fold + i],
                 "label_volume_ml": manual[2 * fold + i]} for i in range(2)]
        cnn = [dict(r, dsc=r["dsc"] - 0.05 * (i + 1)) for i, r in enumerate(rows)]
        run = _run(tmp_path, f"birnn{fold}", {"method": "cai", "model": "pnet_msa_birnn", "loss": "jac",
                                              "modality": "ct", "fold": fold}, rows, cnn_rows=cnn)
        (run / "eval" / "threshold_sweep.csv").write_text(
            "threshold,PNet-MSA + BiRNN,PNet-MSA alone\n" +
            "".join(f"{t},{0.5 + fold / 10},{0.4 + fold / 10}\n" for t in (0.25, 0.5, 0.75)))
    report = compare_runs([str(tmp_path / "birnn*")])
    out = write_report(report, tmp_path / "report")
    md = (out / "report.md").read_text()
    for png in ("cai_fig5_threshold.png", "cai_fig6_volume.png", "cai_fig7_per_case_0.png"):
        assert f"]({png})" in md
        image = matplotlib.image.imread(str(out / png))
        assert image.shape[0] > 200 and image[..., :3].std() > 0.05, png
    with open(out / "cai_fig5_threshold.csv", newline="") as f:
        fig5 = list(csv.DictReader(f))
    # two folds of 2 cases each: the mean of 0.4 and 0.5 for PNet-MSA alone
    assert {r["curve"] for r in fig5} == {"PNet-MSA jac (ct)"} and float(fig5[0]["dsc"]) == pytest.approx(0.45)
    with open(out / "cai_fig6_volume.csv", newline="") as f:
        fig6 = list(csv.DictReader(f))
    assert float(fig6[0]["r_squared"]) == pytest.approx(stats.linregress(manual, auto).rvalue ** 2, abs=1e-5)
    with open(out / "cai_fig7_per_case_0.csv", newline="") as f:
        fig7 = list(csv.DictReader(f))
    cnn_sorted = [float(r["cnn_dsc"]) for r in fig7]
    assert len(fig7) == 4 and cnn_sorted == sorted(cnn_sorted)


def test_zhou_round_and_two_stage_box_figures(tmp_path):
    import csv

    import matplotlib.image

    info = {"method": "zhou", "fold": 0, "modality": "ct", "max_rounds": 3}
    _run(tmp_path, "zhou", info, [{"case": "a", "d_t": "0.80 0.92", "round_dsc": "0.50 0.60 0.70"},
                                  {"case": "b", "d_t": "0.96", "round_dsc": "0.70 0.80"}])
    ts = {"method": "two_stage", "modality": "ct", "center_gamma": 0.001, "fold": 0}
    _run(tmp_path, "ts", ts, [{"case": f"c{i}", "stage1_dsc": 0.3, "stage2_dsc": 0.6, "box1_recall": 1.0 - i / 10,
                               "box1_iou": 0.2, "box2_recall": 0.9, "box2_iou": 0.3 + i / 10} for i in range(3)])
    out = write_report(compare_runs([str(tmp_path / "zhou"), str(tmp_path / "ts")]), tmp_path / "report")
    md = (out / "report.md").read_text()
    for png in ("zhou_rounds_0.png", "two_stage_boxes_0.png"):
        assert f"]({png})" in md
        image = matplotlib.image.imread(str(out / png))
        assert image.shape[0] > 200 and image[..., :3].std() > 0.05, png
    with open(out / "zhou_rounds_0.csv", newline="") as f:
        rounds = list(csv.DictReader(f))
    # round 0: both cases (50, 70); round 1: both (60, 80); round 2: case a alone (70)
    assert [(r["round"], float(r["dsc_mean"]), r["cases"]) for r in rounds] == \
        [("0", 0.6, "2"), ("1", 0.7, "2"), ("2", 0.7, "1")]
    with open(out / "two_stage_boxes_0.csv", newline="") as f:
        boxes = list(csv.DictReader(f))
    assert [float(r["box1_recall"]) for r in boxes] == [1.0, 0.9, 0.8]
