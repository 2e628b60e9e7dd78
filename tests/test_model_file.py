"""The model file's schema (``estimator/model_file.py``): its versions, its checksum, its bounded history.

The estimator's own tests (test_estimator.py, test_reliability.py) cover saving and loading through
the class; these pin the format itself, so that a file written today keeps loading tomorrow.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLPRegressor, TrainResult
from torch_sigmoid_mlp.estimator import model_file


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X = np.linspace(0.0, 1.0, 20).reshape(-1, 1)
    reg = SigmoidMLPRegressor(hidden=(3,), max_epochs=5, batch_size=8, device="cpu").fit(X, X[:, 0] ** 2)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    reg.save(path)
    return reg, X, path


def test_the_format_is_version_3_and_reads_versions_1_to_3():
    assert model_file.FORMAT == "torch-sigmoid-mlp/regressor/3"
    assert tuple(f"torch-sigmoid-mlp/regressor/{v}" for v in (1, 2, 3)) == model_file.READABLE


def test_a_file_holds_the_schema_and_its_checksum(saved):
    _reg, _X, path = saved
    state = torch.load(path, weights_only=True)
    assert set(state) == {
        "format", "params", "sizes", "weights", "x_scaler", "y_scaler", "y_1d", "result", "generator",
        "feature_names", "data_fingerprint", "sha256",
    }  # fmt: skip
    assert state["format"] == model_file.FORMAT and state["sizes"] == [1, 3, 1]
    checksum = state.pop("sha256")
    assert checksum == model_file.digest(state)


@pytest.mark.floats
@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_readable_version_loads(saved, tmp_path, version):
    reg, X, path = saved
    state = torch.load(path, weights_only=True)
    if version < 3:  # what /1 and /2 wrote: no checksum, no names, no fingerprint, no bounded history
        for key in ("sha256", "feature_names", "data_fingerprint"):
            del state[key]
        state["result"].pop("history_length")
    if version == 1:  # and no warm_start, no generator
        del state["params"]["warm_start"], state["generator"]
    state["format"] = f"torch-sigmoid-mlp/regressor/{version}"
    torch.save(state, tmp_path / "old.pt")
    old = SigmoidMLPRegressor.load(tmp_path / "old.pt")
    np.testing.assert_array_equal(old.predict(X), reg.predict(X))
    assert old.result_ == reg.result_
    assert (old._generator is None) == (version == 1)


def test_an_unknown_format_and_a_changed_byte_are_refused(saved, tmp_path):
    _reg, _X, path = saved
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format": "torch-sigmoid-mlp/regressor/4"}, tmp_path / "new.pt")
    with pytest.raises(ValueError, match="format 'torch-sigmoid-mlp/regressor/4'"):
        model_file.read(SigmoidMLPRegressor, tmp_path / "new.pt")
    state["weights"][0][0, 0] += 1.0
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match="damaged"):
        model_file.read(SigmoidMLPRegressor, tmp_path / "edited.pt")


def test_the_digest_reads_dicts_in_key_order_and_tells_values_apart():
    a = {"x": torch.ones(2), "n": 1, "f": [1.0, True]}
    b = {"f": [1.0, True], "n": 1, "x": torch.ones(2)}
    assert model_file.digest(a) == model_file.digest(b)
    assert model_file.digest({"n": 1}) != model_file.digest({"n": 1.0}) != model_file.digest({"n": True})
    assert model_file.digest(torch.ones(2)) != model_file.digest(torch.ones(2, dtype=torch.float64))


def test_a_bounded_history_reads_back_with_nan_where_not_kept(monkeypatch):
    monkeypatch.setattr(model_file, "HISTORY_KEPT", 3)
    run = TrainResult(
        epochs=5, final_loss=0.5, max_abs_error=0.1, converged=False, stop_reason="max_epochs", seconds=0.0,
        loss_history=[5.0, 4.0, 3.0, 2.0, 1.0, 0.5], method="sgd",
    )  # fmt: skip
    saved = model_file.bounded(dataclasses.asdict(run))
    assert saved["loss_history"] == [2.0, 1.0, 0.5] and saved["history_length"] == [6, 0]
    back = model_file.result(saved)
    assert [x for x in back.loss_history if not math.isnan(x)] == [2.0, 1.0, 0.5]
    assert len(back.loss_history) == 6 and back.epochs == 5
