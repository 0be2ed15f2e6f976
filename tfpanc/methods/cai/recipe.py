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
   ``--final_epochs`` (peak learning rate ``--pnet_final_learning_rate``, by
   default ``--learning_rate``). We monitor the total training loss (at stage k it is
   L(Y_hat) + L(U_1..U_k)) since it contains L_k and is what is optimised.
2. **BiRNN** (Sec. III-B): phase ``birnn`` stacks a bi-directional
   1-channel 3x3 ConvLSTM on the PNet-MSA probability maps of runs of
   ``--rnn_length`` consecutive slices and fine-tunes CNN and RNN together,
   supervising the BiRNN output, the fused map and every side map.
3. **Table II baselines**: ``--model=unet`` / ``--model=hnn`` train a 2D U-Net
   or HNN on the same slices with the same loss, in one phase.

Slices are sampled from the fold's training cases with ``--positive_fraction``
of them holding pancreas (oversampling), centre-padded/cropped to
``--slice_size``; with ``--train_images=synthetic`` the CNN's slices are
rendered on the fly instead (:mod:`tfpanc.data.synthetic`; issue #17).
Each phase resumes after an interruption (BackupAndRestore)
and a finished phase is skipped on a re-run (see
:mod:`tfpanc.training.run_dir`).
"""

from __future__ import annotations


import keras

from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.preprocess import round_up
from tfpanc.data.sampling import SliceRunSampler, SliceSampler
from tfpanc.losses import deep_supervision_loss
from tfpanc.methods.cai.networks import PNET_MODELS, build_cnn, input_multiple
from tfpanc.models import CNNRNN, BiRNNHead, PNetMSA, grow
from tfpanc.result_files import write_with
from tfpanc.training.fit import fit_phase, fixed_samples, make_input


def slice_size(cfg, cache, case_ids):
    """In-plane training size: ``--slice_size`` or the cache's, padded to fit the network."""
    if cfg.slice_size:
        return cfg.slice_size
    planes = [cache.case(c).meta["shape"][:2] for c in case_ids]
    return round_up(max(max(p) for p in planes), input_multiple(cfg.model, cfg.num_units))


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
    if cfg.train_images == "synthetic":
        from tfpanc.data.synthetic.training import synthetic_sampler

        sampler = synthetic_sampler(cfg, cache, train_ids, size, sampler, log)
    data = make_input(sampler, cfg.batch_size, cfg.steps_per_epoch)
    val = _validation_arrays(cache, val_ids, size, normalizer, cfg.seed + 1)
    loss = deep_supervision_loss(cfg.loss)
    if cfg.model not in PNET_MODELS:
        model = build_cnn(cfg.model, cfg.num_units, cfg.filters, cfg.unet_batch_norm)
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
    fit_phase(cfg, run, log, "pnet_final", model, loss, cfg.pnet_final_learning_rate or cfg.learning_rate,
              data, cfg.final_epochs, extra={"K": cfg.num_units}, val=val,
              weight_average=cfg.pnet_final_weight_average)
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
    write_with(run.path / "birnn_cnn.weights.h5", pnet.save_weights, ".weights.h5")
    write_with(run.path / "birnn_head.weights.h5", stack.birnn.save_weights, ".weights.h5")
    return stack


def train(cfg, run, log, data):
    """Runs the whole recipe for one fold; returns what ``run.json`` records."""
    cache, train_ids, val_ids = data.cache, data.train_ids, data.val_ids
    size = slice_size(cfg, cache, train_ids)
    normalizer = normalizer_for(cache, cfg)
    log(f"fold {cfg.fold}: {len(train_ids)} training cases, {len(val_ids)} validation cases, "
        f"{len(data.test_ids)} held-out cases, slices {size}x{size}, loss {cfg.loss}, modality {cache.modality}")
    cnn, phase = _train_cnn(cfg, run, log, cache, train_ids, val_ids, size, normalizer)
    info = {"model": cfg.model, "num_units": cfg.num_units, "filters": cfg.filters,
            "modality": cache.modality, "window": list(cfg.window), "threshold": cfg.threshold,
            "fold": cfg.fold, "data_dir": str(cfg.data_dir), "loss": cfg.loss,
            "cnn_weights": run.weights_path(phase).name, "birnn": None}
    if cfg.unet_batch_norm:
        info["batch_norm"] = True
    if cfg.model == "pnet_msa_birnn":
        _train_birnn(cfg, run, log, cache, train_ids, val_ids, size, normalizer, cnn)
        info.update({"cnn_weights": "birnn_cnn.weights.h5", "birnn": {
            "weights": "birnn_head.weights.h5", "cnn_only_weights": run.weights_path(phase).name}})
    return info
