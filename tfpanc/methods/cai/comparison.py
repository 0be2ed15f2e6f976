"""Cai et al.'s Tables I-IV, filled from cai runs (for ``tfpanc.compare``).

An experiment is (model, loss, modality). Table I compares losses on
PNet-MSA: a ``pnet_msa`` run of each loss fills its row (failing that, the
CNN-alone evaluation of a ``pnet_msa_birnn`` run, which is the PNet-MSA
network before the BiRNN). Table II compares architectures with the JAC loss
where there is such a run. Table III is PNet-MSA alone vs PNet-MSA + BiRNN
(DSC and AVD) from one BiRNN run's two evaluations; Table IV repeats our two
rows. PNet-64, PNet + RNN and PNet-128 come from an earlier paper whose
definitions these papers do not give (listed as not reproducible).
"""

from __future__ import annotations

from tfpanc.compare.tables import PERCENT, ours_from, pick

_OVERLAP = {"DSC": ("dsc", PERCENT), "JI": ("jaccard", PERCENT), "precision": ("precision", PERCENT),
            "recall": ("recall", PERCENT)}
_TABLE_III = {"DSC": ("dsc", PERCENT), "AVD_mm": ("avd", 1.0)}
_ARCHITECTURES = {"HNN": "hnn", "UNet": "unet", "PNet-MSA": "pnet_msa"}


def experiment_key(info):
    return {"model": info.get("model"), "loss": info.get("loss"), "modality": info.get("modality")}


def _pnet_msa(experiments, modality, loss):
    """PNet-MSA alone with ``loss``: a pnet_msa run, or a BiRNN run's CNN-alone rows."""
    exp = pick(experiments, model="pnet_msa", loss=loss, modality=modality)
    if exp is not None:
        return ours_from(exp, _OVERLAP)
    exp = pick(experiments, model="pnet_msa_birnn", loss=loss, modality=modality)
    if exp is not None and exp.cnn_rows:
        return ours_from(exp, _OVERLAP, exp.cnn_rows, note="CNN alone of a BiRNN run")
    return None


def fill(table, experiments):
    """``{row label: Ours}`` for one of the cai tables."""
    out = {}
    tid = table["id"]
    if tid.startswith(("cai_I_", "cai_II_")):
        modality = tid.rsplit("_", 1)[1]
        if tid.startswith("cai_I_"):
            for row, loss in (("CE", "ce"), ("CBCE", "cbce"), ("JAC", "jac")):
                out[row] = _pnet_msa(experiments, modality, loss)
        else:
            for row, model in _ARCHITECTURES.items():
                exp = pick(experiments, model=model, loss="jac", modality=modality) or \
                    pick(experiments, model=model, modality=modality)
                if exp is not None:
                    out[row] = ours_from(exp, _OVERLAP, note=f"loss {exp.key['loss']}")
                elif model == "pnet_msa":
                    out[row] = _pnet_msa(experiments, modality, "jac")
    elif tid in ("cai_III", "cai_IV"):
        for modality in ("ct", "mri"):
            birnn = pick(experiments, model="pnet_msa_birnn", modality=modality)
            suffix = "" if tid == "cai_III" else f" ({modality.upper()})"
            if tid == "cai_III" and modality == "mri":
                continue  # Table III is CT only
            columns = _TABLE_III if tid == "cai_III" else _OVERLAP
            if birnn is not None:
                out[f"PNet-MSA + BiRNN{suffix}" if tid == "cai_IV" else "PNet-MSA+BiRNN"] = \
                    ours_from(birnn, columns)
                if birnn.cnn_rows:
                    out[f"PNet-MSA{suffix}"] = ours_from(birnn, columns, birnn.cnn_rows, note="CNN alone of the BiRNN run")
            alone = pick(experiments, model="pnet_msa", modality=modality)
            if alone is not None and f"PNet-MSA{suffix}" not in out:
                out[f"PNet-MSA{suffix}"] = ours_from(alone, columns)
    return {k: v for k, v in out.items() if v is not None}


def write_figures(experiments, out):
    """Figs. 5-7 for compare's report (:mod:`tfpanc.methods.cai.figures`)."""
    from tfpanc.methods.cai import figures

    return figures.write_figures(experiments, out)
