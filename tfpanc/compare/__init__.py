"""tfpanc.compare: our runs beside the papers' published tables.

``python -m tfpanc.compare --runs 'runs/multitask_*/fold*' [--paper NAME] [--output_dir D]``
reads each run's own records (:mod:`tfpanc.compare.experiments`), pools
the folds of each experiment, and prints every table of the runs' papers
(:mod:`tfpanc.compare.tables`, numbers shipped in ``paper_results.json``):
each paper row beside ours with the difference and the number of cases, the
paper's data set and ours in every header (phantom results are not NIH
results), and a note for each row we cannot fill (not trained, not
reproducible, another author's method). Each method says how its runs fill
its paper's rows (its registered ``compare`` module, e.g.
:mod:`tfpanc.methods.multitask.comparison`).

With ``output_dir``: ``report.md`` (readable alone, figures beside the
tables), one CSV per table, and per table a PNG of the paper's mean against
ours for its first metric.

Example:
>>> report = compare_runs(["runs/multitask_phantom/fold*"])      # doctest: +SKIP
>>> print(report.text)                                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

from tfpanc.compare import tables as paper
from tfpanc.compare.experiments import group_runs
from tfpanc.errors import InputError


@dataclasses.dataclass
class Report:
    """What :func:`compare_runs` found: per table its rows; the text and Markdown forms."""

    tables: list  # [(table, rows, filled)]
    experiments: list
    text: str
    markdown: str


def _comparison(method):
    from tfpanc.methods import registry

    entry = registry.get(method)
    if not entry.compare:
        raise InputError(method, "this method has no paper comparison")
    return importlib.import_module(entry.compare)


def compare_runs(runs, paper_name=None):
    """Fills the papers' tables from ``runs`` (folders or globs).

    Args:
        runs: run folders or patterns.
        paper_name: a method name to restrict the report to its paper.

    Returns:
        a :class:`Report`.
    """
    from tfpanc.methods import registry

    if paper_name is not None and paper_name not in registry.names():
        raise InputError("--paper", f"unknown paper {paper_name!r}; one of {', '.join(registry.names())}")
    experiments = group_runs(runs, lambda method, info: _comparison(method).experiment_key(info))
    methods = [paper_name] if paper_name else list(dict.fromkeys(e.method for e in experiments))
    found = []
    for method in methods:
        mine = [e for e in experiments if e.method == method]
        module = _comparison(method)
        for table in paper.paper_tables(method):
            filled = module.fill(table, mine)
            found.append((table, paper.table_rows(table, filled), filled))
    text = "\n".join(paper.plain_text(t, r, f) for t, r, f in found)
    md = "\n".join(paper.markdown(t, r, f) for t, r, f in found)
    return Report(found, experiments, text, md)


def write_report(report, output_dir):
    """``report.md``, ``<table>.csv`` and ``<table>.png`` under ``output_dir``; returns the folder."""
    from tfpanc.compare.figures import plot_table
    from tfpanc.result_files import write_csv_rows, write_text

    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# tfpanc against the papers", "",
             "Each table: the paper's numbers (its data set in the header) beside ours (our data set and "
             "case count); phantom results are not NIH results. Made by `python -m tfpanc.compare`.", ""]
    for table, rows, filled in report.tables:
        write_csv_rows(out / f"{table['id']}.csv", rows,
                       columns=["row", "metric", "paper", "ours", "difference", "cases", "note"])
        parts.append(paper.markdown(table, rows, filled))
        if plot_table(table, filled, out / f"{table['id']}.png"):
            parts += [f"![{table['title']}]({table['id']}.png)", ""]
    for method in dict.fromkeys(e.method for e in report.experiments):
        module = _comparison(method)
        if hasattr(module, "write_figures"):  # the paper's own figures
            made = module.write_figures([e for e in report.experiments if e.method == method], out)
            parts += [f"## {title}\n\n![{title}]({png})\n" for title, png in made]
    write_text(out / "report.md", "\n".join(parts))
    return out


__all__ = ["Report", "compare_runs", "write_report"]
