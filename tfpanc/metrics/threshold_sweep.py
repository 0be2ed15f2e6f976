"""DSC against the probability threshold (Cai et al. Fig. 5), and its plot.

Example:
>>> import numpy as np
>>> label = np.zeros((4, 4, 2), bool); label[1:3, 1:3] = True
>>> prob = np.where(label, 0.7, 0.2)
>>> curve = threshold_sweep(prob, label, thresholds=(0.1, 0.5, 0.9))
>>> [round(float(v), 3) for v in curve]
[0.4, 1.0, 0.0]
"""

from __future__ import annotations


import numpy as np

from tfpanc.metrics.overlap import dice
from tfpanc.result_files import save_figure

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def threshold_sweep(probability, label, thresholds=THRESHOLDS):
    """DSC of ``probability > t`` against ``label`` for each threshold ``t``."""
    truth = np.asarray(label) > 0
    return np.array([dice(probability > t, truth) for t in thresholds])


def plot_threshold_sweep(thresholds, curves, png_path, title):
    """Writes a PNG of ``{name: DSC per threshold}`` curves (atomically: temp file, rename).

    Args:
        thresholds: the x values.
        curves: ``{label: values}``, values as fractions (plotted in %).
        png_path: output file.
        title: plot title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(thresholds, 100 * np.asarray(values), marker="o", label=name)
    ax.set_xlabel("probability threshold")
    ax.set_ylabel("mean DSC (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        save_figure(fig, png_path)
    finally:
        plt.close(fig)
