"""The multitask paper's training recipe (Secs. II-A, II-B, III-C).

0. **Preprocessing**, once per case into a derived cache inside the data
   cache (:func:`tfpanc.methods.multitask.preprocess.model_grid_cache`):
   resampled to ``--spacing``, cropped to the body, with the skeleton
   target beside each case.
1. **C1** (``<run>/c1``): a :class:`tfpanc.models.UNet3D` with ``--c1_depth``
   (paper 3) poolings, ``--c1_convs`` convs per block, ReLU, no
   normalisation (``--norm``), Glorot initialisation, on the volume
   decimated ``--c1_decimation`` (paper 4) times, trained on random
   ``--c1_patch`` (paper 16x64x64) patches from the whole volume
   (``--c1_positive_fraction`` of them centred on pancreas; paper 0).
   Binary CE on its one logit (= the two-class softmax CE).
2. **C2** (``<run>/c2``): a :class:`tfpanc.models.MultitaskDenseUNet3D` on
   random ``--patch`` patches inside the ``--region`` (paper 128x224x224)
   centred on the ground-truth pancreas box, which is what C2 sees at test
   time around C1's box; ``L = lambda1 L_CE + lambda2 L_REG``
   (:mod:`tfpanc.methods.multitask.losses`).
3. **Optimiser** (Sec. III-C): SGD, momentum 0.9, the learning rate from
   ``--learning_rate`` (paper 1e-2) divided by 10 in equal steps down to
   ``--final_learning_rate`` (1e-6), batch ``--batch_size`` (paper 20),
   Xavier (Glorot uniform) initialisation. ``--optimizer=adam`` uses
   tfpanc's Adam schedule instead (phantom configs, where SGD on
   unnormalised nets needs more steps than a CPU run affords).

Validation: ``--val_fraction`` (paper 10 %) of the training cases, a fixed
set of patches, DSC per epoch. A finished stage is skipped on a re-run; an
interrupted one resumes; ``--stage`` trains one.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from tfpanc.data.derived_cache import decimated_cache
from tfpanc.data.sampling3d import PatchSampler
from tfpanc.errors import InputError
from tfpanc.methods.multitask.config import STAGES
from tfpanc.methods.multitask.losses import MultitaskLoss
from tfpanc.methods.multitask.preprocess import MeanMaxNormalizer, derived_folder, model_grid_cache
from tfpanc.methods.multitask.sampling import SkeletonPatchSampler
from tfpanc.training.fit import fit_phase, fixed_samples, make_input
from tfpanc.training.stages import train_stages

VALIDATION_SAMPLES = 8
INITIALIZER = "glorot_uniform"  # Xavier, Sec. III-C
_C1_FLAGS = ("c1_decimation", "c1_depth", "c1_filters", "c1_convs", "c1_patch", "c1_epochs", "c1_positive_fraction",
             "c1_scale")
_C2_FLAGS = ("levels", "growth", "convs_per_block", "dense", "feature_consistency", "skeleton", "lambda_seg",
             "lambda_reg", "patch", "region", "positive_fraction", "c2_epochs", "filters")
# Test-time settings: changing them retrains nothing.
_TEST_FLAGS = ("step", "weighting", "crf", "crf_iterations", "crf_w1", "crf_sigma_alpha", "crf_w2",
               "crf_sigma_beta", "crf_sigma_gamma", "c1_opening")
OTHER_STAGE_FLAGS = {"c1": _C2_FLAGS + _TEST_FLAGS, "c2": _C1_FLAGS + _TEST_FLAGS}


def c1_model_config(cfg):
    """The C1 :class:`tfpanc.models.UNet3D` constructor arguments (recorded in ``run.json``)."""
    return {"depth": cfg.c1_depth, "filters": cfg.c1_filters, "norm": cfg.norm, "convs": cfg.c1_convs,
            "kernel_initializer": INITIALIZER}


def c2_model_config(cfg):
    """The C2 :class:`tfpanc.models.MultitaskDenseUNet3D` constructor arguments."""
    return {"levels": cfg.levels, "filters": cfg.filters, "growth": cfg.growth,
            "convs_per_block": cfg.convs_per_block, "dense": cfg.dense,
            "feature_consistency": cfg.feature_consistency, "skeleton": cfg.skeleton, "norm": cfg.norm,
            "kernel_initializer": INITIALIZER}


def build_c1(config):
    from tfpanc.models import UNet3D

    return UNet3D(**config)


def build_c2(config):
    from tfpanc.models import MultitaskDenseUNet3D

    return MultitaskDenseUNet3D(**config)


def step_decay(learning_rate, final_learning_rate, total_steps):
    """The paper's step schedule: ``learning_rate`` divided by 10 in equal steps down to ``final``.

    Example:
    >>> s = step_decay(1e-2, 1e-6, 500)
    >>> [round(float(s(k)), 8) for k in (0, 100, 101, 250, 499)]
    [0.01, 0.01, 0.001, 0.0001, 1e-06]
    """
    count = max(1, int(round(math.log10(learning_rate / final_learning_rate))) + 1)
    values = [learning_rate * 0.1 ** i for i in range(count)]
    boundaries = [int(round(total_steps * i / count)) for i in range(1, count)]
    if count == 1:
        return keras.optimizers.schedules.PiecewiseConstantDecay([total_steps], values * 2)
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def optimizer_factory(cfg):
    """``fit_phase``'s optimiser: the paper's SGD (``--optimizer=sgd``) or tfpanc's Adam (None)."""
    if cfg.optimizer == "adam":
        return None

    def sgd(learning_rate, epochs, steps_per_epoch):
        schedule = step_decay(learning_rate, cfg.final_learning_rate, max(1, epochs * steps_per_epoch))
        return keras.optimizers.SGD(schedule, momentum=cfg.momentum)

    return sgd


def _validation(sampler_factory, ids, log, stage):
    if not ids:
        return None
    try:
        images, targets = fixed_samples(sampler_factory(ids), VALIDATION_SAMPLES)
    except ValueError:  # no validation case holds pancreas
        log(f"{stage}: no validation case holds pancreas; no validation DSC")
        return None
    return images, targets[..., :1]


def train_c1(cfg, run, log, data, volumes):
    c1_volumes = decimated_cache(volumes, data.train_ids + data.val_ids, cfg.c1_decimation,
                                 derived_folder(cfg) / f"decimated_{cfg.c1_decimation}", log)

    def sampler(ids, seed=cfg.seed, scale=0.0):
        return PatchSampler(c1_volumes, ids, cfg.c1_patch, positive_fraction=cfg.c1_positive_fraction,
                            seed=seed, normalizer=MeanMaxNormalizer(), scale=scale)

    config = c1_model_config(cfg)
    model = build_c1(config)
    val = _validation(lambda ids: sampler(ids, cfg.seed + 1), data.val_ids, log, "c1")
    fit_phase(cfg, run, log, "c1", model, MultitaskLoss(lambda_seg=cfg.lambda_seg), cfg.learning_rate,
              make_input(sampler(data.train_ids, scale=cfg.c1_scale), cfg.batch_size, cfg.steps_per_epoch),
              cfg.c1_epochs,
              val=val, optimizer=optimizer_factory(cfg))
    return {"weights": run.weights_path("c1").name, "model": config}


def train_c2(cfg, run, log, data, volumes):
    def sampler(ids, seed=cfg.seed):
        return SkeletonPatchSampler(volumes, ids, cfg.patch, positive_fraction=cfg.positive_fraction,
                                    roi_size=cfg.region, seed=seed, normalizer=MeanMaxNormalizer(),
                                    skeleton=cfg.skeleton)

    config = c2_model_config(cfg)
    model = build_c2(config)
    val = _validation(lambda ids: sampler(ids, cfg.seed + 1), data.val_ids, log, "c2")
    loss = MultitaskLoss(lambda_seg=cfg.lambda_seg, lambda_reg=cfg.lambda_reg)
    fit_phase(cfg, run, log, "c2", model, loss, cfg.learning_rate,
              make_input(sampler(data.train_ids), cfg.batch_size, cfg.steps_per_epoch), cfg.c2_epochs,
              val=val, optimizer=optimizer_factory(cfg), extra={"skeleton": cfg.skeleton})
    return {"weights": run.weights_path("c2").name, "model": config}


TRAINERS = {"c1": train_c1, "c2": train_c2}


def train(cfg, run, log, data):
    """Trains the stages ``--stage`` selects; returns the ``run.json`` record once both exist."""
    if data.cache.modality != "ct":
        raise InputError(cfg.data_dir, f"is a {data.cache.modality} cache; the multitask method is for CT "
                         "(its body crop thresholds HU)")
    log(f"multitask fold {cfg.fold}: {len(data.train_ids)} training cases, {len(data.val_ids)} validation "
        f"cases, {len(data.test_ids)} held-out cases; spacing {cfg.spacing} mm, C2 patch {cfg.patch}, region "
        f"{cfg.region}, skeleton {'on' if cfg.skeleton else 'off'}, dense {'on' if cfg.dense else 'off'}, "
        f"feature consistency {'on' if cfg.feature_consistency else 'off'}, {cfg.optimizer}")
    volumes = model_grid_cache(cfg, data.cache, data.train_ids + data.val_ids, log)
    records = train_stages(cfg, run, log, STAGES, TRAINERS, OTHER_STAGE_FLAGS, data, volumes)
    if records is None:
        return None
    c1, c2 = records["c1"], records["c2"]
    record = prediction_record(cfg)
    record.update(model=cfg.model, modality=data.cache.modality, data_dir=str(cfg.data_dir), fold=cfg.fold,
                  skeleton_sigma=cfg.skeleton_sigma, c1_weights=f"c1/{c1['weights']}", c1_model=c1["model"],
                  c2_weights=f"c2/{c2['weights']}", c2_model=c2["model"])
    return record


def _plain(d):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def prediction_record(cfg):
    """What :class:`tfpanc.methods.multitask.predictor.MultitaskPredictor` reads of a config (``run.json``)."""
    keep = ("spacing", "body_threshold", "c1_decimation", "c1_patch", "c1_opening", "patch", "region", "step",
            "weighting", "threshold", "crf")
    return {**_plain({k: v for k, v in dataclasses.asdict(cfg).items() if k in keep}),
            "crf_settings": _plain(dataclasses.asdict(cfg.crf_settings()))}
