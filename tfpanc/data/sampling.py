"""2D training samplers over the case cache: slices, slice runs, slice crops.

Seeding, memory use and normalisation are the shared core of
:mod:`tfpanc.data.sampler_base` (sample i of epoch e depends only on
``(seed, epoch, i)``; only the slices a sample needs are read).

Samplers:

* :class:`SliceSampler`: 3-slice stacks of any view; ``min_pixels`` keeps
  only slices with that much pancreas (Zhou's coarse models: 100);
  ``positive_fraction`` draws that share from pancreas slices and the rest
  from all slices (Cai's oversampling).
* :class:`SliceRunSampler`: T consecutive stacks and their T masks (Cai's
  BiRNN).
* :class:`SliceCropSampler`: the pancreas box of a slice plus a frame of
  random margins in {lo..hi} (Zhou's fine models: {0..60}) or fixed margins.
* 3D patches and box crops are in :mod:`tfpanc.data.sampling3d`
  (:class:`~tfpanc.data.sampling3d.PatchSampler`,
  :class:`~tfpanc.data.sampling3d.BoxCropSampler3D`).

Slices and patches are cut on the cache's voxel grid (no resampling here):
a method that wants isotropic voxels or 1/4 resolution samples a cache
prepared that way (:func:`tfpanc.data.preprocess.resample_image`,
:func:`tfpanc.data.preprocess.decimate_image`).

Fixed output sizes (documented choice): whole slices are centre-cropped or
padded to ``size`` (padding holds the normalised value of air); crops around
a box are either kept at native resolution (``size=None``: variable shape,
batch 1, as in Zhou's paper), zoomed to ``size`` (``resize=True``; the zoom
factors are in the sample's info) or centre-padded to ``size`` at native
resolution (``resize=False``).
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.boxes import as_box, box_from_mask, box_shape, centered_box, clip_box, expand_box, paste
from tfpanc.data.patches import read_slices, view_axis
from tfpanc.data.preprocess import resize, resize_label
from tfpanc.data.sampler_base import FLOAT, MarginRange, Sampler, draw_margins, fit_to_size


class _Pool:
    """Uniform draws over all (case, item) pairs (one item list per case)."""

    def __init__(self, items_per_case):
        self.items = [np.asarray(a, np.int64) for a in items_per_case]
        self.cum = np.cumsum([len(a) for a in self.items])

    @property
    def size(self):
        return int(self.cum[-1]) if len(self.cum) else 0

    def draw(self, rng):
        r = int(rng.integers(self.size))
        c = int(np.searchsorted(self.cum, r, side="right"))
        return c, int(self.items[c][r - (int(self.cum[c - 1]) if c else 0)])


class SliceSampler(Sampler):
    """3-slice stacks of one view with the mask of the centre slice.

    Args:
        cache, case_ids, seed, normalizer: see :class:`Sampler`.
        view: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        size: ``(H, W)`` output size (centre crop/pad), or None for native.
        context: neighbours on each side (1 -> 3 channels).
        min_pixels: draw only slices with at least this many pancreas pixels
            (0: all slices).
        positive_fraction: with ``min_pixels=0``, the probability of drawing
            from the slices holding pancreas; otherwise from all slices.
            None: all slices uniformly.

    Outputs ``image (H, W, 2*context+1)``, ``mask (H, W, 1)``.

    Example:
    >>> sampler = SliceSampler(cache, train_ids, "axial", size=(512, 512),
    ...                        min_pixels=100)               # doctest: +SKIP
    >>> image, mask = sampler.sample(index=7, epoch=0)       # doctest: +SKIP
    """

    def __init__(self, cache, case_ids, view="axial", size=None, context=1, min_pixels=0,
                 positive_fraction=None, seed=0, normalizer=None):
        super().__init__(cache, case_ids, seed, normalizer)
        self.view = view
        self.axis = view_axis(view)
        self.size = None if size is None else tuple(int(s) for s in size)
        self.context = int(context)
        self.min_pixels = int(min_pixels)
        self.positive_fraction = positive_fraction
        self.positives = self._positive_pool(max(self.min_pixels, 1))
        if self.min_pixels > 0 or positive_fraction:
            if self.positives.size == 0:
                raise ValueError(f"no {view} slice with >= {max(self.min_pixels, 1)} pancreas pixels in these cases")
        if self.min_pixels > 0 and positive_fraction is not None:
            raise ValueError("use either min_pixels or positive_fraction, not both")
        self.all_slices = _Pool([np.arange(self._shape(c)[self.axis]) for c in range(len(self.case_ids))])

    def _positive_pool(self, min_pixels):
        items = []
        for meta in self.metas:
            slices = np.asarray(meta.get("pancreas_slices", {}).get(self.view, []), np.int64)
            pixels = np.asarray(meta.get("pancreas_pixels", {}).get(self.view, []), np.int64)
            items.append(slices[pixels >= min_pixels] if pixels.size == slices.size else slices)
        return _Pool(items)

    @property
    def epoch_size(self):
        return self.positives.size if self.min_pixels > 0 else self.all_slices.size

    def _draw_slice(self, rng):
        if self.min_pixels > 0:
            return self.positives.draw(rng)
        if self.positive_fraction is not None and rng.random() < self.positive_fraction:
            return self.positives.draw(rng)
        return self.all_slices.draw(rng)

    def _plane_shape(self, c):
        return tuple(n for a, n in enumerate(self._shape(c)) if a != self.axis)

    def _plane_box(self, c):
        plane = self._plane_shape(c)
        size = self.size or plane
        return centered_box((np.asarray(plane) - 1) / 2.0, size)

    def _read_planes(self, volume, indices, box2d, fill, transform):
        # view-ordered (H, W, len(indices)) of an in-plane box that may reach outside.
        plane = tuple(n for a, n in enumerate(volume.shape) if a != self.axis)
        inside = clip_box(box2d, plane)
        part = read_slices(volume, self.view, indices, inside)
        if transform is not None:
            part = transform(part)
        if np.array_equal(inside, box2d):
            return part
        return paste(part, inside - box2d[:, :1], box_shape(box2d), background=fill)

    def _read_run(self, volume, start, length, context, n, box2d, fill, transform):
        # One read of the block of slices [start - context, start + length + context),
        # clamped to the volume (edge replication), -> (T, H, W, 2*context+1).
        centres = np.clip(np.arange(start, start + length), 0, n - 1)
        idx = np.clip(centres[:, None] + np.arange(-context, context + 1)[None, :], 0, n - 1)
        block = self._read_planes(volume, idx.ravel(), box2d, fill, transform)
        h, w = block.shape[:2]
        return np.moveaxis(block.reshape(h, w, length, 2 * context + 1), 2, 0)

    def _make(self, rng):
        c, k = self._draw_slice(rng)
        case = self._open(c)
        transform, fill = self._transform(c, case)
        box2d = self._plane_box(c)
        n = self._shape(c)[self.axis]
        image = self._read_run(case.image, k, 1, self.context, n, box2d, fill, transform)[0]
        mask = self._read_run(case.label, k, 1, 0, n, box2d, 0, None)[0].astype(FLOAT)
        info = {"case_id": self.case_ids[c], "view": self.view, "slice": k, "box2d": box2d}
        return (image, mask), info

    def output_signature(self):
        hw = self.size or self._common([self._plane_shape(c) for c in range(len(self.case_ids))]) or (None, None)
        return (((*hw, 2 * self.context + 1), FLOAT), ((*hw, 1), FLOAT))


class SliceRunSampler(SliceSampler):
    """Runs of ``length`` consecutive 3-slice stacks and their masks (Cai's RNN).

    An anchor slice is drawn as in :class:`SliceSampler` and lands at a
    uniformly drawn position inside the run; the run is then shifted to lie
    inside the volume (volumes shorter than the run repeat their last slice).

    Outputs ``image (T, H, W, 2*context+1)``, ``mask (T, H, W, 1)``.
    """

    def __init__(self, cache, case_ids, view="axial", length=8, size=None, context=1, min_pixels=0,
                 positive_fraction=None, seed=0, normalizer=None):
        super().__init__(cache, case_ids, view, size, context, min_pixels, positive_fraction, seed, normalizer)
        self.length = int(length)

    def _make(self, rng):
        c, k = self._draw_slice(rng)
        n = self._shape(c)[self.axis]
        start = k - int(rng.integers(self.length))
        start = int(np.clip(start, 0, n - self.length)) if n >= self.length else 0
        case = self._open(c)
        transform, fill = self._transform(c, case)
        box2d = self._plane_box(c)
        images = self._read_run(case.image, start, self.length, self.context, n, box2d, fill, transform)
        masks = self._read_run(case.label, start, self.length, 0, n, box2d, 0, None)
        info = {"case_id": self.case_ids[c], "view": self.view, "anchor": k, "start": start, "box2d": box2d}
        return (images, masks.astype(FLOAT)), info

    def output_signature(self):
        (img, _), (msk, _) = super().output_signature()
        return (((self.length, *img), FLOAT), ((self.length, *msk), FLOAT))


class SliceCropSampler(SliceSampler):
    """Zhou's fine-model input: a slice's pancreas box plus a frame.

    Args:
        cache, case_ids, view, context, min_pixels, seed, normalizer: as for
            :class:`SliceSampler` (``min_pixels`` defaults to 1: slices
            holding pancreas).
        margin: :class:`MarginRange` ``(lo, hi)``: each of the four sides gets
            an integer drawn from {lo..hi} (Zhou: ``MarginRange(0, 60)``);
            or a fixed int (all sides) / per-axis / ``(2, 2)`` margins.
        box: ``"slice"`` (minimal box of the pancreas in that slice, as in
            the paper) or ``"volume"`` (the in-plane part of the 3D box).
        size: None (native resolution, variable shape: batch 1) or ``(H, W)``.
        resize: with ``size``: zoom the crop to ``size`` (True) or centre
            crop/pad it at native resolution (False).

    The frame is clipped to the slice (filled with image data only). Outputs
    ``image (H, W, 2*context+1)``, ``mask (H, W, 1)``; info holds the crop
    box and the zoom factors.
    """

    def __init__(self, cache, case_ids, view="axial", margin=MarginRange(0, 60), box="slice", size=None,
                 resize=True, context=1, min_pixels=1, seed=0, normalizer=None):
        if box not in ("slice", "volume"):
            raise ValueError(f"box must be 'slice' or 'volume', got {box!r}")
        super().__init__(cache, case_ids, view, size, context, max(int(min_pixels), 1), None, seed, normalizer)
        self.margin = margin
        self.box_mode = box
        self.resize = bool(resize)

    def _make(self, rng):
        c, k = self._draw_slice(rng)
        margins = draw_margins(self.margin, rng, 2)
        case = self._open(c)
        plane_axes = [a for a in range(3) if a != self.axis]
        box3d = as_box(self.metas[c]["pancreas_box"])
        box2d = box3d[plane_axes]
        if self.box_mode == "slice":
            # Only the 3D box's region of this one slice is read.
            local = box_from_mask(read_slices(case.label, self.view, [k], box2d)[..., 0])
            if local is not None:
                box2d = local + box2d[:, :1]
        plane = self._plane_shape(c)
        crop_box = expand_box(box2d, margins, shape=plane)
        transform, fill = self._transform(c, case)
        n = self._shape(c)[self.axis]
        idx = np.clip(np.arange(k - self.context, k + self.context + 1), 0, n - 1)
        image = read_slices(case.image, self.view, idx, crop_box)
        image = transform(image)
        mask = read_slices(case.label, self.view, [k], crop_box).astype(FLOAT)
        factors = (1.0, 1.0)
        if self.size is not None and self.resize:
            image, factors = resize(image, self.size, order=1)
            mask = resize_label(mask[..., 0], self.size).astype(FLOAT)[..., None]
        elif self.size is not None:
            image, mask = fit_to_size(image, self.size, fill), fit_to_size(mask, self.size, 0)
        info = {"case_id": self.case_ids[c], "view": self.view, "slice": k, "pancreas_box2d": box2d,
                "margins": margins, "crop_box": crop_box, "zoom": factors}
        return (image, mask), info

    def output_signature(self):
        hw = self.size or (None, None)
        return (((*hw, 2 * self.context + 1), FLOAT), ((*hw, 1), FLOAT))
