"""The serving graph's volume ops equal their numpy counterparts (random inputs, traced shapes unknown)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tfpanc.data import boxes as np_boxes  # noqa: E402
from tfpanc.data.preprocess import decimate_image, resize, upsample  # noqa: E402
from tfpanc.export import graph_ops  # noqa: E402
from tfpanc.inference.sliding_window import grid_starts, sliding_window_inference  # noqa: E402

ANY3 = tf.TensorSpec([None, None, None], tf.float32)


def _traced(fn, *specs):
    """``fn`` as a tf.function whose input shapes are unknown when traced (as in a SavedModel)."""
    return tf.function(fn, input_signature=list(specs))


@pytest.mark.parametrize("shape,factor", [((9, 8, 7), 4), ((4, 4, 4), 4), ((13, 3, 6), 2), ((5, 6, 2), 3)])
def test_block_mean_is_decimate_image(shape, factor):
    image = np.random.default_rng(0).normal(0, 500, shape).astype(np.float32)
    out = _traced(lambda v: graph_ops.block_mean(v, factor), ANY3)(image).numpy()
    expected = decimate_image(image, factor)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)  # float32 sums in another order
    two = graph_ops.block_mean(np.stack([image, -image], -1), factor).numpy()  # trailing axes kept
    np.testing.assert_allclose(two[..., 1], -expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("src,dst", [((7, 5, 3), (28, 20, 12)), ((9, 8, 6), (4, 13, 6)), ((1, 2, 3), (3, 1, 5))])
def test_resize_linear_is_preprocess_resize(src, dst):
    array = np.random.default_rng(1).random(src).astype(np.float32)
    spec = tf.TensorSpec([3], tf.int32)
    out = _traced(graph_ops.resize_linear, ANY3, spec)(array, np.int32(dst)).numpy()
    expected = resize(array, dst, order=1)[0]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def test_upsample_linear_is_preprocess_upsample():
    low = np.random.default_rng(2).random((4, 3, 2)).astype(np.float32)
    for shape in [(16, 12, 8), (13, 10, 5)]:
        spec = tf.TensorSpec([3], tf.int32)
        out = _traced(lambda a, s: graph_ops.upsample_linear(a, 4, s), ANY3, spec)(low, np.int32(shape)).numpy()
        np.testing.assert_allclose(out, upsample(low, 4, shape, order=1), rtol=0, atol=1e-6)


def test_boxes_are_numpy_boxes():
    rng = np.random.default_rng(3)
    f = _traced(lambda m: graph_ops.box_from_mask(m > 0.5), ANY3)
    for _ in range(5):
        mask = np.zeros((12, 10, 9), np.float32)
        lo = rng.integers(0, [10, 8, 7])
        mask[lo[0]:lo[0] + 3, lo[1]:lo[1] + 2, lo[2]] = rng.random((3, 2)) + 0.51
        box, found = f(mask)
        expected = np_boxes.box_from_mask(mask > 0.5)
        assert bool(found) and box.numpy().tolist() == expected.tolist()
        for margin in (0, 2, [1, 0, 3], [[1, 2], [0, 4], [3, 0]], -1):
            out = graph_ops.expand_box(box, margin, shape=mask.shape).numpy()
            assert out.tolist() == np_boxes.expand_box(expected, margin, shape=mask.shape).tolist(), margin
        for factor in (4, 0.25, [2, 3, 1]):
            out = graph_ops.scale_box(box, factor, shape=(30, 30, 20)).numpy()
            assert out.tolist() == np_boxes.scale_box(expected, factor, shape=(30, 30, 20)).tolist(), factor
        other = np.array([[-3, 5], [4, 14], [2, 3]])
        assert graph_ops.union_box(box, other).numpy().tolist() == np_boxes.union_box(expected, other).tolist()
        clipped = graph_ops.clip_box(other, mask.shape).numpy()
        assert clipped.tolist() == np_boxes.clip_box(other, mask.shape).tolist()
        np.testing.assert_array_equal(graph_ops.crop_box(mask, box).numpy(), np_boxes.crop(mask, expected))
        part = np_boxes.crop(mask, expected)
        np.testing.assert_array_equal(graph_ops.paste_box(part, box, mask.shape, -1.0).numpy(),
                                      np_boxes.paste(part, expected, mask.shape, background=-1.0))
    box, found = f(np.zeros((3, 4, 5), np.float32))
    assert not bool(found) and np_boxes.box_from_mask(np.zeros((3, 4, 5))) is None


def test_grid_starts_are_numpy_grid_starts():
    for n, p, s in [(10, 4, 3), (3, 4, 2), (4, 4, 2), (37, 16, 8), (17, 16, 8), (9, 2, 5)]:
        f = _traced(lambda m: graph_ops.grid_starts(m, p, s), tf.TensorSpec([], tf.int32))
        assert f(np.int32(n)).numpy().tolist() == grid_starts(n, p, s), (n, p, s)


def _net(batch):
    """A stand-in network whose output depends on the whole window (as a real one's does), not only
    on the voxel: a wrong window position or weight shows."""
    batch = np.asarray(batch)
    mean = batch.mean(axis=(1, 2, 3, 4), keepdims=True)
    return (np.tanh(batch - mean) * 0.5 + 0.5).astype(np.float32)


def _tf_net(batch):
    mean = tf.reduce_mean(batch, axis=[1, 2, 3, 4], keepdims=True)
    return tf.tanh(batch - mean) * 0.5 + 0.5


@pytest.mark.parametrize("shape,patch,kw", [
    ((21, 18, 11), (8, 8, 4), dict(weighting="gaussian", batch_size=3)),
    ((21, 18, 11), (8, 8, 4), dict(weighting="constant", batch_size=1, stride=(3, 5, 2))),
    ((5, 18, 3), (8, 8, 4), dict(weighting="gaussian", batch_size=2, fill=-0.5)),  # smaller than a window
    ((8, 8, 4), (8, 8, 4), dict(weighting="gaussian", batch_size=4)),
])
def test_sliding_window_is_numpy_sliding_window(shape, patch, kw):
    volume = np.random.default_rng(4).normal(0, 1, shape).astype(np.float32)
    fill = kw.get("fill", 0.0)
    f = _traced(lambda v: graph_ops.sliding_window(_tf_net, v, patch, **kw), ANY3)
    out = f(volume).numpy()
    expected = sliding_window_inference(_net, volume, patch, **kw)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    if fill:
        return

    def two(batch):  # several output channels, each averaged on its own
        p = _tf_net(batch)
        return tf.concat([p, 1 - p], -1)

    out2 = _traced(lambda v: graph_ops.sliding_window(two, v, patch, channels=2, **kw), ANY3)(volume).numpy()
    expected2 = sliding_window_inference(lambda b: np.concatenate([_net(b), 1 - _net(b)], -1), volume, patch, **kw)
    assert out2.shape == shape + (2,)
    np.testing.assert_allclose(out2, expected2, rtol=0, atol=1e-5)
