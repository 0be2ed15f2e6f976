"""The networks of a cai run: built from its config or ``run.json``, weights loaded."""

from __future__ import annotations

from pathlib import Path

from tfpanc.models import HNN, BiRNNHead, PNetMSA, UNet2D
from tfpanc.training.run_dir import load_weights

PNET_MODELS = ("pnet_msa", "pnet_msa_birnn")
UNET_DEPTH = 4


def build_cnn(model, num_units, filters, batch_norm=False):
    """The 2D network of a ``--model`` choice (PNet-MSA at K units, U-Net, HNN).

    ``batch_norm`` applies to the U-Net only (PNet-MSA always has it, HNN never).
    """
    if model in PNET_MODELS:
        return PNetMSA(num_units=num_units, filters=filters)
    if model == "unet":
        return UNet2D(depth=UNET_DEPTH, filters=filters, batch_norm=batch_norm)
    if model == "hnn":
        return HNN(filters=filters)
    raise ValueError(f"unknown cai model {model!r}")


def input_multiple(model, num_units):
    """What the in-plane size must be a multiple of, without building the network."""
    if model in PNET_MODELS:
        return PNetMSA.input_multiple(num_units=num_units)
    if model == "unet":
        return UNet2D.input_multiple(depth=UNET_DEPTH)
    return HNN.input_multiple()


def crop_multiple(info):
    """The registry's ``crop_multiple``: slices are predicted one by one, so only x and y align."""
    m = input_multiple(info["model"], info["num_units"])
    return (m, m, 1)


def load_models(run_dir, info):
    """(cnn, birnn_head or None, cnn_only or None) rebuilt from a run directory."""
    run_dir = Path(run_dir)
    cnn = build_cnn(info["model"], info["num_units"], info["filters"], info.get("batch_norm", False))
    load_weights(cnn, run_dir / info["cnn_weights"])
    if not info.get("birnn"):
        return cnn, None, None
    head = BiRNNHead(8, 8)  # any size: rebuilt for each volume's in-plane size
    load_weights(head, run_dir / info["birnn"]["weights"])
    cnn_only = build_cnn(info["model"], info["num_units"], info["filters"])
    load_weights(cnn_only, run_dir / info["birnn"]["cnn_only_weights"])
    return cnn, head, cnn_only


# Slice pixels x channels per CNN call: activations grow with both. At 5 units /
# 64 channels on 512x512x24 (tools/benchmark_predict_memory.py, random weights,
# body crop on), 8 slices per call peaked at 4525 MiB in 79 s, 4 at 2725 MiB in
# 76 s, 2 at 1732 MiB in 71 s: smaller calls were both leaner and faster. This
# budget gives 2 slices at 512^2 x 64 channels and 8 at 16 channels (the
# quickstart's, as before). The exported serving graph uses the same budget.
SLICE_BUDGET_PIXEL_CHANNELS = 2 ** 25


def slices_per_call(shape, filters):
    """Slices per CNN call for slices of ``shape[:2]`` and a ``filters``-channel network."""
    from tfpanc.inference.slicewise import slices_per_batch

    return slices_per_batch(shape[:2], SLICE_BUDGET_PIXEL_CHANNELS // max(1, int(filters)))
