"""The serving graph of a cai run, and its export as a TF SavedModel.

Serving contract: :mod:`tfpanc.export.savedmodel` (``ct`` ``[n, x, y, z]``
raw HU and ``spacing`` ``[n, 3]`` mm in; ``probability``, ``mask`` and
``volume_ml`` out). The volumes of one request share a shape; TF Serving's
row format sends one volume per instance. Any ``x, y, z >= 1`` is accepted
(unless the export pinned ``x = y = --slice_size``); the mask is
``probability > threshold``, the run's threshold unless the export set
another; cai does not resample, so ``spacing`` only gives the volume.

The graph is what :class:`tfpanc.methods.cai.predictor.CaiPredictor` does
in numpy: the run's HU window mapped to [0, 1], each axial slice with its two
neighbours (edge slices repeated) padded at the bottom/right with normalised
air to the network's multiple, the CNN over the slices in batches of at most
16 (fewer for large slices and wide networks, as
:func:`tfpanc.methods.cai.networks.slices_per_call`), the
fused logit's sigmoid cropped back, then for BiRNN runs the BiRNN over each
volume's whole axial sequence.

Keras' ConvLSTM2D fixes the in-plane size when it is built, but only to make
its zero initial state. Inside the serving ``tf.function`` the in-plane size
is unknown at trace time; we pass the zero state explicitly, shaped from the
input at run time, and call the trained Bidirectional layer directly, so the
exported model serves any in-plane size with no padding or cropping (the
recurrence itself is convolutions, valid at any size).
"""

from __future__ import annotations

from pathlib import Path

from tfpanc.errors import InputError
from tfpanc.export import savedmodel
from tfpanc.inference.slicewise import MAX_SLICE_BATCH


def check_run(model_dir):
    """``run.json`` of a run the export can serve, else a one-line InputError."""
    return savedmodel.served_run(
        model_dir, "cai",
        lambda info: [info.get("cnn_weights")] + ([info["birnn"].get("weights")] if info.get("birnn") else []),
        ct_only=None)  # MRI too: its per-volume normalisation is in the graph (graph_intensity)

def serving_fn(cnn, head, info, threshold):
    """The serving function ``(ct [n, x, y, z], spacing [n, 3]) -> {"probability", "mask", "volume_ml"}``.

    Args:
        cnn: the run's 2D network (channel 0 of its output: fused logits).
        head: its :class:`tfpanc.models.BiRNNHead`, or None.
        info: the run's ``run.json``.
        threshold: probability threshold of the mask.

    Returns:
        a Python function of two float32 tensors; wrap it in ``tf.function``.
    """
    import tensorflow as tf

    from tfpanc.export import graph_intensity
    from tfpanc.methods.cai import networks

    low, high = (float(v) for v in info["window"])
    # As tfpanc.data.intensity.window_ct: clip, subtract, divide, all float32.
    low32, high32, scale32 = tf.constant(low, tf.float32), tf.constant(high, tf.float32), \
        tf.constant(high - low, tf.float32)
    mri = info.get("modality", "ct") == "mri"
    multiple = networks.input_multiple(info["model"], info["num_units"])
    budget = networks.SLICE_BUDGET_PIXEL_CHANNELS // max(1, int(info.get("filters", 64)))
    bidir = None if head is None else head.get_layer("bidirectional_clstm")
    fusion = None if head is None else head.get_layer("direction_fusion")

    def cnn_probability(ct):
        shape = tf.shape(ct)
        n, h, w, z = shape[0], shape[1], shape[2], shape[3]
        if mri:  # each volume by its own statistics, as predict does ([0, 1]: air is 0 either way)
            x = graph_intensity.normalize_mri_unit(ct)
        else:
            x = (tf.clip_by_value(ct, low32, high32) - low32) / scale32
        x = tf.transpose(x, [0, 3, 1, 2])  # [n, z, x, y]: one axial slice per row
        hp = -(-h // multiple) * multiple  # round_up in tensor arithmetic
        wp = -(-w // multiple) * multiple
        x = tf.pad(x, [[0, 0], [0, 0], [0, hp - h], [0, wp - w]])  # 0 = normalised air
        flat = tf.reshape(x, [-1, hp, wp])
        count = n * z
        # As networks.slices_per_call, with the slice size known only at run time.
        batch = tf.clip_by_value(budget // (h * w), 1, MAX_SLICE_BATCH)
        steps = -(-count // batch)

        def body(i, out):
            idx = tf.range(i * batch, tf.minimum((i + 1) * batch, count))
            k = idx % z
            first = idx - k  # slice 0 of the same volume: neighbours stay inside it
            neighbours = tf.stack([first + tf.maximum(k - 1, 0), idx, first + tf.minimum(k + 1, z - 1)], -1)
            stacks = tf.transpose(tf.gather(flat, neighbours), [0, 2, 3, 1])
            logits = cnn(stacks, training=False)[..., 0]
            return i + 1, out.write(i, tf.sigmoid(logits)[:, :h, :w])

        out = tf.TensorArray(tf.float32, size=steps, infer_shape=False)
        # One batch at a time: memory is bounded by the batch, not the volume.
        _, out = tf.while_loop(lambda i, _: i < steps, body, [tf.constant(0), out],
                               parallel_iterations=1)
        return tf.reshape(out.concat(), [n, z, h, w])

    def fn(ct, spacing):
        ct = tf.convert_to_tensor(ct, tf.float32)
        shape = tf.shape(ct)
        with tf.control_dependencies([tf.debugging.assert_positive(
                shape[1:], message="ct must be [n, x, y, z] with x, y, z >= 1"),
                savedmodel.check_spacing(spacing)]):
            prob = cnn_probability(ct)  # [n, z, x, y]
        if bidir is not None:
            zeros = tf.zeros([shape[0], shape[1], shape[2], 1], tf.float32)
            both = bidir(prob[..., None], initial_state=[zeros, zeros, zeros, zeros], training=False)
            prob = tf.sigmoid(fusion(both)[..., 0])
        return savedmodel.serving_outputs(tf.transpose(prob, [0, 2, 3, 1]), spacing, threshold)

    return fn


def _metadata(model_dir, info, threshold, slice_size):
    return {"format": "tfpanc cai SavedModel", "method": "cai", "run": str(Path(model_dir).resolve()),
            "model": info["model"], "num_units": info.get("num_units"), "filters": info.get("filters"),
            "birnn": bool(info.get("birnn")), "window_hu": list(info["window"]), "threshold": threshold,
            "in_plane": slice_size or -1}


def export_run(model_dir, export_dir, slice_size=None, threshold=None, log=print):
    """Writes a cai run as a SavedModel servable by TF Serving.

    The SavedModel is written to ``<export_dir>.partial`` and renamed when
    complete, so ``export_dir`` never holds half an export. For TF Serving,
    ``export_dir`` is a version folder: ``<models>/<name>/<version>``.

    Args:
        model_dir: a finished cai run (holds run.json).
        export_dir: the SavedModel folder to create (must not exist, or be empty).
        slice_size: None serves any in-plane size; N pins the signature to
            ``x = y = N``.
        threshold: the mask threshold; None -> the run's.
        log: progress printer.

    Returns:
        ``Path(export_dir)``.

    Example:
    >>> export_run("runs/quickstart", "serving/tfpanc/1")      # doctest: +SKIP
    >>> import tensorflow as tf                                # doctest: +SKIP
    >>> sig = tf.saved_model.load("serving/tfpanc/1").signatures["serving_default"]  # doctest: +SKIP
    >>> out = sig(ct=tf.zeros((1, 64, 64, 8)), spacing=tf.ones((1, 3)))  # doctest: +SKIP
    >>> out["mask"].shape, out["volume_ml"].shape              # doctest: +SKIP
    (TensorShape([1, 64, 64, 8]), TensorShape([1]))
    """
    if slice_size is not None and int(slice_size) < 1:
        raise InputError("--slice_size", f"must be a positive number of pixels, got {slice_size}")
    info = check_run(model_dir)
    threshold = float(info.get("threshold", 0.5) if threshold is None else threshold)
    if not 0.0 < threshold < 1.0:
        raise InputError("--threshold", f"must be in (0, 1), got {threshold}")
    savedmodel.check_target(export_dir)
    # Checks above are TensorFlow-free, so a bad request fails in a second.
    savedmodel.require_tensorflow_backend()
    from tfpanc.methods.cai.networks import load_models

    cnn, head, _ = load_models(Path(model_dir), info)
    size = None if slice_size is None else int(slice_size)
    return savedmodel.write_archive(
        serving_fn(cnn, head, info, threshold), export_dir, _metadata(model_dir, info, threshold, size), log=log,
        in_plane=size,
        summary=f"{info['model']} ({'with' if head is not None else 'no'} BiRNN) of {model_dir}, "
                f"mask at probability > {threshold:g}",
        training_spacing=info.get("training_spacing"))
