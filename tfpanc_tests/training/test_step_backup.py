"""A phase interrupted mid-epoch resumes at its saved step and ends as an uninterrupted one.

The interruption is an exception raised by a callback (in-process, fast);
``tools/kill_resume_check.py`` does the same with ``kill -9`` of the train
command at random moments.
"""

import dataclasses

import keras
import numpy as np

from tfpanc.training.callbacks import read_history
from tfpanc.training.fit import fit_phase, make_input
from tfpanc.training.run_dir import RunDir
from tfpanc.training.step_backup import PROGRESS_FILE, read_resume_point

STEPS = 8  # saves every 2 steps


class LinearSampler:
    """Samples that depend on (seed, epoch, index) alone, like tfpanc's samplers."""

    seed = 0
    epoch_size = 64

    def output_signature(self):
        return [((4,), "float32"), ((1,), "float32")]

    def sample(self, index, epoch=0):
        rng = np.random.default_rng([self.seed, epoch, index])
        x = rng.normal(size=4).astype("float32")
        return x, np.array([x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal()], "float32")


@dataclasses.dataclass
class Cfg:
    steps_per_epoch: int = STEPS
    jit_compile: bool = False
    verbose: int = 0
    threshold: float = 0.5


class Interrupt(keras.callbacks.Callback):
    """Counts the steps trained; raises at ``(epoch, batch)`` of its first fit."""

    def __init__(self, at=None):
        super().__init__()
        self.at, self.steps, self.epoch = at, 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt("killed")


def _phase(run_dir, epochs=3, interrupt=None, callbacks=()):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros")(inputs))
    run, lines = RunDir(run_dir), []
    run.path.mkdir(parents=True, exist_ok=True)
    counter = interrupt or Interrupt()
    try:
        n = fit_phase(Cfg(), run, lines.append, "p", model, "mse", 1e-2, make_input(LinearSampler(), 4, STEPS),
                      epochs, callbacks=[*callbacks, counter])
    except KeyboardInterrupt:
        n = "killed"
    return n, model, run, lines, counter


def _losses(run):
    return [(r["epoch"], float(r["loss"])) for r in read_history(run.path / "history.csv")]


def test_resume_mid_epoch_trains_only_the_remaining_steps_and_equals_the_uninterrupted_run(tmp_path):
    n, whole, whole_run, _, whole_steps = _phase(tmp_path / "whole")
    assert n == 3 and whole_steps.steps == 3 * STEPS
    # Killed in step 6 of epoch 2, before its backup: the backup holds step 4 (saved every 2 steps).
    n, _, run, _, first = _phase(tmp_path / "killed", interrupt=Interrupt(at=(1, 5)))
    assert n == "killed" and first.steps == STEPS + 6
    point = read_resume_point(run.backup_dir("p"))
    assert (point.epoch, point.step) == (1, 4) and len(point.epochs) == 1
    n, resumed, run, lines, second = _phase(tmp_path / "killed")
    assert any("resuming at epoch 2, step 4 of 8" in x for x in lines), lines
    assert n == 3 and second.steps == 4 + STEPS  # not 8 + 8: epoch 2 from step 4
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # History: one row per epoch, the resumed epoch's loss the mean over all its 8 steps.
    assert [e for e, _ in _losses(run)] == ["1", "2", "3"]
    np.testing.assert_allclose([v for _, v in _losses(run)], [v for _, v in _losses(whole_run)], rtol=1e-5)
    assert run.state()["done"]["p"]["epochs"] == 3
    assert not run.backup_dir("p").exists()


def test_resume_at_an_epoch_end_and_after_the_last_epoch(tmp_path):
    _, whole, _, _, _ = _phase(tmp_path / "whole", epochs=2)
    # Killed in epoch 1's last step, before its end-of-epoch backup: resumed from step 6.
    _phase(tmp_path / "a", epochs=2, interrupt=Interrupt(at=(0, STEPS - 1)))
    point = read_resume_point(RunDir(tmp_path / "a").backup_dir("p"))
    assert (point.epoch, point.step) == (0, 6)
    n, model, run, _, steps = _phase(tmp_path / "a", epochs=2)
    assert n == 2 and steps.steps == 2 + STEPS
    for a, b in zip(whole.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # A backup at the phase's very end (killed before the phase was marked done): nothing trained again.
    n, _, run, _, _ = _phase(tmp_path / "b", epochs=2)
    state = run.state()
    state["done"].pop("p")
    (run.path / "state.json").write_text(__import__("json").dumps(state))
    backup = run.backup_dir("p")
    backup.mkdir(parents=True)
    (backup / PROGRESS_FILE).write_text('{"epoch": 2, "step": 0, "weights": "p.weights.h5", "epochs": [{}, {}]}')
    (run.path / "p.weights.h5").rename(backup / "p.weights.h5")
    n, model, run, _, steps = _phase(tmp_path / "b", epochs=2)
    assert n == 2 and steps.steps == 0 and run.is_done("p")
    for a, b in zip(whole.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_early_stopping_patience_carries_over_a_resume(tmp_path):
    def stopper():
        # min_delta so large that no epoch counts as an improvement: stops after epoch 3 (patience 2).
        return keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e9, patience=2)

    n, _, _, _, _ = _phase(tmp_path / "whole", epochs=6, callbacks=[stopper()])
    assert n == 3
    # Killed in epoch 2 before its first backup: resumed at epoch 2, step 0.
    _phase(tmp_path / "killed", epochs=6, interrupt=Interrupt(at=(1, 0)), callbacks=[stopper()])
    n, _, run, _, steps = _phase(tmp_path / "killed", epochs=6, callbacks=[stopper()])
    assert n == 3 and steps.steps == 2 * STEPS  # a fresh stopper would have run to epoch 4


def test_stream_from_a_step_is_the_uninterrupted_stream():
    data = make_input(LinearSampler(), 4, STEPS)
    start = STEPS + STEPS // 2  # the middle of epoch 2
    whole = [b for _, b in zip(range(start + 3), iter(data.stream()))][start:]
    later = [b for _, b in zip(range(3), iter(data.stream(start)))]
    for (a, ya), (b, yb) in zip(whole, later):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(ya), np.asarray(yb))


def test_a_kill_between_the_backup_and_the_history_row_keeps_the_epoch(tmp_path):
    _phase(tmp_path / "r", epochs=2, interrupt=Interrupt(at=(1, 0)))
    run = RunDir(tmp_path / "r")
    (run.path / "history.csv").write_text("phase,epoch,loss\n")  # as if killed before epoch 1's row
    n, _, run, lines, steps = _phase(tmp_path / "r", epochs=2)
    assert n == 2 and steps.steps == STEPS  # epoch 1 was not trained again
    assert [e for e, _ in _losses(run)] == ["1", "2"]
    assert any("p epoch 1:" in x and "from the backup" in x for x in lines), lines


class WeightsPerStep(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_train_batch_end(self, batch, logs=None):
        self.kernels.append(np.array(self.model.get_weights()[0]))


def _averaged_phase(run_dir, interrupt=None, callbacks=()):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros")(inputs))
    run, lines = RunDir(run_dir), []
    run.path.mkdir(parents=True, exist_ok=True)
    try:
        fit_phase(Cfg(), run, lines.append, "p", model, "mse", 1e-1, make_input(LinearSampler(), 4, STEPS), 3,
                  callbacks=[*callbacks, interrupt or Interrupt()], weight_average=0.9)
    except KeyboardInterrupt:
        return None, run, lines
    return model, run, lines


def test_weight_average_is_the_moving_average_of_the_steps(tmp_path):
    steps = WeightsPerStep()
    model, run, lines = _averaged_phase(tmp_path / "run", callbacks=[steps])
    average = steps.kernels[0]
    for kernel in steps.kernels[1:]:
        average = 0.9 * average + 0.1 * kernel
    assert len(steps.kernels) == 3 * STEPS
    np.testing.assert_allclose(model.get_weights()[0], average, rtol=1e-5, atol=1e-6)
    assert not np.allclose(average, steps.kernels[-1], atol=1e-3)   # the average is not the last step
    saved = keras.Model.from_config(model.get_config())
    saved.load_weights(run.weights_path("p"))
    np.testing.assert_allclose(saved.get_weights()[0], average, rtol=1e-5, atol=1e-6)
    assert any("moving average" in line for line in lines)


def test_weight_average_resumes_mid_epoch_as_the_uninterrupted_phase(tmp_path):
    whole, _, _ = _averaged_phase(tmp_path / "whole")
    killed, run, _ = _averaged_phase(tmp_path / "killed", interrupt=Interrupt(at=(1, 5)))
    assert killed is None and read_resume_point(run.backup_dir("p")).step == 4
    resumed, _, lines = _averaged_phase(tmp_path / "killed")
    assert any("resuming at epoch 2, step 4" in x for x in lines)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_weight_average_re_estimates_batch_norm_for_the_averaged_weights(tmp_path):
    from tfpanc.training.fit import REFRESH_EPOCH

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="dense")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.BatchNormalization(momentum=0.9,
                                                                                        name="bn")(hidden)))
    run, lines = RunDir(tmp_path / "run"), []
    run.path.mkdir(parents=True)
    fit_phase(Cfg(), run, lines.append, "p", model, "mse", 1e-1, make_input(LinearSampler(), 4, STEPS), 2,
              weight_average=0.9)
    assert any("BatchNorm statistics of 1 layers re-estimated" in line for line in lines)
    kernel, bias = model.get_layer("dense").get_weights()
    sampler = LinearSampler()
    means, variances = [], []
    for b in range(50):                        # the refresh's batches, through the averaged weights
        x = np.stack([sampler.sample((b * 4 + i) % 64, REFRESH_EPOCH + (b * 4 + i) // 64)[0] for i in range(4)])
        h = x @ kernel + bias
        means.append(h.mean(axis=0))
        variances.append(h.var(axis=0))
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), np.mean(means, axis=0), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), np.mean(variances, axis=0),
                               rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.9
