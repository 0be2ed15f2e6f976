"""Every shipped flagfile parses and passes the train CLI's startup validation."""

import pytest

from tfpanc_tests.conftest import REPO

CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.cfg"))


def test_configs_found():
    assert "configs/quickstart.cfg" in CONFIGS and "configs/zhou/phantom.cfg" in CONFIGS


@pytest.mark.parametrize("config", CONFIGS)
def test_config_is_valid(config, train_flags, monkeypatch):
    from tfpanc import flags as tfpanc_flags

    monkeypatch.chdir(REPO)  # nested --flagfile lines are relative to the repository root
    train_flags(["prog", f"--flagfile={config}"])
    cfg = tfpanc_flags.train_config(train_flags)
    assert cfg.method in config or config.startswith("configs/quickstart")
    assert cfg.model_dir and cfg.data_dir
