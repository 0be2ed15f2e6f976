"""TF Serving clients against the in-test server (serving_stub): the answer of local predict over gRPC and
REST, versions and labels, and every server failure as one line with nothing written."""

import shutil
import subprocess
import sys
import time
import types

import nibabel as nib
import numpy as np
import pytest

from tfpanc import cli, predict
from tfpanc.data.io import load_volume
from tfpanc.errors import InputError
from tfpanc.export import client as client_lib
from tfpanc.methods.cai.random_run import write_random_run
from tfpanc_tests.export.serving_stub import ServingStub, free_port

MODEL = "tfpanc_cai"
# The random run's probabilities lie in [0.5, 0.95]: a threshold inside them makes a mixed mask.
THRESHOLD = 0.7
SPACING = (1.5, 1.25, 2.5)
CLIENTS = [("grpc", "instances"), ("rest", "instances"), ("rest", "inputs")]


def _ct(shape, seed):
    """HU volume: soft tissue noise with a brighter blob, values beyond the window on both sides."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    blob = ((x - shape[0] / 2) / 5) ** 2 + ((y - shape[1] / 2) / 4) ** 2 + ((z - shape[2] / 2) / 3) ** 2 <= 1
    return (np.where(blob, 120.0, 0.0) + rng.normal(0, 150, shape)).astype(np.float32)


def _save_old_and_foreign_models(base):
    """``old/1``: ct alone in, probability and mask out (cai's export before spacing and volume_ml);
    ``other/1``: a SavedModel that is not tfpanc's."""
    import tensorflow as tf

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32, name="ct")])
    def old(ct):
        prob = tf.sigmoid(ct / 100.0)
        return {"probability": prob, "mask": tf.cast(prob > 0.5, tf.uint8)}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def other(x):
        return {"y": x * 2.0}

    tf.saved_model.save(module, str(base / "old" / "1"), signatures={"serving_default": old})
    tf.saved_model.save(module, str(base / "other" / "1"), signatures={"serving_default": other})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One exported random run as versions 1 and 2 of MODEL (label stable = 1), a CT file on a
    non-unit grid, what local predict writes for it, and the stub serving it all."""
    from tfpanc.methods.cai.serving import export_run

    root = tmp_path_factory.mktemp("serving")
    run = write_random_run(root / "run", "pnet_msa", num_units=1, filters=4)
    base = root / "base"
    export_run(run, base / MODEL / "1", threshold=THRESHOLD, log=lambda _: None)
    # Version 2 is a copy: which version answered is read from the stub's request log.
    shutil.copytree(base / MODEL / "1", base / MODEL / "2")
    _save_old_and_foreign_models(base)
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-12.0, 7.0, 30.0)
    nib.save(nib.Nifti1Image(_ct((16, 16, 6), seed=1), affine), str(root / "ct.nii.gz"))
    local = root / "local"
    argv = [f"--model_dir={run}", f"--input={root / 'ct.nii.gz'}", f"--output={local / 'mask.nii.gz'}",
            f"--probabilities={local / 'prob.nii.gz'}", f"--threshold={THRESHOLD}"]
    local.mkdir()
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0
    prob = nib.load(str(local / "prob.nii.gz")).get_fdata(dtype=np.float32)
    mask = np.asarray(nib.load(str(local / "mask.nii.gz")).dataobj)
    # A flat map or a mask of one value would make the comparisons weak.
    assert prob.std() > 1e-2 and 0.2 < mask.mean() < 0.8, (prob.std(), mask.mean())
    with ServingStub(base, labels={MODEL: {"stable": 1}}) as stub:
        yield types.SimpleNamespace(root=root, stub=stub, volume=load_volume(root / "ct.nii.gz"),
                                    local_prob=prob, local_mask=nib.load(str(local / "mask.nii.gz")))


def _connect(served, protocol, fmt="instances", model=MODEL, version=None, timeout=30.0):
    address = served.stub.grpc_address if protocol == "grpc" else served.stub.rest_address
    return client_lib.connect(address, model, version, protocol, fmt, timeout)


def _clear(prob, threshold=THRESHOLD):
    """Voxels where float noise cannot flip the mask."""
    return np.abs(prob - threshold) > 1e-4


def test_served_answer_equals_local_predict_on_both_protocols(served):
    volume = served.volume
    answers = {}
    for protocol, fmt in CLIENTS:
        with _connect(served, protocol, fmt) as client:
            answers[protocol, fmt] = out = client.predict(volume.array, volume.spacing)
        assert out["probability"].shape == (1,) + volume.array.shape and out["mask"].dtype == np.uint8
        np.testing.assert_allclose(out["probability"][0], served.local_prob, atol=1e-4)
        clear = _clear(served.local_prob)
        np.testing.assert_array_equal(out["mask"][0][clear], served.local_prob[clear] > THRESHOLD)
        expected_ml = out["mask"].sum() * np.prod(SPACING) / 1000.0
        assert out["volume_ml"].shape == (1,) and out["volume_ml"][0] == pytest.approx(expected_ml, rel=1e-5)
    # Binary TensorProtos and JSON text carry the same float32 values.
    for key in CLIENTS[1:]:
        for name in ("probability", "mask", "volume_ml"):
            np.testing.assert_array_equal(answers[key][name], answers[CLIENTS[0]][name])


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_predict_cli_with_server_writes_what_local_predict_writes(served, protocol, tmp_path, capsys):
    address = served.stub.grpc_address if protocol == "grpc" else served.stub.rest_address
    argv = [f"--server={address}", f"--protocol={protocol}", f"--model={MODEL}",
            f"--input={served.root / 'ct.nii.gz'}", f"--output={tmp_path / 'mask.nii.gz'}",
            f"--probabilities={tmp_path / 'prob.nii.gz'}"]
    assert cli.invoke(predict.define_flags, predict.main, argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    mask = nib.load(str(tmp_path / "mask.nii.gz"))
    np.testing.assert_array_equal(mask.affine, served.local_mask.affine)  # the input's grid
    local_mask = np.asarray(served.local_mask.dataobj)
    clear = _clear(served.local_prob)
    np.testing.assert_array_equal(np.asarray(mask.dataobj)[clear], local_mask[clear])
    np.testing.assert_allclose(nib.load(str(tmp_path / "prob.nii.gz")).get_fdata(), served.local_prob, atol=1e-4)
    ml = local_mask.sum() * np.prod(SPACING) / 1000.0
    assert f"pancreas {ml:.1f} mL, model '{MODEL}' on TF Serving" in out


def test_versions_and_labels_reach_the_server(served):
    stub = served.stub
    for protocol in ("grpc", "rest"):
        with _connect(served, protocol) as client:
            assert client.status() == {1: "AVAILABLE", 2: "AVAILABLE"}
        for version, asked in (("2", 2), ("stable", "stable"), (None, None)):
            with _connect(served, protocol, version=version) as client:
                assert client.wait_until_available(timeout_s=5) and client.predict(
                    np.zeros((4, 4, 2)), (1, 1, 1), ["mask"])["mask"].shape == (1, 4, 4, 2)
            assert stub.requests[-1] == (protocol, "predict", MODEL, asked)


def test_export_without_spacing_is_served_and_foreign_model_refused(served):
    volume = np.linspace(-300, 300, 4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3)
    for protocol in ("grpc", "rest"):
        with _connect(served, protocol, model="old") as client:
            out = client.predict(volume, (2.0, 2.0, 2.0))
            assert client.signature()[0] == ["ct"]  # spacing was not sent
        assert out["volume_ml"][0] == pytest.approx((volume > 0).sum() * 8 / 1000.0)
        with _connect(served, protocol, model="other") as client, \
                pytest.raises(InputError, match=r"takes \['x'\] and answers \['y'\], not a tfpanc export"):
            client.predict(volume, (1.0, 1.0, 1.0))


@pytest.mark.parametrize("protocol, code, message", [
    ("grpc", "INVALID_ARGUMENT", "Missing but required: {spacing}"),
    ("rest", "HTTP 400", "input keys ['ct'] differ from inputs"),
])
def test_request_the_signature_cannot_take_is_invalid_argument(served, protocol, code, message):
    with _connect(served, protocol, "inputs") as client, pytest.raises(InputError) as error:
        client._predict({"ct": np.zeros((1, 4, 4, 2), np.float32)}, None)  # spacing missing
    line = error.value.one_line()
    assert f"TF Serving ({client.protocol}): {code} for model '{MODEL}'" in line
    assert message in line and "\n" not in line


def _refused(served, stub_setup, argv_extra, protocol, tmp_path, capsys):
    """Runs predict with --server; returns its one error line after checking the exit and that nothing was written."""
    stub = served.stub
    stub_setup(stub)
    address = stub.grpc_address if protocol == "grpc" else stub.rest_address
    argv = [f"--server={address}", f"--protocol={protocol}", f"--model={MODEL}",
            f"--input={served.root / 'ct.nii.gz'}", f"--output={tmp_path / 'mask.nii.gz'}",
            f"--probabilities={tmp_path / 'prob.nii.gz'}"]
    argv = [a for a in argv if a.split("=")[0] not in {x.split("=")[0] for x in argv_extra}] + argv_extra
    try:
        rc = cli.invoke(predict.define_flags, predict.main, argv)
    finally:
        stub.delay_s, stub._failure = 0.0, None
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == cli.USER_ERROR and len(err) == 1 and err[0].startswith("error: "), err
    assert not list(tmp_path.iterdir())
    return err[0]


def _nothing(stub):
    pass


def _slow(stub):
    stub.delay_s = 1.0


@pytest.mark.parametrize("protocol, setup, extra, expected", [
    pytest.param("grpc", _nothing, ["--model=nope"], "gRPC): NOT_FOUND for model 'nope': Servable not found for "
                 "request: Latest(nope)", id="grpc-unknown-model"),
    pytest.param("rest", _nothing, ["--model=nope"], "REST): HTTP 404 for model 'nope': Servable not found",
                 id="rest-unknown-model"),
    pytest.param("grpc", _nothing, ["--version=9"], f"NOT_FOUND for model '{MODEL}' version 9: Servable not "
                 f"found for request: Specific({MODEL}, 9)", id="grpc-unknown-version"),
    pytest.param("rest", _nothing, ["--version=canary"], f"HTTP 404 for model '{MODEL}' label canary: "
                 "Unrecognized", id="rest-unknown-label"),
    pytest.param("rest", lambda s: s.fail_next("INTERNAL", "out of\nmemory"), [],
                 f"HTTP 500 for model '{MODEL}': out of memory", id="rest-500"),
    pytest.param("grpc", lambda s: s.fail_next("RESOURCE_EXHAUSTED", "queue full"), [],
                 f"RESOURCE_EXHAUSTED for model '{MODEL}': queue full", id="grpc-status"),
    pytest.param("grpc", _slow, ["--timeout=0.2"], "gRPC): no answer within 0.2 s (--timeout)", id="grpc-timeout"),
    pytest.param("rest", _slow, ["--timeout=0.2"], "REST): no answer within 0.2 s (--timeout)", id="rest-timeout"),
])
def test_server_errors_are_one_line_and_write_nothing(served, protocol, setup, extra, expected, tmp_path, capsys):
    assert expected in _refused(served, setup, extra, protocol, tmp_path, capsys)


@pytest.mark.parametrize("protocol, port_hint", [("grpc", "gRPC port (8500"), ("rest", "REST port (8501")])
def test_no_server_is_one_line(served, protocol, port_hint, tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"
    line = _refused(served, _nothing, [f"--server={address}", "--timeout=5"], protocol, tmp_path, capsys)
    assert line.startswith(f"error: {address}: TF Serving (") and "cannot connect" in line and port_hint in line


@pytest.mark.parametrize("protocol, expected", [("grpc", "gRPC): cannot connect (failed to connect"),
                                                 ("rest", "REST): the answer is not HTTP (BadStatusLine)")])
def test_other_protocols_port_is_one_printable_line(served, protocol, expected, tmp_path, capsys):
    other = served.stub.rest_address if protocol == "grpc" else served.stub.grpc_address
    line = _refused(served, _nothing, [f"--server={other}", "--timeout=5"], protocol, tmp_path, capsys)
    assert expected in line and line.isprintable()


@pytest.mark.parametrize("argv, expected", [
    (["--server=localhost:8500", "--model_dir=runs/x"], "error: --model_dir: give --model_dir (a local run) or "
                                                        "--server"),
    (["--server=localhost:8500"], "error: --model: is required with --server"),
    (["--server=localhost", "--model=m"], "error: --server: expected HOST:PORT"),
    (["--server=localhost:8500", "--model=m", "--threshold=0.3"], "error: --threshold: is fixed in the exported"),
    (["--server=localhost:8500", "--model=m", "--version=0"], "error: --version: expected a positive version"),
    (["--model_dir=runs/x", "--model=m"], "error: --model: names a model on --server"),
    (["--server=localhost:8500", "--model=m", "--protocol=http"], "error: flag --protocol=http"),
], ids=["model_dir-too", "no-model", "no-port", "method-flag", "version-0", "model-without-server", "protocol"])
def test_flag_mistakes_fail_before_any_request(argv, expected, tmp_path, capsys):
    rc = cli.invoke(predict.define_flags, predict.main,
                    argv + [f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'm.nii.gz'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == cli.USER_ERROR and len(err) == 1 and err[0].startswith(expected), err


def test_predict_and_client_import_without_tensorflow():
    code = ("import sys, tfpanc.predict, tfpanc.export.client; "
            "print(sorted(m for m in ('tensorflow', 'grpc', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="TF Serving's tensorflow_model_server is not on PATH")
def test_real_tensorflow_model_server_gives_the_stub_answer(served, tmp_path):
    from tfpanc.export import models_config

    config = models_config.write_config(served.root / "base", tmp_path / "models.config", log=lambda _: None)
    grpc_port, rest_port = free_port(), free_port()
    server = subprocess.Popen(["tensorflow_model_server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
                               f"--model_config_file={config}", "--allow_version_labels_for_unavailable_models=true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        volume = served.volume
        for protocol, port in (("grpc", grpc_port), ("rest", rest_port)):
            with client_lib.connect(f"127.0.0.1:{port}", MODEL, None, protocol) as client:
                deadline = time.monotonic() + 60
                while client.wait_until_available(timeout_s=60) != {1: "AVAILABLE", 2: "AVAILABLE"}:
                    assert time.monotonic() < deadline, client.status()
                    time.sleep(0.2)
            with client_lib.connect(f"127.0.0.1:{port}", MODEL, "stable", protocol) as client:
                out = client.predict(volume.array, volume.spacing)
            np.testing.assert_allclose(out["probability"][0], served.local_prob, atol=1e-4)
            with client_lib.connect(f"127.0.0.1:{port}", "nope", None, protocol) as client, \
                    pytest.raises(InputError, match="NOT_FOUND|HTTP 404"):
                client.predict(volume.array, volume.spacing)
    finally:
        server.terminate()
        server.wait(timeout=30)
