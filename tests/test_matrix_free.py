"""Matrix-free Levenberg–Marquardt (training/matrix_free.py): products against the dense Jacobian,
one step against the dense LM step, training to known answers, and its place in train, the
estimator and the command line."""

import copy
import functools
import os
import shutil
import subprocess

import numpy as np
import problems
import pytest
import torch

from torch_sigmoid_mlp import LM_MAX_PARAMS, SigmoidMLP, SigmoidMLPRegressor, jacobian, train
from torch_sigmoid_mlp.estimator.params import default_max_epochs
from torch_sigmoid_mlp.training.matrix_free import GaussNewtonProducts, MatrixFreeLM
from torch_sigmoid_mlp.training.objective import Objective
from torch_sigmoid_mlp.training.population import batched
from torch_sigmoid_mlp.training.solvers import CONVERGENCE, METHODS, LevenbergMarquardt, make_step

teacher_problem = functools.partial(problems.teacher_problem, seed=1)

#: (sizes, T): one output and one hidden layer, three outputs and three hidden layers, two and two
SHAPES = [((2, 3, 1), 23), ((3, 5, 4, 6, 3), 37), ((4, 6, 5, 2), 30)]


@pytest.fixture(autouse=True)
def one_thread():
    """CG runs thousands of small products: on a loaded two-core machine two threads made a 3 s fit
    take 150 s (intra-op threads waiting on each other), so these tests run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def flat(model) -> torch.Tensor:
    return torch.cat([W.detach().reshape(-1) for W in model.weights])


def weighted_problem(sizes, T, seed=0):
    model, x, d = problems.random_problem(sizes, T, seed=seed, targets=(0.1, 0.9))
    s = (
        torch.rand(T, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64) * 2
    )  # s_t ∈ [0, 2)
    s[::5] = 0.0  # points that do not count
    return model, x, d, s


def dense(model, x, d, s):
    """``J``, ``JᵀSJ`` and ``JᵀSe`` from the dense Jacobian of core.derivatives, in float64."""
    J = jacobian(model, x)  # (T·m, P)
    rows = s.repeat_interleave(d.shape[1])  # s_t for row t·m + i, (T·m,)
    with torch.no_grad():
        e = (d - model(x)).reshape(-1)
    return J, J.T @ (J * rows[:, None]), J.T @ (rows * e)


@pytest.mark.floats
@pytest.mark.parametrize(("sizes", "T"), SHAPES)
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_products_equal_the_dense_jacobians(sizes, T, chunk_size):
    model, x, d, s = weighted_problem(sizes, T)
    J, A, g = dense(model, x, d, s)
    products = GaussNewtonProducts(Objective(model, x, d, sample_weight=s, chunk_size=chunk_size))
    E, max_error = products.forward()
    with torch.no_grad():
        e = d - model(x)
    assert E.item() == pytest.approx(0.5 * (s[:, None] * e.square()).sum().item(), rel=1e-13)
    assert max_error.item() == pytest.approx(e[s > 0].abs().max().item(), rel=1e-13)
    V = torch.randn(J.shape[1], 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    U = torch.randn(J.shape[0], 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    close = functools.partial(torch.testing.assert_close, rtol=1e-12, atol=1e-14)
    close(products.jacobian_vector(V), J @ V, msg="J v by forward mode")
    close(products.jacobian_vector(V[:, 0]), J @ V[:, 0], msg="J v, one vector")
    close(products.jacobian_transpose_vector(U), J.T @ U, msg="Jᵀ u by the deltas of u")
    close(products(V), A @ V, msg="JᵀSJ V")
    close(products(V[:, 1]), A @ V[:, 1], msg="JᵀSJ v, one vector")
    rhs, diagonal = products.rhs_and_diagonal()
    close(rhs, g, msg="JᵀSe")
    close(diagonal, A.diagonal(), msg="diag(JᵀSJ), the per-point squared gradients")


@pytest.mark.floats
def test_products_keep_the_weights_their_signals_are_of():
    model, x, d, s = weighted_problem((2, 3, 1), 20)
    _, A, _ = dense(model, x, d, s)
    products = GaussNewtonProducts(Objective(model, x, d, sample_weight=s))
    products.forward()
    assert products.current()
    with torch.no_grad():
        model.weights[0].add_(0.5)  # a trial step loaded into the model
    assert not products.current()
    v = torch.ones(A.shape[0], dtype=torch.float64)
    torch.testing.assert_close(products(v), A @ v, rtol=1e-12, atol=1e-14, msg="products at w_k still")


def one_step(step, model):
    w0 = flat(model).clone()
    step.evaluate()
    step.step()
    return flat(model) - w0


@pytest.mark.floats
@pytest.mark.parametrize(("sizes", "T"), SHAPES)
@pytest.mark.parametrize("chunk_size", [None, 6])
@pytest.mark.parametrize("factor", [1e-6, 1e-3, 1.0])
def test_one_step_equals_the_dense_lm_step(sizes, T, chunk_size, factor):
    """Same w, same μ ≥ 1e-6·‖JᵀSJ‖: CG solved to rtol 1e-12 gives the Cholesky step to 1e-8."""
    model, x, d, s = weighted_problem(sizes, T)
    twin = copy.deepcopy(model)
    _, A, _ = dense(model, x, d, s)
    mu = factor * torch.linalg.matrix_norm(A, 2).item()
    lm = LevenbergMarquardt(Objective(model, x, d, sample_weight=s), mu=mu)
    cg = MatrixFreeLM(
        Objective(twin, x, d, sample_weight=s, chunk_size=chunk_size),
        mu=mu, cg_eta=None, cg_rtol=1e-12, cg_max_iter=10_000,
    )  # fmt: skip
    moved = 0.0  # Σ‖Δw‖ so far: steps equal to 1e-8 relative leave w equal to 1e-8 of it
    for epoch in range(3):  # the first step from zero, the next warm-started from the last where R ≥ P
        expected, got = one_step(lm, model), one_step(cg, twin)
        assert cg.mu == lm.mu, f"the same accept/reject decisions, epoch {epoch}"
        relative = ((got - expected).norm() / expected.norm()).item()
        assert relative < 1e-8, f"epoch {epoch}: Δw differs by {relative:.2e} relative"
        moved += expected.norm().item()
        # not 1e-8 of each weight alone: a weight near 0 after a step of norm ~6 (AMD EPYC: 7.5e-11
        # apart at |w| ≈ 6e-3, steps 1e-11 apart relative) holds the steps' rounding, not its own
        torch.testing.assert_close(flat(twin), flat(model), rtol=1e-8, atol=1e-8 * moved)


@pytest.mark.floats
@pytest.mark.parametrize("warm", [None, True])
def test_fewer_rows_than_weights_carry_no_null_space_step(warm):
    """``R = 30 < P = 64``: a last step ``v`` in the null space of ``JᵀSJ`` (with ``μ`` small) would stay in
    a CG solve started from it — its residual ``μ·u·v`` is below any stop — and be taken again every
    epoch. The epoch's first ``μ`` starts from zero there (``cg_warm_epochs=None``): its step is the same
    whatever the last one was. With ``cg_warm_epochs=True`` (the rule before) it carries ``v`` whole."""
    model, x, d = problems.random_problem((4, 6, 5, 2), 30, seed=3, targets=(0.1, 0.9))
    v = torch.linalg.svd(jacobian(model, x))[2][-1]  # a unit vector with J v = 0 (64 − 60 of them)

    def first_solve(last):
        step = MatrixFreeLM(Objective(copy.deepcopy(model), x, d), mu=1e-10, cg_warm_epochs=warm)
        step.evaluate()
        A, g, _, _ = step._gauss_newton()
        step._accepted_dw = last  # as if the last epoch had stepped along it
        M, rhs = step._system(A, g, flat(model))
        return step._solve(M, rhs)  # the epoch's first μ

    with_v, without = first_solve(v.clone()), first_solve(None)
    if warm:
        assert torch.dot(v, with_v - without).item() == pytest.approx(1.0, abs=1e-6)
    else:
        assert torch.equal(with_v, without)
    # where R ≥ P the last step stays the warm start
    wide = MatrixFreeLM(Objective(*problems.random_problem((2, 3, 1), 23, seed=3)))
    wide._accepted_dw = torch.ones(wide.products.P, dtype=torch.float64)
    assert wide._warm_start(False) is wide._accepted_dw


@pytest.mark.floats
def test_nielsens_rule_sees_the_same_predicted_decrease():
    """``damping="nielsen"`` reads ρ, whose predicted decrease comes from CG's q: the same μ follows."""
    model, x, d, s = weighted_problem((3, 5, 4, 6, 3), 37)
    twin = copy.deepcopy(model)
    lm = LevenbergMarquardt(Objective(model, x, d, sample_weight=s), damping="nielsen", mu=0.1)
    cg = MatrixFreeLM(
        Objective(twin, x, d, sample_weight=s), damping="nielsen", mu=0.1, cg_eta=None, cg_rtol=1e-12,
        cg_max_iter=10_000,
    )  # fmt: skip
    for _ in range(3):
        one_step(lm, model), one_step(cg, twin)
        assert cg.mu == pytest.approx(lm.mu, rel=1e-12)
    torch.testing.assert_close(flat(twin), flat(model), rtol=1e-7, atol=1e-10)


@pytest.mark.floats
def test_train_fits_a_teacher_to_its_exact_minimum():
    x, d, _ = teacher_problem()
    model = problems.student(seed=1)  # dense LM reaches E ≈ 5e-14 from here in 38 epochs
    result = train(model, x, d, method="lm_cg", max_epochs=400, tol=1e-7)
    assert result.method == "lm_cg" and result.stop_reason == "tol", result
    assert result.final_loss < 1e-10
    assert all(b < a for a, b in zip(result.loss_history, result.loss_history[1:])), "only lower E accepted"
    # with the forcing sequence, in fewer epochs
    forced = train(problems.student(seed=1), x, d, method="lm_cg", max_epochs=100, tol=1e-7,
                   options={"cg_forcing": "sqrt"})  # fmt: skip
    assert forced.stop_reason == "tol" and forced.epochs < result.epochs, (forced.epochs, result.epochs)


@pytest.mark.floats
def test_train_reaches_the_minimum_lm_reaches_from_the_same_start():
    x, d, _ = problems.teacher_problem(T=40, seed=2)
    noise = torch.randn(d.shape, generator=torch.Generator().manual_seed(5), dtype=d.dtype)
    d = (d + 0.02 * noise).clamp(0.01, 0.99)  # a noisy teacher: a minimum with E > 0
    model = problems.student(sizes=(3, 2, 1), seed=2)
    twin = copy.deepcopy(model)
    dense_result = train(model, x, d, method="lm", max_epochs=500, ftol=1e-12, window=10)
    # with the forcing sequence, whose steps near the minimum are close to the exact ones (with the
    # default fixed eta this start ends in another minimum, of E 0.0099 against 0.0114)
    cg_result = train(
        twin, x, d, method="lm_cg", max_epochs=500, ftol=1e-12, window=10, options={"cg_forcing": "sqrt"}
    )
    assert dense_result.stop_reason == cg_result.stop_reason == "converged"
    assert cg_result.final_loss == pytest.approx(dense_result.final_loss, rel=1e-10)
    torch.testing.assert_close(flat(twin), flat(model), rtol=1e-5, atol=1e-5, msg="the same minimum")


@pytest.mark.floats
def test_float32_model_trains():
    x, d, _ = teacher_problem(dtype=torch.float32)
    model = problems.student(seed=1, dtype=torch.float32, drawn_in=torch.float64)
    result = train(model, x, d, method="lm_cg", max_epochs=100, tol=1e-3)
    assert result.stop_reason == "tol", result
    assert model.weights[0].dtype == torch.float32


@pytest.mark.floats
def test_chunked_and_weighted_training_equals_unchunked():
    model, x, d, s = weighted_problem((3, 5, 4, 6, 3), 37)
    twin = copy.deepcopy(model)
    # CG solved to 1e-12: an inexact stop's iteration count could differ with the sums' rounding
    exact = {"cg_eta": None, "cg_rtol": 1e-12, "cg_max_iter": 5000}
    a = train(model, x, d, sample_weight=s, method="lm_cg", max_epochs=8, options=exact)
    b = train(twin, x, d, sample_weight=s, method="lm_cg", max_epochs=8, chunk_size=5, options=exact)
    torch.testing.assert_close(b.loss_history, a.loss_history, rtol=1e-9, atol=0)
    torch.testing.assert_close(flat(twin), flat(model), rtol=1e-7, atol=1e-9)


def test_an_epoch_reuses_the_accepted_trial_forward():
    """Each epoch's products come from the signals of the trial forward that was accepted."""
    x, d, _ = teacher_problem()
    model = problems.student()
    step = make_step("lm_cg", Objective(model, x, d), lr=None)
    assert isinstance(step, MatrixFreeLM)
    calls = []
    forward = GaussNewtonProducts.forward

    def counted(self):
        calls.append(self)
        return forward(self)

    GaussNewtonProducts.forward = counted
    try:
        step.evaluate()
        step.step()
        first = len(calls)  # the evaluation at w_0 and one trial per μ tried
        step.evaluate()
        step.step()
    finally:
        GaussNewtonProducts.forward = forward
    assert calls[0] is step.products and all(c is step._trial for c in calls[1:])
    assert len(calls) - first >= 1, "the second epoch took no new forward at w_1"
    assert step.cg_iterations > 0 and step.metrics()["cg_iterations"] == step.cg_iterations


def test_options_are_checked():
    x, d, _ = teacher_problem(T=8)
    for option, match in [
        ({"cg_eta": 1.5}, "cg_eta"),
        ({"cg_max_iter": 0}, "cg_max_iter"),
        ({"cg_rtol": -1.0}, "cg_rtol"),
        ({"cg_warm": "hot"}, "cg_warm"),
        ({"cg_forcing": "cubic"}, "cg_forcing"),
        ({"cg_warm_epochs": 1}, "cg_warm_epochs"),
        ({"mu": -1.0}, "mu"),
    ]:
        with pytest.raises(ValueError, match=match):
            train(problems.student(), x, d, method="lm_cg", max_epochs=1, options=option)
    with pytest.raises(ValueError, match="batch_size"):
        train(problems.student(), x, d, method="lm_cg", max_epochs=1, batch_size=4)


def test_wired_in_beside_lm():
    assert "lm_cg" in METHODS and CONVERGENCE["lm_cg"] == CONVERGENCE["lm"]
    assert not batched("lm_cg"), "a population's members run one after another"
    # its epoch costs N·P·products, not N·P² + P³: more epochs than dense LM where P is large
    assert default_max_epochs("lm_cg", 2000, 2000) > default_max_epochs("lm", 2000, 2000)


def test_no_dense_size_limit():
    sizes = (70, 60, 1)  # P = 4260 > LM_MAX_PARAMS
    model = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], dtype=torch.float64)
    x = torch.rand(5, sizes[0], dtype=torch.float64)
    d = torch.full((5, 1), 0.5, dtype=torch.float64)
    assert sum(W.numel() for W in model.weights) > LM_MAX_PARAMS
    with pytest.raises(ValueError, match="LM_MAX_PARAMS"):
        train(model, x, d, method="lm", max_epochs=1)
    result = train(model, x, d, method="lm_cg", max_epochs=2)
    assert result.epochs == 2 and result.final_loss < result.loss_history[0]


@pytest.mark.floats
def test_a_population_trains_its_members_one_after_another():
    x, d, _ = teacher_problem(T=30)
    population = SigmoidMLP(3, (3, 3), 1, dtype=torch.float64, population=2,
                            generator=torch.Generator().manual_seed(4))  # fmt: skip
    alone = [population.member(k) for k in range(2)]
    result = train(population, x, d, method="lm_cg", max_epochs=15)
    assert len(result.members) == 2
    for k, single in enumerate(alone):
        expected = train(single, x, d, method="lm_cg", max_epochs=15)
        assert result.members[k].loss_history == expected.loss_history
        assert torch.equal(torch.cat([W[k].reshape(-1) for W in population.weights]), flat(single))


@pytest.mark.floats
def test_the_estimator_fits_with_lm_cg():
    g = np.random.default_rng(0)
    X = g.uniform(-1, 1, size=(80, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    est = SigmoidMLPRegressor(hidden=(6, 6), solver="lm_cg", tol=0.05, restarts=1, seed=0).fit(X, y)
    assert est.result_.method == "lm_cg" and est.result_.stop_reason == "tol", est.result_
    assert np.abs(est.predict(X) - y).max() < 0.05 + 1e-9
    with pytest.raises(ValueError, match="lr"):
        SigmoidMLPRegressor(solver="lm_cg", lr=0.1).fit(X, y)


def test_the_command_line_takes_solver_lm_cg(tmp_path):
    entry_point = shutil.which("torch-sigmoid-mlp")
    assert entry_point is not None, "torch-sigmoid-mlp is not on PATH: pip install -e . first"
    x = np.linspace(-2.0, 2.0, 30)
    lines = ["x,y"] + [f"{a!r},{b!r}" for a, b in zip(x.tolist(), np.cos(1.5 * x).tolist())]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_root(), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(
        [entry_point, "fit", "c.csv", "--solver", "lm_cg", "--hidden", "6", "6", "--tol", "0.02"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lm_cg" in run.stdout, run.stdout
    assert "converged: |F(x_t) - d_t| < 0.02 at every test point" in run.stdout, run.stdout


def _root() -> str:
    """This checkout, so that the entry point runs the package under test."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.floats
def test_products_and_a_step_on_the_device(device):
    model, x, d, s = weighted_problem((3, 5, 4, 6, 3), 37)
    _, A, g = dense(model, x, d, s)
    model, x, d, s = model.to(device), x.to(device), d.to(device), s.to(device)
    products = GaussNewtonProducts(Objective(model, x, d, sample_weight=s, chunk_size=10))
    products.forward()
    V = torch.randn(A.shape[0], 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(products(V.to(device)).cpu(), A @ V, rtol=1e-10, atol=1e-13)
    rhs, diagonal = products.rhs_and_diagonal()
    assert rhs.device.type == diagonal.device.type == device.type
    torch.testing.assert_close(rhs.cpu(), g, rtol=1e-10, atol=1e-13)
    result = train(model, x, d, sample_weight=s, method="lm_cg", max_epochs=3)
    assert result.final_loss < result.loss_history[0] and model.weights[0].device.type == device.type
