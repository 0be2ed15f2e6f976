"""A randomly initialised cai run folder, for export tests and benchmarks.

Export and prediction only need ``run.json`` and the weights files, so a run
with fresh He-initialised weights exercises them at any scale (5 units / 64
filters included) without training. The files and keys are the ones
:func:`tfpanc.methods.cai.recipe.train` records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfpanc.methods.cai.networks import build_cnn


def write_random_run(run_dir, model="pnet_msa_birnn", num_units=2, filters=4, modality="ct",
                     window=(-100.0, 240.0), threshold=0.5, seed=0, spread=0.3):
    """Writes ``run.json`` and random weights for a cai model; returns the folder.

    Args:
        run_dir: folder to create (or reuse).
        model: a cai ``--model`` (``pnet_msa``, ``pnet_msa_birnn``, ``unet``, ``hnn``).
        num_units: PNet-MSA units K.
        filters: channels per convolution.
        modality: ``"ct"`` or ``"mri"`` as recorded in run.json.
        window: CT HU window.
        threshold: the run's probability threshold.
        seed: initialisation seed.
        spread: standard deviation of noise added to the BiRNN weights and the
            BN statistics, so that a fresh network's probabilities vary over
            the volume instead of sitting at one value.

    Example:
    >>> import tempfile                                         # doctest: +SKIP
    >>> run = write_random_run(tempfile.mkdtemp() + "/run")     # doctest: +SKIP
    >>> sorted(p.name for p in run.iterdir())[:2]               # doctest: +SKIP
    ['birnn_cnn.weights.h5', 'birnn_head.weights.h5']
    """
    import keras

    from tfpanc.models import BiRNNHead

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    cnn = build_cnn(model, num_units, filters)
    cnn.save_weights(run_dir / "pnet_final.weights.h5")
    info = {"method": "cai", "model": model, "num_units": num_units, "filters": filters,
            "modality": modality, "window": [float(v) for v in window], "threshold": threshold,
            "fold": 0, "data_dir": "", "loss": "jac", "cnn_weights": "pnet_final.weights.h5", "birnn": None}
    if model == "pnet_msa_birnn":
        # The fine-tuned CNN differs from the CNN-only one, as after training.
        for w in cnn.weights:
            if "moving" in w.path:
                value = keras.ops.convert_to_numpy(w)
                w.assign(np.abs(value + rng.normal(0, spread, value.shape)).astype("float32"))
        cnn.save_weights(run_dir / "birnn_cnn.weights.h5")
        head = BiRNNHead(8, 8)
        head.set_weights([v + rng.normal(0, spread, v.shape).astype(v.dtype) for v in head.get_weights()])
        head.save_weights(run_dir / "birnn_head.weights.h5")
        info.update({"cnn_weights": "birnn_cnn.weights.h5", "birnn": {
            "weights": "birnn_head.weights.h5", "cnn_only_weights": "pnet_final.weights.h5"}})
    (run_dir / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    return run_dir
