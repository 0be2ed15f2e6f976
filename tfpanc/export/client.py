"""Clients of TF Serving for tfpanc's exported models, over gRPC and REST.

A model exported by ``python -m tfpanc.export`` and served by TF Serving
(``tensorflow_model_server`` or the ``tensorflow/serving`` image) takes
``ct`` float32 ``[n, x, y, z]`` and ``spacing`` float32 ``[n, 3]`` and answers
``probability``, ``mask`` and ``volume_ml`` (the contract of
:mod:`tfpanc.export.savedmodel`). :func:`connect` returns a client of one
model (and optionally one version number or label) on one server:

* :class:`GrpcClient` (default): ``tensorflow-serving-api``'s
  ``PredictionService`` with binary TensorProtos and message limits of
  :data:`MAX_MESSAGE_BYTES`, enough for a whole 512x512x400 float32 CT and
  its probability map; without probabilities it asks only for the mask
  (``output_filter``), a quarter of the bytes.
* :class:`RestClient`: ``POST /v1/models/NAME[/versions/N]:predict`` with the
  JSON of :mod:`tfpanc.export.rest` (``instances`` rows or ``inputs``
  columns), through urllib. JSON costs ~5 bytes a voxel each way; and TF
  Serving's REST handler gives up after ``--rest_api_timeout_in_ms`` (30 s by
  default), so raise that for whole scans on CPU.

The client reads the signature's input names from the server's model
metadata before its first predict and sends the contract's inputs it names,
so an export from before ``spacing`` (``ct`` alone, no ``volume_ml``: the
client then computes the volume from the mask) is served too, and a model
that is not a tfpanc export is refused in one line. Every failure (the
server's ``{"error": ...}`` answers, HTTP 4xx/5xx, gRPC status codes,
connection refused, timeouts, answers without a mask) is one
:class:`tfpanc.errors.InputError` naming the server. TensorFlow (for tensor
protos) and grpc are imported when a gRPC client is made, not with this
module.

Example:
>>> from tfpanc.data.io import load_volume                                    # doctest: +SKIP
>>> ct = load_volume("ct.nii.gz")                                             # doctest: +SKIP
>>> with connect("localhost:8500", "tfpanc_cai") as client:                   # doctest: +SKIP
...     out = client.predict(ct.array, ct.spacing)
>>> out["mask"].shape == (1,) + ct.array.shape, float(out["volume_ml"][0])    # doctest: +SKIP
(True, 71.3)
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.request

import numpy as np

from tfpanc.errors import InputError
from tfpanc.export import rest

PROTOCOLS = ("grpc", "rest")
DEFAULT_TIMEOUT_S = 600.0
# A 512x512x400 float32 CT is 0.42 GB, its probability answer as much again: 1 GiB holds either.
MAX_MESSAGE_BYTES = 1 << 30
CONTRACT_INPUTS = (rest.INPUT_NAME, rest.SPACING_NAME)
_MAX_MESSAGE_CHARS = 400  # server messages can quote a whole tensor; one line stays readable


def parse_server(text):
    """``HOST:PORT`` checked (``[::1]:8500`` for IPv6), else a one-line InputError.

    Example:
    >>> parse_server("localhost:8500"), parse_server("[::1]:8501")
    ('localhost:8500', '[::1]:8501')
    """
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", str(text or "").strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise InputError("--server", f"expected HOST:PORT (e.g. localhost:8500), got {text!r}")
    return f"{match.group(1)}:{int(match.group(2))}"


def parse_version(text):
    """None (the server's latest), a version number, or a version label (``stable``).

    Example:
    >>> parse_version(None), parse_version("3"), parse_version("stable")
    (None, 3, 'stable')
    """
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text):
        return text
    raise InputError("--version", f"expected a positive version number or a label such as stable, got {text!r}")


def _one_line(text):
    # Bytes of another protocol can arrive as text: keep the line printable.
    text = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS - 3] + "..."


class ServingClient:
    """One model (and version) on one TF Serving server; see :func:`connect`.

    Args:
        server: ``HOST:PORT``.
        model: the model name in the server's config.
        version: None (the latest), a version number, or a label (a string).
        timeout: seconds to wait for an answer.
    """

    protocol = ""
    default_port = 0

    def __init__(self, server, model, version=None, timeout=DEFAULT_TIMEOUT_S):
        self.server = parse_server(server)
        if not model:
            raise InputError("--model", "name the model to ask the server for")
        self.model = str(model)
        self.version = version if isinstance(version, int) else parse_version(version)
        self.timeout = float(timeout)
        self._signature = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Releases the connection."""

    def describe(self):
        """``model 'NAME'`` with its version or label, for messages."""
        if self.version is None:
            return f"model {self.model!r}"
        kind = "version" if isinstance(self.version, int) else "label"
        return f"model {self.model!r} {kind} {self.version}"

    def error(self, problem):
        return InputError(self.server, f"TF Serving ({self.protocol}): {problem}")

    def unreachable(self, reason):
        return self.error(f"cannot connect ({_one_line(reason)}); is the server running, and is this its "
                          f"{self.protocol} port ({self.default_port} by default)?")

    def timed_out(self):
        return self.error(f"no answer within {self.timeout:g} s (--timeout)")

    def answered(self, code, message):
        return self.error(f"{code} for {self.describe()}: {_one_line(message)}")

    def signature(self):
        """``(inputs, outputs)``: the names of the model's ``serving_default`` signature (asked once)."""
        if self._signature is None:
            inputs, outputs = self._ask_signature()
            if rest.INPUT_NAME not in inputs or set(inputs) - set(CONTRACT_INPUTS) or \
                    not {"probability", "mask"} <= set(outputs):
                raise self.error(f"{self.describe()} takes {sorted(inputs)} and answers {sorted(outputs)}, not a "
                                 f"tfpanc export ({list(CONTRACT_INPUTS)} -> {list(rest.OUTPUT_NAMES)})")
            self._signature = list(inputs), list(outputs)
        return self._signature

    def predict(self, volumes, spacing, outputs=None):
        """The model's answer for ``[x, y, z]`` (or ``[n, x, y, z]``) volumes of one shape.

        Args:
            volumes: raw intensities, as :func:`tfpanc.data.io.load_volume` gives them.
            spacing: voxel spacing in mm, ``(3,)`` or ``[n, 3]``.
            outputs: names to ask for (gRPC's ``output_filter``); None for all.

        Returns:
            ``{"mask": uint8 [n, x, y, z], "volume_ml": float32 [n][, "probability":
            float32 [n, x, y, z]]}`` (``volume_ml`` computed from the mask if the
            model has no such output).

        Raises:
            InputError: a server error, no server, a timeout, or an answer
                that is not the contract's.
        """
        batch = np.asarray(volumes, np.float32)
        batch = batch[None] if batch.ndim == 3 else batch
        if batch.ndim != 4:
            raise ValueError(f"expected [x, y, z] or [n, x, y, z] volumes, got an array of shape {batch.shape}")
        sp = np.broadcast_to(np.asarray(spacing, np.float32), (len(batch), 3))
        feed = {rest.INPUT_NAME: batch, rest.SPACING_NAME: np.ascontiguousarray(sp)}
        names, served = self.signature()
        if outputs is not None and "volume_ml" not in served:
            outputs = [o for o in outputs if o != "volume_ml"]  # an export from before the contract had it
        out = self._predict({n: feed[n] for n in names}, outputs)
        for name in ["mask"] + [o for o in (outputs or ["probability"]) if o != "volume_ml"]:
            if name not in out:
                raise self.error(f"{self.describe()} answered without output {name!r} (outputs: {sorted(out)})")
            if tuple(np.shape(out[name])) != batch.shape:
                raise self.error(f"{self.describe()} answered {name} of shape {list(np.shape(out[name]))} for "
                                 f"ct of shape {list(batch.shape)}")
        result = {"mask": np.asarray(out["mask"]).astype(np.uint8)}
        if "probability" in out and (outputs is None or "probability" in outputs):
            result["probability"] = np.asarray(out["probability"], np.float32)
        if "volume_ml" in out:
            if np.size(out["volume_ml"]) != len(batch):
                raise self.error(f"{self.describe()} answered volume_ml of shape {list(np.shape(out['volume_ml']))} "
                                 f"for {len(batch)} volume(s)")
            result["volume_ml"] = np.asarray(out["volume_ml"], np.float32).reshape(len(batch))
        else:
            count = result["mask"].reshape(len(batch), -1).sum(axis=1)
            result["volume_ml"] = (count * np.prod(sp.astype(np.float64), axis=1) / 1000.0).astype(np.float32)
        return result

    def predictor(self):
        """``predict(image, probability=False, spacing=None)`` as a method's predictor (for ``tfpanc.predict``)."""

        def predict(image, probability=False, spacing=None):
            outputs = ["mask", "volume_ml"] + (["probability"] if probability else [])
            out = self.predict(image, (1.0, 1.0, 1.0) if spacing is None else spacing, outputs)
            answer = {"mask": out["mask"][0], "volume_ml": float(out["volume_ml"][0]),
                      "summary": f"{self.describe()} on TF Serving ({self.protocol})"}
            if probability:
                answer["probability"] = out["probability"][0]
            return answer

        return predict

    def status(self):
        """``{version: state}`` (``"AVAILABLE"``, ``"LOADING"``, ...) of the model's versions on the server."""
        raise NotImplementedError

    def wait_until_available(self, timeout_s=60.0, poll_s=0.2):
        """Waits for a version to be ``AVAILABLE`` (a server that is starting); returns :meth:`status`.

        Raises:
            InputError: the last error, or the states, when ``timeout_s`` has passed.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                states = self.status()
                if "AVAILABLE" in states.values():
                    return states
                last = self.error(f"{self.describe()} is not available yet: {states}")
            except InputError as e:
                last = e
            if time.monotonic() > deadline:
                raise last
            time.sleep(poll_s)

    def _ask_signature(self):
        raise NotImplementedError

    def _predict(self, feed, outputs):
        raise NotImplementedError


class GrpcClient(ServingClient):
    """TF Serving's gRPC ``PredictionService`` and ``ModelService`` (port 8500 by default)."""

    protocol = "gRPC"
    default_port = 8500

    def __init__(self, server, model, version=None, timeout=DEFAULT_TIMEOUT_S):
        super().__init__(server, model, version, timeout)
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._grpc = grpc
        self._channel = grpc.insecure_channel(self.server, options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def _spec(self, spec, signature=True):
        spec.name = self.model
        if signature:
            spec.signature_name = rest.SIGNATURE
        if isinstance(self.version, int):
            spec.version.value = self.version
        elif self.version is not None:
            spec.version_label = self.version

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
            if code == self._grpc.StatusCode.UNAVAILABLE:
                raise self.unreachable(details) from None
            if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
                raise self.timed_out() from None
            raise self.answered(code.name, details) from None

    def _ask_signature(self):
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self._predictions.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signatures):
            raise self.error(f"{self.describe()} answered metadata without signatures")
        if rest.SIGNATURE not in signatures.signature_def:
            raise self.error(f"{self.describe()} has no signature {rest.SIGNATURE!r} "
                             f"(it has {sorted(signatures.signature_def)})")
        signature = signatures.signature_def[rest.SIGNATURE]
        return list(signature.inputs), list(signature.outputs)

    def _predict(self, feed, outputs):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        for name, value in feed.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        if outputs:
            request.output_filter.extend(outputs)
        response = self._call(self._predictions.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def status(self):
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, signature=False)
        response = self._call(self._models.GetModelStatus, request)
        names = get_model_status_pb2.ModelVersionStatus.State
        return {int(s.version): names.Name(s.state) for s in response.model_version_status}


class RestClient(ServingClient):
    """TF Serving's REST API over HTTP (port 8501 by default), JSON in ``fmt`` (instances or inputs)."""

    protocol = "REST"
    default_port = 8501

    def __init__(self, server, model, version=None, timeout=DEFAULT_TIMEOUT_S, fmt="instances"):
        super().__init__(server, model, version, timeout)
        if fmt not in ("instances", "inputs"):
            raise InputError("--rest_format", f"expected instances or inputs, got {fmt!r}")
        self.fmt = fmt

    def _request(self, path, body=None):
        url = f"http://{self.server}{path}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as e:
            raise self.answered(f"HTTP {e.code}", rest.error_message(e.read())) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                raise self.timed_out() from None
            raise self.unreachable(e.reason) from None
        except (TimeoutError, socket.timeout):
            raise self.timed_out() from None
        except (http.client.HTTPException, OSError) as e:
            raise self.error(f"the answer is not HTTP ({type(e).__name__}); is this the REST port "
                             f"({self.default_port} by default)?") from None
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise self.error(f"answered {len(raw)} bytes that are not JSON for {self.describe()}") from None
        if isinstance(decoded, dict) and "error" in decoded:
            raise self.answered("error", rest.error_message(raw))
        return decoded

    def _ask_signature(self):
        answer = self._request(rest.model_path(self.model, self.version, "/metadata"))
        try:
            signatures = answer["metadata"]["signature_def"]["signature_def"]
        except (KeyError, TypeError):
            raise self.error(f"{self.describe()} answered metadata without signatures") from None
        if rest.SIGNATURE not in signatures:
            raise self.error(f"{self.describe()} has no signature {rest.SIGNATURE!r} (it has {sorted(signatures)})")
        signature = signatures[rest.SIGNATURE]
        return list(signature.get("inputs", {})), list(signature.get("outputs", {}))

    def _predict(self, feed, outputs):
        body = rest.request_body(feed[rest.INPUT_NAME], self.fmt, spacing=feed.get(rest.SPACING_NAME))
        answer = self._request(rest.model_path(self.model, self.version, ":predict"), body)
        try:
            out = rest.arrays_from_response(answer)
        except (ValueError, KeyError, TypeError) as e:
            raise self.error(f"{self.describe()} answered an unreadable prediction ({_one_line(e)})") from None
        # REST has no output filter: drop what was not asked for.
        return out if not outputs else {k: v for k, v in out.items() if k in outputs}

    def status(self):
        answer = self._request(rest.model_path(self.model, self.version))
        try:
            return {int(s["version"]): s["state"] for s in answer["model_version_status"]}
        except (KeyError, TypeError, ValueError):
            raise self.error(f"{self.describe()} answered a status without model_version_status") from None


def connect(server, model, version=None, protocol="grpc", rest_format="instances", timeout=DEFAULT_TIMEOUT_S):
    """A client of ``model`` on the TF Serving at ``server``.

    Args:
        server: ``HOST:PORT`` (gRPC: 8500, REST: 8501 by TF Serving's defaults).
        model: the model name of the server's config.
        version: None (the latest), a version number, or a label (``"stable"``).
        protocol: ``"grpc"`` or ``"rest"``.
        rest_format: the REST body, ``"instances"`` (row) or ``"inputs"`` (columnar).
        timeout: seconds to wait for each answer.

    Example:
    >>> connect("localhost:8501", "tfpanc_cai", "2", protocol="rest").describe()
    "model 'tfpanc_cai' version 2"
    >>> connect("localhost", "tfpanc_cai")
    Traceback (most recent call last):
    ...
    tfpanc.errors.InputError: error: --server: expected HOST:PORT (e.g. localhost:8500), got 'localhost'
    """
    if protocol == "grpc":
        return GrpcClient(server, model, version, timeout)
    if protocol == "rest":
        return RestClient(server, model, version, timeout, fmt=rest_format)
    raise InputError("--protocol", f"expected grpc or rest, got {protocol!r}")
