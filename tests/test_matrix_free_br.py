"""Matrix-free Bayesian regularisation (method "br_cg", training/matrix_free_br.py) against the dense
solvers.BayesianRegularization in float64: γ_l and the evidence at the same w, α_l, β, and whole fits."""

import copy
import statistics

import pytest
import torch
from problems import settled_br

from torch_sigmoid_mlp import SigmoidMLP, jacobian, train
from torch_sigmoid_mlp.training.matrix_free import GaussNewtonProducts
from torch_sigmoid_mlp.training.matrix_free_br import MatrixFreeBR
from torch_sigmoid_mlp.training.objective import Objective
from torch_sigmoid_mlp.training.solvers import METHODS, BayesianRegularization, make_step


def noisy_sine(seed: int, T: int = 40):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, 1, generator=g, dtype=torch.float64) * 2 - 1  # (T, 1)
    d = 0.5 + 0.3 * torch.sin(3 * x) + 0.05 * torch.randn(T, 1, generator=g, dtype=torch.float64)
    return x, d, g


def fitted_pair(seed: int, epochs: int = 30, trace_space: str = "probes"):
    """A dense BR step after ``epochs`` epochs (its search settled where it is), and a MatrixFreeBR on the
    same network, points and ``α_l, β`` (``R = 40 < P = 80``: "auto" would take the data space)."""
    x, d, g = noisy_sine(seed)
    model = SigmoidMLP(1, [8, 8], 1, generator=g, dtype=torch.float64)
    dense, A, w, E = settled_br(model, x, d, epochs)
    free = MatrixFreeBR(Objective(model, x, d), trace_seed=seed, trace_space=trace_space)
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
def test_recycled_gamma_along_a_run_as_the_dense_solvers():
    """After 30 epochs of br_cg on the probes (kept from estimate to estimate, the solves warm-started),
    its next γ against dense BR's at the same w, α_l, β: within 5 % (median over 20 seeds; 10 % worst)."""
    errors = []
    for seed in range(20):
        x, d, g = noisy_sine(seed)
        model = SigmoidMLP(1, [8, 8], 1, generator=g, dtype=torch.float64)
        free = MatrixFreeBR(Objective(model, x, d), trace_seed=seed, trace_space="probes")
        for _ in range(30):
            free.evaluate()
            free.step()
        if free.searching:  # collapsed and begun again: no α_l to compare at
            continue
        assert free._recycled.Z is not None and free._draws > 1
        products, _, E, _ = free._gauss_newton()
        w = free._flat()
        dense = BayesianRegularization(Objective(model, x, d))
        dense.alphas, dense.beta, dense._searching = list(free.alphas), free.beta, False
        A, _, E_dense, _ = dense.objective.gauss_newton()
        dense._estimate(A, w, E_dense.item())
        free._wait = 0  # an estimate here, whatever the interval
        free._estimate(products, w, E.item())
        errors.append(abs(free.gamma - dense.gamma) / dense.gamma)
    assert len(errors) >= 15
    assert statistics.median(errors) < 0.05 and max(errors) < 0.10, errors


def test_gamma_is_held_once_settled_and_a_resumed_run_holds_it_alike():
    """With trace_interval = 8: once γ moves by less than GAMMA_SETTLED between estimates the steps between
    them double up to 8 (α_l, β following E_W, E_D in between); a run resumed in between takes the whole
    run's steps to the bit (the interval and the steps left to it are in state_dict)."""
    x, d, g = noisy_sine(1, T=40)
    model = SigmoidMLP(1, [4], 1, generator=g, dtype=torch.float64)  # P = 8 < R = 40: the probes
    whole_model, part_model = copy.deepcopy(model), copy.deepcopy(model)
    options = {"trace_interval": 8}
    step = MatrixFreeBR(Objective(model, x, d), **options)
    intervals, made = [], 0
    for _ in range(40):
        draws = step._draws
        step.evaluate()
        step.step()
        made += step._draws - draws
        intervals.append(step._interval)
    assert max(intervals) == step.trace_interval == 8 and made < 30, (intervals, made)
    with pytest.raises(ValueError, match="trace_interval"):
        MatrixFreeBR(Objective(model, x, d), trace_interval=0)
    whole = train(whole_model, x, d, method="br_cg", max_epochs=40, options=options)
    part = train(part_model, x, d, method="br_cg", max_epochs=12, options=options)  # γ held: 3 steps to go
    rest = train(part_model, x, d, method="br_cg", resume=part, max_epochs=40, options=options)
    assert rest.epochs == whole.epochs > 12  # (μ_max ends both near 30, where rounding puts it)
    assert rest.loss_history == whole.loss_history
    flat = [torch.cat([W.flatten() for W in m.weights]) for m in (part_model, whole_model)]
    assert torch.equal(flat[0], flat[1])


@pytest.mark.floats
def test_data_space_gamma_and_evidence_equal_the_dense_ones():
    """``R = 40 < P = 80``: γ_l and the evidence from ``G = I + UUᵀ`` (Woodbury, Sylvester) are the dense
    Cholesky's to rounding, at the same w, α_l, β (the probes' are within 5 %, above)."""
    for seed in range(20):
        dense, free, A, w, E = fitted_pair(seed, trace_space="data")
        products, _, E_free, _ = free._gauss_newton()
        dense_evidence, free_evidence = dense._evidence_at(A, w, E), free._evidence_at(products, w, E_free)
        draws = free._draws
        dense._estimate(A, w, E.item())
        free._estimate(products, w, E_free.item())
        assert free._draws == draws, "no probes drawn"
        torch.testing.assert_close(
            torch.tensor(free.gammas), torch.tensor(dense.gammas), rtol=1e-7, atol=1e-9
        )
        assert free.beta == pytest.approx(dense.beta, rel=1e-7)
        assert free_evidence == pytest.approx(dense_evidence, abs=1e-6)


@pytest.mark.parametrize("chunk_size", [None, 7])
def test_layer_grams_are_those_of_the_jacobian(chunk_size):
    """``S^½ J_l J_lᵀ S^½`` of every layer, 2 outputs, sample weights, chunks: the same matrix as from the
    dense Jacobian up to the order of its rows (rows ``i·K + t`` per chunk against ``t·m + i``)."""
    g = torch.Generator().manual_seed(4)
    model = SigmoidMLP(3, [4, 5], 2, generator=g, dtype=torch.float64)
    x, d = (
        torch.rand(17, 3, generator=g, dtype=torch.float64),
        torch.rand(17, 2, generator=g, dtype=torch.float64),
    )
    s = torch.rand(17, generator=g, dtype=torch.float64) + 0.5
    products = GaussNewtonProducts(Objective(model, x, d, sample_weight=s, chunk_size=chunk_size))
    products.forward()
    grams = products.layer_grams()
    J = jacobian(model, x) * s.sqrt().repeat_interleave(2)[:, None]  # S^½ J, rows t·m + i, (34, P)
    starts = range(0, 17, chunk_size or 17)
    order = [t * 2 + i for c in starts for i in range(2) for t in range(c, min(c + (chunk_size or 17), 17))]
    offset = 0
    for W, K in zip(model.weights, grams):
        block = J[order, offset : offset + W.numel()]  # S^½ J_l in layer_grams' row order
        torch.testing.assert_close(K, block @ block.T, rtol=1e-12, atol=1e-14)
        offset += W.numel()


def test_trace_space_auto_takes_the_data_space_below_p_rows():
    x, d, g = noisy_sine(0, T=40)
    wide = SigmoidMLP(1, [8, 8], 1, generator=g, dtype=torch.float64)  # P = 80 > R = 40
    narrow = SigmoidMLP(1, [4], 1, generator=g, dtype=torch.float64)  # P = 8
    assert MatrixFreeBR(Objective(wide, x, d)).trace_space == "data"
    assert MatrixFreeBR(Objective(narrow, x, d)).trace_space == "probes"
    assert MatrixFreeBR(Objective(wide, x, d), trace_space="probes").trace_space == "probes"
    assert MatrixFreeBR(Objective(narrow, x, d), trace_space="data").trace_space == "data"


def test_a_data_space_run_takes_dense_brs_steps():
    """With exact γ (data space) and CG solved to 1e-12 br_cg's run is dense br's to rounding."""
    x, d, g = noisy_sine(2, T=30)
    model = SigmoidMLP(1, [6, 6], 1, generator=g, dtype=torch.float64)  # P = 48 > R = 30
    twin = copy.deepcopy(model)
    options = {"cg_eta": None, "cg_rtol": 1e-12, "cg_max_iter": 5000, "trace_space": "data"}
    free = train(model, x, d, method="br_cg", max_epochs=40, options=options)
    dense = train(twin, x, d, method="br", max_epochs=40)
    torch.testing.assert_close(free.loss_history, dense.loss_history, rtol=1e-6, atol=1e-10)
    flat = [torch.cat([W.flatten() for W in m.weights]) for m in (model, twin)]
    torch.testing.assert_close(flat[0], flat[1], rtol=1e-5, atol=1e-7)
    assert free.evidence == pytest.approx(dense.evidence, abs=1e-4)


def test_a_resumed_data_space_run_takes_the_same_steps():
    x, d, g = noisy_sine(3, T=20)
    model = SigmoidMLP(1, [5, 5], 1, generator=g, dtype=torch.float64)  # P = 40 > R = 20: the data space
    whole_model = copy.deepcopy(model)
    whole = train(whole_model, x, d, method="br_cg", max_epochs=12)
    part = train(model, x, d, method="br_cg", max_epochs=5)
    rest = train(model, x, d, method="br_cg", resume=part, max_epochs=12)
    assert rest.epochs == whole.epochs == 12
    assert rest.loss_history == whole.loss_history
    assert torch.equal(torch.cat([W.flatten() for W in model.weights]),
                       torch.cat([W.flatten() for W in whole_model.weights]))  # fmt: skip


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
    with pytest.raises(ValueError, match="trace_space"):
        MatrixFreeBR(Objective(model, x, d), trace_space="dense")
    with pytest.raises(ValueError, match="trace_recycle"):
        MatrixFreeBR(Objective(model, x, d), trace_recycle=1)
    with pytest.raises(ValueError, match="trace_space"):
        MatrixFreeBR(Objective(model, x, d, distributed=True), trace_space="data")


def test_state_dict_resumes_the_probes():
    x, d, g = noisy_sine(1, T=20)
    model = SigmoidMLP(1, [4], 1, generator=g, dtype=torch.float64)
    step = MatrixFreeBR(Objective(model, x, d), trace_seed=3)
    for _ in range(3):
        step.evaluate()
        step.step()
    state = step.state_dict()
    assert {"gamma", "alphas", "beta", "trace_draws", "cg_start", "trace_recycled"} <= set(state)
    assert state["trace_draws"] > 0
    other = MatrixFreeBR(Objective(model, x, d), trace_seed=3)
    other.load_state_dict(state)
    assert other._generator().initial_seed() == step._generator().initial_seed()
    assert other.alphas == step.alphas and other.beta == step.beta
    for name in ("Z", "Q", "MQ", "MZ"):  # the recycled probes and solves
        assert torch.equal(getattr(other._recycled, name), getattr(step._recycled, name)), name
    fresh = MatrixFreeBR(Objective(model, x, d), trace_seed=3, trace_recycle=False)
    assert "trace_recycled" not in fresh.state_dict()
