"""tfpanc.export: a trained cai run as a TensorFlow SavedModel for TF Serving.

``python -m tfpanc.export --model_dir=RUN --export_dir=OUT`` writes a
SavedModel whose ``serving_default`` signature maps a raw CT volume in HU to
the pancreas probability and mask (see :mod:`tfpanc.export.serving` for the
contract). Model code (:mod:`tfpanc.models`) stays backend neutral; only
:mod:`tfpanc.export.serving` imports TensorFlow, and only when it is used,
so importing this package does not load TensorFlow.

Example:
>>> from tfpanc.export import export_run                 # doctest: +SKIP
>>> export_run("runs/quickstart", "serving/tfpanc/1")    # doctest: +SKIP
"""

from tfpanc.export.rest import feed_from_request, request_body


def export_run(model_dir, export_dir, slice_size=None, threshold=None, log=print):
    """Exports a cai run as a SavedModel; see :func:`tfpanc.export.serving.export_run`."""
    from tfpanc.export import serving

    return serving.export_run(model_dir, export_dir, slice_size=slice_size, threshold=threshold,
                              log=log)


__all__ = ["export_run", "feed_from_request", "request_body"]
