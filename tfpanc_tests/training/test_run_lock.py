"""One training at a time per run folder: train.lock."""

import socket
import subprocess
import sys

import pytest

from tfpanc.errors import InputError
from tfpanc.training.run_dir import LOCK_FILE, RunDir


@pytest.fixture
def live_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_lock_is_held_while_training_and_gone_after(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        assert (run.path / LOCK_FILE).read_text().split()[1] == socket.gethostname()
    assert not (run.path / LOCK_FILE).exists()
    with pytest.raises(RuntimeError):
        with run.lock():
            raise RuntimeError("a failed phase")
    assert not (run.path / LOCK_FILE).exists()


def test_a_running_training_keeps_the_run_and_a_dead_ones_lock_is_taken_over(tmp_path, live_process):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    lock = run.path / LOCK_FILE
    lock.write_text(f"{live_process.pid} {socket.gethostname()}")
    with pytest.raises(InputError, match=f"another training \\(pid {live_process.pid} on .*\\) is writing this run"):
        with run.lock():
            pass
    assert lock.exists()  # still the other training's
    live_process.kill()
    live_process.wait()
    with run.lock():  # killed: its lock is stale
        assert int(lock.read_text().split()[0]) != live_process.pid
    assert not lock.exists()


def test_another_hosts_lock_is_refused_and_a_torn_one_taken_over(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / LOCK_FILE).write_text("123 some-other-host")
    with pytest.raises(InputError, match="pid 123 on some-other-host"):
        with run.lock():
            pass
    (run.path / LOCK_FILE).write_text("")
    with run.lock():
        pass
    assert not (run.path / LOCK_FILE).exists()


def test_train_refuses_a_locked_run_before_writing_it(tmp_path, live_process):
    from tfpanc.methods import registry
    from tfpanc.methods.multitask import MultitaskConfig
    from tfpanc.train import run_training
    from tfpanc_tests.conftest import write_ellipsoid_cache

    write_ellipsoid_cache(tmp_path / "cache", (24, 24, 12), lambda i: (12, 12, 6), (5.0, 4.0, 3.0), (120, -40), 10,
                          (1.0, 1.0, 1.5))
    cfg = MultitaskConfig(model_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "cache"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).write_text(f"{live_process.pid} {socket.gethostname()}")
    with pytest.raises(InputError, match="another training"):
        run_training(registry.get("multitask"), cfg, log=lambda line: None)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_FILE]
