import numpy as np
import pytest

from tfpanc.data.boxes import (as_box, box_center, box_from_mask, box_shape, centered_box, clip_box, crop,
                               expand_box, paste, scale_box, union_box)


def test_box_from_mask_is_half_open_and_none_when_empty():
    m = np.zeros((6, 7, 8), np.uint8)
    m[2, 3:5, 7] = 1
    m[4, 4, 1] = 1
    assert box_from_mask(m).tolist() == [[2, 5], [3, 5], [1, 8]]
    assert box_from_mask(np.zeros((3, 3, 3))) is None
    assert box_from_mask(np.ones((2, 3))).tolist() == [[0, 2], [0, 3]]
    assert box_from_mask(np.zeros((0, 4, 4), bool)) is None


@pytest.mark.parametrize("layout", ["C", "F", "transposed", "strided"])
def test_box_from_mask_matches_the_nonzero_extent_for_any_memory_layout(layout):
    rng = np.random.default_rng(3)
    for trial in range(40):
        m = rng.random((7, 5, 6)) < rng.choice([0.002, 0.02, 0.3])
        if layout == "F":
            m = np.asfortranarray(m)
        elif layout == "transposed":
            m = m.transpose(2, 0, 1)
        elif layout == "strided":
            m = m[::2, :, ::-1]
        m = m.astype(np.float32) if trial % 2 else m
        coords = np.argwhere(m)
        expected = None if coords.size == 0 else [[int(lo), int(hi) + 1] for lo, hi in
                                                  zip(coords.min(0), coords.max(0))]
        box = box_from_mask(m)
        assert (box is None) if expected is None else (box.dtype == np.int64 and box.tolist() == expected)


def test_as_box_rejects_bad_boxes():
    with pytest.raises(ValueError):
        as_box([[3, 1], [0, 2], [0, 2]])
    with pytest.raises(ValueError):
        as_box([1, 2, 3])
    with pytest.raises(ValueError):
        as_box([[0, 1], [0, 1]], ndim=3)


def test_expand_box_voxels_mm_sides_and_clip():
    box = [[10, 20], [10, 20], [4, 8]]
    assert expand_box(box, 2).tolist() == [[8, 22], [8, 22], [2, 10]]
    assert expand_box(box, [1, 2, 3]).tolist() == [[9, 21], [8, 22], [1, 11]]
    assert expand_box(box, [[1, 0], [0, 1], [2, 2]]).tolist() == [[9, 20], [10, 21], [2, 10]]
    # 10 mm at 0.8 mm voxels -> ceil(12.5) = 13 voxels; at 2.5 mm -> 4.
    assert expand_box(box, 10, spacing=(0.8, 0.8, 2.5)).tolist() == [[-3, 33], [-3, 33], [0, 12]]
    assert expand_box(box, 10, spacing=(0.8, 0.8, 2.5), shape=(30, 40, 10)).tolist() == [[0, 30], [0, 33], [0, 10]]
    assert expand_box(box, -10).tolist() == [[20, 20], [20, 20], [14, 14]]


def test_clip_box_handles_boxes_outside():
    assert clip_box([[-5, 3], [8, 12], [20, 30]], (10, 10, 10)).tolist() == [[0, 3], [8, 10], [10, 10]]


def test_scale_box_low_to_full_resolution_covers_the_mask():
    rng = np.random.default_rng(0)
    full = np.zeros((37, 41, 23), bool)
    full[rng.integers(5, 30), rng.integers(5, 35), rng.integers(3, 20)] = True
    full[9:14, 20:31, 6:9] = True
    r = 4
    from tfpanc.data.preprocess import decimate_label
    low = decimate_label(full.astype(np.uint8), r)
    up = scale_box(box_from_mask(low), r, shape=full.shape)
    truth = box_from_mask(full)
    assert np.all(up[:, 0] <= truth[:, 0]) and np.all(up[:, 1] >= truth[:, 1])
    assert np.all(up[:, 0] > truth[:, 0] - r) and np.all(up[:, 1] < truth[:, 1] + r)


def test_scale_box_down_and_per_axis():
    assert scale_box([[8, 18], [1, 3], [4, 5]], 0.25).tolist() == [[2, 5], [0, 1], [1, 2]]
    assert scale_box([[1, 2], [1, 2], [1, 2]], (2, 3, 0.5)).tolist() == [[2, 4], [3, 6], [0, 1]]


def test_shape_center_union_centered():
    b = [[2, 6], [0, 3], [5, 6]]
    assert box_shape(b) == (4, 3, 1)
    np.testing.assert_allclose(box_center(b), [3.5, 1, 5])
    assert union_box(b, None, [[0, 1], [4, 5], [5, 9]]).tolist() == [[0, 6], [0, 5], [5, 9]]
    assert union_box(None) is None
    c = centered_box((10, 10, 10), (5, 4, 3))
    assert box_shape(c) == (5, 4, 3) and np.allclose(box_center(c), [10, 9.5, 10])
    assert centered_box((0, 99, 5), (6, 6, 6), shape=(100, 100, 4)).tolist() == [[0, 6], [94, 100], [-1, 5]]


def test_crop_inside_is_a_copy_and_outside_is_filled():
    v = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    c = crop(v, [[1, 3], [0, 5], [2, 4]])
    np.testing.assert_array_equal(c, v[1:3, :, 2:4])
    c[...] = -1
    assert v.min() == 0
    p = crop(v, [[-1, 2], [3, 7], [0, 6]], fill=-9)
    assert p.shape == (3, 4, 6)
    assert np.all(p[0] == -9) and np.all(p[:, 2:] == -9)
    np.testing.assert_array_equal(p[1:, :2], v[0:2, 3:5])


def test_crop_keeps_channels():
    v = np.random.default_rng(0).random((5, 5, 5, 2))
    assert crop(v, [[0, 2], [1, 3], [-1, 1]]).shape == (2, 2, 2, 2)


def test_paste_inverts_crop_inside_the_volume():
    rng = np.random.default_rng(3)
    v = rng.random((9, 8, 7)).astype(np.float32)
    box = np.array([[-2, 5], [3, 8], [4, 10]])
    full = paste(crop(v, box), box, v.shape)
    inside = clip_box(box, v.shape)
    sl = tuple(slice(a, b) for a, b in inside)
    np.testing.assert_array_equal(full[sl], v[sl])
    assert full.sum() == pytest.approx(float(v[sl].sum()))


def test_paste_into_existing_array_and_shape_check():
    out = np.full((4, 4), 7.0)
    paste(np.zeros((2, 2)), [[1, 3], [1, 3]], (4, 4), out=out)
    assert out.sum() == 7.0 * 12
    with pytest.raises(ValueError):
        paste(np.zeros((3, 2)), [[1, 3], [1, 3]], (4, 4))
