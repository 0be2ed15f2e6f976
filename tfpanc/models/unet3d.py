"""3D U-Net (Cicek et al. 2016): the network of both stages of the two-stage method.

Per level two 3x3x3 convolutions, each followed by normalisation and ReLU;
2x2x2 max-pooling down; 2x2x2 stride-2 transposed convolutions up, halving
the filters, concatenated with the encoder level; a final 1x1x1 convolution
to one logit channel. "Same" padding keeps the input's size. He-normal
initialisation.

The two-stage paper's Fig. 3 (its exact depth and widths) is not in the
text; we use the 3D U-Net layout with ``depth = 4`` poolings and ``filters``
channels at the first level, doubled per level (nnU-Net caps its widths at
320; ``max_filters`` does the same), and say so in the README.

Normalisation (``norm``): ``"batch"`` (BatchNormalization, momentum 0.9:
short runs otherwise lag in inference mode, see PNet-MSA), ``"group"``
(GroupNormalization, 8 groups or fewer), ``"instance"`` (GroupNormalization
with one group per channel, which is instance normalisation; nnU-Net's
default for small 3D batches).
"""

from __future__ import annotations

import keras
from keras import layers

from tfpanc.models.base import ConstructorConfig, check_input_multiple

INIT = "he_normal"
NORMS = ("batch", "group", "instance")


def _norm(kind, channels, name):
    if kind == "batch":
        return layers.BatchNormalization(momentum=0.9, name=name)
    groups = channels if kind == "instance" else min(8, channels)
    while channels % groups:
        groups -= 1
    return layers.GroupNormalization(groups=groups, name=name)


def _double_conv(x, filters, prefix, norm):
    for i in (1, 2):
        x = layers.Conv3D(filters, 3, padding="same", use_bias=False, kernel_initializer=INIT,
                          name=f"{prefix}_conv{i}")(x)
        x = _norm(norm, filters, f"{prefix}_{norm}norm{i}")(x)
        x = layers.ReLU(name=f"{prefix}_relu{i}")(x)
    return x


@keras.saving.register_keras_serializable(package="tfpanc")
class UNet3D(ConstructorConfig, keras.Model):
    """3D U-Net with one logit channel out.

    Args:
        depth: number of 2x2x2 poolings; every input size must be a multiple
            of ``2 ** depth`` (:meth:`input_multiple`).
        filters: channels at the first level, doubled per level.
        norm: ``"batch"``, ``"group"`` or ``"instance"``.
        max_filters: cap on the channels of any level.
        input_shape: ``(x, y, z, channels)``; sizes may be None.

    Example:
    >>> import numpy as np
    >>> model = UNet3D(depth=2, filters=2, norm="instance")
    >>> model.predict_on_batch(np.zeros((1, 8, 8, 4, 1), "float32")).shape
    (1, 8, 8, 4, 1)
    >>> UNet3D.input_multiple(depth=4)
    16
    """

    config_attributes = {"input_shape": "volume_shape"}

    @staticmethod
    def input_multiple(depth=4):
        """What every input size must be a multiple of."""
        return 2 ** int(depth)

    def __init__(self, depth=4, filters=32, norm="batch", max_filters=320, input_shape=(None, None, None, 1),
                 **kwargs):
        depth, filters, max_filters = int(depth), int(filters), int(max_filters)
        if depth < 1 or filters < 1 or max_filters < filters:
            raise ValueError(f"need depth >= 1 and 1 <= filters <= max_filters, got {depth}, {filters}, "
                             f"{max_filters}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        input_shape = tuple(input_shape)
        check_input_multiple(input_shape[:3], self.input_multiple(depth))

        def width(level):
            return min(filters * 2 ** level, max_filters)

        inputs = keras.Input(input_shape, name="volume")
        skips, x = [], inputs
        for level in range(depth):
            x = _double_conv(x, width(level), f"down{level}", norm)
            skips.append(x)
            x = layers.MaxPooling3D(2, name=f"down{level}_pool")(x)
        x = _double_conv(x, width(depth), "bottom", norm)
        for level in reversed(range(depth)):
            x = layers.Conv3DTranspose(width(level), 2, strides=2, kernel_initializer=INIT,
                                       name=f"up{level}_upconv")(x)
            x = layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
            x = _double_conv(x, width(level), f"up{level}", norm)
        outputs = layers.Conv3D(1, 1, kernel_initializer=INIT, name="logits", dtype="float32")(x)
        kwargs.setdefault("name", "unet3d")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.depth, self.filters, self.norm, self.max_filters = depth, filters, norm, max_filters
        self.volume_shape = input_shape
        self.required_multiple = self.input_multiple(depth)
