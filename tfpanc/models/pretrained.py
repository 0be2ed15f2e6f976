"""Loading a user's pretrained weights into a tfpanc model, matched by layer name.

Cai et al. fine-tune HNN from VGG16 and UNet from the authors' snapshot;
tfpanc trains both from scratch unless the user has such a file. Keras 3's
``load_weights`` matches by model structure only, which cannot put VGG16's
convolutions into HNN, so this module matches by layer name and skips layers
whose weight shapes differ (e.g. a first conv with another number of input
channels).

Two file layouts are read:

* Keras 3 ``.weights.h5`` (``model.save_weights``): every layer's variables sit
  in a ``.../vars`` group whose ``name`` attribute is the layer name;
* legacy Keras 2 HDF5 weights (e.g. ``keras.applications``' VGG16 files): a
  ``layer_names`` attribute and per-layer ``weight_names``.
"""

from __future__ import annotations

import os

import h5py
import keras
import numpy as np

from tfpanc.errors import InputError


def _keras3_arrays(root):
    """{layer name: [arrays]} from a Keras 3 .weights.h5 tree."""
    found = {}

    def visit(path, obj):
        if isinstance(obj, h5py.Group) and path.rsplit("/", 1)[-1] == "vars" and len(obj):
            name = obj.attrs.get("name")
            keys = sorted(obj.keys(), key=int)
            if name is not None:
                found[str(name)] = [np.asarray(obj[k]) for k in keys]

    root.visititems(visit)
    return found


def _legacy_arrays(root):
    """{layer name: [arrays]} from a Keras 2 HDF5 weights file."""
    found = {}
    for name in root.attrs["layer_names"]:
        name = name.decode() if isinstance(name, bytes) else str(name)
        group = root[name]
        weight_names = [w.decode() if isinstance(w, bytes) else str(w)
                        for w in group.attrs.get("weight_names", [])]
        if weight_names:
            found[name] = [np.asarray(group[w]) for w in weight_names]
    return found


def read_weight_file(path):
    """Reads every layer's arrays from a weights file.

    Args:
        path: a Keras 3 ``.weights.h5`` or a legacy Keras HDF5 weights file.

    Returns:
        dict layer name -> list of numpy arrays, in the layer's weight order.

    Raises:
        InputError: the file is missing, not HDF5, or holds no layer weights.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(path, "weights file not found")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            arrays = _legacy_arrays(root) if "layer_names" in root.attrs else _keras3_arrays(root)
    except (OSError, KeyError, ValueError) as e:
        raise InputError(path, f"not a readable Keras HDF5 weights file ({e})") from None
    if not arrays:
        raise InputError(path, "holds no layer weights in a known Keras layout")
    return arrays


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        elif layer.weights:
            yield layer


def load_pretrained_weights(model, path):
    """Loads weights from ``path`` into ``model``'s layers of the same name.

    Layers absent from the file, or whose weight count/shapes differ, keep
    their current weights. Nothing is assigned unless at least one layer
    matches.

    Args:
        model: any Keras model (nested models are searched too).
        path: the weights file (see :func:`read_weight_file`).

    Returns:
        dict with ``loaded``: names of the layers set from the file, and
        ``skipped``: {name: reason} for layers of the model left as they were.

    Raises:
        InputError: bad file, or no layer of the model matches it.

    Example:
    >>> from tfpanc.models import HNN
    >>> load_pretrained_weights(HNN(filters=4), "/no/such.weights.h5")
    Traceback (most recent call last):
    ...
    tfpanc.errors.InputError: error: /no/such.weights.h5: weights file not found
    """
    arrays = read_weight_file(path)
    plan, skipped = [], {}
    for layer in _layers(model):
        saved = arrays.get(layer.name)
        if saved is None:
            skipped[layer.name] = "not in file"
            continue
        want = [tuple(w.shape) for w in layer.weights]
        have = [tuple(a.shape) for a in saved]
        if want != have:
            skipped[layer.name] = f"shape mismatch: model {want}, file {have}"
            continue
        plan.append((layer, saved))
    if not plan:
        raise InputError(path, "no layer of the model matches the file by name and shape")
    for layer, saved in plan:
        layer.set_weights(saved)
    return {"loaded": [layer.name for layer, _ in plan], "skipped": skipped}
