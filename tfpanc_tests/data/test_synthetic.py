"""The synthetic generator (issue #17): bank, intensity priors, rendering, shapes, sampler, real-data DSC."""

import nibabel as nib
import numpy as np
import pytest

from tfpanc.data.phantom.scene import Scene
from tfpanc.data.phantom.fields import Grid
from tfpanc.data.phantom.tissues import Tissue
from tfpanc.data.synthetic import intensity
from tfpanc.data.synthetic.bank import AnatomyBank, build_bank
from tfpanc.data.synthetic.shapes import ShapeLibrary, best_flip, paste_centred, vary_gland
from tfpanc.data.synthetic.slice_generator import STEPS, Acquisition, SliceGenerator, parse_steps, smooth_field
from tfpanc.data.synthetic.synthetic_slice_sampler import SyntheticSliceSampler
from tfpanc.errors import InputError


@pytest.fixture
def bank(synthetic_bank):
    return synthetic_bank


def test_bank_lists_the_slices_holding_pancreas_and_reopens(bank):
    tissue, texture = bank.arrays(0)
    assert tissue.dtype == np.uint8 and texture.dtype == np.float16 and tissue.shape == texture.shape
    holding = np.nonzero((np.asarray(tissue) == Tissue.PANCREAS).any(axis=(0, 1)))[0]
    assert list(bank.entries[0].pancreas_slices) == holding.tolist() and len(holding) > 10
    assert holding.min() > 0 and holding.max() < tissue.shape[2] - 1   # margins above and below
    again = build_bank(bank.root, 1, seed=1000)                            # same settings: reused
    assert again.entries == bank.entries
    with pytest.raises(InputError, match="asked for"):
        build_bank(bank.root, 2, seed=1000)


def test_bank_of_another_version_is_refused(bank, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(bank.root, copy)
    meta = json.loads((copy / "bank.json").read_text())
    meta["version"] = 0
    (copy / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="version 0"):
        AnatomyBank(copy)


def test_realistic_prior_couples_the_contrast_phase():
    draws = np.stack([intensity.realistic_values(np.random.default_rng(i)) for i in range(300)])
    # one phase drives portal vein, kidney cortex and spleen together
    corr = np.corrcoef(draws[:, Tissue.PORTAL], draws[:, Tissue.KIDNEY_CORTEX])[0, 1]
    assert corr > 0.6
    assert draws[:, Tissue.PORTAL].min() < 70 and draws[:, Tissue.PORTAL].max() > 160  # non-contrast .. portal
    fat = draws[:, Tissue.VISCERAL_FAT]
    assert np.all(draws[:, Tissue.PANCREAS] >= fat) and draws[:, Tissue.PANCREAS].min() < 20  # fatty glands


def test_random_prior_stays_in_its_range_and_keeps_air():
    lut = intensity.random_values(np.random.default_rng(0))
    assert lut[Tissue.AIR] == -1000 and np.all((lut[1:] >= intensity.RANDOM_HU[0]) & (lut[1:] <= intensity.RANDOM_HU[1]))
    assert np.std(lut[1:]) > 100


def test_parse_steps_orders_and_refuses_unknown():
    assert parse_steps("deformation,intensity") == ("intensity", "deformation")
    assert parse_steps("none") == () and parse_steps("") == ()
    compatible = tuple(s for s in STEPS if s not in ("contrast", "hu"))
    assert parse_steps(",".join(reversed(compatible))) == compatible
    with pytest.raises(InputError, match="--synthetic_steps"):
        parse_steps("intensity,colour")
    with pytest.raises(InputError, match="contrast"):
        parse_steps("contrast,intensity")
    with pytest.raises(InputError, match="hu"):
        parse_steps("intensity,hu")


def test_acquisition_ranges():
    thick = [Acquisition(np.random.default_rng(i), True) for i in range(200)]
    t = np.array([a.thickness for a in thick])
    assert t.min() >= 0.5 and t.max() <= 5.0 and t.max() - t.min() > 3.5
    assert all(0.5 <= a.slice_spacing <= a.thickness + 1e-9 or a.slice_spacing == 0.5 for a in thick)
    fixed = Acquisition(np.random.default_rng(0), False)
    assert fixed.thickness == 2.0 and fixed.bias == 0 and fixed.gain == 1
    windows = [Acquisition(np.random.default_rng(i), False, window=True) for i in range(200)]
    gain, offset = np.array([a.gain for a in windows]), np.array([a.offset for a in windows])
    assert gain.min() >= 0.9 and gain.max() <= 1.1 and np.ptp(gain) > 0.15
    assert offset.min() >= -25 and offset.max() <= 25 and np.ptp(offset) > 40
    # The window step keeps the phantom's scan: 2 mm slices, its PSF and noise, no bias.
    assert all(a.thickness == 2.0 and a.bias == 0 and 12 <= a.noise <= 16 for a in windows)
    # The step draws after the noise, so the phantom look's stream is the same with it off.
    assert Acquisition(np.random.default_rng(5), False).noise == windows[5].noise


def test_smooth_field_is_unit_std_and_smooth():
    f = smooth_field(np.random.default_rng(0), (64, 64), 8.0)
    assert f.shape == (64, 64) and abs(f.std() - 1) < 1e-3
    assert np.abs(np.diff(f, axis=0)).mean() < 0.4   # neighbours close: no pixel-scale detail


@pytest.mark.parametrize("steps", [(), ("intensity", "resolution", "deformation")])
def test_render_is_seeded_and_labels_the_pancreas(bank, steps):
    gen = SliceGenerator(bank, steps, size=64, positive_fraction=1.0)
    image, mask = gen.render(np.random.default_rng(3))
    again, mask2 = gen.render(np.random.default_rng(3))
    other, _ = gen.render(np.random.default_rng(4))
    assert image.shape == (64, 64, 3) and mask.shape == (64, 64, 1) and image.dtype == np.float32
    assert np.array_equal(image, again) and np.array_equal(mask, mask2) and not np.array_equal(image, other)
    assert 0.0 <= image.min() and image.max() <= 1.0 and set(np.unique(mask)) <= {0.0, 1.0}
    positives = sum(gen.render(np.random.default_rng(i))[1].any() for i in range(12))
    assert positives >= 9   # slices drawn through the gland; a few crop it off at the edge


def _pancreas_hu(bank, steps, samples):
    """Median HU inside the gland of each of ``samples`` rendered slices holding more than 20 pixels of it."""
    gen = SliceGenerator(bank, steps, size=64, positive_fraction=1.0, window=(-1000.0, 1000.0))
    values = []
    for i in range(samples):
        image, mask = gen.render(np.random.default_rng(i))
        core = mask[..., 0] > 0
        if core.sum() > 20:
            values.append(np.median(image[..., 1][core]) * 2000 - 1000)
    return values


def test_phantom_look_puts_the_pancreas_at_its_hu(bank):
    values = _pancreas_hu(bank, (), 10)
    assert values and 60 < np.median(values) < 130   # the phantom pancreas: ~100 HU, partial volume at edges


def test_window_step_spreads_the_pancreas_hu_within_its_gain_and_offset(bank):
    plain, shifted = _pancreas_hu(bank, (), 16), _pancreas_hu(bank, ("window",), 16)
    assert np.ptp(shifted) > np.ptp(plain) + 15
    # 103.5 HU mapped by the extreme gain and offset; 30 HU below for partial volume at the edges.
    assert 103.5 * 0.9 - 25 - 30 < min(shifted) and max(shifted) < 103.5 * 1.1 + 25 + 5


def test_intensity_step_varies_the_pancreas(bank):
    assert np.ptp(_pancreas_hu(bank, ("intensity",), 16)) > 100


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_intensity_fraction_gives_that_share_the_drawn_look(bank, fraction):
    gen = SliceGenerator(bank, ("intensity",), size=64, intensity_fraction=fraction)
    draws = [gen.draw_appearance(np.random.default_rng(i)) for i in range(200)]
    # The phantom's look: its texture at 100 HU per unit everywhere, no within-organ field.
    phantom_look = [bool(np.all(tex == 100.0) and not sub.any()) for _, tex, sub in draws]
    assert abs(np.mean(phantom_look) - (1 - fraction)) < 0.1


def test_texture_step_varies_texture_and_keeps_the_phantom_hu(bank):
    plain_gen, textured_gen = SliceGenerator(bank, (), size=64), SliceGenerator(bank, ("texture",), size=64)
    plain = [plain_gen.draw_appearance(np.random.default_rng(i)) for i in range(20)]
    textured = [textured_gen.draw_appearance(np.random.default_rng(i)) for i in range(20)]
    for (lut, tex, sub), (lut_t, tex_t, sub_t) in zip(plain, textured):
        assert np.array_equal(lut, lut_t)   # the phantom's HU draw, unchanged
        assert np.all(tex == 100.0) and not sub.any()
        assert np.ptp(tex_t) > 50 and sub_t.any()


def test_hu_step_draws_the_hu_and_keeps_the_phantom_texture(bank):
    draws = [SliceGenerator(bank, ("hu",), size=64).draw_appearance(np.random.default_rng(i)) for i in range(20)]
    assert np.ptp([lut[Tissue.PANCREAS] for lut, _, _ in draws]) > 100
    assert all(np.all(tex == 100.0) and not sub.any() for _, tex, sub in draws)


def test_contrast_step_draws_the_pancreas_from_the_prior_alone(bank):
    values = _pancreas_hu(bank, ("contrast",), 16)
    # Non-contrast to portal venous, fatty glands pulled towards fat; never the random half's extremes.
    assert np.ptp(values) > 30
    assert min(values) > -150 and max(values) < 220


def test_sampler_is_seeded_by_index_and_epoch_and_mixes_the_cache(bank):
    gen = SliceGenerator(bank, ("intensity",), size=32)
    sampler = SyntheticSliceSampler(gen, seed=1, epoch_size=10)
    a, b = sampler.sample(2, epoch=1), sampler.sample(2, epoch=1)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], sampler.sample(2, epoch=2)[0])
    assert sampler.output_signature()[0][0] == (32, 32, 3) and sampler.epoch_size == 10

    class Cached:
        def sample(self, index, epoch=0):
            return np.full((32, 32, 3), 7.0, np.float32), np.zeros((32, 32, 1), np.float32)

    mixed = SyntheticSliceSampler(gen, seed=1, cache_sampler=Cached(), cache_fraction=1.0)
    assert mixed.sample(0)[0][0, 0, 0] == 7.0


def test_single_slice_fraction_repeats_the_centre_slice_in_that_share(bank):
    gen = SliceGenerator(bank, ("resolution",), size=32, window=(-1000.0, 1000.0))  # nothing saturates
    plain = SyntheticSliceSampler(gen, seed=3, epoch_size=40)
    single = SyntheticSliceSampler(gen, seed=3, epoch_size=40, single_slice_fraction=0.5)
    repeated = 0
    for i in range(40):
        image, mask = single.sample(i)
        if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 2], image[..., 1]):
            repeated += 1
        assert mask.shape == (32, 32, 1)
    assert 8 <= repeated <= 32
    assert not any(np.array_equal(plain.sample(i)[0][..., 0], plain.sample(i)[0][..., 1]) for i in range(10))
    always = SyntheticSliceSampler(gen, seed=3, single_slice_fraction=1.0)
    image = always.sample(5)[0]
    assert np.array_equal(image[..., 0], image[..., 2]) and image[..., 1].std() > 0

    class Cached:   # three different slices: a cached sample given as one must show its centre three times
        def sample(self, index, epoch=0):
            return np.stack([np.full((32, 32), v, np.float32) for v in (1.0, 2.0, 3.0)], -1), np.zeros((32, 32, 1))

    cached = SyntheticSliceSampler(gen, seed=3, cache_sampler=Cached(), cache_fraction=1.0, single_slice_fraction=1.0)
    assert np.all(cached.sample(0)[0] == 2.0)


def test_best_flip_recovers_a_flipped_shape():
    shape = np.zeros((12, 8, 6), bool)
    shape[1:11, 2:5, 1:3] = True
    shape[1:4, 2:8, 1:6] = True          # a thick 'head' at one end
    target = paste_centred(np.flip(shape, (0, 2)), (30, 30, 20), (15, 15, 10))
    axes, placed = best_flip(shape, target, (15, 15, 10))
    assert axes == (0, 2) and np.array_equal(placed, target)


def test_shape_library_replaces_the_pancreas_on_yielding_tissue(tmp_path):
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    label = np.zeros((20, 16, 10), np.uint8)
    label[4:16, 5:11, 3:7] = 1
    nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 2.0, 1.0])), str(shapes / "p.nii.gz"))
    grid = Grid.covering((0, 0, 0), (40, 40, 40), (40, 40, 20))   # 1 x 1 x 2 mm, like the file
    scene = Scene(grid)
    scene.tissue[:] = Tissue.VISCERAL_FAT
    scene.tissue[18:22, 18:22, 9:11] = Tissue.PANCREAS   # the old, small gland
    scene.tissue[10:30, 10:30, 10] = Tissue.ARTERY       # a vessel plane the new gland may not take
    described = ShapeLibrary(shapes).replace_pancreas(scene, np.random.default_rng(0))
    assert described.startswith("p.nii.gz")
    gland = scene.tissue == Tissue.PANCREAS
    assert gland.sum() == 12 * 6 * 3    # the file's 12 x 6 x 4 voxels, less the one vessel plane
    assert not gland[10:30, 10:30, 10].any() and gland[:, :, 9].any() and gland[:, :, 11].any()


def test_shape_library_refuses_an_empty_folder(tmp_path):
    with pytest.raises(InputError, match="--shape_dir"):
        ShapeLibrary(tmp_path)


def test_vary_gland_changes_thickness_within_yielding_tissue():
    grid = Grid.covering((0, 0, 0), (80, 40, 40), (80, 40, 20))   # 1 x 1 x 2 mm
    x, y, z = np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij")
    volumes = []
    for seed in range(6):
        scene = Scene(grid)
        scene.tissue[:] = Tissue.VISCERAL_FAT
        tube = ((y - 20) / 10.0) ** 2 + ((z - 10) / 5.0) ** 2 <= 1   # 20 mm thick
        scene.tissue[(x >= 10) & (x < 70) & tube] = Tissue.PANCREAS
        scene.tissue[:, :, 16] = Tissue.ARTERY
        before = (scene.tissue == Tissue.PANCREAS).copy()
        vary_gland(scene, np.random.default_rng(seed))
        after = scene.tissue == Tissue.PANCREAS
        assert not after[:, :, 16].any() and (scene.tissue == Tissue.ARTERY).sum() == 80 * 40
        assert 0.4 < after.sum() / before.sum() < 2.5 and (after != before).sum() > 0.05 * before.sum()
        volumes.append(int(after.sum()))
    assert len(set(volumes)) == 6     # each seed its own gland


def test_multi_organ_maps_need_the_pancreas_value(tmp_path):
    label = np.zeros((20, 16, 10), np.uint8)
    label[2:8, 2:8, 2:8] = 1      # liver
    label[10:18, 9:15, 3:8] = 7   # pancreas (TotalSegmentator's value)
    label[1:3, 12:15, 1:3] = 3
    nib.save(nib.Nifti1Image(label, np.eye(4)), str(tmp_path / "multi.nii.gz"))
    with pytest.raises(InputError, match="--shape_label"):
        ShapeLibrary(tmp_path).shape_mask(tmp_path / "multi.nii.gz", (1.0, 1.0, 1.0))
    mask = ShapeLibrary(tmp_path, label_value=7).shape_mask(tmp_path / "multi.nii.gz", (1.0, 1.0, 1.0))
    assert mask.sum() == 8 * 6 * 5
