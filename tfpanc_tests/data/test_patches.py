import numpy as np
import pytest

from tfpanc.data.patches import (move_view_back, move_view_last, read_slices, slice_run, slice_stack, slice_stacks,
                                 take_slice, view_axis)


def _vol(shape=(5, 6, 7)):
    return np.random.default_rng(0).random(shape).astype(np.float32)


def test_view_axis_mapping():
    assert [view_axis(v) for v in ("sagittal", "coronal", "axial", "Axial", 1)] == [0, 1, 2, 2, 1]
    with pytest.raises(ValueError):
        view_axis("oblique")


@pytest.mark.parametrize("view,index", [("axial", np.s_[:, :, 3]), ("coronal", np.s_[:, 3, :]),
                                        ("sagittal", np.s_[3, :, :])])
def test_slices_follow_the_ras_convention(view, index):
    v = _vol()
    np.testing.assert_array_equal(take_slice(v, view, 3), v[index])
    np.testing.assert_array_equal(move_view_last(v, view)[:, :, 3], v[index])
    assert move_view_back(move_view_last(v, view), view).shape == v.shape
    np.testing.assert_array_equal(move_view_back(move_view_last(v, view), view), v)


def test_move_view_last_keeps_channels_behind():
    v = np.zeros((2, 3, 4, 5))
    assert move_view_last(v, "sagittal").shape == (3, 4, 2, 5)


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_slice_stack_neighbours_and_edge_replication(view):
    v = _vol()
    n = v.shape[view_axis(view)]
    for k in (0, 2, n - 1):
        s = slice_stack(v, view, k)
        assert s.shape == take_slice(v, view, k).shape + (3,)
        for ch, j in enumerate((max(k - 1, 0), k, min(k + 1, n - 1))):
            np.testing.assert_array_equal(s[..., ch], take_slice(v, view, j))


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_slice_stacks_vectorised_equals_one_by_one(view):
    v = _vol()
    stacks = slice_stacks(v, view)
    n = v.shape[view_axis(view)]
    assert stacks.shape[0] == n
    for k in range(n):
        np.testing.assert_array_equal(stacks[k], slice_stack(v, view, k))


def test_slice_stacks_wider_context_is_a_view_of_the_padded_copy():
    v = _vol()
    stacks = slice_stacks(v, "axial", context=2)
    assert stacks.shape == (7, 5, 6, 5)
    np.testing.assert_array_equal(stacks[0, ..., 0], v[:, :, 0])
    np.testing.assert_array_equal(stacks[3, ..., 4], v[:, :, 5])
    assert not stacks.flags.owndata


def test_read_slices_in_plane_box_and_run():
    v = _vol()
    part = read_slices(v, "coronal", [4, 2, 2], box2d=[[1, 3], [2, 6]])
    np.testing.assert_array_equal(part[..., 0], v[1:3, 4, 2:6])
    np.testing.assert_array_equal(part[..., 2], v[1:3, 2, 2:6])
    run = slice_run(v, "axial", 5, 4)  # slices 5, 6, 6, 6 (clamped)
    assert run.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(run[0], slice_stack(v, "axial", 5))
    np.testing.assert_array_equal(run[3, ..., 1], v[:, :, 6])
