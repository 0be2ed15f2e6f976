"""Methods trained as a cascade of stages, each in its own run directory under the run.

The two-stage and multitask methods train two networks one after the other
into ``<run>/<stage>``: each an ordinary :class:`tfpanc.training.run_dir.RunDir`
(checkpoints, resume, its resolved flags), with a ``stage.json`` of what the
method needs from it once it is done. A finished stage is skipped on a
re-run; flags only another stage reads may change without retraining it.
"""

from __future__ import annotations

from tfpanc.flags import RUN_ONLY_SETTINGS
from tfpanc.training.run_dir import RunDir


def train_stages(cfg, run, log, stages, trainers, other_stage_flags, *args):
    """Trains ``stages`` in order; returns each stage's ``stage.json`` record, or None if any is missing.

    Args:
        cfg: the method's config (``cfg.stage``, ``"all"`` or one of ``stages``,
            selects what runs now).
        run: the run's :class:`RunDir`.
        log: the train command's log; lines of a stage are prefixed ``[stage]``.
        stages: the names, in training order.
        trainers: ``{stage: trainer(cfg, stage_run, log, *args) -> record}``.
        other_stage_flags: ``{stage: flags it does not read}``, ignored when its
            recorded flags are compared.
    """
    for stage in stages if cfg.stage == "all" else (cfg.stage,):
        sub = RunDir(run.path / stage)
        sub.create(cfg.to_flagfile(), ignored=RUN_ONLY_SETTINGS + ("stage",) + tuple(other_stage_flags[stage]))
        if (sub.path / "stage.json").exists() and sub.is_done(stage):
            log(f"{stage}: finished in an earlier run; skipped")
            continue
        record = trainers[stage](cfg, sub, lambda m, s=stage: log(f"[{s}] {m}"), *args)
        sub.write_json("stage.json", record)
    missing = [s for s in stages if not (run.path / s / "stage.json").exists()]
    if missing:
        log(f"stage {', '.join(missing)} not trained yet; run.json is written once every stage exists")
        return None
    return {s: RunDir(run.path / s).read_json("stage.json") for s in stages}
