"""SigmoidMLPRegressor: fitting in the units of y, predict's kinds, R², partial_fit, save/load, bad input."""

import dataclasses
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.estimator import LR_CONSTANT, model_file
from torch_sigmoid_mlp.estimator.params import INPUT_RANGE, ONE_INPUT_RANGE, hidden_candidates
from torch_sigmoid_mlp.training.solvers import METHODS


def smooth_1d(T=40):
    X = np.linspace(0.0, 2.0, T).reshape(-1, 1)
    return X, 3.0 + 2.0 * np.tanh(X[:, 0])  # range [3, 4.93]: not in (0, 1), so scaling matters


@pytest.fixture(scope="module")
def fitted():
    X, y = smooth_1d()
    return SigmoidMLPRegressor(tol=0.1, device="cpu").fit(X, y), X, y


@pytest.mark.parametrize("n", [1, 2, 3])
def test_one_input_is_scaled_off_centre_several_symmetrically(n):
    """One input fills ``ONE_INPUT_RANGE = [−0.75, 1]``, several ``INPUT_RANGE = [−1, 1]`` each."""
    X = np.random.default_rng(n).uniform(2.0, 5.0, (20, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = SigmoidMLPRegressor(hidden=(2, 2), max_epochs=1, device="cpu").fit(X, X.sum(1))
    lo, hi = ONE_INPUT_RANGE if n == 1 else INPUT_RANGE
    x = reg.x_scaler_.transform(torch.from_numpy(X)).double()
    assert reg.x_scaler_.feature_range == (lo, hi)
    torch.testing.assert_close(x.amin(0), torch.full((n,), lo, dtype=torch.float64))
    torch.testing.assert_close(x.amax(0), torch.full((n,), hi, dtype=torch.float64))


def test_smooth_function_is_fitted_to_tol_in_the_units_of_y():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(tol=0.1, device="cpu").fit(X, y)  # defaults: hidden (8, 8), solver "auto"
    assert (reg.result_.method, reg.result_.stop_reason) == ("lm", "tol"), reg.result_
    err = np.abs(reg.predict(X) - y).max()
    assert err < 0.1, f"max |prediction - y| = {err} in the units of y"
    assert reg.score(X, y) > 0.99


def test_default_lr_is_the_documented_rule(fitted):
    reg, X, y = fitted
    assert reg.result_.stop_reason == "tol"
    # one epoch from the same initial weights with the rule's lr spelled out gives the same history
    a = SigmoidMLPRegressor(hidden=(4,), solver="sgd", max_epochs=2, device="cpu").fit(X, y)
    b = SigmoidMLPRegressor(hidden=(4,), solver="sgd", max_epochs=2, lr=LR_CONSTANT / len(X), device="cpu")
    b.fit(X, y)
    assert a.result_.loss_history == b.result_.loss_history


@pytest.mark.floats
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


@pytest.mark.floats
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


def test_lm_and_br_epochs_by_default_are_what_their_cost_affords(monkeypatch):
    from torch_sigmoid_mlp.estimator import params, regressor

    # the rule: MAX_EPOCHS where an epoch is cheap, DENSE_WORK / (N·P² + P³) where it is not, ≥ the floor
    assert params.default_max_epochs("br", 80, 100) == params.MAX_EPOCHS["br"]
    assert params.default_max_epochs("lm", 752, 2000) == int(params.DENSE_WORK // (2000 * 752**2 + 752**3))
    assert params.default_max_epochs("br", 4000, 10**6) == params.MIN_DENSE_EPOCHS
    assert params.default_max_epochs("lbfgs", 4000, 10**6) == params.MAX_EPOCHS["lbfgs"]
    # and the fit runs it, with the P and N of its own network and points
    seen = []
    monkeypatch.setattr(regressor, "default_max_epochs", lambda *args: seen.append(args) or 7)
    X = np.linspace(-1, 1, 40).reshape(-1, 1)
    reg = SigmoidMLPRegressor(hidden=(4, 4), solver="br", restarts=1, device="cpu")
    reg.fit(X, np.sin(6 * X[:, 0]))
    assert seen == [("br", 1 * 4 + 4 * 4 + 4, 40)]
    assert (reg.result_.epochs, reg.result_.stop_reason) == (7, "max_epochs")


@pytest.mark.floats
def test_hidden_auto_keeps_the_architecture_of_highest_evidence(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (80, 2))
    y = np.sin(2 * X[:, 0]) * X[:, 1] + 0.05 * rng.standard_normal(80)
    reg = SigmoidMLPRegressor(hidden="auto", device="cpu", dtype="float64").fit(X, y)
    assert list(reg.widths_) == hidden_candidates(2) == [(4, 4), (8, 8), (16, 16)]
    evidence = {h: r.evidence for h, r in reg.widths_.items()}
    assert all(e is not None for e in evidence.values()), evidence
    best = max(evidence, key=evidence.get)
    assert reg.model_.sizes[1:-1] == best and reg.result_ is reg.widths_[best]
    # the fit kept is the one hidden=best makes from the same seed, computed the same way
    alone = SigmoidMLPRegressor(hidden=best, device="cpu", dtype="float64").fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), alone.predict(X))
    reg.save(tmp_path / "m.pt")
    again = SigmoidMLPRegressor.load(tmp_path / "m.pt")
    assert again.get_params()["hidden"] == "auto" and again.model_.sizes == reg.model_.sizes
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))


def test_hidden_auto_with_a_tol_ends_at_the_smallest_network_that_reaches_it():
    X = np.linspace(-1, 1, 40).reshape(-1, 1)
    reg = SigmoidMLPRegressor(hidden="auto", tol=0.02, device="cpu").fit(X, np.cos(2 * X[:, 0]))
    tried = list(reg.widths_)
    assert tried == hidden_candidates(1)[: len(tried)]
    assert reg.result_ is reg.widths_[tried[-1]] and reg.result_.converged
    assert not any(reg.widths_[h].converged for h in tried[:-1])


def test_validation_fraction_stops_early():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 2, (60, 1))
    y = np.tanh(X[:, 0]) + rng.normal(0, 0.2, 60)
    reg = SigmoidMLPRegressor(hidden=(8,), validation_fraction=0.25, n_iter_no_change=5, device="cpu").fit(
        X, y
    )
    assert reg.result_.stop_reason == "early_stopping"
    assert len(reg.result_.val_history) == reg.result_.epochs + 1


@pytest.mark.floats
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


@pytest.mark.floats
def test_auto_fits_fewer_points_than_weights_by_br_cg_from_three_starts():
    """``solver="auto"`` on 50 points with 2-20-20-1 (P = 460 > N = 50, a dear dense epoch): ``"br_cg"``
    from ``choose_restarts``' 3 starts (a fourth from the minimum where they explain little);
    held-out points keep dense ``"br"``, whose one start here is ``choose_restarts``' too."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (50, 2))
    y = np.sin(2 * X[:, 0]) * X[:, 1]
    params = {"hidden": (20, 20), "max_epochs": 3, "device": "cpu", "dtype": "float64", "seed": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = SigmoidMLPRegressor(**params).fit(X, y).result_
        held_out = SigmoidMLPRegressor(**params, validation_fraction=0.2).fit(X, y).result_
    assert fit.method == "br_cg" and len(fit.restarts) in (3, 4)
    assert held_out.method == "br" and len(held_out.restarts) in (0, 2)


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
        ({"hidden": "wide"}, "hidden must be an int, a sequence of ints, 'auto' or None"),
        ({"hidden": "auto", "logdir": "runs"}, "hidden='auto' fits several networks"),
    ],
)
def test_bad_settings_are_named(params, match):
    X, y = smooth_1d()
    with pytest.raises(ValueError, match=match):
        SigmoidMLPRegressor(device="cpu", **params).fit(X, y)


def test_predict_checks_features_and_fitting(fitted):
    reg, X, _y = fitted
    with pytest.raises(ValueError, match="X has 2 features, but SigmoidMLPRegressor is expecting 1 features"):
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


@pytest.mark.floats
def test_a_format_1_file_loads_and_continues_a_full_batch_run(tmp_path):
    X, y = smooth_1d()
    # one start: a continued run is the uninterrupted one bit for bit (several starts may choose another)
    ref = SigmoidMLPRegressor(hidden=(4,), max_epochs=20, device="cpu", restarts=1).fit(X, y)
    for batch_size in (None, 8):
        reg = SigmoidMLPRegressor(
            hidden=(4,), max_epochs=10, batch_size=batch_size, device="cpu", restarts=1
        ).fit(X, y)
        reg.save(tmp_path / "new.pt")
        state = torch.load(tmp_path / "new.pt", weights_only=True)
        assert state["format"] == "torch-sigmoid-mlp/regressor/3"
        assert state["generator"].dtype == torch.uint8
        # what version 1 wrote: no warm_start, no generator state (and nothing /3 added)
        del state["params"]["warm_start"], state["generator"], state["sha256"]
        del state["feature_names"], state["data_fingerprint"], state["result"]["history_length"]
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
    # crafted with a checksum that matches: the field's own check refuses it
    del state["sha256"]
    state["sha256"] = model_file.digest(state)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="generator: not the state of a torch"):
        SigmoidMLPRegressor.load(tmp_path / "broken.pt")


# -- parameters: checked by fit, numpy scalars welcome -------------------------------------------------


def test_an_int_hidden_is_one_hidden_layer():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(hidden=8, max_epochs=2, device="cpu").fit(X, y)
    assert reg.model_.sizes == (1, 8, 1)
    assert reg.hidden == 8, "fit rewrote the parameter"


def test_numpy_scalars_are_accepted_wherever_a_number_is():
    X, y = smooth_1d()
    plain = SigmoidMLPRegressor(
        hidden=(4,), lr=0.5, tol=0.01, max_epochs=30, batch_size=8, momentum=0.5, restarts=2, device="cpu"
    ).fit(X, y)
    numpy = SigmoidMLPRegressor(
        hidden=np.int64(4),
        lr=np.float64(0.5),
        tol=np.float32(0.01),
        max_epochs=np.int64(30),
        batch_size=np.int32(8),
        momentum=np.float64(0.5),
        restarts=np.int64(2),
        seed=np.int64(0),
        device="cpu",
    ).fit(X, y)
    # np.float32(0.01) is not 0.01, so only the steps (equal while tol has not stopped either) compare
    assert numpy.result_.loss_history[:5] == plain.result_.loss_history[:5]
    hidden = SigmoidMLPRegressor(hidden=[np.int64(3), np.int32(2)], max_epochs=1, device="cpu").fit(X, y)
    assert hidden.model_.sizes == (1, 3, 2, 1)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"batch_size": -3}, "batch_size must be a positive integer or None, got -3"),
        ({"max_epochs": -1}, "max_epochs must be a non-negative integer or None, got -1"),
        ({"hidden": 0}, r"hidden\[0\] must be a positive integer"),
        ({"hidden": "8"}, "hidden must be an int, a sequence of ints, 'auto' or None"),
        ({"lr": np.float64("nan")}, "lr must be a positive finite number or None"),
        ({"momentum": 1.0}, r"momentum must be a number in \[0.0, 1.0\)"),
        ({"validation_fraction": 1.5}, r"validation_fraction must be a number in \(0, 1.0\)"),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be a positive integer or None"),
        ({"restarts": True}, "restarts must be a positive integer"),
        ({"dtype": "float"}, "dtype must be one of"),
        ({"device": "gpu"}, "device must be 'auto' or a torch device"),
        ({"seed": -1}, r"seed must be a non-negative integer of at most "),
        ({"random_state": 2**70}, r"random_state must be a non-negative integer of at most "),
    ],
)
def test_bad_parameters_are_named_by_fit_before_any_work(params, match):
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(**{"device": "cpu", **params})  # the constructor only stores them
    assert reg.get_params()[next(iter(params))] is params[next(iter(params))]
    with pytest.raises(ValueError, match=match):
        reg.fit(X, y)
    assert not hasattr(reg, "model_")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_a_value_error():
    X, y = smooth_1d()
    with pytest.raises(ValueError, match="CUDA is not available"):
        SigmoidMLPRegressor(device="cuda").fit(X, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_device_this_machine_lacks_is_a_value_error():
    X, y = smooth_1d()
    with pytest.raises(ValueError, match="CUDA device"):
        SigmoidMLPRegressor(device=f"cuda:{torch.cuda.device_count()}").fit(X, y)


@pytest.mark.floats
def test_dtype_is_a_string_or_a_torch_dtype():
    X, y = smooth_1d()
    assert SigmoidMLPRegressor().dtype == "float64"
    by_name = SigmoidMLPRegressor(hidden=(4,), max_epochs=5, dtype="float32", device="cpu").fit(X, y)
    by_dtype = SigmoidMLPRegressor(hidden=(4,), max_epochs=5, dtype=torch.float32, device="cpu").fit(X, y)
    assert by_name.model_.weights[0].dtype == torch.float32
    np.testing.assert_array_equal(by_name.predict(X), by_dtype.predict(X))


@pytest.mark.floats
def test_random_state_is_used_in_place_of_seed():
    X, y = smooth_1d()
    by_seed = SigmoidMLPRegressor(hidden=(4,), max_epochs=3, seed=7, device="cpu").fit(X, y)
    by_state = SigmoidMLPRegressor(hidden=(4,), max_epochs=3, seed=0, random_state=7, device="cpu").fit(X, y)
    other = SigmoidMLPRegressor(hidden=(4,), max_epochs=3, seed=0, device="cpu").fit(X, y)
    assert_same_run(by_state, by_seed, "with random_state=7 and with seed=7")
    assert not torch.equal(other.model_.weights[0], by_seed.model_.weights[0])


def test_score_with_mismatched_lengths_is_a_value_error(fitted):
    reg, X, y = fitted
    with pytest.raises(ValueError, match=f"X has {len(X)} test points but y has {len(X) - 1}"):
        reg.score(X, y[:-1])


def test_before_fit_every_method_raises_not_fitted_error():
    from torch_sigmoid_mlp.estimator import NotFittedError

    X, y = smooth_1d()
    reg = SigmoidMLPRegressor()
    for call in (lambda: reg.predict(X), lambda: reg.score(X, y), lambda: reg.save("unused.pt")):
        with pytest.raises(NotFittedError, match="not fitted yet") as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)


# -- data: what kinds of array are taken, and what is refused ------------------------------------------


@pytest.mark.floats
def test_negative_strides_and_read_only_arrays_work_without_warnings():
    X, y = smooth_1d()
    X2 = np.hstack([X, X**2])  # (T, 2)
    reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=20, device="cpu")
    reference = reg.fit(np.ascontiguousarray(X2[::-1, ::-1]), np.ascontiguousarray(y[::-1])).predict(
        X2[:, ::-1]
    )
    frozen_X, frozen_y = X2[::-1, ::-1].copy(), y[::-1].copy()
    frozen_X.flags.writeable = frozen_y.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data in [
            (X2[::-1, ::-1], y[::-1]),
            (frozen_X, frozen_y),
            (np.asfortranarray(X2[::-1, ::-1]), y[::-1]),
        ]:
            np.testing.assert_array_equal(reg.fit(*data).predict(X2[:, ::-1]), reference)
        np.testing.assert_array_equal(reg.predict(frozen_X[::-1]), reference)


def test_complex_object_and_sparse_inputs_are_refused_by_name():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(max_epochs=1, device="cpu")
    with pytest.raises(ValueError, match="Complex data not supported"):
        reg.fit(X + 1j, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        reg.fit(torch.tensor(X) * 1j, y)
    bad = X.astype(object)
    bad[0, 0] = {"a": 1}
    with pytest.raises(TypeError, match="X must be numeric"):
        reg.fit(bad, y)
    with pytest.raises(ValueError, match="X must be numeric"):
        reg.fit(np.array([["a"]] * len(y)), y)
    with pytest.raises(TypeError, match="sparse tensor"):
        reg.fit(torch.tensor(X).to_sparse(), y)
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        reg.fit(X, None)
    with pytest.raises(ValueError, match="Reshape your data"):
        reg.fit(X[:, 0], y)


@pytest.mark.floats
def test_predictions_of_a_point_do_not_depend_on_the_points_predicted_with_it(device):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (64, 3))
    y = np.sin(X).sum(axis=1)
    reg = SigmoidMLPRegressor(hidden=(16, 16), max_epochs=50, device=str(device)).fit(X, y)  # float32
    together = reg.predict(X)
    one_by_one = np.concatenate([reg.predict(X[i : i + 1]) for i in range(len(X))])
    shuffled = rng.permutation(len(X))
    # float64 products of the same numbers, summed in another order by another kernel: rounding
    # of order 1e-16 relative, far inside this bound
    np.testing.assert_allclose(one_by_one, together, rtol=1e-12)
    np.testing.assert_allclose(reg.predict(X[shuffled]), together[shuffled], rtol=1e-12)
    single = reg.predict(X.astype(np.float32))
    assert single.dtype == np.float32
    np.testing.assert_allclose(
        np.concatenate([reg.predict(X[i : i + 1].astype(np.float32)) for i in range(len(X))]),
        single,
        rtol=1e-7,
    )


@pytest.mark.floats
def test_a_fitted_estimator_pickles_with_its_generator():
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(hidden=(4,), batch_size=8, max_epochs=5, device="cpu").fit(X, y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    # the batch-order generator came along: both continue the run the same way
    for r in (reg, again):
        r.set_params(warm_start=True, max_epochs=10).fit(X, y)
    assert_same_run(again, reg, "after pickling")


def test_without_scikit_learn_the_estimator_imports_and_works(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["sklearn"] = None  # as if it were not installed: importing it fails
        import numpy as np
        from torch_sigmoid_mlp import SigmoidMLPRegressor
        from torch_sigmoid_mlp.estimator import NotFittedError
        X = np.linspace(0, 1, 20).reshape(-1, 1)
        reg = SigmoidMLPRegressor(hidden=4, max_epochs=5, device="cpu")
        try:
            reg.predict(X)
        except NotFittedError as exc:
            assert isinstance(exc, ValueError) and isinstance(exc, AttributeError)
        reg.fit(X, X[:, 0], sample_weight=np.ones(20))
        assert type(reg).__mro__[1:] == (object,), type(reg).__mro__
        print(reg.predict(X).shape, reg.get_params()["random_state"])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(20,)", "None"]


# -- pandas: column names --------------------------------------------------------------------------


@pytest.mark.floats
def test_dataframe_column_names_are_kept_and_checked():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.uniform(0, 1, 30), "b": rng.uniform(0, 5, 30)})
    y = df["a"] + df["b"] ** 2
    reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=20, device="cpu").fit(df, y)
    assert list(reg.feature_names_in_) == ["a", "b"]
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(reg.predict(df), reg.predict(df.to_numpy()))
    with pytest.raises(ValueError, match=r"in another order than in fit, \['a', 'b'\]: got \['b', 'a'\]"):
        reg.predict(df[["b", "a"]])
    renamed = df.rename(columns={"b": "c"})
    with pytest.raises(
        ValueError, match=r"unseen at fit time: \['c'\]; seen at fit time, yet now missing: \['b'\]"
    ):
        reg.predict(renamed)
    with pytest.raises(ValueError, match="yet now missing"):
        reg.score(df[["a"]], y)
    with pytest.raises(ValueError, match="in another order"):
        reg.partial_fit(df[["b", "a"]], y)


@pytest.mark.floats
def test_dataframe_in_another_order_fits_as_its_values_do():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.uniform(0, 1, 30), "b": rng.uniform(0, 5, 30)})
    y = df["a"] - df["b"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # df[["b", "a"]].to_numpy() is a view with negative or non-unit strides
        reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=20, device="cpu").fit(df[["b", "a"]], y)
        plain = SigmoidMLPRegressor(hidden=(4,), max_epochs=20, device="cpu").fit(
            np.stack([df["b"], df["a"]], axis=1), y.to_numpy()
        )
        np.testing.assert_array_equal(
            reg.predict(df[["b", "a"]]), plain.predict(np.stack([df["b"], df["a"]], 1))
        )
    assert list(reg.feature_names_in_) == ["b", "a"]
    with pytest.warns(UserWarning, match="X has feature names, but SigmoidMLPRegressor was fitted without"):
        plain.predict(df[["b", "a"]])
    # integer column names are no feature names (scikit-learn's rule), mixed ones are refused
    refit = SigmoidMLPRegressor(max_epochs=1, device="cpu").fit(df.set_axis([0, 1], axis=1), y)
    assert not hasattr(refit, "feature_names_in_")
    with pytest.raises(TypeError, match="column names must all be strings"):
        refit.fit(df.set_axis(["a", 1], axis=1), y)
    reg.fit(df.to_numpy(), y)
    assert not hasattr(reg, "feature_names_in_"), "a refit on an array kept the old names"


# -- sample weights: E_s = 1/2 Σ_t s_t ‖d_t − y^(L)(t)‖² ------------------------------------------------


def weighted_problem(T=15):
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 2, (T, 2))
    y = np.sin(X[:, 0]) + X[:, 1]
    s = rng.integers(0, 4, T)  # 0 to 3: points left out, taken once, repeated
    s[:3] = (0, 2, 3)
    return X, y, s


@pytest.mark.floats
@pytest.mark.parametrize(
    "params",
    [{"solver": "sgd"}, {"solver": "sgd", "momentum": 0.5}]
    # (not "lm_cg", "br_cg": their CG's inexact stop ends at an iteration the sums' last bits can move, and
    # from there the runs part; tests/test_solvers.py checks it with CG solved to 1e-12)
    + [{"solver": method, "max_epochs": 20} for method in METHODS if method not in ("sgd", "lm_cg", "br_cg")],
)
def test_integer_weights_fit_as_the_repeated_points(params, device):
    X, y, s = weighted_problem()
    params = {"hidden": (5,), "max_epochs": 200, "dtype": "float64", "device": str(device), **params}
    repeated = SigmoidMLPRegressor(**params).fit(np.repeat(X, s, axis=0), np.repeat(y, s))
    order = np.random.default_rng(4).permutation(len(X))  # the weighted points in another order
    weighted = SigmoidMLPRegressor(**params).fit(X[order], y[order], sample_weight=s[order])
    assert weighted.result_.epochs == repeated.result_.epochs
    # the same sums of the same terms, added in another order: float64 rounding, grown over the epochs
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=0, atol=1e-10)
    # (LM takes E to 1e-19 in 20 epochs: rounding is relative to where E began, not where it ended)
    history = repeated.result_.loss_history
    np.testing.assert_allclose(weighted.result_.loss_history, history, rtol=1e-10, atol=1e-14 * history[0])


@pytest.mark.floats
@pytest.mark.parametrize(
    "params",
    [
        {"hidden": (4,), "max_epochs": 300},  # "auto": BR from 3 starts (4 here), the best by evidence
        {"hidden": (4,), "max_epochs": 60, "tol": 0.25},  # "auto": LM from up to 10 starts, to a tol
        {"hidden": (3, 3), "max_epochs": 100, "solver": "lm"},  # LM from 3 starts, the lowest E kept
    ],
)
def test_scikit_learns_weight_check_holds_where_the_network_cannot_interpolate(params):
    """scikit-learn's ``check_sample_weight_equivalence_on_dense_data``, run on points the network
    cannot interpolate (its own data can be: see ``expected_failed_checks``): the repeated points and
    the shuffled weighted ones (weights 0 to 4) predict alike at its tolerance, ``rtol=1e-7``."""
    from sklearn.utils import shuffle

    rng = np.random.default_rng(7)
    X = rng.uniform(-1, 1, (30, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(30)
    s = rng.integers(0, 5, 30)
    est = {"device": "cpu", "dtype": "float64", "seed": 0, **params}
    repeated = SigmoidMLPRegressor(**est).fit(X.repeat(s, axis=0), y.repeat(s))
    Xw, yw, sw = shuffle(X, y, s, random_state=0)
    weighted = SigmoidMLPRegressor(**est).fit(Xw, yw, sample_weight=sw)
    a, b = repeated.result_, weighted.result_
    assert (b.method, b.start, len(b.restarts), b.epochs) == (a.method, a.start, len(a.restarts), a.epochs)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-7, atol=1e-9)


@pytest.mark.floats
def test_what_the_fit_decides_from_the_number_of_points_counts_the_weights(monkeypatch):
    """A uniform weight 3 is the data three times over: ``restarts="auto"`` and the epoch cap see
    300 points, not 100 (at P = 304 weights an epoch of 100 points is cheap enough for 3 starts,
    one of 300 is not: ``choose_restarts``), and the fit is the repeated one's."""
    import torch_sigmoid_mlp.estimator.regressor as estimator

    seen = []
    choose_restarts = estimator.choose_restarts

    def recording(method, P, N, *, tol, **kwargs):
        seen.append((N, choose_restarts(method, P, N, tol=tol, **kwargs)))
        return seen[-1][1]

    monkeypatch.setattr(estimator, "choose_restarts", recording)
    monkeypatch.setattr(estimator, "default_max_epochs", lambda method, P, N: seen.append(N) or 20)
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (100, 2))
    y = np.sin(3 * X[:, 0]) * X[:, 1]
    est = {"hidden": (16, 16), "solver": "br", "device": "cpu", "dtype": "float64", "seed": 0}
    SigmoidMLPRegressor(**est, max_epochs=2).fit(X, y)
    assert seen == [(100, 3)]  # unweighted, 100 points: a cheap start, three of them
    weighted = SigmoidMLPRegressor(**est).fit(X, y, sample_weight=np.full(100, 3.0))
    repeated = SigmoidMLPRegressor(**est).fit(np.repeat(X, 3, axis=0), np.repeat(y, 3))
    assert seen[1:] == [(300.0, 1), 300.0, (300, 1), 300]
    assert weighted.result_.epochs == repeated.result_.epochs
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-7, atol=1e-9)


@pytest.mark.floats
def test_a_zero_weight_is_the_point_removed():
    X, y, _s = weighted_problem()
    s = np.ones(len(X))
    s[[2, 7]] = 0.0
    params = {"hidden": (4,), "max_epochs": 30, "batch_size": 4, "device": "cpu"}
    removed = SigmoidMLPRegressor(**params).fit(np.delete(X, [2, 7], 0), np.delete(y, [2, 7]))
    weighted = SigmoidMLPRegressor(**params).fit(X, y, sample_weight=s)
    # the points of weight 0 are dropped before anything is computed: the same computation runs
    np.testing.assert_array_equal(weighted.predict(X), removed.predict(X))
    assert weighted.result_ == dataclasses.replace(removed.result_, seconds=weighted.result_.seconds)
    removed.partial_fit(np.delete(X, [2, 7], 0), np.delete(y, [2, 7]))
    weighted.partial_fit(X, y, sample_weight=s)
    np.testing.assert_array_equal(weighted.predict(X), removed.predict(X))


@pytest.mark.floats
def test_weights_travel_with_their_points_through_the_validation_split(monkeypatch):
    import torch_sigmoid_mlp.estimator.regressor as estimator

    seen = {}

    def recording_train(model, x, d, **kwargs):
        seen.update(x=x, s=kwargs.get("sample_weight"))
        return train(model, x, d, **kwargs)

    train = estimator.train
    monkeypatch.setattr(estimator, "train", recording_train)
    X, y, _s = weighted_problem(T=40)
    s = 1.0 + np.arange(40.0)  # the weight names the point
    reg = SigmoidMLPRegressor(
        hidden=(4,), max_epochs=5, validation_fraction=0.25, dtype="float64", device="cpu"
    ).fit(X, y, sample_weight=s)
    x = reg.x_scaler_.inverse_transform(seen["x"])  # the training points, back in X's units
    assert seen["s"].shape == (30,)
    rows = [int(w) - 1 for w in seen["s"].tolist()]
    np.testing.assert_allclose(x.numpy(), X[rows], rtol=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_onto_cuda_without_cuda_names_the_device(fitted, tmp_path):
    reg, _X, _y = fitted
    reg.save(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="CUDA is not available") as info:
        SigmoidMLPRegressor.load(tmp_path / "model.pt", device="cuda")
    assert "model file" not in str(info.value)


@pytest.mark.floats
def test_save_load_keeps_the_parameters_as_given(tmp_path):
    X, y = smooth_1d()
    reg = SigmoidMLPRegressor(
        hidden=np.int64(4),
        lr=np.float64(0.5),
        max_epochs=np.int64(3),
        dtype=torch.float64,
        random_state=2,
        solver="sgd",
        device="cpu",
    ).fit(X, y)
    reg.save(tmp_path / "model.pt")
    again = SigmoidMLPRegressor.load(tmp_path / "model.pt")
    params = again.get_params()
    assert (params["hidden"], params["lr"], params["max_epochs"]) == (4, 0.5, 3)
    assert (params["dtype"], params["random_state"]) == ("float64", 2)
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))


def test_auto_lbfgs_of_a_large_network_carries_the_weight_decay_and_lbfgs_by_name_none(monkeypatch):
    """``solver="auto"``'s L-BFGS (chosen above ``AUTO_DENSE_PARAMS`` weights; here for a small network,
    by a ``choose_method`` that answers ``"lbfgs"``) minimises ``E_s + (α/2)·Σ w²`` with
    ``α = AUTO_WEIGHT_DECAY``: ``train`` is handed that option, and the weights end smaller than those
    of ``solver="lbfgs"`` from the same start, which has no decay."""
    from torch_sigmoid_mlp.estimator import regressor
    from torch_sigmoid_mlp.training.solvers import AUTO_WEIGHT_DECAY

    monkeypatch.setattr(regressor, "choose_method", lambda *args, **kwargs: "lbfgs")
    handed = []
    train = regressor.train
    monkeypatch.setattr(
        regressor, "train", lambda *a, **kw: handed.append(kw.get("options")) or train(*a, **kw)
    )
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (60, 3))
    y = np.sin(3 * X[:, 0]) * X[:, 1] + 0.1 * rng.standard_normal(60)
    fits = {
        solver: SigmoidMLPRegressor(hidden=(6, 6), solver=solver, seed=0, max_epochs=200, device="cpu").fit(
            X, y
        )
        for solver in ("auto", "lbfgs")
    }
    assert handed == [{"weight_decay": AUTO_WEIGHT_DECAY}, None]
    assert fits["auto"].result_.method == "lbfgs"
    squares = {k: sum(W.detach().square().sum().item() for W in f.model_.weights) for k, f in fits.items()}
    assert squares["auto"] < 0.9 * squares["lbfgs"], squares
