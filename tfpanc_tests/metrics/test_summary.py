"""all_metrics on known shapes; summaries and the papers' table format."""

import json

import numpy as np
import pytest

from tfpanc.metrics import summary
from tfpanc.metrics.summary import METRICS, all_metrics, format_stat, format_table, summarize

SPACING = (0.8, 0.8, 1.5)


def _box_mask(shape, box):
    m = np.zeros(shape, bool)
    m[tuple(slice(lo, hi) for lo, hi in box)] = True
    return m


def test_all_metrics_on_offset_boxes():
    # 10x10x10 cube moved by 2 voxels along z (1.5 mm slices) in a big grid.
    label = _box_mask((64, 64, 40), [[20, 30], [20, 30], [10, 20]])
    pred = _box_mask((64, 64, 40), [[20, 30], [20, 30], [12, 22]])
    m = all_metrics(pred, label, SPACING)
    assert list(m) == list(METRICS)
    assert m["dsc"] == pytest.approx(0.8)
    assert m["jaccard"] == pytest.approx(800 / 1200)
    assert m["precision"] == pytest.approx(0.8) and m["recall"] == pytest.approx(0.8)
    assert m["volume_ml"] == pytest.approx(1000 * 0.96 / 1000)
    assert m["label_volume_ml"] == pytest.approx(0.96)
    assert m["hd"] == pytest.approx(3.0)
    assert m["avd"] == pytest.approx((1 + 2) * 100 * 1.5 / 1000)  # two slabs at 1 and 2 slices
    assert m["box_iou"] == pytest.approx(800 / 1200)
    assert m["box_recall"] == pytest.approx(0.8)
    assert m["abnormal_shape_changes"] == 0.0


def test_all_metrics_subset_and_unknown_name():
    a = _box_mask((10, 10, 10), [[2, 6], [2, 6], [2, 6]])
    assert list(all_metrics(a, a, SPACING, ["hd95", "dsc"])) == ["hd95", "dsc"]
    with pytest.raises(ValueError, match="unknown metrics"):
        all_metrics(a, a, SPACING, ["dice"])


def test_all_metrics_with_empty_masks():
    empty = np.zeros((12, 12, 12), bool)
    a = _box_mask((12, 12, 12), [[2, 6], [2, 6], [2, 6]])
    both = all_metrics(empty, empty, SPACING)
    assert both["dsc"] == 1.0 and both["hd95"] == 0.0 and both["avd"] == 0.0
    missed = all_metrics(empty, a, SPACING)
    assert missed["dsc"] == 0.0 and missed["recall"] == 0.0 and missed["box_recall"] == 0.0
    assert np.isinf(missed["hd"]) and np.isinf(missed["hd95"]) and np.isinf(missed["avd"])


def test_summarize_statistics():
    rows = [{"case": "a", "dsc": 0.8, "hd95": 2.0},
            {"case": "b", "dsc": 0.9, "hd95": 4.0},
            {"case": "c", "dsc": 0.7, "hd95": 6.0}]
    s = summarize(rows)
    assert list(s) == ["dsc", "hd95"]
    assert s["dsc"]["mean"] == pytest.approx(0.8)
    assert s["dsc"]["std"] == pytest.approx(0.1)  # sample std (ddof=1)
    assert (s["dsc"]["min"], s["dsc"]["max"], s["dsc"]["n"]) == (0.7, 0.9, 3)
    assert s["hd95"]["std"] == pytest.approx(2.0)
    assert summarize(rows, ddof=0)["hd95"]["std"] == pytest.approx(np.sqrt(8 / 3))
    assert summarize(rows[:1])["dsc"]["std"] == 0.0


def test_summarize_leaves_out_and_counts_nonfinite():
    rows = [{"hd95": 2.0}, {"hd95": float("inf")}, {"hd95": 4.0}, {"hd95": float("nan")}]
    s = summarize(rows)["hd95"]
    assert s["mean"] == pytest.approx(3.0) and s["max"] == 4.0
    assert s["n"] == 2 and s["n_nonfinite"] == 2
    none = summarize([{"hd95": float("inf")}])["hd95"]
    assert none["mean"] is None and none["n"] == 0 and none["n_nonfinite"] == 1
    json.dumps(none, allow_nan=False)  # JSON-safe


def test_format_stat_in_the_papers_form():
    # Cai et al., Table I, CT, Jaccard loss: 83.7 ± 5.4 [58.4, 90.4].
    stats = {"mean": 0.8372, "std": 0.0541, "min": 0.5843, "max": 0.9039, "n": 82, "n_nonfinite": 0}
    assert format_stat(stats, scale=100) == "83.7 ± 5.4 [58.4, 90.4]"
    assert format_stat({"mean": 0.6149, "std": 0.53, "min": 0.15, "max": 3.481},
                       decimals=2) == "0.61 ± 0.53 [0.15, 3.48]"
    assert format_stat({"mean": None}) == "n/a"


def test_format_table_uses_percent_and_flags_nonfinite():
    rows = [{"dsc": 0.8, "hd95": 2.0}, {"dsc": 0.9, "hd95": float("inf")}]
    text = format_table(summarize(rows))
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["metric", "unit"]
    assert "85.0 ± 7.1 [80.0, 90.0]" in lines[1] and "%" in lines[1]
    assert "2.00 ± 0.00 [2.00, 2.00]" in lines[2] and "mm" in lines[2]
    assert "1 non-finite" in lines[2]


def test_every_metric_has_a_table_spec():
    for name, (unit, percent, decimals, description) in summary.METRICS.items():
        assert unit and isinstance(percent, bool) and decimals >= 0 and description
        assert percent == (unit == "%")
