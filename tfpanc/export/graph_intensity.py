"""The MRI normalisation of :mod:`tfpanc.data.intensity`, in TensorFlow ops for serving graphs.

An MR image has no absolute scale: predict normalises each volume with its
own statistics (:func:`tfpanc.data.intensity.mri_stats`): a strided
subsample of at most 4M voxels, Otsu's threshold to split the body from
the background (scikit-image's ``threshold_otsu``: a 256-bin histogram over
the sample's range, the bin centre that maximises the between-class
variance), the body's 0.5 and 99.5 percentiles (numpy's linear
interpolation) as the clip range, then ``[0, 1]``. A served MRI model does
the same inside its graph, per volume of the request, so a client sends raw
MR intensities as it sends raw HU. Written by hand in TensorFlow because
the graph cannot call scikit-image or numpy; tested against both.

Example:
>>> import numpy as np
>>> v = np.random.default_rng(0).normal(100, 10, (20, 20, 10)).astype("float32"); v[:5] = 0
>>> low, high = mri_clip_range(tf.constant(v))
>>> from tfpanc.data.intensity import mri_stats
>>> s = mri_stats(v)
>>> bool(abs(float(low) - s["low"]) < 1e-3 and abs(float(high) - s["high"]) < 1e-3)
True
"""

from __future__ import annotations

import tensorflow as tf

from tfpanc.data.intensity import _STATS_VOXELS, MRI_PERCENTILES

OTSU_BINS = 256


def _subsample(volume, max_voxels):
    # As intensity._subsample: the same step on every axis, ceil((size / max) ** (1 / 3)).
    size = tf.cast(tf.size(volume), tf.float64)
    step = tf.maximum(1, tf.cast(tf.math.ceil(tf.pow(size / max_voxels, 1.0 / 3.0)), tf.int32))
    return tf.reshape(volume[::step, ::step, ::step], [-1])


def otsu_threshold(values):
    """scikit-image's ``threshold_otsu(values, nbins=256)`` of a 1-D float tensor (not constant)."""
    lo, hi = tf.reduce_min(values), tf.reduce_max(values)
    counts = tf.cast(tf.histogram_fixed_width(values, tf.stack([lo, hi]), nbins=OTSU_BINS), tf.float64)
    edges = tf.linspace(tf.cast(lo, tf.float64), tf.cast(hi, tf.float64), OTSU_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    weight1 = tf.cumsum(counts)
    weight2 = tf.cumsum(counts, reverse=True)
    mean1 = tf.cumsum(counts * centres) / tf.maximum(weight1, 1e-300)
    mean2 = tf.cumsum(counts * centres, reverse=True) / tf.maximum(weight2, 1e-300)
    between = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return tf.cast(centres[tf.argmax(between)], values.dtype)


def _percentile(sorted_values, q):
    # numpy's default (linear) interpolation between the two nearest ranks.
    n = tf.shape(sorted_values)[0]
    pos = tf.cast(q / 100.0, tf.float64) * tf.cast(n - 1, tf.float64)
    below = tf.cast(tf.floor(pos), tf.int32)
    above = tf.minimum(below + 1, n - 1)
    frac = tf.cast(pos - tf.floor(pos), sorted_values.dtype)
    return sorted_values[below] + (sorted_values[above] - sorted_values[below]) * frac


def mri_clip_range(volume, percentiles=MRI_PERCENTILES, max_voxels=_STATS_VOXELS):
    """``(low, high)`` of :func:`tfpanc.data.intensity.mri_stats` for one ``[x, y, z]`` volume."""
    sample = _subsample(tf.cast(volume, tf.float32), max_voxels)
    sample = tf.boolean_mask(sample, tf.math.is_finite(sample))
    flat = tf.reduce_min(sample) == tf.reduce_max(sample)
    body = tf.cond(flat, lambda: sample, lambda: tf.boolean_mask(sample, sample > otsu_threshold(sample)))
    ordered = tf.sort(body)
    low, high = _percentile(ordered, percentiles[0]), _percentile(ordered, percentiles[1])
    high = tf.where(high > low, high, low + 1.0)  # a flat image keeps a finite scale
    return low, high


def normalize_mri_unit(volumes):
    """``[n, x, y, z]`` raw MR volumes, each clipped to its own range and mapped to ``[0, 1]``."""

    def one(volume):
        low, high = mri_clip_range(volume)
        return (tf.clip_by_value(volume, low, high) - low) / (high - low)

    return tf.map_fn(one, tf.cast(volumes, tf.float32), fn_output_signature=tf.float32)
