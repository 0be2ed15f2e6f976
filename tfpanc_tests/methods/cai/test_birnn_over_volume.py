"""The chunked BiRNN pass equals one pass of the trained head over the whole sequence."""

import numpy as np
import pytest

from tfpanc.methods.cai.birnn_over_volume import BiRNNOverVolume
from tfpanc.models import BiRNNHead
from tfpanc.models.cnn_rnn import rebuild_for_size


@pytest.fixture(scope="module")
def head():
    rng = np.random.default_rng(0)
    head = BiRNNHead(8, 8)
    for w in head.weights:  # off the identity start, so both directions and the fusion matter
        w.assign(w.numpy() + rng.normal(0, 0.3, w.shape).astype("float32"))
    return head


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunks_with_carried_state_equal_one_pass(head, chunk):
    from keras import ops

    probabilities = np.random.default_rng(1).random((14, 11, 17), dtype=np.float32)
    whole = rebuild_for_size(head, 14, 11)  # the one-pass reference at the volume's size
    logits = whole.predict_on_batch(np.moveaxis(probabilities, 2, 0)[None, ..., None])
    expected = np.moveaxis(ops.convert_to_numpy(ops.sigmoid(logits))[0, ..., 0], 0, 2)
    assert expected.std() > 0.05
    got = BiRNNOverVolume(head, chunk_slices=chunk)(probabilities)
    assert got.shape == probabilities.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_chunk_size_must_be_positive(head):
    with pytest.raises(ValueError, match="chunk_slices"):
        BiRNNOverVolume(head, chunk_slices=0)
