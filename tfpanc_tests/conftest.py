"""Shared pytest fixtures: the optional real-data folder and tiny volumes."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def realdata_dir():
    return Path(os.environ.get("TFPANC_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture
def realdata():
    """The ../shared/realdata folder; the test is skipped when it is absent."""
    path = realdata_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} not present")
    return path


@pytest.fixture
def blob_case():
    """A tiny CT-like volume with an ellipsoid 'pancreas' (image int16, label uint8)."""
    x, y, z = np.meshgrid(np.arange(40), np.arange(32), np.arange(12), indexing="ij")
    label = (((x - 20) / 8.0) ** 2 + ((y - 14) / 5.0) ** 2 + ((z - 6) / 3.0) ** 2 <= 1).astype(np.uint8)
    rng = np.random.default_rng(0)
    image = np.where(label > 0, 100, -50) + rng.normal(0, 10, label.shape)
    return image.astype(np.int16), label


@pytest.fixture
def train_flags(monkeypatch):
    """A private absl ``FlagValues`` holding the train CLI's flags (the global FLAGS stay untouched)."""
    from absl import flags as absl_flags

    from tfpanc import flags as tfpanc_flags

    fv = absl_flags.FlagValues()

    class Definer:  # absl.flags with every DEFINE_* bound to `fv`
        def __getattr__(self, name):
            fn = getattr(absl_flags, name)
            return (lambda *a, **k: fn(*a, flag_values=fv, **k)) if name.startswith("DEFINE") else fn

    monkeypatch.setattr(tfpanc_flags, "flags", Definer())
    tfpanc_flags.define_train_flags()
    return fv
