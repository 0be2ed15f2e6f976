"""The BiRNN over a whole volume's axial slice sequence.

At training time the CNN+BiRNN stack sees short runs of slices cut to a fixed
in-plane size; at inference the BiRNN runs once over all axial slices of the
volume at the volume's own in-plane size. Keras' ConvLSTM2D fixes (H, W)
when built, so the head is rebuilt for the volume's size with the trained
weights (cached per size: a folder of same-size scans builds it once).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from tfpanc.models.cnn_rnn import rebuild_for_size


class BiRNNOverVolume:
    """Applies a trained :class:`tfpanc.models.BiRNNHead` to probability volumes.

    Args:
        head: the trained head (any build size).

    Example:
    >>> from tfpanc.models import BiRNNHead
    >>> smooth = BiRNNOverVolume(BiRNNHead(8, 8))
    >>> smooth(np.full((12, 10, 5), 0.5, "float32")).shape
    (12, 10, 5)
    """

    def __init__(self, head):
        self.head = head
        self._by_size = {(head.height, head.width): head}

    def head_for(self, height, width):
        key = (int(height), int(width))
        if key not in self._by_size:
            self._by_size[key] = rebuild_for_size(self.head, *key)
        return self._by_size[key]

    def __call__(self, probabilities):
        """Refined probabilities of an ``[x, y, z]`` CNN probability volume."""
        x, y, _ = probabilities.shape
        head = self.head_for(x, y)
        # (x, y, z) -> one sequence of z slices: (1, z, x, y, 1).
        sequence = np.moveaxis(np.asarray(probabilities, np.float32), 2, 0)[None, ..., None]
        logits = head.predict_on_batch(sequence)
        refined = ops.convert_to_numpy(ops.sigmoid(logits))[0, ..., 0]
        return np.ascontiguousarray(np.moveaxis(refined, 0, 2))
