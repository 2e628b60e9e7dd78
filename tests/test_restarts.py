"""restarts=k in train and the estimator: seeded starts, the best kept, every start recorded."""

import dataclasses
import functools

import numpy as np
import problems
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLP, SigmoidMLPRegressor, TrainResult, sse_loss, train

# test_training.py's problem: the shared teacher at seed 8 in float32, students drawn in their dtype.
teacher_problem = functools.partial(
    problems.teacher_problem, seed=8, dtype=torch.float32, drawn_in=torch.float32
)
student = functools.partial(problems.student, dtype=torch.float32)


def symmetric_student():
    """All weights zero: the neurons of a layer stay identical under any step, a start that cannot fit."""
    model = student()
    with torch.no_grad():
        for W in model.weights:
            W.zero_()
    return model


def assert_model_holds(result, model, x, d):
    with torch.no_grad():
        y = model(x)
    assert result.max_abs_error == pytest.approx((y - d).abs().max().item(), rel=1e-6)
    assert result.final_loss == pytest.approx(sse_loss(y, d).item(), rel=1e-6)


def same(a: TrainResult, b: TrainResult) -> bool:
    """The same run: equal in everything but the wall time."""
    return dataclasses.replace(a, seconds=0.0) == dataclasses.replace(b, seconds=0.0)


def close(a: TrainResult, b: TrainResult) -> bool:
    """The same run to float32 rounding: the same epochs and stop, ``E`` within 1e-3 at every epoch."""
    return (a.epochs, a.stop_reason, a.start) == (b.epochs, b.stop_reason, b.start) and all(
        abs(p - q) <= 1e-3 * max(abs(p), abs(q)) for p, q in zip(a.loss_history, b.loss_history)
    )


def rank(r: TrainResult):
    """train's documented choice: reached tol; did not collapse; lowest held-out SSE, highest
    evidence, else lowest E; then the lowest largest error."""
    if r.val_history:
        merit = min(r.val_history)
    elif r.evidence is not None:
        merit = -r.evidence
    else:
        merit = r.final_loss
    return (not r.converged, r.r2 is not None and r.r2 < 0.5, merit, r.max_abs_error)


def test_a_stuck_first_start_is_replaced_by_the_best_later_one():
    x, d, _ = teacher_problem()
    stuck = train(symmetric_student(), x, d, method="lm", tol=0.01, max_epochs=60)
    assert not stuck.converged and stuck.max_abs_error > 0.05, "start 0 should not fit"

    model = symmetric_student()
    result = train(
        model,
        x,
        d,
        method="lm",
        tol=0.01,
        max_epochs=60,
        restarts=3,
        generator=torch.Generator().manual_seed(0),
    )
    # with a tol, the first start that reaches it ends the fit
    assert 2 <= len(result.restarts) <= 3
    assert same(result.restarts[0], stuck), "start 0 trains the weights it was given"
    assert result.converged and result.start >= 1
    # start 0 missed; the others ran together until the first reached it, which ended the rest
    assert not result.restarts[0].converged and result.restarts[result.start].converged
    assert all(r.converged or r.stop_reason == "member_reached_tol" for r in result.restarts[1:])
    best = result.restarts[result.start]
    assert (result.epochs, result.max_abs_error, result.loss_history) == (
        best.epochs,
        best.max_abs_error,
        best.loss_history,
    )
    assert all(r.restarts == [] for r in result.restarts)
    # start 0 ran alone; the others as one population, whose members each report the run's time
    assert result.seconds >= result.restarts[0].seconds + max(r.seconds for r in result.restarts[1:])
    assert_model_holds(result, model, x, d)

    # start i ≥ 1 is the student drawn with seed 0 + i, trained alone; to the rounding of the
    # population's batched products, which depends on the CPU's vector width
    alone = student(seed=result.start)
    again = train(alone, x, d, method="lm", tol=0.01, max_epochs=60)
    assert close(again, best)
    for W, A in zip(model.weights, alone.weights):
        torch.testing.assert_close(W, A, rtol=1e-3, atol=1e-4, msg="model does not hold the best start")


def test_start_i_draws_with_generator_seed_plus_i():
    x, d, _ = teacher_problem(dtype=torch.float64)
    model = student(dtype=torch.float64)
    result = train(model, x, d, lr=0.5, max_epochs=0, restarts=4, generator=torch.Generator().manual_seed(10))
    for i, r in enumerate(result.restarts[1:], start=1):
        drawn = SigmoidMLP(3, generator=torch.Generator().manual_seed(10 + i), dtype=torch.float64)
        # train sums E over the points in its own order (vector width and blocking are the CPU's):
        # equal to sse_loss up to float64 rounding, while another seed's E differs in the first digits
        assert r.loss_history == [pytest.approx(sse_loss(drawn(x), d).item(), rel=1e-12)], (
            f"start {i} is not seed 10 + {i}"
        )
    # no start converges (no tol): the lowest largest error wins
    assert result.start == min(range(4), key=lambda i: result.restarts[i].max_abs_error)
    assert_model_holds(result, model, x, d)


def test_without_a_generator_the_starts_follow_torch_manual_seed():
    x, d, _ = teacher_problem()
    histories = []
    for _ in range(2):
        torch.manual_seed(123)
        result = train(student(), x, d, lr=0.5, max_epochs=3, restarts=3)
        histories.append([r.loss_history for r in result.restarts])
    assert histories[0] == histories[1]
    assert histories[0][1] != histories[0][2], "starts 1 and 2 drew the same weights"


def test_sgd_restarts_with_mini_batches_record_every_start():
    x, d, _ = teacher_problem(T=32)
    result = train(
        student(),
        x,
        d,
        lr=0.5,
        max_epochs=5,
        batch_size=8,
        restarts=2,
        generator=torch.Generator().manual_seed(1),
    )
    assert [r.epochs for r in result.restarts] == [5, 5]
    assert [r.stop_reason for r in result.restarts] == ["max_epochs", "max_epochs"]
    assert result.start == min(range(2), key=lambda i: result.restarts[i].max_abs_error)


def test_one_start_records_none():
    x, d, _ = teacher_problem()
    result = train(student(), x, d, lr=0.5, max_epochs=2)
    assert (result.restarts, result.start) == ([], 0)


def test_each_start_logs_to_its_own_directory(tmp_path):
    x, d, _ = teacher_problem()
    train(student(), x, d, lr=0.5, max_epochs=2, restarts=3, logdir=tmp_path)
    # start 0 logs where a single start would; the later ones in folders of their own
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[-2:] == ["start1", "start2"] and names[0].startswith("events.out.tfevents."), names
    assert all(list((tmp_path / name).iterdir()) for name in ("start1", "start2"))


@pytest.mark.parametrize("restarts", [0, -1, 1.5, True])
def test_bad_restarts_are_named(restarts):
    x, d, _ = teacher_problem(T=4)
    with pytest.raises(ValueError, match="restarts must be a positive integer"):
        train(student(), x, d, lr=0.5, restarts=restarts)


def test_restarts_refuse_a_shared_writer(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    x, d, _ = teacher_problem(T=4)
    with SummaryWriter(tmp_path) as writer, pytest.raises(ValueError, match="pass logdir="):
        train(student(), x, d, lr=0.5, restarts=2, writer=writer)


def test_estimator_restarts_are_seed_plus_i_and_survive_save_and_load(tmp_path):
    X = np.linspace(0.0, 2.0, 30).reshape(-1, 1)
    y = np.sin(3 * X[:, 0])
    # no tol: every start runs (to max_epochs or convergence), the lowest E kept
    settings = {"hidden": (8, 8), "solver": "lm", "max_epochs": 40, "device": "cpu"}
    reg = SigmoidMLPRegressor(**settings, restarts=3, seed=4).fit(X, y)
    starts = reg.result_.restarts
    assert len(starts) == 3 and reg.result_.start == min(range(3), key=lambda i: rank(starts[i]))
    for i in (1, 2):
        alone = SigmoidMLPRegressor(**settings, restarts=1, seed=4 + i).fit(X, y)
        # the starts ran as one population: the same run, its batched products rounding apart
        assert close(alone.result_, starts[i]), f"start {i} is not the fit with seed 4 + {i}"
    # the model holds the best start: its error in the units of y is the scaled one over the scale
    scale = 0.8 / (y.max() - y.min())
    assert np.abs(reg.predict(X) - y).max() == pytest.approx(reg.result_.max_abs_error / scale, rel=1e-4)

    reg.save(tmp_path / "m.pt")
    again = SigmoidMLPRegressor.load(tmp_path / "m.pt")
    assert again.result_.restarts == starts and again.result_.start == reg.result_.start
    assert again.get_params() == reg.get_params()
