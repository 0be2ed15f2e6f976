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
def train_flags():
    """A private absl ``FlagValues`` holding the train CLI's flags (the global FLAGS stay untouched)."""
    from absl import flags as absl_flags

    from tfpanc import train

    fv = absl_flags.FlagValues()
    train.define_flags(fv)
    return fv


def write_ellipsoid_cache(root, shape, centre, radii, values, noise, spacing, n=4):
    """A tiny CT cache of ``n`` cases: ellipsoid ``i`` at ``centre(i)`` with ``radii``, image
    ``values = (inside, outside)`` HU plus Gaussian ``noise``; 4 folds. Returns the case ids."""
    from tfpanc.data import cache as cache_lib
    from tfpanc.data.io import Geometry

    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    ids = []
    for i in range(n):
        c = centre(i)
        label = ((x - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((z - c[2]) / radii[2]) ** 2 <= 1
        image = np.where(label, *values) + rng.normal(0, noise, shape)
        cid = f"case_{i}"
        cache_lib.write_case(root, cid, image.astype(np.int16), label.astype(np.uint8),
                             Geometry.from_spacing(shape, spacing))
        ids.append(cid)
    cache_lib.write_splits(root, cache_lib.shuffled_folds(ids, 4, 0), "test")
    cache_lib.write_index(root, "folder", ids, "ct", "test")
    return ids


def write_cai_cache(root):
    """The cai tests' tiny cache: 4 cases of 32x32x10 at 1.5 x 1.5 x 2.5 mm."""
    return write_ellipsoid_cache(root, (32, 32, 10), lambda i: (14 + i, 16 - i, 5), (6.0, 4.0, 3.5),
                                 (100, -20), 15, (1.5, 1.5, 2.5))


def train_run(cfg):
    """Trains ``cfg`` as the train command does (split, recipe, run.json, evaluation);
    returns ``(run, run.json record, log lines)``."""
    from tfpanc.methods import registry
    from tfpanc.train import run_training
    from tfpanc.training.run_dir import RunDir

    lines = []
    info = run_training(registry.get(cfg.method), cfg, log=lines.append)
    return RunDir(cfg.model_dir), info, lines


@pytest.fixture(scope="session")
def synthetic_bank(tmp_path_factory):
    """A one-anatomy synthetic bank, built with the seed cai training uses by default (1000)."""
    from tfpanc.data.synthetic.bank import build_bank

    return build_bank(tmp_path_factory.mktemp("synthetic") / "bank", 1, seed=1000)


@pytest.fixture
def tree(tmp_path, blob_case):
    """The CLI tables' scratch tree: tmp/work/{msd/, notes.txt, cts/{a,b}.nii.gz, foreign/keep.txt, run/}."""
    from tfpanc_tests.cli_fixtures import make_tree

    return make_tree(tmp_path, blob_case)
