"""Holistically-nested network (HED, Xie & Tu 2015): the "HNN" baseline of Table II.

VGG16's 13 convolutions in 5 stages (2, 2, 3, 3, 3 convs of 3x3 + ReLU, 2x2
max-pooling between stages, no pool5 and no fully connected layers). Each
stage ends in a side output: a 1x1 conv to one logit channel, brought back to
the input size by bilinear upsampling (HED's deconvolutions are fixed
bilinear kernels, so this is the same operation without the parameters). A
1x1 conv over the 5 stacked side logits, initialised to 1/5 each as in HED, is
the fused output. Deep supervision as for PNet-MSA: the output stacks
``[fused, side_1 .. side_5]`` logits, ready for
:func:`tfpanc.losses.deep_supervision_loss`.

The convolutions carry ``keras.applications.VGG16``'s layer names
(``block{s}_conv{i}``), so a VGG16 weights file can be loaded by name with
:func:`tfpanc.models.load_pretrained_weights` (Cai et al. fine-tune HNN from
VGG16; from scratch is the default here).

Input: 3 consecutive slices ``(H, W, 3)``, H and W multiples of 16
(``HNN.input_multiple()``: 4 poolings).
"""

from __future__ import annotations

import keras
from keras import layers

from tfpanc.models.base import ConstructorConfig, check_input_multiple
from tfpanc.models.vgg16 import VGG16_STAGES, VGG16_WIDTH

INIT = "he_normal"


@keras.saving.register_keras_serializable(package="tfpanc")
class HNN(ConstructorConfig, keras.Model):
    """VGG16-based holistically-nested network with 5 side outputs and a learned fusion.

    Args:
        filters: channels of stage 1 (VGG16: 64); stages use 1, 2, 4, 8, 8 times it.
        side_outputs: True -> ``(B, H, W, 6)`` logits ``[fused, side_1..side_5]``;
            False -> fused logits ``(B, H, W, 1)``.
        input_shape: ``(H, W, slices)``; H, W may be None, otherwise
            multiples of ``HNN.input_multiple()`` (16, also
            ``model.required_multiple``).

    Example:
    >>> import numpy as np
    >>> model = HNN(filters=4)
    >>> model.predict_on_batch(np.zeros((1, 32, 32, 3), "float32")).shape
    (1, 32, 32, 6)
    >>> HNN.input_multiple()
    16
    """

    config_attributes = {"input_shape": "slice_shape"}

    @staticmethod
    def input_multiple():
        """16: the 4 poolings between VGG16's 5 stages (no pool5)."""
        return 2 ** (len(VGG16_STAGES) - 1)

    def __init__(self, filters=64, side_outputs=True, input_shape=(None, None, 3), **kwargs):
        filters = int(filters)
        if filters < 1:
            raise ValueError(f"filters must be >= 1, got {filters}")
        input_shape = tuple(input_shape)
        multiple = self.input_multiple()
        check_input_multiple(input_shape[:2], multiple)

        inputs = keras.Input(input_shape, name="slices")
        x = inputs
        sides = []
        for s, (convs, width) in enumerate(zip(VGG16_STAGES, VGG16_WIDTH), start=1):
            if s > 1:
                x = layers.MaxPooling2D(2, name=f"block{s - 1}_pool")(x)
            for i in range(1, convs + 1):
                x = layers.Conv2D(filters * width, 3, padding="same", activation="relu",
                                  kernel_initializer=INIT, name=f"block{s}_conv{i}")(x)
            side = layers.Conv2D(1, 1, kernel_initializer=INIT, name=f"side{s}")(x)
            if s > 1:
                side = layers.UpSampling2D(2 ** (s - 1), interpolation="bilinear",
                                           name=f"side{s}_upsample")(side)
            sides.append(side)
        stacked = layers.Concatenate(name="sides")(sides)
        fused = layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(1.0 / len(sides)),
                              name="fuse")(stacked)
        outputs = layers.Concatenate(name="fused_and_sides")([fused, stacked]) if side_outputs else fused
        kwargs.setdefault("name", "hnn")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.filters = filters
        self.side_outputs = bool(side_outputs)
        self.slice_shape = input_shape
        self.required_multiple = multiple
