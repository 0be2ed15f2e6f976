"""A finished run's prediction pipeline and its held-out cases, for the tools that probe a run.

    from run_held_out import held_out, matching_runs   # tools/ is the script's folder on sys.path
    for run in matching_runs(["runs/synthetic/unet_shapes*"]):
        predict, cases = held_out(run)
"""

from __future__ import annotations

import glob
import json
from pathlib import Path


def matching_runs(patterns):
    """The sorted run folders matching any glob of ``patterns``; a one-line exit if none does."""
    runs = sorted({p for pattern in patterns for p in glob.glob(pattern)})
    if not runs:
        raise SystemExit(f"error: --model_dirs: no folder matches {patterns}")
    return runs


def held_out(run):
    """``(predict, cases)``: ``predict(image, spacing=...)`` as ``tfpanc.predict`` runs it, and
    ``(case_id, case)`` of the run's held-out fold, each read from its cache when iterated."""
    from tfpanc.data.cache import CaseCache
    from tfpanc.methods import registry
    from tfpanc.predict import local_pipeline

    method, info = registry.method_of_run(run)
    predict = local_pipeline(method.call("predictor", run, info, None), method, info, log=lambda s: None)
    cache = CaseCache(info["data_dir"])
    ids = json.loads((Path(run) / "split.json").read_text())["test"]
    return predict, ((case_id, cache.case(case_id)) for case_id in ids)
