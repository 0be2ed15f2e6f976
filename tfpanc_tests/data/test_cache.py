import numpy as np
import pytest

from tfpanc.data import cache as cache_lib
from tfpanc.data.io import Geometry
from tfpanc.errors import InputError


def test_write_case_metadata_and_memmap(tmp_path, blob_case):
    image, label = blob_case
    geometry = Geometry.from_spacing(image.shape, (0.5, 0.5, 2.0))
    meta = cache_lib.write_case(tmp_path, "case_01", image, label, geometry)
    cache_lib.write_index(tmp_path, "folder", ["case_01"], "ct", "src")
    case = cache_lib.CaseCache(tmp_path).case("case_01")
    assert isinstance(case.image, np.memmap) and not case.image.flags.writeable
    np.testing.assert_array_equal(case.image, image)
    np.testing.assert_array_equal(case.label, label)
    xs, ys, zs = np.nonzero(label)
    assert meta["pancreas_box"] == [[xs.min(), xs.max() + 1], [ys.min(), ys.max() + 1], [zs.min(), zs.max() + 1]]
    assert meta["pancreas_volume_ml"] == pytest.approx(label.sum() * 0.5 * 0.5 * 2.0 / 1000)
    assert meta["pancreas_slices"]["axial"] == sorted(set(zs.tolist()))
    assert sum(meta["pancreas_pixels"]["axial"]) == label.sum()
    assert case.spacing == (0.5, 0.5, 2.0)


def test_empty_label_has_no_box(tmp_path):
    image = np.zeros((4, 4, 4), np.int16)
    meta = cache_lib.write_case(tmp_path, "c", image, np.zeros_like(image, np.uint8),
                                Geometry.from_spacing(image.shape, (1, 1, 1)))
    assert meta["pancreas_box"] is None and meta["pancreas_volume_ml"] == 0
    assert meta["pancreas_slices"]["axial"] == []


def test_nih_folds_follow_case_numbers():
    ids = [f"PANCREAS_{n:04d}" for n in range(1, 83) if n not in (25, 70)]
    folds = cache_lib.nih_folds(ids)
    assert [len(f) for f in folds] == [20, 19, 21, 20]
    assert folds[2][0] == "PANCREAS_0041" and folds[2][-1] == "PANCREAS_0061"
    with pytest.raises(ValueError, match="outside 1-82"):
        cache_lib.nih_folds(["PANCREAS_0083"])


def test_shuffled_folds_are_seeded_partitions():
    ids = [f"c{i:02d}" for i in range(10)]
    a, b = cache_lib.shuffled_folds(ids, 4, seed=3), cache_lib.shuffled_folds(ids, 4, seed=3)
    assert a == b and a != cache_lib.shuffled_folds(ids, 4, seed=4)
    assert sorted(sum(a, [])) == ids and sorted(len(f) for f in a) == [2, 2, 3, 3]


def test_splits_round_trip_and_bad_fold(tmp_path):
    folds = [["a", "b"], ["c"], ["d"], ["e"]]
    cache_lib.write_splits(tmp_path, folds, "test")
    cache_lib.write_index(tmp_path, "folder", list("abcde"), "ct", "src")
    cache = cache_lib.CaseCache(tmp_path)
    assert cache.split(1) == (["a", "b", "d", "e"], ["c"])
    assert cache.split(-1) == (list("abcde"), [])
    with pytest.raises(InputError, match="fold 4"):
        cache.split(4)


def test_not_a_cache(tmp_path):
    with pytest.raises(InputError, match="not a tfpanc cache"):
        cache_lib.CaseCache(tmp_path)


def test_axial_slices_are_contiguous_on_disk(tmp_path, blob_case):
    image, label = blob_case
    cache_lib.write_case(tmp_path, "c", image, label, Geometry.from_spacing(image.shape, (1, 1, 1)))
    mapped = np.load(tmp_path / "cases" / "c" / "image.npy", mmap_mode="r")
    assert mapped.flags.f_contiguous and mapped[:, :, 3].flags.f_contiguous
    np.testing.assert_array_equal(mapped, image)
