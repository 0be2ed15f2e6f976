"""A randomly initialised zhou pipeline folder, for export tests and benchmarks.

Prediction and export read only the pipeline record (``run.json``), each
model's ``run.json`` and its weights, so a pipeline of six fresh FCN-8s runs
the whole fixed point without training. The files and keys are the ones
:func:`tfpanc.methods.zhou.recipe.train` records.

A fresh FCN-8s starts close to FCN-32s (its pool3/pool4 scores are zero) and
its logits sit near 0, so every probability would be near 0.5; ``gain``
scales the score layers (pool3/pool4 scores drawn at random) so the maps
have detail and saturate, and ``coarse_bias`` / ``fine_bias`` shift the
logits so that the coarse views mark part of a volume.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tfpanc.methods.zhou.config import MODEL_NAMES
from tfpanc.result_files import write_json


def write_random_pipeline(pipeline_dir, filters=2, fc_filters=8, fine_size=(32, 32), window=(-100.0, 240.0),
                          max_rounds=4, stop_threshold=0.95, crop_margin=30, gain=8.0, coarse_bias=0.0,
                          fine_bias=0.0, modality="ct", seed=0):
    """Writes a zhou pipeline of random FCN-8s models; returns its folder.

    Args:
        pipeline_dir: folder to create (or reuse).
        filters, fc_filters: FCN-8s widths of all six models.
        fine_size: ``(H, W)`` every fine model records as its training input size
            (test crops are padded to at least this).
        window: CT HU window.
        max_rounds, stop_threshold, crop_margin: the record's T, R and frame.
        gain: scale of the score layers' weights.
        coarse_bias, fine_bias: added to the logits of the coarse / fine models.
        modality: recorded in run.json.
        seed: initialisation seed (each model its own stream).

    Example:
    >>> import tempfile                                          # doctest: +SKIP
    >>> pipe = write_random_pipeline(tempfile.mkdtemp() + "/pipe")  # doctest: +SKIP
    >>> sorted(p.name for p in pipe.iterdir())[:2]               # doctest: +SKIP
    ['coarse_axial', 'coarse_coronal']
    """
    import keras

    from tfpanc.methods.zhou.recipe import build_model, pipeline_info

    path = Path(pipeline_dir)
    rng = np.random.default_rng(seed)
    record = {"model": "fcn8s", "kind": "model", "filters": int(filters), "fc_filters": int(fc_filters),
              "dropout": 0.0, "batch_norm": False, "modality": modality, "window": [float(v) for v in window],
              "fold": 0, "data_dir": "", "loss": "dice"}
    for i, name in enumerate(MODEL_NAMES):
        stage, view = name.split("_")
        keras.utils.set_random_seed(seed * 100 + i)
        model = build_model(record)
        for layer_name in ("score_fr", "score_pool4", "score_pool3"):
            layer = model.get_layer(layer_name)
            kernel = rng.normal(0, 1, tuple(layer.kernel.shape)) * gain / np.sqrt(layer.kernel.shape[-2])
            bias = np.zeros(tuple(layer.bias.shape))
            if layer_name == "score_fr":
                bias += coarse_bias if stage == "coarse" else fine_bias
            layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
        sub = path / name
        sub.mkdir(parents=True, exist_ok=True)
        model.save_weights(sub / f"{stage}.weights.h5")
        size = list(fine_size) if stage == "fine" else [32, 32]
        write_json(sub / "run.json", {"method": "zhou", **record, "stage": stage, "view": view,
                                      "input_size": size, "weights": f"{stage}.weights.h5",
                                      "crop_mode": "pad" if stage == "fine" else None})
    cfg = SimpleNamespace(window=[float(v) for v in window], fold=0, data_dir="", max_rounds=int(max_rounds),
                          stop_threshold=float(stop_threshold), crop_margin=int(crop_margin))
    write_json(path / "run.json", {"method": "zhou", **pipeline_info(cfg, modality)})
    return path
