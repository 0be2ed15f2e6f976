"""Tests for tfpanc.result_files (atomic text / JSON / CSV writers)."""

import json
import stat
from pathlib import Path

import numpy as np
import pytest

from tfpanc.result_files import (TEMPORARY_MARK, sweep_temporaries, temporary_path, write_csv_rows, write_json,
                                 write_text, written_together)


def test_json_takes_numpy_scalars_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "s.json"
    write_json(path, {"dsc": np.float32(0.25), "n": np.int64(3), "ok": np.bool_(True)})
    assert json.loads(path.read_text()) == {"dsc": 0.25, "n": 3, "ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "s.json"
    write_text(path, "old\n")
    with pytest.raises(ValueError):
        write_json(path, {"dsc": float("nan")}, allow_nan=False)
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_csv_rows_with_header_and_column_order(tmp_path):
    path = tmp_path / "r.csv"
    write_csv_rows(path, [{"case": "a", "dsc": 0.5}, {"case": "b", "dsc": 0.75}], columns=["dsc", "case"])
    assert path.read_text().splitlines() == ["dsc,case", "0.5,a", "0.75,b"]


def test_written_together_places_all_files_or_none(tmp_path):
    out = tmp_path / "new" / "report"
    with pytest.raises(OSError):
        with written_together(folder=out):
            write_text(out / "a.txt", "a")
            assert not (out / "a.txt").exists()  # staged until the block ends
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []  # the folders it made are gone too
    with written_together(folder=out):
        write_text(out / "a.txt", "a")
        write_json(out / "b.json", {"n": 1})
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.json"]


def test_sweep_removes_only_dead_processes_temporaries(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".per_case.csv{TEMPORARY_MARK}{dead}-abc123"
    live = Path(temporary_path(tmp_path / "summary.json"))  # this process: still writing
    user = tmp_path / ".hidden_user_file"
    for p in (stale, user):
        p.write_text("x")
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / f".w.weights.h5{TEMPORARY_MARK}{dead}-x.weights.h5"
    nested.write_text("x")
    assert sweep_temporaries(tmp_path) == [stale]
    assert live.exists() and user.exists() and nested.exists()
    assert sweep_temporaries(tmp_path, recursive=True) == [nested]
