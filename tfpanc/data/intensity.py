"""Intensity normalisation: the CT HU window and per-volume MRI scaling.

CT uses a fixed window, so a sample can be normalised on its own. MRI has no
absolute scale; its normalisation needs statistics of the whole volume
(percentiles of the body), computed once per volume by
:meth:`IntensityNormalizer.stats` and then applied to any sub-array, so that
normalising a crop gives exactly the crop of the normalised volume.

MRI recipe (documented choice): the body is the voxels above Otsu's threshold
(MRI background is low-signal noise, so Otsu splits air from tissue); values
are clipped to the 0.5-99.5 percentiles of the body, then mapped to [0, 1]
(``mode="unit"``, the same range as windowed CT) or z-scored with the body's
mean and standard deviation after clipping (``mode="zscore"``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from skimage.filters import threshold_otsu

CT_WINDOW = (-100.0, 240.0)
MRI_PERCENTILES = (0.5, 99.5)
# Statistics are estimated on a strided subsample of at most this many
# voxels: percentiles of ~4M voxels are stable to well below 1% of the range.
_STATS_VOXELS = 1 << 22


def window_ct(image, window=CT_WINDOW):
    """Clips CT to a HU window and maps it linearly to [0, 1].

    Args:
        image: array in HU (any dtype).
        window: ``(low, high)`` HU; the pancreas papers use [-100, 240].

    Returns:
        float32 array of the same shape.

    Example:
    >>> window_ct(np.array([-1000, -100, 70, 240, 3000])).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise ValueError(f"window {window} must have low < high")
    out = np.asarray(image, dtype=np.float32)
    out = np.clip(out, low, high)  # a new array: memmaps are never written
    out -= np.float32(low)
    out /= np.float32(high - low)  # division: the top maps to exactly 1
    return out


def _subsample(volume, max_voxels):
    ndim = max(volume.ndim, 1)
    step = max(1, math.ceil((volume.size / max_voxels) ** (1.0 / ndim)))
    return np.asarray(volume[(slice(None, None, step),) * volume.ndim], dtype=np.float32).ravel()


def mri_stats(volume, percentiles=MRI_PERCENTILES, max_voxels=_STATS_VOXELS):
    """Body percentiles, mean and std of an MRI volume, for :func:`normalize_mri`.

    Args:
        volume: 3D MRI array (a memmap is fine: only a strided subsample is read
            into memory).
        percentiles: clipping percentiles of the body intensities.
        max_voxels: size of the subsample the statistics are estimated on.

    Returns:
        dict with float ``low``, ``high`` (the clip values), ``mean``, ``std``
        (of the clipped body).

    Example:
    >>> v = np.random.default_rng(0).normal(100, 10, (20, 20, 10)); v[:5] = 0
    >>> s = mri_stats(v); bool(60 < s["low"] < s["high"] < 140)
    True
    """
    volume = volume if hasattr(volume, "shape") else np.asarray(volume)
    sample = _subsample(volume, max_voxels)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ValueError("volume holds no finite values")
    if sample.min() == sample.max():
        body = sample
    else:
        body = sample[sample > threshold_otsu(sample)]
    low, high = np.percentile(body, percentiles)
    if not high > low:  # flat image: keep the scale finite
        high = low + 1.0
    clipped = np.clip(body, low, high)
    std = float(clipped.std())
    return {"low": float(low), "high": float(high), "mean": float(clipped.mean()),
            "std": std if std > 0 else 1.0}


def normalize_mri(array, stats, mode="unit"):
    """Applies per-volume MRI statistics to a volume or any part of it.

    Args:
        array: the volume or a crop/slice of it.
        stats: :func:`mri_stats` of the whole volume.
        mode: ``"unit"`` (clip, then [0, 1]) or ``"zscore"``.

    Returns:
        float32 array of the same shape.
    """
    out = np.clip(np.asarray(array, dtype=np.float32), stats["low"], stats["high"])
    if mode == "unit":
        out -= np.float32(stats["low"])
        out /= np.float32(stats["high"]) - np.float32(stats["low"])
    elif mode == "zscore":
        out -= np.float32(stats["mean"])
        out /= np.float32(stats["std"])
    else:
        raise ValueError(f"unknown MRI normalisation mode {mode!r} (use 'unit' or 'zscore')")
    return out


@dataclasses.dataclass(frozen=True)
class IntensityNormalizer:
    """The intensity transform of one modality, applied sample by sample.

    Args:
        modality: ``"ct"`` (fixed HU window) or ``"mri"`` (per-volume stats).
        window: CT window in HU.
        percentiles: MRI clipping percentiles of the body.
        mode: MRI output, ``"unit"`` or ``"zscore"``.

    Example:
    >>> norm = IntensityNormalizer("ct")
    >>> vol = np.full((4, 4, 4), 70, np.int16)
    >>> stats = norm.stats(vol)               # {} for CT: nothing to fit
    >>> float(norm(vol[:, :, 1], stats)[0, 0]), norm.background(stats)
    (0.5, 0.0)
    """

    modality: str = "ct"
    window: tuple = CT_WINDOW
    percentiles: tuple = MRI_PERCENTILES
    mode: str = "unit"

    def __post_init__(self):
        if self.modality not in ("ct", "mri"):
            raise ValueError(f"unknown modality {self.modality!r} (use 'ct' or 'mri')")
        if self.mode not in ("unit", "zscore"):
            raise ValueError(f"unknown MRI normalisation mode {self.mode!r}")

    def stats(self, volume):
        """Per-volume statistics (empty for CT); small, cache them per case."""
        if self.modality == "ct":
            return {}
        return mri_stats(volume, self.percentiles)

    def __call__(self, array, stats=None):
        """Normalises ``array`` (a whole volume or a part) to float32."""
        if self.modality == "ct":
            return window_ct(array, self.window)
        if not stats:
            raise ValueError("MRI normalisation needs the volume's stats (IntensityNormalizer.stats)")
        return normalize_mri(array, stats, self.mode)

    def background(self, stats=None):
        """The normalised value of air, used to pad samples beyond the volume."""
        if self.modality == "ct":
            return 0.0
        return float(normalize_mri(np.float32(stats["low"]), stats, self.mode))
