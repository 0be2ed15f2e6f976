"""The serving graph of a multitask run, and its export as a TF SavedModel.

Serving contract: :mod:`tfpanc.export.savedmodel` (``ct`` ``[n, x, y, z]``
raw HU and ``spacing`` ``[n, 3]`` mm in; ``probability``, ``mask`` and
``volume_ml`` out, on the input's grid). Any ``x, y, z >= 1`` is accepted;
each volume of a request is resampled with its own spacing.

The graph is :class:`tfpanc.methods.multitask.predictor.MultitaskPredictor`
with the CRF off, in TensorFlow, one volume of the request after the other
(``tf.map_fn``: each has its own grid, crop and region), with the ops of
:mod:`tfpanc.export.graph_ops`, :mod:`tfpanc.export.graph_components` and
:mod:`tfpanc.methods.multitask.graph`:

1. linear resampling to the run's spacing (the output shape is computed in
   the graph from the request's spacing), crop to the box of the largest
   26-connected component above ``body_threshold``;
2. C1: block mean by ``c1_decimation``, mean/max normalisation of the 1/R
   crop, C1 over half-overlapping Gaussian-weighted windows of
   ``c1_patch``, linear upsampling, ``>= 0.5``, binary opening with a ball of
   ``c1_opening`` voxels, the largest component and the next largest that
   fit in one region with it (``components_fitting``);
3. the ``region`` centred on those components' box (shifted inside the crop,
   or padded with the crop's air where the crop is smaller), normalised by
   the whole crop's statistics; C2 over windows of ``patch`` every ``step``
   voxels averaged with the run's ``weighting``; its segmentation sigmoid;
4. the region's part inside the crop mapped back onto the input's grid
   (linear, edge-aligned; 0 where the crop does not reach); ``mask`` is
   ``probability >= 0.5``.

An empty C1 mask gives an all-zero probability and mask, as the predictor.
**The 3D dense CRF is not in the graph** (pydensecrf's mean field is C++
outside TensorFlow): the served answer equals ``predict --nocrf``, whatever
the run's ``--crf``. CT runs only (the body crop thresholds HU).
"""

from __future__ import annotations

from pathlib import Path

from tfpanc.export import savedmodel
from tfpanc.training.run_dir import RunDir, load_weights

DEFAULT_WINDOW_BATCH = 16  # the predictor's
C1_WINDOW_BATCH = 4  # the predictor's C1 batch
_RUN_KEYS = ("spacing", "body_threshold", "c1_decimation", "c1_patch", "c1_opening", "patch", "region", "step",
             "weighting", "c1_model", "c2_model", "c1_weights", "c2_weights")


def check_run(model_dir):
    """``run.json`` of a multitask run the export can serve, else a one-line InputError."""
    return savedmodel.served_run(model_dir, "multitask", lambda info: [info["c1_weights"], info["c2_weights"]],
                                 required=_RUN_KEYS,
                                 ct_only="the multitask method is for CT (its body crop thresholds HU)")

def serving_fn(c1, c2, info, step=None, window_batch=DEFAULT_WINDOW_BATCH):
    """The serving function ``(ct [n, x, y, z], spacing [n, 3]) -> {"probability", "mask", "volume_ml"}``.

    Args:
        c1, c2: the run's networks (logits out; C2's channel 0 is the segmentation).
        info: the run's ``run.json``.
        step: C2's window step ``(x, y, z)``; None: the run's.
        window_batch: C2 windows per network call.

    Returns:
        a Python function of two float32 tensors; wrap it in ``tf.function``.

    Example:
    >>> import tensorflow as tf                                          # doctest: +SKIP
    >>> from tfpanc.methods.multitask.predictor import MultitaskPredictor  # doctest: +SKIP
    >>> p = MultitaskPredictor.load("runs/multitask/fold0")              # doctest: +SKIP
    >>> fn = tf.function(serving_fn(p.c1, p.c2, p.info))                  # doctest: +SKIP
    >>> fn(tf.fill((1, 64, 64, 32), -1000.0), tf.ones((1, 3)))["mask"].shape  # doctest: +SKIP
    TensorShape([1, 64, 64, 32])
    """
    import tensorflow as tf

    from tfpanc.export import graph_components as components
    from tfpanc.export import graph_ops as ops
    from tfpanc.methods.multitask import graph

    target = tuple(float(s) for s in info["spacing"])
    body_threshold = float(info["body_threshold"])
    factor, opening = int(info["c1_decimation"]), int(info["c1_opening"])
    c1_patch, patch = tuple(int(v) for v in info["c1_patch"]), tuple(int(v) for v in info["patch"])
    region_size = tuple(int(v) for v in info["region"])
    step = tuple(int(v) for v in (step or info["step"]))
    weighting = info["weighting"]
    structure = None
    if opening > 0:
        from skimage.morphology import ball

        structure = ball(opening).astype(bool)
    half = tf.constant(0.5, tf.float32)

    def c1_mask(crop):
        # MultitaskPredictor.c1_mask; the windows' padding is the 1/R crop's normalised air, as there.
        low = ops.block_mean(crop, factor)
        stats = graph.mean_max_stats(low)
        prob = ops.sliding_window(lambda batch: tf.sigmoid(c1(batch, training=False)), graph.normalise(low, stats),
                                  c1_patch, overlap=0.5, batch_size=C1_WINDOW_BATCH,
                                  fill=graph.background(stats), weighting="gaussian")
        up = ops.upsample_linear(prob, factor, tf.shape(crop)) >= half
        if structure is not None:
            up = components.binary_opening(up, structure)
        return components.components_fitting(up, region_size)

    def c2_probability(crop, region):
        stats = graph.mean_max_stats(crop)  # the whole crop's, as in training
        # The predictor pads the raw region with the crop's minimum, then normalises: the same in float32.
        air = graph.normalise(tf.reduce_min(crop), stats)
        image = graph.crop_with_fill(graph.normalise(crop, stats), region, air)
        return ops.sliding_window(lambda batch: tf.sigmoid(c2(batch, training=False)[..., :1]), image, patch,
                                  stride=step, batch_size=window_batch, fill=graph.background(stats),
                                  weighting=weighting)

    def one_volume(args):
        image, spacing = args
        source = tf.shape(image)
        crop, crop_box, resampled = graph.model_grid(image, spacing, target, body_threshold)
        c1 = c1_mask(crop)
        c1_box, found = ops.box_from_mask(c1)

        def segment():
            region = graph.centred_region(c1_box, region_size, tf.shape(crop))
            prob = c2_probability(crop, region)
            inside = ops.clip_box(region, tf.shape(crop))
            values = ops.crop_box(prob, inside - region[:, :1])
            return graph.to_original(values, inside + crop_box[:, :1], resampled, source)

        return tf.cond(found, segment, lambda: tf.zeros(source, tf.float32))

    def fn(ct, spacing):
        ct = tf.convert_to_tensor(ct, tf.float32)
        spacing = tf.convert_to_tensor(spacing, tf.float32)
        with tf.control_dependencies([
                tf.debugging.assert_positive(tf.shape(ct)[1:], message="ct must be [n, x, y, z] with x, y, z >= 1"),
                tf.debugging.assert_equal(tf.shape(spacing)[0], tf.shape(ct)[0],
                                          message="spacing must hold one [3] row per volume of ct"),
                savedmodel.check_spacing(spacing)]):
            ct = tf.identity(ct)
        # One volume at a time: each has its own spacing, crop and region, and memory is one volume's.
        prob = tf.map_fn(one_volume, (ct, spacing), parallel_iterations=1,
                         fn_output_signature=tf.TensorSpec(None, tf.float32))
        return savedmodel.serving_outputs(prob, spacing, ("ge", 0.5))

    return fn


def load_networks(model_dir, info):
    """C1 and C2 of a run (Keras models, weights loaded)."""
    from tfpanc.methods.multitask.recipe import build_c1, build_c2

    run = RunDir(model_dir)
    c1, c2 = build_c1(info["c1_model"]), build_c2(info["c2_model"])
    load_weights(c1, run.path / info["c1_weights"])
    load_weights(c2, run.path / info["c2_weights"])
    return c1, c2


def _metadata(model_dir, info, step, window_batch):
    return {"format": "tfpanc multitask SavedModel", "method": "multitask", "run": str(Path(model_dir).resolve()),
            "spacing_mm": [float(s) for s in info["spacing"]], "body_threshold": float(info["body_threshold"]),
            "c1_decimation": int(info["c1_decimation"]), "c1_patch": [int(v) for v in info["c1_patch"]],
            "c1_opening": int(info["c1_opening"]), "patch": [int(v) for v in info["patch"]],
            "region": [int(v) for v in info["region"]], "step": list(step), "weighting": info["weighting"],
            "window_batch": window_batch, "crf": "not in the graph: the answer equals predict --nocrf",
            "mask": "probability >= 0.5", "probability": "C2's segmentation probability on the input's grid"}


def export_run(model_dir, export_dir, step=None, window_batch=None, log=print):
    """Writes a multitask run as a SavedModel servable by TF Serving.

    The SavedModel is written to ``<export_dir>.partial`` and renamed when
    complete (:func:`tfpanc.export.savedmodel.write_archive`). For TF
    Serving, ``export_dir`` is a version folder: ``<models>/<name>/<version>``.

    Args:
        model_dir: a finished multitask CT run (run.json with C1 and C2).
        export_dir: the SavedModel folder to create (must not exist, or be empty).
        step: C2's window step ``(x, y, z)`` baked into the graph; None: the run's.
        window_batch: C2 windows per network call; None -> 16.
        log: progress printer.

    Returns:
        ``Path(export_dir)``.

    Example:
    >>> export_run("runs/multitask/fold0", "serving/multitask/1")  # doctest: +SKIP
    >>> import tensorflow as tf                                    # doctest: +SKIP
    >>> sig = tf.saved_model.load("serving/multitask/1").signatures["serving_default"]  # doctest: +SKIP
    >>> out = sig(ct=tf.fill((1, 64, 64, 32), -1000.0), spacing=tf.ones((1, 3)))  # doctest: +SKIP
    >>> out["mask"].dtype, out["volume_ml"].shape                  # doctest: +SKIP
    (tf.uint8, TensorShape([1]))
    """
    from tfpanc.methods.multitask.config import MultitaskExportOptions

    options = MultitaskExportOptions(step=step, window_batch=window_batch)  # the flags' checks
    window_batch = DEFAULT_WINDOW_BATCH if options.window_batch is None else int(options.window_batch)
    info = check_run(model_dir)
    step = tuple(int(v) for v in (options.step or info["step"]))
    savedmodel.check_target(export_dir)
    # Checks above are TensorFlow-free, so a bad request fails in a second.
    savedmodel.require_tensorflow_backend()
    c1, c2 = load_networks(model_dir, info)
    return savedmodel.write_archive(
        serving_fn(c1, c2, info, step, window_batch), export_dir, _metadata(model_dir, info, step, window_batch),
        log=log,
        summary=f"multitask (spacing {list(info['spacing'])} mm, C1 at 1/{info['c1_decimation']}, region "
                f"{list(info['region'])}, patch {list(info['patch'])}, step {list(step)}) of {model_dir}, "
                "CRF off (= predict --nocrf)")
