"""``local_gradients`` against SPEC.md's formulas, and ``compare_gradients`` as a detector."""

import math

import pytest
import torch

import torch_sigmoid_mlp.core.functional as functional
from torch_sigmoid_mlp import SigmoidMLP, compare_gradients, local_gradients, sigmoid_mlp_autograd, sse_loss

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats


def make_model(sizes, *, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    model = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], dtype=dtype, generator=g)
    return model.to(device)


def make_data(model, T, *, seed=1):
    g = torch.Generator().manual_seed(seed)
    W0 = model.weights[0]
    x = torch.rand(T, model.in_features, generator=g, dtype=torch.float64)
    d = torch.rand(T, model.out_features, generator=g, dtype=torch.float64)
    return x.to(W0), d.to(W0)


def sigma(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def forward_by_hand(weights, x):
    """``y^(l)(t)`` for every layer and test point, as Python floats: ``y[l][t][i]``."""
    ys = [x.tolist()]
    for W in weights:
        W = W.tolist()
        ys.append([[sigma(sum(w_ij * y_j for w_ij, y_j in zip(row, y_t))) for row in W] for y_t in ys[-1]])
    return ys


def test_last_layer_gradient_is_the_seed_formula():
    # SPEC.md: ∂E/∂W^(2)_1j = −Σ_t e_1(t) · y^(3)_1(t) · (1 − y^(3)_1(t)) · y^(2)_j(t), written
    # out with loops over t and j on the default n → n → n → 1 network.
    n, T = 3, 7
    model = make_model((n, n, n, 1), seed=2)
    assert model.sizes == (n, n, n, 1)
    x, d = make_data(model, T, seed=3)
    ys = forward_by_hand([W.detach() for W in model.weights], x)
    y2, y3 = ys[2], ys[3]
    seed_grad = [0.0] * n
    for j in range(n):
        for t in range(T):
            e1 = d[t, 0].item() - y3[t][0]
            seed_grad[j] -= e1 * y3[t][0] * (1 - y3[t][0]) * y2[t][j]
    expected = torch.tensor([seed_grad], dtype=torch.float64)

    for backend in ("manual", "autograd"):
        model.backend = backend
        model.zero_grad()
        sse_loss(model(x), d).backward()
        torch.testing.assert_close(
            model.weights[2].grad, expected, rtol=1e-12, atol=1e-15, msg=f"∂E/∂W^(2) ({backend} backend)"
        )


@pytest.mark.parametrize("sizes", [(2, 1), (3, 3, 3, 1), (4, 5, 2, 3), (2, 3, 4, 3, 2)])
def test_local_gradients_match_spec(sizes):
    model = make_model(sizes, seed=4)
    T = 5
    x, d = make_data(model, T, seed=5)
    weights = [W.detach() for W in model.weights]
    L = len(weights)
    ys = [torch.tensor(y, dtype=torch.float64) for y in forward_by_hand(weights, x)]

    # SPEC.md with column vectors, one test point at a time:
    #   δ^(L)(t) = e(t) ⊙ y^(L)(t) ⊙ (1 − y^(L)(t))
    #   δ^(l)(t) = y^(l)(t) ⊙ (1 − y^(l)(t)) ⊙ (W^(l)ᵀ δ^(l+1)(t))
    expected = [None] * (L + 1)
    rows = []
    for t in range(T):
        y_L = ys[L][t]
        rows.append((d[t] - y_L) * y_L * (1 - y_L))
    expected[L] = torch.stack(rows)
    for l in range(L - 1, 0, -1):
        rows = []
        for t in range(T):
            y_l = ys[l][t]
            rows.append(y_l * (1 - y_l) * (weights[l].T @ expected[l + 1][t]))
        expected[l] = torch.stack(rows)

    deltas = local_gradients(model, x, d)
    assert len(deltas) == L
    for l, delta in enumerate(deltas, start=1):
        assert delta.shape == (T, sizes[l])
        torch.testing.assert_close(delta, expected[l], rtol=1e-12, atol=1e-15, msg=f"δ^({l})")

    # ∂E/∂W^(l) = −δ^(l+1)ᵀ y^(l), against autograd's gradient of E.
    leaves = [W.clone().requires_grad_() for W in weights]
    grads = torch.autograd.grad(sse_loss(sigmoid_mlp_autograd(x, leaves), d), leaves)
    for l, grad in enumerate(grads):
        torch.testing.assert_close(
            -deltas[l].T @ ys[l], grad, rtol=1e-12, atol=1e-15, msg=f"−δ^({l + 1})ᵀ y^({l}) vs ∂E/∂W^({l})"
        )


def test_local_gradients_accepts_leading_dims_and_checks_d():
    model = make_model((3, 4, 2), seed=6)
    x, d = make_data(model, 6, seed=7)
    flat = local_gradients(model, x, d)
    nested = local_gradients(model, x.reshape(2, 3, 3), d.reshape(2, 3, 2))
    for l, (a, b) in enumerate(zip(flat, nested), start=1):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"δ^({l}) depends on the leading shape")
    with pytest.raises(ValueError, match=r"d has shape \(6, 1\), expected \(6, 2\)"):
        local_gradients(model, x, d[:, :1])
    with pytest.raises(ValueError, match="expects 3 features but x has 2"):
        local_gradients(model, x[:, :2], d)


def test_local_gradients_leaves_grads_alone():
    model = make_model((2, 3, 1), seed=8)
    x, d = make_data(model, 4)
    local_gradients(model, x, d)
    assert all(W.grad is None for W in model.weights)


# --- compare_gradients --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)], ids=["float64", "float32"]
)
def test_compare_gradients_agree(device, dtype, tolerance):
    model = make_model((4, 4, 4, 1), seed=9, dtype=dtype, device=device)
    x, d = make_data(model, 32, seed=10)
    report = compare_gradients(model, x, d)
    assert report.agree, str(report)
    assert report.dtype == dtype
    assert report.tolerance == tolerance
    assert report.max_rel == max(row.max_rel for row in report.rows) <= tolerance
    assert all(math.isfinite(row.max_abs) and row.max_abs >= 0 for row in report.rows)


def test_compare_gradients_rows_and_table():
    model = make_model((3, 5, 2, 4, 2), seed=11)
    x, d = make_data(model, 9, seed=12)
    report = compare_gradients(model, x, d)
    names = [row.name for row in report.rows]
    assert names == ["W^(0)", "W^(1)", "W^(2)", "W^(3)", "x"]
    lines = str(report).splitlines()
    assert len(lines) == len(report.rows) + 2, str(report)  # header, one line per row, verdict
    for name, line in zip(names, lines[1:]):
        assert line.split()[0] == name, f"table line {line!r} should be the row of {name}"
    assert lines[-1].startswith("agree (float64, tolerance 1e-10)"), lines[-1]


def test_compare_gradients_any_loss_and_model_untouched():
    model = make_model((3, 4, 2), seed=13)
    model.backend = "autograd"
    x, d = make_data(model, 8, seed=14)
    before = [W.detach().clone() for W in model.weights]
    report = compare_gradients(model, x, d, loss=lambda y, d: (torch.cos(3 * y) * d).sum() + (y.T**2).sum())
    assert report.agree, str(report)
    assert model.backend == "autograd"
    assert all(W.grad is None for W in model.weights)
    assert all(torch.equal(W, b) for W, b in zip(model.weights, before))


@pytest.mark.parametrize(
    "broken, least_rel",
    [
        (lambda g, y: g * y, 0.1),  # σ' without its (1 − y) factor
        (lambda g, y: torch.ops.aten.sigmoid_backward(g, y) * (1 + 1e-7), 1e-8),  # one part in 10^7
    ],
    ids=["missing (1-y)", "off by 1e-7"],
)
def test_compare_gradients_detects_a_broken_backward(monkeypatch, broken, least_rel):
    calls = []

    def spy(g, y):
        calls.append(y.shape)
        return broken(g, y)

    # SigmoidMLPFunction.backward looks the name up in functional's globals at call time.
    monkeypatch.setattr(functional, "_sigmoid_backward", spy)
    model = make_model((3, 4, 4, 1), seed=15)
    x, d = make_data(model, 10, seed=16)
    report = compare_gradients(model, x, d)
    assert calls == [(10, 1), (10, 4), (10, 4)], "the broken σ' never reached backward"
    assert not report.agree, str(report)
    assert report.max_rel > least_rel
    assert str(report).splitlines()[-1].startswith("DISAGREE")
