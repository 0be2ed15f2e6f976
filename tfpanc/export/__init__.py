"""tfpanc.export: a trained run as a TensorFlow SavedModel for TF Serving.

``python -m tfpanc.export --model_dir=RUN --export_dir=OUT`` writes a
SavedModel whose ``serving_default`` signature maps a raw CT volume in HU to
the pancreas probability and mask. Each method provides its serving graph
(registered as its ``export`` step, e.g. :mod:`tfpanc.methods.cai.serving`,
which documents the contract); this package holds what is common: the
command, and the REST request/response helpers of :mod:`tfpanc.export.rest`.
Model code (:mod:`tfpanc.models`) stays backend neutral; importing this
package does not load TensorFlow.

Example:
>>> from tfpanc.export import export_run                 # doctest: +SKIP
>>> export_run("runs/quickstart", "serving/tfpanc/1")    # doctest: +SKIP
"""

from tfpanc.errors import InputError
from tfpanc.export.rest import feed_from_request, request_body


def export_run(model_dir, export_dir, log=print, **options):
    """Exports a trained run with its method's export step.

    Args:
        model_dir: a finished run (its run.json names the method).
        export_dir: the SavedModel folder to create.
        log: progress printer.
        **options: the method's export options (cai: ``slice_size``, ``threshold``).

    Raises:
        InputError: the method has no export, or the run cannot be served.
    """
    from tfpanc.methods import registry

    method, _ = registry.method_of_run(model_dir)
    if not method.has("export"):
        raise InputError(model_dir, f"method {method.name} has no SavedModel export yet")
    return method.call("export", model_dir, export_dir, log=log, **options)


__all__ = ["export_run", "feed_from_request", "request_body"]
