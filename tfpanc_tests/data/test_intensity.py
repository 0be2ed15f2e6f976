import numpy as np
import pytest

from tfpanc.data.intensity import IntensityNormalizer, mri_stats, normalize_mri, window_ct


def test_window_ct_maps_window_linearly_to_unit_range():
    hu = np.array([-2000, -100, -15, 70, 155, 240, 2000], np.int16)
    out = window_ct(hu)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0, 0, 0.25, 0.5, 0.75, 1, 1], atol=1e-6)


def test_window_ct_custom_window_and_no_write_to_input():
    hu = np.array([0.0, 50.0, 100.0], np.float32)
    out = window_ct(hu, (0, 100))
    np.testing.assert_allclose(out, [0, 0.5, 1])
    assert hu.tolist() == [0.0, 50.0, 100.0]
    with pytest.raises(ValueError):
        window_ct(hu, (10, 10))


def _mri_volume():
    rng = np.random.default_rng(1)
    vol = rng.normal(5.0, 1.0, (40, 40, 12)).astype(np.float32)  # background noise
    vol[8:32, 8:32, :] = rng.normal(300.0, 40.0, (24, 24, 12))   # body
    return vol


def test_mri_stats_use_body_percentiles():
    vol = _mri_volume()
    stats = mri_stats(vol)
    body = vol[8:32, 8:32, :]
    lo, hi = np.percentile(body, [0.5, 99.5])
    # Otsu separates the body, so the clip values are the body's percentiles.
    assert abs(stats["low"] - lo) < 5 and abs(stats["high"] - hi) < 5
    assert abs(stats["mean"] - 300) < 5 and abs(stats["std"] - 40) < 4


def test_normalize_mri_unit_and_zscore():
    vol = _mri_volume()
    stats = mri_stats(vol)
    unit = normalize_mri(vol, stats, "unit")
    assert unit.min() == 0.0 and unit.max() == 1.0
    z = normalize_mri(vol[8:32, 8:32, :], stats, "zscore")
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05
    with pytest.raises(ValueError):
        normalize_mri(vol, stats, "minmax")


def test_normalizer_on_a_crop_equals_crop_of_normalized_volume():
    vol = _mri_volume()
    norm = IntensityNormalizer("mri", mode="zscore")
    stats = norm.stats(vol)
    np.testing.assert_array_equal(norm(vol[3:20, 5:9, 2:4], stats), norm(vol, stats)[3:20, 5:9, 2:4])
    # Background is the normalised low clip value: the minimum of any output.
    assert norm.background(stats) == pytest.approx(float(norm(vol, stats).min()))


def test_normalizer_ct_needs_no_stats_and_checks_arguments():
    norm = IntensityNormalizer("ct")
    assert norm.stats(np.zeros((2, 2, 2))) == {}
    assert norm(np.array([240]))[0] == 1.0 and norm.background() == 0.0
    with pytest.raises(ValueError):
        IntensityNormalizer("pet")
    with pytest.raises(ValueError):
        IntensityNormalizer("mri")(np.zeros(3))
