"""Cai et al.: PNet-MSA grown unit by unit, then a BiRNN fine-tuned end to end.

The recipe, as a reader of the paper would look for it:

1. **PNet-MSA, progressive growth** (Sec. III-A). Phase ``pnet_k1`` trains a
   one-unit network on 3-slice axial stacks with the deeply supervised loss
   L(Y_hat) + sum_k L(U_k) (Eq. 4; JAC, CE or CBCE by ``--loss``). When the
   training loss plateaus (``--growth_patience`` epochs without a drop of
   ``--growth_min_delta``) or ``--epochs_per_unit`` run out, unit k+1 is
   added with fresh MSRA weights, earlier weights kept
   (:func:`tfpanc.models.grow`), and the whole network trains on, up to
   ``--num_units``. Phase ``pnet_final`` then trains the full network for
   ``--final_epochs``. We monitor the total training loss (at stage k it is
   L(Y_hat) + L(U_1..U_k)) since it contains L_k and is what is optimised.
2. **BiRNN** (Sec. III-B): phase ``birnn`` stacks a bi-directional
   1-channel 3x3 ConvLSTM on the PNet-MSA probability maps of runs of
   ``--rnn_length`` consecutive slices and fine-tunes CNN and RNN together,
   supervising the BiRNN output, the fused map and every side map.
3. **Table II baselines**: ``--model=unet`` / ``--model=hnn`` train a 2D U-Net
   or HNN on the same slices with the same loss, in one phase.

Slices are sampled from the fold's training cases with ``--positive_fraction``
of them holding pancreas (oversampling), centre-padded/cropped to
``--slice_size``. Each phase resumes after an interruption (BackupAndRestore)
and a finished phase is skipped on a re-run (see
:mod:`tfpanc.training.run_dir`).
"""

from __future__ import annotations


import keras

from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.sampling import SliceRunSampler, SliceSampler
from tfpanc.inference.slicewise import padded_size, slices_per_batch
from tfpanc.losses import deep_supervision_loss
from tfpanc.models import CNNRNN, HNN, BiRNNHead, PNetMSA, UNet2D, grow
from tfpanc.training.fit import fit_phase, fixed_samples, make_input, start_training

PNET_MODELS = ("pnet_msa", "pnet_msa_birnn")
HNN_MULTIPLE = 16


def build_cnn(model, num_units, filters):
    """The 2D network of a ``--model`` choice (PNet-MSA at K units, U-Net, HNN)."""
    if model in PNET_MODELS:
        return PNetMSA(num_units=num_units, filters=filters)
    if model == "unet":
        return UNet2D(depth=4, filters=filters)
    if model == "hnn":
        return HNN(filters=filters)
    raise ValueError(f"unknown cai model {model!r}")


def required_multiple(model, num_units):
    if model in PNET_MODELS:
        return 2 ** (num_units - 1)
    return 16 if model == "unet" else HNN_MULTIPLE


def slice_size(cfg, cache, case_ids):
    """In-plane training size: ``--slice_size`` or the cache's, padded to fit the network."""
    multiple = required_multiple(cfg.model, cfg.num_units)
    if cfg.slice_size:
        return cfg.slice_size
    planes = [cache.case(c).meta["shape"][:2] for c in case_ids]
    return padded_size(max(max(p) for p in planes), multiple)


def normalizer_for(cache, cfg):
    return IntensityNormalizer(cache.modality, window=tuple(cfg.window))


def _validation_arrays(cache, val_ids, size, normalizer, seed, count=32, length=None):
    """A fixed validation set (half pancreas slices) for the per-epoch DSC."""
    if not val_ids:
        return None
    if length:
        sampler = SliceRunSampler(cache, val_ids, "axial", length=length, size=(size, size),
                                  positive_fraction=0.5, seed=seed, normalizer=normalizer)
        count = max(2, count // length)
    else:
        sampler = SliceSampler(cache, val_ids, "axial", size=(size, size), positive_fraction=0.5,
                               seed=seed, normalizer=normalizer)
    return fixed_samples(sampler, count)


def _train_cnn(cfg, run, log, cache, train_ids, val_ids, size, normalizer):
    sampler = SliceSampler(cache, train_ids, "axial", size=(size, size),
                           positive_fraction=cfg.positive_fraction, seed=cfg.seed, normalizer=normalizer)
    data = make_input(sampler, cfg.batch_size, cfg.steps_per_epoch)
    val = _validation_arrays(cache, val_ids, size, normalizer, cfg.seed + 1)
    loss = deep_supervision_loss(cfg.loss)
    if cfg.model not in PNET_MODELS:
        model = build_cnn(cfg.model, cfg.num_units, cfg.filters)
        fit_phase(cfg, run, log, "cnn", model, loss, cfg.learning_rate, data,
                  cfg.epochs_per_unit + cfg.final_epochs, extra={"K": 0}, val=val)
        return model, "cnn"
    model = None
    for k in range(1, cfg.num_units + 1):
        model = PNetMSA(num_units=1, filters=cfg.filters) if model is None else grow(model)
        stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=cfg.growth_min_delta,
                                                patience=cfg.growth_patience)
        epochs = fit_phase(cfg, run, log, f"pnet_k{k}", model, loss, cfg.learning_rate, data,
                           cfg.epochs_per_unit, extra={"K": k}, val=val, callbacks=[stopper])
        if epochs is not None:
            why = (f"loss plateaued (no drop of {cfg.growth_min_delta} in {cfg.growth_patience} epochs)"
                   if stopper.stopped_epoch > 0 else f"--epochs_per_unit={cfg.epochs_per_unit} reached")
            nxt = f"adding unit {k + 1}" if k < cfg.num_units else "training the whole network"
            log(f"growth: K={k} stopped after {epochs} epochs: {why}; {nxt}")
    fit_phase(cfg, run, log, "pnet_final", model, loss, cfg.learning_rate, data, cfg.final_epochs,
              extra={"K": cfg.num_units}, val=val)
    return model, "pnet_final"


def _train_birnn(cfg, run, log, cache, train_ids, val_ids, size, normalizer, pnet):
    sampler = SliceRunSampler(cache, train_ids, "axial", length=cfg.rnn_length, size=(size, size),
                              positive_fraction=cfg.positive_fraction, seed=cfg.seed + 2,
                              normalizer=normalizer)
    data = make_input(sampler, cfg.rnn_batch_size, cfg.steps_per_epoch)
    val = _validation_arrays(cache, val_ids, size, normalizer, cfg.seed + 1, length=cfg.rnn_length)
    stack = CNNRNN(pnet, BiRNNHead(size, size), side_outputs=True)
    fit_phase(cfg, run, log, "birnn", stack, deep_supervision_loss(cfg.loss), cfg.rnn_learning_rate,
              data, cfg.rnn_epochs, extra={"K": cfg.num_units}, val=val)
    pnet.save_weights(run.path / "birnn_cnn.weights.h5")
    stack.birnn.save_weights(run.path / "birnn_head.weights.h5")
    return stack


def train(cfg, run, log):
    """Runs the whole recipe for one fold; writes ``run.json`` and evaluates."""
    cache, train_ids, val_ids = start_training(cfg)
    size = slice_size(cfg, cache, train_ids)
    normalizer = normalizer_for(cache, cfg)
    log(f"fold {cfg.fold}: {len(train_ids)} training cases, {len(val_ids)} validation cases, "
        f"slices {size}x{size}, loss {cfg.loss}, modality {cache.modality}")
    cnn, phase = _train_cnn(cfg, run, log, cache, train_ids, val_ids, size, normalizer)
    info = {"method": "cai", "model": cfg.model, "num_units": cfg.num_units, "filters": cfg.filters,
            "modality": cache.modality, "window": list(cfg.window), "threshold": cfg.threshold,
            "fold": cfg.fold, "data_dir": str(cfg.data_dir), "loss": cfg.loss,
            "cnn_weights": run.weights_path(phase).name, "birnn": None}
    if cfg.model == "pnet_msa_birnn":
        _train_birnn(cfg, run, log, cache, train_ids, val_ids, size, normalizer, cnn)
        info.update({"cnn_weights": "birnn_cnn.weights.h5", "birnn": {
            "weights": "birnn_head.weights.h5", "cnn_only_weights": run.weights_path(phase).name}})
    run.write_run_info(info)
    log(f"run complete: {run.path / 'run.json'}")
    if cfg.evaluate and val_ids:
        from tfpanc.methods.cai_evaluation import evaluate_run

        evaluate_run(run.path, cache, val_ids, log=log, threshold=cfg.threshold)
    return info


def load_models(run_dir, info):
    """(cnn, birnn_head or None, cnn_only or None) rebuilt from a run directory."""
    from pathlib import Path

    run_dir = Path(run_dir)
    cnn = build_cnn(info["model"], info["num_units"], info["filters"])
    cnn.load_weights(run_dir / info["cnn_weights"])
    if not info.get("birnn"):
        return cnn, None, None
    head = BiRNNHead(8, 8)  # any size: rebuilt for each volume's in-plane size
    head.load_weights(run_dir / info["birnn"]["weights"])
    cnn_only = build_cnn(info["model"], info["num_units"], info["filters"])
    cnn_only.load_weights(run_dir / info["birnn"]["cnn_only_weights"])
    return cnn, head, cnn_only


def network_multiple(info):
    return required_multiple(info["model"], info["num_units"])


# Slice pixels per CNN call: 8 slices at 512^2. At 5 units / 64 channels that
# peaked at 3.9 GiB on a 512x512x8 volume, against 8.6 GiB for 16-slice
# batches, at a similar speed per slice (tools/benchmark_predict_memory.py).
# The exported serving graph uses the same budget.
SLICE_BUDGET_PIXELS = 2 ** 21


def batches_for(shape):
    """Slices per CNN call for slices of ``shape[:2]`` (see SLICE_BUDGET_PIXELS)."""
    return slices_per_batch(shape[:2], SLICE_BUDGET_PIXELS)
