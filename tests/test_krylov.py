"""Conjugate gradients (training/krylov.py) against dense solves in float64."""

import pytest
import torch

from torch_sigmoid_mlp.training.krylov import conjugate_gradients


def spd(P: int, condition: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(P, P, generator=g, dtype=torch.float64))
    eigenvalues = torch.logspace(0, torch.log10(torch.tensor(condition)).item(), P, dtype=torch.float64)
    D = torch.rand(P, generator=g, dtype=torch.float64) * 100 + 0.01  # badly scaled rows and columns
    return (D.sqrt()[:, None] * (Q * eigenvalues) @ Q.T) * D.sqrt()[None, :]


@pytest.mark.floats
@pytest.mark.parametrize("seed", range(3))
def test_solves_as_the_dense_solve(seed):
    A = spd(40, 1e4, seed)
    b = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    result = conjugate_gradients(lambda V: A @ V, b, diagonal=A.diagonal(), rtol=1e-13, max_iter=400)
    expected = torch.linalg.solve(A, b)
    assert result.converged.all()
    torch.testing.assert_close(result.x, expected, rtol=1e-8, atol=0, msg="PCG against torch.linalg.solve")
    # one column alone takes the same iterations as inside the block, to the same answer
    alone = conjugate_gradients(lambda v: A @ v, b[:, 1], diagonal=A.diagonal(), rtol=1e-13, max_iter=400)
    assert alone.x.shape == (40,)
    torch.testing.assert_close(alone.x, expected[:, 1], rtol=1e-8, atol=0)


@pytest.mark.floats
def test_the_preconditioner_pays_on_badly_scaled_systems():
    A = spd(60, 1e2, 7)
    b = torch.ones(60, dtype=torch.float64)
    plain = conjugate_gradients(lambda v: A @ v, b, rtol=1e-10, max_iter=2000)
    jacobi = conjugate_gradients(lambda v: A @ v, b, diagonal=A.diagonal(), rtol=1e-10, max_iter=2000)
    assert jacobi.converged.item() and jacobi.iterations.item() < plain.iterations.item()


@pytest.mark.floats
def test_a_preconditioner_given_as_a_function():
    """``precondition=`` is applied as ``M⁻¹R``: the Jacobi one given so takes the diagonal's iterations to
    the same answer, and the exact inverse solves in one iteration."""
    A = spd(30, 1e3, 2)
    b = torch.randn(30, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    jacobi = conjugate_gradients(lambda V: A @ V, b, diagonal=A.diagonal(), rtol=1e-12, max_iter=300)
    as_function = conjugate_gradients(
        lambda V: A @ V, b, precondition=lambda R: R / A.diagonal()[:, None], rtol=1e-12, max_iter=300
    )
    assert torch.equal(as_function.iterations, jacobi.iterations)
    torch.testing.assert_close(as_function.x, jacobi.x, rtol=1e-10, atol=0)
    inverse = torch.linalg.inv(A)
    exact = conjugate_gradients(lambda V: A @ V, b, precondition=lambda R: inverse @ R, rtol=1e-8)
    assert exact.iterations.tolist() == [1, 1]
    torch.testing.assert_close(exact.x, torch.linalg.solve(A, b), rtol=1e-8, atol=0)


def test_warm_start_at_the_solution_takes_no_iteration():
    A = spd(10, 10.0, 1)
    b = torch.arange(10, dtype=torch.float64)
    x = torch.linalg.solve(A, b)
    result = conjugate_gradients(lambda v: A @ v, b, diagonal=A.diagonal(), x0=x, rtol=1e-8)
    assert result.iterations.item() == 0 and result.converged.item()
    torch.testing.assert_close(result.q, -0.5 * (x @ b).reshape(1))


@pytest.mark.floats
def test_eta_stops_early_with_most_of_the_models_decrease():
    A = spd(80, 1e4, 3)
    b = torch.randn(80, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = torch.linalg.solve(A, b)
    q_min = -0.5 * (exact @ b)
    full = conjugate_gradients(lambda v: A @ v, b, diagonal=A.diagonal(), rtol=1e-12, max_iter=500)
    assert full.converged.item()
    q_seen = []
    for eta in (0.5, 0.1, 0.01):
        inexact = conjugate_gradients(lambda v: A @ v, b, diagonal=A.diagonal(), eta=eta, max_iter=500)
        assert inexact.converged.item()
        assert inexact.iterations.item() < full.iterations.item()
        # the model's value it reports is the model's value at its x
        q = 0.5 * inexact.x @ A @ inexact.x - inexact.x @ b
        torch.testing.assert_close(inexact.q, q.reshape(1), rtol=1e-8, atol=0)
        q_seen.append(q.item())
    # a smaller eta takes more of the decrease, never past the minimum
    assert q_min < q_seen[2] < q_seen[1] < q_seen[0] < 0
    assert q_seen[2] < 0.5 * q_min


def test_stops_on_non_positive_curvature():
    A = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    result = conjugate_gradients(lambda v: A @ v, torch.ones(2, dtype=torch.float64), max_iter=10)
    assert not result.converged.item() and result.iterations.item() == 0
    assert torch.isfinite(result.x).all()


@pytest.mark.parametrize("kw", [{"rtol": -1.0}, {"eta": 1.5}, {"eta": 0.0}, {"max_iter": -1}])
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError, match="rtol"):
        conjugate_gradients(lambda v: v, torch.ones(3), **kw)
