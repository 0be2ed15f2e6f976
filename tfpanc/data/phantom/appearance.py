"""From a tissue map to an image: values, texture, slice profile, blur, noise.

CT: each tissue's HU (:mod:`~tfpanc.data.phantom.tissues`) plus the texture
layers, averaged over the sub-slices of a thick slice (the slice profile,
which is where through-plane partial volume comes from), then blurred by the
scanner's point-spread function (PSF, a Gaussian sized in mm). Quantum noise
is added *before* the PSF, so that it comes out correlated between
neighbouring voxels the way reconstruction-filtered CT noise is; its
amplitude is set from the discrete kernel so the final noise has the asked
standard deviation at any spacing. Uniform noise is used (cheaper than
normal by 5x); after the PSF sums many voxels it is close to Gaussian.

MRI: T1 values, the same slice profile and blur, a smooth multiplicative
coil bias field, then Rician noise (magnitude of complex Gaussian noise).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from tfpanc.data.phantom.fields import Grid, SplineField
from tfpanc.data.phantom.tissues import Tissue

PSF_SIGMA_MM = (0.45, 0.45)   # in-plane Gaussian sigma of the CT point-spread function
SLICE_SIGMA = 0.42            # through-plane sigma in slices (slice profile FWHM ~ 1 slice)


def psf_kernel(sigma):
    """1D PSF taps for ``sigma`` voxels: 3 taps below 0.7 voxel, else Gaussian."""
    if sigma < 1e-3:
        return np.array([1.0])
    if sigma <= 0.7:
        a = sigma ** 2 / 2  # [a, 1-2a, a] has variance 2a
        return np.array([a, 1 - 2 * a, a])
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def psf_sigmas(spacing):
    return (PSF_SIGMA_MM[0] / spacing[0], PSF_SIGMA_MM[1] / spacing[1], SLICE_SIGMA)


def _correlate_axis0(volume, taps, chunk=16):
    # scipy's correlate1d is ~4x slower along the outermost axis of a C-ordered
    # array than along the others; summing shifted slabs of rows is not.
    r = len(taps) // 2
    n = volume.shape[0]
    before = np.repeat(volume[:1], r, axis=0)  # original rows i0-r .. i0-1 (edge-clamped)
    for i0 in range(0, n, chunk):
        i1 = min(i0 + chunk, n)
        end = min(i1 + r, n)
        after = np.repeat(volume[n - 1:n], i1 + r - end, axis=0)
        src = np.concatenate([before, volume[i0:end], after], axis=0)
        out = taps[0] * src[:i1 - i0]
        for j in range(1, len(taps)):
            out += taps[j] * src[j:j + i1 - i0]
        before = src[i1 - i0:i1 - i0 + r].copy()
        volume[i0:i1] = out
    return volume


def blur(volume, sigmas):
    """Separable PSF blur in place (float32)."""
    for axis, sigma in enumerate(sigmas):
        k = psf_kernel(sigma).astype(np.float32)
        if len(k) == 1:
            continue
        if axis == 0:
            _correlate_axis0(volume, k)
        else:
            ndi.correlate1d(volume, k, axis=axis, output=volume, mode="nearest")
    return volume


def noise_gain(sigmas):
    """Std of PSF-filtered unit white noise: ``sqrt(prod_d sum(w_d**2))``."""
    return float(np.sqrt(np.prod([np.sum(psf_kernel(s) ** 2) for s in sigmas])))


def tissue_values(scene, lut, texture_scale):
    """Float32 image of ``lut[tissue] + scale[tissue] * texture`` on the scene grid.

    Args:
        scene: painted scene.
        lut: value per tissue id.
        texture_scale: scalar or per-tissue array converting texture units.
    """
    image = lut[scene.tissue]
    scale = np.broadcast_to(np.asarray(texture_scale, np.float32), lut.shape)
    for box, tissues, field in scene.textures:
        amp = np.zeros(256, np.float32)
        amp[list(tissues)] = scale[list(tissues)]
        # arithmetic with a per-tissue gain is faster than boolean gather/scatter
        image[box.slices] += field * amp[scene.tissue[box.slices]]
    return image


def slice_average(volume, k):
    """Mean over each run of ``k`` sub-slices (the slice sensitivity profile)."""
    if k == 1:
        return volume
    nx, ny, nz = volume.shape
    return volume.reshape(nx, ny, nz // k, k).mean(axis=3, dtype=np.float32)


def _add_uniform_noise(rng, image, std, chunk=32):
    # Chunked so the noise never needs a second full-size array.
    half = np.float32(std * np.sqrt(3.0))
    for i in range(0, image.shape[0], chunk):
        block = rng.random(image[i:i + chunk].shape, dtype=np.float32)
        block *= 2 * half
        block -= half
        image[i:i + chunk] += block


def render_ct(scene, lut, k, spacing, rng, noise_std, crop=None):
    """CT image (int16 HU) on the output grid.

    Args:
        scene: painted :class:`~tfpanc.data.phantom.scene.Scene` (z sub-sampled ``k`` times).
        lut: HU per tissue (float32).
        k: sub-slices per output slice.
        spacing: output voxel size (mm).
        rng: noise generator.
        noise_std: noise standard deviation in HU after the PSF.
        crop: in-plane ``(x slice, y slice)`` holding the body and table; noise
            and blur are applied there only (outside stays exactly -1000, like
            the area outside a scanner's reconstruction circle).
    """
    image = slice_average(tissue_values(scene, lut, 100.0), k)
    sigmas = psf_sigmas(spacing)
    region = image[crop[0], crop[1]] if crop is not None else image
    if region.size:
        region = np.ascontiguousarray(region)
        _add_uniform_noise(rng, region, noise_std / noise_gain(sigmas))
        blur(region, sigmas)
        if crop is not None:
            image[crop[0], crop[1]] = region
    np.rint(image, out=image)
    np.clip(image, -1024, 3071, out=image)
    return image.astype(np.int16)


def mri_texture_scale(lut_ct, lut_mri):
    """Per-tissue factor turning texture (units of 100 HU) into MRI units.

    Textures mostly mix a tissue with fat (clefts) or fat with soft tissue
    (stranding), so the CT->MRI slope is taken along that mix: for a tissue
    ``t``, ``(mri[fat] - mri[t]) / (ct[fat] - ct[t])`` per HU; for fat, the
    slope towards soft tissue.
    """
    fat, soft = Tissue.VISCERAL_FAT, Tissue.CHYME
    d_ct = lut_ct[fat] - lut_ct
    d_mri = lut_mri[fat] - lut_mri
    slope = np.where(np.abs(d_ct) > 20, d_mri / np.where(np.abs(d_ct) > 20, d_ct, 1), 0.0)
    fat_slope = (lut_mri[soft] - lut_mri[fat]) / (lut_ct[soft] - lut_ct[fat])
    for t in (Tissue.FAT, Tissue.VISCERAL_FAT, Tissue.FAT_PLANE):
        slope[t] = fat_slope
    return (100.0 * slope).astype(np.float32)


def render_mri(scene, lut, k, spacing, rng, noise_std, fov, lut_ct):
    """T1-weighted-like MRI (int16 arbitrary units) on the output grid."""
    scale = mri_texture_scale(lut_ct, lut)
    image = slice_average(tissue_values(scene, lut, scale), k)
    blur(image, (0.6 * 1.5 / spacing[0], 0.6 * 1.5 / spacing[1], 0.0))
    lo, hi = fov
    grid = Grid.covering(lo, hi, image.shape)
    bias = SplineField(rng, lo, hi, 120.0, 0.18).on(grid.full_box())
    image *= np.exp(bias)
    real = image + rng.standard_normal(image.shape, dtype=np.float32) * noise_std
    imag = rng.standard_normal(image.shape, dtype=np.float32) * noise_std
    out = np.sqrt(real * real + imag * imag)
    return np.clip(np.rint(out), 0, 32767).astype(np.int16)
