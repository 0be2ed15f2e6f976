import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tfpanc.data.pipeline import SamplerPyDataset, make_tf_dataset, stack_batch
from tfpanc.data.sampling import SliceCropSampler, SliceSampler
from tfpanc.data.sampling3d import PatchSampler
from tfpanc_tests.data.sampling_fixtures import make_cache

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    cache, _ = make_cache(tmp_path_factory.mktemp("pipe_cache"))
    return SliceSampler(cache, cache.case_ids, "axial", size=(16, 16), positive_fraction=0.5, seed=5)


def _as_numpy(batch):
    return tuple(np.asarray(t) for t in batch)


def test_import_without_tensorflow_or_keras():
    code = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # import tensorflow now raises ImportError
        import tfpanc.data.pipeline as p
        import tfpanc.data.sampling, tfpanc.data.sampling3d, tfpanc.data.preprocess, tfpanc.data.cache
        assert "keras" not in sys.modules, "keras imported eagerly"
        try:
            p.make_tf_dataset(None, 1)
        except ImportError:
            print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_pydataset_on_jax_without_tensorflow(tmp_path):
    pytest.importorskip("jax")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None
        import numpy as np
        from tfpanc.data.cache import CaseCache
        from tfpanc.data.pipeline import SamplerPyDataset, stack_batch
        from tfpanc.data.sampling import SliceSampler
        from tfpanc_tests.data.sampling_fixtures import make_cache
        cache, _ = make_cache({str(tmp_path)!r})
        s = SliceSampler(cache, cache.case_ids, "axial", size=(16, 16), seed=1)
        ds = SamplerPyDataset(s, batch_size=3, steps=2)
        x, y = ds[1]
        ex, ey = stack_batch(s, 3, 3, 6)
        assert x.shape == (3, 16, 16, 3) and np.array_equal(x, ex) and np.array_equal(y, ey)
        import keras
        print(keras.backend.backend())
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND="jax")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "jax"


def test_tf_dataset_batches_equal_the_sampler(sampler):
    ds = make_tf_dataset(sampler, batch_size=4, steps_per_epoch=3, epochs=2, num_parallel_calls=2)
    x_spec, y_spec = ds.element_spec
    assert tuple(x_spec.shape) == (4, 16, 16, 3) and tuple(y_spec.shape) == (4, 16, 16, 1)
    batches = [_as_numpy(b) for b in ds]
    assert len(batches) == 6
    for b, (x, y) in enumerate(batches):
        ex, ey = stack_batch(sampler, 4 * b, 4, 12)
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
    # Global element 12 is the first sample of epoch 1.
    np.testing.assert_array_equal(batches[3][0][0], sampler.sample(0, 1)[0])


def test_tf_dataset_shards_partition_the_stream(sampler):
    full = _as_numpy(next(iter(make_tf_dataset(sampler, batch_size=6, steps_per_epoch=1, epochs=1))))
    parts = [_as_numpy(next(iter(make_tf_dataset(sampler, batch_size=3, steps_per_epoch=1, epochs=1,
                                                  shard_index=s, num_shards=2)))) for s in range(2)]
    # Shard s holds global samples s, s + 2, s + 4.
    for s in range(2):
        np.testing.assert_array_equal(parts[s][0], full[0][s::2])
    with pytest.raises(ValueError):
        make_tf_dataset(sampler, 2, shard_index=2, num_shards=2)


def test_tf_dataset_endless_with_start_epoch_and_nondeterministic_order(sampler):
    ds = make_tf_dataset(sampler, batch_size=2, steps_per_epoch=2, start_epoch=5, deterministic=False)
    got = [_as_numpy(b) for b in ds.take(3)]
    xs = {np.asarray(x).tobytes() for b in got for x in b[0]}
    # Out of order, but every element is some global sample g (epoch 5 + g // 4).
    expected = {sampler.sample(g % 4, 5 + g // 4)[0].tobytes() for g in range(64)}
    assert len(xs) == 6 and xs <= expected


def test_variable_size_needs_batch_one(tmp_path):
    cache, _ = make_cache(tmp_path)
    s = SliceCropSampler(cache, cache.case_ids, "axial")
    with pytest.raises(ValueError):
        make_tf_dataset(s, batch_size=2)
    ds = make_tf_dataset(s, batch_size=1, steps_per_epoch=2, epochs=1)
    shapes = [tuple(np.asarray(x).shape) for x, _ in ds]
    assert len(shapes) == 2 and all(sh[0] == 1 and sh[3] == 3 for sh in shapes)
    assert tuple(ds.element_spec[0].shape.as_list()) == (1, None, None, 3)


def test_pydataset_pickles_for_worker_processes(sampler):
    import pickle

    ds = SamplerPyDataset(sampler, batch_size=2, steps=3, start_epoch=4)
    copy = pickle.loads(pickle.dumps(ds))
    assert type(copy) is SamplerPyDataset and copy.epoch == 4
    np.testing.assert_array_equal(copy[1][0], ds[1][0])


def test_default_steps_follow_the_sampler_epoch_size(sampler):
    ds = SamplerPyDataset(sampler, batch_size=5)
    assert len(ds) == sampler.epoch_size // 5


def test_pydataset_epochs_advance_and_threads_agree(sampler):
    ds = SamplerPyDataset(sampler, batch_size=2, steps=3, workers=2)
    assert len(ds) == 3
    x, y = ds[2]
    ex, ey = stack_batch(sampler, 4, 2, 6)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    ds.on_epoch_end()  # before any epoch began (Keras does this at fit start): no change
    np.testing.assert_array_equal(ds[2][0], ex)
    ds.on_epoch_begin()
    ds.on_epoch_end()
    ds.on_epoch_end()
    assert ds.epoch == 1
    np.testing.assert_array_equal(ds[0][0][1], sampler.sample(1, 1)[0])
    with pytest.raises(IndexError):
        ds[3]


class _Recording(PatchSampler):
    def sample(self, index, epoch=0):
        self.calls.append((int(index), int(epoch)))
        return super().sample(index, epoch)


def test_keras_fit_runs_on_both_wrappers_and_sees_each_epoch(tmp_path):
    import keras

    cache, _ = make_cache(tmp_path)
    s = _Recording(cache, cache.case_ids, (8, 8, 4), positive_fraction=0.5)
    model = keras.Sequential([keras.Input((8, 8, 4, 1)), keras.layers.Conv3D(1, 1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    s.calls = []
    h1 = model.fit(SamplerPyDataset(s, batch_size=2, steps=2, workers=2), epochs=3, shuffle=False, verbose=0)
    # Epochs 0, 1, 2 in full (Keras also peeks at two batches of epoch 0 for the signature).
    assert set(s.calls) == {(i, e) for i in range(4) for e in range(3)}
    s.calls = []
    ds = make_tf_dataset(s, batch_size=2, steps_per_epoch=2)
    h2 = model.fit(ds, steps_per_epoch=2, epochs=2, shuffle=False, verbose=0)
    assert {(i, e) for i in range(4) for e in range(2)} <= set(s.calls)  # prefetch may run ahead
    assert len(h1.history["loss"]) == 3 and np.all(np.isfinite(h2.history["loss"]))
