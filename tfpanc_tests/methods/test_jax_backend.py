"""The training command under KERAS_BACKEND=jax with TensorFlow made unimportable.

A GPU box with JAX and no TensorFlow must be able to train: this runs the
real CLI in a subprocess where ``import tensorflow`` raises.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tfpanc_tests.conftest import write_cai_cache

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

_RUN = """
import runpy, sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
sys.argv = ["tfpanc.train"] + sys.argv[1:]
runpy.run_module("tfpanc.train", run_name="__main__")
"""


def test_cai_trains_and_evaluates_on_jax_without_tensorflow(tmp_path):
    write_cai_cache(tmp_path / "cache")
    flags = ["--method=cai", "--model=pnet_msa_birnn", f"--model_dir={tmp_path / 'run'}",
             f"--data_dir={tmp_path / 'cache'}", "--num_units=2", "--filters=4", "--batch_size=4",
             "--steps_per_epoch=2", "--epochs_per_unit=1", "--final_epochs=1", "--rnn_length=4",
             "--rnn_batch_size=1", "--rnn_epochs=1", "--verbose=0"]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", _RUN, *flags], env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "on jax" in log
    summary = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    assert summary["final"]["dsc"]["n"] == 1
    assert (tmp_path / "run" / "birnn_head.weights.h5").exists()


def test_a_resumed_phase_equals_the_uninterrupted_one_on_jax():
    """Keras' JAX fit built the model on the stream's first batch, which the endless PyDataset does not
    give back: a phase resumed mid-epoch then trained other batches than the uninterrupted phase."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tests = os.path.join("tfpanc_tests", "training", "test_step_backup.py")
    if not os.path.exists(os.path.join(root, tests)):
        pytest.skip(f"{tests} is not beside this test (a Bazel target holds its own test file only)")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "resume", tests],
                          env=env, capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "4 passed" in proc.stdout
