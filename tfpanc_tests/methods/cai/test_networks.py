"""cai's slices per CNN call: bounded by slice pixels x channels (what the activations grow with)."""

from tfpanc.methods.cai.networks import SLICE_BUDGET_PIXEL_CHANNELS, slices_per_call


def test_wide_networks_take_fewer_slices_per_call():
    assert slices_per_call((512, 512, 240), 64) == 2  # the paper's width: 1.7 GiB peak, not 4.5
    assert slices_per_call((512, 512, 240), 16) == 8  # the quickstart's, as before the budget counted channels
    assert slices_per_call((64, 64, 10), 64) == 16  # small slices: the batch cap
    assert slices_per_call((2048, 2048, 4), 64) == 1  # never 0
    assert SLICE_BUDGET_PIXEL_CHANNELS // (512 * 512 * 32) == slices_per_call((512, 512, 1), 32)
