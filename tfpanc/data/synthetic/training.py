"""Wiring the generator into a recipe's training: bank, steps, grid check."""

from __future__ import annotations

import numpy as np

from tfpanc.data.synthetic.bank import build_bank
from tfpanc.data.synthetic.slice_generator import OUTPUT_SPACING, SliceGenerator, parse_steps
from tfpanc.data.synthetic.synthetic_slice_sampler import SyntheticSliceSampler
from tfpanc.errors import InputError

GRID_TOLERANCE = 0.02


def check_cache_grid(cache, case_ids):
    """Refuses a cache whose in-plane pixel differs from the generator's: validation, evaluation and the
    run's recorded training spacing all come from the cache, so they must describe the same pixels."""
    for cid in case_ids:
        spacing = cache.case(cid).spacing
        if np.any(np.abs(np.asarray(spacing[:2]) / OUTPUT_SPACING - 1) > GRID_TOLERANCE):
            raise InputError("--data_dir", f"case {cid} has {spacing[0]:.3f} x {spacing[1]:.3f} mm pixels; synthetic "
                             f"images are rendered at {OUTPUT_SPACING:.4f} mm (a 256 x 256 phantom: "
                             "--phantom_shape=256,256,150)")


def synthetic_sampler(cfg, cache, train_ids, size, cache_sampler, log):
    """The :class:`SyntheticSliceSampler` of a recipe's CNN phase (bank built on first use)."""
    check_cache_grid(cache, train_ids)
    steps = parse_steps(cfg.synthetic_steps)
    bank = build_bank(cfg.synthetic_bank, cfg.synthetic_anatomies, seed=cfg.phantom_seed + 1000,
                      shape_dir=cfg.shape_dir or None, shape_label=cfg.shape_label,
                      shape_variety="shapes" in steps, log=log)
    log(f"synthetic training images: {len(bank)} bank anatomies in {cfg.synthetic_bank}, steps "
        f"{', '.join(steps) or 'none (the phantom look)'}, {cfg.synthetic_cache_fraction:g} from the cache, "
        f"{cfg.single_slice_fraction:g} as one slice three times"
        + (f", {cfg.synthetic_intensity_fraction:g} with the intensity draws" if "intensity" in steps else ""))
    generator = SliceGenerator(bank, steps, size=size, positive_fraction=cfg.positive_fraction,
                               window=cfg.window, intensity_fraction=cfg.synthetic_intensity_fraction, log=log)
    return SyntheticSliceSampler(generator, seed=cfg.seed, cache_sampler=cache_sampler,
                                 cache_fraction=cfg.synthetic_cache_fraction,
                                 epoch_size=cfg.steps_per_epoch * cfg.batch_size,
                                 single_slice_fraction=cfg.single_slice_fraction)
