"""The multitask method on a volume (Fig. 2 of the paper; Secs. II-A, II-C, III-C).

1. **Preprocess** (:mod:`tfpanc.methods.multitask.preprocess`): resample to
   the run's spacing, crop to the body.
2. **C1**: the crop decimated by R (block mean), normalised (mean, max
   abs), C1's windows over it (its training patch, half overlapping,
   Gaussian-averaged), the probability upsampled linearly to the crop and
   thresholded at 0.5; a binary opening (radius ``c1_opening`` voxels)
   cleans it (the paper's "morphological operation"), the largest connected
   component is kept with the next largest ones that fit in one region
   with it (:func:`tfpanc.inference.components.components_fitting`: a C1
   that splits the pancreas would otherwise place the region on one piece),
   and the centre of their box is the centre of the region (``region``
   voxels, shifted inside the crop or padded with air where the crop is
   smaller).
3. **C2**: windows of ``patch`` every ``step`` voxels over the region
   (paper 4x16x16), batched, averaged in float32 (the paper's plain mean;
   ``weighting="gaussian"`` as an option).
4. **CRF** (``crf``): the 3D dense CRF on C2's probability and the HU image
   of the region, sigmas in mm (:mod:`tfpanc.methods.multitask.crf`).
5. **Back**: pasted into the crop and mapped onto the input's own grid
   (:meth:`GridMap.to_original`); the mask is the result >= 0.5.

An empty C1 mask has no box: the result is an empty mask and the summary
says so (documented fallback, as two_stage's).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage
from scipy.special import expit

from tfpanc.data.boxes import box_center, box_from_mask, box_slices, centered_box, clip_box, crop
from tfpanc.data.preprocess import decimate_image, upsample
from tfpanc.inference.components import components_fitting
from tfpanc.inference.sliding_window import grid_starts, sliding_window_inference
from tfpanc.methods.multitask.crf import CRFSettings, dense_crf
from tfpanc.methods.multitask.preprocess import MeanMaxNormalizer, to_model_grid
from tfpanc.methods.multitask.recipe import build_c1, build_c2
from tfpanc.training.run_dir import RunDir, load_weights

PARTS = ("c1", "c2", "crf")


def open_mask(mask, radius):
    """``mask`` opened with a ball of ``radius`` voxels (unchanged for radius 0)."""
    if radius <= 0:
        return mask
    from skimage.morphology import ball

    return ndimage.binary_opening(mask, structure=ball(int(radius)).astype(bool))


class MultitaskPredictor:
    """Pancreas mask of a CT volume with a multitask run's C1 and C2.

    Args:
        c1, c2: the two networks (logits out; C2's channel 0).
        info: the run's ``run.json`` record.
        step: C2's sliding-window step ``(x, y, z)``; default the run's.
        crf: apply the CRF; default the run's.
        window_batch: C2 windows per network call.

    Example:
    >>> predictor = MultitaskPredictor.load("runs/multitask/fold0")       # doctest: +SKIP
    >>> out = predictor(volume.array, spacing=volume.spacing)             # doctest: +SKIP
    >>> out["mask"].shape == volume.array.shape, out["seconds_by_part"]   # doctest: +SKIP
    """

    @classmethod
    def load(cls, run_dir, step=None, crf=None, window_batch=16):
        """The predictor of a finished ``--model_dir``."""
        run = RunDir(run_dir)
        info = run.run_info()
        c1, c2 = build_c1(info["c1_model"]), build_c2(info["c2_model"])
        load_weights(c1, run.path / info["c1_weights"])
        load_weights(c2, run.path / info["c2_weights"])
        return cls(c1, c2, info, step=step, crf=crf, window_batch=window_batch)

    def __init__(self, c1, c2, info, step=None, crf=None, window_batch=16):
        self.c1, self.c2, self.info = c1, c2, info
        self.step = tuple(step or info["step"])
        self.crf = info["crf"] if crf is None else bool(crf)
        self.crf_settings = CRFSettings(**{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in info["crf_settings"].items()})
        self.window_batch = int(window_batch)
        self.normalizer = MeanMaxNormalizer()
        self._c1_forward, self._c2_forward = _forward(c1), _forward(c2)

    def _c1_probability(self, batch):
        return expit(self._c1_forward(batch))

    def _c2_outputs(self, batch):
        out = np.array(self._c2_forward(batch), np.float32)
        out[..., 0] = expit(out[..., 0])
        return out

    def c1_mask(self, image):
        """C1's cleaned mask on the crop's grid (bool): the components of :meth:`c1_opened` that fit
        in one region with the largest, or None."""
        return components_fitting(self.c1_opened(image), self.info["region"])

    def c1_opened(self, image, threshold=0.5):
        """C1's probability on the crop's grid, thresholded at ``threshold`` and opened, every component kept."""
        factor = int(self.info["c1_decimation"])
        low = decimate_image(image, factor)
        stats = self.normalizer.stats(low)
        prob = sliding_window_inference(self._c1_probability, low, self.info["c1_patch"], overlap=0.5,
                                        batch_size=4, fill=self.normalizer.background(stats),
                                        transform=lambda a: self.normalizer(a, stats))
        up = upsample(prob, factor, image.shape, order=1) >= threshold
        return open_mask(up, int(self.info["c1_opening"]))

    def region_of(self, c1_mask, shape):
        """The C2 region ``(3, 2)`` centred on C1's box (may reach outside ``shape``: padded)."""
        return centered_box(box_center(box_from_mask(c1_mask)), self.info["region"], shape=shape)

    def c2_outputs(self, region_image, stats):
        """C2's averaged window outputs on the region: ``(x, y, z, C)``, channel 0 the probability.

        ``stats``: the normalisation of the whole crop, as in training (the
        sampler normalises a patch by its whole case's mean and maximum).
        """
        out = sliding_window_inference(self._c2_outputs, region_image, self.info["patch"], stride=self.step,
                                       batch_size=self.window_batch, fill=self.normalizer.background(stats),
                                       transform=lambda a: self.normalizer(a, stats),
                                       weighting=self.info["weighting"])
        return out if out.ndim == 4 else out[..., None]

    def __call__(self, image, probability=False, spacing=None, parts=False):
        """Segments ``image`` (raw ``[x, y, z]`` HU) of voxel size ``spacing`` mm.

        Returns:
            dict with ``mask`` (bool, input grid), ``region`` (``(3, 2)`` on the
            crop of the resampled grid, or None), ``seconds``,
            ``seconds_by_part`` (resample, c1, sliding_window, crf,
            paste_back), ``windows``, ``summary``; with ``probability``,
            ``probability`` (C2's, or the CRF's marginal when it runs); with
            ``parts``, ``c1_mask``, ``c2_mask``, ``crf_mask`` and
            ``region_mask`` on the input grid (the CRF is run for
            ``crf_mask`` even when it is off for ``mask``).
        """
        if spacing is None:
            raise ValueError("the multitask predictor needs the voxel spacing (it resamples to the run's)")
        times, start = {}, time.time()
        image = np.asarray(image)
        shape = image.shape[:3]
        crop_image, grid = to_model_grid(image, spacing, self.info["spacing"], self.info["body_threshold"])
        times["resample"] = time.time() - start
        t = time.time()
        c1 = self.c1_mask(crop_image)
        times["c1"] = time.time() - t
        out = {"region": None, "windows": 0, "seconds_by_part": times}
        if c1 is None:
            out.update(mask=np.zeros(shape, bool), summary="C1 found no pancreas: empty mask")
            if probability:
                out["probability"] = np.zeros(shape, np.float32)
            if parts:
                out.update({f"{p}_mask": np.zeros(shape, bool) for p in PARTS + ("region",)})
            out["seconds"] = time.time() - start
            return out
        region = self.region_of(c1, crop_image.shape)
        air = float(crop_image.min())
        region_image = crop(crop_image, region, fill=air)
        t = time.time()
        c2 = self.c2_outputs(region_image, self.normalizer.stats(crop_image))
        times["sliding_window"] = time.time() - t
        prob = c2[..., 0]
        t = time.time()
        q = dense_crf(prob, region_image, self.info["spacing"], self.crf_settings) if (self.crf or parts) else None
        times["crf"] = time.time() - t
        t = time.time()
        inside = clip_box(region, crop_image.shape)
        local = box_slices(inside - region[:, :1])

        def back(values, box=inside):
            return grid.to_original(values, box=box)

        final = back((q if self.crf else prob)[local])
        out["mask"] = final >= 0.5
        if probability:
            out["probability"] = final
        if parts:
            out["c1_mask"] = back(c1.astype(np.float32), box=None) >= 0.5
            out["c2_mask"] = out["mask"] if not self.crf else back(prob[local]) >= 0.5
            out["crf_mask"] = out["mask"] if self.crf else back(q[local]) >= 0.5
            out["region_mask"] = back(np.ones(tuple(np.diff(inside, axis=1)[:, 0]), np.float32)) >= 0.5
        times["paste_back"] = time.time() - t
        out["region"] = region
        out["windows"] = _window_count(region_image.shape, self.info["patch"], self.step)
        size = [(hi - lo) * s for (lo, hi), s in zip(region.tolist(), self.info["spacing"])]
        out["summary"] = (f"region {region.tolist()} ({' x '.join(f'{v:.0f}' for v in size)} mm), "
                          f"{out['windows']} windows, CRF {'on' if self.crf else 'off'}")
        out["seconds"] = time.time() - start
        return out


def _forward(model):
    """A compiled call of a Keras model (thousands of windows per volume), or any callable as it is."""
    import keras

    if isinstance(model, keras.Model):
        from tfpanc.inference.compiled import compiled_forward

        return compiled_forward(model)
    from tfpanc.inference.precision import to_float32

    return lambda batch: to_float32(model(batch, training=False))


def _window_count(shape, patch, step):
    return int(np.prod([len(grid_starts(n, p, s)) for n, p, s in zip(shape, patch, step)]))


def load_predictor(run_dir, info, options):
    """The registry's predictor: ``predict(image, probability=False, spacing=None) -> dict``."""
    predictor = MultitaskPredictor.load(run_dir, step=getattr(options, "step", None),
                                        crf=getattr(options, "crf", None),
                                        window_batch=getattr(options, "window_batch", None) or 16)

    def predict(image, probability=False, spacing=None):
        return predictor(image, probability=probability, spacing=spacing)

    return predict
