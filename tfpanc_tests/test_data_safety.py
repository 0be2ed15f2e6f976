"""No command deletes or overwrites what it did not make: a table of hostile paths.

Each row runs a CLI in-process on a scratch tree holding a small MSD
dataset, an unrelated file and a CT, and asserts: exit code 2, one stderr
line ``error: <path>: ...`` naming the path, no traceback, every file of
the tree byte-identical afterwards and no file or folder added.
"""

import os

import nibabel as nib
import numpy as np
import pytest

from tfpanc import cli, predict
from tfpanc.data import prepare
from tfpanc_tests.cli_fixtures import snapshot as _snapshot


PREPARE = (prepare.define_flags, prepare.main)
PREDICT = (predict.define_flags, predict.main)

# (id, command, argv with {w} for the scratch tree, the path the error must name)
CASES = [
    ("prepare_output_is_input", PREPARE,
     ["--dataset=msd", "--input_dir={w}/msd", "--output_dir={w}/msd"], "{w}/msd"),
    ("prepare_output_above_input", PREPARE,
     ["--dataset=msd", "--input_dir={w}/msd", "--output_dir={w}", "--overwrite"], "{w}"),
    ("prepare_output_inside_input", PREPARE,
     ["--dataset=msd", "--input_dir={w}/msd", "--output_dir={w}/msd/cache"], "{w}/msd/cache"),
    ("prepare_output_dotdot_is_input", PREPARE,
     ["--dataset=msd", "--input_dir={w}/msd", "--output_dir={w}/cts/../msd"], "{w}/cts/../msd"),
    ("prepare_output_holds_foreign_files", PREPARE,
     ["--dataset=msd", "--input_dir={w}/msd", "--output_dir={w}/foreign", "--overwrite"], "{w}/foreign"),
    ("prepare_staging_is_foreign", PREPARE,
     ["--dataset=msd", "--input_dir={w}/msd", "--output_dir={w}/fore", "--overwrite"], None),
    ("predict_output_is_input", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/cts/a.nii.gz"], "{w}/cts/a.nii.gz"),
    ("predict_output_hard_link_of_input", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/link.nii.gz"], "{w}/link.nii.gz"),
    ("predict_folder_output_is_input", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts", "--output={w}/cts"], "{w}/cts"),
    ("predict_folder_output_inside_input", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts", "--output={w}/cts/masks"], "{w}/cts/masks"),
    ("predict_probabilities_is_output", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz",
      "--probabilities={w}/m.nii.gz"], "{w}/m.nii.gz"),
    ("predict_probabilities_is_input", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts/a.nii.gz", "--output={w}/m.nii.gz",
      "--probabilities={w}/cts/a.nii.gz"], "{w}/cts/a.nii.gz"),
    ("predict_two_inputs_one_output_name", PREDICT,
     ["--model_dir={w}/run", "--input={w}/cts", "--output={w}/masks"], None),
]


@pytest.mark.parametrize("name,command,argv,named", CASES, ids=[c[0] for c in CASES])
def test_refused_and_nothing_touched(tree, capsys, name, command, argv, named):
    if name == "prepare_staging_is_foreign":
        (tree / "fore.partial").mkdir()
        (tree / "fore.partial" / "mine.txt").write_text("a user's folder that happens to end in .partial")
        named = f"{tree}/fore.partial"
    if name == "predict_output_hard_link_of_input":
        os.link(tree / "cts" / "a.nii.gz", tree / "link.nii.gz")
    if name == "predict_two_inputs_one_output_name":
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), str(tree / "cts" / "a.nii"))
        named = f"{tree}/masks/a.nii.gz"
    before = _snapshot(tree.parent)
    code = cli.invoke(*command, [a.format(w=tree) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"error: {named.format(w=tree)}: "), err[0]
    assert _snapshot(tree.parent) == before


def test_overwrite_replaces_a_cache_and_only_a_cache(tree, capsys):
    args = ["--dataset=msd", f"--input_dir={tree / 'msd'}", f"--output_dir={tree / 'cache'}"]
    assert cli.invoke(*PREPARE, args) == 0
    assert cli.invoke(*PREPARE, args) == 2  # exists, no --overwrite
    assert "a cache exists already" in capsys.readouterr().err
    # A method's derived cache (made from this data on first use) is part of the cache: replaced with it.
    (tree / "cache" / "derived" / "multitask_1x1x1mm").mkdir(parents=True)
    assert cli.invoke(*PREPARE, args + ["--overwrite"]) == 0
    assert sorted(p.name for p in (tree / "cache").iterdir()) == ["cache.json", "cases", "splits.json"]
    (tree / "cache" / "my_notes.txt").write_text("added by the user")
    assert cli.invoke(*PREPARE, args + ["--overwrite"]) == 2
    assert (tree / "cache" / "my_notes.txt").read_text() == "added by the user"
    assert not (tree / "cache.partial").exists()


def test_flag_parse_errors_are_one_line_exit_2(tree, capsys):
    assert cli.invoke(*PREPARE, ["--dataset=nope"]) == 2
    assert cli.invoke(*PREDICT, ["--no_such_flag=1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines), lines
    assert "no_such_flag" in lines[1]


def test_train_never_writes_its_phantom_into_a_users_folder(tmp_path, capsys):
    from tfpanc import train

    (tmp_path / "data_nifti").mkdir()
    (tmp_path / "data_nifti" / "pancreas_000.nii.gz").write_bytes(b"a user's scan")
    argv = ["--method=cai", f"--data_dir={tmp_path / 'data'}", "--phantom_cases=4", f"--model_dir={tmp_path / 'r'}"]
    assert cli.invoke(train.define_flags, train.main, argv) == 2
    assert capsys.readouterr().err.strip().endswith("exists and is not a tfpanc phantom folder; move it away or "
                                                    "choose another --data_dir")
    assert (tmp_path / "data_nifti" / "pancreas_000.nii.gz").read_bytes() == b"a user's scan"
    assert not (tmp_path / "r").exists()  # refused before the run folder was made


def test_folder_predict_failing_on_a_later_input_says_which_outputs_are_complete(tree, capsys):
    """a.nii.gz is segmented, b.nii.gz holds a NaN: a's mask and probabilities are complete, b has none,
    no temporary is left, and stdout says which inputs finished."""
    from tfpanc.methods.cai.random_run import write_random_run

    write_random_run(tree / "rand", "pnet_msa", num_units=1, filters=2)
    bad = np.asarray(nib.load(str(tree / "cts" / "b.nii.gz")).dataobj, np.float32)
    bad[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(bad, np.eye(4)), str(tree / "cts" / "b.nii.gz"))
    code = cli.invoke(*PREDICT, [f"--model_dir={tree}/rand", f"--input={tree}/cts", f"--output={tree}/masks",
                                 f"--probabilities={tree}/probs", "--nobody_crop"])
    out, err = capsys.readouterr()
    assert code == 2 and err.strip().startswith(f"error: {tree}/cts/b.nii.gz: "), err
    assert "1 of 2 inputs finished before the failure: a.nii.gz; their outputs are complete" in out
    assert sorted(os.listdir(tree / "masks")) == ["a.nii.gz"] and sorted(os.listdir(tree / "probs")) == ["a.nii.gz"]
    assert nib.load(str(tree / "masks" / "a.nii.gz")).shape == bad.shape


def test_phantom_modality_makes_mri_cases_and_refuses_a_cache_of_the_other_modality(tmp_path, capsys):
    from tfpanc import train
    from tfpanc.data.cache import CaseCache
    from tfpanc.methods import registry
    from tfpanc_tests.conftest import write_cai_cache

    cfg = registry.get("cai").config(method="cai", data_dir=str(tmp_path / "mri"), phantom_cases=4,
                                    phantom_shape=(32, 32, 32), phantom_modality="mri")
    train.ensure_data(cfg, lambda _: None, train.check_data(cfg))
    cache = CaseCache(tmp_path / "mri")
    assert cache.modality == "mri" and len(cache.case_ids) == 4
    assert np.asarray(cache.case(cache.case_ids[0]).image).min() >= 0  # MR intensities, no negative HU
    write_cai_cache(tmp_path / "ct")  # a CT cache where the flags ask for MRI phantom cases
    argv = ["--method=cai", f"--data_dir={tmp_path / 'ct'}", "--phantom_cases=4", "--phantom_modality=mri",
            f"--model_dir={tmp_path / 'r'}"]
    assert cli.invoke(train.define_flags, train.main, argv) == 2
    assert capsys.readouterr().err.strip() == (f"error: --phantom_modality: asks for mri phantom cases but "
                                               f"{tmp_path / 'ct'} holds a ct cache; use another --data_dir")
    assert not (tmp_path / "r").exists()
