"""C2's training patches: image, and the mask with the skeleton target beside it."""

from __future__ import annotations

import numpy as np

from tfpanc.data.cache import open_npy
from tfpanc.data.sampler_base import FLOAT, crop_transform
from tfpanc.data.sampling3d import PatchSampler


class SkeletonPatchSampler(PatchSampler):
    """A :class:`tfpanc.data.sampling3d.PatchSampler` whose target carries the skeleton too.

    The skeleton target is read from the case's ``skeleton.npy`` (written once
    by :func:`tfpanc.methods.multitask.preprocess.model_grid_cache`), the
    same box as the patch, never computed per sample.

    Args:
        skeleton: add the skeleton channel (False: the single-task target).
        Others as :class:`tfpanc.data.sampling3d.PatchSampler`.

    Outputs ``image (px, py, pz, 1)`` and ``target (px, py, pz, 2)`` (mask,
    skeleton), or ``(px, py, pz, 1)`` without the skeleton.

    Example:
    >>> sampler = SkeletonPatchSampler(cache, ids, (64, 64, 16), roi_size=(224, 224, 128))  # doctest: +SKIP
    >>> image, target = sampler.sample(0)                                                 # doctest: +SKIP
    """

    def __init__(self, *args, skeleton=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.skeleton = bool(skeleton)

    def _make(self, rng):
        (image, mask), info = super()._make(rng)
        if not self.skeleton:
            return (image, mask), info
        skeleton = open_npy(self.cache.root / "cases" / info["case_id"] / "skeleton.npy")
        target = crop_transform(skeleton, info["box"], 0, None).astype(FLOAT)[..., None]
        return (image, np.concatenate([mask, target], axis=-1)), info

    def output_signature(self):
        channels = 2 if self.skeleton else 1
        return ((self.patch_size + (1,), FLOAT), (self.patch_size + (channels,), FLOAT))
