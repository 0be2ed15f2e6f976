"""Volume prediction of a trained cai run.

:class:`CaiPredictor` turns a CT/MRI array into the pancreas probability:
the CNN over every axial 3-slice stack (batched, memory bounded), then, for
``pnet_msa_birnn`` runs, the BiRNN over the whole slice sequence.
"""

from __future__ import annotations

from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.inference.slicewise import predict_slices
from tfpanc.methods.cai.birnn_over_volume import BiRNNOverVolume
from tfpanc.methods.cai.networks import input_multiple, load_models, slices_per_call
from tfpanc.training.run_dir import RunDir


class CaiPredictor:
    """Pancreas probability of a volume with a trained cai run.

    Args:
        run_dir: a finished ``--model_dir``.

    Example:
    >>> predictor = CaiPredictor("runs/quickstart")          # doctest: +SKIP
    >>> out = predictor(volume.array)                         # doctest: +SKIP
    >>> out["probability"].shape == volume.array.shape        # doctest: +SKIP
    True
    """

    def __init__(self, run_dir):
        self.run = RunDir(run_dir)
        self.info = self.run.run_info()
        self.cnn, head, self.cnn_only = load_models(self.run.path, self.info)
        self.birnn = None if head is None else BiRNNOverVolume(head)
        self.multiple = input_multiple(self.info["model"], self.info["num_units"])
        self.threshold = float(self.info.get("threshold", 0.5))

    def _cnn_probability(self, model, image, normalizer, stats):
        from keras import ops

        from tfpanc.inference.precision import to_float32

        def predict_fn(batch):
            return to_float32(ops.sigmoid(model.predict_on_batch(batch)[..., :1]))

        batch = slices_per_call(image.shape, self.info.get("filters", 64))
        return predict_slices(predict_fn, image, "axial", batch_size=batch,
                              multiple=self.multiple, fill=normalizer.background(stats),
                              transform=lambda a: normalizer(a, stats))

    def __call__(self, image, with_cnn_only=False):
        """Returns {"probability"[, "cnn_probability"]} float32 ``[x, y, z]`` arrays."""
        normalizer = IntensityNormalizer(self.info["modality"], window=tuple(self.info["window"]))
        stats = normalizer.stats(image)
        prob = self._cnn_probability(self.cnn, image, normalizer, stats)
        out = {}
        if self.birnn is not None:
            if with_cnn_only:
                out["cnn_probability"] = self._cnn_probability(self.cnn_only, image, normalizer, stats)
            prob = self.birnn(prob)
        out["probability"] = prob
        return out


def load_predictor(run_dir, info, options):
    """The registry's predictor: ``predict(image, probability=False) -> {"mask", "probability"}``."""
    predictor = CaiPredictor(run_dir)
    threshold = predictor.threshold if options is None or options.threshold is None else options.threshold

    def predict(image, probability=False, spacing=None):
        prob = predictor(image)["probability"]
        return {"mask": prob > threshold, "probability": prob, "summary": f"threshold {threshold:g}"}

    return predict
