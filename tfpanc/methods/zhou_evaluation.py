"""The zhou pipeline on a volume, and its evaluation in the form of the paper's Table 1.

:class:`ZhouPredictor` loads a pipeline directory (six FCN-8s models and
``pipeline.json``, see :mod:`tfpanc.methods.zhou`) and segments a raw
``[x, y, z]`` volume (HU for CT): the three coarse views over every slice,
their majority vote Z(0), then the fixed-point iteration of
:func:`tfpanc.inference.fixed_point.fixed_point` with the fine models until
``d(t) > R`` or ``t = T``. The intensity window is applied per batch, so the
volume is never normalised as a whole. An empty coarse result gives an empty
mask with ``rounds = 0`` and ``stop_reason = "empty"`` (OrganSegC2F's
behaviour, documented in :mod:`tfpanc.inference.fixed_point`).

:func:`evaluate_cases` runs every case to T (``run_all``) with its label and
the oracle box, and :func:`write_table1` writes ``table1.csv``,
``table1.json`` and ``per_case.csv`` (rows of
:func:`tfpanc.inference.fixed_point_table.table1_rows`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.patches import view_axis
from tfpanc.flags import FCN_MULTIPLE, ZHOU_VIEWS
from tfpanc.inference.fixed_point import (FineViewPredictor, fixed_point, oracle_segmentation,
                                          predict_fn_from_models)
from tfpanc.inference.fixed_point_table import format_table1, result_scores, table1_rows
from tfpanc.inference.slicewise import padded_size, predict_slices, slices_per_batch
from tfpanc.methods import zhou
from tfpanc.metrics import dice
from tfpanc.result_files import write_csv_rows, write_json
from tfpanc.training.run_dir import RunDir


def load_model(run_dir):
    """An FCN-8s with the weights of one (stage, view) run directory."""
    run = RunDir(run_dir)
    info = run.run_info()
    model = zhou.build_model(info)
    model.load_weights(run.path / info["weights"])
    return model, info


def forward(model):
    """``batch -> numpy logits`` of ``model`` as a plain eager call.

    Crops of the fine rounds come in many padded shapes; ``predict_on_batch``
    would trace a new graph for each, while an eager call just runs (the
    convolutions dominate, per-layer dispatch is negligible).
    """
    from keras import ops

    return lambda batch: ops.convert_to_numpy(model(batch, training=False))


# Slice pixels per FCN-8s call (VGG16 widths keep 64-512 channels at full to
# 1/32 resolution): 4 slices of 512^2.
SLICE_BUDGET_PIXELS = 2 ** 20


class ZhouPredictor:
    """Pancreas mask of a volume with a trained zhou pipeline.

    Args:
        pipeline_dir: a directory holding ``pipeline.json``.
        max_rounds, stop_threshold, crop_margin: override the pipeline's T,
            R and test-time frame.

    Example:
    >>> predictor = ZhouPredictor("runs/zhou/fold0")          # doctest: +SKIP
    >>> out = predictor(volume.array)                          # doctest: +SKIP
    >>> out["mask"].shape == volume.array.shape, out["rounds"], out["inter_dsc"]  # doctest: +SKIP
    (True, 2, [0.91, 0.97])
    """

    def __init__(self, pipeline_dir, max_rounds=None, stop_threshold=None, crop_margin=None):
        self.path = Path(pipeline_dir)
        self.info = zhou.read_pipeline(self.path)
        loaded = {name: load_model(self.path / sub) for name, sub in self.info["models"].items()}
        self.coarse = {v: loaded[f"coarse_{v}"][0] for v in ZHOU_VIEWS}
        self.fine = {v: loaded[f"fine_{v}"][0] for v in ZHOU_VIEWS}
        self.fine_sizes = {v: tuple(loaded[f"fine_{v}"][1]["input_size"]) for v in ZHOU_VIEWS}
        self.normalizer = IntensityNormalizer(self.info["modality"], window=tuple(self.info["window"]))
        self.max_rounds = int(self.info["max_rounds"] if max_rounds is None else max_rounds)
        self.stop_threshold = float(self.info["stop_threshold"] if stop_threshold is None else stop_threshold)
        self.crop_margin = int(self.info["crop_margin"] if crop_margin is None else crop_margin)
        self.fine_fn = predict_fn_from_models({v: forward(m) for v, m in self.fine.items()})

    def coarse_probabilities(self, image, stats):
        """``{view: probability volume}`` of the three coarse models."""
        out = {}
        for view in ZHOU_VIEWS:
            model = self.coarse[view]
            axis = view_axis(view)
            plane = [padded_size(n, FCN_MULTIPLE) for a, n in enumerate(image.shape[:3]) if a != axis]
            fn = predict_fn_from_models({view: forward(model)})
            out[view] = predict_slices(lambda b, v=view, f=fn: f(v, b), image, view,
                                       batch_size=slices_per_batch(plane, SLICE_BUDGET_PIXELS), multiple=FCN_MULTIPLE,
                                       fill=self.normalizer.background(stats),
                                       transform=lambda a: self.normalizer(a, stats))
        return out

    def fine_predictor(self, stats, batch_size=8):
        """The :class:`FineViewPredictor` of the fine models: crops padded to at least their
        training size (so the air frame looks as in training), else to a multiple of 32."""
        return FineViewPredictor(self.fine_fn, mode="pad", multiple=FCN_MULTIPLE, size=self.fine_sizes,
                                 fill=self.normalizer.background(stats), batch_size=batch_size,
                                 transform=lambda a: self.normalizer(a, stats))

    def __call__(self, image, label=None, run_all=False, keep_masks=False, oracle=False,
                 probability=False):
        """Segments ``image``.

        Args:
            image: raw ``[x, y, z]`` volume (HU for CT).
            label: optional ground truth: per-round DSCs are recorded.
            run_all: iterate to T even after d(t) > R (Table 1).
            keep_masks: keep every round's mask.
            oracle: also run the oracle-box round (needs ``label``).
            probability: also return the final mask's fused probability map.

        Returns:
            dict with ``mask`` (bool), ``rounds``, ``inter_dsc`` (d(1)..),
            ``stop_reason``, ``result`` (the :class:`FixedPointResult`),
            ``seconds``; with ``oracle``, ``oracle_mask``; with
            ``probability``, ``probability`` (float32, see
            :attr:`tfpanc.inference.fixed_point.FixedPointResult.probability`).
        """
        start = time.time()
        stats = self.normalizer.stats(image)
        probs = self.coarse_probabilities(image, stats)
        fine = self.fine_predictor(stats)
        info = self.info
        result = fixed_point(
            image, probs, fine, max_rounds=self.max_rounds, threshold=self.stop_threshold,
            margin=self.crop_margin, box=info.get("box", "slice"), fusion=info.get("fusion", "mean"),
            fine_threshold=info.get("fine_threshold", 0.5), coarse_threshold=info.get("coarse_threshold", 0.5),
            keep_components=info.get("keep_components", 0.5), on_empty=info.get("on_empty", "keep"),
            run_all=run_all, keep_masks=keep_masks, label=label, keep_probability=probability)
        out = {"mask": result.mask, "rounds": result.rounds, "inter_dsc": list(result.inter_dsc),
               "stop_reason": result.stop_reason, "result": result}
        if probability:
            out["probability"] = result.probability
        if oracle:
            if label is None:
                raise ValueError("oracle=True needs the label")
            out["oracle_mask"] = oracle_segmentation(
                image, fine, label, self.crop_margin, info.get("box", "slice"), info.get("fusion", "mean"),
                info.get("fine_threshold", 0.5), info.get("keep_components", 0.5))[0]
        out["seconds"] = time.time() - start
        return out


def format_rounds(out):
    """``rounds 2 (converged), d(t) 0.912 0.973`` for a log line."""
    d = " ".join(f"{v:.3f}" for v in out["inter_dsc"]) or "-"
    return f"rounds {out['rounds']} ({out['stop_reason']}), d(t) {d}"


def evaluate_cases(predictor, cache, case_ids, log=print, oracle=True):
    """Runs every case to T with its label; returns ``(scores, per_case_rows)``."""
    scores, rows = [], []
    for cid in case_ids:
        case = cache.case(cid)
        label = np.asarray(case.label) > 0
        out = predictor(np.asarray(case.image), label=label, run_all=True, oracle=oracle)
        oracle_dsc = dice(out["oracle_mask"], label) if oracle else None
        s = result_scores(out["result"], oracle_dsc=oracle_dsc)
        s["case"] = cid
        scores.append(s)
        views = s["coarse_view_dsc"] or {}
        rows.append({"case": cid, **{f"coarse_{v}": views.get(v, math.nan) for v in ZHOU_VIEWS},
                     "coarse_fused": s["round_dsc"][0], "final": dice(out["mask"], label),
                     "rounds": out["rounds"], "stop_reason": out["stop_reason"],
                     "oracle": math.nan if oracle_dsc is None else oracle_dsc,
                     "d_t": " ".join(f"{v:.4f}" for v in out["inter_dsc"]),
                     "round_dsc": " ".join(f"{v:.4f}" for v in s["round_dsc"]),
                     "seconds": round(out["seconds"], 2)})
        log(f"{cid}: coarse DSC {100 * s['round_dsc'][0]:.1f}% -> {100 * rows[-1]['final']:.1f}% "
            f"after {format_rounds(out)}" + (f"; oracle {100 * oracle_dsc:.1f}%" if oracle else ""))
    return scores, rows


def write_table1(out_dir, scores, rows, log=print):
    """Writes table1.csv / table1.json / per_case.csv; logs and returns the Table 1 rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table1_rows(scores)
    csv_rows = []
    for r in table:
        d, it = r["dsc"], r["iterations"] or {}
        csv_rows.append({"method": r["method"],
                         **{f"dsc_{k}": None if d[k] is None else round(100 * d[k], 4)
                            for k in ("mean", "std", "min", "max")},
                         "n": d["n"], "iterations_mean": it.get("mean"), "iterations_std": it.get("std")})
    write_csv_rows(out_dir / "table1.csv", csv_rows)
    if rows:
        write_csv_rows(out_dir / "per_case.csv", rows)
    write_json(out_dir / "table1.json", {"rows": table, "cases": scores})
    log(f"Table 1 over {len(scores)} cases:\n{format_table1(table)}")
    return table


def evaluate_pipeline(pipeline_dir, cache, case_ids, log=print, output_dir=None, oracle=True):
    """Table 1 of one pipeline over ``case_ids``; written under ``<pipeline>/eval``."""
    predictor = ZhouPredictor(pipeline_dir)
    scores, rows = evaluate_cases(predictor, cache, case_ids, log=log, oracle=oracle)
    return write_table1(output_dir or Path(pipeline_dir) / "eval", scores, rows, log=log)
