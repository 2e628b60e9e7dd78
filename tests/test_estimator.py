"""SigmoidMLPRegressor: fitting in the units of y, predict's kinds, R², partial_fit, save/load, bad input."""

import dataclasses

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.estimator import LR_CONSTANT


def smooth_1d(T=40):
    X = np.linspace(0.0, 2.0, T).reshape(-1, 1)
    return X, 3.0 + 2.0 * np.tanh(X[:, 0])  # range [3, 4.93]: not in (0, 1), so scaling matters


@pytest.fixture(scope="module")
def fitted():
    X, y = smooth_1d()
    return SigmoidMLPRegressor(hidden=(4,), tol=0.1, device="cpu").fit(X, y), X, y


def test_smooth_function_is_fitted_to_tol_in_the_units_of_y():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(hidden=(4,), tol=0.1, device="cpu").fit(X, y)
    assert reg.result_.stop_reason == "tol", reg.result_
    err = np.abs(reg.predict(X) - y).max()
    assert err < 0.1, f"max |prediction - y| = {err} in the units of y"
    assert reg.score(X, y) > 0.99


def test_default_lr_is_the_documented_rule(fitted):
    reg, X, y = fitted
    assert reg.result_.stop_reason == "tol"
    # one epoch from the same initial weights with the rule's lr spelled out gives the same history
    a = SigmoidMLPRegressor(hidden=(4,), max_epochs=2, device="cpu").fit(X, y)
    b = SigmoidMLPRegressor(hidden=(4,), max_epochs=2, lr=LR_CONSTANT / len(X), device="cpu").fit(X, y)
    assert a.result_.loss_history == b.result_.loss_history


def test_predict_returns_the_kind_of_its_input(fitted):
    reg, X, _y = fitted
    out = reg.predict(X)
    assert isinstance(out, np.ndarray) and out.shape == (len(X),) and out.dtype == np.float64
    t = reg.predict(torch.tensor(X, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (len(X),)
    np.testing.assert_allclose(t.numpy(), out, rtol=1e-5)
    assert isinstance(reg.predict(X.tolist()), np.ndarray)


def test_multi_output_keeps_its_columns():
    X = np.random.default_rng(0).uniform(0, 1, (30, 2))
    Y = np.stack([X.sum(1), 10 * X[:, 0]], axis=1)
    reg = SigmoidMLPRegressor(max_epochs=50, device="cpu").fit(X, Y)
    assert reg.predict(X).shape == (30, 2)


def test_score_is_r2():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=20, device="cpu").fit(X, y)
    p = reg.predict(X)
    expected = 1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert reg.score(X, y) == pytest.approx(expected)


def test_partial_fit_continues_from_the_fitted_weights():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=30, device="cpu").fit(X, y)
    end_of_fit = reg.result_.loss_history[-1]
    scalers = reg.x_scaler_, reg.y_scaler_
    X_new = np.vstack([X, [[0.5], [1.5]]])
    y_new = np.concatenate([y, 3.0 + 2.0 * np.tanh([0.5, 1.5])])
    reg.partial_fit(X_new, y_new)
    assert (reg.x_scaler_, reg.y_scaler_) == scalers
    assert reg.result_.loss_history[0] < 2 * end_of_fit, "partial_fit started again from scratch"
    with pytest.raises(ValueError, match="outside the range"):
        reg.partial_fit(X, y + 10)


def test_validation_fraction_stops_early():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 2, (60, 1))
    y = np.tanh(X[:, 0]) + rng.normal(0, 0.2, 60)
    reg = SigmoidMLPRegressor(hidden=(8,), validation_fraction=0.25, n_iter_no_change=5, device="cpu").fit(
        X, y
    )
    assert reg.result_.stop_reason == "early_stopping"
    assert len(reg.result_.val_history) == reg.result_.epochs + 1


def test_save_load_round_trip(fitted, tmp_path):
    reg, X, _y = fitted
    path = tmp_path / "model.pt"
    reg.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"], "temporary file left behind"
    again = SigmoidMLPRegressor.load(path)
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    assert again.result_ == reg.result_
    assert again.get_params() == reg.get_params()


def test_load_refuses_missing_truncated_and_foreign_files(fitted, tmp_path):
    reg, _X, _y = fitted
    with pytest.raises(ValueError, match="no model file"):
        SigmoidMLPRegressor.load(tmp_path / "absent.pt")
    reg.save(tmp_path / "model.pt")
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable model file"):
        SigmoidMLPRegressor.load(tmp_path / "cut.pt")
    torch.save({"weights": [torch.zeros(2)]}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a compatible"):
        SigmoidMLPRegressor.load(tmp_path / "other.pt")


def test_load_never_runs_code_from_the_file(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("ran code from the file",))

    torch.save({"format": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable model file"):
        SigmoidMLPRegressor.load(tmp_path / "evil.pt")


def test_fit_on_device(device):
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=5, device=device).fit(X, y)
    assert reg.model_.weights[0].device.type == device.type
    assert reg.predict(torch.tensor(X)).device.type == "cpu"


def test_device_auto():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(max_epochs=1).fit(X, y)
    assert reg.model_.weights[0].device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[0.0], [np.nan]]), np.array([1.0, 2.0]), "X contains NaN"),
        (np.array([[0.0], [1.0]]), np.array([1.0, np.inf]), "y contains NaN"),
        (np.empty((0, 1)), np.empty(0), "T = 0"),
        (np.zeros((3, 1)), np.zeros(2), "3 test points but y has 2"),
        (np.zeros(3), np.zeros(3), "reshape"),
    ],
)
def test_bad_data_is_named(X, y, match):
    with pytest.raises(ValueError, match=match):
        SigmoidMLPRegressor(device="cpu").fit(X, y)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"lr": 0.0}, "lr must be"),
        ({"tol": -0.1}, "tol must be"),
        ({"target_range": (0.0, 1.0)}, "target_range"),
    ],
)
def test_bad_settings_are_named(params, match):
    X, y = smooth_1d()
    with pytest.raises(ValueError, match=match):
        SigmoidMLPRegressor(device="cpu", **params).fit(X, y)


def test_predict_checks_features_and_fitting(fitted):
    reg, X, _y = fitted
    with pytest.raises(ValueError, match=r"shape \(T, 1\)"):
        reg.predict(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not fitted"):
        SigmoidMLPRegressor().predict(X)


# -- continuing a run: callback, checkpoints, warm_start ----------------------------------------------


def mini_batch_regressor(**params) -> SigmoidMLPRegressor:
    return SigmoidMLPRegressor(hidden=(4,), batch_size=8, device="cpu", **params)


def assert_same_run(reg, ref, what):
    for l, (W, W_ref) in enumerate(zip(reg.model_.weights, ref.model_.weights)):
        torch.testing.assert_close(W, W_ref, rtol=0, atol=0, msg=f"W^({l}) {what}")
    assert reg.result_.epochs == ref.result_.epochs, what
    assert reg.result_.loss_history == ref.result_.loss_history, f"E per epoch differs {what}"


def test_a_checkpoint_from_the_callback_resumes_to_the_uninterrupted_weights(tmp_path):
    X, y = smooth_1d()
    ref = mini_batch_regressor(max_epochs=40).fit(X, y)
    seen = []

    def checkpoint_at_15(k, result):
        seen.append(k)
        if k == 15:
            reg.save(tmp_path / "run.pt")
            return False
        return None

    reg = mini_batch_regressor(max_epochs=40)
    reg.fit(X, y, callback=checkpoint_at_15)
    assert seen == list(range(16)), seen
    assert (reg.result_.stop_reason, reg.result_.epochs) == ("callback", 15), reg.result_
    saved = SigmoidMLPRegressor.load(tmp_path / "run.pt")
    # all but the seconds, which the run counts on after the callback
    checkpoint, stopped = (dataclasses.replace(r.result_, seconds=0.0) for r in (saved, reg))
    assert checkpoint == stopped, "the checkpoint is not the record of a run stopped there"

    resumed = []
    saved.set_params(warm_start=True).fit(X, y, callback=lambda k, result: resumed.append(k))
    assert resumed == list(range(15, 40)), "the callback's epochs do not count from the start of the run"
    assert saved.result_.stop_reason == "max_epochs"
    assert_same_run(saved, ref, "after resuming from the checkpoint")


def test_warm_start_goes_on_to_max_epochs_in_all():
    X, y = smooth_1d()
    ref = mini_batch_regressor(max_epochs=30).fit(X, y)
    reg = mini_batch_regressor(max_epochs=10, warm_start=True).fit(X, y)
    reg.set_params(max_epochs=20).fit(X, y)
    reg.set_params(max_epochs=30).fit(X, y)
    assert_same_run(reg, ref, "after two continuations")
    reg.fit(X, y)  # the run has its 30 epochs already: nothing more to do
    assert_same_run(reg, ref, "after a continuation past max_epochs")


def test_warm_start_logs_steps_after_the_epochs_taken(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=5, logdir=str(tmp_path), device="cpu").fit(X, y)
    reg.set_params(max_epochs=12, warm_start=True).fit(X, y)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    steps = [event.step for event in events.Scalars("train/sse")]
    assert sorted(steps) == list(range(6)) + list(range(5, 13)), steps


def test_warm_start_refuses_what_it_cannot_continue(tmp_path):
    X, y = smooth_1d()
    reg = mini_batch_regressor(max_epochs=3, validation_fraction=0.25).fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction=None"):
        reg.set_params(warm_start=True, max_epochs=6).fit(X, y)
    reg = mini_batch_regressor(max_epochs=3, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="outside the range"):
        reg.fit(X, y + 10)
    with pytest.raises(ValueError, match="logdir"):
        reg.set_params(logdir=str(tmp_path)).fit(X, y, writer=object())


def test_a_format_1_file_loads_and_continues_a_full_batch_run(tmp_path):
    X, y = smooth_1d()
    ref = SigmoidMLPRegressor(hidden=(4,), max_epochs=20, device="cpu").fit(X, y)
    for batch_size in (None, 8):
        reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=10, batch_size=batch_size, device="cpu").fit(X, y)
        reg.save(tmp_path / "new.pt")
        state = torch.load(tmp_path / "new.pt", weights_only=True)
        assert state["format"] == "torch-sigmoid-mlp/regressor/3"
        assert state["generator"].dtype == torch.uint8
        # what version 1 wrote: no warm_start, no generator state
        del state["params"]["warm_start"], state["generator"]
        state["format"] = "torch-sigmoid-mlp/regressor/1"
        torch.save(state, tmp_path / "old.pt")
        old = SigmoidMLPRegressor.load(tmp_path / "old.pt").set_params(max_epochs=20, warm_start=True)
        np.testing.assert_array_equal(old.predict(X), reg.predict(X))
        if batch_size is None:
            assert_same_run(old.fit(X, y), ref, "continuing a format-1 file")
        else:
            with pytest.raises(ValueError, match="mini-batch order"):
                old.fit(X, y)


def test_load_refuses_a_broken_generator_state(fitted, tmp_path):
    reg, _X, _y = fitted
    reg.save(tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    state["generator"] = state["generator"][:10]
    # a /2 file has no checksum, which would refuse the edited state before the generator is read
    del state["sha256"]
    state["format"] = "torch-sigmoid-mlp/regressor/2"
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="not a compatible"):
        SigmoidMLPRegressor.load(tmp_path / "broken.pt")
