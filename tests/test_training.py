"""train: convergence to the uniform bound, the exact steepest-descent step, every stopping rule."""

import dataclasses
import functools
import math

import problems
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLP, TrainResult, sigmoid_mlp_autograd, sse_loss, train

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

# This file's problem: the shared teacher at seed 8, drawn in float32 (steepest descent needs thousands of
# epochs on it), and students drawn in the dtype they train in.
teacher_problem = functools.partial(
    problems.teacher_problem, seed=8, dtype=torch.float32, drawn_in=torch.float32
)
student = functools.partial(problems.student, dtype=torch.float32)


def test_teacher_targets_are_fitted_to_the_uniform_bound():
    x, d, _ = teacher_problem()
    model = student()
    result = train(model, x, d, lr=128 / 64, tol=0.01, max_epochs=10_000)
    assert result.stop_reason == "tol" and result.converged, result
    with torch.no_grad():
        err = (model(x) - d).abs().max().item()
    assert err < 0.01, f"max |y - d| = {err} at the returned weights"
    assert result.max_abs_error == pytest.approx(err)
    assert result.epochs == len(result.loss_history) - 1
    assert result.final_loss == pytest.approx(sse_loss(model(x), d).item())


def test_from_near_the_teacher_to_the_uniform_bound(device):
    x, d, teacher = teacher_problem(device=device)
    model = student(device=device)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for W, W_teacher in zip(model.weights, teacher.weights):
            W.copy_(W_teacher + (torch.rand(W.shape, generator=g) - 0.5).to(device))  # ±0.5 off the minimum
    result = train(model, x, d, lr=1.0, tol=0.01, max_epochs=2000)
    assert result.stop_reason == "tol", result
    assert model.weights[0].device.type == device.type
    assert (model(x) - d).abs().max().item() < 0.01


def test_one_full_batch_step_is_minus_lr_times_the_gradient_of_E():
    x, d, _ = teacher_problem(dtype=torch.float64)
    model = student(dtype=torch.float64)
    before = [W.detach().clone() for W in model.weights]
    leaves = [W.clone().requires_grad_(True) for W in before]
    grads = torch.autograd.grad(sse_loss(sigmoid_mlp_autograd(x, leaves), d), leaves)  # ∇E, independently
    lr = 0.3
    result = train(model, x, d, lr=lr, max_epochs=1)
    assert result.epochs == 1 and result.stop_reason == "max_epochs"
    for l, (W, W0, g) in enumerate(zip(model.weights, before, grads)):
        torch.testing.assert_close(W.detach(), W0 - lr * g, msg=f"W^({l}) is not W - lr * dE/dW")


def test_loss_history_is_E_at_the_start_of_each_epoch():
    x, d, _ = teacher_problem(dtype=torch.float64)
    model = student(dtype=torch.float64)
    seen = []
    result = train(
        model, x, d, lr=0.5, max_epochs=5, callback=lambda k, r: seen.append(sse_loss(model(x), d).item())
    )
    assert len(result.loss_history) == 6
    torch.testing.assert_close(
        torch.tensor(result.loss_history[:5]), torch.tensor(seen), msg="E(w_k) per epoch"
    )
    assert result.final_loss == result.loss_history[-1]


def test_tol_stops_before_updating():
    x, d, _ = teacher_problem()
    model = student()
    first = train(model, x, d, lr=0.5, max_epochs=0)
    assert first.stop_reason == "max_epochs" and first.epochs == 0
    before = [W.detach().clone() for W in model.weights]
    result = train(model, x, d, lr=0.5, tol=first.max_abs_error * 1.001)
    assert result.stop_reason == "tol" and result.epochs == 0
    for W, W0 in zip(model.weights, before):
        assert torch.equal(W, W0), "weights changed although the bound held at the start"


def test_mini_batch_and_online_steps_converge_and_are_reproducible():
    x, d, _ = teacher_problem(T=32)
    results = []
    for _ in range(2):
        model = student()
        results.append(
            (
                train(
                    model,
                    x,
                    d,
                    lr=0.5,
                    max_epochs=40,
                    batch_size=4,
                    generator=torch.Generator().manual_seed(1),
                ),
                model,
            )
        )
    (r1, _m1), (r2, _m2) = results
    assert r1.loss_history == r2.loss_history, "same generator, different runs"
    assert r1.loss_history[-1] < r1.loss_history[0]
    online = train(student(), x, d, lr=0.5, max_epochs=5, batch_size=1, shuffle=False)
    assert online.epochs == 5


def test_mini_batch_of_everything_without_shuffle_equals_full_batch():
    x, d, _ = teacher_problem(dtype=torch.float64)
    a, b = student(dtype=torch.float64), student(dtype=torch.float64)
    train(a, x, d, lr=0.1, max_epochs=3)
    train(b, x, d, lr=0.1, max_epochs=3, batch_size=len(x), shuffle=False)
    for Wa, Wb in zip(a.weights, b.weights):
        torch.testing.assert_close(Wa, Wb, msg="a batch of all points is the full batch")


def test_momentum_matches_torch_sgd():
    x, d, _ = teacher_problem(dtype=torch.float64)
    model, reference = student(dtype=torch.float64), student(dtype=torch.float64)
    train(model, x, d, lr=0.1, momentum=0.9, max_epochs=4)
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(4):
        opt.zero_grad()
        sse_loss(reference(x), d).backward()
        opt.step()
    for W, R in zip(model.weights, reference.weights):
        torch.testing.assert_close(W, R, msg="momentum differs from torch.optim.SGD")


def test_huge_lr_diverges_and_restores_finite_weights():
    x, d, _ = teacher_problem(T=512)  # many points: gradient entries well above 1, so η·g overflows
    model = student()
    result = train(model, x, d, lr=3e38, max_epochs=50)
    assert result.stop_reason == "diverged" and not result.converged
    assert all(torch.isfinite(W).all() for W in model.weights)
    assert math.isfinite(result.final_loss) and math.isfinite(result.max_abs_error)
    assert not math.isfinite(result.loss_history[-1])


def test_early_stopping_restores_the_best_validation_weights():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(40, 1, generator=g, dtype=torch.float64)
    noisy = (
        0.5 + 0.3 * torch.sin(6 * x) + 0.08 * torch.randn(40, 1, generator=g, dtype=torch.float64)
    ).clamp(0.05, 0.95)
    x_fit, d_fit, x_val, d_val = x[:25], noisy[:25], x[25:], noisy[25:]
    model = SigmoidMLP(1, (12,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    snapshots = []

    def remember(k, r):
        snapshots.append([W.detach().clone() for W in model.weights])

    result = train(
        model,
        x_fit,
        d_fit,
        lr=0.8,
        max_epochs=3000,
        validation=(x_val, d_val),
        patience=20,
        callback=remember,
    )
    assert result.stop_reason == "early_stopping"
    best = min(range(len(result.val_history)), key=result.val_history.__getitem__)
    assert result.epochs - best == 20
    for W, S in zip(model.weights, snapshots[best]):
        torch.testing.assert_close(W, S, msg="not the weights of the best validation epoch")
    torch.testing.assert_close(
        sse_loss(model(x_val), d_val).item(),
        result.val_history[best],
        msg="validation SSE at the returned weights",
    )
    assert result.final_loss == pytest.approx(result.loss_history[best])


def test_callback_stops_the_run():
    x, d, _ = teacher_problem()
    result = train(student(), x, d, lr=0.5, callback=lambda k, r: k < 3)
    assert result.stop_reason == "callback" and result.epochs == 3
    assert isinstance(result, TrainResult)


def test_progress_bar(capsys):
    x, d, _ = teacher_problem()
    result = train(student(), x, d, lr=0.5, max_epochs=3, progress=True)
    assert result.epochs == 3
    assert "epoch" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"lr": 0.0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"tol": -1.0}, "tol must be"),
        ({"batch_size": 0}, "batch_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"max_epochs": -1}, "max_epochs"),
        ({"patience": 3}, "patience needs validation"),
        ({"check_every": 3}, "writer= or logdir="),
        ({"d": torch.full((4, 1), 1.0)}, r"strictly inside \(0, 1\)"),
        ({"d": torch.full((4, 1), 0.5).index_fill(0, torch.tensor([1]), float("nan"))}, "d contains NaN"),
        ({"x": torch.full((4, 3), float("inf"))}, "x contains NaN"),
        ({"x": torch.rand(0, 3), "d": torch.rand(0, 1)}, "T = 0"),
        ({"d": torch.rand(5, 1) * 0.5 + 0.2}, "4 test points but d has 5"),
        ({"x": torch.rand(4, 2)}, r"shape \(T, 3\)"),
    ],
)
def test_bad_input_is_named(change, match):
    args = {"x": torch.rand(4, 3), "d": torch.rand(4, 1) * 0.5 + 0.2, "lr": 0.1} | change
    with pytest.raises(ValueError, match=match):
        train(student(), args.pop("x"), args.pop("d"), **args)


def test_wrong_dtype_is_named():
    with pytest.raises(TypeError, match="dtype"):
        train(
            student(),
            torch.rand(4, 3, dtype=torch.float64),
            torch.rand(4, 1, dtype=torch.float64) * 0.5,
            lr=0.1,
        )


def test_ctrl_c_propagates_with_whole_updates_and_a_closed_log(tmp_path):
    x, d, _ = teacher_problem(dtype=torch.float64)
    model, reference = student(dtype=torch.float64), student(dtype=torch.float64)

    def interrupt(k, r):
        if k == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(model, x, d, lr=0.5, callback=interrupt, logdir=tmp_path)
    train(reference, x, d, lr=0.5, max_epochs=3)
    for W, R in zip(model.weights, reference.weights):
        torch.testing.assert_close(W, R, msg="an interrupted run is not at a whole update")
    assert list(tmp_path.iterdir()), "no event file written"


def test_the_run_s_settings_in_groups_are_the_keywords_of_the_same_names(tmp_path):
    """``stop=Stop(...)``, ``logging=Logging(...)``, ``distribution=Distribution(...)`` are the flat
    keywords they group: the same run, bit for bit; given twice, or unknown, a ``TypeError``."""
    from torch_sigmoid_mlp import Distribution, Logging, Stop

    x, d, _ = teacher_problem()
    val = (x[:8], d[:8])
    flat_model, grouped_model = student(seed=3), student(seed=3)
    flat = train(
        flat_model, x, d, lr=0.5, max_epochs=30, tol=1e-6, ftol=0.0, window=5, validation=val,
        patience=4, log_every=3, logdir=str(tmp_path / "a"), chunk_size=16, distributed=False,
    )  # fmt: skip
    grouped = train(
        grouped_model, x, d, lr=0.5,
        stop=Stop(max_epochs=30, tol=1e-6, ftol=0.0, window=5, validation=val, patience=4),
        logging=Logging(log_every=3, logdir=str(tmp_path / "b")),
        distribution=Distribution(chunk_size=16, distributed=False),
    )  # fmt: skip
    assert (grouped.epochs, grouped.stop_reason) == (flat.epochs, flat.stop_reason)
    assert grouped.loss_history == flat.loss_history and grouped.val_history == flat.val_history
    assert all(torch.equal(a, b) for a, b in zip(grouped_model.weights, flat_model.weights))
    # a group and the keywords of another group, or of the same group's other fields, mix
    mixed = train(student(seed=3), x, d, lr=0.5, stop=Stop(max_epochs=30), tol=1e-6, chunk_size=16)
    assert mixed.epochs <= 30
    with pytest.raises(TypeError, match="tol= twice"):
        train(student(seed=3), x, d, lr=0.5, stop=Stop(tol=0.1), tol=0.2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_epoch'"):
        train(student(seed=3), x, d, lr=0.5, max_epoch=3)
    with pytest.raises(TypeError, match="stop must be a Stop"):
        train(student(seed=3), x, d, lr=0.5, stop={"tol": 0.1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        Stop().tol = 0.1
