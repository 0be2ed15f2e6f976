"""The networks of a cai run: built from its config or ``run.json``, weights loaded."""

from __future__ import annotations

from pathlib import Path

from tfpanc.models import HNN, BiRNNHead, PNetMSA, UNet2D

PNET_MODELS = ("pnet_msa", "pnet_msa_birnn")
UNET_DEPTH = 4


def build_cnn(model, num_units, filters):
    """The 2D network of a ``--model`` choice (PNet-MSA at K units, U-Net, HNN)."""
    if model in PNET_MODELS:
        return PNetMSA(num_units=num_units, filters=filters)
    if model == "unet":
        return UNet2D(depth=UNET_DEPTH, filters=filters)
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


def load_models(run_dir, info):
    """(cnn, birnn_head or None, cnn_only or None) rebuilt from a run directory."""
    run_dir = Path(run_dir)
    cnn = build_cnn(info["model"], info["num_units"], info["filters"])
    cnn.load_weights(run_dir / info["cnn_weights"])
    if not info.get("birnn"):
        return cnn, None, None
    head = BiRNNHead(8, 8)  # any size: rebuilt for each volume's in-plane size
    head.load_weights(run_dir / info["birnn"]["weights"])
    cnn_only = build_cnn(info["model"], info["num_units"], info["filters"])
    cnn_only.load_weights(run_dir / info["birnn"]["cnn_only_weights"])
    return cnn, head, cnn_only


# Slice pixels per CNN call: 8 slices at 512^2. At 5 units / 64 channels that
# peaked at 3.9 GiB on a 512x512x8 volume, against 8.6 GiB for 16-slice
# batches, at a similar speed per slice (tools/benchmark_predict_memory.py).
# The exported serving graph uses the same budget.
SLICE_BUDGET_PIXELS = 2 ** 21


def slices_per_call(shape):
    """Slices per CNN call for slices of ``shape[:2]`` (see SLICE_BUDGET_PIXELS)."""
    from tfpanc.inference.slicewise import slices_per_batch

    return slices_per_batch(shape[:2], SLICE_BUDGET_PIXELS)
