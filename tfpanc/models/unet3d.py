"""3D U-Net (Cicek et al. 2016): the network of both stages of the two-stage method.

Per level two 3x3x3 convolutions (``convs``), each followed by
normalisation and ReLU; 2x2x2 max-pooling down; 2x2x2 stride-2 transposed
convolutions up, halving the filters, concatenated with the encoder level; a
final 1x1x1 convolution to one logit channel. "Same" padding keeps the
input's size. He-normal initialisation by default (``kernel_initializer``).

The two-stage paper's Fig. 3 (its exact depth and widths) is not in the
text; we use the 3D U-Net layout with ``depth = 4`` poolings and ``filters``
channels at the first level, doubled per level (nnU-Net caps its widths at
320; ``max_filters`` does the same), and say so in the README.

Normalisation (``norm``): ``"batch"`` (BatchNormalization, momentum 0.9:
short runs otherwise lag in inference mode, see PNet-MSA), ``"group"``
(GroupNormalization, 8 groups or fewer), ``"instance"`` (GroupNormalization
with one group per channel, which is instance normalisation; nnU-Net's
default for small 3D batches), ``"none"`` (no normalisation; the convolutions
then have a bias, which a following normalisation would otherwise cancel).

The other options serve the multitask paper's C1 (Cascaded multitask 3-D FCN
with skeleton regression, Sec. II-A): "one or two" convolutions per block
(``convs=1`` or ``2``), ReLU without normalisation (``norm="none"``) and
Xavier initialisation (``kernel_initializer="glorot_uniform"``). The defaults
build the two-stage network, with the same weight names as before.
"""

from __future__ import annotations

import keras
from keras import layers

from tfpanc.models.base import ConstructorConfig, check_input_multiple

INIT = "he_normal"
NORMS = ("batch", "group", "instance", "none")


def normalization_layer(kind, channels, name):
    """The layer of one ``norm`` choice (not ``"none"``) for ``channels`` channels."""
    if kind == "batch":
        return layers.BatchNormalization(momentum=0.9, name=name)
    groups = channels if kind == "instance" else min(8, channels)
    while channels % groups:
        groups -= 1
    return layers.GroupNormalization(groups=groups, name=name)


def _conv_block(x, filters, prefix, norm, convs, init):
    for i in range(1, convs + 1):
        x = layers.Conv3D(filters, 3, padding="same", use_bias=norm == "none", kernel_initializer=init,
                          name=f"{prefix}_conv{i}")(x)
        if norm != "none":
            x = normalization_layer(norm, filters, f"{prefix}_{norm}norm{i}")(x)
        x = layers.ReLU(name=f"{prefix}_relu{i}")(x)
    return x


def check_kernel_initializer(kernel_initializer):
    """Raises ValueError unless ``kernel_initializer`` names a Keras initializer.

    Only a name: the model's config must stay plain data (JSON in a ``.keras``
    file), and :class:`ConstructorConfig` would rebuild a serialized
    initializer dict as an object.

    Example:
    >>> check_kernel_initializer("glorot_uniform")
    >>> check_kernel_initializer("xavier")
    Traceback (most recent call last):
    ...
    ValueError: unknown kernel_initializer 'xavier' (a Keras initializer name, e.g. 'glorot_uniform')
    """
    if isinstance(kernel_initializer, str):
        try:
            keras.initializers.get(kernel_initializer)
            return
        except ValueError:
            pass
    raise ValueError(f"unknown kernel_initializer {kernel_initializer!r} (a Keras initializer name, "
                     f"e.g. 'glorot_uniform')")


@keras.saving.register_keras_serializable(package="tfpanc")
class UNet3D(ConstructorConfig, keras.Model):
    """3D U-Net with one logit channel out.

    Args:
        depth: number of 2x2x2 poolings; every input size must be a multiple
            of ``2 ** depth`` (:meth:`input_multiple`).
        filters: channels at the first level, doubled per level.
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        max_filters: cap on the channels of any level.
        input_shape: ``(x, y, z, channels)``; sizes may be None.
        convs: 3x3x3 convolutions per block, 1 or 2.
        kernel_initializer: a Keras initializer name for every
            convolution's kernel (``"glorot_uniform"`` is Xavier's).

    Example:
    >>> import numpy as np
    >>> model = UNet3D(depth=2, filters=2, norm="instance")
    >>> model.predict_on_batch(np.zeros((1, 8, 8, 4, 1), "float32")).shape
    (1, 8, 8, 4, 1)
    >>> UNet3D.input_multiple(depth=4)
    16
    >>> c1 = UNet3D(depth=2, filters=2, norm="none", convs=1, kernel_initializer="glorot_uniform")
    >>> c1.predict_on_batch(np.zeros((1, 8, 8, 4, 1), "float32")).shape
    (1, 8, 8, 4, 1)
    """

    config_attributes = {"input_shape": "volume_shape"}

    @staticmethod
    def input_multiple(depth=4):
        """What every input size must be a multiple of."""
        return 2 ** int(depth)

    def __init__(self, depth=4, filters=32, norm="batch", max_filters=320, input_shape=(None, None, None, 1),
                 convs=2, kernel_initializer=INIT, **kwargs):
        depth, filters, max_filters = int(depth), int(filters), int(max_filters)
        if depth < 1 or filters < 1 or max_filters < filters:
            raise ValueError(f"need depth >= 1 and 1 <= filters <= max_filters, got {depth}, {filters}, "
                             f"{max_filters}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if convs not in (1, 2):
            raise ValueError(f"convs (3x3x3 convolutions per block) must be 1 or 2, got {convs!r}")
        convs = int(convs)
        check_kernel_initializer(kernel_initializer)
        input_shape = tuple(input_shape)
        check_input_multiple(input_shape[:3], self.input_multiple(depth))

        def width(level):
            return min(filters * 2 ** level, max_filters)

        inputs = keras.Input(input_shape, name="volume")
        skips, x = [], inputs
        for level in range(depth):
            x = _conv_block(x, width(level), f"down{level}", norm, convs, kernel_initializer)
            skips.append(x)
            x = layers.MaxPooling3D(2, name=f"down{level}_pool")(x)
        x = _conv_block(x, width(depth), "bottom", norm, convs, kernel_initializer)
        for level in reversed(range(depth)):
            x = layers.Conv3DTranspose(width(level), 2, strides=2, kernel_initializer=kernel_initializer,
                                       name=f"up{level}_upconv")(x)
            x = layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
            x = _conv_block(x, width(level), f"up{level}", norm, convs, kernel_initializer)
        outputs = layers.Conv3D(1, 1, kernel_initializer=kernel_initializer, name="logits", dtype="float32")(x)
        kwargs.setdefault("name", "unet3d")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.depth, self.filters, self.norm, self.max_filters = depth, filters, norm, max_filters
        self.volume_shape, self.convs, self.kernel_initializer = input_shape, convs, kernel_initializer
        self.required_multiple = self.input_multiple(depth)
