"""Two results over the same cases: paired t-test and Wilcoxon (``compare --paired A --paired B``).

Each side is a run folder or a glob of its folds (pooled, as the papers
report cross-validation); cases pair by id, so both sides must hold out the
same cases (those only one side has do not count, and the count says so).
The metric is a per-case column of both sides' ``eval/per_case.csv``; by
default the first of :data:`DEFAULT_METRICS` both have (each method's final
DSC).
"""

from __future__ import annotations

from tfpanc.compare.experiments import group_runs
from tfpanc.errors import InputError
from tfpanc.metrics.paired import describe, paired_tests

# The final DSC column of cai, multitask, two_stage and zhou's per-case rows.
DEFAULT_METRICS = ("dsc", "crf_dsc", "stage2_dsc", "final")


def _side(spec, flag):
    experiments = group_runs([spec], lambda method, info: {})
    if len(experiments) != 1:
        raise InputError(flag, f"{spec} holds runs of {len(experiments)} methods or data sets; "
                         "name the folds of one experiment")
    return experiments[0]


def paired_comparison(spec_a, spec_b, metric=None):
    """``(record, line)`` of the paired tests of ``metric`` between two experiments."""
    a, b = _side(spec_a, "--paired"), _side(spec_b, "--paired")
    columns_a = set().union(*(r.keys() for r in a.rows))
    columns_b = set().union(*(r.keys() for r in b.rows))
    if metric is None:
        metric = next((m for m in DEFAULT_METRICS if m in columns_a and m in columns_b), None)
        if metric is None:
            raise InputError("--metric", "the two sides share no DSC column; name one of "
                             f"{', '.join(sorted((columns_a & columns_b) - {'case', 'fold'}))}")
    for exp, columns, spec in ((a, columns_a, spec_a), (b, columns_b, spec_b)):
        if metric not in columns:
            raise InputError("--metric", f"{metric} is not a per-case column of {spec}")
    result = paired_tests({r["case"]: r.get(metric) for r in a.rows}, {r["case"]: r.get(metric) for r in b.rows})
    record = {"a": {"runs": [str(r) for r in a.runs], "method": a.method, "dataset": a.dataset},
              "b": {"runs": [str(r) for r in b.runs], "method": b.method, "dataset": b.dataset},
              "metric": metric, **result}
    line = describe(result, spec_a, spec_b) + f" ({metric}; {a.dataset} / {b.dataset})"
    unpaired = len(a.rows) + len(b.rows) - 2 * result["n"]
    if unpaired:
        line += f"; {unpaired} case(s) on one side only, left out"
    return record, line
