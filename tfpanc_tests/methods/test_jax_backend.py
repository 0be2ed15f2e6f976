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
