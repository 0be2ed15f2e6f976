"""The core every training sampler shares: seeded draws, reading, normalising.

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

The samplers themselves: 2D slices in :mod:`tfpanc.data.sampling`, 3D
patches and box crops in :mod:`tfpanc.data.sampling3d`.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.boxes import as_box, box_shape, centered_box, clip_box, paste
from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.errors import InputError

FLOAT = np.float32


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
