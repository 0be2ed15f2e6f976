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
