"""FCN-8s (Long et al. 2015): the 2D network of Zhou et al.'s fixed-point model.

VGG16 trunk (5 stages of 2, 2, 3, 3, 3 convs 3x3 + ReLU, 2x2 max-pooling after
each, so pool5 is at stride 32), fc6/fc7 as convolutions (7x7 and 1x1, ReLU,
dropout 0.5), then the FCN-8s skip architecture: a 1x1 score on fc7 (stride
32) is upsampled 2x and added to a 1x1 score of pool4 (stride 16), that sum is
upsampled 2x and added to a 1x1 score of pool3 (stride 8), and the result is
upsampled 8x to the input size. Upsampling is learned (Conv2DTranspose,
kernel 2s for stride s, no bias) and starts as bilinear interpolation, as in
FCN.

Differences from the Caffe FCN-8s (documented choices):

* 'same' padding everywhere instead of conv1's ``pad=100`` plus Crop layers,
  so no crop offsets are needed and any input whose height and width are
  multiples of 32 (``FCN8s.input_multiple()``, ``model.required_multiple``)
  works; fc6 is a 'same' 7x7 convolution.
* One output channel of logits (pancreas vs. background; a sigmoid gives the
  probability), for the centre slice of the 3-slice input stack.
  OrganSegC2F's modified FCN-8s scores with 512/128/64 channels at strides
  32/16/8, keeps its upsampling fixed (``lr_mult: 0``) and predicts all three
  slices of the stack; set ``learn_upsampling=False`` for the fixed variant.
* Trained from scratch (He-normal initialisation); the pool3/pool4 scores
  start at zero, as in FCN's staged training, so the initial network behaves
  like FCN-32s. The paper fine-tunes from PascalVOC FCN-8s; with a local VGG16
  weights file :func:`load_vgg16_weights` loads the 13 convolutions by name
  and reshapes VGG16's dense fc1/fc2 into fc6/fc7.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from tfpanc.models.base import ConstructorConfig, check_input_multiple
from tfpanc.models.pretrained import load_pretrained_weights, read_weight_file
from tfpanc.models.vgg16 import VGG16_STAGES, VGG16_WIDTH

INIT = "he_normal"


def bilinear_kernel(size, in_channels=1, out_channels=1):
    """A Conv2DTranspose kernel ``(size, size, out, in)`` doing bilinear upsampling.

    FCN's ``upsample_filt``: channel i goes to channel i (for i < min(in,
    out)), other pairs are zero. With stride ``size // 2`` and 'same' padding
    it interpolates bilinearly.

    Example:
    >>> bilinear_kernel(4)[:, :, 0, 0][0].round(4).tolist()
    [0.0625, 0.1875, 0.1875, 0.0625]
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    filt = (1 - np.abs(og[0] - center) / factor) * (1 - np.abs(og[1] - center) / factor)
    kernel = np.zeros((size, size, out_channels, in_channels), np.float32)
    for i in range(min(in_channels, out_channels)):
        kernel[:, :, i, i] = filt
    return kernel


@keras.saving.register_keras_serializable(package="tfpanc")
class FCN8s(ConstructorConfig, keras.Model):
    """FCN-8s with a VGG16 trunk, one logit channel out.

    Layer names follow ``keras.applications.VGG16`` for the trunk
    (``block{s}_conv{i}``, ``block{s}_pool``), then ``fc6``, ``fc7``,
    ``score_fr``, ``upscore2``, ``score_pool4``, ``fuse_pool4``,
    ``upscore_pool4``, ``score_pool3``, ``fuse_pool3``, ``upscore8``.

    Args:
        filters: channels of stage 1 (VGG16: 64); stages use 1, 2, 4, 8, 8
            times it.
        fc_filters: channels of fc6 and fc7 (VGG16: 4096).
        dropout: dropout rate after fc6 and fc7 (FCN: 0.5).
        learn_upsampling: train the bilinear-initialised upsampling kernels
            (True) or keep them fixed (False, as OrganSegC2F).
        input_shape: ``(H, W, slices)``; H and W may be None, otherwise
            multiples of ``FCN8s.input_multiple()`` (32, also
            ``model.required_multiple``).
        batch_norm: BN (momentum 0.9) after every trunk convolution, as in
            VGG16-BN (not in the paper, which fine-tunes PascalVOC weights):
            trained from scratch, the plain trunk learns very slowly or
            collapses to background; with BN the usual learning rates work.

    Example:
    >>> import numpy as np
    >>> model = FCN8s(filters=2, fc_filters=8)
    >>> model.predict_on_batch(np.zeros((1, 64, 96, 3), "float32")).shape
    (1, 64, 96, 1)
    >>> FCN8s.input_multiple()
    32
    """

    config_attributes = {"input_shape": "slice_shape"}

    @staticmethod
    def input_multiple():
        """32: one 2x2 pooling after each of VGG16's 5 stages."""
        return 2 ** len(VGG16_STAGES)

    def __init__(self, filters=64, fc_filters=4096, dropout=0.5, learn_upsampling=True,
                 input_shape=(None, None, 3), batch_norm=False, **kwargs):
        filters, fc_filters = int(filters), int(fc_filters)
        if filters < 1 or fc_filters < 1:
            raise ValueError(f"filters and fc_filters must be >= 1, got {filters}, {fc_filters}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        input_shape = tuple(input_shape)
        multiple = self.input_multiple()
        check_input_multiple(input_shape[:2], multiple)

        inputs = keras.Input(input_shape, name="slices")
        x = inputs
        pools = []
        for s, (convs, width) in enumerate(zip(VGG16_STAGES, VGG16_WIDTH), start=1):
            for i in range(1, convs + 1):
                x = layers.Conv2D(filters * width, 3, padding="same",
                                  activation=None if batch_norm else "relu",
                                  kernel_initializer=INIT, name=f"block{s}_conv{i}")(x)
                if batch_norm:
                    x = layers.BatchNormalization(momentum=0.9, name=f"block{s}_bn{i}")(x)
                    x = layers.ReLU(name=f"block{s}_relu{i}")(x)
            x = layers.MaxPooling2D(2, name=f"block{s}_pool")(x)
            pools.append(x)
        x = layers.Conv2D(fc_filters, 7, padding="same", activation="relu",
                          kernel_initializer=INIT, name="fc6")(x)
        x = layers.Dropout(dropout, name="drop6")(x)
        x = layers.Conv2D(fc_filters, 1, activation="relu", kernel_initializer=INIT, name="fc7")(x)
        x = layers.Dropout(dropout, name="drop7")(x)
        score = layers.Conv2D(1, 1, kernel_initializer=INIT, name="score_fr")(x)

        upsampling = []  # (layer, kernel size) pairs set to bilinear below
        for name, pool, stride in (("pool4", pools[3], 2), ("pool3", pools[2], 2)):
            up = layers.Conv2DTranspose(
                1, 2 * stride, strides=stride, padding="same", use_bias=False,
                trainable=bool(learn_upsampling),
                name="upscore2" if name == "pool4" else "upscore_pool4")
            skip = layers.Conv2D(1, 1, kernel_initializer="zeros", name=f"score_{name}")(pool)
            score = layers.Add(name=f"fuse_{name}")([up(score), skip])
            upsampling.append((up, 2 * stride))
        up8 = layers.Conv2DTranspose(1, 16, strides=8, padding="same", use_bias=False,
                                     trainable=bool(learn_upsampling), name="upscore8")
        outputs = up8(score)
        upsampling.append((up8, 16))

        kwargs.setdefault("name", "fcn8s")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        for layer, size in upsampling:
            layer.kernel.assign(bilinear_kernel(size))

        self.filters = filters
        self.fc_filters = fc_filters
        self.dropout = float(dropout)
        self.learn_upsampling = bool(learn_upsampling)
        self.batch_norm = bool(batch_norm)
        self.slice_shape = input_shape
        self.required_multiple = multiple


def load_vgg16_weights(model, path):
    """Initialises an :class:`FCN8s` from a local VGG16 weights file.

    The 13 trunk convolutions load by name
    (:func:`tfpanc.models.load_pretrained_weights`); VGG16's dense ``fc1``
    ``(7*7*C5, F)`` and ``fc2`` ``(F, F)`` are reshaped into the convolutions
    ``fc6`` ``(7, 7, C5, F)`` and ``fc7`` ``(1, 1, F, F)`` (FCN's
    "convolutionalisation"; keras.applications flattens channels-last, which
    is the reshape order) when their sizes match. The score and upsampling
    layers keep their initialisation.

    Args:
        model: an :class:`FCN8s` (``filters=64, fc_filters=4096`` for the
            real VGG16 file).
        path: a Keras VGG16 weights file (with or without the top).

    Returns:
        the report of :func:`load_pretrained_weights`, with ``fc6``/``fc7``
        moved to ``loaded`` when they were converted.

    Raises:
        tfpanc.errors.InputError: unreadable file or nothing matches.
    """
    report = load_pretrained_weights(model, path)
    arrays = read_weight_file(path)
    for dense, conv in (("fc1", "fc6"), ("fc2", "fc7")):
        saved, layer = arrays.get(dense), model.get_layer(conv)
        kernel_shape = tuple(layer.kernel.shape)
        if saved is None or len(saved) != 2 or saved[0].size != int(np.prod(kernel_shape)) \
                or saved[0].shape[-1] != kernel_shape[-1]:
            continue
        layer.set_weights([saved[0].reshape(kernel_shape), saved[1]])
        report["loaded"].append(conv)
        report["skipped"].pop(conv, None)
    return report
