"""Every solver of ``train`` against an independent reference, and with every handler the loop offers.

The references are written here from SPEC.md ("Beyond steepest descent") on plain autograd in float64:
``torch.func.jacrev`` for ``J``, ``torch.linalg.solve`` for the damped systems, ``torch.optim`` driven
by ``E.backward()`` for RPROP, Adam and L-BFGS. They share nothing with the library but the model's
initial weights.
"""

import copy
import functools
import itertools
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch_sigmoid_mlp import METHODS, SigmoidMLP, choose_method, sigmoid_mlp_autograd, train
from torch_sigmoid_mlp.training.handlers import Handler
from torch_sigmoid_mlp.training.objective import Objective

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

# float64 runs of the same maths in another order agree to about this (a few epochs, small problems).
TOL = {"rtol": 1e-9, "atol": 1e-11}


def problem(T=24, n=2, hidden=(3,), seed=0, noise=0.0):
    """A bias-free teacher's outputs (plus noise) at ``T`` points, and a student of the same shape."""
    g = torch.Generator().manual_seed(seed)
    teacher = SigmoidMLP(n, hidden, dtype=torch.float64, generator=g)
    with torch.no_grad():
        for W in teacher.weights:
            W.mul_(2.0)
        x = torch.rand(T, n, generator=g, dtype=torch.float64) * 2 - 1
        d = teacher(x) + noise * torch.randn(T, 1, generator=g, dtype=torch.float64)
    student = SigmoidMLP(n, hidden, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 100))
    return student, x, d.clamp(0.01, 0.99)


def flat(model) -> torch.Tensor:
    return torch.cat([W.detach().reshape(-1) for W in model.weights])


def shapes_of(model):
    return [W.shape for W in model.weights]


def unflat(w, shapes):
    return [c.reshape(s) for c, s in zip(w.split([math.prod(s) for s in shapes]), shapes)]


def F_of(x, shapes):
    """``y^(L)`` as a function of the flat weights, by plain torch ops: ``(T·m,)``."""
    return lambda w: sigmoid_mlp_autograd(x, unflat(w, shapes)).reshape(-1)


# -- references -----------------------------------------------------------------------------------


class Damping:
    """How μ follows a trial step: Nielsen's rule (1999) or MATLAB trainlm's fixed factors."""

    def __init__(self, rule="trainlm", mu=1e-3):
        self.rule, self.mu, self.nu = rule, mu, 2.0

    def accepted(self, actual, dw, rhs):
        if self.rule == "trainlm":
            self.mu *= 0.1
            return
        predicted = 0.5 * (dw @ (self.mu * dw + rhs)).item()  # the quadratic model's decrease
        rho = actual / predicted
        factor = 1 - (2 * min(rho, 1.0) - 1) ** 3
        # in steps of 2^(1/4), so that rounding in ρ does not carry into μ
        self.mu *= 1 / 3 if factor <= 1 / 3 else max(1 / 3, 2 ** (round(4 * math.log2(factor)) / 4))
        self.nu = 2.0

    def rejected(self):
        if self.rule == "trainlm":
            self.mu *= 10
        else:
            self.mu, self.nu = self.mu * self.nu, 2 * self.nu


def reference_lm(model, x, d, epochs, mu=1e-3, s=None, damping="trainlm"):
    """SPEC's Levenberg–Marquardt with a dense Jacobian from jacrev; returns the flat weights and μ."""
    F = F_of(x, shapes_of(model))
    w = flat(model).clone()
    s = torch.ones(x.shape[0], dtype=w.dtype) if s is None else s
    S = s.repeat_interleave(d.shape[1])
    E = lambda w: 0.5 * (S * (d.reshape(-1) - F(w)).square()).sum()  # noqa: E731
    rule = Damping(damping, mu)
    for _ in range(epochs):
        J = torch.func.jacrev(F)(w)
        e = d.reshape(-1) - F(w)
        while True:
            rhs = J.T @ (S * e)
            damped = J.T @ (S[:, None] * J) + rule.mu * torch.eye(w.numel(), dtype=w.dtype)
            dw = torch.linalg.solve(damped, rhs)
            if E(w + dw) < E(w):
                rule.accepted((E(w) - E(w + dw)).item(), dw, rhs)
                w = w + dw
                break
            rule.rejected()
    return w, rule.mu


def reference_br(model, x, d, epochs, mu=1e-3, damping="trainlm"):
    """Bayesian regularisation written out densely: one α per layer, trainbr's start; w, μ, α_l, β, γ_l."""
    F = F_of(x, shapes_of(model))
    w = flat(model).clone()
    sizes = [math.prod(s) for s in shapes_of(model)]
    layer = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))  # each weight's l
    P, N = w.numel(), d.numel()

    def E_D(w):
        return (d.reshape(-1) - F(w)).square().sum().item()

    def E_W(w):
        return [w[layer == l].square().sum().item() for l in range(len(sizes))]

    gammas = [float(n) for n in sizes]
    alphas = [g / (2 * e) for g, e in zip(gammas, E_W(w))]
    beta = (N - P) / (2 * E_D(w))
    beta = beta if beta > 0 else 1.0
    rule = Damping(damping, mu)

    for _ in range(epochs):
        J = torch.func.jacrev(F)(w)
        e = d.reshape(-1) - F(w)
        A = J.T @ J
        D = torch.tensor(alphas, dtype=w.dtype)[layer]

        def objective(w, beta=beta, D=D):  # F = β·E_D + Σ_l α_l·E_W^(l)
            return beta * E_D(w) + (D * w.square()).sum().item()

        while True:
            rhs = J.T @ e - (D / beta) * w
            dw = torch.linalg.solve(A + torch.diag(D / beta + rule.mu), rhs)
            if objective(w + dw) < objective(w):
                # the system is the quadratic model of F/(2β)
                rule.accepted((objective(w) - objective(w + dw)) / (2 * beta), dw, rhs)
                w = w + dw
                break
            rule.rejected()
        H_inv = torch.linalg.inv(2 * beta * A + 2 * torch.diag(D))
        gammas = [
            n - 2 * a * H_inv.diagonal()[layer == l].sum().item()
            for l, (n, a) in enumerate(zip(sizes, alphas))
        ]
        alphas = [g / (2 * e) for g, e in zip(gammas, E_W(w))]
        beta = (N - sum(gammas)) / (2 * E_D(w))
    return w, rule.mu, alphas, beta, gammas


def reference_optim(model, x, d, epochs, make, closure_steps=False):
    """``epochs`` steps of the torch.optim optimizer ``make(params)`` on autograd's gradient of E."""
    ref = copy.deepcopy(model)
    ref.backend = "autograd"
    params = list(ref.weights)
    opt = make(params)

    def closure():
        opt.zero_grad()
        E = 0.5 * (d - ref(x)).square().sum()
        E.backward()
        return E

    for _ in range(epochs):
        if closure_steps:
            opt.step(closure)
        else:
            closure()
            opt.step()
    return flat(ref)


def reference_adaptive(model, x, d, epochs, lr):
    """The bold driver of SPEC.md, on autograd's gradient."""
    shapes = shapes_of(model)
    F = F_of(x, shapes)
    E = lambda w: 0.5 * (d.reshape(-1) - F(w)).square().sum()  # noqa: E731
    w = flat(model).clone()
    previous, E_previous = w.clone(), math.inf
    for _ in range(epochs):
        E_k = E(w).item()
        if E_k > 1.04 * E_previous:
            w, lr = previous.clone(), lr * 0.7
        else:
            if E_k < E_previous:
                lr *= 1.05
            E_previous = E_k
        previous = w.clone()
        w = w - lr * torch.func.grad(E)(w)
    return w, lr


# -- each solver against its reference --------------------------------------------------------------


def test_lm_equals_the_dense_reference():
    model, x, d = problem()
    w_ref, mu_ref = reference_lm(model, x, d, epochs=4)
    result = train(model, x, d, method="lm", max_epochs=4)
    assert (result.method, result.epochs) == ("lm", 4)
    torch.testing.assert_close(flat(model), w_ref, **TOL, msg="LM weights after 4 epochs")
    assert result.solver_state["mu"] == pytest.approx(mu_ref, rel=1e-12)


def test_lm_with_nielsen_damping_equals_the_dense_reference():
    model, x, d = problem(seed=1)
    w_ref, mu_ref = reference_lm(model, x, d, epochs=4, damping="nielsen")
    result = train(model, x, d, method="lm", max_epochs=4, options={"damping": "nielsen"})
    torch.testing.assert_close(flat(model), w_ref, **TOL, msg="LM (Nielsen's damping) after 4 epochs")
    assert result.solver_state["mu"] == pytest.approx(mu_ref, rel=1e-12)


def test_lm_with_chunks_equals_the_dense_reference_and_never_forms_the_whole_jacobian(monkeypatch):
    from torch_sigmoid_mlp import objective as objective_module

    model, x, d = problem(T=40)
    rows, jacobian = [], objective_module.jacobian
    monkeypatch.setattr(
        objective_module, "jacobian", lambda m, x_c: rows.append(len(x_c)) or jacobian(m, x_c)
    )
    w_ref, _ = reference_lm(model, x, d, epochs=3)
    train(model, x, d, method="lm", max_epochs=3, chunk_size=7)
    torch.testing.assert_close(flat(model), w_ref, **TOL, msg="chunked LM")
    assert rows and max(rows) == 7, rows


def test_br_equals_the_dense_reference_and_reports_gamma_alpha_beta(tmp_path):
    model, x, d = problem(T=30, noise=0.05, seed=3)
    w_ref, mu_ref, alphas, beta, gammas = reference_br(model, x, d, epochs=5)
    result = train(model, x, d, method="br", max_epochs=5, logdir=tmp_path)
    torch.testing.assert_close(flat(model), w_ref, rtol=1e-8, atol=1e-10, msg="BR weights")
    state = result.solver_state
    assert state["mu"] == pytest.approx(mu_ref, rel=1e-10)
    assert state["alphas"] == pytest.approx(alphas, rel=1e-7)
    assert state["gammas"] == pytest.approx(gammas, rel=1e-7)
    assert (state["beta"], state["gamma"]) == pytest.approx((beta, sum(gammas)), rel=1e-7)
    assert 0 < state["gamma"] < sum(W.numel() for W in model.weights), "γ counts fewer parameters than P"
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0}).Reload()
    for name in ("gamma", "alpha", "beta", "mu"):
        assert events.Scalars(f"train/{name}")[-1].value == pytest.approx(state[name], rel=1e-6), name


@pytest.mark.parametrize(
    ("method", "make", "closure"),
    [
        ("rprop", lambda p: torch.optim.Rprop(p, lr=0.1, step_sizes=(1e-6, 50.0)), False),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.01), False),
        (
            "lbfgs",
            lambda p: torch.optim.LBFGS(
                p, lr=1.0, max_iter=1, max_eval=25, history_size=20, line_search_fn="strong_wolfe"
            ),
            True,
        ),
    ],
)
def test_torch_optim_solvers_equal_torch_optim_on_autograd(method, make, closure):
    model, x, d = problem()
    w_ref = reference_optim(model, x, d, 12, make, closure_steps=closure)
    result = train(model, x, d, method=method, max_epochs=12)
    assert (result.method, result.epochs) == (method, 12)
    torch.testing.assert_close(flat(model), w_ref, **TOL, msg=method)


def test_an_optimizer_factory_is_a_solver_too():
    model, x, d = problem()
    make = functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True)
    w_ref = reference_optim(model, x, d, 10, make)
    result = train(model, x, d, method=make, max_epochs=10)
    assert result.method == "SGD"
    torch.testing.assert_close(flat(model), w_ref, **TOL)


def test_adaptive_equals_the_bold_driver_and_takes_rising_steps_back():
    model, x, d = problem()
    # a first η large enough that some steps overshoot and are taken back
    w_ref, lr_ref = reference_adaptive(model, x, d, epochs=40, lr=2.0)
    result = train(model, x, d, method="adaptive", lr=2.0, max_epochs=40)
    torch.testing.assert_close(flat(model), w_ref, **TOL, msg="adaptive weights")
    assert result.solver_state["lr"] == pytest.approx(lr_ref, rel=1e-12)
    history = result.loss_history
    assert any(b > 1.04 * a for a, b in itertools.pairwise(history)), "no step was taken back"


# -- sample weights: integer weights are repeated points ------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_integer_sample_weights_equal_repeated_points(method):
    model, x, d = problem(T=12)
    s = torch.tensor([1, 2, 0, 3] * 3, dtype=torch.float64)
    repeated = s.long()
    x_rep, d_rep = x.repeat_interleave(repeated, dim=0), d.repeat_interleave(repeated, dim=0)
    twin = copy.deepcopy(model)
    lr = {"sgd": 0.05, "adaptive": 0.05}.get(method)
    # "lm_cg" with CG solved to 1e-12: its inexact stop (the default) ends at an iteration that the
    # sums' last bits can move, and the weighted and repeated sums round apart; "br_cg"'s γ solves
    # too (at their default 1e-3 the two runs' γ part by 1e-6 of it, and any change in the order
    # of a sum moves where)
    options = None
    if method in ("lm_cg", "br_cg"):
        options = {"cg_eta": None, "cg_rtol": 1e-12, "cg_max_iter": 5000}
    if method == "br_cg":
        options["trace_rtol"] = 1e-10
    r_weighted = train(model, x, d, sample_weight=s, method=method, lr=lr, max_epochs=6, options=options)
    r_repeated = train(twin, x_rep, d_rep, method=method, lr=lr, max_epochs=6, options=options)
    # and CG's iterates carry that rounding amplified by the condition of JᵀSJ + μI
    # ("br_cg" carries it on through α_l, β, whose γ comes from CG solves too)
    tol = {"lm_cg": {"rtol": 1e-8, "atol": 1e-9}, "br_cg": {"rtol": 1e-6, "atol": 1e-6}}.get(
        method, {"rtol": 1e-10, "atol": 1e-12}
    )
    torch.testing.assert_close(flat(model), flat(twin), **tol, msg=method)
    torch.testing.assert_close(r_weighted.loss_history, r_repeated.loss_history, **tol)
    assert r_weighted.max_abs_error == pytest.approx(r_repeated.max_abs_error, rel=tol["rtol"])


def test_lm_with_sample_weights_equals_the_weighted_dense_reference():
    model, x, d = problem()
    s = torch.linspace(0.2, 2.0, x.shape[0], dtype=torch.float64)
    w_ref, _ = reference_lm(model, x, d, epochs=3, s=s)
    train(model, x, d, method="lm", max_epochs=3, sample_weight=s)
    torch.testing.assert_close(flat(model), w_ref, **TOL)


def test_objective_with_weights_matches_autograd_and_ignores_zero_weight_points_in_the_bound():
    model, x, d = problem(T=10)
    s = torch.tensor([0.5, 0, 1, 2, 0, 1, 1, 3, 0.25, 1], dtype=torch.float64)
    d_far = d.clone()
    d_far[1] = 0.999  # a point with s_t = 0 far off: neither E_s nor the bound may see it
    objective = Objective(model, x, d_far, sample_weight=s, chunk_size=3)
    E, max_error = objective.gradient()
    ref = copy.deepcopy(model)
    ref.backend = "autograd"
    e = d_far - ref(x)
    E_ref = 0.5 * (s[:, None] * e.square()).sum()
    E_ref.backward()
    assert E.item() == pytest.approx(E_ref.item(), rel=1e-12)
    for g, W in zip(objective.gradients(), ref.weights):
        torch.testing.assert_close(g, W.grad, rtol=1e-12, atol=1e-14)
    assert max_error.item() == pytest.approx(e.detach().abs()[s > 0].max().item(), rel=1e-12)
    A, g, _, _ = objective.gauss_newton()
    J = torch.func.jacrev(F_of(x, shapes_of(model)))(flat(model))
    torch.testing.assert_close(A, J.T @ (s[:, None] * J), rtol=1e-10, atol=1e-13, msg="JᵀSJ")
    torch.testing.assert_close(g, J.T @ (s * e.detach().reshape(-1)), rtol=1e-10, atol=1e-13, msg="JᵀSe")


@pytest.mark.parametrize("unit", [1.0, 4e3])
def test_lbfgs_with_weight_decay_minimises_E_plus_half_alpha_w_squared_as_autograd_has_it(unit):
    """``weight_decay = α``: what L-BFGS's closure hands the optimizer is ``E_s/u + (α/2)·Σ w²`` and
    its gradient ``∇E_s/u + α·w``, against autograd's of that objective in float64 (``u``: the weights'
    unit, 1 for ordinary sample weights, ``s̄`` for huge ones); ``evaluate()`` still reports ``E_s``."""
    from torch_sigmoid_mlp.training.solvers import make_step

    model, x, d = problem(T=30, n=2, hidden=(4, 3), noise=0.05)
    s = torch.full((30,), unit * 1e3 if unit != 1.0 else 1.0, dtype=torch.float64)
    alpha = 0.03
    objective = Objective(model, x, d, sample_weight=s if unit != 1.0 else None)
    step = make_step("lbfgs", objective, lr=None, options={"weight_decay": alpha})
    E, _ = step.evaluate()
    F = step._closure()
    ref = copy.deepcopy(model)
    ref.backend = "autograd"
    u = objective.weight_unit()
    E_ref = 0.5 * ((s[:, None] if unit != 1.0 else 1.0) * (d - ref(x)).square()).sum()
    F_ref = E_ref / u + alpha / 2 * sum(W.square().sum() for W in ref.weights)
    F_ref.backward()
    assert E.item() == pytest.approx(E_ref.item(), rel=1e-12)
    assert F.item() == pytest.approx(F_ref.item(), rel=1e-12)
    for W, W_ref in zip(model.weights, ref.weights):
        torch.testing.assert_close(W.grad, W_ref.grad, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="weight_decay"):
        make_step("lbfgs", objective, lr=None, options={"weight_decay": -1.0})


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_lbfgs_takes_the_line_searchs_last_pass_for_the_next_epoch_and_runs_the_same_run(
    monkeypatch, weight_decay
):
    """L-BFGS's line search ends, as a rule, at the weights it evaluated last: the next epoch's
    ``E_s``, largest error and gradient are those, not a second pass over the points. The run is the
    same, number for number, as one that makes the pass again, and makes fewer passes; with a weight
    decay too (its ``α·w`` is in the kept gradient once, not twice)."""
    from torch_sigmoid_mlp.training import solvers

    passes = []
    gradient = Objective.gradient
    monkeypatch.setattr(Objective, "gradient", lambda self: passes.append(1) or gradient(self))
    runs = {}
    for reuse in (True, False):
        model, x, d = problem(T=40, n=2, hidden=(5, 4), noise=0.05)
        if not reuse:  # every epoch evaluates again, as before the reuse
            init = solvers.OptimizerStep.__init__

            def again(self, *args, init=init, **kwargs):
                init(self, *args, **kwargs)
                self._reuse = False

            monkeypatch.setattr(solvers.OptimizerStep, "__init__", again)
        passes.clear()
        options = {"weight_decay": weight_decay}
        result = train(model, x, d, method="lbfgs", max_epochs=60, tol=1e-12, options=options)
        runs[reuse] = (result, flat(model), len(passes))
    (fast, w_fast, n_fast), (slow, w_slow, n_slow) = runs[True], runs[False]
    assert fast.epochs == slow.epochs == 60
    assert fast.loss_history == slow.loss_history and fast.max_abs_error == slow.max_abs_error
    assert torch.equal(w_fast, w_slow)
    assert n_fast <= n_slow - 50, (n_fast, n_slow)  # nearly one pass fewer an epoch


@pytest.mark.parametrize("backend", ["manual", "autograd"])
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_objective_error_at_given_weights_is_the_error_there_and_leaves_the_model_as_it_was(
    backend, chunk_size
):
    """LM's trials are evaluated at views of the trial vector (``Objective.error(weights=...)``), not
    loaded into the model: the same ``(E_s, max |e|)``, bit for bit, as loading them would give (the
    backend's own forward either way), every point at once and in chunks, with the model's weights
    untouched."""
    model, x, d = problem(T=10)
    model.backend = backend
    s = torch.tensor([0.5, 0, 1, 2, 0, 1, 1, 3, 0.25, 1], dtype=torch.float64)
    objective = Objective(model, x, d, sample_weight=s, chunk_size=chunk_size)
    before = flat(model)
    trial = before + 0.1 * torch.randn(
        before.shape, generator=torch.Generator().manual_seed(3), dtype=before.dtype
    )
    parts = [
        part.view(W.shape) for part, W in zip(trial.split([W.numel() for W in model.weights]), model.weights)
    ]
    E, max_error = objective.error(weights=parts)
    assert torch.equal(flat(model), before), "the model's weights changed"
    loaded = copy.deepcopy(model)
    with torch.no_grad():
        for W, part in zip(loaded.weights, parts):
            W.copy_(part)
    E_ref, max_ref = Objective(loaded, x, d, sample_weight=s, chunk_size=chunk_size).error()
    assert E.item() == E_ref.item() and max_error.item() == max_ref.item()
    assert E.item() != objective.error()[0].item()  # and not the error at the model's own weights


@pytest.mark.parametrize("chunk_size", [None, 7])
@pytest.mark.parametrize("weighted", [False, True])
def test_gauss_newton_of_a_network_past_gram_columns_sums_its_upper_blocks_and_mirrors_them(
    chunk_size, weighted
):
    """From ``GRAM_COLUMNS`` weights ``JᵀSJ`` is summed a block row at a time above the diagonal and
    mirrored (``objective.add_gram``): the whole of it against autograd's Jacobian, every point at
    once and in chunks, with and without sample weights, and exactly symmetric off the diagonal
    blocks."""
    from torch_sigmoid_mlp.training.objective import GRAM_COLUMNS

    model, x, d = problem(T=20, n=3, hidden=(20, 18))
    assert sum(W.numel() for W in model.weights) >= GRAM_COLUMNS
    s = torch.linspace(0.25, 2, 20, dtype=torch.float64) if weighted else None
    A, *_ = Objective(model, x, d, sample_weight=s, chunk_size=chunk_size).gauss_newton()
    J = torch.func.jacrev(F_of(x, shapes_of(model)))(flat(model))
    SJ = J if s is None else s[:, None] * J
    torch.testing.assert_close(A, J.T @ SJ, rtol=1e-10, atol=1e-13, msg="JᵀSJ")
    upper = torch.triu(torch.ones_like(A, dtype=torch.bool), diagonal=A.shape[0] // 4 + 1)
    assert torch.equal(A.T[upper], A[upper])  # the far-off blocks are one another's transposes


# -- every solver with every handler ---------------------------------------------------------------


SETTINGS = {"sgd": {"lr": 0.05}, "adaptive": {"lr": 0.05}}


@pytest.mark.parametrize("method", METHODS)
def test_tensorboard_progress_and_callback_with_every_solver(method, tmp_path, capsys):
    model, x, d = problem()
    twin = copy.deepcopy(model)
    seen = []
    result = train(
        model, x, d, method=method, max_epochs=8, logdir=tmp_path, progress=True,
        callback=lambda k, r: seen.append((k, r.method)) or k < 5, **SETTINGS.get(method, {}),
    )  # fmt: skip
    assert result.stop_reason == "callback" and result.epochs == 5, result
    assert seen == [(k, method) for k in range(6)]
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0}).Reload()
    sse = events.Scalars("train/sse")
    assert [e.step for e in sse] == list(range(6))
    torch.testing.assert_close([e.value for e in sse], result.loss_history, rtol=1e-6, atol=0)
    assert "epoch" in capsys.readouterr().err, "no progress bar"
    # logging and progress only read what the epoch computed: the run without them is the same run
    plain = train(twin, x, d, method=method, max_epochs=5, **SETTINGS.get(method, {}))
    assert plain.loss_history == result.loss_history
    assert torch.equal(flat(twin), flat(model))


@pytest.mark.parametrize("method", METHODS)
def test_early_stopping_restores_the_best_validation_weights_with_every_solver(method):
    model, x, d = problem(T=16, noise=0.1, hidden=(6,), seed=4)
    _, x_val, d_val = problem(T=16, noise=0.1, hidden=(6,), seed=4 + 50)

    class Keep(Handler):
        """Keeps the weights at every epoch, to check which were restored."""

        def __init__(self):
            self.weights = []

        def epoch(self, state):
            self.weights.append(flat(state.model).clone())

    keep = Keep()
    result = train(
        model, x, d, method=method, max_epochs=300, validation=(x_val, d_val), patience=3,
        handlers=[keep], **SETTINGS.get(method, {}),
    )  # fmt: skip
    if result.stop_reason != "early_stopping":
        pytest.fail(f"{method} did not stop early: {result.stop_reason} after {result.epochs} epochs")
    best = min(range(len(result.val_history)), key=result.val_history.__getitem__)
    assert result.epochs - best == 3
    assert torch.equal(flat(model), keep.weights[best])


@pytest.mark.parametrize("method", METHODS)
def test_divergence_restores_the_last_finite_weights_with_every_solver(method):
    model, x, d = problem()

    class Overflow(Handler):
        """Puts an infinite weight into w_3, as an overflowing update would."""

        def epoch(self, state):
            if state.epoch == 2:
                self.finite = flat(state.model).clone()  # w_2, the last weights evaluated finite

        def stepped(self, state):
            if state.epoch == 2:
                with torch.no_grad():
                    state.model.weights[0][0, 0] = math.inf

    overflow = Overflow()
    result = train(model, x, d, method=method, max_epochs=10, handlers=[overflow], **SETTINGS.get(method, {}))
    assert (result.stop_reason, result.epochs) == ("diverged", 3)
    assert torch.equal(flat(model), overflow.finite), "w_{k−1}, the last finite weights, are restored"
    assert math.isfinite(result.final_loss)


@pytest.mark.parametrize("method", METHODS)
def test_a_resumed_run_takes_the_same_steps_with_every_solver(method):
    model, x, d = problem()
    whole_model = copy.deepcopy(model)
    settings = {"max_epochs": 9, **SETTINGS.get(method, {})}
    whole = train(whole_model, x, d, method=method, **settings)
    part = train(model, x, d, method=method, **{**settings, "max_epochs": 4})
    rest = train(model, x, d, method=method, resume=part, **settings)
    assert rest.epochs == whole.epochs == 9
    assert rest.loss_history == whole.loss_history, "same machine, same kernels in the same order"
    assert torch.equal(flat(model), flat(whole_model))


def test_mu_max_is_lms_own_stop():
    model, x, d = problem()
    train(model, x, d, method="lm", tol=1e-12, max_epochs=200)  # to a minimum
    result = train(model, x, d, method="lm", max_epochs=50)
    assert result.stop_reason == "mu_max" and result.solver_state["mu"] > 1e10


# -- the "auto" rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("P", "N", "tol", "validation", "batch_size", "expected"),
    [
        (97, 60, True, False, None, "lm"),  # a small network fitted to a bound
        (97, 300, False, True, None, "br"),  # no bound: regularise; held-out points choose the start
        (97, 442, False, False, None, "br"),  # no bound, no held-out points: regularise
        (120, 40, False, False, None, "br"),  # fewer errors than weights: γ ≤ N keeps β > 0
        (5000, 10**5, True, False, None, "lbfgs"),  # too many weights for a dense P×P system
        (97, 60, True, False, 8, "sgd"),  # mini-batches are steepest descent's
    ],
)
def test_auto_rule(P, N, tol, validation, batch_size, expected):
    assert choose_method(P, N, tol=tol, validation=validation, batch_size=batch_size) == expected


def test_auto_rule_is_dense_up_to_auto_dense_params_and_without_a_tol_up_to_auto_dense_work():
    """Dense up to AUTO_DENSE_PARAMS weights, L-BFGS past it. Without a tol, where N ≥ P, dense BR
    also gives way to L-BFGS past AUTO_LBFGS_PARAMS weights and AUTO_DENSE_WORK flops an epoch
    (N·P² + P³), both: bench_robust's largest (P = 752, N = 2000) stays dense, and so do bench_wide's
    P = 840, N = 6000 (4.8e9) and P = 1072, N = 1122 (2.5e9); its P = 1368, N = 3000 (8.2e9) goes to
    L-BFGS. With a tol, LM whatever the epoch costs."""
    from torch_sigmoid_mlp.training.solvers import AUTO_DENSE_PARAMS, AUTO_DENSE_WORK, AUTO_LBFGS_PARAMS

    for tol in (True, False):
        assert choose_method(AUTO_DENSE_PARAMS + 1, 10, tol=tol, validation=False) == "lbfgs"
        assert choose_method(752, 2000, tol=tol, validation=False) == ("lm" if tol else "br")  # 1.6e9
    assert choose_method(1368, 3000, tol=True, validation=False) == "lm"  # 8.2e9 flops an epoch
    assert choose_method(AUTO_DENSE_PARAMS, 10**6, tol=True, validation=False) == "lm"
    assert choose_method(1368, 3000, tol=False, validation=False) == "lbfgs"
    assert choose_method(1368, 3000, tol=False, validation=True) == "lbfgs"
    assert choose_method(840, 6000, tol=False, validation=False) == "br"  # 4.8e9, P ≤ 1000
    assert choose_method(1072, 1122, tol=False, validation=False) == "br"  # 2.5e9
    assert choose_method(AUTO_LBFGS_PARAMS, 10**6, tol=False, validation=False) == "br"
    # the boundary in N: N·P² + P³ = AUTO_DENSE_WORK is dense, one error more is not
    P = AUTO_LBFGS_PARAMS + 1
    N = int((AUTO_DENSE_WORK - P**3) // P**2)
    assert N * P**2 + P**3 <= AUTO_DENSE_WORK < (N + 1) * P**2 + P**3
    assert choose_method(P, N, tol=False, validation=False) == "br"
    assert choose_method(P, N + 1, tol=False, validation=False) == "lbfgs"


@pytest.mark.parametrize(
    ("P", "N", "settings", "expected"),
    [
        (820, 100, {}, "br_cg"),  # bench_wide's sinsq n=20: 20-20-20-1 on 100 points
        (1220, 300, {}, "br_cg"),  # teacher n=40
        (1500, 1499, {}, "br_cg"),  # AUTO_DENSE_PARAMS, one error fewer than weights
        (800, 800, {}, "br"),  # as many errors as weights: γ from probes, dense BR
        (1500, 1500, {}, "lbfgs"),  # the same, past AUTO_DENSE_WORK (6.75e9 flops an epoch)
        (1501, 100, {}, "lbfgs"),  # above AUTO_DENSE_PARAMS
        (300, 256, {}, "br_cg"),  # N·P² + P³ = 5.004e7 > CHEAP_START
        (300, 255, {}, "br"),  # 4.995e7 ≤ CHEAP_START: a cheap dense epoch, 3 starts of "br"
        (120, 40, {}, "br"),  # cheap
        (820, 100, {"tol": True}, "lm"),
        (820, 100, {"validation": True}, "br"),
        (820, 100, {"distributed": True}, "br"),  # the probes on several processes
        (820, 100, {"rows": 900}, "br"),  # weights below 1: 900 rows, the probes
        (820, 900, {"rows": 100}, "br"),  # integer weights: the repeated points' N decides
        (820, 100, {"rows": 80}, "br_cg"),  # weights above 1, still fewer errors than weights
        (820, 100, {"batch_size": 10}, "sgd"),
    ],
)
def test_auto_rule_takes_br_cg_where_it_has_gamma_exactly_and_a_dense_epoch_is_dear(P, N, settings, expected):
    """``"br_cg"`` exactly where choose_method's rule says: no tol, no held-out points, one process,
    N and the rows R fewer than P ≤ AUTO_DENSE_PARAMS, N·P² + P³ > CHEAP_START; the other solvers
    elsewhere."""
    settings = {"tol": False, "validation": False, **settings}
    assert choose_method(P, N, **settings) == expected


def test_auto_restarts_give_br_cg_three_starts_in_the_data_space():
    from torch_sigmoid_mlp.training.solvers import choose_restarts

    assert choose_restarts("br_cg", 820, 100, tol=False) == 3
    assert choose_restarts("br_cg", 820, 100, tol=True) == 1
    assert choose_restarts("br_cg", 820, 100, tol=False, distributed=True) == 1
    assert choose_restarts("br_cg", 820, 100, tol=False, rows=900) == 1
    assert choose_restarts("br_cg", 820, 900, tol=False) == 1  # the probes
    assert choose_restarts("br_cg", 3000, 2500, tol=False) == 1  # R > DATA_SPACE_ROWS
    assert choose_restarts("br_cg", 3000, 2000, tol=False) == 3
    assert choose_restarts("lm_cg", 820, 100, tol=False) == 1


def test_train_method_auto_reports_the_solver_it_chose():
    model, x, d = problem()
    assert train(model, x, d, method="auto", tol=0.05).method == "lm"
    big = SigmoidMLP(2, (40, 40), dtype=torch.float64)
    assert train(big, x, d, method="auto", max_epochs=2).method == "lbfgs"
    _, x, d = problem(T=50)
    wide = SigmoidMLP(2, (20, 20), dtype=torch.float64)  # P = 460 > N = 50, N·P² + P³ = 1.1e8
    assert train(wide, x, d, method="auto", max_epochs=2).method == "br_cg"


# -- parametrized and wrapped models ---------------------------------------------------------------


def test_parametrized_weights_are_refused_with_what_to_do():
    model, x, d = problem()
    torch.nn.utils.parametrizations.weight_norm(model.weights, "0")
    with pytest.raises(ValueError, match=r"parametrized.*remove_parametrizations"):
        train(model, x, d, lr=0.1, max_epochs=2)


def test_an_lr_beyond_the_dtype_is_named_before_any_step():
    model, x, d = problem()
    with pytest.raises(ValueError, match=r"lr=1e\+300 overflows the weights' dtype torch.float32"):
        train(model.float(), x.float(), d.float(), lr=1e300, max_epochs=2)


def test_a_distributed_data_parallel_wrapper_is_trained_through_its_module(tmp_path):
    """``train(DistributedDataParallel(m))``: the loop does data parallelism itself, on the module."""
    import torch.distributed as dist

    model, x, d = problem()
    twin = copy.deepcopy(model)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        result = train(wrapped, x, d, method="lm", max_epochs=3)
    finally:
        del wrapped
        dist.destroy_process_group()
    reference = train(twin, x, d, method="lm", max_epochs=3)
    assert result.loss_history == pytest.approx(reference.loss_history, rel=1e-12)
    torch.testing.assert_close(flat(model), flat(twin), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", METHODS)
def test_a_checkpoint_through_a_model_file_resumes_bit_for_bit_with_every_solver(method, tmp_path):
    """What the command line's --checkpoint-every and --resume do: save, load, warm_start on."""
    import numpy as np

    from torch_sigmoid_mlp import SigmoidMLPRegressor

    X = np.linspace(0.0, 2.0, 30).reshape(-1, 1)
    y = 3.0 + 2.0 * np.tanh(X[:, 0])
    settings = {"solver": method, "device": "cpu", "dtype": "float64", "restarts": 1}
    whole = SigmoidMLPRegressor(max_epochs=12, **settings).fit(X, y)
    SigmoidMLPRegressor(max_epochs=5, **settings).fit(X, y).save(tmp_path / "m.pt")
    again = SigmoidMLPRegressor.load(tmp_path / "m.pt").set_params(max_epochs=12, warm_start=True).fit(X, y)
    assert again.result_.epochs == whole.result_.epochs == 12
    assert all(torch.equal(a, b) for a, b in zip(again.model_.weights, whole.model_.weights))


@pytest.mark.parametrize("batch_size", [None, 8])
def test_momentum_is_torch_sgd_and_its_velocity_resumes(batch_size):
    model, x, d = problem()
    whole_model = copy.deepcopy(model)
    settings = {"lr": 0.05, "momentum": 0.9, "batch_size": batch_size, "shuffle": False}
    whole = train(whole_model, x, d, max_epochs=8, **settings)
    part = train(model, x, d, max_epochs=3, **settings)
    assert "momentum_buffer" in str(part.solver_state), "the velocity is part of the saved state"
    train(model, x, d, max_epochs=8, resume=part, **settings)
    assert torch.equal(flat(model), flat(whole_model))
    assert whole.method == "sgd"
