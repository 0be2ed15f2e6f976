"""The 3D sliding-window grid: window placement, extraction and weighted averaging."""

from pathlib import Path

import numpy as np
import pytest
from scipy.signal.windows import gaussian

from tfpanc.inference.sliding_window import PatchGrid, _gaussian_window, gaussian_importance, grid_starts

REPO = Path(__file__).resolve().parents[2]


def _vol(shape):
    return np.random.default_rng(0).random(shape).astype(np.float32)


def test_grid_starts_formula():
    assert grid_starts(10, 4, 3) == [0, 3, 6]
    assert grid_starts(10, 4, 2) == [0, 2, 4, 6]
    assert grid_starts(4, 4, 2) == [0]
    assert grid_starts(2, 4, 2) == [0]
    n, p, s = 240, 64, 32
    starts = grid_starts(n, p, s)
    assert starts[-1] == n - p and len(set(starts)) == len(starts)
    assert all(b - a <= s for a, b in zip(starts, starts[1:]))
    with pytest.raises(ValueError):
        grid_starts(10, 4, 0)


def test_patch_grid_extract_matches_boxes_and_covers():
    v = _vol((11, 9, 6))
    grid = PatchGrid(v.shape, (4, 5, 3), (3, 2, 3))
    patches = grid.extract(v)
    assert patches.shape == (len(grid), 4, 5, 3)
    assert len(grid) == len(grid.starts[0]) * len(grid.starts[1]) * len(grid.starts[2])
    for patch, box in zip(patches, grid.boxes):
        np.testing.assert_array_equal(patch, v[tuple(slice(a, b) for a, b in box)])
    covered = np.zeros(v.shape, bool)
    for box in grid.boxes:
        covered[tuple(slice(a, b) for a, b in box)] = True
    assert covered.all()
    np.testing.assert_array_equal(grid.extract(v, indices=slice(2, 5)), patches[2:5])


@pytest.mark.parametrize("weighting", ["constant", "gaussian"])
def test_accumulate_of_extracted_patches_is_identity(weighting):
    v = _vol((11, 9, 6))
    grid = PatchGrid(v.shape, (4, 5, 3), 2)
    np.testing.assert_allclose(grid.accumulate(grid.extract(v), weighting), v, rtol=1e-5)


def test_accumulate_averages_overlaps():
    grid = PatchGrid((6, 1, 1), (4, 1, 1), 2)  # windows [0, 4) and [2, 6)
    patches = np.stack([np.full((4, 1, 1), 1.0), np.full((4, 1, 1), 3.0)])
    assert grid.accumulate(patches).ravel().tolist() == [1, 1, 2, 2, 3, 3]


def test_small_volume_is_padded_and_channels_kept():
    v = np.random.default_rng(1).random((3, 8, 8, 2)).astype(np.float32)
    grid = PatchGrid(v.shape, (4, 4, 4), 4)
    patches = grid.extract(v, fill=-1)
    assert patches.shape == (4, 4, 4, 4, 2)
    assert np.all(patches[:, 3] == -1)
    np.testing.assert_allclose(grid.accumulate(patches, "gaussian"), v, rtol=1e-5)


def test_streaming_accumulator_equals_accumulate():
    v = _vol((10, 10, 10))
    grid = PatchGrid(v.shape, (6, 6, 6), 3)
    patches = grid.extract(v) * 2
    acc = grid.accumulator(weighting="gaussian")
    for first in range(0, len(grid), 5):
        acc.add(patches[first:first + 5], first)
    np.testing.assert_allclose(acc.result(), grid.accumulate(patches, "gaussian"), rtol=1e-6)


def test_gaussian_importance_peaks_in_the_centre():
    w = gaussian_importance((9, 9, 5))
    assert w.shape == (9, 9, 5) and w.max() == 1.0 and w[4, 4, 2] == 1.0
    assert w.min() > 0 and w[0, 0, 0] < 0.01


@pytest.mark.parametrize("n", [1, 2, 5, 64, 160])
def test_gaussian_window_equals_scipy(n):
    std = max(n * 0.125, 1e-3)
    np.testing.assert_array_equal(_gaussian_window(n, std), gaussian(n, std=std))


def test_import_needs_neither_keras_nor_scipy():
    import subprocess
    import sys

    code = ("import sys; import tfpanc.inference.sliding_window; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.mark.large
def test_full_size_volume_512x512x240_streamed_in_batches():
    import time

    prob = np.random.default_rng(0).random((512, 512, 240), dtype=np.float32)
    t = time.perf_counter()
    grid = PatchGrid(prob.shape, (160, 160, 64), (80, 80, 32))
    acc = grid.accumulator(weighting="gaussian")
    for first in range(0, len(grid), 16):
        acc.add(grid.extract(prob, slice(first, first + 16)), first)
    np.testing.assert_allclose(acc.result(), prob, atol=1e-5)
    assert time.perf_counter() - t < 300


def test_sliding_window_inference_batches_pads_and_averages():
    from tfpanc.inference.sliding_window import sliding_window_inference

    rng = np.random.default_rng(1)
    vol = rng.integers(-200, 300, (20, 9, 6)).astype(np.int16)
    seen = []

    def network(batch):
        seen.append(batch.shape)
        assert batch.dtype == np.float32
        return batch * 2.0

    out = sliding_window_inference(network, vol, (8, 12, 4), overlap=0.5, batch_size=3, fill=-7.0,
                                   transform=lambda b: b / 100.0)
    # Windows along x every 4 voxels (4 of them), one along y (padded 9 -> 12), z at 0 and 2.
    assert sum(s[0] for s in seen) == 4 * 1 * 2 and all(s[1:] == (8, 12, 4, 1) for s in seen)
    assert max(s[0] for s in seen) <= 3
    np.testing.assert_allclose(out, vol / 50.0, rtol=1e-5, atol=1e-5)  # the identity network, averaged

    def padding_seen(batch):
        assert (batch[:, :, 9:] == -7.0).all()  # past the volume's end: the fill, after the transform
        return np.zeros(batch.shape[:4], np.float32)

    sliding_window_inference(padding_seen, vol, (8, 12, 4), fill=-7.0, transform=lambda b: b / 100.0)
