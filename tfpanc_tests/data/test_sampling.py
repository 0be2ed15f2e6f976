import pickle

import numpy as np
import pytest

from tfpanc.data.boxes import box_from_mask, centered_box, crop, expand_box
from tfpanc.data.cache import CaseCache, write_case, write_index
from tfpanc.data.intensity import mri_stats, normalize_mri, window_ct
from tfpanc.data.io import Geometry
from tfpanc.data.patches import take_slice, view_axis
from tfpanc.data.sampler_base import MarginRange, draw_margins
from tfpanc.data.sampling import SliceCropSampler, SliceRunSampler, SliceSampler
from tfpanc_tests.data.sampling_fixtures import SHAPES, RecordingCache, make_cache

@pytest.fixture(scope="module")
def ct_cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("ct_cache"))


def _stack(image, view, k, context=1):
    n = image.shape[view_axis(view)]
    return np.stack([take_slice(image, view, j) for j in np.clip(np.arange(k - context, k + context + 1), 0, n - 1)],
                    axis=-1)


def test_samples_depend_only_on_seed_epoch_index(ct_cache):
    cache, _ = ct_cache
    s = SliceSampler(cache, cache.case_ids, "axial", size=(24, 24), positive_fraction=0.5, seed=3)
    forward = [s.sample(i, epoch=2) for i in range(8)]
    other = SliceSampler(cache, cache.case_ids, "axial", size=(24, 24), positive_fraction=0.5, seed=3)
    backward = [other.sample(i, epoch=2) for i in reversed(range(8))][::-1]
    for (a, b), (c, d) in zip(forward, backward):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    infos = [s.sample_with_info(i, 2)[1] for i in range(8)]
    infos_e3 = [s.sample_with_info(i, 3)[1] for i in range(8)]
    seed4 = SliceSampler(cache, cache.case_ids, "axial", size=(24, 24), positive_fraction=0.5, seed=4)
    key = lambda i: (i["case_id"], i["slice"])  # noqa: E731
    assert [key(i) for i in infos] != [key(i) for i in infos_e3]
    assert [key(i) for i in infos] != [key(seed4.sample_with_info(i, 2)[1]) for i in range(8)]


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_slice_sample_is_the_normalised_stack_and_centre_mask(ct_cache, view):
    cache, raw = ct_cache
    s = SliceSampler(cache, cache.case_ids, view)
    for i in range(6):
        (x, y), info = s.sample_with_info(i)
        image, label = raw[info["case_id"]]
        k = info["slice"]
        assert x.dtype == np.float32 and y.dtype == np.float32
        np.testing.assert_array_equal(x, window_ct(_stack(image, view, k)))
        np.testing.assert_array_equal(y[..., 0], take_slice(label, view, k).astype(np.float32))


def test_fixed_size_is_centre_crop_or_pad_with_air(ct_cache):
    cache, raw = ct_cache
    s = SliceSampler(cache, cache.case_ids, "axial", size=(21, 30))
    assert s.output_signature() == (((21, 30, 3), np.float32), ((21, 30, 1), np.float32))
    for i in range(6):
        (x, y), info = s.sample_with_info(i)
        image, label = raw[info["case_id"]]
        plane = image.shape[:2]
        box = centered_box((np.asarray(plane) - 1) / 2.0, (21, 30))
        np.testing.assert_array_equal(x, crop(window_ct(_stack(image, "axial", info["slice"])), box, fill=0.0))
        np.testing.assert_array_equal(y[..., 0], crop(label[:, :, info["slice"]], box).astype(np.float32))
        assert x.shape == (21, 30, 3) and y.shape == (21, 30, 1)


def test_native_size_signature_is_variable_when_shapes_differ(ct_cache):
    cache, _ = ct_cache
    assert SliceSampler(cache, cache.case_ids, "axial").output_signature()[0][0] == (None, None, 3)
    one = SliceSampler(cache, cache.case_ids[:1], "coronal")
    assert one.output_signature()[0][0] == (24, 12, 3)


def test_min_pixels_keeps_only_slices_with_that_much_pancreas(ct_cache):
    cache, raw = ct_cache
    s = SliceSampler(cache, cache.case_ids, "axial", min_pixels=30)
    eligible = {(cid, k) for cid, (_, lab) in raw.items() for k in range(lab.shape[2]) if lab[:, :, k].sum() >= 30}
    assert s.epoch_size == len(eligible) == 15
    seen = set()
    for i in range(200):
        info = s.sample_with_info(i)[1]
        seen.add((info["case_id"], info["slice"]))
    assert seen == eligible  # slice 8 (one pixel) never drawn; all others are


def test_positive_fraction_oversamples_pancreas_slices(ct_cache):
    cache, raw = ct_cache
    n_all = sum(lab.shape[2] for _, lab in raw.values())
    n_pos = sum(int((lab.sum(axis=(0, 1)) > 0).sum()) for _, lab in raw.values())
    for fraction in (0.0, 0.5, 1.0):
        s = SliceSampler(cache, cache.case_ids, "axial", positive_fraction=fraction, seed=1)
        hits = [raw[info["case_id"]][1][:, :, info["slice"]].any()
                for info in (s.sample_with_info(i)[1] for i in range(300))]
        expected = fraction + (1 - fraction) * n_pos / n_all
        assert abs(np.mean(hits) - expected) < 0.09, (fraction, np.mean(hits), expected)


def test_no_pancreas_slices_is_an_error(tmp_path):
    cache, _ = make_cache(tmp_path, shapes=[(16, 12, 9)])
    with pytest.raises(ValueError):
        SliceSampler(cache, cache.case_ids, "axial", min_pixels=10_000)
    with pytest.raises(ValueError):
        SliceSampler(cache, cache.case_ids, min_pixels=5, positive_fraction=0.5)


def test_edge_slices_replicate_the_border(tmp_path):
    shape = (12, 12, 6)
    image = np.random.default_rng(0).integers(-100, 240, shape).astype(np.int16)
    label = np.zeros(shape, np.uint8)
    label[3:6, 3:6, 0] = 1
    write_case(tmp_path, "edge", image, label, Geometry.from_spacing(shape, (1, 1, 1)))
    write_index(tmp_path, "t", ["edge"], "ct", "x")
    s = SliceSampler(CaseCache(tmp_path), ["edge"], "axial", min_pixels=1)
    x, y = s.sample(0)
    np.testing.assert_array_equal(x[..., 0], x[..., 1])
    np.testing.assert_array_equal(x[..., 2], window_ct(image[:, :, 1]))
    assert y.sum() == 9


def test_slice_run_is_consecutive_stacks(ct_cache):
    cache, raw = ct_cache
    s = SliceRunSampler(cache, cache.case_ids, "axial", length=4, size=(20, 20), positive_fraction=1.0)
    assert s.output_signature()[0][0] == (4, 20, 20, 3)
    for i in range(6):
        (x, y), info = s.sample_with_info(i)
        image, label = raw[info["case_id"]]
        start = info["start"]
        assert start <= info["anchor"] < start + 4 and 0 <= start <= image.shape[2] - 4
        box = info["box2d"]
        assert x.shape == (4, 20, 20, 3) and y.shape == (4, 20, 20, 1)
        for t in range(4):
            np.testing.assert_array_equal(x[t], crop(window_ct(_stack(image, "axial", start + t)), box))
            np.testing.assert_array_equal(y[t, ..., 0], crop(label[:, :, start + t], box).astype(np.float32))
        assert y.sum() > 0


def test_slice_run_longer_than_the_volume_repeats_the_last_slice(ct_cache):
    cache, raw = ct_cache
    s = SliceRunSampler(cache, ["case_01"], "axial", length=12)  # 9 slices
    x, y = s.sample(0)
    image = raw["case_01"][0]
    assert x.shape == (12, 22, 26, 3)
    for t in range(9, 12):
        np.testing.assert_array_equal(x[t], window_ct(_stack(image, "axial", 8)))


def test_slice_crop_random_frame_around_the_slice_box(ct_cache):
    cache, raw = ct_cache
    s = SliceCropSampler(cache, cache.case_ids, "axial", margin=MarginRange(0, 60))
    assert s.output_signature()[0][0] == (None, None, 3)
    drawn = []
    for i in range(10):
        (x, y), info = s.sample_with_info(i)
        image, label = raw[info["case_id"]]
        k = info["slice"]
        assert label[:, :, k].any()
        np.testing.assert_array_equal(info["pancreas_box2d"], box_from_mask(label[:, :, k]))
        m = info["margins"]
        assert m.shape == (2, 2) and m.min() >= 0 and m.max() <= 60
        drawn.append(m)
        box = expand_box(info["pancreas_box2d"], m, shape=image.shape[:2])
        np.testing.assert_array_equal(info["crop_box"], box)
        np.testing.assert_array_equal(x, crop(window_ct(_stack(image, "axial", k)), box))
        np.testing.assert_array_equal(y[..., 0], crop(label[:, :, k], box).astype(np.float32))
        assert y.sum() == label[:, :, k].sum()  # the whole slice box is inside the crop
    assert len({tuple(m.ravel()) for m in drawn}) > 5


def test_slice_crop_fixed_margin_volume_box_and_resize(ct_cache):
    cache, raw = ct_cache
    s = SliceCropSampler(cache, cache.case_ids, "coronal", margin=2, box="volume", size=(32, 16))
    for i in range(4):
        (x, y), info = s.sample_with_info(i)
        image, label = raw[info["case_id"]]
        vbox = box_from_mask(label)[[0, 2]]
        np.testing.assert_array_equal(info["crop_box"], expand_box(vbox, 2, shape=(image.shape[0], image.shape[2])))
        crop_shape = np.diff(info["crop_box"], axis=1).ravel()
        np.testing.assert_allclose(info["zoom"], np.array([32, 16]) / crop_shape)
        assert x.shape == (32, 16, 3) and y.shape == (32, 16, 1)
        assert set(np.unique(y)) <= {0.0, 1.0} and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError):
        SliceCropSampler(cache, cache.case_ids, box="sphere")


def test_slice_crop_pad_mode_keeps_native_resolution(ct_cache):
    cache, raw = ct_cache
    s = SliceCropSampler(cache, cache.case_ids, "axial", margin=1, size=(40, 40), resize=False)
    (x, y), info = s.sample_with_info(0)
    image, label = raw[info["case_id"]]
    assert x.shape == (40, 40, 3) and info["zoom"] == (1.0, 1.0)
    assert y.sum() == label[:, :, info["slice"]].sum()


def test_draw_margins():
    rng = np.random.default_rng(0)
    assert draw_margins(5, rng, 3).tolist() == [[5, 5]] * 3
    assert draw_margins([1, 2], rng, 2).tolist() == [[1, 1], [2, 2]]
    m = draw_margins(MarginRange(3, 4), rng, 3)
    assert m.shape == (3, 2) and set(np.unique(m)) <= {3, 4}
    with pytest.raises(ValueError):
        MarginRange(5, 2)


def test_mri_samples_use_whole_volume_statistics(tmp_path):
    cache, raw = make_cache(tmp_path, modality="mri")
    s = SliceSampler(cache, cache.case_ids, "axial", size=(30, 30))
    assert s.normalizer.modality == "mri"
    (x, _), info = s.sample_with_info(1)
    image = raw[info["case_id"]][0]
    stats = mri_stats(image)
    box = centered_box((np.asarray(image.shape[:2]) - 1) / 2.0, (30, 30))
    expected = crop(normalize_mri(_stack(image, "axial", info["slice"]), stats), box, fill=0.0)
    np.testing.assert_allclose(x, expected, atol=1e-6)


def test_samplers_read_only_what_a_sample_needs(ct_cache):
    cache, _ = ct_cache
    log = []
    rc = RecordingCache(cache, log)
    plane = max(a * b for a, b, _ in SHAPES)
    SliceSampler(rc, cache.case_ids, "axial", positive_fraction=0.5).sample(0)
    assert log and max(log) <= 3 * plane
    log.clear()
    SliceRunSampler(rc, cache.case_ids, "axial", length=3).sample(5)
    assert max(log) <= 5 * plane
    log.clear()
    SliceCropSampler(rc, cache.case_ids, "axial", margin=1).sample(2)
    assert max(log) <= 3 * 10 * 8  # 3 slices of the (8 + 2) x (6 + 2) crop


def test_sampler_pickles_small_and_samples_the_same(ct_cache):
    cache, _ = ct_cache
    s = SliceSampler(cache, cache.case_ids, "sagittal", positive_fraction=0.3, seed=9)
    s.sample(0)
    blob = pickle.dumps(s)
    assert len(blob) < 20_000
    x1, y1 = pickle.loads(blob).sample(4, 1)
    x2, y2 = s.sample(4, 1)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_unlabelled_case_is_refused(tmp_path):
    shape = (8, 8, 4)
    write_case(tmp_path, "nolab", np.zeros(shape, np.int16), None, Geometry.from_spacing(shape, (1, 1, 1)))
    write_index(tmp_path, "t", ["nolab"], "ct", "x")
    from tfpanc.errors import InputError

    with pytest.raises(InputError, match="no label"):
        SliceSampler(CaseCache(tmp_path), ["nolab"])
    with pytest.raises(ValueError):
        SliceSampler(CaseCache(tmp_path), [])
