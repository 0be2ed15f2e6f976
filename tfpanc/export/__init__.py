"""tfpanc.export: a trained run as a TensorFlow SavedModel for TF Serving.

``python -m tfpanc.export --model_dir=RUN --export_dir=BASE/NAME [--version=N]``
writes ``BASE/NAME/N/``, a SavedModel whose ``serving_default`` signature
maps raw intensities and the voxel spacing to the pancreas probability, mask
and volume (the contract: :mod:`tfpanc.export.savedmodel`). Each method
provides its serving graph (registered as its ``export`` step, e.g.
:mod:`tfpanc.methods.cai.serving`); this package holds what is common: the
command, the contract and the atomic write, and the REST request/response
helpers of :mod:`tfpanc.export.rest`. Model code (:mod:`tfpanc.models`) stays
backend neutral; importing this package does not load TensorFlow.

Example:
>>> from tfpanc.export import export_model                      # doctest: +SKIP
>>> export_model("runs/quickstart", "serving/tfpanc")            # doctest: +SKIP
PosixPath('serving/tfpanc/1')
"""

from tfpanc.errors import InputError
from tfpanc.export.rest import feed_from_request, request_body
from tfpanc.export.savedmodel import version_folder


def export_run(model_dir, export_dir, log=print, **options):
    """Exports a trained run with its method's export step into the version folder ``export_dir``.

    Args:
        model_dir: a finished run (its run.json names the method).
        export_dir: the SavedModel folder to create (``BASE/NAME/N``).
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


def export_model(model_dir, model_folder, version=None, log=print, **options):
    """Exports a run as version ``version`` (default: the next free one) of the TF Serving model ``model_folder``.

    Returns:
        the version folder written, ``model_folder/N``.
    """
    return export_run(model_dir, version_folder(model_folder, version), log=log, **options)


__all__ = ["export_model", "export_run", "feed_from_request", "request_body"]
