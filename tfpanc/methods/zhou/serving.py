"""The serving graph of a zhou pipeline, and its export as a TF SavedModel.

Serving contract: :mod:`tfpanc.export.savedmodel` (``ct`` ``[n, x, y, z]``
raw HU and ``spacing`` ``[n, 3]`` mm in; ``probability``, ``mask`` and
``volume_ml`` out), plus ``rounds`` int32 ``[n]``, the fixed-point rounds t*
each volume took (0: the coarse vote; clients that ask for the contract's
outputs only never see it). Any ``x, y, z >= 1`` is accepted; ``spacing``
only gives the volume (zhou does not resample).

The graph is :class:`tfpanc.methods.zhou.predictor.ZhouPredictor` step by
step, with the same numbers:

* the CT window, the three coarse views over every slice (3-slice stacks,
  edge slices repeated, padded at the bottom/right with air to multiples of
  32, at most 2^20 slice pixels per call), each view >= the coarse
  threshold, their 2-of-3 vote Z(0);
* the fixed point as a ``tf.while_loop`` with the export's T and R: per view
  and slice the box of Z(t-1)'s 3-slice stack plus the frame, clipped; each
  crop centre-padded with air to its own size (the fine model's training
  size, or the next multiples of 32 when larger: a crop's numbers depend on
  that size, so crops are never padded to a common one); crops of one
  padded size go through the fine model together (at most 8, and 2^20
  pixels, per call: memory is bounded by a batch); the three views' mean
  (or vote) >= the fine threshold, small components dropped
  (:func:`tfpanc.export.graph_components.keep_large_components`); stop when
  DSC(Z(t-1), Z(t)) > R, t = T, or Z(t) is empty (``on_empty="keep"``).

The mask is not a threshold of the probability (Z(0) is a vote, components
are dropped after fusion), so it is served as the predictor makes it, next
to the probability of the round that gave it. Export serves CT pipelines
only (MRI needs per-volume statistics the graph does not compute).
"""

from __future__ import annotations

from pathlib import Path

from tfpanc.data.patches import VIEWS, view_axis
from tfpanc.errors import InputError
from tfpanc.export import savedmodel
from tfpanc.inference.slicewise import MAX_SLICE_BATCH
from tfpanc.methods.zhou.config import check_rounds
from tfpanc.methods.zhou.fixed_point import FixedPointSettings
from tfpanc.training.run_dir import RunDir

FINE_BATCH = 8  # ZhouPredictor.fine_predictor's batch_size
MULTIPLE = 32   # FCN8s.input_multiple(), without importing Keras for a refusal


def check_run(model_dir):
    """The pipeline record of a run the export can serve, else a one-line InputError.

    TensorFlow-free: a pipeline directory (not one of its models), CT, every
    model's weights file present.

    Args:
        model_dir: the zhou pipeline directory.

    Example:
    >>> check_run("runs/zhou/fold0")["max_rounds"]             # doctest: +SKIP
    10
    """
    from tfpanc.methods.zhou import recipe

    path = Path(model_dir)
    if not path.is_dir():
        raise InputError(path, "no such run folder")
    info = recipe.read_pipeline(path)
    if info.get("modality") != "ct":
        raise InputError(path / "run.json", f"modality {info.get('modality')!r}: export serves CT pipelines "
                         "only (MRI needs per-volume statistics the graph does not compute)")
    for name, sub in info["models"].items():
        sub_info = RunDir(path / sub).run_info()
        if not sub_info.get("weights") or not (path / sub / sub_info["weights"]).is_file():
            raise InputError(path / sub / str(sub_info.get("weights")), f"weights of model {name} are missing")
    return info


def _round_up(n):
    return -(-n // MULTIPLE) * MULTIPLE  # tensor arithmetic


def _perms(tf):
    """``[3, 3]`` transposes ``[x, y, z]`` -> ``[view axis, plane0, plane1]`` per view, and back."""
    perms = [[view_axis(v)] + [a for a in range(3) if a != view_axis(v)] for v in VIEWS]
    return tf.constant(perms), tf.constant([[p.index(a) for a in range(3)] for p in perms])


class _Views:
    """The three models of a stage as one function of ``(view index, batch)``.

    The views' loops run as one ``tf.while_loop`` over the view index, so each
    stage's graph (and its FCN-8s) is traced once, not three times: the
    models share one architecture, and the view's weights are picked at run
    time (``tf.switch_case`` over reads of its variables) and applied with
    ``stateless_call`` of the first. On a tiny pipeline: 1900 graph nodes
    instead of 3400, and a trace (two per export) that takes half the time.
    """

    def __init__(self, tf, models):
        self.tf, self.models = tf, [models[v] for v in VIEWS]
        shapes = [([tuple(w.shape) for w in m.trainable_variables],
                   [tuple(w.shape) for w in m.non_trainable_variables]) for m in self.models]
        self.shared = all(s == shapes[0] for s in shapes)

    def __call__(self, v, batch):
        """Probabilities ``[b, h, w]``: sigmoid of view ``v``'s fused logits."""
        tf = self.tf
        template = self.models[0]
        if self.shared:
            def reads(m):
                return lambda: [w.value for w in m.trainable_variables] + [w.value for w in m.non_trainable_variables]

            weights = tf.switch_case(v, [reads(m) for m in self.models])
            split = len(template.trainable_variables)
            logits, _ = template.stateless_call(weights[:split], weights[split:], batch, training=False)
        else:  # models of different widths: one branch each
            logits = tf.switch_case(v, [lambda m=m: m(batch, training=False) for m in self.models])
        return tf.sigmoid(logits[..., 0])


def _coarse(tf, views, norm, budget, fill, threshold):
    """The coarse views over every slice: the sum of their probabilities and their votes, ``[x, y, z]``."""
    perms, backs = _perms(tf)

    def view_body(v, total, votes):
        slices = tf.transpose(norm, tf.gather(perms, v))
        shape = tf.shape(slices)
        n, a, b = shape[0], shape[1], shape[2]
        ap, bp = _round_up(a), _round_up(b)
        padded = tf.pad(slices, [[0, 0], [0, ap - a], [0, bp - b]], constant_values=fill)
        batch = tf.clip_by_value(budget // (ap * bp), 1, MAX_SLICE_BATCH)  # as slices_per_batch
        steps = -(-n // batch)

        def body(i, out):
            idx = tf.range(i * batch, tf.minimum((i + 1) * batch, n))
            neighbours = tf.stack([tf.maximum(idx - 1, 0), idx, tf.minimum(idx + 1, n - 1)], -1)
            stacks = tf.transpose(tf.gather(padded, neighbours), [0, 2, 3, 1])
            return i + 1, out.write(i, views(v, stacks)[:, :a, :b])

        out = tf.TensorArray(tf.float32, size=steps, infer_shape=False)
        _, out = tf.while_loop(lambda i, _: i < steps, body, [tf.constant(0), out], parallel_iterations=1)
        prob = tf.transpose(tf.reshape(out.concat(), shape), tf.gather(backs, v))
        prob.set_shape(norm.shape)  # a dynamic transpose loses it; the loop variables keep theirs
        # The predictor's sum, view after view from 0.
        return v + 1, total + prob, votes + tf.cast(prob >= threshold, tf.int32)

    zeros = tf.zeros(tf.shape(norm))
    _, total, votes = tf.while_loop(lambda v, *_: v < len(VIEWS), view_body,
                                    [tf.constant(0), zeros, tf.cast(zeros, tf.int32)], parallel_iterations=1)
    return total, votes


def _slice_boxes(tf, z_view, whole, settings):
    """Per slice of a view: has a crop, and its box ``[a0, a1, b0, b1]`` (as crops.slice_boxes)."""
    shape = tf.shape(z_view)
    n, a, b = shape[0], shape[1], shape[2]

    def stacked(occupancy):  # OR over slices k-1..k+1: the 3-slice stack, clamped at the ends
        p = tf.pad(occupancy, [[1, 1], [0, 0]])
        return p[:-2] | p[1:-1] | p[2:]

    def extent(occupancy, length):
        at = tf.range(length)[None, :]
        return (tf.reduce_min(tf.where(occupancy, at, length), 1), tf.reduce_max(tf.where(occupancy, at + 1, 0), 1))

    if settings.box == "volume":  # the mask's in-plane box for every stack that reaches it
        at = tf.range(n)
        occupied = tf.reduce_any(z_view, [1, 2])
        lo, hi = tf.reduce_min(tf.where(occupied, at, n)), tf.reduce_max(tf.where(occupied, at + 1, 0))
        reached = ((at >= lo - 1) & (at < hi + 1))[:, None]
        rows = reached & tf.reduce_any(z_view, [0, 2])[None, :]
        cols = reached & tf.reduce_any(z_view, [0, 1])[None, :]
    else:
        rows, cols = stacked(tf.reduce_any(z_view, 2)), stacked(tf.reduce_any(z_view, 1))
    valid = tf.reduce_any(rows, 1)
    a0, a1 = extent(rows, a)
    b0, b1 = extent(cols, b)
    m = settings.margin
    box = tf.stack([tf.clip_by_value(a0 - m, 0, a), tf.clip_by_value(a1 + m, 0, a),
                    tf.clip_by_value(b0 - m, 0, b), tf.clip_by_value(b1 + m, 0, b)], 1)
    full = tf.tile(tf.stack([0, a, 0, b])[None], [n, 1])
    return tf.where(whole, tf.ones_like(valid), valid), tf.where(whole, full, box)


def _fine_view(tf, views, v, norm_v, z_v, whole, size, settings, budget, fill):
    """View ``v``'s fine probabilities of one round, ``[slices, A, B]``: crops around ``z_v``, 0 elsewhere."""
    shape = tf.shape(norm_v)
    n, a, b = shape[0], shape[1], shape[2]
    valid, boxes = _slice_boxes(tf, z_v, whole, settings)
    ks = tf.cast(tf.where(valid)[:, 0], tf.int32)
    boxes = tf.gather(boxes, ks)
    h, w = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    hh, ww = tf.maximum(_round_up(h), size[0]), tf.maximum(_round_up(w), size[1])
    # Crops of one padded size are batched, as FineViewPredictor groups them.
    keys = tf.cast(hh, tf.int64) * (1 << 31) + tf.cast(ww, tf.int64)
    order = tf.argsort(keys, stable=True)
    ks, boxes, h, w, hh, ww, keys = (tf.gather(t, order) for t in (ks, boxes, h, w, hh, ww, keys))
    count = tf.size(ks)

    def local(length, start, extent):
        """Per crop, ``arange(length) - start`` and where it lies in ``[0, extent)``."""
        r = tf.range(length)[None, :] - start[:, None]
        return r, (r >= 0) & (r < extent[:, None])

    def batch_body(i, step, planes):
        same = tf.reduce_sum(tf.cast(tf.equal(keys[i:], keys[i]), tf.int32))  # sorted: the run from i
        j = i + tf.minimum(same, tf.clip_by_value(budget // (hh[i] * ww[i]), 1, FINE_BATCH))
        k, box, hc, wc, hp, wp = ks[i:j], boxes[i:j], h[i:j], w[i:j], hh[i], ww[i]
        oa, ob = (hp - hc) // 2, (wp - wc) // 2  # centre padding
        stacks = tf.gather(norm_v, tf.stack([tf.maximum(k - 1, 0), k, tf.minimum(k + 1, n - 1)], 1))
        stacks = tf.transpose(stacks, [0, 2, 3, 1])  # [m, A, B, 3]
        # Canvas pixel (u, v) shows crop pixel (u - oa, v - ob), i.e. slice pixel (a0 + u - oa, b0 + v - ob).
        r, r_in = local(hp, oa, hc)
        q, q_in = local(wp, ob, wc)
        x = tf.gather(stacks, tf.clip_by_value(box[:, 0:1] + r, 0, a - 1), axis=1, batch_dims=1)
        x = tf.gather(x, tf.clip_by_value(box[:, 2:3] + q, 0, b - 1), axis=2, batch_dims=1)
        inside = (r_in[:, :, None] & q_in[:, None, :])[..., None]
        prob = views(v, tf.where(inside, x, fill))
        # Back: slice pixel (p, s) of the crop's box is canvas pixel (p - a0 + oa, s - b0 + ob).
        r, r_in = local(a, box[:, 0], hc)
        q, q_in = local(b, box[:, 2], wc)
        y = tf.gather(prob, tf.clip_by_value(r + oa[:, None], 0, hp - 1), axis=1, batch_dims=1)
        y = tf.gather(y, tf.clip_by_value(q + ob[:, None], 0, wp - 1), axis=2, batch_dims=1)
        y = tf.where(r_in[:, :, None] & q_in[:, None, :], y, 0.0)
        return j, step + 1, planes.write(step, y)

    def run():
        planes = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
        _, _, planes = tf.while_loop(lambda i, *_: i < count, batch_body,
                                     [tf.constant(0), tf.constant(0), planes], parallel_iterations=1)
        return tf.scatter_nd(ks[:, None], planes.concat(), shape)

    return tf.cond(count > 0, run, lambda: tf.zeros(shape, tf.float32))


def _fine(tf, views, sizes, norm, z, settings, budget, fill):
    """One fine round's three views fused: the predictor's sum of probabilities (or of votes), ``[x, y, z]``."""
    perms, backs = _perms(tf)
    whole = tf.logical_not(tf.reduce_any(z))  # on_empty="whole": every slice whole
    mean = settings.fusion == "mean"

    def view_body(v, acc):
        perm = tf.gather(perms, v)
        prob = _fine_view(tf, views, v, tf.transpose(norm, perm), tf.transpose(z, perm), whole,
                          tf.gather(sizes, v), settings, budget, fill)
        prob = tf.transpose(prob, tf.gather(backs, v))
        prob.set_shape(norm.shape)
        return v + 1, acc + (prob if mean else tf.cast(prob >= settings.fine_threshold, tf.uint8))

    acc = tf.zeros(tf.shape(norm), tf.float32 if mean else tf.uint8)
    return tf.while_loop(lambda v, _: v < len(VIEWS), view_body, [tf.constant(0), acc], parallel_iterations=1)[1]


def _dice(tf, a, b):
    """tfpanc.metrics.dice in float64 (1 for two empty masks)."""
    tp = tf.math.count_nonzero(a & b, dtype=tf.int64)
    total = tf.math.count_nonzero(a, dtype=tf.int64) + tf.math.count_nonzero(b, dtype=tf.int64)
    return tf.where(total > 0, tf.cast(2 * tp, tf.float64) / tf.cast(tf.maximum(total, 1), tf.float64), 1.0)


def serving_fn(coarse, fine, fine_sizes, info, max_rounds, stop_threshold, settings):
    """The serving function ``(ct [n, x, y, z], spacing [n, 3]) -> {"probability", "mask", "volume_ml", "rounds"}``.

    Args:
        coarse, fine: ``{view: FCN8s}`` of the pipeline.
        fine_sizes: ``{view: (H, W)}``, each fine model's training input size.
        info: the pipeline record (``window``).
        max_rounds, stop_threshold: T and R.
        settings: :class:`tfpanc.methods.zhou.fixed_point.FixedPointSettings`.

    Returns:
        a Python function of two float32 tensors; wrap it in ``tf.function``.

    Example:
    >>> import tensorflow as tf                                 # doctest: +SKIP
    >>> from tfpanc.methods.zhou.predictor import ZhouPredictor  # doctest: +SKIP
    >>> p = ZhouPredictor("runs/zhou/fold0")                    # doctest: +SKIP
    >>> fn = tf.function(serving_fn(p.coarse, p.fine, p.fine_sizes, p.info, p.max_rounds,
    ...                             p.stop_threshold, p.settings), autograph=False)  # doctest: +SKIP
    >>> out = fn(tf.constant(ct[None], tf.float32), tf.ones((1, 3)))  # doctest: +SKIP
    >>> int(out["rounds"][0]) == p(ct)["rounds"]                # doctest: +SKIP
    True
    """
    import tensorflow as tf

    from tfpanc.export import graph_components
    from tfpanc.methods.zhou.predictor import SLICE_BUDGET_PIXELS as budget

    low, high = (float(v) for v in info["window"])
    low32, high32, scale32 = (tf.constant(v, tf.float32) for v in (low, high, high - low))
    fill = 0.0  # the normalised value of air (CT)
    mean = settings.fusion == "mean"
    ratio = settings.keep_components
    keep_going_empty = settings.on_empty == "whole"

    coarse_views, fine_views = _Views(tf, coarse), _Views(tf, fine)
    sizes = tf.constant([list(fine_sizes[v]) for v in VIEWS], tf.int32)

    def fine_round(norm, z):
        acc = _fine(tf, fine_views, sizes, norm, z, settings, budget, fill)
        fused = acc >= (tf.constant(3.0 * settings.fine_threshold, tf.float32) if mean else 2)
        if ratio is not None:
            fused = graph_components.keep_large_components(fused, ratio)
        return fused, tf.cast(acc, tf.float32) / 3.0

    def segment(ct):
        norm = (tf.clip_by_value(ct, low32, high32) - low32) / scale32  # as window_ct
        total, votes = _coarse(tf, coarse_views, norm, budget, fill, settings.coarse_threshold)
        z0, prob0 = votes >= 2, total / 3.0
        done0 = tf.logical_or(tf.constant(int(max_rounds) == 0),
                              tf.logical_and(tf.logical_not(tf.reduce_any(z0)), not keep_going_empty))

        def body(t, z, prob, done):
            new, new_prob = fine_round(norm, z)
            t = t + 1
            stop = _dice(tf, z, new) > tf.constant(float(stop_threshold), tf.float64)
            stop = stop | (t >= int(max_rounds))
            if not keep_going_empty:  # nothing to crop around next round
                stop = stop | tf.logical_not(tf.reduce_any(new))
            return t, new, new_prob, stop

        t, z, prob, _ = tf.while_loop(lambda t, z, p, done: tf.logical_not(done), body,
                                      [tf.constant(0), z0, prob0, done0], parallel_iterations=1)
        return prob, z, t

    def fn(ct, spacing):
        ct = tf.convert_to_tensor(ct, tf.float32)
        shape = tf.shape(ct)
        with tf.control_dependencies([tf.debugging.assert_positive(
                shape[1:], message="ct must be [n, x, y, z] with x, y, z >= 1"),
                savedmodel.check_spacing(spacing)]):
            count = tf.identity(shape[0])

        def body(i, probs, masks, rounds):
            prob, mask, t = segment(ct[i])
            return i + 1, probs.write(i, prob), masks.write(i, mask), rounds.write(i, t)

        arrays = [tf.TensorArray(d, size=count, infer_shape=False) for d in (tf.float32, tf.bool, tf.int32)]
        # One volume at a time: its rounds run on their own, memory is one volume's.
        _, probs, masks, rounds = tf.while_loop(lambda i, *_: i < count, body, [tf.constant(0)] + arrays,
                                                parallel_iterations=1)
        probability, mask = tf.reshape(probs.stack(), shape), tf.reshape(masks.stack(), shape)
        voxel_ml = tf.reduce_prod(tf.cast(spacing, tf.float32), axis=-1) / 1000.0
        volume = tf.reduce_sum(tf.cast(mask, tf.float32), axis=[1, 2, 3]) * voxel_ml
        return {"probability": probability, "mask": tf.cast(mask, tf.uint8), "volume_ml": volume,
                "rounds": tf.reshape(rounds.stack(), [-1])}

    # No Python control flow depends on a tensor here: autograph's source rewriting would only
    # cost time (most of the trace).
    return tf.autograph.experimental.do_not_convert(fn)


def export_run(model_dir, export_dir, max_rounds=None, stop_threshold=None, log=print):
    """Writes a zhou pipeline as a SavedModel servable by TF Serving.

    Args:
        model_dir: a finished zhou pipeline directory (its run.json is the pipeline record).
        export_dir: the version folder to create (``BASE/NAME/N``; must not exist, or be empty).
        max_rounds, stop_threshold: T and R of the fixed point; None: the pipeline's.
        log: progress printer.

    Returns:
        ``Path(export_dir)``.

    Example:
    >>> export_run("runs/zhou/fold0", "serving/tfpanc_zhou/1")  # doctest: +SKIP
    >>> import tensorflow as tf                                 # doctest: +SKIP
    >>> sig = tf.saved_model.load("serving/tfpanc_zhou/1").signatures["serving_default"]  # doctest: +SKIP
    >>> out = sig(ct=tf.zeros((1, 64, 64, 8)), spacing=tf.ones((1, 3)))  # doctest: +SKIP
    >>> out["mask"].shape, int(out["rounds"][0])                # doctest: +SKIP
    (TensorShape([1, 64, 64, 8]), 0)
    """
    check_rounds(max_rounds, stop_threshold)
    info = check_run(model_dir)
    rounds = int(info["max_rounds"] if max_rounds is None else max_rounds)
    threshold = float(info["stop_threshold"] if stop_threshold is None else stop_threshold)
    settings = FixedPointSettings.from_record(info)
    savedmodel.check_target(export_dir)
    # Checks above are TensorFlow-free, so a bad request fails in a second.
    savedmodel.require_tensorflow_backend()
    from tfpanc.methods.zhou.predictor import load_model

    path = Path(model_dir)
    loaded = {name: load_model(path / sub) for name, sub in info["models"].items()}
    coarse = {v: loaded[f"coarse_{v}"][0] for v in VIEWS}
    fine = {v: loaded[f"fine_{v}"][0] for v in VIEWS}
    sizes = {v: tuple(int(s) for s in loaded[f"fine_{v}"][1]["input_size"]) for v in VIEWS}
    metadata = {"format": "tfpanc zhou SavedModel", "method": "zhou", "run": str(path.resolve()),
                "window_hu": list(info["window"]), "max_rounds": rounds, "stop_threshold": threshold,
                "fine_sizes": {v: list(s) for v, s in sizes.items()}, "extra_outputs": {"rounds": "int32 [n]"},
                "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__}}
    return savedmodel.write_archive(
        serving_fn(coarse, fine, sizes, info, rounds, threshold, settings), export_dir, metadata, log=log,
        summary=f"zhou pipeline {model_dir} (T={rounds}, R={threshold:g}, rounds as an extra output)",
        training_spacing=info.get("training_spacing"), extra_outputs={"rounds": "int32"})
