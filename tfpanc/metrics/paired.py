"""Paired tests between two results over the same cases: t-test and Wilcoxon signed-rank.

The multitask paper's Table II compares variants with a paired t-test over
the cases of the cross-validation; the Wilcoxon signed-rank test is the
assumption-light companion (per-case DSC differences are rarely normal).
Both come from ``scipy.stats``. Cases pair by id; a case missing or not
finite on either side does not count.

Example:
>>> a = {"c1": 0.80, "c2": 0.70, "c3": 0.90, "c4": 0.60}
>>> b = {"c1": 0.75, "c2": 0.69, "c3": 0.80, "c4": 0.58, "c5": 0.1}
>>> r = paired_tests(a, b)
>>> r["n"], round(r["mean_diff"], 2), round(r["t"], 2), round(r["p_t"], 3), round(r["p_wilcoxon"], 3)
(4, 4.5, 2.23, 0.112, 0.125)
>>> describe(paired_tests({"c1": 0.0, "c2": 0.0}, {"c1": 0.0, "c2": 0.0}))
'A 0.0 % vs B 0.0 % over 2 cases: difference +0.0 ± 0.0 points; every difference the same, no test'
"""

from __future__ import annotations

import math

import numpy as np


def paired_tests(a, b):
    """Paired t-test and Wilcoxon signed-rank test of ``a`` against ``b``.

    Args:
        a, b: ``{case id: value}`` (fractions such as DSC; differences are
            reported in percentage points).

    Returns:
        ``{"n", "mean_a", "mean_b", "mean_diff", "std_diff", "t", "p_t",
        "dof", "w", "p_wilcoxon"}``: differences ``a - b`` (t > 0: ``a`` is
        higher); the statistics are None with fewer than 2 pairs, and the
        Wilcoxon ones also when every difference is 0.
    """
    from scipy import stats

    def finite(values):
        return {c: float(v) for c, v in values.items() if v is not None and math.isfinite(float(v))}

    a, b = finite(a), finite(b)
    common = sorted(set(a) & set(b))
    x, y = np.array([a[c] for c in common]), np.array([b[c] for c in common])
    diff = 100 * (x - y)
    out = {"n": len(common), "mean_a": float(100 * x.mean()) if common else None,
           "mean_b": float(100 * y.mean()) if common else None,
           "mean_diff": float(diff.mean()) if common else None,
           "std_diff": float(diff.std(ddof=1)) if len(common) > 1 else None,
           "t": None, "p_t": None, "dof": max(len(common) - 1, 0), "w": None, "p_wilcoxon": None}
    if len(common) >= 2:
        t, p = stats.ttest_rel(x, y)
        out.update(t=float(t), p_t=float(p))  # NaN when every difference is equal
        if np.any(diff != 0):
            w = stats.wilcoxon(x, y)
            out.update(w=float(w.statistic), p_wilcoxon=float(w.pvalue))
    return out


def describe(result, name_a="A", name_b="B"):
    """One line: means, the difference, both tests."""
    r = result
    if r["n"] < 2:
        return f"{name_a} vs {name_b}: {r['n']} common case(s), too few for a paired test"
    line = (f"{name_a} {r['mean_a']:.1f} % vs {name_b} {r['mean_b']:.1f} % over {r['n']} cases: difference "
            f"{r['mean_diff']:+.1f} ± {r['std_diff']:.1f} points; ")
    if not math.isfinite(r["t"]):
        return line + "every difference the same, no test"
    line += f"paired t-test t({r['dof']}) = {r['t']:.2f}, p = {r['p_t']:.3g}"
    if r["p_wilcoxon"] is not None:
        line += f"; Wilcoxon W = {r['w']:.1f}, p = {r['p_wilcoxon']:.3g}"
    return line
