r"""Our runs beside the papers' tables.

Usage::

    python -m tfpanc.compare --runs='runs/multitask_*/fold*' --runs=runs/two_stage/fold0 \
        [--paper=multitask] [--output_dir=reports/compare]

``--runs`` (repeatable; each a folder, a glob or a comma-separated list)
names evaluated runs (``run.json`` and ``eval/per_case.csv``). The tables of
every paper the runs belong to are printed (``--paper`` restricts it);
``--output_dir`` also writes ``report.md``, a CSV and a PNG per table. A run
without its evaluation, two folds sharing a case, or an unknown paper end
with one line.
"""

from __future__ import annotations

from absl import flags

from tfpanc import cli
from tfpanc.compare import compare_runs, write_report
from tfpanc.errors import InputError


def define_flags(fv):
    flags.DEFINE_multi_string("runs", [], "Evaluated run folders or glob patterns.", flag_values=fv)
    flags.DEFINE_string("paper", None, "Only this method's paper (cai, zhou, two_stage, multitask).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Also write report.md, CSVs and PNGs here.", flag_values=fv)


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    if not fv.runs:
        raise InputError("--runs", "is required")
    report = compare_runs(fv.runs, fv.paper)
    print(report.text)
    if fv.output_dir:
        print(f"report: {write_report(report, fv.output_dir) / 'report.md'}")


if __name__ == "__main__":
    cli.run_command(define_flags, main)
