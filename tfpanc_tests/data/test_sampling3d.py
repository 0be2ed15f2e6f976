from pathlib import Path

import numpy as np
import pytest

from tfpanc.data.boxes import box_from_mask, clip_box, crop, expand_box
from tfpanc.data.intensity import window_ct
from tfpanc.data.sampler_base import MarginRange
from tfpanc.data.sampling3d import BoxCropSampler3D, PatchSampler
from tfpanc_tests.data.sampling_fixtures import SHAPES, RecordingCache, make_cache

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ct_cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("ct_cache3d"))


def test_2d_and_3d_samplers_import_independently():
    import subprocess
    import sys

    def loaded_after(module, other):
        code = f"import sys, {module}; print({other!r} in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
        return out.stdout.strip()

    assert loaded_after("tfpanc.data.sampling", "tfpanc.data.sampling3d") == "False"
    assert loaded_after("tfpanc.data.sampling3d", "tfpanc.data.sampling") == "False"


def test_uniform_patches_lie_inside_and_hold_the_normalised_volume(ct_cache):
    cache, raw = ct_cache
    s = PatchSampler(cache, cache.case_ids, (8, 10, 6), positive_fraction=0.0)
    assert s.output_signature() == (((8, 10, 6, 1), np.float32), ((8, 10, 6, 1), np.float32))
    starts = []
    for i in range(20):
        (x, y), info = s.sample_with_info(i)
        image, label = raw[info["case_id"]]
        box = info["box"]
        assert not info["positive"]
        assert np.all(box[:, 0] >= 0) and np.all(box[:, 1] <= image.shape)
        np.testing.assert_array_equal(x[..., 0], window_ct(crop(image, box)))
        np.testing.assert_array_equal(y[..., 0], crop(label, box).astype(np.float32))
        starts.append(box[:, 0])
    assert len({tuple(s) for s in starts}) > 15


def test_positive_patches_hold_their_pancreas_voxel(ct_cache):
    cache, raw = ct_cache
    s = PatchSampler(cache, cache.case_ids, (6, 6, 4), positive_fraction=1.0)
    offsets = set()
    for i in range(20):
        (x, y), info = s.sample_with_info(i)
        label = raw[info["case_id"]][1]
        v, box = info["voxel"], info["box"]
        assert info["positive"] and label[tuple(v)] == 1
        assert np.all(box[:, 0] <= v) and np.all(v < box[:, 1])
        assert y[tuple(v - box[:, 0])][0] == 1.0
        offsets.add(tuple(v - box[:, 0]))
    assert len(offsets) > 10  # the voxel is not always at the same place in the patch


def test_positive_fraction_is_respected(ct_cache):
    cache, _ = ct_cache
    s = PatchSampler(cache, cache.case_ids, (4, 4, 4), positive_fraction=0.3, seed=2)
    rate = np.mean([s.sample_with_info(i)[1]["positive"] for i in range(200)])
    assert abs(rate - 0.3) < 0.1


def test_patch_larger_than_volume_is_centred_and_padded(ct_cache):
    cache, raw = ct_cache
    s = PatchSampler(cache, ["case_00"], (30, 30, 16), positive_fraction=0.0)
    (x, y), info = s.sample_with_info(0)
    image, label = raw["case_00"]  # (24, 20, 12)
    assert info["box"].tolist() == [[-3, 27], [-5, 25], [-2, 14]]
    assert y.sum() == label.sum()
    assert np.all(x[:3] == 0.0) and np.all(x[:, :, :2] == 0.0)
    np.testing.assert_array_equal(x[3:27, 5:25, 2:14, 0], window_ct(image))


def test_roi_margin_keeps_uniform_patches_near_the_pancreas(ct_cache):
    cache, raw = ct_cache
    s = PatchSampler(cache, cache.case_ids, (6, 4, 3), positive_fraction=0.0, roi_margin=2)
    for i in range(10):
        (x, y), info = s.sample_with_info(i)
        label = raw[info["case_id"]][1]
        roi = expand_box(box_from_mask(label), 2, shape=label.shape)
        box = info["box"]
        assert np.all(box[:, 0] >= roi[:, 0]) and np.all(box[:, 1] <= roi[:, 1])


def test_patch_sampler_reads_only_the_patch(ct_cache):
    cache, _ = ct_cache
    log = []
    s = PatchSampler(RecordingCache(cache, log), cache.case_ids, (5, 5, 3), positive_fraction=1.0)
    for i in range(5):
        s.sample(i)
    plane_box = 10 * 6  # the pancreas box's in-plane size, one slice (positive draw)
    assert max(log) <= max(5 * 5 * 3, plane_box)


def test_box_crop_3d_random_margins(ct_cache):
    cache, raw = ct_cache
    s = BoxCropSampler3D(cache, cache.case_ids, margin=MarginRange(0, 4))
    assert s.output_signature()[0][0] == (None, None, None, 1)
    for i in range(8):
        (x, y), info = s.sample_with_info(i)
        image, label = raw[info["case_id"]]
        pbox = box_from_mask(label)
        box = info["crop_box"]
        grow = np.stack([pbox[:, 0] - box[:, 0], box[:, 1] - pbox[:, 1]], 1)
        clipped = clip_box(expand_box(pbox, 4), image.shape)
        assert np.all(grow >= 0) and np.all(box[:, 0] >= clipped[:, 0]) and np.all(box[:, 1] <= clipped[:, 1])
        np.testing.assert_array_equal(x[..., 0], window_ct(crop(image, box)))
        assert y.sum() == label.sum()


def test_box_crop_3d_fixed_margin_resized(ct_cache):
    cache, raw = ct_cache
    s = BoxCropSampler3D(cache, cache.case_ids, margin=1, size=(16, 16, 8))
    (x, y), info = s.sample_with_info(0)
    label = raw[info["case_id"]][1]
    box = expand_box(box_from_mask(label), 1, shape=label.shape)
    np.testing.assert_array_equal(info["crop_box"], box)
    np.testing.assert_allclose(info["zoom"], np.array([16, 16, 8]) / np.diff(box, axis=1).ravel())
    assert x.shape == (16, 16, 8, 1) and y.shape == (16, 16, 8, 1)
    assert set(np.unique(y)) == {0.0, 1.0}


def test_box_crop_3d_pad_mode_and_jitter(ct_cache):
    cache, raw = ct_cache
    s = BoxCropSampler3D(cache, cache.case_ids, margin=0, size=(20, 20, 10), resize=False, jitter=2)
    for i in range(5):
        (x, y), info = s.sample_with_info(i)
        assert x.shape == (20, 20, 10, 1)
        shift = info["crop_box"] - box_from_mask(raw[info["case_id"]][1])
        assert np.all(np.abs(shift) <= 2)


def test_3d_samplers_need_pancreas(tmp_path):
    cache, _ = make_cache(tmp_path, shapes=SHAPES[:1])
    # A cache whose only case has pancreas works; an empty id list does not.
    assert PatchSampler(cache, cache.case_ids, (4, 4, 4)).sample(0)[0].shape == (4, 4, 4, 1)
    with pytest.raises(ValueError):
        PatchSampler(cache, cache.case_ids, (4, 4))


def test_scaled_patches_are_the_resized_box_around_the_same_centre(ct_cache):
    from tfpanc.data.preprocess import resize, resize_label

    cache, raw = ct_cache
    patch = (8, 10, 6)
    plain = PatchSampler(cache, cache.case_ids, patch, positive_fraction=0.5)
    scaled = PatchSampler(cache, cache.case_ids, patch, positive_fraction=0.5, scale=0.5)
    factors = []
    for i in range(20):
        (x, y), info = scaled.sample_with_info(i)
        image, label = raw[info["case_id"]]
        box, f = info["box"], info["scale"]
        assert x.shape == patch + (1,) and y.shape == patch + (1,)
        np.testing.assert_array_equal(np.diff(box, axis=1)[:, 0], np.maximum(np.rint(np.array(patch) / f), 1))
        np.testing.assert_allclose(x[..., 0], resize(crop(window_ct(image), box, fill=0), patch)[0], atol=1e-6)
        np.testing.assert_array_equal(y[..., 0], resize_label(crop(label, box).astype(np.float32), patch))
        factors.append(f)
    factors = np.array(factors)
    assert factors.min() >= 1 / 1.5 - 1e-9 and factors.max() <= 1.5 + 1e-9
    assert factors.min() < 0.85 and factors.max() > 1.2
    # Scale 0 is the plain sampler: no factors, the patch read as it is.
    (x0, _), info0 = plain.sample_with_info(3)
    (x1, _), info1 = PatchSampler(cache, cache.case_ids, patch, positive_fraction=0.5, scale=0).sample_with_info(3)
    assert info1["scale"] is None and info0["scale"] is None
    np.testing.assert_array_equal(x0, x1)
    with pytest.raises(ValueError, match="scale"):
        PatchSampler(cache, cache.case_ids, patch, scale=-0.1)
