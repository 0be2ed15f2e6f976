"""The papers' tables beside ours: the shipped numbers, a row type, text / Markdown / CSV.

The published numbers ship as data, ``paper_results.json`` beside this
module (:func:`paper_tables`): one entry per table with its source, the
paper's data set and, per row, ``{metric: {mean, std, min, max}}`` in the
paper's units (percent for overlap metrics). A method's comparison module
fills rows with :class:`Ours` (per-case values in the same units); rows it
cannot fill carry a note (not trained, not reproducible, other authors').
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

PAPER_FILE = Path(__file__).with_name("paper_results.json")


@lru_cache(maxsize=1)
def _paper_data():
    return json.loads(PAPER_FILE.read_text())


def paper_tables(method=None):
    """The shipped tables (``method``'s only, if given), in the papers' order.

    Example:
    >>> [t["id"] for t in paper_tables("two_stage")]
    ['two_stage_1', 'two_stage_2', 'two_stage_3']
    """
    return [t for t in _paper_data()["tables"] if method is None or t["method"] == method]


def paper_title(method):
    return _paper_data()["papers"][method]


def fact(method, name):
    """A single published figure outside the tables (``source``, ``dataset``, ``values``).

    Example:
    >>> fact("cai", "neighbour_slice_AVD_mm_ground_truth")["values"]["CT"]
    {'mean': 0.35, 'std': 0.94}
    """
    return _paper_data()["facts"][method][name]


@dataclasses.dataclass
class Ours:
    """Our side of one row.

    Args:
        values: ``{metric: per-case values}`` (paper units), one number per metric, or
            ``{mean, std, min, max, n}`` summaries made elsewhere.
        dataset: the data set and case count the values come from.
        note: what the reader should know (which run, which setting).
    """

    values: dict
    dataset: str
    note: str = ""
    cases: int = 0

    def stats(self, metric):
        """``{mean, std, min, max, n}`` of one metric (sample std, as :mod:`tfpanc.metrics.summary`), or None.

        A single number (a statistic over cases already, like a median) gives
        ``{mean, n}`` with ``n = cases``.
        """
        v = self.values.get(metric)
        if v is None:
            return None
        if isinstance(v, dict):  # summarised already (a method's own table code did it)
            return dict(v)
        if np.ndim(v) == 0:
            return {"mean": float(v), "n": self.cases} if np.isfinite(v) else None
        a = np.asarray(v, float)
        a = a[np.isfinite(a)]
        if not a.size:
            return None
        return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
                "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


# Our per-case columns in the papers' units: overlap fractions become percent.
PERCENT = 100.0


def ours_from(exp, columns, rows=None, note=""):
    """:class:`Ours` of an experiment's pooled cases.

    Args:
        exp: a :class:`tfpanc.compare.experiments.Experiment`.
        columns: ``{paper metric: (per-case column, scale)}``.
        rows: the per-case rows to use (default: ``exp.rows``).
        note: shown in the row's note (the run folders are added).

    Returns:
        an :class:`Ours`, or None when no column is present.
    """
    rows = exp.rows if rows is None else rows
    values = {m: [v * scale for v in exp.values(col, rows)] for m, (col, scale) in columns.items()}
    values = {m: v for m, v in values.items() if v}
    if not values:
        return None
    runs = ", ".join(str(r) for r in exp.runs)
    return Ours(values, exp.dataset, f"{note}; {runs}" if note else runs, cases=len(rows))


def pick(experiments, **settings):
    """The experiment with most cases whose key has ``settings`` (None if none)."""
    found = [e for e in experiments if all(e.key.get(k) == v for k, v in settings.items())]
    return max(found, key=lambda e: len(e.rows)) if found else None


def format_stats(s, decimals=1):
    """``mean ± std [min, max]`` with what the record holds.

    Example:
    >>> format_stats({"mean": 83.7, "std": 5.4, "min": 58.4, "max": 90.4})
    '83.7 ± 5.4 [58.4, 90.4]'
    >>> format_stats({"mean": 71.9}), format_stats(None)
    ('71.9', '-')
    """
    if not s or "mean" not in s:
        return "-"
    text = f"{s['mean']:.{decimals}f}"
    if s.get("std") is not None:
        text += f" ± {s['std']:.{decimals}f}"
    if s.get("min") is not None and s.get("max") is not None:
        text += f" [{s['min']:.{decimals}f}, {s['max']:.{decimals}f}]"
    return text


def _decimals(table, metric):
    # d(t) is a fraction the paper gives to 4 places; AVD is in mm.
    return 4 if table["id"] == "zhou_d10" else 2 if metric == "AVD_mm" else 1


def table_rows(table, filled):
    """Flat rows of one table: per row and metric the paper's, ours, the difference and the cases.

    Args:
        table: a shipped table (:func:`paper_tables`).
        filled: ``{row label: Ours}`` from the method's comparison.

    Returns:
        ``[{"row", "metric", "paper", "ours", "difference", "cases", "note"}]``
        with ``paper``/``ours`` as formatted text and ``difference`` the
        mean difference (ours - paper), or None.
    """
    reasons = table.get("not_reproducible", {})
    others = set(table.get("other_work", []))
    labels = list(table["rows"]) + [k for k in filled if k not in table["rows"]]
    out = []
    for label in labels:
        paper = table["rows"].get(label, {})
        ours = filled.get(label)
        if ours is not None:
            note = ours.note
        elif label in reasons:
            note = f"not reproducible: {reasons[label]}"
        elif label in others:
            note = "other authors' method (context only)"
        else:
            note = "not trained: no run given fills this row"
        metrics = [m for m in table["metrics"] if m in paper or (ours is not None and ours.stats(m))]
        for metric in metrics or [table["metrics"][0]]:
            p = paper.get(metric)
            o = ours.stats(metric) if ours is not None else None
            diff = o["mean"] - p["mean"] if o and p and "mean" in p else None
            d = _decimals(table, metric)
            out.append({"row": label, "metric": metric, "paper": format_stats(p, d), "ours": format_stats(o, d),
                        "difference": None if diff is None else round(diff, 4),
                        "cases": o["n"] if o else "", "note": note})
    return out


def datasets(filled):
    return sorted({o.dataset for o in filled.values()})


def markdown(table, rows, filled):
    """One table as Markdown: title, source, both data sets, then the rows."""
    ours = "; ".join(datasets(filled)) or "no run fills it"
    lines = [f"### {table['title']}", "",
             f"Paper: {table['source']}, {table['dataset']}. Ours: {ours}.", "",
             "| row | metric | paper | ours | ours - paper | cases | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        diff = "" if r["difference"] is None else f"{r['difference']:+.2f}"
        lines.append(f"| {r['row']} | {r['metric']} | {r['paper']} | {r['ours']} | {diff} | {r['cases']} | "
                     f"{r['note']} |")
    return "\n".join(lines) + "\n"


def plain_text(table, rows, filled):
    """One table as aligned text for the terminal."""
    ours = "; ".join(datasets(filled)) or "no run fills it"
    head = [f"{table['title']}", f"  paper: {table['source']}, {table['dataset']}", f"  ours:  {ours}"]
    cols = ["row", "metric", "paper", "ours", "ours - paper", "cases"]
    body = [[r["row"], r["metric"], r["paper"], r["ours"],
             "" if r["difference"] is None else f"{r['difference']:+.2f}", str(r["cases"])] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    lines = head + [fmt.format(*cols)] + [fmt.format(*b) for b in body]
    notes = sorted({r["note"] for r in rows if r["note"] and r["ours"] == "-"})
    lines += [f"  - {n}" for n in notes]
    return "\n".join(lines) + "\n"
