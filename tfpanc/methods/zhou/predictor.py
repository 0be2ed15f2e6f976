"""The zhou pipeline on a volume.

:class:`ZhouPredictor` loads a pipeline directory (six FCN-8s models and
the pipeline record in ``run.json``, see :mod:`tfpanc.methods.zhou.recipe`)
and segments a raw ``[x, y, z]`` volume (HU for CT): the three coarse views
over every slice, their majority vote Z(0), then the fixed-point iteration
of :func:`tfpanc.methods.zhou.fixed_point.fixed_point` with the fine models
until ``d(t) > R`` or ``t = T``. The intensity window is applied per batch,
so the volume is never normalised as a whole. An empty coarse result gives
an empty mask with ``rounds = 0`` and ``stop_reason = "empty"``
(OrganSegC2F's behaviour, documented in :mod:`tfpanc.methods.zhou.fixed_point`).
"""

from __future__ import annotations

import time
from pathlib import Path

from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.patches import VIEWS, view_axis
from tfpanc.data.preprocess import round_up
from tfpanc.inference.slicewise import predict_slices, slices_per_batch
from tfpanc.methods.zhou import recipe
from tfpanc.methods.zhou.config import fcn_multiple
from tfpanc.methods.zhou.crops import FineViewPredictor, predict_fn_from_models
from tfpanc.methods.zhou.fixed_point import (FixedPointSettings, fixed_point, fixed_point_rounds,
                                             oracle_segmentation)
from tfpanc.training.run_dir import RunDir, load_weights


def load_model(run_dir):
    """An FCN-8s with the weights of one (stage, view) run directory."""
    run = RunDir(run_dir)
    info = run.run_info()
    model = recipe.build_model(info)
    load_weights(model, run.path / info["weights"])
    return model, info


def forward(model):
    """``batch -> numpy logits`` of ``model`` as a plain eager call.

    Crops of the fine rounds come in many padded shapes; ``predict_on_batch``
    would trace a new graph for each, while an eager call just runs (the
    convolutions dominate, per-layer dispatch is negligible).
    """
    from tfpanc.inference.precision import to_float32

    return lambda batch: to_float32(model(batch, training=False))


# Slice pixels per FCN-8s call (VGG16 widths keep 64-512 channels at full to
# 1/32 resolution): 4 slices of 512^2.
SLICE_BUDGET_PIXELS = 2 ** 20


class ZhouPredictor:
    """Pancreas mask of a volume with a trained zhou pipeline.

    Args:
        pipeline_dir: a pipeline directory (its ``run.json`` is the pipeline record).
        max_rounds, stop_threshold, crop_margin: override the pipeline's T,
            R and test-time frame.

    Example:
    >>> predictor = ZhouPredictor("runs/zhou/fold0")          # doctest: +SKIP
    >>> out = predictor(volume.array)                          # doctest: +SKIP
    >>> out["mask"].shape == volume.array.shape, out["rounds"], out["inter_dsc"]  # doctest: +SKIP
    (True, 2, [0.91, 0.97])
    """

    def __init__(self, pipeline_dir, max_rounds=None, stop_threshold=None, crop_margin=None):
        self.path = Path(pipeline_dir)
        self.info = recipe.read_pipeline(self.path)
        loaded = {name: load_model(self.path / sub) for name, sub in self.info["models"].items()}
        self.coarse = {v: loaded[f"coarse_{v}"][0] for v in VIEWS}
        self.fine = {v: loaded[f"fine_{v}"][0] for v in VIEWS}
        self.fine_sizes = {v: tuple(loaded[f"fine_{v}"][1]["input_size"]) for v in VIEWS}
        self.normalizer = IntensityNormalizer(self.info["modality"], window=tuple(self.info["window"]))
        self.max_rounds = int(self.info["max_rounds"] if max_rounds is None else max_rounds)
        self.stop_threshold = float(self.info["stop_threshold"] if stop_threshold is None else stop_threshold)
        self.settings = FixedPointSettings.from_record(self.info, margin=crop_margin)
        self.fine_fn = predict_fn_from_models({v: forward(m) for v, m in self.fine.items()})

    def coarse_probabilities(self, image, stats):
        """``{view: probability volume}`` of the three coarse models."""
        out = {}
        for view in VIEWS:
            model = self.coarse[view]
            axis = view_axis(view)
            plane = [round_up(n, fcn_multiple()) for a, n in enumerate(image.shape[:3]) if a != axis]
            fn = predict_fn_from_models({view: forward(model)})
            out[view] = predict_slices(lambda b, v=view, f=fn: f(v, b), image, view,
                                       batch_size=slices_per_batch(plane, SLICE_BUDGET_PIXELS), multiple=fcn_multiple(),
                                       fill=self.normalizer.background(stats),
                                       transform=lambda a: self.normalizer(a, stats))
        return out

    def fine_predictor(self, stats, batch_size=8):
        """The :class:`FineViewPredictor` of the fine models: crops padded to at least their
        training size (so the air frame looks as in training), else to a multiple of 32."""
        return FineViewPredictor(self.fine_fn, mode="pad", multiple=fcn_multiple(), size=self.fine_sizes,
                                 fill=self.normalizer.background(stats), batch_size=batch_size,
                                 transform=lambda a: self.normalizer(a, stats))

    def prepared(self, image):
        """``(coarse probabilities, fine predictor)`` of one volume (the coarse pass runs here)."""
        stats = self.normalizer.stats(image)
        return self.coarse_probabilities(image, stats), self.fine_predictor(stats)

    def rounds(self, image, coarse, fine, probability=False):
        """The iteration's rounds Z(0), Z(1), ... on ``image`` (no stopping rule; see
        :func:`tfpanc.methods.zhou.fixed_point.fixed_point_rounds`)."""
        return fixed_point_rounds(image, coarse, fine, self.settings, probability)

    def oracle(self, image, fine, label):
        """The oracle-box mask: one fine round cut around ``label``."""
        return oracle_segmentation(image, fine, label, self.settings)[0]

    def __call__(self, image, probability=False):
        """Segments ``image`` (raw ``[x, y, z]``, HU for CT) with the stopping rule.

        Returns:
            dict with ``mask`` (bool), ``rounds``, ``inter_dsc`` (d(1)..),
            ``stop_reason``, ``seconds``; with ``probability``, ``probability``
            (float32, see
            :attr:`tfpanc.methods.zhou.fixed_point.FixedPointResult.probability`).
        """
        start = time.time()
        coarse, fine = self.prepared(image)
        result = fixed_point(image, coarse, fine, max_rounds=self.max_rounds, stop_threshold=self.stop_threshold,
                             settings=self.settings, keep_probability=probability)
        out = {"mask": result.mask, "rounds": result.rounds, "inter_dsc": list(result.inter_dsc),
               "stop_reason": result.stop_reason, "seconds": time.time() - start}
        if probability:
            out["probability"] = result.probability
        return out


def format_rounds(out):
    """``rounds 2 (converged), d(t) 0.912 0.973`` for a log line."""
    d = " ".join(f"{v:.3f}" for v in out["inter_dsc"]) or "-"
    return f"rounds {out['rounds']} ({out['stop_reason']}), d(t) {d}"


def load_predictor(run_dir, info, options):
    """The registry's predictor: ``predict(image, probability=False) -> {"mask", "probability", "summary"}``."""
    predictor = ZhouPredictor(run_dir, max_rounds=None if options is None else options.max_rounds,
                              stop_threshold=None if options is None else options.stop_threshold)

    def predict(image, probability=False, spacing=None):
        out = predictor(image, probability=probability)
        return {"mask": out["mask"], "probability": out.get("probability"), "summary": format_rounds(out)}

    return predict
