"""3-D multitask dense U-Net: C2 of "Cascaded MultiTask 3-D Fully Convolutional Networks for Pancreas Segmentation".

The paper (Sec. II-B, Fig. 3) gives the network in words; Fig. 3's widths
and layer counts are not in the text. What it says, and how we read it:

- **Encoder**: "five blocks of convolutional layers and pooling layers", each
  of "several" 3x3x3 convolutions with ReLU, "followed by a pooling layer"
  of 2x2x2. Five poolings cannot all fit the paper's 16-voxel-deep patch
  (16 / 2**5 < 1), so we read the fifth block as the bottleneck: the first
  ``levels - 1`` blocks pool, the last does not, and every input size must
  be a multiple of ``2 ** (levels - 1)`` (16 for ``levels=5``; the paper's
  16x64x64 patch is). Block ``level`` has ``filters * 2 ** level`` channels,
  capped at ``max_filters``: the paper gives no widths, so this is the
  U-Net doubling.
- **Dense connections** ("we employ dense connections in the network",
  DenseNet [48]): in a block of ``convs_per_block`` convolutions each adds
  ``growth`` channels and sees the concatenation of the block's input and
  every earlier convolution's output. The block's output, that whole
  concatenation, then goes through a 1x1x1 convolution with ReLU to the
  block's width: DenseNet's transition (compression) layer, our reading, so
  that the widths stay bounded from block to block instead of adding up
  along the path. ``dense=False`` gives plain sequential convolutions of
  the block's width, as many, and no transition: the model "without dense
  connections" of the paper's ablation (Fig. 11).
- **Decoder**: "a corresponding number of blocks", one per pooling, each a
  2x2x2 stride-2 transposed convolution (linear, as in the 3D U-Net; we
  read "ReLU ... for each convolutional layer" as the 3x3x3 ones),
  concatenated with the encoder block of the same scale, then the block's
  convolutions, dense or plain as in the encoder.
- **Feature consistency** ("several modules ... (denoted by three green
  cubes in Fig. 3), which consist of additional convolutional layers, to
  generate more precise output after the concatenation"): one 3x3x3
  convolution with ReLU at the block's width, right after the
  concatenation, in the three finest-resolution up blocks (every up block
  when there are fewer than three). Which three blocks hold the cubes is
  our reading of the figure's count: the fine levels are where the encoder's
  low-level features meet the decoder's. ``feature_consistency=False`` is
  the ablation of Fig. 13.
- **Tasks**: they "share the entire encoder and a part of the decoder";
  "after the decoder ... each task has two extra convolutional layers". We
  share the whole decoder and read those two task convolutions (3x3x3 with
  ReLU, ``filters`` wide) as the unshared part. A 1x1x1 convolution ends
  each task: the segmentation head gives **one logit channel**, the
  skeleton head **one linear channel** (the regression target, the
  Gaussian-smoothed skeleton, under the Euclidean loss, Eq. 4). One logit
  loses nothing against the paper's two-class softmax (Eq. 2):
  ``softmax([a, b])[1] = sigmoid(b - a)``, so a sigmoid of the logit ``b - a``
  is that softmax, and binary cross-entropy on it is the two-class cross
  entropy. ``skeleton=False`` drops the skeleton head (the single-task
  model of the ablation, Fig. 10).
- No normalisation layers (the paper names none), so the convolutions have
  biases; "same" padding (the paper's "strides and padding of one")
  keeps the input's size. "All the network parameters are initialized by
  Xavier's [52] method": ``kernel_initializer="glorot_uniform"``, the
  Glorot and Bengio paper's uniform law. (Caffe's ``xavier`` filler, which
  the authors' Caffe code may have used, defaults to fan-in scaling, i.e.
  Keras's ``"lecun_uniform"``; pass that to follow Caffe instead.)

Axes are ``(x, y, z, channels)``, so the paper's 16x64x64 (z, y, x) patch is
``input_shape=(64, 64, 16, 1)``.

The model has one output, float32 also under a mixed precision policy:
``[segmentation_logit, skeleton]`` in its last axis (two channels), or the
logit alone with ``skeleton=False``.
"""

from __future__ import annotations

import keras
from keras import layers

from tfpanc.models.base import ConstructorConfig, check_input_multiple
from tfpanc.models.unet3d import NORMS, check_kernel_initializer, normalization_layer

CONSISTENCY_LEVELS = 3  # the paper's "three green cubes"
HEAD_CONVS = 2  # "each task has two extra convolutional layers"


def _conv_relu(x, channels, size, name, init, norm="none"):
    x = layers.Conv3D(channels, size, padding="same", use_bias=norm == "none", kernel_initializer=init,
                      name=name)(x)
    if norm != "none":
        x = normalization_layer(norm, channels, f"{name}_{norm}norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _block(x, width, prefix, dense, convs, growth, init, norm):
    if not dense:
        for i in range(1, convs + 1):
            x = _conv_relu(x, width, 3, f"{prefix}_conv{i}", init, norm)
        return x
    features = [x]
    for i in range(1, convs + 1):
        inputs = features[0] if i == 1 else layers.Concatenate(name=f"{prefix}_dense_in{i}")(features)
        features.append(_conv_relu(inputs, growth, 3, f"{prefix}_conv{i}", init, norm))
    x = layers.Concatenate(name=f"{prefix}_dense_out")(features)
    return _conv_relu(x, width, 1, f"{prefix}_transition", init, norm)


def _head(x, channels, name, init, norm):
    for i in range(1, HEAD_CONVS + 1):
        x = _conv_relu(x, channels, 3, f"{name}_conv{i}", init, norm)
    return x


def _check_positive_int(value, name):
    try:
        valid = not isinstance(value, bool) and int(value) == value and value >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@keras.saving.register_keras_serializable(package="tfpanc")
class MultitaskDenseUNet3D(ConstructorConfig, keras.Model):
    """The multitask paper's C2: a dense 3D U-Net segmenting the pancreas and regressing its skeleton.

    Args:
        levels: encoder blocks, the last being the bottleneck (``levels - 1``
            poolings); every input size must be a multiple of
            ``2 ** (levels - 1)`` (:meth:`input_multiple`).
        filters: channels of the first block (and of the task heads),
            doubled per level.
        growth: channels each convolution of a dense block adds.
        convs_per_block: 3x3x3 convolutions per block.
        dense: dense connections in the blocks; False for plain blocks.
        feature_consistency: one extra 3x3x3 convolution after the skip
            concatenation of the three finest up blocks.
        skeleton: the skeleton regression head (a second output channel).
        max_filters: cap on the channels of any block.
        kernel_initializer: a Keras initializer name for every kernel.
        norm: ``"none"`` (the paper), or ``"batch"`` / ``"instance"`` /
            ``"group"`` after every convolution (as :class:`UNet3D`'s), for
            short CPU runs that plain SGD on an unnormalised net cannot afford.
        input_shape: ``(x, y, z, channels)``; sizes may be None.

    Example:
    >>> import numpy as np
    >>> model = MultitaskDenseUNet3D(levels=2, filters=2, growth=2)
    >>> model.predict_on_batch(np.zeros((1, 8, 8, 4, 1), "float32")).shape
    (1, 8, 8, 4, 2)
    >>> MultitaskDenseUNet3D.output_channels(skeleton=False), MultitaskDenseUNet3D.input_multiple()
    (1, 16)
    """

    config_attributes = {"input_shape": "volume_shape"}

    @staticmethod
    def input_multiple(levels=5):
        """What every input size must be a multiple of."""
        return 2 ** (int(levels) - 1)

    @staticmethod
    def output_channels(skeleton=True):
        """Channels of the output: the segmentation logit, then the skeleton if any."""
        return 2 if skeleton else 1

    def __init__(self, levels=5, filters=16, growth=8, convs_per_block=2, dense=True, feature_consistency=True,
                 skeleton=True, max_filters=256, kernel_initializer="glorot_uniform",
                 input_shape=(None, None, None, 1), norm="none", **kwargs):
        levels = _check_positive_int(levels, "levels")
        if levels < 2:
            raise ValueError(f"levels must be >= 2 (one pooling, then the bottleneck), got {levels}")
        filters = _check_positive_int(filters, "filters")
        growth = _check_positive_int(growth, "growth")
        convs = _check_positive_int(convs_per_block, "convs_per_block")
        max_filters = _check_positive_int(max_filters, "max_filters")
        if max_filters < filters:
            raise ValueError(f"max_filters ({max_filters}) must be >= filters ({filters})")
        for flag, value in (("dense", dense), ("feature_consistency", feature_consistency),
                            ("skeleton", skeleton)):
            if not isinstance(value, bool):
                raise ValueError(f"{flag} must be True or False, got {value!r}")
        check_kernel_initializer(kernel_initializer)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"input_shape must be (x, y, z, channels), got {input_shape}")
        check_input_multiple(input_shape[:3], self.input_multiple(levels),
                             context=f" for levels={levels}")
        init = kernel_initializer

        def width(level):
            return min(filters * 2 ** level, max_filters)

        inputs = keras.Input(input_shape, name="volume")
        skips, x = [], inputs
        for level in range(levels - 1):
            x = _block(x, width(level), f"down{level}", dense, convs, growth, init, norm)
            skips.append(x)
            x = layers.MaxPooling3D(2, name=f"down{level}_pool")(x)
        x = _block(x, width(levels - 1), "bottom", dense, convs, growth, init, norm)
        for level in reversed(range(levels - 1)):
            x = layers.Conv3DTranspose(width(level), 2, strides=2, kernel_initializer=init,
                                       name=f"up{level}_upconv")(x)
            x = layers.Concatenate(name=f"up{level}_skip")([skips[level], x])
            if feature_consistency and level < CONSISTENCY_LEVELS:
                x = _conv_relu(x, width(level), 3, f"up{level}_consistency", init, norm)
            x = _block(x, width(level), f"up{level}", dense, convs, growth, init, norm)
        # float32 outputs: the losses and the sigmoid stay exact under mixed precision.
        outputs = layers.Conv3D(1, 1, kernel_initializer=init, name="segmentation_logit", dtype="float32")(
            _head(x, filters, "segmentation", init, norm))
        if skeleton:
            regression = layers.Conv3D(1, 1, kernel_initializer=init, name="skeleton", dtype="float32")(
                _head(x, filters, "skeleton", init, norm))
            outputs = layers.Concatenate(name="outputs", dtype="float32")([outputs, regression])
        kwargs.setdefault("name", "multitask_dense_unet3d")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.levels, self.filters, self.growth, self.convs_per_block = levels, filters, growth, convs
        self.dense, self.feature_consistency, self.skeleton = dense, feature_consistency, skeleton
        self.max_filters, self.kernel_initializer, self.volume_shape = max_filters, init, input_shape
        self.norm = norm
        self.required_multiple = self.input_multiple(levels)
