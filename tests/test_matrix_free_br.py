"""Matrix-free Bayesian regularisation (method "br_cg", training/matrix_free_br.py) against the dense
solvers.BayesianRegularization in float64: γ_l and the evidence at the same w, α_l, β, and whole fits."""

import statistics

import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLP, train
from torch_sigmoid_mlp.training.matrix_free_br import MatrixFreeBR
from torch_sigmoid_mlp.training.objective import Objective
from torch_sigmoid_mlp.training.solvers import METHODS, BayesianRegularization, make_step


def noisy_sine(seed: int, T: int = 40):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, 1, generator=g, dtype=torch.float64) * 2 - 1  # (T, 1)
    d = 0.5 + 0.3 * torch.sin(3 * x) + 0.05 * torch.randn(T, 1, generator=g, dtype=torch.float64)
    return x, d, g


def fitted_pair(seed: int, epochs: int = 30):
    """A dense BR step after ``epochs`` epochs (its search settled where it is), and a MatrixFreeBR on the
    same network, points and ``α_l, β``."""
    x, d, g = noisy_sine(seed)
    model = SigmoidMLP(1, [8, 8], 1, generator=g, dtype=torch.float64)
    dense = BayesianRegularization(Objective(model, x, d))
    for _ in range(epochs):
        dense.evaluate()
        dense.step()
    A, _, E, _ = dense.objective.gauss_newton()
    w = dense._flat()
    if dense.searching:
        dense._settle(A, w, E.item())
    free = MatrixFreeBR(Objective(model, x, d), trace_seed=seed)
    free.alphas, free.beta, free._searching = list(dense.alphas), dense.beta, False
    return dense, free, A, w, E


@pytest.mark.floats
def test_gamma_as_the_dense_solvers():
    """γ within 5 % of dense BR's (median over 20 seeds; 10 % worst), at the same w, α_l, β, JᵀSJ."""
    errors = []
    for seed in range(20):
        dense, free, A, w, E = fitted_pair(seed)
        products, _, E_free, _ = free._gauss_newton()
        torch.testing.assert_close(E_free, E, rtol=1e-12, atol=0)
        dense._estimate(A, w, E.item())
        free._estimate(products, w, E_free.item())
        assert all(0 <= g <= n for g, n in zip(free.gammas, free._numels))
        errors.append(abs(free.gamma - dense.gamma) / dense.gamma)
        # the updates that follow from γ: α_l and β
        torch.testing.assert_close(torch.tensor(free.alphas), torch.tensor(dense.alphas), rtol=0.1, atol=0)
    assert statistics.median(errors) < 0.05 and max(errors) < 0.10, errors


@pytest.mark.floats
def test_evidence_as_the_dense_solvers():
    differences = []
    for seed in range(5):
        dense, free, A, w, E = fitted_pair(seed)
        products, _, _, _ = free._gauss_newton()
        differences.append(abs(free._evidence_at(products, w, E) - dense._evidence_at(A, w, E)))
    assert max(differences) < 0.1, differences


def test_fits_a_noisy_sine_as_dense_br():
    """Grid R² of the fitted function against the true one: br_cg within 0.005 of dense br, or better."""
    grid = torch.linspace(-1, 1, 200, dtype=torch.float64)[:, None]  # (200, 1)
    truth = 0.5 + 0.3 * torch.sin(3 * grid)
    for seed in range(3):
        x, d, _ = noisy_sine(seed, T=30)
        r2 = {}
        for method in ("br", "br_cg"):
            model = SigmoidMLP(1, [6], 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            result = train(model, x, d, method=method, max_epochs=150)
            assert result.evidence is not None
            with torch.no_grad():
                residual = model(grid) - truth
            r2[method] = 1 - (residual.square().sum() / (truth - truth.mean()).square().sum()).item()
        assert r2["br_cg"] > r2["br"] - 0.005, (seed, r2)


def test_wired_as_a_method():
    assert "br_cg" in METHODS
    x, d, g = noisy_sine(0, T=10)
    model = SigmoidMLP(1, [3], 1, generator=g, dtype=torch.float64)
    step = make_step("br_cg", Objective(model, x, d), lr=None, options={"probes": 8})
    assert isinstance(step, MatrixFreeBR) and step.probes == 8
    with pytest.raises(ValueError, match="probes"):
        MatrixFreeBR(Objective(model, x, d), probes=1)
    with pytest.raises(ValueError, match="trace_rtol"):
        MatrixFreeBR(Objective(model, x, d), trace_rtol=0.0)


def test_state_dict_resumes_the_probes():
    x, d, g = noisy_sine(1, T=20)
    model = SigmoidMLP(1, [4], 1, generator=g, dtype=torch.float64)
    step = MatrixFreeBR(Objective(model, x, d), trace_seed=3)
    for _ in range(3):
        step.evaluate()
        step.step()
    state = step.state_dict()
    assert {"gamma", "alphas", "beta", "trace_draws", "cg_start"} <= set(state) and state["trace_draws"] > 0
    other = MatrixFreeBR(Objective(model, x, d), trace_seed=3)
    other.load_state_dict(state)
    assert other._generator().initial_seed() == step._generator().initial_seed()
    assert other.alphas == step.alphas and other.beta == step.beta
