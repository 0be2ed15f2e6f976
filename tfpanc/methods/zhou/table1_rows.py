"""Table 1 of Zhou et al. (fixed-point model) from per-case results.

Each case is reduced to its *scores* (a plain dict, see :func:`case_scores`
and :func:`trace_scores`): the DSC with the ground truth of every round's
mask ``round_dsc = [DSC(Z(0)), ..., DSC(Z(n))]``, the inter-iteration DSCs
``inter_dsc = [d(1), ..., d(n)]``, optionally the single-view coarse DSCs and
the oracle-box DSC. :func:`table1_rows` turns a list of scores into the
table's rows, each summarised over cases as mean ± std [min, max]
(:func:`tfpanc.metrics.summarize`, sample std) with the mean number of
rounds, and :func:`format_table1` prints them in percent.

Row rules (OrganSegC2F's ``coarse2fine_testing.py``, with the paper's ">"):

* "After t Iterations": DSC of Z(t).
* "After d(t) > r": DSC of Z(t*) with t* the first round whose d(t) > r, or
  T when none is; the iterations column averages t*.
* "Best among All Iterations": the round 1..T with the highest DSC (the
  first such round for ties); its round is the iterations column.
* "Oracle Bounding Box": one fine round cut around the ground truth.

Rows need every round up to T: :func:`trace_scores` runs
:func:`tfpanc.methods.zhou.fixed_point.fixed_point_rounds` that far. A case that stopped before T still counts when it is
*settled* (its last mask repeats for ever: an exact fixed point, or an empty
mask with ``on_empty="keep"``); then its last mask stands for the missing
rounds. An empty coarse result that ran no round has t* = 0 and its best
round is Z(0). Other missing values are NaN, which the summaries leave out
and count (``n_nonfinite``).
"""

from __future__ import annotations

import math

import numpy as np

from tfpanc.data.patches import VIEWS
from tfpanc.metrics import dice, format_stat, summarize

ROUNDS = (1, 2, 3, 5, 10)
THRESHOLDS = (0.90, 0.95, 0.99)


def case_scores(label, round_masks, coarse_views=None, oracle_mask=None, max_rounds=10,
                stop_reason=None):
    """Scores of one case from its masks.

    Args:
        label: ground-truth mask.
        round_masks: ``[Z(0), Z(1), ..., Z(n)]``.
        coarse_views: optional ``{view: coarse mask}``.
        oracle_mask: optional oracle-box result.
        max_rounds: T of the run.
        stop_reason: the run's ``stop_reason``; ``"empty"`` or ``"fixed"``
            mark the case settled (identical last two masks always do).

    Returns:
        the scores dict (keys ``round_dsc``, ``inter_dsc``, ``max_rounds``,
        ``settled``, ``coarse_view_dsc``, ``oracle_dsc``).

    Example:
    >>> y = np.zeros((4, 4, 4), bool); y[:2] = True
    >>> s = case_scores(y, [y[::-1], y, y], max_rounds=2)
    >>> s["round_dsc"], s["inter_dsc"], s["settled"]
    ([0.0, 1.0, 1.0], [0.0, 1.0], True)
    """
    label = np.asarray(label).astype(bool, copy=False)
    masks = [np.asarray(m).astype(bool, copy=False) for m in round_masks]
    if not masks:
        raise ValueError("round_masks needs at least Z(0)")
    inter = [dice(a, b) for a, b in zip(masks[:-1], masks[1:])]
    settled = stop_reason in ("empty", "fixed") or (bool(inter) and inter[-1] == 1.0)
    return {
        "round_dsc": [dice(m, label) for m in masks],
        "inter_dsc": inter,
        "max_rounds": int(max_rounds),
        "settled": bool(settled),
        "coarse_view_dsc": None if coarse_views is None else {
            v: dice(m, label) for v, m in coarse_views.items()},
        "oracle_dsc": None if oracle_mask is None else dice(oracle_mask, label),
    }


def trace_scores(rounds, label, max_rounds, oracle_dsc=None):
    """Scores of one case from the iteration itself, run to T with its label.

    Consumes :func:`tfpanc.methods.zhou.fixed_point.fixed_point_rounds` up to
    round ``max_rounds``; it ends early at an exact fixed point (``d(t) = 1``:
    the models are deterministic, so every later round repeats it), which
    marks the case settled, as does the generator ending on an empty mask.
    No mask is kept.

    Args:
        rounds: the generator (or any iterable of
            :class:`~tfpanc.methods.zhou.fixed_point.Round`).
        label: ground-truth mask.
        max_rounds: T.
        oracle_dsc: DSC of the case's oracle-box result, if computed.
    """
    from tfpanc.data.boxes import box_from_mask
    from tfpanc.methods.zhou.fixed_point import dice_in_boxes

    label = np.asarray(label).astype(bool, copy=False)
    label_box = box_from_mask(label)
    round_dsc, inter, coarse_view_dsc, settled = [], [], None, True
    for r in rounds:
        round_dsc.append(dice_in_boxes(r.mask, r.box, label, label_box))
        if r.t == 0:
            coarse_view_dsc = {v: dice_in_boxes(m, box_from_mask(m), label, label_box)
                               for v, m in r.coarse_views.items()}
        else:
            inter.append(r.inter_dsc)
            if r.inter_dsc == 1.0:
                break
        if r.t == int(max_rounds):
            settled = False
            break
    return {
        "round_dsc": round_dsc,
        "inter_dsc": inter,
        "max_rounds": int(max_rounds),
        "settled": settled or (bool(inter) and inter[-1] == 1.0),
        "coarse_view_dsc": coarse_view_dsc,
        "oracle_dsc": oracle_dsc,
    }


def stop_round(scores, threshold):
    """``(t*, stop_reason)`` of the rule d(t) > ``threshold`` for a case's scores (``t*`` None when
    the run is too short to tell)."""
    inter = scores["inter_dsc"]
    for t, d in enumerate(inter, start=1):
        if d > threshold:
            return t, "converged"
    n = len(inter)
    if n >= scores["max_rounds"]:
        return n, "max_rounds"
    if scores["settled"]:
        return n, "fixed" if inter and inter[-1] == 1.0 else "empty"
    return None, None


def _round_dsc(scores, t):
    r = scores["round_dsc"]
    if t < len(r):
        return r[t]
    return r[-1] if scores["settled"] else math.nan


def _stop_round(scores, threshold):
    """t* of the rule d(t) > threshold, or None when the run is too short to tell."""
    return stop_round(scores, threshold)[0]


def _best_round(scores):
    r = scores["round_dsc"]
    n = len(r) - 1
    if n == 0:
        return 0 if scores["settled"] or scores["max_rounds"] == 0 else None
    if n < scores["max_rounds"] and not scores["settled"]:
        return None
    return 1 + int(np.argmax(r[1:]))


def _row(name, dscs, iterations=None):
    stats = summarize([{"dsc": v} for v in dscs], ["dsc"])["dsc"]
    it = None
    if iterations is not None:
        it = summarize([{"it": v} for v in iterations], ["it"])["it"]
    return {"method": name, "dsc": stats, "iterations": it}


def table1_rows(cases, rounds=ROUNDS, thresholds=THRESHOLDS):
    """The rows of Table 1 from per-case scores.

    Args:
        cases: list of scores dicts (:func:`case_scores`, :func:`trace_scores`).
        rounds: the "After t Iterations" rows (paper: 1, 2, 3, 5, 10).
        thresholds: the "After d(t) > r" rows (paper: 0.90, 0.95, 0.99).

    Returns:
        list of ``{"method", "dsc", "iterations"}``; ``dsc`` and
        ``iterations`` are :func:`tfpanc.metrics.summarize` stats dicts
        (fractions; ``iterations`` None where it does not apply). Method
        names follow ``paper_results.json`` ("Coarse Segmentation",
        "After 1 Iteration", "After d(t) > 0.95", ...); single-view rows
        ("Coarse (axial)") come first when the scores hold them, the oracle
        row last when they hold it.

    Example:
    >>> s = {"round_dsc": [0.5, 0.8], "inter_dsc": [0.96], "max_rounds": 1, "settled": False}
    >>> rows = table1_rows([s], rounds=(1,), thresholds=(0.95,))
    >>> [(r["method"], round(r["dsc"]["mean"], 2)) for r in rows][1:3]
    [('After 1 Iteration', 0.8), ('After d(t) > 0.95', 0.8)]
    """
    cases = list(cases)
    rows = []
    for view in VIEWS:
        values = [(c.get("coarse_view_dsc") or {}).get(view) for c in cases]
        if any(v is not None for v in values):
            rows.append(_row(f"Coarse ({view})", [math.nan if v is None else v for v in values]))
    rows.append(_row("Coarse Segmentation", [c["round_dsc"][0] for c in cases]))
    for t in rounds:
        dscs = [_round_dsc(c, t) for c in cases]
        rows.append(_row(f"After {t} Iteration{'s' if t != 1 else ''}", dscs,
                         [t if math.isfinite(v) else math.nan for v in dscs]))
    for r in thresholds:
        stops = [_stop_round(c, r) for c in cases]
        dscs = [math.nan if t is None else c["round_dsc"][t] for c, t in zip(cases, stops)]
        its = [math.nan if t is None else t for t in stops]
        rows.append(_row(f"After d(t) > {r:.2f}", dscs, its))
    best = [_best_round(c) for c in cases]
    rows.append(_row("Best among All Iterations",
                     [math.nan if t is None else c["round_dsc"][t] for c, t in zip(cases, best)],
                     [math.nan if t is None else t for t in best]))
    oracle = [c.get("oracle_dsc") for c in cases]
    if any(v is not None for v in oracle):
        rows.append(_row("Oracle Bounding Box", [math.nan if v is None else v for v in oracle]))
    return rows


def format_table1(rows):
    """Plain-text Table 1: DSC in percent as mean ± std [min, max], rounds as mean ± std.

    Example:
    >>> s = {"round_dsc": [0.5, 0.8], "inter_dsc": [0.96], "max_rounds": 1, "settled": False}
    >>> print(format_table1(table1_rows([s], (1,), ())).splitlines()[2])
    After 1 Iteration          80.00 ± 0.00 [80.00, 80.00]  1.00 ± 0.00  1
    """
    table = [("method", "DSC % mean ± std [min, max]", "iterations", "n")]
    for row in rows:
        it = row["iterations"]
        its = "-" if it is None or it["mean"] is None else f"{it['mean']:.2f} ± {it['std']:.2f}"
        n = str(row["dsc"]["n"])
        if row["dsc"]["n_nonfinite"]:
            n += f" (+{row['dsc']['n_nonfinite']} missing)"
        table.append((row["method"], format_stat(row["dsc"], 100.0, 2), its, n))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3]
                     for r in table)
