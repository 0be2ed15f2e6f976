"""JSON bodies of TF Serving's REST predict API for an exported tfpanc model.

TF Serving's ``POST /v1/models/<name>:predict`` takes either the *row*
format ``{"signature_name": ..., "instances": [...]}`` (one list element per
batch row; an element is a bare value when the signature has one input, an
object keyed by input name otherwise) or the *columnar* format
``{"inputs": {name: value}}`` (each value holds the whole batch). It answers
``{"predictions": [...]}`` (one object per row, keyed by output name) or
``{"outputs": {name: value}}``.

:func:`request_body` builds a request from numpy volumes; :func:`arrays_from_response`
turns the answer back into arrays; :func:`feed_from_request` does what the
server does with a request body (JSON lists to one dense tensor per
signature input), so tests can check a body against the signature without a
server. Plain numpy: no TensorFlow here.

JSON carries every voxel as text (about 5 bytes per HU value), so a 512x512x240
CT is a ~0.3 GB request: fine for tests and small crops, but use TF Serving's
gRPC API (a binary TensorProto) for whole scans.
"""

from __future__ import annotations

import numpy as np

INPUT_NAME = "ct"
OUTPUT_NAMES = ("probability", "mask")
SIGNATURE = "serving_default"


def request_body(volumes, fmt="instances", signature_name=SIGNATURE):
    """A predict request for one or more ``[x, y, z]`` HU volumes of one shape.

    Args:
        volumes: one ``[x, y, z]`` array, or a sequence / ``[n, x, y, z]``
            array of volumes with the same shape.
        fmt: ``"instances"`` (row format) or ``"inputs"`` (columnar).
        signature_name: the SavedModel signature to call.

    Returns:
        a JSON-serialisable dict.

    Example:
    >>> body = request_body(np.zeros((2, 2, 1)))
    >>> body["instances"]
    [[[[0.0], [0.0]], [[0.0], [0.0]]]]
    """
    batch = np.asarray(volumes, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4:
        raise ValueError(f"expected [x, y, z] volumes, got an array of shape {batch.shape}")
    values = batch.tolist()
    if fmt == "instances":
        return {"signature_name": signature_name, "instances": values}
    if fmt == "inputs":
        return {"signature_name": signature_name, "inputs": {INPUT_NAME: values}}
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
        columns = {n: [r[n] for r in rows] for n in rows[0]}
    elif "outputs" in response:
        columns = response["outputs"]
    else:
        raise ValueError("a predict response holds 'predictions' or 'outputs'")
    return {n: np.asarray(v, dtype=np.uint8 if n == "mask" else np.float32)
            for n, v in columns.items()}
