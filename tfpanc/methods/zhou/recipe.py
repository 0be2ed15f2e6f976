"""Zhou et al.: coarse and fine FCN-8s per view, joined by a fixed-point iteration.

The training recipe (the paper's Sec. 2 and OrganSegC2F's ``run.sh``):

1. **Six models per fold**: for each of the axial, coronal and sagittal views
   a *coarse* and a *fine* FCN-8s (:class:`tfpanc.models.FCN8s`, logits of
   the centre slice of a 3-slice stack), each trained with the soft Dice loss
   per 2D sample (``--loss=dice``).
2. **Coarse** models see whole slices of their view that hold at least
   ``--min_pixels`` (paper: 100) pancreas pixels
   (:class:`tfpanc.data.sampling.SliceSampler`), centre-padded to a multiple
   of 32 (``--slice_size``, or per view the largest slice of the fold).
3. **Fine** models see each pancreas slice cut to its pancreas box plus a
   frame whose four margins are drawn uniformly from
   {``--fine_margin_min``..``--fine_margin_max``} (paper: 0..60) pixels,
   filled with image data (:class:`tfpanc.data.sampling.SliceCropSampler`).
   Caffe's FCN takes each crop at its own size (batch 1); ours needs fixed
   multiples of 32 to batch, so crops stay at native resolution and are
   centre-padded with air to ``--fine_size`` (default: per view, the largest
   box plus both margins, rounded up). At test time each crop is padded the
   same way, to that size (or, when larger, to its next multiple of 32;
   ``FineViewPredictor(mode="pad", size=...)``): train and test then see the
   pancreas at the same scale inside the same air frame. The frame's width
   is a cue the model learns; padding test crops less multiplied the marked
   volume by 3.6-5.3 on a phantom case.

One command trains a fold's pipeline: with ``--stage=all --view=all``,
``--model_dir=D`` gets the six runs ``D/<stage>_<view>/`` (each a normal run
directory with ``run.json``, ``history.csv``, ``progress.png`` and resume,
:mod:`tfpanc.training.run_dir`) and ``D/run.json``, the pipeline record
(``"kind": "pipeline"``: its models and test-time settings), which
:class:`tfpanc.methods.zhou.predictor.ZhouPredictor` and
``python -m tfpanc.predict --model_dir=D`` read. (Pipelines written before
every run recorded its method kept this record in ``D/pipeline.json``; copy
it to ``D/run.json`` to use them.) A re-run skips finished
models and resumes an interrupted one; six models trained one by one (one
``configs/zhou/<stage>_<view>.cfg`` each) into ``D/<stage>_<view>`` are
picked up the same way, so the pipeline command then only writes
``run.json`` (and evaluates). With one stage and one view,
``--model_dir`` is that model's run directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tfpanc.data.boxes import as_box
from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.patches import VIEWS, view_axis
from tfpanc.data.preprocess import round_up
from tfpanc.data.sampling import MarginRange, SliceCropSampler, SliceSampler
from tfpanc.errors import InputError
from tfpanc.flags import RUN_ONLY_SETTINGS, training_lines
from tfpanc.losses import get_loss
from tfpanc.methods.zhou.config import MODEL_NAMES, STAGES, fcn_multiple
from tfpanc.models.fcn8s import FCN8s, load_vgg16_weights
from tfpanc.training.fit import fit_phase, fixed_samples, make_input
from tfpanc.training.run_dir import RunDir

PIPELINE_FORMAT = 2
VALIDATION_SAMPLES = 16
# Flags that do not change a trained model: a finished model is reused when only these differ.
RUN_ONLY_FLAGS = RUN_ONLY_SETTINGS + ("stage", "view", "max_rounds", "stop_threshold", "crop_margin")
# Flags only one stage's models read (see train_model and make_sampler).
_COARSE_FLAGS = ("coarse_epochs", "learning_rate", "min_pixels", "slice_size")
_FINE_FLAGS = ("fine_epochs", "fine_learning_rate", "fine_margin_min", "fine_margin_max", "fine_size")
OTHER_STAGE_FLAGS = {"coarse": _FINE_FLAGS, "fine": _COARSE_FLAGS}


def _plane_axes(view):
    return tuple(a for a in range(3) if a != view_axis(view))


def coarse_size(cache, case_ids, view, slice_size=0):
    """``(H, W)`` of coarse training slices: ``slice_size`` squared, or the largest plane padded to 32."""
    if slice_size:
        return int(slice_size), int(slice_size)
    planes = np.array([[cache.case(c).meta["shape"][a] for a in _plane_axes(view)] for c in case_ids])
    return tuple(round_up(int(n), fcn_multiple()) for n in planes.max(axis=0))


def box_crop_size(box, shape, view, margin_max):
    """``(H, W)`` of one 3D ``box``'s in-plane extent plus two margins (at most the plane), padded to 32.

    Example:
    >>> box = [[10, 50], [20, 40], [0, 5]]
    >>> box_crop_size(box, (128, 128, 96), "axial", 15), box_crop_size(box, (128, 128, 96), "axial", 60)
    ((96, 64), (128, 128))
    """
    box = as_box(box)
    return tuple(round_up(max(min(int(box[a, 1] - box[a, 0]) + 2 * int(margin_max), int(shape[a])), 1),
                          fcn_multiple()) for a in _plane_axes(view))


def fine_size(cache, case_ids, view, margin_max, size=0):
    """``(H, W)`` fine training crops are padded to: ``size`` squared, or per view the
    largest :func:`box_crop_size` of the cases' pancreas boxes."""
    if size:
        return int(size), int(size)
    sizes = [box_crop_size(meta["pancreas_box"], meta["shape"], view, margin_max)
             for meta in (cache.case(c).meta for c in case_ids) if meta.get("pancreas_box") is not None]
    return tuple(int(n) for n in np.max(sizes, axis=0)) if sizes else (fcn_multiple(),) * 2


def build_model(info):
    """The FCN-8s of a run's ``run.json`` (or of a config's fields)."""
    return FCN8s(filters=info["filters"], fc_filters=info["fc_filters"], dropout=info["dropout"],
                 batch_norm=info.get("batch_norm", False))


def make_sampler(cfg, cache, case_ids, stage, view, size, normalizer, seed):
    """The training sampler of one (stage, view) model."""
    if stage == "coarse":
        return SliceSampler(cache, case_ids, view, size=size, min_pixels=max(cfg.min_pixels, 1),
                            seed=seed, normalizer=normalizer)
    return SliceCropSampler(cache, case_ids, view, margin=MarginRange(cfg.fine_margin_min, cfg.fine_margin_max),
                            box="slice", size=size, resize=False, seed=seed, normalizer=normalizer)


def _validation_arrays(cfg, cache, val_ids, stage, view, size, normalizer):
    """A fixed validation set for the per-epoch ``val_dsc`` (None without validation slices)."""
    if not val_ids:
        return None
    try:
        sampler = make_sampler(cfg, cache, val_ids, stage, view, size, normalizer, cfg.seed + 1)
    except ValueError:  # no validation slice passes the sampler's rule
        return None
    return fixed_samples(sampler, VALIDATION_SAMPLES)


def train_model(cfg, run, log, cache, train_ids, val_ids, stage, view):
    """Trains (or resumes, or skips) one (stage, view) model in ``run``; returns its run.json record."""
    normalizer = IntensityNormalizer(cache.modality, window=tuple(cfg.window))
    if stage == "coarse":
        size = coarse_size(cache, train_ids, view, cfg.slice_size)
        epochs, lr = cfg.coarse_epochs, cfg.learning_rate
    else:
        size = fine_size(cache, train_ids, view, cfg.fine_margin_max, cfg.fine_size)
        epochs, lr = cfg.fine_epochs, cfg.fine_learning_rate
    try:
        sampler = make_sampler(cfg, cache, train_ids, stage, view, size, normalizer, cfg.seed)
    except ValueError as e:  # no slice passes the rule: a data/flag problem, not a bug
        raise InputError(cfg.data_dir, f"{stage} {view}: {e}; lower --min_pixels") from None
    log(f"{stage} {view}: {sampler.epoch_size} training slices, input {size[0]}x{size[1]}, lr {lr}")
    model = build_model(dataclasses.asdict(cfg))
    if cfg.pretrained and not run.is_done(stage):
        report = load_vgg16_weights(model, cfg.pretrained)
        log(f"{stage} {view}: loaded {len(report['loaded'])} layers from {cfg.pretrained}")
    data = make_input(sampler, cfg.batch_size, cfg.steps_per_epoch)
    val = _validation_arrays(cfg, cache, val_ids, stage, view, size, normalizer)
    fit_phase(cfg, run, log, stage, model, get_loss(cfg.loss), lr, data, epochs,
              extra={"view": view}, val=val)
    return {"model": cfg.model, "kind": "model", "stage": stage, "view": view, "filters": cfg.filters,
            "fc_filters": cfg.fc_filters, "dropout": cfg.dropout, "batch_norm": cfg.batch_norm,
            "modality": cache.modality,
            "window": list(cfg.window), "fold": cfg.fold, "data_dir": str(cfg.data_dir), "loss": cfg.loss,
            "input_size": list(size), "weights": run.weights_path(stage).name,
            "crop_mode": "pad" if stage == "fine" else None}


def pipeline_info(cfg, modality):
    """The pipeline's ``run.json`` record: sub-runs and test-time settings."""
    return {"kind": "pipeline", "format": PIPELINE_FORMAT, "models": {name: name for name in MODEL_NAMES},
            "modality": modality, "window": list(cfg.window), "fold": cfg.fold,
            "data_dir": str(cfg.data_dir), "max_rounds": cfg.max_rounds,
            "stop_threshold": cfg.stop_threshold, "crop_margin": cfg.crop_margin,
            "box": "slice", "fusion": "mean", "coarse_threshold": 0.5, "fine_threshold": 0.5,
            "keep_components": 0.5, "on_empty": "keep"}


def read_pipeline(path):
    """The ``run.json`` record of a finished pipeline directory.

    Raises:
        InputError: not a finished zhou pipeline, or a sub-run is missing.
    """
    path = Path(path)
    info = RunDir(path).run_info()
    if info.get("kind") == "model" or "stage" in info:
        raise InputError(path, "is one zhou model; pass its pipeline directory (the folder above it)")
    if info.get("method") != "zhou" or "models" not in info:
        raise InputError(path / "run.json", "is not a zhou pipeline record; train one with "
                         "python -m tfpanc.train --flagfile=configs/zhou/pipeline.cfg")
    for name, sub in info["models"].items():
        if not (path / sub / "run.json").exists():
            raise InputError(path / sub, f"model {name} of the pipeline is missing (no run.json)")
    return info


def _training_flags(flagfile_text, stage):
    return training_lines(flagfile_text, RUN_ONLY_FLAGS + OTHER_STAGE_FLAGS[stage])


def _check_same_training(sub, sub_cfg):
    """A finished model is reused only when it was trained with the same training flags
    (the other stage's flags aside: tuning the fine models keeps the coarse ones)."""
    recorded = sub.path / "flags.cfg"
    stage = sub_cfg.stage
    if recorded.exists() and (_training_flags(recorded.read_text(), stage) !=
                              _training_flags(sub_cfg.to_flagfile(), stage)):
        raise InputError(recorded, "this model was trained with other flags; use a new --model_dir "
                         "or the same flags to resume")


def _jobs(cfg):
    stages = STAGES if cfg.stage == "all" else (cfg.stage,)
    views = VIEWS if cfg.view == "all" else (cfg.view,)
    return [(s, v) for s in stages for v in views]


def train(cfg, run, log, data):
    """Trains the models ``--stage``/``--view`` select; returns the pipeline record (or the one model's).

    With one stage and one view ``run`` is that model's run; else each model
    gets its sub-run (and its own ``run.json``) and the pipeline record is
    returned once all six exist (None before).
    """
    cache, train_ids, val_ids = data.cache, data.train_ids, data.val_ids
    jobs = _jobs(cfg)
    log(f"zhou fold {cfg.fold}: {len(train_ids)} training cases, {len(val_ids)} validation cases, "
        f"{len(data.test_ids)} held-out cases, models {', '.join(f'{s}_{v}' for s, v in jobs)}, "
        f"loss {cfg.loss}, modality {cache.modality}")
    if len(jobs) == 1:
        stage, view = jobs[0]
        return train_model(cfg, run, log, cache, train_ids, val_ids, stage, view)
    for stage, view in jobs:
        name = f"{stage}_{view}"
        sub = RunDir(run.path / name)
        sub_cfg = dataclasses.replace(cfg, stage=stage, view=view, model_dir=str(sub.path))
        if (sub.path / "run.json").exists() and sub.is_done(stage):
            _check_same_training(sub, sub_cfg)
            log(f"{name}: finished in an earlier run; skipped")
            continue
        sub.create(sub_cfg.to_flagfile())
        info = train_model(sub_cfg, sub, lambda m, name=name: log(f"[{name}] {m}"), cache, train_ids, val_ids,
                           stage, view)
        sub.write_run_info({"method": "zhou", **info})
    missing = [n for n in MODEL_NAMES if not (run.path / n / "run.json").exists()]
    if missing:
        log(f"pipeline incomplete (missing {', '.join(missing)}); no pipeline record written")
        return None
    log(f"pipeline complete: {run.path / 'run.json'}")
    return pipeline_info(cfg, cache.modality)
