"""The synthetic generator's ``lean`` step (issue #17): fat around the organs shrinks, the gland never changes."""

import shutil

import numpy as np
import pytest
from scipy import ndimage as ndi

from tfpanc.data.phantom.tissues import Tissue
from tfpanc.data.synthetic import lean
from tfpanc.data.synthetic.bank import FAT_FILL_KINDS, AnatomyBank
from tfpanc.data.synthetic.slice_generator import SliceGenerator
from tfpanc.errors import InputError


@pytest.fixture
def bank(synthetic_bank):
    synthetic_bank.ensure_fat_fill()
    return synthetic_bank


def test_fat_fill_gives_fat_the_nearest_grower_and_its_distance():
    line = [Tissue.LIVER] + [Tissue.VISCERAL_FAT] * 8 + [Tissue.ARTERY, Tissue.FAT_PLANE, Tissue.PANCREAS]
    tissue = np.array(line, np.uint8)[:, None, None]
    fill, distance = lean.fat_fill(tissue, (2.0, 1.0, 1.0))
    assert fill[3, 0, 0] == Tissue.LIVER and distance[3, 0, 0] == 60          # 3 voxels of 2 mm
    # The artery does not grow: the fat beside it and past it is reached from the liver.
    assert fill[8, 0, 0] == Tissue.LIVER and distance[8, 0, 0] == 160
    assert fill[10, 0, 0] == Tissue.LIVER and distance[10, 0, 0] == 200
    for x in (0, 9, 11):                                                        # not fat: never replaced
        assert distance[x, 0, 0] == lean.NO_FILL


def test_fat_fill_without_any_grower_replaces_nothing():
    tissue = np.full((4, 4, 2), Tissue.VISCERAL_FAT, np.uint8)
    fill, distance = lean.fat_fill(tissue, (1.0, 1.0, 1.0))
    assert np.array_equal(fill, tissue) and np.all(distance == lean.NO_FILL)


def _ring_fat_share(tissue_slice, mask):
    ring = ndi.binary_dilation(mask, iterations=4) & ~ndi.binary_dilation(mask, iterations=1)
    return np.isin(tissue_slice[ring], lean.FAT).mean()


def test_lean_tissue_shrinks_the_fat_around_the_gland_and_never_changes_it(bank):
    tissue, texture = bank.arrays(0)
    fill_tissue, fill_distance = bank.fat_fill_arrays(0)
    k = bank.entries[0].pancreas_slices[len(bank.entries[0].pancreas_slices) // 2]
    t, tex = np.asarray(tissue[:, :, k]), np.asarray(texture[:, :, k])
    mask = t == Tissue.PANCREAS
    shares = []
    for reach_mm in (0, 3, 8):
        leaned, leaned_tex = lean.lean_tissue(t, tex, fill_tissue[:, :, k], fill_distance[:, :, k],
                                              int(reach_mm / lean.DISTANCE_UNIT_MM))
        assert np.array_equal(leaned == Tissue.PANCREAS, mask)
        assert np.array_equal(leaned[~np.isin(t, lean.FAT)], t[~np.isin(t, lean.FAT)])
        if reach_mm == 0:
            assert np.array_equal(leaned, t) and np.array_equal(leaned_tex, tex)
        shares.append(_ring_fat_share(leaned, mask))
    assert shares[0] > 0.3 and shares[0] > shares[1] > shares[2]
    assert shares[2] < 0.5 * shares[0]


def test_missing_fat_fill_is_refused_with_a_hint_until_ensured(synthetic_bank, tmp_path):
    copy = tmp_path / "bank"
    shutil.copytree(synthetic_bank.root, copy,
                    ignore=lambda _, names: [n for n in names if any(k in n for k in FAT_FILL_KINDS)])
    old = AnatomyBank(copy)
    with pytest.raises(InputError, match="lean step"):
        old.fat_fill_arrays(0)
    old.ensure_fat_fill()
    fill_tissue, fill_distance = old.fat_fill_arrays(0)
    assert fill_tissue.shape == old.entries[0].shape and fill_distance.dtype == np.uint8


def test_lean_step_keeps_the_label_and_darkens_less_of_the_ring(bank):
    plain = SliceGenerator(bank, ("shapes",), size=64, positive_fraction=1.0, window=(-1000.0, 1000.0))
    leaned = SliceGenerator(bank, ("lean", "shapes"), size=64, positive_fraction=1.0, window=(-1000.0, 1000.0))
    fat_plain, fat_lean = [], []
    for i in range(16):
        image, mask = plain.render(np.random.default_rng(i))
        image_lean, mask_lean = leaned.render(np.random.default_rng(i))
        # Position and anatomy are drawn before the reach: the same slice, the same label.
        assert np.array_equal(mask, mask_lean)
        core = mask[..., 0] > 0
        if core.sum() < 10:
            continue
        ring = ndi.binary_dilation(core, iterations=3) & ~core
        fat_plain.append(np.mean(image[..., 1][ring] * 2000 - 1000 < -30))
        fat_lean.append(np.mean(image_lean[..., 1][ring] * 2000 - 1000 < -30))
    assert len(fat_plain) >= 8
    assert np.mean(fat_lean) < np.mean(fat_plain) - 0.05
