"""Tests for tfpanc.result_files (atomic text / JSON / CSV writers)."""

import json
import stat

import numpy as np
import pytest

from tfpanc.result_files import write_csv_rows, write_json, write_text


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
