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

Crops and variable crop sizes: :mod:`tfpanc.inference.fixed_point_crops`
(re-exported here). Table 1 of the paper from per-case results:
:mod:`tfpanc.inference.fixed_point_table`.

Empty masks (documented choice, OrganSegC2F's behaviour): when Z(t-1) has no
foreground there is nothing to crop around. ``on_empty="keep"`` (default)
does as OrganSegC2F (``if pred_prev.sum() == 0: continue``): no fine round
runs, the empty mask is the result, ``rounds`` counts only the rounds that
ran (0 for an empty coarse result) and ``stop_reason`` is ``"empty"``.
``on_empty="whole"`` gives the fine models every slice of every view whole
instead, so they get a chance to find the pancreas the coarse models missed.

Stopping uses ``d(t) > R`` as the paper writes it (OrganSegC2F's tables use
``>=``). ``run_all=True`` keeps iterating to T after convergence, recording
where the rule would have stopped (Table 1 needs every round); it still ends
early at an exact fixed point (``Z(t) == Z(t-1)``: the models are
deterministic, so every later round would repeat it; ``stop_reason`` is
``"fixed"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from tfpanc.data.boxes import union_box
from tfpanc.data.patches import VIEWS, move_view_last, view_axis
from tfpanc.inference.fixed_point_crops import (  # noqa: F401  (re-exported)
    FineViewPredictor, SliceBoxes, mask_box, predict_fn_from_models, slice_boxes, whole_slices)
from tfpanc.inference.slicewise import predict_slices
from tfpanc.metrics import dice


def keep_large_components(mask, ratio=0.5, volume_size=None):
    """Keeps the 6-connected components of at least ``ratio`` times the largest.

    OrganSegC2F's ``post_processing(F, F, ratio)``: an empty mask, or one
    covering half the volume or more, is returned unchanged.

    Args:
        mask: the mask (any dimension).
        ratio: components smaller than ``ratio`` times the largest go.
        volume_size: voxel count of the volume for the half-volume rule when
            ``mask`` is a crop of it (default ``mask.size``).

    Example:
    >>> m = np.zeros((20, 3, 3), bool); m[0:4] = True; m[6:7] = True
    >>> int(keep_large_components(m).sum()) // 9
    4
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    total = int(np.count_nonzero(mask))
    if total == 0 or total >= (mask.size if volume_size is None else volume_size) / 2:
        return mask.copy()
    region = tuple(slice(int(a), int(b)) for a, b in mask_box(mask))
    labels, count = ndimage.label(mask[region])  # default structure: 6-connectivity in 3D
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = sizes >= ratio * sizes.max()
    keep[0] = False
    out = np.zeros(mask.shape, bool)  # np.zeros maps pages lazily, zeros_like writes them all
    out[region] = keep[labels]
    return out


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


def majority_vote(masks, min_votes=2):
    """Voxels marked by at least ``min_votes`` of the masks (OrganSegC2F ``F2``).

    Example:
    >>> a, b = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])
    >>> majority_vote([a, b, a]).tolist()
    [True, True, False, False]
    """
    masks = [np.asarray(m).astype(bool, copy=False) for m in masks]
    votes = np.zeros(masks[0].shape, np.uint8)
    for m in masks:
        np.add(votes, m, out=votes, casting="unsafe")
    return votes >= min_votes


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
        bounds: ``mask_box(box_mask)`` if already known.
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
        bounds = mask_box(box_mask)
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


def _dice(a, box_a, b, box_b):
    """DSC of two masks computed on the union of their boxes (both are zero outside)."""
    region = union_box(box_a, box_b)
    if region is None:
        return 1.0  # both empty, as tfpanc.metrics.dice
    region = tuple(slice(int(lo), int(hi)) for lo, hi in region)
    return dice(a[region], b[region])


@dataclasses.dataclass
class FixedPointResult:
    """What :func:`fixed_point` found.

    Attributes:
        mask: the final segmentation Z(rounds) (bool).
        rounds: the stopping round t* (0 when no fine round ran).
        inter_dsc: ``d(1), ..., d(n)`` for every round run (n = ``rounds``
            unless ``run_all``).
        stop_reason: ``"converged"`` (d(t) > R), ``"max_rounds"``, ``"empty"``
            (Z(t-1) empty with ``on_empty="keep"``) or ``"fixed"`` (an exact
            fixed point reached with ``run_all``).
        max_rounds: T.
        boxes: per round run, ``{view: SliceBoxes}`` of its crops.
        masks: ``[Z(0), ..., Z(n)]`` when ``keep_masks``, else None.
        coarse_views: ``{view: coarse mask}`` when ``keep_masks``, else None.
        label_dsc: ``[DSC(Z(0), label), ..., DSC(Z(n), label)]`` when a label
            was given, else None.
        coarse_view_dsc: ``{view: DSC(coarse mask, label)}`` when a label was
            given, else None.
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
    masks: list | None = None
    coarse_views: dict | None = None
    label_dsc: list | None = None
    coarse_view_dsc: dict | None = None
    probability: np.ndarray | None = None

    @property
    def converged(self):
        """True when the stopping rule d(t) > R ended the iteration."""
        return self.stop_reason == "converged"


def fixed_point(volume, coarse, fine, max_rounds=10, threshold=0.95, margin=30, box="slice",
                fusion="mean", fine_threshold=0.5, coarse_threshold=0.5, keep_components=0.5,
                on_empty="keep", run_all=False, keep_masks=False, label=None, coarse_batch_size=8,
                coarse_multiple=32, coarse_fill=0.0, keep_probability=False):
    """Algorithm 1: coarse Z(0), then fine rounds until d(t) > R or t = T.

    Args:
        volume: ``[x, y, z]`` image the models read (normalised, or raw when
            ``fine`` has a ``transform`` and ``coarse`` holds probabilities).
        coarse: the coarse results (see :func:`coarse_probabilities`).
        fine: a :class:`FineViewPredictor` or ``predict_fn(view, batch)``.
        max_rounds: T (paper: 10).
        threshold: R (paper: 0.95); stop when d(t) > R.
        margin, box: crop frame and box kind (:func:`slice_boxes`).
        fusion, fine_threshold, keep_components: see :func:`fine_round`.
        coarse_threshold: per-view coarse probability threshold.
        on_empty: ``"keep"`` or ``"whole"`` (see the module docstring).
        run_all: iterate to T even after d(t) > R (for Table 1).
        keep_masks: keep every round's mask and the coarse view masks.
        label: optional ground truth; per-round DSCs are then recorded.
        keep_probability: keep the final mask's fused probability map
            (``FixedPointResult.probability``).
        coarse_batch_size, coarse_multiple, coarse_fill: for coarse callables.

    Returns:
        :class:`FixedPointResult`.

    Example:
    >>> vol = np.zeros((40, 40, 12), "float32"); vol[10:30, 12:26, 3:9] = 1
    >>> coarse = [np.roll(vol, 2, axis=0)] * 3  # a shifted coarse result
    >>> res = fixed_point(vol, coarse, lambda view, b: b[..., 1], max_rounds=5)
    >>> res.rounds, res.stop_reason, bool((res.mask == (vol > 0)).all())
    (2, 'converged', True)
    """
    if on_empty not in ("keep", "whole"):
        raise ValueError(f"on_empty must be 'keep' or 'whole', got {on_empty!r}")
    if int(max_rounds) < 0:
        raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
    if not isinstance(fine, FineViewPredictor):
        fine = FineViewPredictor(fine)
    probs = coarse_probabilities(volume, coarse, coarse_batch_size, coarse_multiple, coarse_fill)
    views = {v: p >= coarse_threshold for v, p in probs.items()}
    prob = sum(probs.values()) / np.float32(len(VIEWS)) if keep_probability else None
    del probs
    view_boxes = {v: mask_box(m) for v, m in views.items()}
    z = np.zeros(volume.shape[:3], bool)
    region = union_box(*view_boxes.values())
    if region is not None:  # votes can only be cast inside the views' boxes
        region = tuple(slice(int(a), int(b)) for a, b in region)
        z[region] = majority_vote([m[region] for m in views.values()])
    z_box = mask_box(z)
    label = None if label is None else np.asarray(label).astype(bool, copy=False)
    label_box = None if label is None else mask_box(label)
    label_dsc = None if label is None else [_dice(z, z_box, label, label_box)]
    coarse_view_dsc = None if label is None else {
        v: _dice(m, view_boxes[v], label, label_box) for v, m in views.items()}
    masks = [z] if keep_masks else None
    inter, boxes = [], []
    rounds, reason = None, "max_rounds"
    for t in range(1, int(max_rounds) + 1):
        if z_box is None and on_empty == "keep":
            reason = "empty" if rounds is None else reason
            break
        new, round_boxes, *new_prob = fine_round(
            volume, fine, z, margin, box, fusion, fine_threshold, keep_components,
            whole=z_box is None, bounds=z_box, probability=keep_probability)
        new_box = mask_box(new)
        d = _dice(z, z_box, new, new_box)
        inter.append(d)
        boxes.append(round_boxes)
        if keep_masks:
            masks.append(new)
        if label is not None:
            label_dsc.append(_dice(new, new_box, label, label_box))
        z, z_box = new, new_box
        if keep_probability and rounds is None:
            prob = new_prob[0]
        if rounds is None and d > threshold:
            rounds, reason, final = t, "converged", new
            if not run_all:
                break
        if run_all and d == 1.0:
            reason = "fixed" if rounds is None else reason
            break
    n = len(inter)
    if rounds is None:
        rounds = n
        final = z
    return FixedPointResult(
        mask=final, rounds=rounds, inter_dsc=inter, stop_reason=reason, max_rounds=int(max_rounds),
        boxes=boxes, masks=masks, coarse_views=views if keep_masks else None,
        label_dsc=label_dsc, coarse_view_dsc=coarse_view_dsc, probability=prob)


def oracle_segmentation(volume, fine, label, margin=30, box="slice", fusion="mean", threshold=0.5,
                        keep_components=0.5):
    """The paper's "Oracle Bounding Box": one fine round cut around the ground truth.

    No iteration is needed: the boxes do not depend on the prediction.

    Args:
        volume, fine: as for :func:`fixed_point`.
        label: the ground-truth mask the crops are cut around.
        margin, box, fusion, threshold, keep_components: as for :func:`fine_round`.

    Returns:
        ``(mask, {view: SliceBoxes})`` as :func:`fine_round`.
    """
    return fine_round(volume, fine, np.asarray(label).astype(bool, copy=False), margin, box, fusion,
                      threshold, keep_components)
