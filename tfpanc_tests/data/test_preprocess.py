import numpy as np
import pytest

from tfpanc.data import preprocess as pp
from tfpanc.data.io import Geometry


def test_reexports_reach_the_sibling_modules():
    for name in ("window_ct", "IntensityNormalizer", "box_from_mask", "crop", "paste", "scale_box",
                 "expand_box", "slice_stacks", "move_view_last", "view_axis"):
        assert callable(getattr(pp, name))
    # data must not reach up into inference for the 3D sliding-window grid.
    assert not hasattr(pp, "PatchGrid")


def test_resampled_shape_rule():
    assert pp.resampled_shape((512, 512, 240), (0.7, 0.7, 1.5), 1.0) == (358, 358, 360)
    assert pp.resampled_shape((100, 80, 10), (1.0, 1.0, 5.0), (2.0, 0.5, 1.0)) == (50, 160, 50)
    assert pp.resampled_shape((3, 3, 3), (0.1, 0.1, 0.1), 1.0) == (1, 1, 1)


def test_resample_image_of_a_ramp_is_the_ramp_on_the_new_grid():
    spacing = (0.5, 1.0, 2.5)
    shape = (40, 10, 8)
    # Value = mm position of the voxel centre along z (voxel edges at 0).
    z_mm = (np.arange(shape[2]) + 0.5) * spacing[2]
    image = np.broadcast_to(z_mm, shape).astype(np.float32)
    out = pp.resample_image(image, spacing, 1.0)
    assert out.shape == (20, 10, 20) and out.dtype == np.float32
    new_z = np.arange(20) + 0.5
    inner = (new_z > z_mm[0]) & (new_z < z_mm[-1])  # away from the clamped borders
    np.testing.assert_allclose(out[7, 3, inner], new_z[inner], atol=1e-4)


def test_resample_label_keeps_volume_and_values():
    spacing = (0.8, 0.8, 2.0)
    g = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip((50, 50, 20), spacing)],
                             indexing="ij"), -1)
    label = (np.linalg.norm(g - 20.0, axis=-1) < 12).astype(np.uint8)  # r = 12 mm sphere
    true_ml = 4 / 3 * np.pi * 12 ** 3
    for method in ("linear", "nearest"):
        out = pp.resample_label(label, spacing, 1.0, method)
        assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 1}
        assert out.shape == pp.resampled_shape(label.shape, spacing, 1.0)
        assert abs(out.sum() * 1.0 - true_ml) / true_ml < 0.05
    with pytest.raises(ValueError):
        pp.resample_label(label, spacing, 1.0, "cubic")


def test_resample_multiclass_label_linear():
    label = np.zeros((20, 20, 10), np.uint8)
    label[2:10] = 1
    label[10:18] = 2
    out = pp.resize_label(label, (40, 40, 20))
    assert set(np.unique(out)) == {0, 1, 2}
    assert (out == 1).sum() == 8 * 2 * 40 * 20 and (out == 2).sum() == 16 * 40 * 20


def test_resampled_geometry_keeps_field_of_view():
    geo = Geometry.from_spacing((10, 10, 4), (1.0, 1.0, 2.5), origin=(5.0, 0.0, 0.0))
    new = pp.resampled_geometry(geo, (20, 10, 10))
    np.testing.assert_allclose(new.spacing, (0.5, 1.0, 1.0))
    assert new.shape == (20, 10, 10)
    # Edge of voxel 0: old centre 5.0 - 0.5 mm; new centre 0.25 mm inside it.
    np.testing.assert_allclose(new.affine[:3, 3], (4.75, 0.0, -0.75))


def test_resize_returns_factors_and_keeps_channels():
    a = np.random.default_rng(0).random((10, 20, 3)).astype(np.float32)
    out, f = pp.resize(a, (5, 40))
    assert out.shape == (5, 40, 3) and f == (0.5, 2.0)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), a.mean(axis=(0, 1)), atol=0.02)


@pytest.mark.parametrize("shape,out", [((13, 7, 9), (20, 5, 9)), ((30, 4), (7, 11)), ((5, 6, 7), (5, 6, 7))])
def test_linear_resize_equals_scipy_zoom(shape, out):
    from scipy import ndimage

    a = np.random.default_rng(2).random(shape).astype(np.float32)
    zoom = [o / s for o, s in zip(out, shape)]
    expected = ndimage.zoom(a, zoom, order=1, mode="nearest", grid_mode=True)
    np.testing.assert_allclose(pp.resize(a, out)[0], expected, atol=1e-6)


def test_decimate_image_is_block_mean_with_partial_blocks():
    rng = np.random.default_rng(0)
    v = rng.random((9, 8, 5)).astype(np.float32)
    d = pp.decimate_image(v, 4)
    assert d.shape == pp.decimated_shape(v.shape, 4) == (3, 2, 2)
    np.testing.assert_allclose(d[0, 0, 0], v[:4, :4, :4].mean(), rtol=1e-5)
    np.testing.assert_allclose(d[2, 1, 1], v[8:, 4:, 4:].mean(), rtol=1e-5)  # partial block: real voxels only


def test_decimate_label_block_max_and_upsample_cover():
    m = np.zeros((10, 9, 7), np.uint8)
    m[5, 2, 6] = 1
    d = pp.decimate_label(m, 4)
    assert d.shape == (3, 3, 2) and d.sum() == 1 and d[1, 0, 1] == 1
    up = pp.upsample(d, 4, m.shape)
    assert up.shape == m.shape and np.all(up[m > 0] == 1)
    assert up.sum() == 4 * 4 * 3  # the block, cut at the z border


def test_upsample_linear_of_constant_and_shape():
    d = np.full((3, 3, 2), 0.7, np.float32)
    up = pp.upsample(d, 4, (10, 12, 7), order=1)
    assert up.shape == (10, 12, 7)
    np.testing.assert_allclose(up, 0.7, rtol=1e-6)


def test_body_box_ignores_the_table_and_air():
    ct = np.full((40, 40, 10), -1000, np.int16)
    ct[5:30, 8:32, :] = 30  # body
    ct[12:15, 12:15, 3] = -900  # air inside the body (bowel gas)
    ct[34:36, :, :] = 300  # table, separate from the body
    ct[0, 0, 0] = 500  # a stray bright voxel
    assert pp.body_box(ct).tolist() == [[5, 30], [8, 32], [0, 10]]
    assert pp.body_box(ct, margin=2).tolist() == [[3, 32], [6, 34], [0, 10]]
    assert pp.body_box(np.full((4, 4, 4), -1000)).tolist() == [[0, 4], [0, 4], [0, 4]]


def test_largest_component():
    m = np.zeros((10, 10, 10), bool)
    m[0:2, 0:2, 0:2] = True
    m[5:9, 5:9, 5:9] = True
    lc = pp.largest_component(m)
    assert lc.sum() == 64 and lc[6, 6, 6]
    assert pp.largest_component(np.zeros((2, 2, 2), bool)) is None


@pytest.mark.large
def test_full_size_volume_512x512x240():
    import time

    rng = np.random.default_rng(0)
    shape = (512, 512, 240)
    ct = np.full(shape, -1000, np.int16)
    x, y = np.ogrid[:512, :512]
    body = (x - 256) ** 2 / 200 ** 2 + (y - 240) ** 2 / 150 ** 2 < 1
    ct[body] = rng.integers(-100, 200, (int(body.sum()), 240), dtype=np.int16)
    ct[480:490, :, :] = 200  # table
    t = time.perf_counter()
    assert pp.body_box(ct).tolist() == [[57, 456], [91, 390], [0, 240]]
    low = pp.decimate_image(ct, 4)
    assert low.shape == (128, 128, 60)
    np.testing.assert_allclose(low[64, 60, 30], ct[256:260, 240:244, 120:124].mean(), rtol=1e-5)
    label = np.zeros(shape, np.uint8)
    label[300:340, 200:260, 100:150] = 1
    lbox = pp.scale_box(pp.box_from_mask(pp.decimate_label(label, 4)), 4, shape)
    assert lbox.tolist() == [[300, 340], [200, 260], [100, 152]]
    stacks = pp.slice_stacks(ct, "axial")
    assert stacks.shape == (240, 512, 512, 3)
    np.testing.assert_array_equal(stacks[239, ..., 2], ct[:, :, 239])
    prob = pp.window_ct(ct)
    assert prob.shape == shape and prob.dtype == np.float32
    assert time.perf_counter() - t < 300
