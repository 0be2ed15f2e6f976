"""Tests for tfpanc.methods.zhou.fixed_point (+ crops, table1_rows): Zhou et al.'s Algorithm 1.

The fine "models" are fakes: they segment a synthetic blob (image 1 inside,
0 outside) exactly, dilated by a radius that grows with how much larger the
crop is than the object's box plus the 30-pixel frame -- so tighter crops
give better masks, the behaviour the fixed-point model relies on.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage

from tfpanc.data.boxes import box_from_mask
from tfpanc.inference.components import keep_large_components
from tfpanc.inference.voting import majority_vote
from tfpanc.methods.zhou.crops import FineViewPredictor, slice_boxes
from tfpanc.methods.zhou.fixed_point import (FixedPointSettings, fine_round, fixed_point, fixed_point_rounds,
                                             oracle_segmentation)
from tfpanc.methods.zhou.table1_rows import case_scores, format_table1, stop_round, table1_rows, trace_scores
from tfpanc.metrics import dice

MARGIN = 30


@pytest.fixture(scope="module")
def blob():
    """(image, label): an ellipsoid well inside a volume large enough for 30-px frames."""
    x, y, z = np.meshgrid(np.arange(110), np.arange(100), np.arange(90), indexing="ij")
    label = ((x - 55) / 16.0) ** 2 + ((y - 50) / 12.0) ** 2 + ((z - 45) / 10.0) ** 2 <= 1
    return label.astype(np.float32), label


def dilation_fake(slack=4, calls=None):
    """Exact on a crop that is the stack's object box + 30 px; dilated by excess // slack beyond."""
    def predict(view, batch):
        out = []
        for crop in batch:
            if calls is not None:
                calls.append((view, crop.shape[:2]))
            obj = crop[..., 1] > 0.5
            stack = (crop > 0.5).any(-1)
            rows, cols = np.flatnonzero(stack.any(1)), np.flatnonzero(stack.any(0))
            if rows.size == 0:
                out.append(obj)
                continue
            excess = min(crop.shape[0] - (rows[-1] + 1 - rows[0] + 2 * MARGIN),
                         crop.shape[1] - (cols[-1] + 1 - cols[0] + 2 * MARGIN))
            r = max(0, excess) // slack
            out.append(ndimage.binary_dilation(obj, iterations=r) if r else obj)
        return np.stack(out).astype(np.float32)
    return predict


def fine(fn):
    return FineViewPredictor(fn, multiple=1, batch_size=16)


# --- crop boxes -------------------------------------------------------------------------

def test_slice_boxes_frame_stack_union_and_clipping():
    m = np.zeros((100, 80, 10), bool)
    m[5:11, 60:71, 4] = True   # near the x=0 and y=80 borders
    m[20:26, 40:45, 5] = True
    m[50:52, 10:12, 9] = True  # last slice: its stack is (8, 9, 9)
    sb = slice_boxes(m, "axial", margin=MARGIN)
    assert sb.view == "axial"
    assert sb.indices.tolist() == [3, 4, 5, 6, 8, 9]
    boxes = dict(zip(sb.indices.tolist(), sb.boxes.tolist()))
    assert boxes[3] == [[0, 41], [30, 80]]            # 5-30 -> 0, 11+30; 60-30, 71+30 -> 80
    assert boxes[4] == [[0, 56], [10, 80]]            # union of slices 4 and 5
    assert boxes[6] == [[0, 56], [10, 75]]            # stack (5, 6, 7): slice 5 only
    assert boxes[8] == boxes[9] == [[20, 82], [0, 42]]
    # Other views: the coronal slice y=62 sees slice z=4 in its (x, z) plane.
    cor = slice_boxes(m, "coronal", margin=2)
    k = cor.indices.tolist().index(62)
    assert cor.boxes[k].tolist() == [[3, 13], [2, 7]]
    vol = slice_boxes(m, "axial", margin=MARGIN, box="volume")
    assert vol.indices.tolist() == list(range(3, 10))
    assert all(b.tolist() == [[0, 82], [0, 80]] for b in vol.boxes)
    assert len(slice_boxes(np.zeros((5, 5, 5)), "axial")) == 0


@pytest.mark.parametrize("context", [1, 2])
def test_slice_boxes_match_a_per_slice_reference(context):
    rng = np.random.default_rng(context)
    m = np.zeros((30, 26, 20), bool)
    m[4:20, 6:24, 3:17] = rng.random((16, 18, 14)) > 0.97  # sparse: boxes vary per slice
    m[0, 5, 0] = True  # touches the first slice of two views
    for view, axis in (("sagittal", 0), ("coronal", 1), ("axial", 2)):
        sb = slice_boxes(m, view, margin=3, context=context)
        plane = [s for a, s in enumerate(m.shape) if a != axis]
        expected = {}
        for k in range(m.shape[axis]):
            idx = np.clip(np.arange(k - context, k + context + 1), 0, m.shape[axis] - 1)
            b = box_from_mask(np.take(m, idx, axis=axis).any(axis=axis))
            if b is not None:
                expected[k] = np.clip(b + np.array([-3, 3]), 0, np.array(plane)[:, None]).tolist()
        assert dict(zip(sb.indices.tolist(), sb.boxes.tolist())) == expected


def test_fine_predictor_pads_to_multiple_and_crops_back():
    vol = np.random.default_rng(0).random((40, 30, 5)).astype(np.float32)
    m = np.zeros(vol.shape, bool)
    m[10:23, 5:15, 2] = True  # 13 x 10 box with margin 0
    shapes = []

    def fn(view, batch):
        shapes.append(batch.shape)
        assert np.all(batch[:, 0, :, :] == -1.0)  # centre padding with the fill value
        return batch[..., 1:2] * 2  # (B, H, W, 1) is accepted too

    pred = FineViewPredictor(fn, multiple=8, fill=-1.0, transform=lambda c: c + 1)
    out = list(pred.predict(vol, slice_boxes(m, "axial", margin=0)))
    assert [k for k, _, _ in out] == [1, 2, 3]
    assert set(shapes) == {(3, 16, 16, 3)}
    k, b, p = out[1]
    np.testing.assert_allclose(p, 2 * (vol[10:23, 5:15, 2] + 1), rtol=1e-6)

    # A training size pads small crops up to it (per view), larger ones to the multiple.
    shapes.clear()
    sized = FineViewPredictor(fn, multiple=8, fill=-1.0, size={"axial": (24, 12), "coronal": (8, 8)})
    k, b, p = list(sized.predict(vol, slice_boxes(m, "axial", margin=0)))[1]
    assert set(shapes) == {(3, 24, 16, 3)}
    np.testing.assert_allclose(p, 2 * vol[10:23, 5:15, 2], rtol=1e-6)

    resized = FineViewPredictor(lambda v, b: np.full(b.shape[:3], 0.7), mode="resize",
                                size=(32, 32))
    k, b, p = list(resized.predict(vol, slice_boxes(m, "axial", margin=0)))[0]
    assert p.shape == (13, 10) and np.allclose(p, 0.7)
    with pytest.raises(ValueError, match="size"):
        FineViewPredictor(fn, mode="resize")


# --- one round: fusion and post-processing -------------------------------------------------

def test_fusion_mean_versus_vote():
    vol = np.zeros((60, 60, 60), np.float32)
    m = np.zeros(vol.shape, bool)
    m[28:32, 28:32, 28:32] = True
    level = {"axial": 0.9, "coronal": 0.4, "sagittal": 0.3}
    fn = FineViewPredictor(lambda view, b: np.full(b.shape[:3], level[view]), multiple=1)
    mean, boxes = fine_round(vol, fn, m, margin=2, fusion="mean", keep_components=None)
    # Each view crops its slices 27..32 (stacks reaching the cube) to [26, 34) in-plane, so
    # all three views cover [27, 33)^3; two views sum to at most 1.3 < 1.5, all three 1.6.
    expected = np.zeros(vol.shape, bool)
    expected[27:33, 27:33, 27:33] = True
    np.testing.assert_array_equal(mean, expected)
    vote, _ = fine_round(vol, fn, m, margin=2, fusion="vote", keep_components=None)
    assert not vote.any()  # only the axial view says >= 0.5
    assert len(boxes["axial"]) == 6 and boxes["axial"].boxes[0].tolist() == [[26, 34], [26, 34]]


def test_keep_large_components_six_connectivity():
    m = np.zeros((10, 10, 10), bool)
    m[0:2, 0:2, 0:2] = True       # 8 voxels
    m[2, 2, 2] = m[3, 2, 2] = m[4, 2, 2] = True  # 3 voxels, touching only diagonally
    m[6:9, 6:8, 6] = True         # 6 voxels
    out = keep_large_components(m, 0.5)
    assert out.sum() == 14 and not out[2, 2, 2]
    assert keep_large_components(m, 0.0).sum() == 17
    assert majority_vote([m, m, np.zeros_like(m)]).sum() == 17
    assert majority_vote([m, np.zeros_like(m), np.zeros_like(m)]).sum() == 0


# --- the iteration -----------------------------------------------------------------------

def test_converges_with_increasing_inter_dsc_and_stops_early(blob):
    image, label = blob
    coarse = ndimage.binary_dilation(label, iterations=8).astype(np.float32)
    res = fixed_point(image, [coarse] * 3, fine(dilation_fake()), max_rounds=10)
    masks = [r.mask for r in itertools.islice(fixed_point_rounds(image, [coarse] * 3, fine(dilation_fake())), 11)]
    d = res.inter_dsc
    assert res.stop_reason == "converged" and res.converged
    assert 3 <= res.rounds < 10 and len(d) == res.rounds
    assert all(a < b for a, b in zip(d[:-1], d[1:]))        # d(t) increases
    assert d[-1] > 0.95 and all(v <= 0.95 for v in d[:-1])  # stops at the first d(t) > R
    assert dice(masks[res.rounds], label) > dice(masks[0], label) + 0.2  # tighter crops, better masks
    np.testing.assert_array_equal(res.mask, masks[res.rounds])
    # Every crop is the stack box of Z(t-1) plus the 30-pixel frame.
    for t, round_boxes in enumerate(res.boxes):
        for view, sb in round_boxes.items():
            expected = slice_boxes(masks[t], view, margin=MARGIN)
            np.testing.assert_array_equal(sb.boxes, expected.boxes)
    # A lower R is met earlier; Table 1's trace keeps going to the exact fixed point (d = 1)
    # or T, and the rule read off it gives the same stopping round as the plain run.
    r = (d[-3] + d[-2]) / 2
    t_star = len(d) - 1
    loose = fixed_point(image, [coarse] * 3, fine(dilation_fake()), stop_threshold=r)
    full = trace_scores(fixed_point_rounds(image, [coarse] * 3, fine(dilation_fake())), label, 10)
    assert loose.rounds == t_star and stop_round(full, r) == (t_star, "converged")
    assert len(loose.inter_dsc) == t_star
    assert full["inter_dsc"][:len(d)] == pytest.approx(d) and len(full["inter_dsc"]) > t_star
    assert full["inter_dsc"][-1] == 1.0 or len(full["inter_dsc"]) == 10  # exact fixed point or T
    assert full["round_dsc"] == pytest.approx([dice(m, label) for m in masks[:len(full["round_dsc"])]])
    np.testing.assert_array_equal(loose.mask, masks[t_star])


def test_respects_max_rounds():
    # A fake answering noise never settles: d(t) stays far below R.
    vol = np.zeros((40, 40, 40), np.float32)
    vol[15:25, 16:24, 18:22] = 1
    rng = np.random.default_rng(0)
    noise = fine(lambda view, b: rng.random(b.shape[:3]))
    res = fixed_point(vol, [vol] * 3, noise, max_rounds=4, stop_threshold=0.95,
                      settings=FixedPointSettings(keep_components=None))
    assert res.rounds == 4 and len(res.inter_dsc) == 4 and res.stop_reason == "max_rounds"
    assert max(res.inter_dsc) < 0.95 and not res.converged
    zero = fixed_point(vol, [vol] * 3, noise, max_rounds=0)
    assert zero.rounds == 0 and zero.inter_dsc == [] and zero.mask.sum() == vol.sum()


def test_oracle_uses_ground_truth_boxes(blob):
    image, label = blob
    calls = []
    mask, boxes = oracle_segmentation(image, fine(dilation_fake(calls=calls)), label,
                                      FixedPointSettings(keep_components=None))
    np.testing.assert_array_equal(mask, label)  # exact: every crop is box + 30 px
    for view, sb in boxes.items():
        np.testing.assert_array_equal(sb.boxes, slice_boxes(label, view, margin=MARGIN).boxes)
    z = np.flatnonzero(label.any((0, 1)))
    axial = boxes["axial"]
    assert axial.indices.tolist() == list(range(z[0] - 1, z[-1] + 2))
    rows = np.flatnonzero(label[:, :, z[0]].any(1))  # the first crop's stack holds slice z[0] only
    assert axial.boxes[0, 0].tolist() == [rows[0] - MARGIN, rows[-1] + 1 + MARGIN]
    assert len(calls) == sum(len(sb) for sb in boxes.values())


def test_empty_coarse_result_fallbacks(blob):
    image, label = blob
    calls = []
    empty = np.zeros(label.shape, np.float32)
    res = fixed_point(image, [empty] * 3, fine(dilation_fake(calls=calls)))
    assert res.rounds == 0 and res.stop_reason == "empty" and res.inter_dsc == []
    assert not res.mask.any() and calls == []
    traced = trace_scores(fixed_point_rounds(image, [empty] * 3, fine(dilation_fake(calls=calls))), label, 10)
    assert traced["round_dsc"] == [0.0] and traced["settled"] and stop_round(traced, 0.95) == (0, "empty")
    whole = fixed_point(image, [empty] * 3, fine(dilation_fake(calls=calls)),
                        settings=FixedPointSettings(on_empty="whole"))
    first = whole.boxes[0]["axial"]
    assert len(first) == image.shape[2] and first.boxes[0].tolist() == [[0, 110], [0, 100]]
    assert whole.rounds >= 2 and dice(whole.mask, label) > 0.95


def test_coarse_callables_majority_vote(blob):
    image, label = blob
    shifted = np.roll(label, 3, axis=0)
    coarse = {"axial": lambda b: b[..., 1], "coronal": lambda b: b[..., 1],
              "sagittal": lambda b: np.zeros(b.shape[:3])}
    res = fixed_point(image, coarse, fine(dilation_fake()), max_rounds=0, coarse_multiple=16)
    traced = trace_scores(fixed_point_rounds(image, coarse, fine(dilation_fake()), coarse_multiple=16), label, 0)
    assert traced["coarse_view_dsc"] == {"sagittal": 0.0, "coronal": 1.0, "axial": 1.0}
    assert traced["round_dsc"] == [1.0] and not traced["settled"]
    np.testing.assert_array_equal(res.mask, label)  # 2 of 3 views
    one = fixed_point(image, lambda view, b: b[..., 1] if view == "axial" else 0 * b[..., 1],
                      fine(dilation_fake()), max_rounds=0)
    assert not one.mask.any()
    probs = [shifted.astype(np.float32), label.astype(np.float32), label.astype(np.float32)]
    voted = fixed_point(image, probs, fine(dilation_fake()), max_rounds=0)
    np.testing.assert_array_equal(voted.mask, label)


def test_probability_map_is_the_final_rounds_fusion(blob):
    image, label = blob
    coarse = ndimage.binary_dilation(label, iterations=8).astype(np.float32)
    # A fine fake answering 0.9 inside the object and 0.2 around it (in the crops only).
    soft = fine(lambda view, b: np.where(b[..., 1] > 0.5, 0.9, 0.2).astype(np.float32))
    res = fixed_point(image, [coarse] * 3, soft, max_rounds=5, settings=FixedPointSettings(keep_components=None),
                      keep_probability=True)
    assert res.rounds >= 1 and res.probability.dtype == np.float32
    np.testing.assert_array_equal(res.mask, res.probability >= 0.5)
    np.testing.assert_allclose(res.probability[label], 0.9, atol=1e-6)
    # Around it: 0.2 from each view whose crops reach the voxel, averaged over three views.
    around = np.unique(np.round(res.probability[(res.probability > 0) & ~label] * 15, 4))
    assert around.tolist() == [1.0, 2.0, 3.0]
    grown = np.zeros_like(label)
    grown[tuple(slice(max(a - MARGIN - 1, 0), b + MARGIN + 1) for a, b in box_from_mask(label))] = True
    assert res.probability[~grown].max() == 0 and res.probability[grown].min() == 0
    # Without fine rounds the map is the mean of the three coarse views.
    probs = [coarse, 0.5 * coarse, np.zeros_like(coarse)]
    zero = fixed_point(image, probs, soft, max_rounds=0, keep_probability=True)
    np.testing.assert_allclose(zero.probability, 0.5 * coarse, atol=1e-6)
    assert fixed_point(image, probs, soft, max_rounds=0).probability is None


# --- Table 1 -----------------------------------------------------------------------------

CASE_A = {"round_dsc": [0.50, 0.70, 0.80, 0.90, 0.85, 0.86, 0.86, 0.86, 0.86, 0.86, 0.87],
          "inter_dsc": [0.60, 0.92, 0.96, 0.97, 0.98, 0.995, 0.999, 0.999, 0.999, 0.999],
          "max_rounds": 10, "settled": False, "oracle_dsc": 0.92,
          "coarse_view_dsc": {"sagittal": 0.4, "coronal": 0.3, "axial": 0.45}}
CASE_B = {"round_dsc": [0.40, 0.75, 0.75], "inter_dsc": [0.80, 1.0], "max_rounds": 10,
          "settled": True, "oracle_dsc": 0.88,
          "coarse_view_dsc": {"sagittal": 0.2, "coronal": 0.35, "axial": 0.25}}


def by_method(rows):
    return {r["method"]: r for r in rows}


def test_table1_rows_hand_computed():
    rows = by_method(table1_rows([CASE_A, CASE_B]))
    std2 = lambda a, b: abs(a - b) / math.sqrt(2)  # noqa: E731  sample std of two values

    def check(name, a, b, it=None):
        s = rows[name]["dsc"]
        assert s["mean"] == pytest.approx((a + b) / 2) and s["std"] == pytest.approx(std2(a, b))
        assert (s["min"], s["max"]) == (min(a, b), max(a, b)) and s["n"] == 2
        if it is not None:
            assert rows[name]["iterations"]["mean"] == pytest.approx(sum(it) / 2)
            assert rows[name]["iterations"]["std"] == pytest.approx(std2(*it))

    check("Coarse (axial)", 0.45, 0.25)
    check("Coarse (sagittal)", 0.4, 0.2)
    check("Coarse Segmentation", 0.50, 0.40)
    check("After 1 Iteration", 0.70, 0.75, (1, 1))
    check("After 2 Iterations", 0.80, 0.75)
    check("After 3 Iterations", 0.90, 0.75)   # B settled at round 2: Z(3) = Z(2)
    check("After 5 Iterations", 0.86, 0.75)
    check("After 10 Iterations", 0.87, 0.75, (10, 10))
    check("After d(t) > 0.90", 0.80, 0.75, (2, 2))
    check("After d(t) > 0.95", 0.90, 0.75, (3, 2))
    check("After d(t) > 0.99", 0.86, 0.75, (6, 2))
    check("Best among All Iterations", 0.90, 0.75, (3, 1))
    check("Oracle Bounding Box", 0.92, 0.88)
    assert [r["method"] for r in table1_rows([CASE_A, CASE_B])][:4] == [
        "Coarse (sagittal)", "Coarse (coronal)", "Coarse (axial)", "Coarse Segmentation"]
    text = format_table1(table1_rows([CASE_A, CASE_B]))
    assert "After d(t) > 0.95" in text and "82.50 ± 10.61 [75.00, 90.00]  2.50 ± 0.71" in text


def test_table1_incomplete_and_empty_cases():
    short = {"round_dsc": [0.5, 0.6, 0.7], "inter_dsc": [0.5, 0.6], "max_rounds": 10,
             "settled": False}
    empty = {"round_dsc": [0.0], "inter_dsc": [], "max_rounds": 10, "settled": True}
    rows = by_method(table1_rows([short, empty]))
    assert rows["After 2 Iterations"]["dsc"]["n"] == 2
    after5 = rows["After 5 Iterations"]["dsc"]
    assert after5["n"] == 1 and after5["n_nonfinite"] == 1 and after5["mean"] == 0.0
    stop = rows["After d(t) > 0.95"]
    assert stop["dsc"]["n"] == 1 and stop["iterations"]["mean"] == 0  # the empty case ran no round
    assert rows["Best among All Iterations"]["dsc"]["n"] == 1
    assert "Oracle Bounding Box" not in rows and "Coarse (axial)" not in rows
    assert "(+1 missing)" in format_table1(table1_rows([short, empty]))


def test_case_scores_from_masks_and_results(blob):
    image, label = blob
    a = np.zeros((4, 4, 4), bool)
    a[:2] = True
    b = np.zeros_like(a)
    b[1:3] = True
    s = case_scores(a, [b, a, a], coarse_views={"axial": b, "coronal": a}, oracle_mask=b,
                    max_rounds=2)
    assert s["round_dsc"] == [0.5, 1.0, 1.0] and s["inter_dsc"] == [0.5, 1.0] and s["settled"]
    assert s["coarse_view_dsc"] == {"axial": 0.5, "coronal": 1.0} and s["oracle_dsc"] == 0.5
    coarse = ndimage.binary_dilation(label, iterations=8).astype(np.float32)
    rounds = list(itertools.islice(fixed_point_rounds(image, [coarse] * 3, fine(dilation_fake())), 11))
    n = next((r.t for r in rounds if r.t and r.inter_dsc == 1.0), 10)  # where the trace stops
    traced = trace_scores(iter(rounds), label, 10, oracle_dsc=1.0)
    from_masks = case_scores(label, [r.mask for r in rounds[:n + 1]], coarse_views=rounds[0].coarse_views,
                             oracle_mask=label, max_rounds=10)
    assert traced["round_dsc"] == pytest.approx(from_masks["round_dsc"])
    assert traced["inter_dsc"] == pytest.approx(from_masks["inter_dsc"])
    assert traced["coarse_view_dsc"] == pytest.approx(from_masks["coarse_view_dsc"])
    assert traced["settled"] == from_masks["settled"] and traced["oracle_dsc"] == from_masks["oracle_dsc"]


def test_runs_with_keras_fcn8s_models():
    from tfpanc.methods.zhou.crops import predict_fn_from_models
    from tfpanc.models.fcn8s import FCN8s

    vol = np.zeros((40, 36, 24), np.float32)
    vol[12:28, 10:24, 8:16] = 1
    model = FCN8s(filters=1, fc_filters=2)
    seen = []
    predict = predict_fn_from_models({v: model for v in ("sagittal", "coronal", "axial")})

    def fn(view, batch):
        seen.append(batch.shape)
        return predict(view, batch)

    res = fixed_point(vol, [vol] * 3, FineViewPredictor(fn, multiple=32, batch_size=64), max_rounds=1,
                      settings=FixedPointSettings(margin=4, keep_components=None))
    assert res.rounds == 1 and res.mask.shape == vol.shape and res.mask.dtype == bool
    assert seen and all(h % 32 == 0 and w % 32 == 0 for _, h, w, _ in seen)
    assert sum(b for b, *_ in seen) == sum(len(sb) for sb in res.boxes[0].values())
