"""Zhou et al.'s fixed-point iteration (Algorithm 1), as OrganSegC2F runs it.

Z(0) is the majority vote of the three coarse views (each view's
probability >= 0.5; a voxel is pancreas when at least 2 of 3 views say so,
OrganSegC2F's fusion code ``F2``). Round t feeds the fine models crops cut
around Z(t-1) and fuses their outputs into Z(t); the iteration stops when
``d(t) = DSC(Z(t-1), Z(t)) > R`` (default 0.95) or ``t = T`` (default 10).

One round, per view, as ``coarse2fine_testing.py`` does it:

* For slice k of the view, the mask's 3-slice stack (slices k-1, k, k+1,
  clamped at the ends) gives the smallest in-plane box holding its
  foreground (``box="slice"``, the paper's "smallest 2D box ... in each
  slice"); the box grows by a ``margin`` = 30-pixel frame on each side and
  is clipped to the slice. Slices whose stack holds no foreground are
  skipped (probability 0). ``box="volume"`` uses the in-plane part of the
  mask's 3D box for every slice whose stack reaches it instead.
* The image's 3-slice stack is cut to that box and the view's fine model
  predicts it; the centre slice's probability is pasted back into a
  full-size zero volume. (OrganSegC2F's networks predict all three slices
  and average the overlapping stacks; our models output the centre slice.)
* The three views are fused by the mean probability >= 0.5 (OrganSegC2F sums
  the three probabilities and thresholds at 1.5; ``fusion="vote"`` takes
  the majority of the per-view masks instead), then connected components
  (6-connectivity) smaller than half the largest are dropped (OrganSegC2F's
  ``post_processing(pred, pred, 0.5)``; ``keep_components=None`` skips it).

Crops and variable crop sizes: :mod:`tfpanc.methods.zhou.crops`. Table 1
of the paper from per-case results: :mod:`tfpanc.methods.zhou.table1_rows`.
Component filtering and the vote are generic
(:mod:`tfpanc.inference.components`, :mod:`tfpanc.inference.voting`).

Empty masks (documented choice, OrganSegC2F's behaviour): when Z(t-1) has no
foreground there is nothing to crop around. ``on_empty="keep"`` (default)
does as OrganSegC2F (``if pred_prev.sum() == 0: continue``): no fine round
runs, the empty mask is the result, ``rounds`` counts only the rounds that
ran (0 for an empty coarse result) and ``stop_reason`` is ``"empty"``.
``on_empty="whole"`` gives the fine models every slice of every view whole
instead, so they get a chance to find the pancreas the coarse models missed.

The iteration itself is :func:`fixed_point_rounds`, a generator of the
masks Z(0), Z(1), ... with no stopping rule; :func:`fixed_point` stops it
with ``d(t) > R`` as the paper writes it (OrganSegC2F's tables use ``>=``)
or ``t = T``, and Table 1 (:func:`tfpanc.methods.zhou.table1_rows.trace_scores`)
consumes every round to T with the label instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from tfpanc.data.boxes import box_from_mask, union_box
from tfpanc.data.patches import VIEWS, move_view_last, view_axis
from tfpanc.inference.components import keep_large_components
from tfpanc.inference.slicewise import predict_slices
from tfpanc.inference.voting import majority_vote
from tfpanc.methods.zhou.crops import FineViewPredictor, slice_boxes, whole_slices
from tfpanc.metrics import dice


def coarse_probabilities(volume, coarse, batch_size=8, multiple=32, fill=0.0):
    """The three views' coarse probability volumes.

    Args:
        volume: ``[x, y, z]`` normalised image (used by callables only).
        coarse: ``{view: probability volume or predict_fn(batch)}``, a
            sequence of three in :data:`VIEWS` order, or one
            ``predict_fn(view, batch)`` for all views.
        batch_size, multiple, fill: as in
            :func:`tfpanc.inference.slicewise.predict_slices`.

    Returns:
        ``{view: float32 probabilities}`` in :data:`VIEWS` order.
    """
    if callable(coarse):
        shared = coarse
        coarse = {v: (lambda b, v=v: shared(v, b)) for v in VIEWS}
    elif not isinstance(coarse, Mapping):
        coarse = dict(zip(VIEWS, coarse))
    coarse = {VIEWS[view_axis(v)]: c for v, c in coarse.items()}
    missing = [v for v in VIEWS if v not in coarse]
    if missing:
        raise ValueError(f"coarse results missing for views {missing}")
    out = {}
    for v in VIEWS:
        c = coarse[v]
        if callable(c):
            out[v] = predict_slices(c, volume, v, batch_size=batch_size, multiple=multiple,
                                    fill=fill)
        else:
            out[v] = np.asarray(c, np.float32)
    return out


def fine_round(volume, fine, box_mask, margin=30, box="slice", fusion="mean", threshold=0.5,
               keep_components=0.5, whole=False, bounds=None, probability=False):
    """One fine round: crops around ``box_mask``, three views, fused.

    Args:
        volume: ``[x, y, z]`` image.
        fine: a :class:`FineViewPredictor` (or a ``predict_fn(view, batch)``
            wrapped with its defaults).
        box_mask: the mask the crops are cut around (Z(t-1), or the ground
            truth for the oracle).
        margin, box: see :func:`slice_boxes`.
        fusion: ``"mean"`` (mean probability >= ``threshold``, OrganSegC2F)
            or ``"vote"`` (at least 2 of the 3 per-view masks).
        threshold: probability threshold.
        keep_components: ratio for :func:`keep_large_components`; None: off.
        whole: crop every slice whole instead (the ``on_empty="whole"``
            fallback).
        bounds: ``box_from_mask(box_mask)`` if already known.
        probability: also return the fused map: the mean of the three
            views' probabilities (``fusion="mean"``) or the fraction of views
            voting pancreas (``"vote"``); 0 outside every crop.

    Returns:
        ``(mask, {view: SliceBoxes})``, or ``(mask, boxes, probability)``.
    """
    if fusion not in ("mean", "vote"):
        raise ValueError(f"fusion must be 'mean' or 'vote', got {fusion!r}")
    if not isinstance(fine, FineViewPredictor):
        fine = FineViewPredictor(fine)
    shape = volume.shape[:3]
    if not whole and bounds is None:
        bounds = box_from_mask(box_mask)
    all_boxes = {view: whole_slices(shape, view) if whole else slice_boxes(
        box_mask, view, margin, fine.context, box, bounds) for view in VIEWS}
    region = union_box(*(sb.bounds() for sb in all_boxes.values()))
    mask = np.zeros(shape, bool)  # np.zeros maps pages lazily: only `region` is written
    fused_map = np.zeros(shape, np.float32) if probability else None
    if region is not None:
        # Sum (or count votes) over the crops' region only, never the whole volume.
        dtype = np.float32 if fusion == "mean" else np.uint8
        acc = np.zeros(tuple(region[:, 1] - region[:, 0]), dtype)
        for view, sb in all_boxes.items():
            vb = sb.bounds()
            if vb is None:
                continue
            # Crops of one view go to a slice-major buffer (contiguous writes), added to
            # `acc` in one transposed step.
            axis = view_axis(view)
            plane = [a for a in range(3) if a != axis]
            k0, a0, b0 = vb[axis, 0], vb[plane[0], 0], vb[plane[1], 0]
            buf = np.zeros((vb[axis, 1] - k0, vb[plane[0], 1] - a0, vb[plane[1], 1] - b0), dtype)
            for k, b, prob in fine.predict(volume, sb):
                buf[k - k0, b[0, 0] - a0:b[0, 1] - a0, b[1, 0] - b0:b[1, 1] - b0] += (
                    prob if fusion == "mean" else prob >= threshold)
            local = tuple(slice(int(lo - o), int(hi - o)) for (lo, hi), o in zip(vb, region[:, 0]))
            move_view_last(acc[local], view)[...] += np.moveaxis(buf, 0, 2)
        cut = 3.0 * threshold if fusion == "mean" else 2
        fused = acc >= cut
        if keep_components is not None:
            fused = keep_large_components(fused, keep_components, volume_size=mask.size)
        inside = tuple(slice(int(a), int(b)) for a, b in region)
        mask[inside] = fused
        if probability:
            fused_map[inside] = acc / np.float32(len(VIEWS))
    return (mask, all_boxes, fused_map) if probability else (mask, all_boxes)


def dice_in_boxes(a, box_a, b, box_b):
    """DSC of two masks computed on the union of their boxes (both are zero outside).

    The fixed point compares 512x512xL masks every round; restricted to the
    boxes this reads a few percent of the volume.
    """
    region = union_box(box_a, box_b)
    if region is None:
        return 1.0  # both empty, as tfpanc.metrics.dice
    region = tuple(slice(int(lo), int(hi)) for lo, hi in region)
    return dice(a[region], b[region])


@dataclasses.dataclass(frozen=True)
class FixedPointSettings:
    """How each round is made (the pipeline record's test-time settings, T and R aside).

    Attributes:
        margin: test-time frame around each box (px; paper 30).
        box: ``"slice"`` or ``"volume"`` (see :func:`tfpanc.methods.zhou.crops.slice_boxes`).
        fusion: ``"mean"`` or ``"vote"`` (see :func:`fine_round`).
        fine_threshold: the fine probability threshold.
        coarse_threshold: each coarse view's probability threshold.
        keep_components: ratio of :func:`tfpanc.inference.components.keep_large_components`;
            None: off.
        on_empty: ``"keep"`` or ``"whole"`` (see the module docstring).
    """

    margin: int = 30
    box: str = "slice"
    fusion: str = "mean"
    fine_threshold: float = 0.5
    coarse_threshold: float = 0.5
    keep_components: float | None = 0.5
    on_empty: str = "keep"

    def __post_init__(self):
        if self.on_empty not in ("keep", "whole"):
            raise ValueError(f"on_empty must be 'keep' or 'whole', got {self.on_empty!r}")
        if self.fusion not in ("mean", "vote"):
            raise ValueError(f"fusion must be 'mean' or 'vote', got {self.fusion!r}")

    @classmethod
    def from_record(cls, info, margin=None):
        """The settings a pipeline's ``run.json`` records (``margin`` overrides its frame)."""
        return cls(margin=int(info["crop_margin"] if margin is None else margin), box=info.get("box", "slice"),
                   fusion=info.get("fusion", "mean"), fine_threshold=info.get("fine_threshold", 0.5),
                   coarse_threshold=info.get("coarse_threshold", 0.5),
                   keep_components=info.get("keep_components", 0.5), on_empty=info.get("on_empty", "keep"))


@dataclasses.dataclass
class Round:
    """One mask of the iteration: Z(0) from the coarse views, or Z(t) of fine round t.

    Attributes:
        t: the round (0 for the coarse vote).
        mask: Z(t) (bool).
        box: its box (None when empty).
        inter_dsc: d(t) = DSC(Z(t-1), Z(t)); None for t = 0.
        crops: ``{view: SliceBoxes}`` the fine models saw (None for t = 0).
        probability: the fused map when asked for (see :func:`fine_round`; for
            t = 0 the mean of the three coarse probabilities).
        coarse_views: for t = 0, ``{view: coarse mask}``; else None.
    """

    t: int
    mask: np.ndarray
    box: np.ndarray | None
    inter_dsc: float | None = None
    crops: dict | None = None
    probability: np.ndarray | None = None
    coarse_views: dict | None = None


def fixed_point_rounds(volume, coarse, fine, settings=None, probability=False, coarse_batch_size=8,
                       coarse_multiple=32, coarse_fill=0.0):
    """Z(0), Z(1), Z(2), ... as a generator: the iteration without a stopping rule.

    The consumer decides when to stop (:func:`fixed_point` applies d(t) > R
    and T; Table 1 runs every round to T). The generator ends by itself only
    when the last mask is empty and ``settings.on_empty == "keep"``: there is
    nothing to crop around, so every later round would be empty too.

    Args:
        volume: ``[x, y, z]`` image the models read (normalised, or raw when
            ``fine`` has a ``transform`` and ``coarse`` holds probabilities).
        coarse: the coarse results (see :func:`coarse_probabilities`).
        fine: a :class:`FineViewPredictor` or ``predict_fn(view, batch)``.
        settings: :class:`FixedPointSettings` (default: the paper's).
        probability: attach each round's fused probability map.
        coarse_batch_size, coarse_multiple, coarse_fill: for coarse callables.

    Yields:
        :class:`Round`.
    """
    settings = settings or FixedPointSettings()
    if not isinstance(fine, FineViewPredictor):
        fine = FineViewPredictor(fine)
    probs = coarse_probabilities(volume, coarse, coarse_batch_size, coarse_multiple, coarse_fill)
    views = {v: p >= settings.coarse_threshold for v, p in probs.items()}
    prob = sum(probs.values()) / np.float32(len(VIEWS)) if probability else None
    del probs
    z = np.zeros(volume.shape[:3], bool)
    region = union_box(*(box_from_mask(m) for m in views.values()))
    if region is not None:  # votes can only be cast inside the views' boxes
        region = tuple(slice(int(a), int(b)) for a, b in region)
        z[region] = majority_vote([m[region] for m in views.values()])
    z_box = box_from_mask(z)
    yield Round(0, z, z_box, probability=prob, coarse_views=views)
    t = 0
    while z_box is not None or settings.on_empty == "whole":
        t += 1
        new, crops, *new_prob = fine_round(
            volume, fine, z, settings.margin, settings.box, settings.fusion, settings.fine_threshold,
            settings.keep_components, whole=z_box is None, bounds=z_box, probability=probability)
        new_box = box_from_mask(new)
        d = dice_in_boxes(z, z_box, new, new_box)
        z, z_box = new, new_box
        yield Round(t, new, new_box, d, crops, new_prob[0] if probability else None)


@dataclasses.dataclass
class FixedPointResult:
    """What :func:`fixed_point` found.

    Attributes:
        mask: the final segmentation Z(rounds) (bool).
        rounds: the stopping round t* (0 when no fine round ran).
        inter_dsc: ``d(1), ..., d(rounds)``.
        stop_reason: ``"converged"`` (d(t) > R), ``"max_rounds"`` or ``"empty"``
            (Z(t-1) empty with ``on_empty="keep"``).
        max_rounds: T.
        boxes: per round run, ``{view: SliceBoxes}`` of its crops.
        probability: with ``keep_probability``, the fused map of the round
            that gave ``mask`` (float32, see :func:`fine_round`); for
            ``rounds == 0`` the mean of the three coarse probabilities.
            ``mask`` is not exactly ``probability >= 0.5``: Z(0) is a vote,
            and small components are removed after fusion.
    """

    mask: np.ndarray
    rounds: int
    inter_dsc: list
    stop_reason: str
    max_rounds: int
    boxes: list
    probability: np.ndarray | None = None

    @property
    def converged(self):
        """True when the stopping rule d(t) > R ended the iteration."""
        return self.stop_reason == "converged"


def fixed_point(volume, coarse, fine, max_rounds=10, stop_threshold=0.95, settings=None,
                keep_probability=False, **coarse_options):
    """Algorithm 1: coarse Z(0), then fine rounds until d(t) > R or t = T.

    Args:
        volume, coarse, fine, settings: see :func:`fixed_point_rounds`.
        max_rounds: T (paper: 10).
        stop_threshold: R (paper: 0.95); stop when d(t) > R.
        keep_probability: keep the final mask's fused probability map
            (``FixedPointResult.probability``).
        **coarse_options: ``coarse_batch_size``, ``coarse_multiple``,
            ``coarse_fill`` of :func:`fixed_point_rounds`.

    Returns:
        :class:`FixedPointResult`.

    Example:
    >>> vol = np.zeros((40, 40, 12), "float32"); vol[10:30, 12:26, 3:9] = 1
    >>> coarse = [np.roll(vol, 2, axis=0)] * 3  # a shifted coarse result
    >>> res = fixed_point(vol, coarse, lambda view, b: b[..., 1], max_rounds=5)
    >>> res.rounds, res.stop_reason, bool((res.mask == (vol > 0)).all())
    (2, 'converged', True)
    """
    if int(max_rounds) < 0:
        raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
    rounds = fixed_point_rounds(volume, coarse, fine, settings, keep_probability, **coarse_options)
    last = next(rounds)
    inter, boxes, reason = [], [], "max_rounds"
    if int(max_rounds) > 0:
        reason = "empty"  # unless a round below says otherwise
        for last in rounds:
            inter.append(last.inter_dsc)
            boxes.append(last.crops)
            if last.inter_dsc > stop_threshold:
                reason = "converged"
                break
            if last.t == int(max_rounds):
                reason = "max_rounds"
                break
    rounds.close()
    return FixedPointResult(mask=last.mask, rounds=last.t, inter_dsc=inter, stop_reason=reason,
                            max_rounds=int(max_rounds), boxes=boxes, probability=last.probability)


def oracle_segmentation(volume, fine, label, settings=None):
    """The paper's "Oracle Bounding Box": one fine round cut around the ground truth.

    No iteration is needed: the boxes do not depend on the prediction.

    Args:
        volume, fine, settings: as for :func:`fixed_point_rounds`.
        label: the ground-truth mask the crops are cut around.

    Returns:
        ``(mask, {view: SliceBoxes})`` as :func:`fine_round`.
    """
    s = settings or FixedPointSettings()
    return fine_round(volume, fine, np.asarray(label).astype(bool, copy=False), s.margin, s.box, s.fusion,
                      s.fine_threshold, s.keep_components)
