"""The BiRNN over a whole volume's axial slice sequence, in chunks with carried state.

At training time the CNN+BiRNN stack sees short runs of slices cut to a fixed
in-plane size; at inference the BiRNN runs over all axial slices of the
volume at the volume's own in-plane size. Keras' ConvLSTM2D fixes (H, W)
when built, so each direction is rebuilt for the volume's size with the
trained weights (cached per size: a folder of same-size scans builds it once).

Memory: one pass of Keras' ConvLSTM over the whole sequence keeps every
step's intermediate maps, about 17 MiB per 512 x 512 slice (measured: 856 MiB
peak at 8 slices, 1,260 MiB at 32), so a 400-slice scan would need ~7 GB.
The recurrence only carries ``(h, c)`` from one slice to the next, so each
direction runs over chunks of ``chunk_slices`` slices, handing its final
state to the next chunk (the backward direction from the last chunk to the
first): memory is bounded by one chunk, and the result equals the one-pass
result (to float32 rounding, tested to 1e-5). The two directions are then
fused as the head's ``direction_fusion`` layer does (a Dense over the two
channels) and the sigmoid taken, in numpy and in place, so the pass holds
two volume-sized float32 arrays beside its input.
"""

from __future__ import annotations

import numpy as np
from keras import layers

# Slices per ConvLSTM call: ~17 MiB each at 512 x 512, so 16 keep a chunk under 300 MB.
CHUNK_SLICES = 16


def _with_state(layer, height, width):
    """A trained ConvLSTM2D direction for (H, W) as a compiled call ``[chunk, h, c] -> [out, h, c]``."""
    import keras

    from tfpanc.inference.compiled import compiled_forward

    height, width = int(height), int(width)
    clone = layers.ConvLSTM2D.from_config({**layer.get_config(), "return_state": True, "name": None})
    sequence = keras.Input((None, height, width, 1))
    h, c = keras.Input((height, width, 1)), keras.Input((height, width, 1))
    step = keras.Model([sequence, h, c], clone(sequence, initial_state=[h, c]))
    clone.set_weights(layer.get_weights())
    return compiled_forward(step), bool(layer.go_backwards)


class BiRNNOverVolume:
    """Applies a trained :class:`tfpanc.models.BiRNNHead` to probability volumes.

    Args:
        head: the trained head (any build size).
        chunk_slices: slices per ConvLSTM call (memory bound; the result does not depend on it).

    Example:
    >>> from tfpanc.models import BiRNNHead
    >>> smooth = BiRNNOverVolume(BiRNNHead(8, 8), chunk_slices=2)
    >>> smooth(np.full((12, 10, 5), 0.5, "float32")).shape
    (12, 10, 5)
    """

    def __init__(self, head, chunk_slices=CHUNK_SLICES):
        if int(chunk_slices) < 1:
            raise ValueError(f"chunk_slices must be >= 1, got {chunk_slices}")
        self.head = head
        self.chunk_slices = int(chunk_slices)
        bidir = head.get_layer("bidirectional_clstm")
        self._forward, self._backward = bidir.forward_layer, bidir.backward_layer
        kernel, bias = head.get_layer("direction_fusion").get_weights()
        self._fusion = (np.float32(kernel[0, 0]), np.float32(kernel[1, 0]), np.float32(bias[0]))
        self._by_size = {}

    def directions_for(self, height, width):
        key = (int(height), int(width))
        if key not in self._by_size:
            self._by_size[key] = (_with_state(self._forward, *key), _with_state(self._backward, *key))
        return self._by_size[key]

    def _run(self, direction, probabilities, order):
        """One direction over the axial sequence of ``[x, y, z]`` maps, chunk by chunk in ``order``."""
        call, backwards = direction
        x, y, _ = probabilities.shape
        out = np.empty(probabilities.shape, np.float32)
        h = c = np.zeros((1, x, y, 1), np.float32)  # Keras' own initial state
        for start, stop in order:
            # (x, y, chunk) -> one sequence (1, chunk, x, y, 1); only the chunk is copied.
            chunk = np.moveaxis(probabilities[:, :, start:stop], 2, 0)[None, ..., None]
            hidden, h, c = call([np.ascontiguousarray(chunk, np.float32), h, c])
            hidden = hidden[0, ..., 0]
            # go_backwards layers emit the chunk's last slice first.
            out[:, :, start:stop] = np.moveaxis(hidden[::-1] if backwards else hidden, 0, 2)
        return out

    def __call__(self, probabilities):
        """Refined probabilities of an ``[x, y, z]`` CNN probability volume."""
        x, y, z = probabilities.shape
        forward, backward = self.directions_for(x, y)
        chunks = [(a, min(a + self.chunk_slices, z)) for a in range(0, z, self.chunk_slices)]
        out = self._run(forward, probabilities, chunks)
        behind = self._run(backward, probabilities, chunks[::-1])
        w_forward, w_backward, bias = self._fusion
        # In place: two volume-sized arrays beside the input, whatever the slice count.
        out *= w_forward
        behind *= w_backward
        out += behind
        del behind
        out += bias
        np.negative(out, out=out)
        np.exp(out, out=out)
        out += np.float32(1.0)
        np.reciprocal(out, out=out)  # sigmoid(logit) = 1 / (1 + exp(-logit))
        return out
