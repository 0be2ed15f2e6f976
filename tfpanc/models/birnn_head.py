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
from keras import layers


@keras.saving.register_keras_serializable(package="tfpanc")
class BiRNNHead(keras.Model):
    """Bi-directional 1-channel ConvLSTM over a slice sequence of probability maps.

    Args:
        height: in-plane rows H of the maps (fixed at build time).
        width: in-plane columns W.
        kernel_size: ConvLSTM kernel (paper: 3).
        lambda_init: initial value of both direction weights lambda. The hidden
            state is in (-1, 1), so the logit is bounded by
            ``|lambda^-| + |lambda^+| + |bias|``; 2 allows probabilities up to
            about 0.98 at the start without waiting for lambda to grow.

    Input ``(batch, time, H, W, 1)`` probabilities, output same shape logits.

    Example:
    >>> import numpy as np
    >>> head = BiRNNHead(16, 16)
    >>> head.predict_on_batch(np.full((1, 4, 16, 16, 1), 0.5, "float32")).shape
    (1, 4, 16, 16, 1)
    """

    def __init__(self, height, width, kernel_size=3, lambda_init=2.0, **kwargs):
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

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "height": self.height,
            "width": self.width,
            "kernel_size": self.kernel_size,
            "lambda_init": self.lambda_init,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
