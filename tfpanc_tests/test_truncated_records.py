"""Truncated or foreign JSON records (run.json, state.json, cache.json, meta.json, splits.json) are one-line errors."""

import json

import numpy as np
import pytest

from tfpanc.data import cache as cache_lib
from tfpanc.data.io import Geometry
from tfpanc.errors import InputError
from tfpanc.training.run_dir import RunDir


def _cache(root):
    image = np.zeros((8, 8, 4), np.int16)
    for i in range(4):
        cache_lib.write_case(root, f"c{i}", image, image.astype(np.uint8), Geometry.from_spacing(image.shape, (1, 1, 1)))
    cache_lib.write_splits(root, cache_lib.shuffled_folds([f"c{i}" for i in range(4)], 4, 0), "test")
    cache_lib.write_index(root, "folder", [f"c{i}" for i in range(4)], "ct", "test")


@pytest.mark.parametrize("name", ["cache.json", "splits.json", "cases/c1/meta.json"])
def test_truncated_cache_records(tmp_path, name):
    _cache(tmp_path)
    path = tmp_path / name
    path.write_text(path.read_text()[:10])
    with pytest.raises(InputError) as err:
        cache = cache_lib.CaseCache(tmp_path)
        cache.split(0)
        cache.case("c1")
    assert str(err.value) == f"error: {path}: is not valid JSON (truncated?); re-run prepare (--overwrite) to " \
                             "rebuild the cache"


def test_truncated_run_and_state_records(tmp_path):
    run = RunDir(tmp_path)
    run.mark_done("phase_a", epochs=1)
    (tmp_path / "state.json").write_text('{"done": {"phase_a"')
    with pytest.raises(InputError, match=r"state.json: is not valid JSON \(truncated\?\); delete it to retrain"):
        run.is_done("phase_a")
    (tmp_path / "state.json").write_text(json.dumps([1, 2]))
    with pytest.raises(InputError, match="state.json: is not a tfpanc training state"):
        run.state()
    (tmp_path / "run.json").write_text('{"method": "ca')
    with pytest.raises(InputError, match=r"run.json: is not valid JSON \(truncated\?\); retrain the run"):
        run.run_info()
    (tmp_path / "cache.json").write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(InputError, match="not a tfpanc cache index"):
        cache_lib.CaseCache(tmp_path)
