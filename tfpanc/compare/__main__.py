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

``--paired=A --paired=B [--metric=dsc]`` instead tests two results over the
same cases (paired t-test and Wilcoxon, :mod:`tfpanc.compare.paired`), as
the multitask paper's Table II; with ``--output_dir`` it writes
``paired.json``.

``--label_avd=CACHE`` prints a prepared data set's ground-truth
neighbouring-slice AVD beside Cai et al.'s (:mod:`tfpanc.compare.label_avd`).
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from tfpanc import cli
from tfpanc.compare import compare_runs, write_report
from tfpanc.compare.label_avd import describe as describe_label_avd
from tfpanc.compare.label_avd import label_slice_avd
from tfpanc.compare.paired import paired_comparison
from tfpanc.errors import InputError
from tfpanc.result_files import write_json


def define_flags(fv):
    flags.DEFINE_multi_string("runs", [], "Evaluated run folders or glob patterns.", flag_values=fv)
    flags.DEFINE_string("paper", None, "Only this method's paper (cai, zhou, two_stage, multitask).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Also write report.md, CSVs and PNGs here.", flag_values=fv)
    flags.DEFINE_multi_string("paired", [], "Twice: two results (a run folder or a glob of its folds) to test "
                              "against each other over their common cases.", flag_values=fv)
    flags.DEFINE_string("label_avd", None, "A prepared cache: its labels' neighbouring-slice AVD beside "
                        "Cai et al.'s (Sec. IV-D).", flag_values=fv)
    flags.DEFINE_string("metric", None, "Per-case column for --paired; default the methods' final DSC.",
                        flag_values=fv)


def main(argv, fv):
    if len(argv) > 1:
        raise InputError(None, f"unexpected arguments: {' '.join(argv[1:])}")
    if fv.label_avd:
        if fv.paired or fv.runs:
            raise InputError("--label_avd", "is a command of its own: give it without --runs or --paired")
        result = label_slice_avd(fv.label_avd)
        print(describe_label_avd(result))
        if fv.output_dir:
            Path(fv.output_dir).mkdir(parents=True, exist_ok=True)
            write_json(Path(fv.output_dir) / "label_avd.json", result)
        return
    if fv.paired:
        if len(fv.paired) != 2 or fv.runs:
            raise InputError("--paired", "give it exactly twice, without --runs")
        record, line = paired_comparison(*fv.paired, metric=fv.metric)
        print(line)
        if fv.output_dir:
            Path(fv.output_dir).mkdir(parents=True, exist_ok=True)
            write_json(Path(fv.output_dir) / "paired.json", record)
        return
    if fv.metric:
        raise InputError("--metric", "applies to --paired only")
    if not fv.runs:
        raise InputError("--runs", "is required")
    report = compare_runs(fv.runs, fv.paper)
    print(report.text)
    if fv.output_dir:
        print(f"report: {write_report(report, fv.output_dir) / 'report.md'}")


if __name__ == "__main__":
    cli.run_command(define_flags, main)
