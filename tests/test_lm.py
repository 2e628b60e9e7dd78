"""Levenberg–Marquardt: one step against the formula, convergence on small problems, stops, refusals."""

import functools
import math

import numpy as np
import problems
import pytest
import torch

from torch_sigmoid_mlp import (
    LM_MAX_PARAMS,
    SigmoidMLP,
    SigmoidMLPRegressor,
    TrainResult,
    levenberg_marquardt,
    sigmoid_mlp_autograd,
    sine_demo,
    sse_loss,
    train,
)
from torch_sigmoid_mlp.training import STOP_REASONS

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

# This file's problem: the shared teacher at seed 1 and students, all drawn in float64.
teacher_problem = functools.partial(problems.teacher_problem, seed=1)
student = functools.partial(problems.student, drawn_in=torch.float64)


def assert_result_describes_the_model(result, model, x, d):
    with torch.no_grad():
        y = model(x)
    assert result.epochs == len(result.loss_history) - 1
    assert result.max_abs_error == pytest.approx((y - d).abs().max().item(), rel=1e-6)
    assert result.final_loss == pytest.approx(sse_loss(y, d).item(), rel=1e-6)
    assert result.loss_history[-1] == result.final_loss
    # A step is taken only when it lowers E.
    assert all(b < a for a, b in zip(result.loss_history, result.loss_history[1:]))


def test_one_step_solves_the_damped_normal_equations():
    x, d, _ = teacher_problem()
    model = student()
    w0 = torch.cat([W.detach().reshape(-1) for W in model.weights])
    shapes = [W.shape for W in model.weights]

    def F(w):  # y^(L) as a function of the flat weights, (T·m,)
        ws = [c.reshape(s) for c, s in zip(w.split([s.numel() for s in shapes]), shapes)]
        return sigmoid_mlp_autograd(x, ws).reshape(-1)

    J = torch.func.jacrev(F)(w0)  # independently of jacobian(), (T·m, P)
    e = d.reshape(-1) - F(w0)
    mu = 1e-3
    expected = torch.linalg.solve(J.T @ J + mu * torch.eye(w0.numel(), dtype=w0.dtype), J.T @ e)
    assert 0.5 * (d.reshape(-1) - F(w0 + expected)).square().sum() < 0.5 * e.square().sum(), "step is taken"

    storages = [W.data_ptr() for W in model.weights]
    result = levenberg_marquardt(model, x, d, max_epochs=1, mu=mu)
    assert [W.data_ptr() for W in model.weights] == storages, "updated in place"
    w1 = torch.cat([W.detach().reshape(-1) for W in model.weights])
    torch.testing.assert_close(w1 - w0, expected, rtol=1e-8, atol=1e-12, msg="Δw = (JᵀJ + μI)⁻¹ Jᵀe")
    assert result.epochs == 1 and result.stop_reason == "max_epochs"
    assert result.mu == pytest.approx(mu * 0.1), "an accepted step divides μ by 10"
    assert_result_describes_the_model(result, model, x, d)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_teacher_targets_are_fitted_to_the_uniform_bound(seed, dtype):
    x, d, _ = teacher_problem(dtype=dtype)
    model = student(seed=seed, dtype=dtype)
    result = levenberg_marquardt(model, x, d, tol=0.01, max_epochs=200)
    assert result.stop_reason == "tol", result
    assert result.max_abs_error < 0.01
    assert result.epochs <= 50, "3 to 16 epochs from these starts; steepest descent needs thousands"
    assert all(W.dtype == dtype for W in model.weights)
    assert_result_describes_the_model(result, model, x, d)


@pytest.mark.parametrize("seed", [0, 1])
def test_one_dimensional_sine_is_fitted_to_the_uniform_bound(seed):
    # One period of a sine, scaled into (0.1, 0.9) like the estimator scales targets.
    x = torch.linspace(0.1, 0.9, 50, dtype=torch.float64)[:, None]  # (T, 1)
    d = 0.5 + 0.4 * torch.sin(2 * math.pi * x)  # (T, 1)
    model = student((1, 8, 8, 1), seed=seed)
    result = levenberg_marquardt(model, x, d, tol=0.01, max_epochs=200)
    assert result.stop_reason == "tol", result
    assert_result_describes_the_model(result, model, x, d)


def test_stops_before_updating_when_the_bound_already_holds():
    x, d, teacher = teacher_problem()
    before = [W.detach().clone() for W in teacher.weights]
    result = levenberg_marquardt(teacher, x, d, tol=1e-12)
    assert (result.stop_reason, result.epochs, result.max_abs_error) == ("tol", 0, 0.0)
    assert all(torch.equal(W, W0) for W, W0 in zip(teacher.weights, before))


def test_gives_up_at_mu_max_on_the_weights_it_had():
    # At E = 0 no step lowers E: μ grows ×10 from 1e-3 past 1e10 and the weights stay put.
    x, d, teacher = teacher_problem()
    before = [W.detach().clone() for W in teacher.weights]
    result = levenberg_marquardt(teacher, x, d)
    assert (result.stop_reason, result.epochs, result.final_loss) == ("mu_max", 0, 0.0)
    assert result.mu > 1e10
    assert all(torch.equal(W, W0) for W, W0 in zip(teacher.weights, before))


def test_max_epochs_zero_only_measures():
    x, d, _ = teacher_problem()
    model = student()
    result = levenberg_marquardt(model, x, d, max_epochs=0)
    assert (result.stop_reason, result.epochs, len(result.loss_history)) == ("max_epochs", 0, 1)
    assert_result_describes_the_model(result, model, x, d)


def test_refuses_networks_too_large_for_a_dense_system():
    x = torch.rand(3, 64)
    at_limit = SigmoidMLP(20, (100,), 20)  # P = 2000 + 2000
    assert sum(W.numel() for W in at_limit.weights) == LM_MAX_PARAMS == 4000
    levenberg_marquardt(at_limit, x[:, :20], torch.rand(3, 20), max_epochs=0)

    too_large = SigmoidMLP(64, (64,), 1)  # P = 4096 + 64
    with pytest.raises(ValueError, match=r"P = 4160 weights, more than LM_MAX_PARAMS = 4000.*method='sgd'"):
        levenberg_marquardt(too_large, x, torch.rand(3, 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_epochs": -1}, "max_epochs must be a non-negative integer"),
        ({"max_epochs": 2.5}, "max_epochs must be a non-negative integer"),
        ({"tol": 0.0}, "tol must be a positive"),
        ({"mu": 0.0}, "mu must be a positive finite number"),
        ({"mu": math.inf}, "mu must be a positive finite number"),
        ({"mu_increase": 1.0}, "mu_increase must be > 1"),
        ({"mu_decrease": 1.0}, r"mu_decrease must be a number in \(0, 1\.0\)"),
        ({"mu_max": 1e-4}, "mu_max must exceed mu"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    x, d, _ = teacher_problem(T=4)
    with pytest.raises(ValueError, match=match):
        levenberg_marquardt(student(), x, d, **kwargs)


def test_bad_data_is_named():
    x, d, _ = teacher_problem(T=4)
    with pytest.raises(ValueError, match="d has shape"):
        levenberg_marquardt(student(), x, d[:3])
    with pytest.raises(ValueError, match="expects 3 features"):
        levenberg_marquardt(student(), x[:, :2], d)


# -- through train(method="lm") and SigmoidMLPRegressor(solver="lm") -------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_method_lm_fits_the_training_tests_teacher_in_few_epochs(seed):
    # float32, the problem steepest descent needs thousands of epochs on (test_training.py's)
    x, d, _ = problems.teacher_problem(seed=8, dtype=torch.float32, drawn_in=torch.float32)
    model = problems.student(seed=seed, dtype=torch.float32)
    result = train(model, x, d, method="lm", tol=0.01, max_epochs=200)
    assert isinstance(result, TrainResult)
    assert (result.stop_reason, result.converged) == ("tol", True), result
    assert result.epochs <= 30, "8 to 17 epochs from these starts; steepest descent takes 6120 to 13607"
    assert result.seconds > 0 and result.val_history == [] and result.restarts == []
    assert_result_describes_the_model(result, model, x, d)


def test_train_method_lm_ignores_lr_and_equals_levenberg_marquardt():
    x, d, _ = teacher_problem()
    a, b, c = student(), student(), student()
    ra = train(a, x, d, method="lm", tol=0.01)
    rb = train(b, x, d, method="lm", lr=123.0, tol=0.01)
    rc = levenberg_marquardt(c, x, d, tol=0.01, max_epochs=10_000)
    assert ra.loss_history == rb.loss_history == rc.loss_history
    assert (ra.epochs, ra.stop_reason, ra.max_abs_error) == (rc.epochs, rc.stop_reason, rc.max_abs_error)
    for Wa, Wc in zip(a.weights, c.weights):
        torch.testing.assert_close(
            Wa, Wc, rtol=0, atol=0, msg="train(method='lm') is not levenberg_marquardt"
        )


def test_train_reports_mu_max_as_its_own_stop():
    x, d, teacher = teacher_problem()
    result = train(teacher, x, d, method="lm")
    assert (result.stop_reason, result.converged, result.epochs) == ("mu_max", False, 0)
    assert "mu_max" in STOP_REASONS


def test_train_method_lm_logs_E_per_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, d, _ = teacher_problem()
    result = train(student(), x, d, method="lm", tol=0.01, logdir=tmp_path)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0}).Reload()
    sse = events.Scalars("train/sse")
    assert [e.step for e in sse] == list(range(result.epochs + 1))
    torch.testing.assert_close(
        [e.value for e in sse], result.loss_history, rtol=1e-6, atol=0, msg="train/sse != loss_history"
    )
    errors = events.Scalars("train/max_abs_error")
    assert [e.step for e in errors] == list(range(result.epochs + 1))
    assert errors[-1].value == pytest.approx(result.max_abs_error, rel=1e-6)
    mu = events.Scalars("train/mu")
    assert len(mu) == result.epochs + 1 and all(e.value > 0 for e in mu)
    assert events.Scalars("hparam/epochs")[0].value == result.epochs


def test_train_needs_lr_for_sgd_and_a_known_method():
    x, d, _ = teacher_problem(T=4)
    with pytest.raises(ValueError, match="lr is required with method='sgd'"):
        train(student(), x, d)
    with pytest.raises(ValueError, match=r"method must be one of \('sgd', .*'br_cg', 'auto'\).*got 'newton'"):
        train(student(), x, d, lr=0.1, method="newton")


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"batch_size": 2}, "method='lm' takes whole full-batch steps"),
        ({"momentum": 0.9}, "momentum is steepest"),
    ],
    ids=["batch_size", "momentum"],
)
def test_train_method_lm_refuses_mini_batches_and_momentum(option, match):
    x, d, _ = teacher_problem(T=4)
    with pytest.raises(ValueError, match=match):
        train(student(), x, d, method="lm", **option)


def test_train_method_lm_refuses_networks_too_large():
    x = torch.rand(3, 64)
    with pytest.raises(ValueError, match=r"more than LM_MAX_PARAMS = 4000.*method='sgd'"):
        train(SigmoidMLP(64, (64,), 1), x, torch.full((3, 1), 0.5), method="lm")


@pytest.mark.parametrize("seed", [1, 2])
def test_estimator_solver_lm_fits_a_sine_to_its_tol(seed):
    demo = sine_demo()
    X, y = demo.x.numpy(), demo.d.numpy()
    reg = SigmoidMLPRegressor((8, 8), solver="lm", tol=0.01, max_epochs=300, seed=seed, device="cpu").fit(
        X, y
    )
    assert reg.result_.stop_reason == "tol", reg.result_
    assert np.abs(reg.predict(X) - y).max() < 0.01, "not within tol in the units of y"
    assert reg.result_.epochs <= 300


def test_estimator_partial_fit_with_lm_goes_on_from_the_fitted_weights():
    demo = sine_demo()
    X, y = demo.x.numpy(), demo.d.numpy()
    reg = SigmoidMLPRegressor((8, 8), solver="lm", max_epochs=5, device="cpu", restarts=1).fit(X, y)
    first = reg.result_
    reg.partial_fit(X, y)
    assert reg.result_.loss_history[0] == pytest.approx(first.final_loss, rel=1e-6)
    assert reg.result_.final_loss < first.final_loss


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"solver": "newton"}, r"solver must be one of \('sgd', .*'br', 'br_cg', 'auto'\)"),
        ({"solver": "lm", "lr": 0.1}, "solver='lm' takes no lr"),
        ({"solver": "br", "batch_size": 8}, "solver='br' takes full-batch steps"),
        ({"solver": "lm", "momentum": 0.5}, "momentum is for solver='sgd'"),
        ({"restarts": 0}, "restarts must be a positive integer"),
    ],
)
def test_estimator_bad_solver_settings_are_named(params, match):
    demo = sine_demo()
    with pytest.raises(ValueError, match=match):
        SigmoidMLPRegressor(device="cpu", **params).fit(demo.x.numpy(), demo.d.numpy())
