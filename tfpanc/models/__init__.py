"""tfpanc.models: Keras 3 segmentation networks (Cai PNet-MSA + BiRNN, Table II baselines).

All models output logits; channel 0 of the output is the final (fused) map.
"""

from tfpanc.models.birnn_head import BiRNNHead
from tfpanc.models.cnn_rnn import CNNRNN, rebuild_for_size
from tfpanc.models.pnet_msa import PNetMSA, fused_probability, probability_model
from tfpanc.models.pnet_msa_growth import grow

__all__ = [
    "BiRNNHead",
    "CNNRNN",
    "PNetMSA",
    "fused_probability",
    "grow",
    "probability_model",
    "rebuild_for_size",
]
