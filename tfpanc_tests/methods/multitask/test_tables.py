"""The multitask tables command on fabricated runs (run.json + eval/tables.json, no training): pooling,
paired t-tests, the step sweep with a stand-in predictor, the figures and the CLI."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.methods.multitask import tables
from tfpanc.training.run_dir import RunDir


def _row(case, c2, c1=0.7, crf=None, region=1.0):
    """A per-case row as evaluation.case_row writes it, every metric of a result equal to its DSC
    (the CRF 2% above C2 by default: differences that vary, as a t-test needs)."""
    row = {"case": case}
    for prefix, v in (("c1", c1), ("c2", c2), ("crf", round(1.02 * c2, 4) if crf is None else crf)):
        row.update({f"{prefix}_{m}": v for m in ("dsc", "jaccard", "precision", "recall")})
    row.update(region_recall=region, seconds=2.0, windows=8)
    return row


def _run(path, rows, method="multitask", fold=0, test=None):
    """A finished run folder with its run.json and, when ``rows`` is not None, eval/tables.json."""
    run = RunDir(path)
    run.path.mkdir(parents=True, exist_ok=True)
    test = [r["case"] for r in rows] if test is None else test
    run.write_run_info({"method": method, "fold": fold, "data_dir": str(path) + "_cache", "patch": [64, 64, 16],
                        "step": [16, 16, 4], "split": {"train": ["t"], "val": [], "test": test}})
    if rows is not None:
        (run.path / "eval").mkdir(exist_ok=True)
        (run.path / "eval" / "tables.json").write_text(json.dumps({"rows": [], "cases": rows}))
    return str(path)


FULL0 = [_row("a", 0.80, region=1.0), _row("b", 0.90, region=0.95)]
FULL1 = [_row("c", 0.70), _row("d", 0.85)]


@pytest.fixture
def full_runs(tmp_path):
    return [_run(tmp_path / "full" / "fold0", FULL0), _run(tmp_path / "full" / "fold1", FULL1, fold=1)]


def _entry(record, group):
    return next(r for r in record["table1"] if r["group"] == group)


def test_pooled_means_and_paper_values(full_runs, tmp_path):
    record = tables.run_tables(full_runs, output_dir=tmp_path / "out", log=lambda m: None)
    dsc = np.array([0.80, 0.90, 0.70, 0.85])
    full = _entry(record, "full")
    assert full["n"] == 4 and full["dsc_mean"] == pytest.approx(round(100 * dsc.mean(), 2))
    assert full["dsc_std"] == pytest.approx(round(100 * dsc.std(ddof=1), 2))
    assert (full["dsc_max"], full["dsc_min"]) == (90.0, 70.0)
    assert _entry(record, "crf")["dsc_mean"] == pytest.approx(round(100 * (1.02 * dsc).mean(), 2))
    assert _entry(record, "c1")["dsc_mean"] == pytest.approx(70.0)
    assert [r["group"] for r in record["table1"]] == ["c1", "full", "crf"]
    assert full["paper"]["DSC"]["mean"] == 85.9 and _entry(record, "crf")["paper_name"] == \
        "multitask C2 + 3D dense CRF"
    assert record["region"]["full"] == {"covered": 3, "n": 4}
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"tables.json", "table1.csv", "per_case.csv"}
    csv_lines = (tmp_path / "out" / "per_case.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("group,case,")


def test_default_output_dir_is_the_common_parent(full_runs, tmp_path):
    tables.run_tables(full_runs, log=lambda m: None)
    assert (tmp_path / "full" / "tables" / "tables.json").exists()


def test_variant_names_pool_across_folds_and_the_ttest_pairs_common_cases(full_runs, tmp_path):
    # single_task holds a, b (fold 0) and c, e (fold 1): d is not in it, e not in the full model.
    v0 = _run(tmp_path / "st" / "fold0", [_row("a", 0.75), _row("b", 0.80)])
    v1 = _run(tmp_path / "st" / "fold1", [_row("c", 0.72), _row("e", 0.60)], fold=1)
    lines = []
    record = tables.run_tables(full_runs, [f"single_task:{v0}", f"single_task:{v1}"],
                               output_dir=tmp_path / "out", log=lines.append)
    st = _entry(record, "single_task")
    assert st["n"] == 4 and st["dsc_mean"] == pytest.approx(round(100 * np.mean([0.75, 0.80, 0.72, 0.60]), 2))
    assert st["paper_name"] == "single-task C2" and st["paper"]["DSC"]["min"] == 59.32
    assert [r["group"] for r in record["table1"]] == ["c1", "single_task", "full", "crf"]
    test = record["ttests"][0]
    t, p = stats.ttest_rel([0.80, 0.90, 0.70], [0.75, 0.80, 0.72])
    assert test["n"] == 3 and test["t"] == pytest.approx(t) and test["p"] == pytest.approx(p)
    assert test["mean_diff"] == pytest.approx(100 * np.mean([0.05, 0.10, -0.02]))
    crf = record["ttests"][1]
    assert crf["b"] == "multitask C2 (before CRF)" and crf["n"] == 4
    assert any("n = 3 paired cases" in line for line in lines)


def test_paired_ttest_with_fewer_than_two_pairs():
    out = tables.paired_ttest([_row("a", 0.8), _row("b", 0.9)], [_row("b", 0.7), _row("z", 0.1)])
    assert out["n"] == 1 and out["t"] is None and out["p"] is None
    assert out["mean_diff"] == pytest.approx(20.0)
    nan = _row("a", float("nan"))
    assert tables.paired_ttest([nan, _row("b", 0.9)], [_row("a", 0.5), _row("b", 0.7)])["n"] == 1


def test_a_case_held_out_twice_is_refused(full_runs, tmp_path):
    again = _run(tmp_path / "again", FULL0)
    with pytest.raises(InputError, match="holds out case a"):
        tables.run_tables(full_runs + [again], output_dir=tmp_path / "out", log=lambda m: None)


def test_bad_runs_and_flags_are_one_line_errors(full_runs, tmp_path):
    other = _run(tmp_path / "two_stage", FULL0, method="two_stage")
    with pytest.raises(InputError) as e:
        tables.run_tables([other], log=lambda m: None)
    assert e.value.one_line() == f"error: {tmp_path / 'two_stage' / 'run.json'}: is a two_stage run, not multitask"
    empty = _run(tmp_path / "all", None, test=[])
    with pytest.raises(InputError, match="has no held-out cases"):
        tables.run_tables([empty], log=lambda m: None)
    with pytest.raises(InputError) as e:
        tables.run_tables(full_runs, steps=["4x16x16", "4x16"], log=lambda m: None)
    assert e.value.one_line().startswith("error: --steps: expected DxHxW") and "\n" not in e.value.one_line()
    with pytest.raises(InputError, match="--variant"):
        tables.run_tables(full_runs, ["no_colon"], log=lambda m: None)


def test_figures_only_for_groups_that_exist(full_runs, tmp_path):
    nd = _run(tmp_path / "nd", [_row("a", 0.70), _row("b", 0.88)])
    p32 = _run(tmp_path / "p32", [_row("a", 0.60), _row("b", 0.75)])
    record = tables.run_tables(full_runs, [f"no_dense:{nd}", f"patch_16x32x32:{p32}", f"other:{nd}"],
                               output_dir=tmp_path / "out", log=lambda m: None)
    assert sorted(record["figures"]) == ["fig11_dense.png", "fig8_patch_sizes.png"]
    for name in record["figures"]:
        assert (tmp_path / "out" / name).stat().st_size > 1000
    assert not (tmp_path / "out" / "fig13_feature_consistency.png").exists()
    assert not (tmp_path / "out" / "fig9_steps.png").exists()


def test_step_sweep_with_a_stand_in_predictor(full_runs, tmp_path):
    label = np.zeros((8, 8, 8), bool)
    label[2:6, 2:6, 2:6] = True
    cache = SimpleNamespace(case=lambda cid: SimpleNamespace(image=np.zeros((8, 8, 8)), label=label.astype(np.uint8),
                                                             spacing=(1.0, 1.0, 1.0)))
    loaded = []

    def load(run_dir, step):
        loaded.append((run_dir, step))
        seconds = {(8, 8, 2): 10.0, (16, 16, 4): 2.0, (32, 32, 8): 0.5}[step]
        mask = label.copy()
        if step == (32, 32, 8):
            mask[2:6, 2:6, 2:4] = False  # the coarsest step misses half the pancreas: DSC 2/3

        def predict(image, spacing=None):
            return {"mask": mask, "seconds": seconds + 1, "seconds_by_part": {"sliding_window": seconds},
                    "windows": int(100 / seconds), "summary": "stand-in"}
        return predict

    steps = [tables.parse_paper_size(s, "--steps") for s in ("2x8x8", "4x16x16", "8x32x32")]
    sweep = tables.step_sweep(full_runs, steps, log=lambda m: None, load_predictor=load,
                              load_cache=lambda d: cache)
    assert len(loaded) == 6 and loaded[0] == (full_runs[0], (8, 8, 2))
    assert [e["step"] for e in sweep] == ["2x8x8", "4x16x16", "8x32x32"]
    assert [e["n"] for e in sweep] == [4, 4, 4]
    assert sweep[0]["dsc"]["mean"] == pytest.approx(100.0) and sweep[2]["dsc"]["mean"] == pytest.approx(200 / 3)
    assert [e["ratio"] for e in sweep] == pytest.approx([5.0, 1.0, 0.25])
    assert [e["paper_ratio"] for e in sweep] == pytest.approx([706.69 / 53.62, 1.0, 7.89 / 53.62])
    assert sweep[1]["seconds"] == pytest.approx(3.0) and sweep[1]["windows"] == pytest.approx(50)
    text = tables.format_steps(sweep)
    assert "706.69" in text and "13.18" in text
    from tfpanc.methods.multitask.figures import write_figures

    assert [p.name for p in write_figures(tmp_path, [], {}, sweep)] == ["fig9_steps.png"]
    assert (tmp_path / "fig9_steps.png").stat().st_size > 1000


def test_cli_in_process(full_runs, tmp_path, capsys):
    argv = [f"--model_dir={d}" for d in full_runs] + [f"--output_dir={tmp_path / 'out'}"]
    assert cli.invoke(tables.define_flags, tables.main, argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "multitask C2 + 3D dense CRF" in out and "paired t-test" in out
    assert (tmp_path / "out" / "table1.csv").exists()
    assert cli.invoke(tables.define_flags, tables.main, argv + ["--steps=4x16"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --steps:")
    assert cli.invoke(tables.define_flags, tables.main, argv + ["--no_such_flag=1"]) == 2
