r"""Table I, the paired t-tests, the step sweep and Figs. 8, 9, 11, 13 of the multitask paper.

Usage::

    python -m tfpanc.methods.multitask.tables --model_dir=runs/multitask/fold0 \
        [--model_dir=runs/multitask/fold1 ...] [--variant=single_task:runs/multitask_noskel/fold0 ...] \
        [--steps=2x8x8,4x16x16,8x32x32] [--output_dir=runs/multitask/tables]

``--model_dir``: the full model, one run per fold, pooled. ``--variant=NAME:RUN``
(a NAME repeated for its folds pools them): ablations, the paper's
``single_task`` (``--noskeleton``), ``no_dense``, ``no_feature_consistency``,
``patch_16x32x32``, ``patch_16x128x128``, or any other name. Per-case rows come
from ``<run>/eval/tables.json`` or, without it, from predicting the held-out split.
Printed and written under ``--output_dir`` (default ``tables/`` in the runs'
common parent): Table I beside the paper's values, the share of cases whose C1
region holds the whole pancreas, paired t-tests of per-case DSC (Table II's
style), with ``--steps`` the full runs re-predicted at each test-time step (no
CRF, no retraining) against the paper's 706.69 / 53.62 / 7.89 s, and the bar
charts of what exists (``tables.json``, ``table1.csv``, ``per_case.csv``, ``fig*.png``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from absl import flags

from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.methods.multitask.config import from_paper_order, paper_label, parse_paper_size
from tfpanc.methods.multitask.evaluation import METRICS, table_rows

# The paper's NIH results (shared/reference/paper_results.json, "multitask"), by our row groups:
# the package cannot read that file at run time, so the values are copied here.
PAPER_ROWS = {
    "c1": ("C1 coarse", {"DSC": {"mean": 71.9}}),
    "single_task": ("single-task C2", {"DSC": {"mean": 83.0, "std": 5.7, "max": 91.15, "min": 59.32}}),
    "full": ("multitask C2 (before CRF)", {"DSC": {"mean": 85.9}, "JI": {"mean": 75.7},
                                           "precision": {"mean": 87.6}, "recall": {"mean": 85.2}}),
    "crf": ("multitask C2 + 3D dense CRF", {"DSC": {"mean": 86.4}, "JI": {"mean": 76.2},
                                            "precision": {"mean": 88.3}, "recall": {"mean": 85.3}}),
}
PAPER_STEP_SECONDS = {"2x8x8": 706.69, "4x16x16": 53.62, "8x32x32": 7.89}
REFERENCE_STEP = "4x16x16"  # the paper's choice; the time ratios are relative to it


def define_flags(fv):
    flags.DEFINE_multi_string("model_dir", [], "A full multitask run (one fold); repeatable.", flag_values=fv)
    flags.DEFINE_multi_string("variant", [], "NAME:RUN, an ablation run (single_task, no_dense, "
                              "no_feature_consistency, patch_16x32x32, ...); repeat a NAME for its folds.",
                              flag_values=fv)
    flags.DEFINE_list("steps", [], "Test-time C2 steps DxHxW to sweep on the full runs, e.g. "
                      "2x8x8,4x16x16,8x32x32 (the paper's order).", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where the tables and figures go.", flag_values=fv)


def run_info(run_dir):
    """The ``run.json`` of a multitask run with held-out cases; InputError otherwise."""
    from tfpanc.training.run_dir import RunDir

    info = RunDir(run_dir).run_info()
    if info.get("method") != "multitask":
        raise InputError(Path(run_dir) / "run.json", f"is a {info.get('method')} run, not multitask")
    if not (info.get("split") or {}).get("test"):
        raise InputError(Path(run_dir) / "run.json", "has no held-out cases (trained with --fold=-1)")
    return info


def run_cases(run_dir, info, log=print):
    """The per-case rows of one run's held-out cases: its ``eval/tables.json``, else predicted.

    Args:
        run_dir: the run; info: its :func:`run_info`; log: progress lines of a prediction.
    """
    saved = Path(run_dir) / "eval" / "tables.json"
    if saved.exists():
        try:
            return json.loads(saved.read_text())["cases"]
        except (ValueError, KeyError, TypeError):
            raise InputError(saved, "is not a multitask tables file; delete it to evaluate again") from None
    from tfpanc.data.cache import CaseCache
    from tfpanc.methods.multitask.evaluation import evaluate_cases
    from tfpanc.methods.multitask.predictor import MultitaskPredictor

    return evaluate_cases(MultitaskPredictor.load(run_dir), CaseCache(info["data_dir"]), info["split"]["test"],
                          log=log)


def pool(rows_by_run, fold_of=None):
    """The rows of several runs in one list, each tagged with its ``run`` (and ``fold``).

    Args:
        rows_by_run: ``{run_dir: per-case rows}``.
        fold_of: ``{run_dir: fold}``, optional.

    A case held out by two runs would count twice and break the pairing by
    case id, so it is an InputError naming the second run.
    """
    seen, out = {}, []
    for run, rows in rows_by_run.items():
        for r in rows:
            if r["case"] in seen:
                raise InputError(run, f"holds out case {r['case']} as {seen[r['case']]} does; give each fold once")
            seen[r["case"]] = run
            out.append({**r, "run": str(run), **({"fold": fold_of[run]} if fold_of else {})})
    return out


def paired_ttest(a_rows, b_rows, a_key="c2_dsc", b_key="c2_dsc"):
    """Paired tests (:func:`tfpanc.metrics.paired.paired_tests`) of ``a_key`` of ``a_rows`` against
    ``b_key`` of ``b_rows``, cases paired by ``case`` id.

    Returns ``{"n", "t", "p", "dof", "mean_diff", "std_diff", "w", "p_wilcoxon"}`` (differences
    ``a - b`` in %; t > 0: ``a`` is higher); the statistics are None with fewer than 2 pairs.
    """
    from tfpanc.metrics.paired import paired_tests

    r = paired_tests({x["case"]: x.get(a_key) for x in a_rows}, {x["case"]: x.get(b_key) for x in b_rows})
    return {"n": r["n"], "t": r["t"], "p": r["p_t"], "dof": r["dof"], "mean_diff": r["mean_diff"],
            "std_diff": r["std_diff"], "w": r["w"], "p_wilcoxon": r["p_wilcoxon"]}


def table1(full, variants=None):
    """Table I's rows: C1, each variant's C2, the full C2 before and after the CRF, with the paper's values.

    Args:
        full: the full model's pooled per-case rows.
        variants: ``{name: pooled rows}``.
    """
    rows = [("c1", full, "c1", "C1 coarse")]
    rows += [(name, cases, "c2", f"{name} C2 (before CRF)") for name, cases in (variants or {}).items()]
    rows += [("full", full, "c2", "multitask C2 (before CRF)"), ("crf", full, "crf", "multitask C2 + 3D dense CRF")]
    table = []
    for group, cases, prefix, name in rows:
        entry = table_rows(cases, rows=((prefix, name),))[0]
        paper_name, paper = PAPER_ROWS.get(group, (None, {}))
        table.append({**entry, "group": group, "paper_name": paper_name, "paper": paper})
    return table


def _cell(mean, std, high, low):
    if mean is None:
        return "n/a"
    return f"{mean:.1f} ± {std:.1f} [{high:.1f}, {low:.1f}]" if std is not None else f"{mean:.1f}"


def format_table1(table):
    """Table I as text: each metric ``mean ± std [max, min]`` (%), n, and the paper's values."""
    width = max(len(r["name"]) for r in table) + 2
    lines = [f"{'':{width}s}" + "".join(f"{label:>26s}" for _, label, _ in METRICS) + "    n  paper"]
    for r in table:
        cells = "".join(_cell(*(r[f"{k}_{s}"] for s in ("mean", "std", "max", "min"))).rjust(26)
                        for k, _, _ in METRICS)
        paper = ", ".join(f"{m} {_cell(v['mean'], v.get('std'), v.get('max'), v.get('min'))}"
                          for m, v in r["paper"].items())
        lines.append(f"{r['name']:{width}s}{cells}{r['n']:5d}  {paper or '-'}")
    return "\n".join(lines)


def coverage(rows):
    """``{"covered", "n"}``: cases whose C1 region holds the whole pancreas (``region_recall >= 1``)."""
    finite = [float(r["region_recall"]) for r in rows
              if r.get("region_recall") is not None and math.isfinite(float(r["region_recall"]))]
    return {"covered": sum(v >= 1.0 for v in finite), "n": len(finite)}


def _load(run_dir, step):
    from tfpanc.methods.multitask.predictor import MultitaskPredictor

    # No CRF: Fig. 9 compares the sliding windows, and the CRF would only add its own seconds.
    return MultitaskPredictor.load(run_dir, step=step, crf=False)


def step_sweep(run_dirs, steps, log=print, load_predictor=_load, load_cache=None):
    """The full runs' held-out cases predicted at each test-time step (Fig. 9 and the paper's timings).

    Args:
        run_dirs: the full multitask runs.
        steps: ``(x, y, z)`` steps (:func:`parse_paper_size` of the paper's ``DxHxW``).
        log: progress lines.
        load_predictor: ``(run_dir, step) -> predictor``; the predictor's
            ``mask`` must be C2's before the CRF. Default: the run's
            :class:`MultitaskPredictor` with ``crf=False``.
        load_cache: ``data_dir -> cache`` with ``case(id)``; default :class:`CaseCache`.

    Returns:
        one entry per step: ``step`` (``DxHxW``), ``n``, ``dsc`` (mean, std,
        min, max in %), mean ``seconds``, ``seconds_sliding_window`` and
        ``windows`` per volume, ``ratio`` (sliding-window seconds over those of the runs' own step,
        the paper's 4x16x16 by default; None without it), the paper's ``paper_seconds`` and
        ``paper_ratio``, and the per-case ``cases``.
    """
    from tfpanc.metrics import summarize

    if load_cache is None:
        from tfpanc.data.cache import CaseCache as load_cache
    infos = {d: run_info(d) for d in run_dirs}
    caches = {}
    sweep = []
    for step in steps:
        label, cases = paper_label(step), []
        for run in run_dirs:
            data_dir = infos[run]["data_dir"]
            cache = caches.setdefault(data_dir, load_cache(data_dir))
            predictor = load_predictor(run, tuple(step))
            for cid in infos[run]["split"]["test"]:
                case = cache.case(cid)
                out = predictor(case.image, spacing=case.spacing)
                label_mask = case.label > 0
                row = {"case": cid, "run": str(run), "step": label,
                       **{f"c2_{key}": fn(out["mask"], label_mask) for key, _, fn in METRICS},
                       "seconds": float(out["seconds"]),
                       "seconds_sliding_window": float(out["seconds_by_part"].get("sliding_window", 0.0)),
                       "windows": int(out["windows"])}
                cases.append(row)
                log(f"step {label}, {cid}: DSC {100 * row['c2_dsc']:.1f}%, {row['windows']} windows, "
                    f"{row['seconds']:.1f} s")
        s = summarize(cases, ["c2_dsc", "seconds", "seconds_sliding_window", "windows"])
        sweep.append({"step": label, "step_xyz": list(step), "n": s["c2_dsc"]["n"],
                      "dsc": {k: None if s["c2_dsc"][k] is None else 100 * s["c2_dsc"][k]
                              for k in ("mean", "std", "min", "max")},
                      **{k: s[k]["mean"] for k in ("seconds", "seconds_sliding_window", "windows")},
                      "paper_seconds": PAPER_STEP_SECONDS.get(label), "cases": cases})
    # Our ratios are over the runs' own step (the paper's 4x16x16 at 1 mm; phantom runs scale it).
    own = paper_label(infos[run_dirs[0]].get("step") or from_paper_order((4, 16, 16))) if run_dirs else REFERENCE_STEP
    ref = next((e for e in sweep if e["step"] == own), None)
    for e in sweep:
        e["ratio"] = (e["seconds_sliding_window"] / ref["seconds_sliding_window"]
                      if ref and ref["seconds_sliding_window"] else None)
        e["paper_ratio"] = (e["paper_seconds"] / PAPER_STEP_SECONDS[REFERENCE_STEP]
                            if e["paper_seconds"] else None)
    return sweep


def format_steps(sweep):
    """The step sweep as text, the paper's seconds and ratios beside ours."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [f"{'step':>9s} {'DSC % (no CRF)':>22s} {'s/volume':>9s} {'windows s':>9s} {'windows':>8s} "
             f"{'ratio':>6s} | {'paper s':>8s} {'ratio':>6s}"]
    for e in sweep:
        d = e["dsc"]
        lines.append(f"{e['step']:>9s} {_cell(d['mean'], d['std'], d['max'], d['min']):>22s} "
                     f"{num(e['seconds'], '9.2f')} {num(e['seconds_sliding_window'], '9.2f')} "
                     f"{num(e['windows'], '8.1f')} {num(e['ratio'], '6.2f')} | {num(e['paper_seconds'], '8.2f')} "
                     f"{num(e['paper_ratio'], '6.2f')}")
    return "\n".join(lines) + ("\n(ours: sliding-window seconds over those of the runs' own step; the "
                                f"paper's: over {REFERENCE_STEP})")


def parse_variants(texts):
    """``["NAME:RUN", ...]`` -> ``{NAME: [RUN, ...]}`` in order; InputError naming ``--variant``."""
    out = {}
    for text in texts:
        name, sep, run = str(text).partition(":")
        if not sep or not name or not run or name in ("full", "c1", "crf"):
            raise InputError("--variant", f"expected NAME:RUN with NAME not full, c1 or crf, got {text!r}")
        out.setdefault(name, []).append(run)
    return out


def run_tables(model_dirs, variants=(), steps=(), output_dir=None, log=print, load_predictor=_load):
    """Scores the runs and writes the tables and figures; returns the ``tables.json`` record.

    Args:
        model_dirs: the full multitask runs (one per fold).
        variants: ``["NAME:RUN", ...]`` (:func:`parse_variants`).
        steps: test-time steps to sweep, ``DxHxW`` texts (a list or one comma-separated string).
        output_dir: default ``tables/`` in the common parent of the runs.
        log: where the tables are printed.
        load_predictor: the step sweep's ``(run_dir, step) -> predictor``.
    """
    from tfpanc.methods.multitask.figures import write_figures
    from tfpanc.result_files import write_csv_rows, write_json

    if not model_dirs:
        raise InputError("--model_dir", "is required")
    model_dirs = [str(d) for d in model_dirs]
    steps = [parse_paper_size(s, "--steps") for s in (steps.split(",") if isinstance(steps, str) else steps)]
    groups = {"full": list(model_dirs), **parse_variants(variants)}
    infos = {d: run_info(d) for dirs in groups.values() for d in dirs}  # every run checked before any work
    out = Path(output_dir) if output_dir else Path(
        os.path.commonpath([os.path.dirname(os.path.abspath(d)) for d in infos])) / "tables"
    pooled = {g: pool({d: run_cases(d, infos[d], log) for d in dirs}, {d: infos[d].get("fold") for d in dirs})
              for g, dirs in groups.items()}
    full, variant_rows = pooled["full"], {g: r for g, r in pooled.items() if g != "full"}
    table = table1(full, variant_rows)
    log(f"Table I, {len(model_dirs)} full run(s), {len(full)} cases (%):\n{format_table1(table)}")
    region = {g: coverage(rows) for g, rows in pooled.items()}
    for g, c in region.items():
        log(f"{g}: the C1 region holds the whole pancreas in {c['covered']} of {c['n']} cases")
    tests = [{"a": "multitask C2 (before CRF)", "b": f"{g} C2 (before CRF)", **paired_ttest(full, rows)}
             for g, rows in variant_rows.items()]
    tests.append({"a": "multitask C2 + 3D dense CRF", "b": "multitask C2 (before CRF)",
                  **paired_ttest(full, full, "crf_dsc", "c2_dsc")})
    for t in tests:
        log(f"paired t-test of DSC, {t['a']} - {t['b']}: " + (
            f"t = {t['t']:.3f}, p = {t['p']:.4g}, n = {t['n']} paired cases, mean difference "
            f"{t['mean_diff']:+.2f} ± {t['std_diff']:.2f}%"
            + (f"; Wilcoxon W = {t['w']:.1f}, p = {t['p_wilcoxon']:.4g}" if t["p_wilcoxon"] is not None else "")
            if t["p"] is not None else
            f"{t['n']} paired case(s): too few for a t-test (p = None)"))
    sweep = step_sweep(list(model_dirs), steps, log, load_predictor) if steps else []
    if sweep:
        log(f"test-time steps on the full runs (paper: 706.69 / 53.62 / 7.89 s, 13.2 : 1 : 0.15):\n"
            f"{format_steps(sweep)}")
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(out, full, variant_rows, sweep, infos[model_dirs[0]].get("patch"))
    record = {"table1": table, "region": region, "ttests": tests, "steps": sweep,
              "runs": groups, "figures": [p.name for p in figures]}
    write_json(out / "tables.json", record)
    flat = [{**{k: v for k, v in r.items() if k != "paper"},
             **{f"paper_{m}": v["mean"] for m, v in r["paper"].items()}} for r in table]
    write_csv_rows(out / "table1.csv", flat, columns=_columns(flat))
    cases = [{"group": g, **r} for g, rows in pooled.items() for r in rows]
    write_csv_rows(out / "per_case.csv", cases, columns=_columns(cases))
    log(f"written under {out}: tables.json, table1.csv, per_case.csv"
        + "".join(f", {p.name}" for p in figures))
    return record


def _columns(rows):
    """Every key of ``rows`` in order of first appearance (rows may lack some: older runs, paper values)."""
    return list(dict.fromkeys(k for r in rows for k in r))


def main(argv, fv):
    run_tables(list(fv.model_dir) + list(argv[1:]), fv.variant, fv.steps, fv.output_dir)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
