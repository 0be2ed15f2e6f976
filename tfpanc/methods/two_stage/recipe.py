"""Two-stage 3D U-Net: the training recipe (the paper's Sec. 2.1-2.3).

1. **Coarse** (``<run>/coarse``): a :class:`tfpanc.models.UNet3D` on whole
   volumes decimated R = ``--decimation`` times along every axis (block mean
   of the HU image, block max of the mask, so the 1/R mask never misses a
   pancreas voxel; :mod:`tfpanc.data.preprocess`). The decimated cases are
   written once into ``<run>/coarse/volumes`` (a small case cache, 1/R^3 of
   the data) and each is centre-padded with air to one frame, the largest
   training volume rounded up to ``2 ** --depth``; test volumes are padded
   to the same frame (zhou's lesson: the models learn the frame).
2. **Fine** (``<run>/fine``): a second U-Net of the same architecture on
   the full-resolution region of the ground-truth box plus ``--fine_margin``
   (paper: 10) voxels per side. A region up to ``--fine_patch`` voxels is
   taken whole, centred in a patch of the largest training region's size
   rounded up to the network's multiple, with real image around it (not
   air: at test time the windows around a predicted box see the same); a
   larger region gives random ``--fine_patch`` patches inside it
   (:class:`tfpanc.data.sampling3d.PatchSampler` with ``roi_margin``).
3. **Loss** (Eq. 1, :mod:`tfpanc.methods.two_stage.losses`): each stage trains
   ``--center_epochs`` epochs (paper: 50) with ``L_Dice + gamma L_Center``
   (``--center_gamma``, paper 1e-3), as phase ``<stage>_center``, then the
   rest with gamma = 0, as phase ``<stage>``; two phases because a loss
   weight changed by a callback is not seen by a compiled JAX step. Adam with
   the per-phase warm-up and cosine decay of :mod:`tfpanc.training.fit` (the
   paper names no optimiser).

One command trains both stages into one run directory; a finished stage is
skipped on a re-run, an interrupted one resumes, and ``--stage=coarse`` /
``--stage=fine`` trains one (``run.json`` is written once both exist).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfpanc.data.boxes import as_box, expand_box
from tfpanc.data.derived_cache import decimated_cache
from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.preprocess import round_up
from tfpanc.data.sampling3d import PatchSampler
from tfpanc.errors import InputError
from tfpanc.methods.two_stage.config import STAGES
from tfpanc.methods.two_stage.losses import DiceCenterLoss
from tfpanc.models import UNet3D
from tfpanc.training.fit import fit_phase, fixed_samples, make_input
from tfpanc.training.stages import train_stages

VALIDATION_SAMPLES = 4
# Flags only one stage reads: changing them keeps the other stage's model.
_COARSE_FLAGS = ("coarse_epochs", "learning_rate", "decimation", "coarse_box_margin")
_FINE_FLAGS = ("fine_epochs", "fine_learning_rate", "fine_patch", "fine_margin")
OTHER_STAGE_FLAGS = {"coarse": _FINE_FLAGS, "fine": _COARSE_FLAGS}


def build_model(info):
    """The 3D U-Net of a run's ``run.json`` (or of a config's fields)."""
    return UNet3D(depth=info["depth"], filters=info["filters"], norm=info["norm"])


def coarse_frame(cache, case_ids, depth):
    """The padded ``(x, y, z)`` every coarse input is centred in: the largest volume, rounded up."""
    shapes = np.array([cache.case(c).meta["shape"] for c in case_ids])
    return tuple(round_up(int(n), 2 ** depth) for n in shapes.max(axis=0))


def fine_patch(cfg, cache, case_ids):
    """The fine training patch: the largest region (box + 2 margins), rounded up, at most ``--fine_patch``."""
    sizes = []
    for c in case_ids:
        meta = cache.case(c).meta
        if meta.get("pancreas_box") is not None:
            sizes.append(np.diff(expand_box(as_box(meta["pancreas_box"]), cfg.fine_margin,
                                            shape=meta["shape"]), axis=1)[:, 0])
    if not sizes:
        raise InputError(cfg.data_dir, "no training case holds pancreas")
    largest = np.max(sizes, axis=0)
    return tuple(min(round_up(int(n), 2 ** cfg.depth), int(p)) for n, p in zip(largest, cfg.fine_patch))


def _train_stage(cfg, run, log, stage, model, sampler, val, lr, epochs):
    """The center phase, then the Dice-only phase (see the module docstring)."""
    center = min(cfg.center_epochs, epochs) if cfg.center_gamma > 0 else 0
    data = make_input(sampler, cfg.batch_size, cfg.steps_per_epoch)
    fit_phase(cfg, run, log, f"{stage}_center", model, DiceCenterLoss(gamma=cfg.center_gamma), lr, data,
              center, extra={"stage": stage, "gamma": cfg.center_gamma}, val=val)
    fit_phase(cfg, run, log, stage, model, DiceCenterLoss(gamma=0.0), lr, data, epochs - center,
              extra={"stage": stage, "gamma": 0.0}, val=val)
    return run.weights_path(stage).name


def train_coarse(cfg, run, log, data, normalizer):
    volumes = decimated_cache(data.cache, data.train_ids + data.val_ids, cfg.decimation, run.path / "volumes",
                              log)
    frame = coarse_frame(volumes, data.train_ids, cfg.depth)
    log(f"coarse: {len(data.train_ids)} volumes decimated by {cfg.decimation}, padded to {frame}")
    sampler = PatchSampler(volumes, data.train_ids, frame, positive_fraction=0.0, seed=cfg.seed,
                           normalizer=normalizer)
    val = None
    if data.val_ids:
        val = fixed_samples(PatchSampler(volumes, data.val_ids, frame, positive_fraction=0.0,
                                         seed=cfg.seed + 1, normalizer=normalizer),
                            min(VALIDATION_SAMPLES, len(data.val_ids)))
    weights = _train_stage(cfg, run, log, "coarse", build_model(dataclasses.asdict(cfg)), sampler, val,
                           cfg.learning_rate, cfg.coarse_epochs)
    return {"weights": weights, "frame": list(frame)}


def train_fine(cfg, run, log, data, normalizer):
    patch = fine_patch(cfg, data.cache, data.train_ids)
    log(f"fine: patches {patch} inside the ground-truth box + {cfg.fine_margin} voxels")
    sampler = PatchSampler(data.cache, data.train_ids, patch, positive_fraction=0.0, roi_margin=cfg.fine_margin,
                           seed=cfg.seed, normalizer=normalizer)
    val = None
    if data.val_ids:
        try:
            val = fixed_samples(PatchSampler(data.cache, data.val_ids, patch, positive_fraction=0.0,
                                             roi_margin=cfg.fine_margin, seed=cfg.seed + 1,
                                             normalizer=normalizer), VALIDATION_SAMPLES)
        except ValueError:  # no validation case holds pancreas
            val = None
    weights = _train_stage(cfg, run, log, "fine", build_model(dataclasses.asdict(cfg)), sampler, val,
                           cfg.fine_learning_rate, cfg.fine_epochs)
    return {"weights": weights, "patch": list(patch)}


TRAINERS = {"coarse": train_coarse, "fine": train_fine}


def train(cfg, run, log, data):
    """Trains the stages ``--stage`` selects; returns the ``run.json`` record once both exist."""
    normalizer = IntensityNormalizer(data.cache.modality, window=tuple(cfg.window))
    log(f"two_stage fold {cfg.fold}: {len(data.train_ids)} training cases, {len(data.val_ids)} validation "
        f"cases, {len(data.test_ids)} held-out cases, depth {cfg.depth}, {cfg.filters} filters, "
        f"{cfg.norm} norm, modality {data.cache.modality}")
    records = train_stages(cfg, run, log, STAGES, TRAINERS, OTHER_STAGE_FLAGS, data, normalizer)
    if records is None:
        return None
    coarse, fine = records["coarse"], records["fine"]
    return {"model": cfg.model, "depth": cfg.depth, "filters": cfg.filters, "norm": cfg.norm,
            "modality": data.cache.modality, "window": list(cfg.window), "fold": cfg.fold,
            "data_dir": str(cfg.data_dir), "decimation": cfg.decimation, "threshold": cfg.threshold,
            "coarse_weights": f"coarse/{coarse['weights']}", "coarse_frame": coarse["frame"],
            "fine_weights": f"fine/{fine['weights']}", "fine_patch": fine["patch"],
            "coarse_box_margin": cfg.coarse_box_margin, "fine_margin": cfg.fine_margin,
            "center_gamma": cfg.center_gamma, "center_epochs": cfg.center_epochs}
