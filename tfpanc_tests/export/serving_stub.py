"""A TF Serving stand-in on loopback, for the client tests: REST and gRPC over ``BASE/NAME/N`` SavedModels.

TF Serving's server ships only as a Docker image and in Google's apt
repository (the ``tensorflow-serving-api`` wheel is the API alone), so the
client tests talk to this instead. It implements the parts of the documented
contract that :mod:`tfpanc.export.client` uses, with TF Serving's answers:

* REST (``http.server`` in a thread): ``GET /v1/models/NAME`` (the versions'
  ``model_version_status``), ``GET .../metadata`` (the SavedModel's own
  ``signature_def`` map, as JSON with proto field names), ``POST
  .../NAME[/versions/N|/labels/L]:predict`` with ``instances`` (answered as
  ``predictions`` rows) or ``inputs`` (answered as ``outputs`` columns).
* gRPC (grpcio): ``PredictionService.Predict`` (``output_filter`` included)
  and ``GetModelMetadata``, ``ModelService.GetModelStatus``, with 1 GiB
  message limits like a real server started for whole volumes.
* Errors: an unknown model, version or label is ``NOT_FOUND`` (HTTP 404), a
  request the signature cannot take (names, dtypes, ranks, JSON) is
  ``INVALID_ARGUMENT`` (400), a graph failure ``INTERNAL`` (500); REST bodies
  are ``{"error": "<message>"}``.

A version is a numbered folder holding ``saved_model.pb``, loaded with
``tf.saved_model.load`` on first use; the latest is the highest. Test hooks:
:meth:`ServingStub.fail_next` makes the next predict answer an error,
``delay_s`` delays every predict (timeouts), ``requests`` records what was
asked.

Example:
>>> with ServingStub("serving", labels={"tfpanc": {"stable": 1}}) as stub:   # doctest: +SKIP
...     print(stub.rest_address, stub.grpc_address)
127.0.0.1:41013 127.0.0.1:39555
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tfpanc.export import rest

MAX_MESSAGE_BYTES = 1 << 30
# TF Serving's HTTP status of a gRPC code (its REST handler's mapping, the codes the stub answers).
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "NOT_FOUND": 404,
               "UNIMPLEMENTED": 501, "UNAVAILABLE": 503}
_URL = re.compile(r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                  r"(?P<verb>/metadata|:predict)?")


class ServingError(Exception):
    """An error answer: a gRPC status code name and TF Serving's message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


class _Models:
    """The servables under BASE: resolution of versions and labels, loading, one predict."""

    def __init__(self, base, labels):
        self.base = Path(base)
        self.labels = {name: dict(v) for name, v in (labels or {}).items()}
        self._loaded = {}
        self._lock = threading.Lock()

    def versions(self, name):
        folder = self.base / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir()
                      if p.name.isdigit() and (p / "saved_model.pb").is_file())

    def resolve(self, name, version=None, label=None):
        versions = self.versions(name)
        if label:
            if label not in self.labels.get(name, {}):
                raise ServingError("NOT_FOUND", f"Unrecognized servable version label: {label}")
            version = self.labels[name][label]
        if version is None:
            if not versions:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
            return versions[-1]
        if version not in versions:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
        return version

    def load(self, name, version):
        """``(signatures, signature_defs)`` of one version: callables and the SavedModel's SignatureDef map."""
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        with self._lock:
            key = (name, version)
            if key not in self._loaded:
                path = self.base / name / str(version)
                proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
                self._loaded[key] = (tf.saved_model.load(str(path)).signatures,
                                     proto.meta_graphs[0].signature_def)
            return self._loaded[key]

    def signature_def(self, name, version, signature_name):
        _, defs = self.load(name, version)
        signature_name = signature_name or rest.SIGNATURE
        if signature_name not in defs:
            raise ServingError("INVALID_ARGUMENT", f'Serving signature key "{signature_name}" not found.')
        return signature_name, defs[signature_name]

    def predict(self, name, version, signature_name, feed, output_filter=()):
        """``{output: ndarray}`` of a feed ``{input: ndarray}``; TF Serving's checks first."""
        import tensorflow as tf

        signature_name, sigdef = self.signature_def(name, version, signature_name)
        expected, sent = sorted(sigdef.inputs), sorted(feed)
        if expected != sent:
            raise ServingError("INVALID_ARGUMENT", (
                f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sent)}}}) "
                f"!= len({{{','.join(expected)}}}). Sent extra: {{{','.join(set(sent) - set(expected))}}}. "
                f"Missing but required: {{{','.join(set(expected) - set(sent))}}}."))
        for i, key in enumerate(expected):
            want = tf.as_dtype(sigdef.inputs[key].dtype)
            if tf.as_dtype(feed[key].dtype) != want:
                raise ServingError("INVALID_ARGUMENT", f"Expects arg[{i}] to be {want.name} but "
                                   f"{tf.as_dtype(feed[key].dtype).name} is provided")
        for key in output_filter:
            if key not in sigdef.outputs:
                raise ServingError("INVALID_ARGUMENT", f"output tensor alias not found in signature: {key} "
                                   f"Outputs expected to be in the set {{{','.join(sorted(sigdef.outputs))}}}.")
        signatures, _ = self.load(name, version)
        try:
            out = signatures[signature_name](**{k: tf.constant(v) for k, v in feed.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            raise ServingError("INVALID_ARGUMENT", str(e).strip()) from None
        except tf.errors.OpError as e:
            raise ServingError("INTERNAL", str(e).strip()) from None
        return {k: v.numpy() for k, v in out.items() if not output_filter or k in output_filter}


class ServingStub:
    """REST and gRPC TF Serving stand-ins on 127.0.0.1 (free ports), over the models under ``base``.

    Args:
        base: the folder of ``NAME/N/`` SavedModels.
        labels: ``{model name: {label: version}}`` (models.config's ``version_labels``).
        grpc_port, rest_port: the ports to listen on; 0 picks free ones.
    """

    def __init__(self, base, labels=None, grpc_port=0, rest_port=0):
        self.models = _Models(base, labels)
        self._ports = grpc_port, rest_port
        self.delay_s = 0.0
        self.requests = []  # (protocol, what, model, version asked for)
        self._failure = None
        self._http = self._grpc = None

    def fail_next(self, code, message):
        """The next predict (either protocol) answers ``code`` (a gRPC status name) with ``message``."""
        self._failure = ServingError(code, message)

    def _before_predict(self):
        failure, self._failure = self._failure, None
        if self.delay_s:
            time.sleep(self.delay_s)
        if failure is not None:
            raise failure

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._http = ThreadingHTTPServer(("127.0.0.1", self._ports[1]), _rest_handler(self))
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.rest_address = f"127.0.0.1:{self._http.server_address[1]}"
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        predictions, status = _servicers(self)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(predictions, self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(status, self._grpc)
        self.grpc_address = f"127.0.0.1:{self._grpc.add_insecure_port(f'127.0.0.1:{self._ports[0]}')}"
        self._grpc.start()
        return self

    def stop(self):
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=None)

    def status(self, name, version=None, label=None):
        if version is None and label is None:
            versions = self.models.versions(name)
            if not versions:
                raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        else:
            versions = [self.models.resolve(name, version, label)]
        return versions


def _rest_handler(stub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # the tests' output stays readable
            pass

        def _answer(self, status, body):
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a client that timed out has gone

        def _route(self, method):
            path = urllib.parse.unquote(self.path)
            match = _URL.fullmatch(path)
            verb = match and match.group("verb")
            if not match or (method == "POST") != (verb == ":predict"):
                raise ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {path}")
            version = None if match.group("version") is None else int(match.group("version"))
            return match.group("name"), version, match.group("label"), verb

        def do_GET(self):
            try:
                name, version, label, verb = self._route("GET")
                stub.requests.append(("rest", verb or "status", name, version or label))
                if verb == "/metadata":
                    self._answer(200, _metadata_json(stub.models, name, version, label))
                    return
                states = [{"version": str(v), "state": "AVAILABLE",
                           "status": {"error_code": "OK", "error_message": ""}}
                          for v in stub.status(name, version, label)]
                self._answer(200, {"model_version_status": states})
            except ServingError as e:
                self._answer(HTTP_STATUS.get(e.code, 500), {"error": e.message})

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                name, version, label, _ = self._route("POST")
                stub.requests.append(("rest", "predict", name, version or label))
                version = stub.models.resolve(name, version, label)
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {e}") from None
                if not isinstance(body, dict):
                    raise ServingError("INVALID_ARGUMENT", "JSON Value: not an object")
                signature_name, sigdef = stub.models.signature_def(name, version, body.get("signature_name"))
                try:
                    feed = rest.feed_from_request(body, list(sigdef.inputs))
                except ValueError as e:
                    raise ServingError("INVALID_ARGUMENT", str(e)) from None
                stub._before_predict()
                out = stub.models.predict(name, version, signature_name, feed)
                if "instances" in body:
                    n = len(next(iter(out.values())))
                    self._answer(200, {"predictions": [{k: v[i].tolist() for k, v in out.items()}
                                                       for i in range(n)]})
                else:
                    self._answer(200, {"outputs": {k: v.tolist() for k, v in out.items()}})
            except ServingError as e:
                self._answer(HTTP_STATUS.get(e.code, 500), {"error": e.message})

    return Handler


def _metadata_json(models, name, version, label):
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    version = models.resolve(name, version, label)
    _, defs = models.load(name, version)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, sigdef in defs.items():
        signatures.signature_def[key].CopyFrom(sigdef)
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": json_format.MessageToDict(signatures, preserving_proto_field_name=True)}}


def _spec_of(request):
    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    return spec.name, version, spec.version_label or None


def _abort(context, error):
    import grpc

    context.abort(getattr(grpc.StatusCode, error.code), error.message)


def _servicers(stub):
    """The PredictionService and ModelService servicers (the generated bases answer UNIMPLEMENTED
    for the rest: Classify, Regress, MultiInference, HandleReloadConfigRequest)."""
    import tensorflow as tf
    from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                         predict_pb2, prediction_service_pb2_grpc)

    class Predictions(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            name, version, label = _spec_of(request)
            stub.requests.append(("grpc", "predict", name, version or label))
            try:
                version = stub.models.resolve(name, version, label)
                feed = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                stub._before_predict()
                out = stub.models.predict(name, version, request.model_spec.signature_name, feed,
                                          list(request.output_filter))
            except ServingError as e:
                _abort(context, e)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = name
            response.model_spec.version.value = version
            response.model_spec.signature_name = request.model_spec.signature_name or rest.SIGNATURE
            for key, value in out.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

        def GetModelMetadata(self, request, context):
            name, version, label = _spec_of(request)
            stub.requests.append(("grpc", "metadata", name, version or label))
            try:
                if list(request.metadata_field) != ["signature_def"]:
                    raise ServingError("INVALID_ARGUMENT", "Metadata field signature_def is the one supported")
                version = stub.models.resolve(name, version, label)
                _, defs = stub.models.load(name, version)
            except ServingError as e:
                _abort(context, e)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for key, sigdef in defs.items():
                signatures.signature_def[key].CopyFrom(sigdef)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = name
            response.model_spec.version.value = version
            response.metadata["signature_def"].Pack(signatures)
            return response

    class ModelStatus(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            name, version, label = _spec_of(request)
            stub.requests.append(("grpc", "status", name, version or label))
            try:
                versions = stub.status(name, version, label)
            except ServingError as e:
                _abort(context, e)
            response = get_model_status_pb2.GetModelStatusResponse()
            for v in versions:
                status = response.model_version_status.add()
                status.version = v
                status.state = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")
            return response

    return Predictions(), ModelStatus()


def free_port():
    """A loopback port nothing listens on (bound, then released), for connection-refused tests."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
