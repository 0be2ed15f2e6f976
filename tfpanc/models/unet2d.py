"""2D U-Net (Ronneberger et al. 2015): the "UNet" baseline of Cai et al. Table II.

Standard layout: ``depth`` down-steps, each level two 3x3 conv + ReLU (filters
doubling per level), 2x2 max-pooling down, 2x2 stride-2 up-convolution
halving the filters, concatenation with the encoder level, two 3x3 conv +
ReLU, and a final 1x1 conv to one logit channel. Convolutions are padded
("same") so the output has the input's size; the original used unpadded
convolutions and cropping, which only changes the border handling.
He-normal initialisation (the U-Net paper's Gaussian with std sqrt(2/N)).
Optional BatchNormalization after each conv (off by default, as in the
original).

Input: 3 consecutive slices ``(H, W, 3)``, H and W multiples of ``2**depth``
(``UNet2D.input_multiple(depth)``).
Output: ``(B, H, W, 1)`` logits.
"""

from __future__ import annotations

import keras
from keras import layers

from tfpanc.models.base import ConstructorConfig, check_input_multiple

INIT = "he_normal"


def _double_conv(x, filters, prefix, batch_norm):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                          kernel_initializer=INIT, name=f"{prefix}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn{i}")(x)  # see PNetMSA
        x = layers.ReLU(name=f"{prefix}_relu{i}")(x)
    return x


@keras.saving.register_keras_serializable(package="tfpanc")
class UNet2D(ConstructorConfig, keras.Model):
    """2D U-Net with one logit channel out.

    Args:
        depth: number of 2x2 poolings (original: 4).
        filters: channels at the first level (original: 64), doubled per level.
        batch_norm: add BN after every 3x3 conv.
        input_shape: ``(H, W, slices)``; H, W may be None, otherwise
            multiples of ``UNet2D.input_multiple(depth)`` (``2 ** depth``,
            also ``model.required_multiple``).

    Example:
    >>> import numpy as np
    >>> model = UNet2D(depth=2, filters=4)
    >>> model.predict_on_batch(np.zeros((1, 16, 16, 3), "float32")).shape
    (1, 16, 16, 1)
    >>> UNet2D.input_multiple(depth=4)
    16
    """

    config_attributes = {"input_shape": "slice_shape"}

    @staticmethod
    def input_multiple(depth=4):
        """``2 ** depth``: each of the ``depth`` poolings halves the size."""
        return 2 ** int(depth)

    def __init__(self, depth=4, filters=64, batch_norm=False,
                 input_shape=(None, None, 3), **kwargs):
        depth, filters = int(depth), int(filters)
        if depth < 1 or filters < 1:
            raise ValueError(f"depth and filters must be >= 1, got {depth}, {filters}")
        input_shape = tuple(input_shape)
        multiple = self.input_multiple(depth)
        check_input_multiple(input_shape[:2], multiple)

        inputs = keras.Input(input_shape, name="slices")
        skips = []
        x = inputs
        for level in range(depth):
            x = _double_conv(x, filters * 2 ** level, f"down{level}", batch_norm)
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
        x = _double_conv(x, filters * 2 ** depth, "bottom", batch_norm)
        for level in reversed(range(depth)):
            x = layers.Conv2DTranspose(filters * 2 ** level, 2, strides=2, kernel_initializer=INIT,
                                       name=f"up{level}_upconv")(x)
            x = layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
            x = _double_conv(x, filters * 2 ** level, f"up{level}", batch_norm)
        outputs = layers.Conv2D(1, 1, kernel_initializer=INIT, name="logits")(x)
        kwargs.setdefault("name", "unet2d")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.depth = depth
        self.filters = filters
        self.batch_norm = bool(batch_norm)
        self.slice_shape = input_shape
        self.required_multiple = multiple
