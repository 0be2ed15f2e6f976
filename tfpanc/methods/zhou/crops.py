"""Crops for the fine models of Zhou et al.'s fixed-point iteration.

:func:`slice_boxes` finds, per slice of a view, the box the fine model sees
(the smallest in-plane box of the mask's 3-slice stack plus a frame, as
OrganSegC2F's ``coarse2fine_testing.py`` cuts it); :class:`FineViewPredictor`
cuts those crops from the image, brings them to a size the network accepts,
batches them and hands back each crop's probability at the crop's own size.

Variable-size crops (documented choice): Caffe's FCN accepts any size
(conv1's 100-pixel padding plus crop layers); our FCN-8s needs multiples of
32, so by default (``mode="pad"``) each crop is centre-padded with ``fill``
to the next multiples of 32 and predicted at native resolution, and the
padding is cut off again. Crops of one padded shape are batched together, so
a crop's result never depends on its batch neighbours. ``mode="resize"``
zooms every crop to a fixed ``size`` and the probability back (one batch
shape); use the mode the fine models were trained with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from scipy import ndimage
from scipy.special import expit

from tfpanc.data.boxes import box_from_mask
from tfpanc.data.patches import VIEWS, move_view_last, neighbour_indices, view_axis
from tfpanc.data.preprocess import resize, round_up


@dataclasses.dataclass
class SliceBoxes:
    """The crops of one view in one round.

    Attributes:
        view: the view name.
        indices: ``(n,)`` slice indices that get a crop, ascending.
        boxes: ``(n, 2, 2)`` half-open in-plane boxes ``[[a0, a1], [b0, b1]]``
            over the two in-plane axes of the view (in ``[x, y, z]`` order).
    """

    view: str
    indices: np.ndarray
    boxes: np.ndarray

    def __len__(self):
        return len(self.indices)

    def bounds(self):
        """The box ``(3, 2)`` in ``[x, y, z]`` order holding every crop, or None."""
        if not len(self):
            return None
        axis = view_axis(self.view)
        plane = [a for a in range(3) if a != axis]
        out = np.zeros((3, 2), np.int64)
        out[axis] = [self.indices.min(), self.indices.max() + 1]
        for i, a in enumerate(plane):
            out[a] = [self.boxes[:, i, 0].min(), self.boxes[:, i, 1].max()]
        return out


def slice_boxes(mask, view, margin=30, context=1, box="slice", bounds=None):
    """Per-slice crop boxes around a mask: box of the 3-slice stack plus a frame.

    Args:
        mask: ``[x, y, z]`` mask (nonzero = foreground).
        view: view name or axis.
        margin: frame width in pixels on each side (paper: 30).
        context: slices on each side in a stack (1: 3-slice stacks).
        box: ``"slice"`` (each stack's own box) or ``"volume"`` (the in-plane
            part of the mask's 3D box, for every stack that reaches it).
        bounds: the mask's :func:`tfpanc.data.boxes.box_from_mask` if already known (saves a pass).

    Returns:
        :class:`SliceBoxes`; boxes are clipped to the slice.

    Example:
    >>> m = np.zeros((50, 40, 6), bool); m[20:25, 5:8, 2] = True
    >>> sb = slice_boxes(m, "axial", margin=10)
    >>> sb.indices.tolist(), sb.boxes[0].tolist()
    ([1, 2, 3], [[10, 35], [0, 18]])
    """
    if box not in ("slice", "volume"):
        raise ValueError(f"box must be 'slice' or 'volume', got {box!r}")
    mask = np.asarray(mask).astype(bool, copy=False)
    axis = view_axis(view)
    name = VIEWS[axis]
    b3 = box_from_mask(mask) if bounds is None else np.asarray(bounds, np.int64)
    if b3 is None:
        return SliceBoxes(name, np.zeros(0, np.int64), np.zeros((0, 2, 2), np.int64))
    plane = [a for a in range(3) if a != axis]
    a_len, b_len, n = mask.shape[plane[0]], mask.shape[plane[1]], mask.shape[axis]
    first, last = max(b3[axis, 0] - context, 0), min(b3[axis, 1] + context, n)
    indices = np.arange(first, last)
    if box == "volume":
        boxes = np.repeat(b3[None, plane], len(indices), axis=0)
    else:
        # Work on the mask's 3D box (stacks reaching it along the view axis).
        region = b3.copy()
        region[axis] = [first, last]
        moved = move_view_last(mask[tuple(slice(a, b) for a, b in region)], view)  # (A', B', N')
        # Row/column occupancy per slice, then OR over the stack's neighbours. mode="nearest"
        # clamps at the slab's ends: where the slab ends at the volume's edge that is the
        # stacks' edge replication; elsewhere the slab's end slices lie outside the box and are
        # empty, like their real neighbours.
        size = 2 * context + 1
        rows = ndimage.maximum_filter1d(moved.any(axis=1), size, axis=1, mode="nearest")  # (A', N')
        cols = ndimage.maximum_filter1d(moved.any(axis=0), size, axis=1, mode="nearest")  # (B', N')
        keep = rows.any(axis=0)
        indices, rows, cols = indices[keep], rows[:, keep], cols[:, keep]
        boxes = np.stack([
            np.stack([rows.argmax(0), rows.shape[0] - rows[::-1].argmax(0)], 1) + b3[plane[0], 0],
            np.stack([cols.argmax(0), cols.shape[0] - cols[::-1].argmax(0)], 1) + b3[plane[1], 0]],
            axis=1)
    boxes = boxes + np.array([-margin, margin])
    boxes = np.clip(boxes, 0, np.array([a_len, b_len])[None, :, None])
    return SliceBoxes(name, indices.astype(np.int64), boxes.astype(np.int64))


def whole_slices(shape, view):
    """:class:`SliceBoxes` covering every slice of a view whole."""
    axis = view_axis(view)
    plane = [s for a, s in enumerate(shape) if a != axis]
    n = shape[axis]
    boxes = np.broadcast_to(np.array([[0, plane[0]], [0, plane[1]]]), (n, 2, 2)).copy()
    return SliceBoxes(VIEWS[axis], np.arange(n), boxes)


class FineViewPredictor:
    """Feeds variable-size crops to per-view fine models.

    Args:
        predict_fn: ``predict_fn(view, batch) -> probabilities``; ``view`` is
            the view name, ``batch`` float32 ``(B, H, W, 2*context+1)``;
            returns ``(B, H, W)`` or ``(B, H, W, 1)`` probabilities (numpy or
            backend tensor). See :func:`predict_fn_from_models`.
        mode: ``"pad"`` (centre-pad to multiples of ``multiple``, native
            resolution) or ``"resize"`` (zoom to ``size`` and back, linear).
        multiple: the network's total down-sampling (FCN-8s: 32).
        size: ``(H, W)`` for ``mode="resize"``. With ``mode="pad"``, the
            smallest padded size: ``(H, W)`` or ``{view: (H, W)}``. Pass the
            size the model was trained at: a fine model trained on crops
            centre-padded with air to a fixed size reads the width of that
            air frame as a cue, and on crops padded less it marks much of
            the crop as pancreas (one phantom case: oracle-box DSC 29 % padded to
            the next multiple of 32, 72 % padded to the training size).
        fill: value of the padding (the normalised value the model saw
            outside the body; Caffe's FCN padded with 0).
        batch_size: crops per call.
        context: slices on each side of the stack (1: 3 slices).
        transform: optional ``f(crop) -> crop`` applied to every raw crop
            before padding (e.g. the CT window), so the volume itself can stay
            in HU.

    Example:
    >>> fine = FineViewPredictor(lambda view, b: b[..., 1] > 0.5, multiple=8)
    >>> vol = np.zeros((20, 20, 5), "float32"); vol[5:9, 6:10, 2] = 1
    >>> sb = slice_boxes(vol > 0, "axial", margin=2)
    >>> [(k, p.shape, float(p.sum())) for k, _, p in fine.predict(vol, sb)][1]
    (2, (8, 8), 16.0)
    """

    def __init__(self, predict_fn, mode="pad", multiple=32, size=None, fill=0.0, batch_size=8,
                 context=1, transform=None):
        if mode not in ("pad", "resize"):
            raise ValueError(f"mode must be 'pad' or 'resize', got {mode!r}")
        if mode == "resize" and size is None:
            raise ValueError("mode='resize' needs size=(H, W)")
        if isinstance(size, Mapping):
            size = {VIEWS[view_axis(v)]: (int(hw[0]), int(hw[1])) for v, hw in size.items()}
        elif size is not None:
            size = (int(size[0]), int(size[1]))
        if int(multiple) < 1 or int(batch_size) < 1:
            raise ValueError(f"multiple and batch_size must be >= 1, got {multiple}, {batch_size}")
        self.predict_fn = predict_fn
        self.mode = mode
        self.multiple = int(multiple)
        self.size = size
        self.fill = float(fill)
        self.batch_size = int(batch_size)
        self.context = int(context)
        self.transform = transform

    def _input_shape(self, view, h, w):
        size = self.size.get(view) if isinstance(self.size, dict) else self.size
        if self.mode == "resize":
            return size
        h, w = round_up(h, self.multiple), round_up(w, self.multiple)
        return (h, w) if size is None else (max(h, size[0]), max(w, size[1]))

    def _block(self, volume, boxes):
        """The view's slab holding every crop's stack, slice-major ``(K, A, B)``, and its origin.

        One bulk copy per view and round: cutting each 3-slice stack from the
        ``[x, y, z]`` volume directly gathers strided voxels (slow for the
        axial view, whose slices are not contiguous); from the slab each
        stack is 3 contiguous planes.
        """
        axis = view_axis(boxes.view)
        n = volume.shape[axis]
        region = boxes.bounds()
        c = self.context
        region[axis] = [max(region[axis, 0] - c, 0), min(region[axis, 1] + c, n)]
        slab = volume[tuple(slice(int(a), int(b)) for a, b in region)]
        block = np.ascontiguousarray(np.moveaxis(move_view_last(slab, boxes.view), 2, 0))
        plane = [a for a in range(3) if a != axis]
        return block, (int(region[axis, 0]), int(region[plane[0], 0]), int(region[plane[1], 0])), n

    def predict(self, volume, boxes):
        """Yields ``(k, box2d, probability (h, w))`` for every crop of ``boxes``.

        Args:
            volume: ``[x, y, z]`` image (normalised, or raw with ``transform``);
                a memmap is read once per call, only the part the crops need.
            boxes: a :class:`SliceBoxes` of one view.
        """
        view = boxes.view
        groups = {}
        for k, b in zip(boxes.indices, boxes.boxes):
            h, w = int(b[0, 1] - b[0, 0]), int(b[1, 1] - b[1, 0])
            if h > 0 and w > 0:
                groups.setdefault(self._input_shape(view, h, w), []).append((int(k), b))
        if not groups:
            return
        block, (k0, a0, b0), n = self._block(volume, boxes)
        for (hh, ww), items in groups.items():
            for start in range(0, len(items), self.batch_size):
                chunk = items[start:start + self.batch_size]
                batch = np.full((len(chunk), hh, ww, 2 * self.context + 1), self.fill, np.float32)
                places = []
                for i, (k, b) in enumerate(chunk):
                    stack = block[neighbour_indices(k, n, self.context) - k0,
                                  b[0, 0] - a0:b[0, 1] - a0, b[1, 0] - b0:b[1, 1] - b0]
                    crop = np.moveaxis(stack, 0, -1)  # (h, w, slices)
                    if self.transform is not None:
                        crop = self.transform(crop)
                    h, w = crop.shape[:2]
                    if self.mode == "resize":
                        batch[i] = resize(crop, (hh, ww), order=1)[0]
                        places.append(None)
                    else:
                        oa, ob = (hh - h) // 2, (ww - w) // 2
                        batch[i, oa:oa + h, ob:ob + w] = crop
                        places.append((oa, ob, h, w))
                prob = np.asarray(self.predict_fn(view, batch), np.float32)
                if prob.ndim == 4:
                    prob = prob[..., 0]
                for i, ((k, b), place) in enumerate(zip(chunk, places)):
                    if place is None:
                        shape = (int(b[0, 1] - b[0, 0]), int(b[1, 1] - b[1, 0]))
                        yield k, b, np.clip(resize(prob[i], shape, order=1)[0], 0.0, 1.0)
                    else:
                        oa, ob, h, w = place
                        yield k, b, prob[i, oa:oa + h, ob:ob + w]


def predict_fn_from_models(models):
    """``predict_fn(view, batch)`` from ``{view: keras model}`` that output logits.

    Returns ``sigmoid`` of channel 0 (the fused logits of a tfpanc model).

    Example:
    >>> f = predict_fn_from_models({"axial": lambda b: np.zeros(b.shape[:3] + (1,))})
    >>> float(f("axial", np.ones((1, 4, 4, 3)))[0, 0, 0])
    0.5
    """
    def predict_fn(view, batch):
        model = models[view]
        run = getattr(model, "predict_on_batch", model)
        return expit(np.asarray(run(batch), np.float32)[..., 0])
    return predict_fn
