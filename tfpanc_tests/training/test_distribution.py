"""--distribution: flag errors, TF_CONFIG, sharded input, mirrored on 2 logical CPUs, multi-worker.

Logical CPU devices exist only when made before TensorFlow's (or JAX's)
first op, so every check that trains on 2 devices runs in a fresh
subprocess that does several checks and prints them as JSON for the
assertions here.

Tolerances (measured on Keras 3.15 / TF 2.21, PNet-MSA of 1 unit and 4
filters, 2 epochs x 3 steps): a 2-replica mirrored run with
``--sync_batchnorm`` and a one-device run of the same global batch differ by
at most 5e-7 relative in their step losses and 4e-6 in their weights (the
largest in a BatchNormalization moving variance: synchronised BatchNorm
computes the variance as E[x^2] - E[x]^2, one device in two passes); we
assert rtol 1e-5 on losses and atol 2e-5 on weights. Without
``--sync_batchnorm`` each replica normalises over its own half batch: losses
differ by ~4e-4 relative and weights by ~1e-2 (reported, not asserted). On
JAX (DataParallel, one process with 2 devices or 2 processes) weights agree
to ~5e-7.
"""

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tfpanc import cli, train
from tfpanc.errors import InputError
from tfpanc.training import distribution
from tfpanc_tests.conftest import write_cai_cache

REPO = Path(__file__).resolve().parents[2]
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 2e-5
TINY_CAI = ["--method=cai", "--model=pnet_msa", "--num_units=2", "--filters=4", "--steps_per_epoch=2",
            "--epochs_per_unit=1", "--final_epochs=1", "--growth_patience=1", "--verbose=0"]


def _plan(mode="mirrored", num_devices=None, backend="jax", environ=None):
    cfg = SimpleNamespace(distribution=mode, num_devices=num_devices, sync_batchnorm=False)
    return distribution.plan(cfg, backend, {} if environ is None else environ)


def _tf_config(ports, index, job="worker"):
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": job, "index": index}})


def _invoke(args, tmp_path, capsys):
    code = cli.invoke(train.define_flags, train.main,
                      [f"--model_dir={tmp_path / 'run'}", f"--data_dir={tmp_path / 'nocache'}", *args])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("args, expected", [
    (["--distribution=mirrored", "--num_devices=0"], "error: --num_devices: must be at least 1, got 0"),
    (["--num_devices=2"], "error: --num_devices: applies to --distribution=mirrored or multi_worker only"),
    (["--distribution=ring"], "error: flag --distribution=ring"),
])
def test_bad_flag_values_fail_in_one_line(args, expected, tmp_path, capsys):
    code, err = _invoke(["--method=cai", *args], tmp_path, capsys)
    assert code == cli.USER_ERROR and len(err) == 1 and err[0].startswith(expected), err
    assert not (tmp_path / "run").exists()


def test_tensorflow_multi_worker_is_refused_citing_the_keras_issue(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 0))
    code, err = _invoke(["--method=cai", "--distribution=multi_worker"], tmp_path, capsys)
    assert code == cli.USER_ERROR and len(err) == 1, err
    assert err[0].startswith("error: --distribution: multi_worker is refused on the tensorflow backend")
    assert "keras-team/keras#20585" in err[0] and "KERAS_BACKEND=jax" in err[0]
    assert not (tmp_path / "run").exists()


def test_plan_checks_backend_and_tf_config():
    with pytest.raises(InputError, match="TF_CONFIG: is not set"):
        _plan("multi_worker")
    with pytest.raises(InputError, match="not valid JSON"):
        _plan("multi_worker", environ={"TF_CONFIG": "{cluster"})
    with pytest.raises(InputError, match="task 'worker' 2 is not in the cluster"):
        _plan("multi_worker", environ={"TF_CONFIG": _tf_config([1, 2], 2)})
    with pytest.raises(InputError, match="has ps jobs"):
        _plan("multi_worker", environ={"TF_CONFIG": json.dumps({"cluster": {"ps": ["a:1"], "worker": ["b:1"]},
                                                               "task": {"type": "worker", "index": 0}})})
    with pytest.raises(InputError, match="mirrored is not supported on the torch backend; there: none"):
        _plan("mirrored", backend="torch")
    chief = {"TF_CONFIG": json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]},
                                      "task": {"type": "worker", "index": 1}})}
    assert _plan("multi_worker", environ=chief).cluster == distribution.Cluster(("c:1", "w:1", "w:2"), 2)
    assert _plan("mirrored", num_devices=2, backend="tensorflow").cluster is None
    assert set(distribution.SUPPORT["jax"]) == set(distribution.MODES)
    assert "multi_worker" not in distribution.SUPPORT["tensorflow"]


def test_flags_cfg_records_distribution_only_when_set():
    from tfpanc.methods.cai import CaiConfig

    assert "distribution" not in CaiConfig().to_flagfile()  # runs made before the flag resume unchanged
    lines = CaiConfig(distribution="mirrored", num_devices=2, sync_batchnorm=True).to_flagfile().splitlines()
    assert {"--distribution=mirrored", "--num_devices=2", "--sync_batchnorm"} <= set(lines)


class _Sampler:
    """Sample i of epoch e is (e, i): shows which global sample each batch holds."""

    epoch_size = 40

    def output_signature(self):
        return (((2,), "float32"),)

    def sample(self, index, epoch=0):
        return (np.array([epoch, index], np.float32),)


def test_sharded_inputs_make_the_single_device_global_batch():
    import tensorflow as tf

    from tfpanc.data.pipeline import SamplerPyDataset, make_tf_dataset

    single = SamplerPyDataset(_Sampler(), batch_size=4, steps=3)
    shards = [SamplerPyDataset(_Sampler(), batch_size=2, steps=3, shard_index=p, num_shards=2) for p in (0, 1)]
    for ds in [single, *shards]:
        ds.epoch = 1
    for b in range(3):
        np.testing.assert_array_equal(np.concatenate([s[b][0] for s in shards]), single[b][0])
    # endless (the JAX input): batch i of the stream is batch i % steps of epoch i // steps, whatever
    # Keras' epoch calls do
    endless = SamplerPyDataset(_Sampler(), batch_size=4, steps=3, endless=True)
    endless.on_epoch_begin(), endless.on_epoch_end()
    assert endless.num_batches is None
    np.testing.assert_array_equal(endless[3 + 2][0], single[2][0])
    # tf.distribute: one pipeline whose consecutive batches go to its 2 replicas in turn.
    pipe = make_tf_dataset(_Sampler(), 2, steps_per_epoch=3, epochs=2, replicas_per_shard=2)
    whole = make_tf_dataset(_Sampler(), 4, steps_per_epoch=3, epochs=2)
    pairs = list(pipe.as_numpy_iterator())
    for step, batch in enumerate(whole.as_numpy_iterator()):
        np.testing.assert_array_equal(np.concatenate([pairs[2 * step][0], pairs[2 * step + 1][0]]), batch[0])
    assert len(pairs) == 2 * 2 * 3 and tf.is_tensor(next(iter(pipe))[0])


_MIRRORED = textwrap.dedent(r"""
    import json, sys
    from pathlib import Path
    from types import SimpleNamespace
    from tfpanc.training import distribution
    # Two logical CPU devices, before TensorFlow runs any op.
    dist = distribution.setup(distribution.plan(
        SimpleNamespace(distribution="mirrored", num_devices=2, sync_batchnorm=True)))
    import keras
    import numpy as np
    from tfpanc.data.cache import CaseCache
    from tfpanc.data.intensity import IntensityNormalizer
    from tfpanc.data.sampling import SliceSampler
    from tfpanc.losses import deep_supervision_loss
    from tfpanc.methods.cai import CaiConfig
    from tfpanc.models import PNetMSA
    from tfpanc.training.callbacks import read_history
    from tfpanc.training.fit import fit_phase, make_input
    from tfpanc.training.run_dir import RunDir
    from tfpanc_tests.conftest import train_run

    root = Path(sys.argv[1])
    cache = CaseCache(root / "cache")
    sampler = SliceSampler(cache, cache.case_ids[:3], "axial", size=(32, 32), positive_fraction=0.5, seed=0,
                           normalizer=IntensityNormalizer("ct"))
    out = {"replicas": dist.replicas, "devices": list(dist.devices)}

    class Steps(keras.callbacks.Callback):
        def __init__(self, kill_at=None):
            super().__init__()
            self.losses, self.epoch, self.kill_at = [], 0, kill_at
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))  # the epoch's running mean, as Keras logs it
            if (self.epoch, batch) == self.kill_at:
                raise KeyboardInterrupt("killed")

    def phase(name, d, batch, epochs=2, kill_at=None, steps=3):
        cfg = CaiConfig(model_dir=str(root / name), data_dir=str(root / "cache"), batch_size=batch,
                        steps_per_epoch=steps, verbose=0, sync_batchnorm=True, filters=4)
        run, lines, steps_cb = RunDir(cfg.model_dir), [], Steps(kill_at)
        run.path.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(0)
        with distribution.activate(d):
            model = PNetMSA(num_units=1, filters=4)
            try:
                fit_phase(cfg, run, lines.append, "p", model, deep_supervision_loss("jac"), 3e-3,
                          make_input(sampler, batch, steps), epochs, callbacks=[steps_cb])
            except KeyboardInterrupt:
                lines.append("killed")
        return steps_cb.losses, [np.asarray(w) for w in model.get_weights()], lines, run

    if sys.argv[2] == "resume":
        # Killed in its second epoch, then resumed from the BackupAndRestore backup, under the strategy.
        _, _, killed, _ = phase("killed", dist, 2, kill_at=(1, 0), steps=2)
        resumed, _, lines, run = phase("killed", dist, 2, steps=2)
        out.update(killed=killed, resumed_lines=lines, resumed=resumed, resumed_state=run.state()["done"])
    else:
        one, one_w, _, _ = phase("one", distribution.NONE, 4)
        two, two_w, _, _ = phase("two", dist, 2)
        out.update(one=one, two=two, weight_diff=max(float(np.max(np.abs(a - b))) for a, b in zip(one_w, two_w)))
        # The train command end to end: cai's growth (a new model per unit) under the strategy, a re-run.
        flags = dict(model="pnet_msa", data_dir=str(root / "cache"), num_units=2, filters=4, batch_size=2,
                     steps_per_epoch=2, epochs_per_unit=1, final_epochs=0, growth_patience=1, verbose=0,
                     evaluate=False, val_fraction=0.0, distribution="mirrored", num_devices=2,
                     sync_batchnorm=True)
        cfg = CaiConfig(model_dir=str(root / "cai"), **flags)
        run, info, lines = train_run(cfg)
        _, _, again = train_run(cfg)
        out.update(e2e_info=info["distribution"], e2e_lines=lines, e2e_again=again,
                   e2e_run_json=json.loads((run.path / "run.json").read_text())["distribution"],
                   e2e_history=[float(r["loss"]) for r in read_history(run.path / "history.csv")],
                   e2e_done=list(run.state()["done"]))
    print("RESULT " + json.dumps(out))
""")


def _subprocess(script, args, env=None, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_mirrored_on_two_cpu_devices_equals_one_device(tmp_path):
    write_cai_cache(tmp_path / "cache")
    out = _subprocess(_MIRRORED, [tmp_path, "core"])
    assert out["replicas"] == 2 and out["devices"] == ["/cpu:0", "/cpu:1"]
    # Finite (keras-team/keras#20568, #21061 reported NaN with >= 2 replicas) and equal to one device.
    assert len(out["two"]) == 6 and all(math.isfinite(v) for v in out["two"])
    np.testing.assert_allclose(out["two"], out["one"], rtol=LOSS_RTOL)
    assert out["weight_diff"] < WEIGHT_ATOL, out["weight_diff"]
    # The train command: growth phases, run.json, re-run skipping the finished phases.
    assert out["e2e_done"] == ["pnet_k1", "pnet_k2", "pnet_final"]
    assert out["e2e_info"] == out["e2e_run_json"]
    assert out["e2e_run_json"]["replicas"] == 2 and out["e2e_run_json"]["global_batch_size"] == 4
    assert out["e2e_run_json"]["batch_size_per_replica"] == 2 and out["e2e_run_json"]["mode"] == "mirrored"
    assert out["e2e_run_json"]["batchnorm_statistics"] == "global batch"
    assert "not scaled" in out["e2e_run_json"]["learning_rate"]
    assert any(x.startswith("distribution mirrored (tensorflow): 2 replicas") and "global batch 2 x 2 = 4" in x
               for x in out["e2e_lines"])
    assert all(math.isfinite(v) for v in out["e2e_history"]) and len(out["e2e_history"]) == 2
    assert sum("finished in an earlier run" in x for x in out["e2e_again"]) == 3


@pytest.mark.large
def test_mirrored_run_resumes_after_a_kill(tmp_path):
    write_cai_cache(tmp_path / "cache")
    out = _subprocess(_MIRRORED, [tmp_path, "resume"])
    assert out["killed"][-1] == "killed" and any("resuming at epoch 2, step 0" in x for x in out["resumed_lines"])
    # (killed in epoch 2 before its first backup: epoch 2 is trained from its start, alone)
    assert "p" in out["resumed_state"] and len(out["resumed"]) == 2
    assert all(math.isfinite(v) for v in out["resumed"])


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.large
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_multi_worker_on_jax_two_processes(tmp_path):
    """Two local worker processes (TF_CONFIG on loopback), KERAS_BACKEND=jax: both finish, the chief
    alone writes the run, and its weights, like those of a mirrored run on 2 CPU devices of one
    process, equal a one-device run with the same global batch."""
    write_cai_cache(tmp_path / "cache")
    common = [*TINY_CAI, f"--data_dir={tmp_path / 'cache'}", "--noevaluate"]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    ports = _free_ports(2)
    procs = [subprocess.Popen([sys.executable, "-m", "tfpanc.train", *common, f"--model_dir={tmp_path / 'run'}",
                               "--batch_size=2", "--distribution=multi_worker"],
                              env={**env, "TF_CONFIG": _tf_config(ports, i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    run = tmp_path / "run"
    record = json.loads((run / "run.json").read_text())["distribution"]
    assert record["mode"] == "multi_worker" and record["workers"] == 2 and record["replicas"] == 2
    assert record["global_batch_size"] == 4
    log = (run / "train.log").read_text()
    assert "[worker 1]" not in log and "worker 0 (chief)" in log
    assert "[worker 1] pnet_final epoch 1" in outs[1] and "chief writes the run" in outs[1]
    single = subprocess.run([sys.executable, "-m", "tfpanc.train", *common, f"--model_dir={tmp_path / 'one'}",
                             "--batch_size=4"], env=env, capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    import h5py

    def weights(path):
        found = {}
        with h5py.File(path) as f:
            f.visititems(lambda n, o: found.__setitem__(n, np.array(o)) if isinstance(o, h5py.Dataset) else None)
        return found

    # mirrored on JAX: DataParallel over 2 CPU devices of one process
    mirrored = subprocess.run([sys.executable, "-m", "tfpanc.train", *common, f"--model_dir={tmp_path / 'two'}",
                               "--batch_size=2", "--distribution=mirrored", "--num_devices=2"], env=env,
                              capture_output=True, text=True, timeout=900)
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["distribution"]["replicas"] == 2
    one = weights(tmp_path / "one" / "pnet_final.weights.h5")
    for other in (run, tmp_path / "two"):
        found = weights(other / "pnet_final.weights.h5")
        assert max(float(np.max(np.abs(found[k] - one[k]))) for k in one) < WEIGHT_ATOL, other


_TF_MULTI_WORKER = textwrap.dedent(r"""
    import numpy as np, tensorflow as tf, keras
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile("sgd", "mse")
    data = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors((np.ones(4, "float32"), np.ones(1, "float32"))).repeat().batch(2))
    try:
        model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
        print("RESULT fit ok")
    except Exception as e:
        print("RESULT " + " ".join(str(e).split())[:300])
""")


@pytest.mark.large
def test_upstream_tensorflow_multi_worker_bug_still_blocks_fit(tmp_path):
    """Why --distribution=multi_worker is refused on TensorFlow: Keras 3's fit under
    MultiWorkerMirroredStrategy fails (keras-team/keras#20585). When this test fails, the bug is
    fixed: lift the refusal in tfpanc.training.distribution."""
    ports = _free_ports(2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _TF_MULTI_WORKER], env={**env, "TF_CONFIG": _tf_config(ports, i)},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    results = [next((x for x in o.splitlines() if x.startswith("RESULT ")), "RESULT none") for o in outs]
    assert all("PerReplica" in r for r in results), results
