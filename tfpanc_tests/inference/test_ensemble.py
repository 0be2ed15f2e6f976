"""Several runs as one predictor: the strict majority of their masks, the mean of their probabilities."""

import types

import numpy as np
import pytest

from tfpanc.errors import InputError
from tfpanc.inference.ensemble import check_runs, majority_predictor


def _member(mask, prob, calls=None):
    def predict(image, probability=False, spacing=None):
        if calls is not None:
            calls.append((image.shape, spacing, probability))
        out = {"mask": np.asarray(mask, bool)}
        if probability:
            out["probability"] = np.asarray(prob, np.float32)
        return out
    return predict


def test_three_runs_vote_and_average():
    calls = []
    members = [_member([1, 1, 0, 0, 1], [0.9, 0.6, 0.2, 0.0, 0.7], calls),
               _member([1, 0, 1, 0, 1], [0.8, 0.4, 0.6, 0.1, 0.9], calls),
               _member([0, 1, 0, 0, 1], [0.4, 0.7, 0.3, 0.2, 0.5], calls)]
    out = majority_predictor(members)(np.zeros(5), probability=True, spacing=(1, 2, 3))
    assert out["mask"].tolist() == [True, True, False, False, True]
    np.testing.assert_allclose(out["probability"], [0.7, 17 / 30, 11 / 30, 0.1, 0.7], rtol=1e-6)
    assert out["probability"].dtype == np.float32
    assert calls == [((5,), (1, 2, 3), True)] * 3          # every run sees the input and its spacing
    assert out["summary"] == "majority of 3 runs, which marked 3 / 3 / 2 voxels"


def test_an_even_count_needs_more_than_half():
    members = [_member([1, 1, 0, 1], 0), _member([1, 0, 1, 1], 0), _member([1, 0, 0, 1], 0),
               _member([0, 1, 1, 0], 0)]
    out = majority_predictor(members)(np.zeros(4))
    assert out["mask"].tolist() == [True, False, False, True]   # 2 of 4 is a tie: background
    assert "probability" not in out


def test_one_run_is_its_own_predictor():
    member = _member([1, 0], [0.9, 0.1])
    assert majority_predictor([member]) is member


def _run(name, method="cai", modality="ct"):
    return (name, types.SimpleNamespace(name=method), {"modality": modality})


@pytest.mark.parametrize("runs, problem", [
    ([], "names no run"),
    ([_run("a"), _run("a")], "names a twice"),
    ([_run("runs/a"), _run("./runs/a/")], "names ./runs/a/ twice"),
    ([_run("a"), _run("b", method="zhou")], "b is a zhou run and a a cai run"),
    ([_run("a"), _run("b", modality="mr")], "b is a mr run and a a ct run"),
])
def test_runs_that_cannot_vote_together_are_refused(runs, problem):
    with pytest.raises(InputError, match=problem) as e:
        check_runs(runs)
    assert e.value.path == "--model_dir"
