"""CNN-RNN: PNet-MSA per slice, then the BiRNN over the run of slices (Fig. 1).

The stacked model is fine-tuned end-to-end on runs of consecutive slices
``(batch, time, H, W, 3)`` (each step: 3 neighbouring slices, the middle one
is the slice being segmented). PNet-MSA sees the run folded into one batch of
``batch * time`` images (one BN batch, one conv call, rather than a Python
loop over time as ``TimeDistributed`` does in Keras 3), its fused logits go
through a sigmoid (the BiRNN reads probability maps), and the BiRNN returns
the refined logits ``Y_bar``.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tfpanc.models.base import ConstructorConfig, check_input_multiple
from tfpanc.models.birnn_head import BiRNNHead
from tfpanc.models.pnet_msa import PNetMSA


@keras.saving.register_keras_serializable(package="tfpanc")
class FoldTime(layers.Layer):
    """``(B, T, ...) -> (B * T, ...)``: a run of slices as one batch of images.

    No arguments beyond Keras' layer ones (``name``, ``dtype``).

    Example:
    >>> import numpy as np
    >>> tuple(FoldTime()(np.zeros((2, 3, 4, 4, 1), "float32")).shape)
    (6, 4, 4, 1)
    """

    def call(self, inputs):
        shape = ops.shape(inputs)
        return ops.reshape(inputs, (-1,) + tuple(shape[2:]))

    def compute_output_shape(self, input_shape):
        b, t = input_shape[:2]
        bt = None if b is None or t is None else b * t
        return (bt,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="tfpanc")
class UnfoldTime(layers.Layer):
    """``[(B * T, ...), reference (B, T, ...)] -> (B, T, ...)``: undoes :class:`FoldTime`.

    The reference (the unfolded input) gives T. No arguments beyond Keras'
    layer ones (``name``, ``dtype``).

    Example:
    >>> import numpy as np
    >>> folded, runs = np.zeros((6, 4, 4, 1), "float32"), np.zeros((2, 3, 4, 4, 3), "float32")
    >>> tuple(UnfoldTime()([folded, runs]).shape)
    (2, 3, 4, 4, 1)
    """

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(x)
        return ops.reshape(x, (-1, ops.shape(reference)[1]) + tuple(shape[1:]))

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return tuple(ref_shape[:2]) + tuple(x_shape[1:])


@keras.saving.register_keras_serializable(package="tfpanc")
class CNNRNN(ConstructorConfig, keras.Model):
    """PNet-MSA followed by the BiRNN head, trainable end-to-end.

    Args:
        pnet: a :class:`PNetMSA` (its side outputs are used only when
            ``side_outputs`` is True; channel 0 is always the fused map).
        birnn: a :class:`BiRNNHead`; its (H, W) fixes the model's in-plane
            size, which must be a multiple of ``CNNRNN.input_multiple(pnet)``
            (the PNet-MSA's, also ``model.required_multiple``).
        side_outputs: False -> output ``(B, T, H, W, 1)``: the BiRNN logits
            ``Y_bar``. True -> ``(B, T, H, W, 1 + C)``: ``Y_bar`` then the C
            PNet-MSA output channels (``Y_hat``, ``U_1..U_K`` when the PNet has
            side outputs), so that :func:`tfpanc.losses.deep_supervision_loss`
            can supervise the CNN too while fine-tuning.

    Example:
    >>> import numpy as np
    >>> model = CNNRNN(PNetMSA(num_units=2, filters=4), BiRNNHead(16, 16))
    >>> model.predict_on_batch(np.zeros((1, 3, 16, 16, 3), "float32")).shape
    (1, 3, 16, 16, 1)
    >>> CNNRNN.input_multiple(model.pnet)
    2
    """

    @staticmethod
    def input_multiple(pnet):
        """The multiple of the PNet-MSA ``pnet``: the BiRNN adds no pooling.

        Without a built PNet-MSA: ``PNetMSA.input_multiple(num_units)``.
        """
        return PNetMSA.input_multiple(pnet.num_units)

    def __init__(self, pnet, birnn, side_outputs=False, **kwargs):
        if not isinstance(pnet, PNetMSA) or not isinstance(birnn, BiRNNHead):
            raise TypeError("CNNRNN needs a PNetMSA and a BiRNNHead")
        slices = pnet.slice_shape[-1]
        multiple = self.input_multiple(pnet)
        check_input_multiple((birnn.height, birnn.width), multiple, what="BiRNN size",
                             context=" for this PNet-MSA")
        # Attributes first (keras-hub style) so the sub-models are tracked.
        self.pnet = pnet
        self.birnn = birnn
        inputs = keras.Input((None, birnn.height, birnn.width, slices), name="slice_runs")
        cnn_out = pnet(FoldTime(name="fold_time")(inputs))
        fused = layers.Identity(name="cnn_logits")(cnn_out[..., :1])
        probabilities = layers.Activation("sigmoid", name="cnn_probability")(fused)
        sequence = UnfoldTime(name="unfold_time")([probabilities, inputs])
        outputs = birnn(sequence)
        if side_outputs:
            cnn_seq = UnfoldTime(name="unfold_time_cnn")([cnn_out, inputs])
            outputs = layers.Concatenate(name="rnn_and_cnn")([outputs, cnn_seq])
        kwargs.setdefault("name", "cnn_rnn")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.side_outputs = bool(side_outputs)
        self.required_multiple = multiple


def rebuild_for_size(model, height, width):
    """The same BiRNNHead or CNNRNN, built for another in-plane size, same weights.

    Keras' ConvLSTM2D fixes (H, W) when built; all weights are convolution
    kernels, so they carry over to any size.

    Args:
        model: a :class:`BiRNNHead` or :class:`CNNRNN`.
        height: new H.
        width: new W.

    Returns:
        a new model of the same class (independent copy of the weights).

    Example:
    >>> head = BiRNNHead(16, 16)
    >>> rebuild_for_size(head, 32, 24).input_shape
    (None, None, 32, 24, 1)
    """
    if isinstance(model, BiRNNHead):
        config = {**model.get_config(), "height": int(height), "width": int(width)}
        new = BiRNNHead.from_config(config)
    elif isinstance(model, CNNRNN):
        pnet = PNetMSA.from_config(model.pnet.get_config())
        birnn = rebuild_for_size(model.birnn, height, width)
        new = CNNRNN(pnet, birnn, side_outputs=model.side_outputs, name=model.name)
    else:
        raise TypeError(f"rebuild_for_size() needs a BiRNNHead or CNNRNN, got {type(model).__name__}")
    new.set_weights(model.get_weights())
    return new
