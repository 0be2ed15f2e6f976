"""3D samplers: sliding-window-sized patches and pancreas box crops.

Same core and guarantees as the 2D samplers (:mod:`tfpanc.data.sampler_base`:
seeded per ``(seed, epoch, index)``, reads only the patch/box, normalises
only it).

* :class:`PatchSampler`: fixed-size patches, a ``positive_fraction`` of them
  pancreas-centred (a pancreas voxel drawn uniformly, placed at a uniformly
  drawn position inside the patch, as nnU-Net does), the rest uniform over
  the volume, over the pancreas box plus ``roi_margin`` (the two-stage
  paper's fine stage) or over a region of ``roi_size`` centred on the
  pancreas box (the multitask paper's C2 stage, which sees at test time the
  region centred on C1's box). A volume smaller than the patch is centred and padded,
  so ``patch_size`` >= the volume gives whole (e.g. 1/4-resolution) volumes.
* :class:`BoxCropSampler3D`: the 3D pancreas box plus margins (random per
  side or fixed; the two-stage paper's fine stage uses 10 voxels), zoomed or
  padded to a fixed size.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.boxes import as_box, box_center, centered_box, expand_box
from tfpanc.data.preprocess import resize, resize_label
from tfpanc.data.sampler_base import FLOAT, Sampler, crop_transform, draw_margins, fit_to_size


def _labelled_with_pancreas(metas):
    return [c for c, m in enumerate(metas) if m.get("pancreas_box") is not None]


class PatchSampler(Sampler):
    """Fixed-size 3D patches, uniform or pancreas-centred.

    Args:
        cache, case_ids, seed, normalizer: see :class:`tfpanc.data.sampler_base.Sampler`.
        patch_size: ``(px, py, pz)``.
        positive_fraction: probability that a patch is centred on a pancreas
            voxel (cases without pancreas are skipped for those).
        roi_margin: None (uniform patches anywhere in the volume) or voxels
            around the pancreas box that uniform patches are drawn within.
        roi_size: or ``(rx, ry, rz)``: uniform patches are drawn within the
            region of this size centred on the pancreas box (clipped to the
            volume).
        scale: 0 (none) or ``s > 0``: each axis of a patch is zoomed by its
            own factor drawn log-uniformly in ``[1/(1+s), 1+s]`` (> 1 zooms
            in): the patch is read from a box of ``patch / factor`` voxels
            around the same centre and resized to ``patch`` (image linear,
            mask linear then >= 0.5), nnU-Net's scale augmentation per axis.
            The factors are drawn only when ``s > 0``, so samplers without it
            keep their sample streams.

    Outputs ``image (px, py, pz, 1)``, ``mask (px, py, pz, 1)``.

    Example:
    >>> sampler = PatchSampler(cache, train_ids, (64, 64, 16),
    ...                        positive_fraction=0.5)      # doctest: +SKIP
    >>> image, mask = sampler.sample(0, epoch=3)           # doctest: +SKIP
    """

    def __init__(self, cache, case_ids, patch_size, positive_fraction=0.5, roi_margin=None, seed=0,
                 normalizer=None, roi_size=None, scale=0.0):
        super().__init__(cache, case_ids, seed, normalizer)
        self.scale = float(scale)
        if self.scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive ints, got {patch_size}")
        self.positive_fraction = float(positive_fraction)
        if roi_margin is not None and roi_size is not None:
            raise ValueError("give roi_margin or roi_size, not both")
        self.roi_margin = roi_margin
        self.roi_size = None if roi_size is None else tuple(int(r) for r in roi_size)
        self.with_pancreas = _labelled_with_pancreas(self.metas)
        if (self.positive_fraction > 0 or self._in_roi) and not self.with_pancreas:
            raise ValueError("none of these cases holds pancreas; use positive_fraction=0")

    @property
    def _in_roi(self):
        return self.roi_margin is not None or self.roi_size is not None

    def _roi(self, c, shape):
        box = as_box(self.metas[c]["pancreas_box"])
        if self.roi_size is not None:
            return centered_box(box_center(box), self.roi_size, shape=shape)
        return expand_box(box, self.roi_margin, shape=shape)

    def _pancreas_voxel(self, c, case, rng):
        # An axial slice drawn with probability proportional to its pancreas
        # pixel count, then a pixel of it: a pancreas voxel drawn uniformly,
        # reading one slice of the box region only.
        meta = self.metas[c]
        slices = np.asarray(meta["pancreas_slices"]["axial"], np.int64)
        pixels = np.asarray(meta["pancreas_pixels"]["axial"], float)
        z = int(slices[rng.choice(len(slices), p=pixels / pixels.sum())])
        box = as_box(meta["pancreas_box"])
        plane = np.asarray(case.label[box[0, 0]:box[0, 1], box[1, 0]:box[1, 1], z])
        xy = np.argwhere(plane)
        x, y = xy[int(rng.integers(len(xy)))] + box[:2, 0]
        return np.array([x, y, z], np.int64)

    def _start(self, lo, hi, shape, rng):
        # Uniform start in [lo, hi] per axis (the middle when hi < lo: a
        # region smaller than the patch is centred), then kept inside the
        # volume, or centred on it when the volume is smaller than the patch.
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        p, n = np.asarray(self.patch_size), np.asarray(shape)
        start = np.where(hi >= lo, rng.integers(lo, np.maximum(lo, hi) + 1), (lo + hi) // 2)
        return np.where(n >= p, np.clip(start, 0, np.maximum(n - p, 0)), (n - p) // 2)

    def _make(self, rng):
        positive = bool(self.with_pancreas) and rng.random() < self.positive_fraction
        pool = self.with_pancreas if (positive or self._in_roi) else range(len(self.case_ids))
        c = int(pool[int(rng.integers(len(pool)))])
        shape = self._shape(c)
        p = np.asarray(self.patch_size)
        case = self._open(c)
        voxel = None
        if positive:
            voxel = self._pancreas_voxel(c, case, rng)
            start = self._start(voxel - p + 1, voxel, shape, rng)
        elif self._in_roi:
            roi = self._roi(c, shape)
            start = self._start(roi[:, 0], roi[:, 1] - p, shape, rng)
        else:
            start = self._start(np.zeros(3, np.int64), np.asarray(shape) - p, shape, rng)
        box = np.stack([start, start + p], axis=1)
        factors = None
        if self.scale > 0:
            limit = np.log1p(self.scale)
            factors = np.exp(rng.uniform(-limit, limit, size=3))
            read = np.maximum(np.rint(p / factors).astype(np.int64), 1)
            box = centered_box(start + (p - 1) / 2.0, read)
        transform, fill = self._transform(c, case)
        image = crop_transform(case.image, box, fill, transform)
        mask = crop_transform(case.label, box, 0, None).astype(FLOAT)
        if factors is not None:
            image = resize(image, self.patch_size)[0]
            mask = resize_label(mask, self.patch_size).astype(FLOAT)
        info = {"case_id": self.case_ids[c], "box": box, "positive": positive, "voxel": voxel,
                "scale": factors}
        return (image[..., None], mask[..., None]), info

    def output_signature(self):
        return ((self.patch_size + (1,), FLOAT), (self.patch_size + (1,), FLOAT))


class BoxCropSampler3D(Sampler):
    """The 3D pancreas box plus margins, at a fixed output size.

    Args:
        cache, case_ids, seed, normalizer: see :class:`tfpanc.data.sampler_base.Sampler`.
        margin: :class:`tfpanc.data.sampler_base.MarginRange` (each of the six
            sides drawn from {lo..hi} voxels) or fixed voxels (int, per axis
            or ``(3, 2)``). The crop is clipped to the volume.
        size: ``(sx, sy, sz)`` output, or None (native, variable: batch 1).
        resize: zoom the crop to ``size`` (True; factors in info) or
            centre-crop/pad it at native resolution (False).
        jitter: voxels; when > 0 the box is also shifted by an integer drawn
            from {-jitter..jitter} per axis (the crop stays a box around the
            pancreas, seen slightly off-centre).

    Outputs ``image (*size, 1)``, ``mask (*size, 1)``.
    """

    def __init__(self, cache, case_ids, margin=10, size=None, resize=True, jitter=0, seed=0, normalizer=None):
        super().__init__(cache, case_ids, seed, normalizer)
        self.margin = margin
        self.size = None if size is None else tuple(int(s) for s in size)
        self.resize = bool(resize)
        self.jitter = int(jitter)
        self.with_pancreas = _labelled_with_pancreas(self.metas)
        if not self.with_pancreas:
            raise ValueError("none of these cases holds pancreas")

    @property
    def epoch_size(self):
        return len(self.with_pancreas)

    def _make(self, rng):
        c = self.with_pancreas[int(rng.integers(len(self.with_pancreas)))]
        shape = self._shape(c)
        box = as_box(self.metas[c]["pancreas_box"])
        if self.jitter:
            box = box + rng.integers(-self.jitter, self.jitter + 1, size=(3, 1))
        box = expand_box(box, draw_margins(self.margin, rng, 3), shape=shape)
        case = self._open(c)
        transform, fill = self._transform(c, case)
        image = crop_transform(case.image, box, fill, transform)
        mask = crop_transform(case.label, box, 0, None)
        factors = (1.0, 1.0, 1.0)
        if self.size is not None and self.resize:
            image, factors = resize(image, self.size, order=1)
            mask = resize_label(mask, self.size)
        elif self.size is not None:
            image, mask = fit_to_size(image, self.size, fill), fit_to_size(mask, self.size, 0)
        info = {"case_id": self.case_ids[c], "crop_box": box, "zoom": factors}
        return (image[..., None], mask.astype(FLOAT)[..., None]), info

    def output_signature(self):
        shape = self.size or (None, None, None)
        return ((shape + (1,), FLOAT), (shape + (1,), FLOAT))
