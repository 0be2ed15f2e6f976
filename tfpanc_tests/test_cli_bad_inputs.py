"""Every CLI through a table of bad inputs: exit 2, one line naming the file or flag, nothing touched.

Each row runs a command in-process on the scratch tree of
:mod:`tfpanc_tests.cli_fixtures` (a small MSD dataset, CTs, a user's files)
after an optional setup step, and asserts: exit code 2; exactly one stderr
line, starting ``error: <named file or flag>: ``; no traceback; every file
of the tree byte-identical and nothing added anywhere under it. The data
loss rows live in ``test_data_safety.py``; these are the silent-wrong-answer,
traceback and flag classes.
"""

import json

import nibabel as nib
import numpy as np
import pytest

from tfpanc import cli, cv_report, evaluate, evaluate_real, predict, train
from tfpanc.compare import __main__ as compare_cli
from tfpanc.data import prepare
from tfpanc.data.phantom import __main__ as phantom_cli
from tfpanc.export import __main__ as export_cli
from tfpanc.export import models_config
from tfpanc_tests.cli_fixtures import snapshot

PREPARE = (prepare.define_flags, prepare.main)
PREDICT = (predict.define_flags, predict.main)
TRAIN = (train.define_flags, train.main)
EVALUATE = (evaluate.define_flags, evaluate.main)
CV = (cv_report.define_flags, cv_report.main)
EXPORT = (export_cli.define_flags, export_cli.main)
MODELS_CONFIG = (models_config.define_flags, models_config.main)
COMPARE = (compare_cli.define_flags, compare_cli.main)
PHANTOM = (phantom_cli.define_flags, phantom_cli.main)
EVALUATE_REAL = (evaluate_real.define_flags, evaluate_real.main)


def _nan_ct(w):
    data = np.zeros((8, 8, 4), np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(w / "nan.nii.gz"))


def _empty_label_cache(w):
    from tfpanc_tests.conftest import write_ellipsoid_cache

    # every ellipsoid centred far outside its volume: four cases, no pancreas voxel
    write_ellipsoid_cache(w / "empty_cache", (16, 16, 8), lambda i: (100, 100, 100), (2, 2, 2), (100, -20), 5,
                          (1.0, 1.0, 1.0))


def _truncated_run(w):
    (w / "run" / "run.json").write_text('{"method": "cai", "mod')


def _cai_run(w):
    (w / "run" / "run.json").write_text(json.dumps({"method": "cai", "modality": "ct", "model": "pnet_msa"}))


def _random_cai_run(w, keep_bytes):
    """A one-unit cai run whose weights file is cut to ``keep_bytes`` (None: removed)."""
    from tfpanc.methods.cai.random_run import write_random_run

    weights = write_random_run(w / "run", "pnet_msa", num_units=1, filters=2) / "pnet_final.weights.h5"
    if keep_bytes is None:
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:keep_bytes])


def _ct_as_label(w):
    (w / "labels").mkdir()
    (w / "preds").mkdir()
    ct = np.random.default_rng(0).integers(-1000, 400, (8, 8, 4)).astype(np.int16)
    nib.save(nib.Nifti1Image(ct, np.eye(4)), str(w / "labels" / "c.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.uint8), np.eye(4)), str(w / "preds" / "c.nii.gz"))


def _evaluated_run_without_eval(w):
    (w / "run" / "run.json").write_text(json.dumps({"method": "multitask", "fold": 0}))


def _export_base(w):
    (w / "exports" / "m" / "1").mkdir(parents=True)


# (id, command, argv with {w} for the tree, setup or None, what the error line must name)
CASES = [
    ("prepare_missing_input", PREPARE, ["--dataset=msd", "--input_dir={w}/nope", "--output_dir={w}/c"], None,
     "{w}/nope"),
    ("prepare_label_values_not_numbers", PREPARE,
     ["--dataset=msd", "--input_dir={w}/msd", "--output_dir={w}/c", "--label_values=a"], None, "--label_values"),
    ("prepare_bad_enum", PREPARE, ["--dataset=nope", "--input_dir={w}/msd", "--output_dir={w}/c"], None,
     "flag --dataset=nope"),
    ("prepare_missing_flagfile", PREPARE, ["--flagfile={w}/missing.cfg"], None, None),
    ("phantom_zero_cases", PHANTOM, ["--output_dir={w}/ph", "--num_cases=0"], None, "--num_cases"),
    ("phantom_bad_shape", PHANTOM, ["--output_dir={w}/ph", "--num_cases=1", "--shape=12,12"], None, "--shape"),
    ("train_unknown_flag", TRAIN, ["--method=cai", "--no_such_flag=3"], None, None),
    ("train_unknown_method", TRAIN, ["--method=nope", "--data_dir={w}/c", "--model_dir={w}/r"], None, "--method"),
    ("train_no_cache_no_phantom", TRAIN, ["--method=cai", "--data_dir={w}/nocache", "--model_dir={w}/r"], None,
     "{w}/nocache"),
    ("train_all_labels_empty", TRAIN, ["--method=cai", "--data_dir={w}/empty_cache", "--model_dir={w}/r"],
     _empty_label_cache, "{w}/empty_cache"),
    ("train_phantom_too_small", TRAIN, ["--method=cai", "--data_dir={w}/c", "--model_dir={w}/r", "--phantom_cases=2",
                                        "--phantom_shape=64,64,16"], None, "--phantom_shape"),
    ("train_non_numeric_value", TRAIN, ["--method=cai", "--batch_size=many"], None, None),
    ("train_synthetic_shape_folder_without_shapes_step", TRAIN,
     ["--method=cai", "--model=pnet_msa", "--train_images=synthetic", "--synthetic_steps=intensity",
      "--shape_dir={w}/msd/labelsTr", "--data_dir={w}/c", "--model_dir={w}/r"], None, "--shape_dir"),
    ("train_synthetic_unknown_step", TRAIN,
     ["--method=cai", "--model=pnet_msa", "--synthetic_steps=sharpness", "--data_dir={w}/c", "--model_dir={w}/r"],
     None, "--synthetic_steps"),
    ("train_single_slice_fraction_without_synthetic_images", TRAIN,
     ["--method=cai", "--model=pnet_msa", "--single_slice_fraction=0.3", "--data_dir={w}/c", "--model_dir={w}/r"],
     None, "--single_slice_fraction"),
    ("train_single_slice_fraction_above_one", TRAIN,
     ["--method=cai", "--model=pnet_msa", "--train_images=synthetic", "--single_slice_fraction=1.5",
      "--data_dir={w}/c", "--model_dir={w}/r"], None, "--single_slice_fraction"),
    ("train_intensity_fraction_without_intensity_step", TRAIN,
     ["--method=cai", "--model=pnet_msa", "--train_images=synthetic", "--synthetic_steps=shapes",
      "--synthetic_intensity_fraction=0.5", "--data_dir={w}/c", "--model_dir={w}/r"], None,
     "--synthetic_intensity_fraction"),
    ("evaluate_real_missing_folder", EVALUATE_REAL, ["--model_dir={w}/run", "--real_dir={w}/nope"], _cai_run,
     "--real_dir"),
    ("evaluate_real_nothing_to_score", EVALUATE_REAL, ["--model_dir={w}/run", "--real_dir={w}/foreign"], _cai_run,
     "--real_dir"),
    ("evaluate_real_bad_spacing", EVALUATE_REAL,
     ["--model_dir={w}/run", "--real_dir={w}/foreign", "--slice_spacing=0"], _cai_run, "--slice_spacing"),
    ("predict_missing_input", PREDICT, ["--model_dir={w}/run", "--input={w}/nope.nii.gz", "--output={w}/m.nii.gz"],
     _cai_run, "{w}/nope.nii.gz"),
    ("predict_not_a_run", PREDICT, ["--model_dir={w}/foreign", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz"],
     None, "{w}/foreign"),
    ("predict_truncated_run_json", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz"], _truncated_run,
     "{w}/run/run.json"),
    ("predict_truncated_weights", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz"],
     lambda w: _random_cai_run(w, 2000), "{w}/run/pnet_final.weights.h5"),
    ("predict_missing_weights", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz"],
     lambda w: _random_cai_run(w, None), "{w}/run/pnet_final.weights.h5"),
    ("predict_nan_input", PREDICT, ["--model_dir={w}/run", "--input={w}/nan.nii.gz", "--output={w}/m.nii.gz"],
     lambda w: (_nan_ct(w), _cai_run(w)), "{w}/nan.nii.gz"),
    ("predict_other_methods_flag", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz", "--max_rounds=3"], _cai_run,
     "--max_rounds"),
    ("predict_model_without_server", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz", "--model=x"], _cai_run, "--model"),
    ("predict_precision_with_server", PREDICT,
     ["--server=localhost:1", "--model=m", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz",
      "--precision=bfloat16"], None, "--precision"),
    ("predict_preview_not_png", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz", "--preview={w}/p.jpg"], _cai_run,
     "{w}/p.jpg"),
    ("predict_preview_is_output", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz", "--preview={w}/m.nii.gz"],
     _cai_run, None),
    ("predict_output_suffix", PREDICT, ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.png"],
     _cai_run, "{w}/m.png"),
    ("predict_output_under_a_file", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/notes.txt/m.nii.gz"], _cai_run,
     "{w}/notes.txt/m.nii.gz"),
    ("predict_output_in_proc", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output=/proc/tfpanc_mask.nii.gz"], _cai_run,
     "/proc/tfpanc_mask.nii.gz"),
    ("train_model_dir_under_a_file", TRAIN,
     ["--method=cai", "--data_dir={w}/c", "--phantom_cases=4", "--model_dir={w}/notes.txt/run"], None,
     "{w}/notes.txt/run"),
    ("evaluate_missing_pred_dir", EVALUATE, ["--pred_dir={w}/nope", "--label_dir={w}/cts", "--output_dir={w}/o"],
     None, "{w}/nope"),
    ("evaluate_ct_given_as_label", EVALUATE, ["--pred_dir={w}/preds", "--label_dir={w}/labels",
                                              "--output_dir={w}/o"], _ct_as_label, "{w}/labels/c.nii.gz"),
    ("cv_report_no_match", CV, ["--model_dirs={w}/nothing_*"], None, "{w}/nothing_*"),
    ("cv_report_no_eval", CV, ["--model_dirs={w}/run"], _evaluated_run_without_eval, "{w}/run/eval/per_case.csv"),
    ("export_not_a_run", EXPORT, ["--model_dir={w}/foreign", "--export_dir={w}/exports/m"], None, "{w}/foreign"),
    ("export_version_folder_as_model", EXPORT, ["--model_dir={w}/run", "--export_dir={w}/exports/m/1"],
     lambda w: (_cai_run(w), _export_base(w)), "--export_dir"),
    ("models_config_empty_base", MODELS_CONFIG, ["{w}/foreign"], None, "{w}/foreign"),
    ("compare_no_runs", COMPARE, [], None, "--runs"),
    ("compare_run_without_eval", COMPARE, ["--runs={w}/run"], _evaluated_run_without_eval,
     "{w}/run/eval/per_case.csv"),
]


@pytest.mark.parametrize("name,command,argv,setup,named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(tree, capsys, name, command, argv, setup, named):
    if setup is not None:
        setup(tree)
    before = snapshot(tree.parent)
    code = cli.invoke(*command, [a.format(w=tree) for a in argv])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("error: ")
    if named is not None:
        assert err[0].startswith(f"error: {named.format(w=tree)}: "), err[0]
    assert snapshot(tree.parent) == before
