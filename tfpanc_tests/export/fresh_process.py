"""Shared checks of the 3D methods' SavedModels: served in a fresh process, refused without weights."""

import subprocess
import sys

import numpy as np
import pytest

from tfpanc.errors import InputError

# Loads the SavedModel alone (no tfpanc, no Keras), as TF Serving does, and serves each request.
_SERVE = """
import sys, time, numpy as np, tensorflow as tf
start = time.time()
sig = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
loaded = time.time() - start
data = np.load(sys.argv[2])
out = {"load_s": np.float64(loaded)}
for name in sys.argv[4].split(","):
    res = sig(ct=tf.constant(data[name]), spacing=tf.constant(data[name + "_spacing"]))
    for key, value in res.items():
        out[f"{name}_{key}"] = value.numpy()
np.savez(sys.argv[3], **out)
"""


def serve_in_fresh_process(export_dir, requests, root):
    """``{"<request>_<output>": array, "load_s": seconds}`` of ``requests`` (``{name: (ct, spacing)}``)."""
    arrays = {}
    for name, (ct, spacing) in requests.items():
        arrays[name] = np.asarray(ct, np.float32)
        arrays[name + "_spacing"] = np.asarray(spacing, np.float32)
    np.savez(root / "in.npz", **arrays)
    command = [sys.executable, "-c", _SERVE, str(export_dir), str(root / "in.npz"), str(root / "out.npz"),
               ",".join(requests)]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(root / "out.npz"))


def assert_refused_without_weights(run, kept, missing, tmp_path):
    """A copy of ``run`` with only the ``kept`` weights file: one line naming ``missing``, nothing written."""
    from tfpanc.export import export_model

    broken = tmp_path / "broken"
    (broken / kept).parent.mkdir(parents=True)
    (broken / "run.json").write_text((run / "run.json").read_text())
    (broken / kept).write_bytes((run / kept).read_bytes())
    with pytest.raises(InputError) as err:
        export_model(broken, tmp_path / "serving" / "model")
    message = str(err.value)
    assert "\n" not in message and message.endswith("weights file named in run.json is missing")
    assert missing in message
    assert not (tmp_path / "serving").exists()
