"""The 3D dense CRF on analytic shapes whose right answer is known."""

import sys

import numpy as np
import pytest

from tfpanc.errors import InputError
from tfpanc.methods.multitask.crf import CRFSettings, dense_crf, sigmas_in_voxels

pytest.importorskip("pydensecrf.densecrf")


def _dsc(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _grid(shape):
    return np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")


def test_isolated_blob_removed_sphere_kept():
    # A non-cubic shape and an off-centre sphere: a wrong voxel order between
    # the unary and the lattice features would scramble the result.
    shape = (48, 40, 28)
    x, y, z = _grid(shape)
    sphere = (x - 18) ** 2 + (y - 20) ** 2 + (z - 14) ** 2 <= 8 ** 2
    image = np.where(sphere, 120.0, 0.0)
    probability = np.where(sphere, 0.8, 0.1)
    blob = np.zeros(shape, bool)
    blob[40:43, 4:7, 3:6] = True  # far from the sphere, background intensity
    probability[blob] = 0.6

    before = probability >= 0.5
    q = dense_crf(probability, image, spacing=(1.0, 1.0, 1.0))
    after = q >= 0.5

    assert q.shape == shape and q.dtype == np.float32
    assert not after[blob].any()
    assert _dsc(after, sphere) > _dsc(before, sphere)
    assert _dsc(after, sphere) > 0.97


def test_sigmas_in_voxels():
    assert sigmas_in_voxels((3.0, 3.0, 3.0), (1.0, 0.5, 3.0)) == (3.0, 6.0, 1.0)
    with pytest.raises(ValueError):
        sigmas_in_voxels((3.0, 3.0), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        sigmas_in_voxels((3.0, 3.0, 3.0), (1.0, 0.0, 1.0))


def test_larger_z_spacing_smooths_less_across_z():
    # A one-slice plate of weak foreground between background slices: with
    # 1 mm slices the 3 mm smoothness kernel reaches the slices around it
    # and wipes it out; with 10 mm slices it covers 0.3 voxels in z, the
    # plate's in-plane neighbours dominate and the plate stays.
    shape = (16, 16, 16)
    probability = np.full(shape, 0.3)
    probability[:, :, 8] = 0.7
    image = np.zeros(shape)
    settings = CRFSettings(w2=0.0)
    iso = dense_crf(probability, image, (1.0, 1.0, 1.0), settings)[:, :, 8]
    aniso = dense_crf(probability, image, (1.0, 1.0, 10.0), settings)[:, :, 8]
    assert (iso < 0.5).all()
    assert (aniso >= 0.5).all()


def test_no_pairwise_weights_gives_the_unary_argmax():
    rng = np.random.default_rng(3)
    shape = (9, 7, 5)
    probability = rng.uniform(0.0, 1.0, shape)
    probability[np.abs(probability - 0.5) < 1e-3] = 0.25  # no float ties
    probability[0, 0, 0], probability[1, 0, 0] = 0.0, 1.0  # clipped ends
    image = rng.normal(0.0, 50.0, shape)
    q = dense_crf(probability, image, (0.7, 0.7, 2.5), CRFSettings(w1=0.0, w2=0.0))
    np.testing.assert_array_equal(q >= 0.5, probability >= 0.5)
    np.testing.assert_allclose(q, np.clip(probability, 1e-6, 1 - 1e-6), atol=1e-5)


@pytest.mark.parametrize("field, value, flag", [
    ("iterations", 0, "--crf_iterations"),
    ("iterations", 2.5, "--crf_iterations"),
    ("w1", -1.0, "--crf_w1"),
    ("w2", -0.1, "--crf_w2"),
    ("w2", float("nan"), "--crf_w2"),
    ("sigma_alpha_mm", (3.0, 0.0, 3.0), "--crf_sigma_alpha"),
    ("sigma_alpha_mm", (3.0, 3.0), "--crf_sigma_alpha"),
    ("sigma_beta_mm", (20.0, 20.0, -1.0), "--crf_sigma_beta"),
    ("sigma_beta_mm", (20.0,) * 4, "--crf_sigma_beta"),
    ("sigma_gamma", 0.0, "--crf_sigma_gamma"),
])
def test_validation_names_the_flag(field, value, flag):
    settings = CRFSettings(**{field: value})
    with pytest.raises(InputError) as caught:
        settings.validate()
    assert caught.value.path == flag
    with pytest.raises(InputError):
        dense_crf(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), (1, 1, 1), settings)


def test_defaults_validate():
    assert CRFSettings().validate() == CRFSettings()


def test_missing_pydensecrf_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(InputError) as caught:
        dense_crf(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), (1, 1, 1))
    assert caught.value.path == "--crf"
    assert "pip install pydensecrf2" in caught.value.problem


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        dense_crf(np.zeros((4, 4, 4)), np.zeros((4, 4, 3)), (1, 1, 1))
