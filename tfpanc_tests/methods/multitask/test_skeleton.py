"""The skeleton regression target on shapes whose skeleton is known."""

import numpy as np
import pytest

from tfpanc.methods.multitask.skeleton import _smoothed_skeleton, skeleton_target


def _cylinder(shape=(48, 25, 25), radius=6.0, x_range=(6, 42), centre=(12, 12)):
    """A solid cylinder with its axis along x through (y, z) = centre."""
    _, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    mask = (y - centre[0]) ** 2 + (z - centre[1]) ** 2 <= radius ** 2
    mask[: x_range[0]] = False
    mask[x_range[1]:] = False
    return mask


def _width(profile):
    """Second-moment width (voxels) of a 1D profile around its peak."""
    profile = np.asarray(profile, np.float64)
    offsets = np.arange(profile.size) - np.argmax(profile)
    return np.sqrt((profile * offsets ** 2).sum() / profile.sum())


def test_cylinder_peaks_on_its_axis_and_decays_away():
    mask = _cylinder()
    target = skeleton_target(mask, spacing=(1.0, 1.0, 1.0), sigma_mm=2.0)
    assert target.shape == mask.shape and target.dtype == np.float32
    x, y, z = np.unravel_index(np.argmax(target), target.shape)
    assert (abs(y - 12), abs(z - 12)) <= (1, 1) and 10 <= x <= 38
    middle = target[24]
    assert middle[12, 12] > 0.5
    for radial in (middle[12, 12:], middle[12, 12::-1], middle[12:, 12], middle[12::-1, 12]):
        assert np.all(np.diff(radial[:8]) < 0)  # strictly falls off the axis
    assert middle[12, 12 + 6] < 0.2 * middle[12, 12]


def test_range_is_zero_to_one_with_peak_exactly_one():
    target = skeleton_target(_cylinder(), spacing=(0.8, 0.8, 2.5), sigma_mm=3.0)
    assert target.min() >= 0.0
    assert target.max() == 1.0


def test_empty_mask_gives_zeros():
    target = skeleton_target(np.zeros((10, 12, 5), np.uint8), spacing=(1.0, 1.0, 1.0))
    assert target.shape == (10, 12, 5) and target.dtype == np.float32
    assert not target.any()


def test_larger_spacing_gives_a_narrower_profile_in_voxels():
    # The same voxel mask; 2 mm in z makes the 2 mm Gaussian 1 voxel in z
    # against 2 voxels in y, so the cross-section is narrower along z.
    mask = _cylinder()
    target = skeleton_target(mask, spacing=(1.0, 1.0, 2.0), sigma_mm=2.0)
    width_y = _width(target[24, :, 12])
    width_z = _width(target[24, 12, :])
    assert width_z < 0.75 * width_y
    iso = skeleton_target(mask, spacing=(1.0, 1.0, 1.0), sigma_mm=2.0)
    assert _width(iso[24, 12, :]) == pytest.approx(_width(iso[24, :, 12]), rel=0.05)


@pytest.mark.parametrize("spacing, sigma_mm", [((1.0, 1.0, 1.0), 2.0), ((0.7, 0.7, 2.5), 3.0)])
def test_box_crop_matches_the_full_volume(spacing, sigma_mm):
    # Two components, one touching the volume's edge, in a volume much
    # larger than their box.
    shape = (80, 70, 40)
    mask = np.zeros(shape, bool)
    mask[30:45] = _cylinder(shape=(15, 70, 40), radius=5.0, x_range=(0, 15), centre=(30, 20))
    mask[0:10, 50:58, 30:40] = True
    full = _smoothed_skeleton(mask, tuple(sigma_mm / s for s in spacing))
    full = (full / full.max()).astype(np.float32)
    cropped = skeleton_target(mask, spacing, sigma_mm)
    np.testing.assert_allclose(cropped, full, atol=1e-5, rtol=0)


def test_bad_arguments_are_refused():
    mask = np.ones((4, 4, 4), bool)
    with pytest.raises(ValueError, match="sigma_mm"):
        skeleton_target(mask, (1.0, 1.0, 1.0), sigma_mm=0.0)
    with pytest.raises(ValueError, match="sigma_mm"):
        skeleton_target(mask, (1.0, 1.0, 1.0), sigma_mm=-1.0)
    with pytest.raises(ValueError, match="spacing"):
        skeleton_target(mask, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="3D"):
        skeleton_target(np.ones((4, 4), bool), (1.0, 1.0))
