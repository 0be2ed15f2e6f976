"""The serving graph of a two_stage run, and its export as a TF SavedModel.

Serving contract: :mod:`tfpanc.export.savedmodel` (``ct`` ``[n, x, y, z]``
raw HU and ``spacing`` ``[n, 3]`` mm in; ``probability``, ``mask`` and
``volume_ml`` out). Any ``x, y, z >= 1`` is accepted; two_stage does not
resample, so ``spacing`` only gives the volume.

The graph is :class:`tfpanc.methods.two_stage.predictor.TwoStagePredictor`
(the paper's Fig. 2) in TensorFlow, one volume of the request after the
other (``tf.map_fn``: each has its own boxes), with the ops of
:mod:`tfpanc.export.graph_ops`:

1. block-mean decimation by R, the run's HU window, centre padding with air
   to the coarse frame (grown to the network's multiple where the volume is
   larger), the coarse U-Net, its sigmoid cropped back;
2. linear upsampling of the 1/R probability; box 1 (the 1/R mask ``>= 0.5``
   plus ``coarse_box_margin``, times R) and box 2 (the upsampled mask
   ``>= 0.5`` plus ``fine_margin``), clipped to the volume;
3. for each box the fine U-Net over Gaussian-weighted sliding windows of the
   training patch, centred on the box (grown to a patch and kept inside the
   volume), probability kept inside the box;
4. ``mask``: the 2-of-3 vote of the two fine masks (``>= 0.5``) and the
   upsampled coarse mask; ``probability``: the mean of the three
   probabilities (the predictor's ``probability=True`` output); its 0.5
   level is close to, not equal to, the mask.

An empty coarse result (no 1/R voxel, or no upsampled voxel, at 0.5) gives
an all-zero probability and mask, as the predictor. CT runs only (MRI needs
per-volume percentiles and Otsu's threshold, which the graph does not
compute).
"""

from __future__ import annotations

from pathlib import Path

from tfpanc.errors import InputError
from tfpanc.export import savedmodel

DEFAULT_WINDOW_BATCH = 1
_RUN_KEYS = ("decimation", "coarse_frame", "fine_patch", "depth", "window", "coarse_box_margin", "fine_margin",
             "coarse_weights", "fine_weights")


def check_run(model_dir):
    """``run.json`` of a two_stage run the export can serve, else a one-line InputError."""
    return savedmodel.served_run(model_dir, "two_stage", lambda info: [info["coarse_weights"], info["fine_weights"]],
                                 required=_RUN_KEYS)

def serving_fn(coarse, fine, info, window_batch=DEFAULT_WINDOW_BATCH):
    """The serving function ``(ct [n, x, y, z], spacing [n, 3]) -> {"probability", "mask", "volume_ml"}``.

    Args:
        coarse, fine: the run's two 3D U-Nets (logits out).
        info: the run's ``run.json``.
        window_batch: fine windows per network call.

    Returns:
        a Python function of two float32 tensors; wrap it in ``tf.function``.

    Example:
    >>> import tensorflow as tf                                       # doctest: +SKIP
    >>> from tfpanc.methods.two_stage.predictor import TwoStagePredictor  # doctest: +SKIP
    >>> p = TwoStagePredictor.load("runs/two_stage/fold0")            # doctest: +SKIP
    >>> fn = tf.function(serving_fn(p.coarse, p.fine, p.info))         # doctest: +SKIP
    >>> fn(tf.zeros((1, 64, 64, 32)), tf.ones((1, 3)))["mask"].shape   # doctest: +SKIP
    TensorShape([1, 64, 64, 32])
    """
    import tensorflow as tf

    from tfpanc.export import graph_ops as ops

    factor = int(info["decimation"])
    frame = tf.constant([int(v) for v in info["coarse_frame"]], tf.int32)
    patch = tuple(int(v) for v in info["fine_patch"])
    multiple = 2 ** int(info["depth"])
    coarse_margin, fine_margin = int(info["coarse_box_margin"]), int(info["fine_margin"])
    low_hu, high_hu = (float(v) for v in info["window"])
    background = 0.0  # normalised air of the CT window
    half, third = tf.constant(0.5, tf.float32), tf.constant(3.0, tf.float32)

    def normalise(x):
        # As tfpanc.data.intensity.window_ct: clip, subtract, divide, all float32.
        low, high = tf.constant(low_hu, tf.float32), tf.constant(high_hu, tf.float32)
        return (tf.clip_by_value(x, low, high) - low) / tf.constant(high_hu - low_hu, tf.float32)

    def coarse_probability(image):
        low = normalise(ops.block_mean(image, factor))
        n = tf.shape(low)
        target = tf.maximum(frame, -(-n // multiple) * multiple)
        before = (target - n + 1) // 2  # predictor.centred_padding: the extra voxel goes after
        padded = tf.pad(low, tf.stack([before, target - n - before], 1), constant_values=background)
        prob = tf.sigmoid(coarse(padded[None, ..., None], training=False))[0, ..., 0]
        return tf.slice(prob, before, n)

    def window_region(box, shape):
        # predictor.window_region: grown, centred, to a patch per axis, then shifted inside the volume.
        grow = tf.maximum(tf.constant(patch, tf.int32) - (box[:, 1] - box[:, 0]), 0)
        start, stop = box[:, 0] - grow // 2, box[:, 1] + grow - grow // 2
        shift = tf.maximum(0, -start) - tf.maximum(0, stop - shape)
        return ops.clip_box(tf.stack([start + shift, stop + shift], 1), shape)

    def fine_probability(image, box, shape):
        region = window_region(box, shape)
        prob = ops.sliding_window(
            lambda batch: tf.sigmoid(fine(batch, training=False)), normalise(ops.crop_box(image, region)), patch,
            overlap=0.5, batch_size=window_batch, fill=background, weighting="gaussian")
        return ops.crop_box(prob, box - region[:, :1])

    def one_volume(image):
        shape = tf.shape(image)
        low_prob = coarse_probability(image)
        coarse_p = ops.upsample_linear(low_prob, factor, shape)
        coarse_up = coarse_p >= half
        low_box, low_found = ops.box_from_mask(low_prob >= half)
        up_box, up_found = ops.box_from_mask(coarse_up)

        def segment():
            box1 = ops.scale_box(ops.expand_box(low_box, coarse_margin, shape=tf.shape(low_prob)), factor,
                                 shape=shape)
            box2 = ops.expand_box(up_box, fine_margin, shape=shape)
            region = ops.union_box(box1, box2)  # every vote is cast inside the two boxes
            size = region[:, 1] - region[:, 0]
            # Both boxes through one traced fine stage (half the graph and the export time of two).
            probs = tf.map_fn(
                lambda box: ops.paste_box(fine_probability(image, box, shape), box - region[:, :1], size),
                tf.stack([box1, box2]), parallel_iterations=1, fn_output_signature=tf.TensorSpec(None, tf.float32))
            probs = [probs[0], probs[1]]
            votes = sum(tf.cast(m, tf.uint8) for m in (probs[0] >= half, probs[1] >= half,
                                                       ops.crop_box(coarse_up, region)))
            mask = ops.paste_box(tf.cast(votes >= 2, tf.uint8), region, shape)
            # Outside the region the added term is 0, so the sum is coarse_p / 3 exactly, as the predictor's.
            prob = coarse_p / third + ops.paste_box((probs[0] + probs[1]) / third, region, shape)
            return prob, mask

        def empty():
            return tf.zeros(shape, tf.float32), tf.zeros(shape, tf.uint8)

        return tf.cond(low_found & up_found, segment, empty)

    def fn(ct, spacing):
        ct = tf.convert_to_tensor(ct, tf.float32)
        with tf.control_dependencies([tf.debugging.assert_positive(
                tf.shape(ct)[1:], message="ct must be [n, x, y, z] with x, y, z >= 1"),
                savedmodel.check_spacing(spacing)]):
            ct = tf.identity(ct)
        # One volume at a time: each has its own boxes, and memory is one volume's.
        signature = (tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.uint8))
        prob, mask = tf.map_fn(one_volume, ct, parallel_iterations=1, fn_output_signature=signature)
        return savedmodel.outputs_from_mask(prob, mask, spacing)

    return fn


def _metadata(model_dir, info, window_batch):
    return {"format": "tfpanc two_stage SavedModel", "method": "two_stage", "run": str(Path(model_dir).resolve()),
            "decimation": int(info["decimation"]), "frame": [int(v) for v in info["coarse_frame"]],
            "patch": [int(v) for v in info["fine_patch"]], "depth": int(info["depth"]),
            "filters": info.get("filters"), "norm": info.get("norm"), "window_hu": list(info["window"]),
            "coarse_box_margin": int(info["coarse_box_margin"]), "fine_margin": int(info["fine_margin"]),
            "window_batch": window_batch,
            "mask": "2-of-3 vote of the two fine masks (>= 0.5) and the upsampled coarse mask (>= 0.5)",
            "probability": "mean of the two fine probabilities and the upsampled coarse probability"}


def export_run(model_dir, export_dir, window_batch=None, log=print):
    """Writes a two_stage run as a SavedModel servable by TF Serving.

    The SavedModel is written to ``<export_dir>.partial`` and renamed when
    complete (:func:`tfpanc.export.savedmodel.write_archive`). For TF
    Serving, ``export_dir`` is a version folder: ``<models>/<name>/<version>``.

    Args:
        model_dir: a finished two_stage CT run (run.json with both stages).
        export_dir: the SavedModel folder to create (must not exist, or be empty).
        window_batch: fine windows per network call; None -> 1.
        log: progress printer.

    Returns:
        ``Path(export_dir)``.

    Example:
    >>> export_run("runs/two_stage/fold0", "serving/two_stage/1")  # doctest: +SKIP
    >>> import tensorflow as tf                                    # doctest: +SKIP
    >>> sig = tf.saved_model.load("serving/two_stage/1").signatures["serving_default"]  # doctest: +SKIP
    >>> out = sig(ct=tf.zeros((1, 64, 64, 32)), spacing=tf.ones((1, 3)))  # doctest: +SKIP
    >>> out["mask"].dtype, out["volume_ml"].shape                  # doctest: +SKIP
    (tf.uint8, TensorShape([1]))
    """
    window_batch = DEFAULT_WINDOW_BATCH if window_batch is None else int(window_batch)
    if window_batch < 1:
        raise InputError("--window_batch", f"must be at least 1, got {window_batch}")
    info = check_run(model_dir)
    savedmodel.check_target(export_dir)
    # Checks above are TensorFlow-free, so a bad request fails in a second.
    savedmodel.require_tensorflow_backend()
    from tfpanc.methods.two_stage.predictor import TwoStagePredictor

    predictor = TwoStagePredictor.load(model_dir)
    return savedmodel.write_archive(
        serving_fn(predictor.coarse, predictor.fine, info, window_batch), export_dir,
        _metadata(model_dir, info, window_batch), log=log,
        summary=f"two_stage (R = {info['decimation']}, frame {info['coarse_frame']}, patch {info['fine_patch']}) "
                f"of {model_dir}, mask = 2-of-3 vote",
        training_spacing=info.get("training_spacing"))
