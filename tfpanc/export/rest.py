"""JSON bodies and URLs of TF Serving's REST API for an exported tfpanc model.

TF Serving's ``POST /v1/models/<name>[/versions/<n>|/labels/<label>]:predict``
takes either the *row* format ``{"signature_name": ..., "instances": [...]}``
(one list element per batch row; an element is a bare value when the
signature has one input, an object keyed by input name otherwise) or the
*columnar* format ``{"inputs": {name: value}}`` (each value holds the whole
batch). It answers ``{"predictions": [...]}`` (one object per row, keyed by
output name) or ``{"outputs": {name: value}}``, and an error as
``{"error": "<message>"}`` with an HTTP 4xx/5xx status. ``GET
/v1/models/<name>`` answers the versions' states, ``GET
/v1/models/<name>/metadata`` the signatures.

:func:`request_body` builds a request from numpy volumes (``ct`` and, for
the contract of :mod:`tfpanc.export.savedmodel`, ``spacing``);
:func:`arrays_from_response` turns the answer back into arrays;
:func:`feed_from_request` does what the server does with a request body
(JSON lists to one dense tensor per signature input), so tests can check a
body against the signature without a server; :func:`model_path` and
:func:`error_message` are the URL and error halves that
:mod:`tfpanc.export.client` uses. Plain numpy: no TensorFlow here.

JSON carries every voxel as text (about 5 bytes per HU value), so a 512x512x240
CT is a ~0.3 GB request: fine for tests and small crops, but use TF Serving's
gRPC API (a binary TensorProto) for whole scans.
"""

from __future__ import annotations

import json
import urllib.parse

import numpy as np

INPUT_NAME = "ct"
SPACING_NAME = "spacing"
OUTPUT_NAMES = ("probability", "mask", "volume_ml")
SIGNATURE = "serving_default"


def request_body(volumes, fmt="instances", signature_name=SIGNATURE, spacing=None):
    """A predict request for one or more ``[x, y, z]`` volumes of one shape.

    Args:
        volumes: one ``[x, y, z]`` array, or a sequence / ``[n, x, y, z]``
            array of volumes with the same shape.
        fmt: ``"instances"`` (row format) or ``"inputs"`` (columnar).
        signature_name: the SavedModel signature to call.
        spacing: voxel spacing in mm, ``(3,)`` for every volume or ``[n, 3]``;
            None sends ``ct`` alone (a SavedModel whose signature has no
            ``spacing`` input).

    Returns:
        a JSON-serialisable dict.

    Example:
    >>> request_body(np.zeros((2, 2, 1)))["instances"]
    [[[[0.0], [0.0]], [[0.0], [0.0]]]]
    >>> row = request_body(np.zeros((1, 1, 1)), spacing=(0.5, 0.5, 2.0))["instances"][0]
    >>> row["spacing"], row["ct"]
    ([0.5, 0.5, 2.0], [[[0.0]]])
    """
    batch = np.asarray(volumes, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4:
        raise ValueError(f"expected [x, y, z] volumes, got an array of shape {batch.shape}")
    columns = {INPUT_NAME: batch.tolist()}
    if spacing is not None:
        sp = np.broadcast_to(np.asarray(spacing, np.float32), (len(batch), 3))
        columns[SPACING_NAME] = sp.tolist()
    if fmt == "instances":
        if spacing is None:
            return {"signature_name": signature_name, "instances": columns[INPUT_NAME]}
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
        return {"signature_name": signature_name, "instances": rows}
    if fmt == "inputs":
        return {"signature_name": signature_name, "inputs": columns}
    raise ValueError(f"unknown request format {fmt!r} (use 'instances' or 'inputs')")


def feed_from_request(body, input_names=(INPUT_NAME,), dtype=np.float32):
    """The signature's keyword arguments that TF Serving makes of a request body.

    Args:
        body: a decoded request (``instances`` or ``inputs``).
        input_names: the signature's input names.
        dtype: the inputs' dtype.

    Returns:
        ``{name: ndarray}`` with the batch as axis 0.

    Raises:
        ValueError: what TF Serving rejects (both or neither key, missing or
            extra names, ragged lists).

    Example:
    >>> feed_from_request({"instances": [[[[1.0]]]]})["ct"].shape
    (1, 1, 1, 1)
    """
    if ("instances" in body) == ("inputs" in body):
        raise ValueError("a request holds exactly one of 'instances' and 'inputs'")
    names = list(input_names)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValueError("'instances' must be a non-empty list")
        if all(isinstance(r, dict) for r in rows):
            for r in rows:
                if sorted(r) != sorted(names):
                    raise ValueError(f"instance keys {sorted(r)} differ from inputs {names}")
            columns = {n: [r[n] for r in rows] for n in names}
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise ValueError(f"the signature has inputs {names}: each instance must be an object")
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            if sorted(inputs) != sorted(names):
                raise ValueError(f"input keys {sorted(inputs)} differ from inputs {names}")
            columns = inputs
        elif len(names) == 1:
            columns = {names[0]: inputs}
        else:
            raise ValueError(f"the signature has inputs {names}: 'inputs' must be an object")
    # A ragged list gives an object array (or raises) in numpy: both are refused.
    return {n: np.asarray(v, dtype=dtype) for n, v in columns.items()}


def arrays_from_response(response):
    """``{output name: ndarray}`` (batch first) from a predict response body.

    Example:
    >>> out = arrays_from_response({"predictions": [{"mask": [[[1]]], "probability": [[[0.9]]]}]})
    >>> out["mask"].shape, out["mask"].dtype.name
    ((1, 1, 1, 1), 'uint8')
    """
    if "predictions" in response:
        rows = response["predictions"]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ValueError("'predictions' must be a list of objects keyed by output name")
        columns = {n: [r[n] for r in rows] for n in rows[0]}
    elif "outputs" in response:
        columns = response["outputs"]
        if not isinstance(columns, dict):
            raise ValueError("'outputs' must be an object keyed by output name")
    else:
        raise ValueError("a predict response holds 'predictions' or 'outputs'")
    return {n: np.asarray(v, dtype=np.uint8 if n == "mask" else np.float32)
            for n, v in columns.items()}


def model_path(model, version=None, verb=""):
    """The URL path of a model (``verb``: ``":predict"``, ``"/metadata"`` or ``""`` for its status).

    Args:
        model: the model name of TF Serving's config.
        version: None (the latest), a version number, or a label string.
        verb: what to ask.

    Example:
    >>> model_path("tfpanc", 3, ":predict"), model_path("tfpanc", "stable", "/metadata")
    ('/v1/models/tfpanc/versions/3:predict', '/v1/models/tfpanc/labels/stable/metadata')
    >>> model_path("tfpanc")
    '/v1/models/tfpanc'
    """
    path = "/v1/models/" + urllib.parse.quote(str(model), safe="")
    if isinstance(version, int):
        path += f"/versions/{version}"
    elif version is not None:
        path += "/labels/" + urllib.parse.quote(str(version), safe="")
    return path + verb


def error_message(body):
    """The message of an error answer: ``{"error": ...}``'s text, else the body itself, on one line.

    Example:
    >>> error_message(b'{ "error": "Servable not found for request: Latest(x)" }')
    'Servable not found for request: Latest(x)'
    >>> error_message(b"<html>Bad Gateway</html>")
    '<html>Bad Gateway</html>'
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and "error" in decoded:
        text = str(decoded["error"])
    return " ".join(text.split())
