"""tfpanc.models: Keras 3 segmentation networks (Cai PNet-MSA + BiRNN and its
Table II baselines, Zhou's FCN-8s, the two-stage method's 3D U-Net, the
multitask method's dense 3D U-Net).

All models output logits; channel 0 of the output is the final (fused) map
(MultitaskDenseUNet3D adds its skeleton regression as channel 1).
Every model class says, without being built, what its in-plane input size
must be a multiple of (``PNetMSA.input_multiple(num_units)``,
``UNet2D.input_multiple(depth)``, ``HNN.input_multiple()``, ...); a built
model keeps it as ``model.required_multiple``.
"""

from tfpanc.models.birnn_head import BiRNNHead
from tfpanc.models.cnn_rnn import CNNRNN, rebuild_for_size
from tfpanc.models.fcn8s import FCN8s, load_vgg16_weights
from tfpanc.models.hnn import HNN
from tfpanc.models.multitask_dense_unet3d import MultitaskDenseUNet3D
from tfpanc.models.pnet_msa import PNetMSA, fused_probability, probability_model
from tfpanc.models.pnet_msa_growth import grow
from tfpanc.models.pretrained import load_pretrained_weights
from tfpanc.models.unet2d import UNet2D
from tfpanc.models.unet3d import UNet3D

__all__ = [
    "BiRNNHead",
    "CNNRNN",
    "FCN8s",
    "HNN",
    "PNetMSA",
    "fused_probability",
    "grow",
    "load_pretrained_weights",
    "load_vgg16_weights",
    "MultitaskDenseUNet3D",
    "probability_model",
    "rebuild_for_size",
    "UNet2D",
    "UNet3D",
]
