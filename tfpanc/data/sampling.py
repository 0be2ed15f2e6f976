"""Training samplers over the case cache: one numpy core for every method.

A sampler turns ``(index, epoch)`` into one training example, a tuple of
float32 arrays ``(image, mask)``. Everything random is drawn from
``numpy.random.default_rng([seed, epoch, index])``, so sample i of epoch e is
the same whatever order (or process, or thread) asks for it; the tf.data and
PyDataset wrappers in :mod:`tfpanc.data.pipeline` rely on that.

Memory: a sample opens the case's memory-mapped arrays, reads only the slices
or box it needs, normalises that small array (never a whole volume) and drops
the maps again, so resident memory does not grow with the number of cases.
Which slices hold pancreas comes from the cached metadata, never from
reading labels; MRI per-volume intensity statistics are computed once per
case (from a strided subsample) and kept in memory.

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
  (:class:`PatchSampler`, :class:`BoxCropSampler3D`), re-exported here.

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
from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.patches import read_slices, view_axis
from tfpanc.data.preprocess import resize, resize_label
from tfpanc.errors import InputError

FLOAT = np.float32


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


class MarginRange(tuple):
    """Random margins: every side gets an integer drawn uniformly from {lo..hi}.

    Plain ints or arrays passed as a margin are fixed margins instead.

    Example:
    >>> MarginRange(0, 60)   # Zhou's fine-model frame
    MarginRange(0, 60)
    """

    def __new__(cls, lo, hi):
        if not 0 <= int(lo) <= int(hi):
            raise ValueError(f"margin range needs 0 <= lo <= hi, got ({lo}, {hi})")
        return super().__new__(cls, (int(lo), int(hi)))

    def __repr__(self):
        return f"MarginRange({self[0]}, {self[1]})"


def draw_margins(margin, rng, ndim):
    """``(ndim, 2)`` (before, after) margins: drawn for a MarginRange, else fixed."""
    if isinstance(margin, MarginRange):
        return rng.integers(margin[0], margin[1] + 1, size=(ndim, 2))
    m = np.asarray(margin, np.int64)
    if m.ndim == 1:
        m = np.repeat(m[:, None], 2, axis=1)
    return np.broadcast_to(m, (ndim, 2)).copy()


def fit_to_size(array, size, fill):
    """Centre-crops or pads the leading ``len(size)`` axes to ``size``."""
    box = centered_box((np.asarray(array.shape[:len(size)]) - 1) / 2.0, size)
    return crop_transform(array, box, fill, None)


def crop_transform(volume, box, fill, transform):
    """``volume[box]`` (box may reach outside), transformed, outside = ``fill``.

    Reads only the inside part (a memmap reads just those pages), applies
    ``transform`` to that part alone, and pads with ``fill``.
    """
    box = as_box(box)
    nd = box.shape[0]
    inside = clip_box(box, volume.shape[:nd])
    part = np.array(volume[tuple(slice(int(a), int(b)) for a, b in inside)])
    if transform is not None:
        part = transform(part)
    if np.array_equal(inside, box):
        return part
    local = inside - box[:, :1]
    return paste(part, local, box_shape(box), background=fill)


class Sampler:
    """Shared core: cases, seeded draws, normalisation, reading.

    Args:
        cache: a :class:`tfpanc.data.cache.CaseCache`.
        case_ids: the cases to draw from (a fold's training ids); all must
            be labelled.
        seed: base seed; sample ``i`` of epoch ``e`` uses
            ``default_rng([seed, e, i])``.
        normalizer: an :class:`IntensityNormalizer`; default: the cache's
            modality with its default settings.

    Subclasses implement ``_make(rng) -> (arrays, info)`` and
    ``output_signature()``.
    """

    def __init__(self, cache, case_ids, seed=0, normalizer=None):
        self.cache = cache
        self.case_ids = list(case_ids)
        if not self.case_ids:
            raise ValueError("a sampler needs at least one case id")
        self.seed = int(seed)
        self.metas = []
        for cid in self.case_ids:
            meta = cache.case(cid).meta
            if not meta.get("has_label", meta.get("pancreas_slices") is not None):
                raise InputError(cache.root / "cases" / cid, "case has no label; training needs labelled cases")
            self.metas.append(meta)
        if normalizer is None:
            normalizer = IntensityNormalizer(self.metas[0].get("modality", "ct"))
        self.normalizer = normalizer
        self._stats = {}

    # -- public API ---------------------------------------------------------
    def sample(self, index, epoch=0):
        """Example ``index`` of ``epoch``: a tuple of float32 arrays."""
        return self.sample_with_info(index, epoch)[0]

    def sample_with_info(self, index, epoch=0):
        """``(arrays, info)``; info says which case, slice and box were used."""
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        return self._make(rng)

    def output_signature(self):
        """Tuple of ``(shape, dtype)`` per output; None marks a variable axis."""
        raise NotImplementedError

    @property
    def epoch_size(self):
        """A natural number of samples per epoch (the size of the draw pool)."""
        return len(self.case_ids)

    # -- helpers for subclasses ---------------------------------------------
    def _open(self, c):
        # A fresh CachedCase per sample: its memmaps are unmapped when the
        # sample is done, so pages it touched leave this process's RSS.
        return self.cache.case(self.case_ids[c])

    def _stats_of(self, c, case):
        if c not in self._stats:
            self._stats[c] = self.normalizer.stats(case.image)
        return self._stats[c]

    def _transform(self, c, case):
        stats = self._stats_of(c, case)
        return (lambda a: self.normalizer(a, stats)), self.normalizer.background(stats)

    def _shape(self, c):
        return tuple(int(s) for s in self.metas[c]["shape"])

    def _common(self, values):
        return values[0] if all(v == values[0] for v in values) else None


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


def __getattr__(name):
    # The 3D samplers live in sampling3d (which imports this module); a lazy
    # re-export keeps `from tfpanc.data.sampling import PatchSampler` working
    # without a circular import.
    if name in ("PatchSampler", "BoxCropSampler3D"):
        from tfpanc.data import sampling3d

        return getattr(sampling3d, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
