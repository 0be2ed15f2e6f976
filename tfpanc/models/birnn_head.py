"""BiRNN: the bi-directional CLSTM that regularises slice-to-slice shape (Sec. III-B).

Input: the sequence of PNet-MSA fused probability maps of consecutive slices,
``(batch, time, H, W, 1)`` in [0, 1]. The paper feeds the CNN's output
probability maps ``Y_hat_tau`` (Sec. IV-D: "processing only the output
probability maps of CNN sub-network"), not features or logits.

Each direction is one ConvLSTM layer with 1 hidden channel and 3x3 kernels;
Keras' ``Bidirectional`` runs the second copy over the reversed sequence and
flips its output back, so both are aligned per slice. Eq. 10 combines the two
outputs with learned weights: ``Y_bar = lambda^- O^- + lambda^+ O^+``. Here
``O`` is the layer output (the hidden state ``H_tau`` in (-1, 1)) and the
combination, plus a learned bias, is the logit of ``Y_bar`` (so the losses can
work on logits). It is a ``Dense(1)`` (layer ``direction_fusion``) over the
two direction channels: kernel row 0 weighs the forward pass (increasing
slice index), row 1 the backward pass.

Differences from Eqs. 5-9 that come from Keras' ConvLSTM2D: no peephole
terms (``W_c . C``), and 4 gate biases. The paper's "72 variables per CLSTM
layer" is 4 gates x (9 input + 9 recurrent) weights, which Keras has too.

Keras' ConvLSTM2D needs the in-plane size when it is built (checked in Keras
3.15: a None spatial size raises), so the head is built for one (H, W);
:func:`tfpanc.models.rebuild_for_size` makes a copy for another size with the
same weights. The time length may vary.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from tfpanc.models.base import ConstructorConfig

# Gate order of Keras' ConvLSTM cell kernels (input, forget, cell, output).
_I, _F, _C, _O = range(4)


@keras.saving.register_keras_serializable(package="tfpanc")
class BiRNNHead(ConstructorConfig, keras.Model):
    """Bi-directional 1-channel ConvLSTM over a slice sequence of probability maps.

    Args:
        height: in-plane rows H of the maps (fixed at build time).
        width: in-plane columns W.
        kernel_size: ConvLSTM kernel (paper: 3).
        lambda_init: initial value of both direction weights lambda. The hidden
            state is in (-1, 1) (about +-0.76 at the identity-like start), so
            the logit is bounded by ``|lambda^-| + |lambda^+| + |bias|``; 4
            lets the start reach probabilities 0.002-0.998 (with 2 it was
            0.05-0.95, and a 0.05/0.95 threshold then marked the whole volume
            or nothing).
        identity_init: start both ConvLSTMs as a pass-through of the CNN's
            probability (see :func:`identity_like_weights`) rather than from
            random gates. The paper does not say how the CLSTM starts; from a
            random start the stacked model outputs about 0.5 everywhere and a
            short fine-tuning (the quickstart's) never recovers, so it ends
            up marking the whole volume. With it, fine-tuning starts from the
            CNN's own segmentation and only learns the slice-to-slice part.

    Input ``(batch, time, H, W, 1)`` probabilities, output same shape logits.
    Any (H, W) works (``BiRNNHead.input_multiple()`` is 1: no pooling), but
    it is fixed when the head is built.

    Example:
    >>> import numpy as np
    >>> head = BiRNNHead(16, 16)
    >>> head.predict_on_batch(np.full((1, 4, 16, 16, 1), 0.5, "float32")).shape
    (1, 4, 16, 16, 1)
    """

    @staticmethod
    def input_multiple():
        """1: stride-1 convolutions only, any in-plane size fits."""
        return 1

    def __init__(self, height, width, kernel_size=3, lambda_init=4.0, identity_init=True, **kwargs):
        height, width = int(height), int(width)
        inputs = keras.Input((None, height, width, 1), name="probabilities")
        both = layers.Bidirectional(
            layers.ConvLSTM2D(1, kernel_size, padding="same", return_sequences=True,
                              name="clstm"),
            merge_mode="concat", name="bidirectional_clstm")(inputs)
        logits = layers.Dense(
            1, kernel_initializer=keras.initializers.Constant(lambda_init),
            name="direction_fusion")(both)
        kwargs.setdefault("name", "birnn_head")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.height = height
        self.width = width
        self.kernel_size = kernel_size
        self.lambda_init = float(lambda_init)
        self.identity_init = bool(identity_init)
        self.required_multiple = self.input_multiple()
        if self.identity_init:
            clstm = self.get_layer("bidirectional_clstm")
            for direction in (clstm.forward_layer, clstm.backward_layer):
                direction.set_weights(identity_like_weights(direction.get_weights()))


def identity_like_weights(weights, gain=6.0, gate_bias=3.0, scale=0.1):
    """ConvLSTM weights whose output follows the input probability at the start.

    With the input and output gates open (bias +``gate_bias``), the forget
    gate shut (bias -``gate_bias``) and the cell candidate
    ``tanh(gain * (p - 0.5))`` read from the centre tap, the hidden state is
    about ``tanh(tanh(gain * (p - 0.5)))``: positive exactly where p > 0.5.
    The random kernels are kept, scaled by ``scale``, so that every weight
    still gets a gradient and the recurrence can be learned.

    Args:
        weights: ``[kernel, recurrent_kernel, bias]`` of a 1-filter ConvLSTM2D.
        gain, gate_bias, scale: see above.

    Returns:
        the new ``[kernel, recurrent_kernel, bias]``.

    Example:
    >>> k, r, b = identity_like_weights([np.zeros((3, 3, 1, 4)), np.zeros((3, 3, 1, 4)), np.zeros(4)])
    >>> float(k[1, 1, 0, 2]), [float(v) for v in b]
    (6.0, [3.0, -3.0, -3.0, 3.0])
    """
    kernel, recurrent, bias = (np.array(w, dtype="float32") for w in weights)
    if kernel.shape[2:] != (1, 4) or bias.shape != (4,):
        raise ValueError(f"expected a 1-filter ConvLSTM on 1 channel, got kernel {kernel.shape}")
    kernel *= scale
    recurrent *= scale
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    kernel[cy, cx, 0, _C] += gain
    bias[:] = (gate_bias, -gate_bias, -gain / 2.0, gate_bias)
    return [kernel, recurrent, bias]
