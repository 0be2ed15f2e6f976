"""PNet-MSA: the 2D CNN sub-network of Cai et al. (Fig. 3, Eqs. 1-4).

The network is a stack of K unit modules. Unit k has

* a forward branch ``F_k``: 4 x (Conv 3x3 + BN + ReLU), preceded by a 2x2
  max-pooling for k >= 2, so ``F_k`` lives at 1/2**(k-1) of the input size;
* a backward branch ``B_k`` (multi-scale aggregation) that walks ``F_k`` back
  to full resolution: for j = k-1 .. 1, Deconv(2x2, stride 2) + BN + ReLU,
  concatenation with ``F_j``, Conv 3x3 + BN + ReLU; then a 1x1 conv to one
  channel, the side map ``U_k``.

The fused map is ``Y_hat = sum_k w_k U_k`` (Eq. 3) with one learned scalar
``w_k`` per unit.

Reading of Fig. 3: the figure labels the deconvolution "(64,2,1)" (channels,
kernel, stride); it has to undo a 2x2 max-pooling, so we use stride 2 (kernel
2, stride 2 is the usual exact inverse of 2x2 pooling). Convolutions followed
by BN carry no bias, since BN's offset makes it redundant.

Outputs are logits (pre-sigmoid): ``U_k`` and ``Y_hat`` are fused in logit
space, as HED fuses its side activations, and the losses in
:mod:`tfpanc.losses` take logits so that they stay numerically stable. With
``side_outputs=True`` (default) the model returns one tensor
``(batch, H, W, 1 + K)``: channel 0 is ``Y_hat``, channel k is ``U_k``. That
layout is what :func:`tfpanc.losses.deep_supervision_loss` expects (Eq. 4).
:func:`fused_probability` and :func:`probability_model` give the fused
probability for inference.

H and W must be multiples of ``2**(K-1)`` (``PNetMSA.input_multiple(K)``,
``model.required_multiple``) so the deconvolved maps line up with the
shallower ones.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tfpanc.models.base import ConstructorConfig, check_input_multiple

INIT = "he_normal"  # MSRA initialisation, as the paper states.


@keras.saving.register_keras_serializable(package="tfpanc")
class ScalarWeight(layers.Layer):
    """Multiplies its input by one learned scalar (the fusion weight w_k).

    Args:
        initial_value: the scalar's starting value.

    Example:
    >>> import numpy as np
    >>> out = ScalarWeight(0.5)(np.ones((1, 2, 2, 1), "float32"))
    >>> float(keras.ops.convert_to_numpy(out)[0, 0, 0, 0])
    0.5
    """

    def __init__(self, initial_value=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_value = float(initial_value)

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_value),
            name="w",
        )

    def call(self, inputs):
        return inputs * ops.cast(self.w, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "initial_value": self.initial_value}


@keras.saving.register_keras_serializable(package="tfpanc")
class FusedProbability(layers.Layer):
    """sigmoid of channel 0 of a stacked-logit output: the fused probability.

    No arguments beyond Keras' layer ones (``name``, ``dtype``); see
    :func:`probability_model`.

    Example:
    >>> import numpy as np
    >>> tuple(FusedProbability()(np.zeros((1, 2, 2, 3), "float32")).shape)
    (1, 2, 2, 1)
    """

    def call(self, inputs):
        return ops.sigmoid(inputs[..., :1])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)


def fused_probability(outputs):
    """The fused probability map from a model's stacked logits.

    Works for every tfpanc segmentation model whose channel 0 is the fused
    (final) logit map: PNetMSA, HNN, UNet2D, CNNRNN.

    Args:
        outputs: array or tensor ``(..., C)`` of logits, channel 0 fused.

    Returns:
        ``sigmoid(outputs[..., :1])``, same backend type as ``outputs``.

    Example:
    >>> import numpy as np
    >>> float(fused_probability(np.zeros((1, 4, 4, 3), "float32"))[0, 0, 0, 0])
    0.5
    """
    return ops.sigmoid(ops.convert_to_tensor(outputs)[..., :1])


def probability_model(model):
    """A model sharing ``model``'s layers that outputs the fused probability.

    Args:
        model: a tfpanc segmentation model (channel 0 of its output = fused
            logits).

    Returns:
        ``keras.Model`` mapping the same inputs to ``(..., 1)`` probabilities.

    Example:
    >>> m = probability_model(PNetMSA(num_units=1, filters=4))
    >>> m.output.shape
    (None, None, None, 1)
    """
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, FusedProbability(name="fused_probability")(model.outputs[0]))


def conv_bn_relu(x, filters, prefix, index, kernel_size=3, bn_momentum=0.9):
    """Conv (no bias) + BN + ReLU with deterministic names ``{prefix}_conv{i}`` etc."""
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                      kernel_initializer=INIT, name=f"{prefix}_conv{index}")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_bn{index}")(x)
    return layers.ReLU(name=f"{prefix}_relu{index}")(x)


def _deconv_bn_relu(x, filters, prefix, index, bn_momentum=0.9):
    x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", use_bias=False,
                               kernel_initializer=INIT, name=f"{prefix}_deconv{index}")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_deconv_bn{index}")(x)
    return layers.ReLU(name=f"{prefix}_deconv_relu{index}")(x)


@keras.saving.register_keras_serializable(package="tfpanc")
class PNetMSA(ConstructorConfig, keras.Model):
    """PNet-MSA of Cai et al.: K deeply supervised units with multi-scale aggregation.

    Layer names are fixed per unit (``unit{k}_fwd_conv{i}``,
    ``unit{k}_bwd_deconv{j}``, ``unit{k}_bwd_conv{j}``, ``unit{k}_side``,
    ``unit{k}_fuse_weight``, ...; ``j`` is the level ``F_j`` being merged), so
    that :func:`tfpanc.models.grow` can copy a K-unit model into a K+1-unit
    one by name.

    Args:
        num_units: K, the number of unit modules (paper: 5).
        filters: channels of every conv/deconv (paper: 64).
        side_outputs: True -> output ``(B, H, W, 1 + K)`` logits, channel 0 the
            fused ``Y_hat``, channel k the side map ``U_k``; False -> only the
            fused logits ``(B, H, W, 1)``. The weights are the same either way.
        input_shape: ``(H, W, slices)``; H and W may be None, otherwise
            multiples of ``PNetMSA.input_multiple(num_units)``
            (``2 ** (num_units - 1)``, also ``model.required_multiple``).
            Default: 3 consecutive slices, any in-plane size.
        fuse_init: initial value of every ``w_k``; None -> ``1 / K`` (the fused
            logit starts as the mean of the side logits).
        bn_momentum: BatchNormalization moving-average momentum. 0.9 (the
            PyTorch/Caffe-era default) rather than Keras' 0.99: with 0.99 the
            moving statistics trail the weights by ~100 steps, and a short
            run (or a freshly grown unit) then predicts nothing in inference
            mode while training-mode outputs are already good (measured on
            the quickstart phantom: inference DSC 0.29 vs 0.68 after 200
            steps with 0.99; 0.53-0.59 for both with 0.9).

    Example:
    >>> import numpy as np
    >>> model = PNetMSA(num_units=2, filters=8)
    >>> model.predict_on_batch(np.zeros((1, 32, 32, 3), "float32")).shape
    (1, 32, 32, 3)
    >>> PNetMSA.input_multiple(num_units=3)
    4
    """

    config_attributes = {"input_shape": "slice_shape"}

    @staticmethod
    def input_multiple(num_units=5):
        """``2 ** (num_units - 1)``: unit k works at 1/2**(k-1) of the input size."""
        return 2 ** (int(num_units) - 1)

    def __init__(self, num_units=5, filters=64, side_outputs=True,
                 input_shape=(None, None, 3), fuse_init=None, bn_momentum=0.9, **kwargs):
        if int(num_units) < 1 or int(filters) < 1:
            raise ValueError(f"num_units and filters must be >= 1, got {num_units}, {filters}")
        num_units, filters = int(num_units), int(filters)
        input_shape = tuple(input_shape)
        multiple = self.input_multiple(num_units)
        check_input_multiple(input_shape[:2], multiple, context=f" for {num_units} units")
        init = 1.0 / num_units if fuse_init is None else float(fuse_init)

        inputs = keras.Input(input_shape, name="slices")
        features = []  # F_1 .. F_K
        sides = []  # U_1 .. U_K (logits)
        x = inputs
        for k in range(1, num_units + 1):
            if k > 1:
                x = layers.MaxPooling2D(2, name=f"unit{k}_fwd_pool")(x)
            for i in range(1, 5):
                x = conv_bn_relu(x, filters, f"unit{k}_fwd", i, bn_momentum=bn_momentum)
            features.append(x)
            # Backward branch B_k: bring F_k up level by level, merging F_j.
            y = x
            for j in range(k - 1, 0, -1):
                y = _deconv_bn_relu(y, filters, f"unit{k}_bwd", j, bn_momentum=bn_momentum)
                y = layers.Concatenate(name=f"unit{k}_bwd_concat{j}")([y, features[j - 1]])
                y = conv_bn_relu(y, filters, f"unit{k}_bwd", j, bn_momentum=bn_momentum)
            sides.append(layers.Conv2D(1, 1, kernel_initializer=INIT, name=f"unit{k}_side")(y))

        weighted = [ScalarWeight(init, name=f"unit{k}_fuse_weight")(u)
                    for k, u in enumerate(sides, start=1)]
        fused = (layers.Add(name="fused")(weighted) if len(weighted) > 1
                 else layers.Identity(name="fused")(weighted[0]))
        outputs = (layers.Concatenate(name="fused_and_sides")([fused] + sides)
                   if side_outputs else fused)
        kwargs.setdefault("name", "pnet_msa")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.num_units = num_units
        self.filters = filters
        self.side_outputs = bool(side_outputs)
        self.slice_shape = input_shape
        self.fuse_init = fuse_init
        self.bn_momentum = float(bn_momentum)
        self.required_multiple = multiple
