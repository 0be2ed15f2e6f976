"""The multitask paper's preprocessing (Sec. III-C) and its exact inverse.

Forward, one volume (training cases once into the derived cache, a test
volume in the predictor):

1. resample to ``--spacing`` (paper 1x1x1 mm), linear, edge-aligned
   (:func:`tfpanc.data.preprocess.resample_image`; labels by linear
   interpolation of the mask, >= 0.5);
2. crop to the abdomen: the box of the largest connected component of
   ``HU > --body_threshold`` (:func:`tfpanc.data.preprocess.body_box`; the
   paper's "maximum connected area");
3. intensities: minus the mean of the (cropped) volume, divided by the
   largest absolute value, into [-1, 1] (:class:`MeanMaxNormalizer`). The
   paper says "the maximum intensity value"; we read it as the maximum
   absolute deviation, the only divisor that gives its (-1, 1).

Back (:meth:`GridMap.to_original`): a result on the crop is pasted into the
resampled grid and interpolated linearly onto the input's own grid with the
same edge alignment, then thresholded by the caller, so that a mask written
for the input overlays it voxel for voxel. Only the part of the input grid
the crop can reach is computed (the rest is exactly 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfpanc.data.boxes import as_box, box_slices
from tfpanc.data.preprocess import _linear_weights, body_box, resample_image, resampled_shape, resize_label

DERIVED_NAME = "multitask"


@dataclasses.dataclass(frozen=True)
class MeanMaxNormalizer:
    """``(x - mean) / max |x - mean|`` over a whole volume: the paper's (-1, 1) intensities.

    Same interface as :class:`tfpanc.data.intensity.IntensityNormalizer`
    (``stats``, ``__call__``, ``background``), so the samplers take it.

    Example:
    >>> norm = MeanMaxNormalizer()
    >>> vol = np.array([-1000, 0, 0, 1000], np.int16).reshape(4, 1, 1)
    >>> stats = norm.stats(vol); norm(vol, stats).ravel().tolist(), norm.background(stats)
    ([-1.0, 0.0, 0.0, 1.0], -1.0)
    """

    def stats(self, volume):
        """Mean, scale and minimum of the whole volume (cached per case by the samplers)."""
        v = np.asarray(volume, np.float32)
        mean = float(v.mean(dtype=np.float64))
        low, high = float(v.min()), float(v.max())
        return {"mean": mean, "scale": max(high - mean, mean - low, 1e-6), "low": low}

    def __call__(self, array, stats=None):
        if not stats:
            raise ValueError("the mean/max normalisation needs the volume's stats (MeanMaxNormalizer.stats)")
        out = np.asarray(array, np.float32) - np.float32(stats["mean"])
        out /= np.float32(stats["scale"])
        return out

    def background(self, stats=None):
        """The normalised minimum (air) that pads windows reaching past the volume."""
        return float((stats["low"] - stats["mean"]) / stats["scale"])


@dataclasses.dataclass(frozen=True)
class GridMap:
    """How a crop of the resampled volume sits on the input grid.

    Args:
        source_shape: the input's shape.
        resampled_shape: its shape at the target spacing.
        crop: ``(3, 2)`` body box on the resampled grid.
    """

    source_shape: tuple
    resampled_shape: tuple
    crop: np.ndarray

    def to_json(self):
        return {"source_shape": list(self.source_shape), "resampled_shape": list(self.resampled_shape),
                "crop_box": as_box(self.crop).tolist()}

    @classmethod
    def from_json(cls, d):
        return cls(tuple(d["source_shape"]), tuple(d["resampled_shape"]), as_box(d["crop_box"]))

    def to_original(self, values, box=None):
        """``values`` (float, on the crop, or on ``box`` of the crop) on the input grid.

        Linear interpolation with the edge alignment of the forward
        resampling; 0 wherever no voxel of ``values`` reaches.

        Example:
        >>> gm = GridMap((10, 10, 4), (5, 5, 8), np.array([[1, 4], [0, 5], [0, 8]]))
        >>> out = gm.to_original(np.ones((3, 5, 8), np.float32))
        >>> out.shape, float(out[5, 5, 2]), float(out[0, 5, 2])
        ((10, 10, 4), 1.0, 0.0)
        """
        crop = as_box(self.crop)
        box = crop if box is None else as_box(box) + crop[:, :1]
        out = np.asarray(values, np.float32)
        target = []
        for axis in range(3):
            n_in, n_out = int(self.resampled_shape[axis]), int(self.source_shape[axis])
            lo, hi = int(box[axis, 0]), int(box[axis, 1])
            if n_in == n_out:
                target.append((lo, hi))
                continue
            weights = _linear_weights(n_in, n_out).tocsc()[:, lo:hi].tocsr()
            rows = np.flatnonzero(np.diff(weights.indptr))  # input-grid voxels the part reaches
            first, last = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
            moved = np.moveaxis(out, axis, 0)
            flat = weights[first:last] @ moved.reshape(moved.shape[0], -1)
            out = np.moveaxis(np.asarray(flat, np.float32).reshape((last - first,) + moved.shape[1:]), 0, axis)
            target.append((first, last))
        full = np.zeros(tuple(int(n) for n in self.source_shape), np.float32)
        full[box_slices(np.array(target))] = out
        return full


def to_model_grid(image, spacing, target_spacing, body_threshold):
    """Resample and body-crop ``image``; returns ``(cropped float32 image, GridMap)``."""
    image = np.asarray(image)
    shape = resampled_shape(image.shape, spacing, target_spacing)
    resampled = image if shape == image.shape else resample_image(image, spacing, target_spacing)
    crop = body_box(resampled, threshold=body_threshold)
    grid = GridMap(tuple(image.shape), tuple(shape), crop)
    return np.asarray(resampled[box_slices(crop)], np.float32), grid


def label_to_model_grid(label, grid):
    """A mask onto the grid of :func:`to_model_grid` (linear interpolation, >= 0.5)."""
    label = (np.asarray(label) > 0).astype(np.uint8)
    if tuple(label.shape) != tuple(grid.resampled_shape):
        label = resize_label(label, grid.resampled_shape)
    return label[box_slices(grid.crop)]


def derived_folder(cfg):
    """The derived cache of these preprocessing settings, inside the data cache."""
    from pathlib import Path

    from tfpanc.data.cache import DERIVED_DIR

    spacing = "x".join(f"{s:g}" for s in cfg.spacing)
    return (Path(cfg.data_dir) / DERIVED_DIR /
            f"{DERIVED_NAME}_{spacing}mm_body{cfg.body_threshold:g}_skeleton{cfg.skeleton_sigma:g}mm")


def model_grid_cache(cfg, cache, case_ids, log=print):
    """The cases resampled, body-cropped, with their skeleton target (``skeleton.npy``), made once."""
    from tfpanc.data.derived_cache import derived_cache
    from tfpanc.data.io import Geometry
    from tfpanc.methods.multitask.skeleton import skeleton_target

    def make(case):
        image, grid = to_model_grid(case.image, case.spacing, cfg.spacing, cfg.body_threshold)
        label = label_to_model_grid(case.label, grid)
        skeleton = skeleton_target(label, cfg.spacing, cfg.skeleton_sigma).astype(np.float16)
        return {"image": np.round(image).astype(np.int16) if cache.modality == "ct" else image, "label": label,
                "geometry": Geometry.from_spacing(image.shape, cfg.spacing), "extra": {"grid": grid.to_json()},
                "arrays": {"skeleton": skeleton}}

    return derived_cache(cache, case_ids, derived_folder(cfg), make, "multitask preprocessing", log)
