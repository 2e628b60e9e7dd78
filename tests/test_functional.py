"""The hand-written backward and jvp of ``SigmoidMLPFunction`` against autograd, and their bookkeeping.

Every gradient test runs the same weights through :func:`sigmoid_mlp` (explicit deltas, or the
forward-mode tangents of SPEC.md) and :func:`sigmoid_mlp_autograd` (plain torch ops) and compares,
or runs ``gradcheck`` against finite differences in float64.
"""

import itertools
from typing import ClassVar

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.autograd import forward_ad as fwAD
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._python_dispatch import TorchDispatchMode

from torch_sigmoid_mlp import SigmoidMLPFunction, functional, sigmoid_mlp, sigmoid_mlp_autograd, sse_loss
from torch_sigmoid_mlp.core.functional import check_inputs

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

# max |manual − autograd| / max |autograd| allowed, by dtype (the bounds).
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}

# Sizes hypothesis draws from: 1–4 weight matrices, widths 1–16, T = 1–64.
sizes_st = st.lists(st.integers(1, 16), min_size=2, max_size=5)
points_st = st.integers(1, 64)
seeds_st = st.integers(0, 2**31 - 1)
fast_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def make_problem(sizes, T, *, seed=0, dtype=torch.float64, device="cpu", scale=1.0, lead=None):
    """Random ``x`` (shape ``(*lead, T, size_0)``), weights ``W^(l)`` scaled by ``scale``, targets ``d``."""
    g = torch.Generator().manual_seed(seed)
    lead = () if lead is None else tuple(lead)
    x = torch.rand(*lead, T, sizes[0], generator=g, dtype=torch.float64)
    weights = [
        scale * torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) / fan_in**0.5
        for fan_in, fan_out in itertools.pairwise(sizes)
    ]
    d = torch.rand(*lead, T, sizes[-1], generator=g, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype) for t in (x, *weights, d)]


def gradients(forward, x, weights, loss, *, x_grad=True):
    """``loss(F(x))`` and its gradients ``(∂/∂W^(0), …, ∂/∂W^(L−1)[, ∂/∂x])`` through ``forward``."""
    leaves = [W.detach().clone().requires_grad_(True) for W in weights]
    x = x.detach().clone().requires_grad_(x_grad)
    value = loss(forward(x, leaves))
    # A weight the loss doesn't reach has gradient zero (intermediate-output losses).
    grads = torch.autograd.grad(value, [*leaves, x] if x_grad else leaves, materialize_grads=True)
    return value, grads


def assert_same_gradients(x, weights, loss, *, x_grad=True, what=""):
    """Manual and autograd gradients of ``loss(F(x))`` agree to ``RTOL`` of each gradient's scale."""
    rtol = RTOL[x.dtype]
    value_m, manual = gradients(sigmoid_mlp, x, weights, loss, x_grad=x_grad)
    value_a, reference = gradients(sigmoid_mlp_autograd, x, weights, loss, x_grad=x_grad)
    torch.testing.assert_close(value_m, value_a, rtol=rtol, atol=0.0, msg=f"loss values differ {what}")
    names = [f"W^({l})" for l in range(len(weights))] + ["x"]
    for name, m, r in zip(names, manual, reference):
        assert torch.isfinite(m).all(), f"manual ∂loss/∂{name} is not finite {what}"
        scale = r.abs().max().item() if r.numel() else 0.0
        torch.testing.assert_close(
            m, r, rtol=rtol, atol=rtol * scale, msg=lambda s, name=name: f"∂loss/∂{name} {what}: {s}"
        )


def sse_to(d):
    return lambda y: sse_loss(y, d)


def cos_loss(y):
    """An arbitrary downstream loss: a weighted sum of cos(y) (upstream gradient ≠ −e)."""
    c = torch.linspace(-1.0, 2.0, y.numel(), dtype=y.dtype, device=y.device).reshape(y.shape)
    return (c * torch.cos(3 * y)).sum()


# Losses whose upstream gradient ∂loss/∂y^(L) reaches backward as an expanded (stride 0), a
# transposed or a strided tensor: backward must not assume a contiguous grad_output.
ODD_UPSTREAM = {
    "sum (expanded grad)": lambda y: y.sum(),
    "y.T-based (transposed grad)": lambda y: (y.T @ torch.linspace(0, 1, y.shape[0]).to(y)).sum(),
    "y[:, ::2] (strided grad)": lambda y: (y[:, ::2] ** 2).sum(),
    "y[::3] (row-strided grad)": lambda y: torch.exp(y[::3]).sum(),
}


# --- gradcheck in float64 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes, T",
    [((1, 1), 1), ((3, 1), 5), ((2, 2, 2, 1), 4), ((4, 3, 5, 2), 3), ((5, 1, 4, 3, 2), 6), ((16, 7), 2)],
)
@pytest.mark.parametrize("x_grad", [True, False], ids=["x-grad", "x-no-grad"])
def test_gradcheck_full_jacobian(sizes, T, x_grad):
    x, *weights, _ = make_problem(sizes, T, seed=len(sizes) + T)
    inputs = (x.requires_grad_(x_grad), *(W.requires_grad_() for W in weights))
    # SigmoidMLPFunction.apply returns every y^(l): gradcheck checks the Jacobian of each
    # intermediate output too, so the g_l path of backward is covered.
    assert torch.autograd.gradcheck(SigmoidMLPFunction.apply, inputs)


@given(sizes=sizes_st, T=points_st, seed=seeds_st, x_grad=st.booleans())
@fast_settings
def test_gradcheck_random_architectures(sizes, T, seed, x_grad):
    x, *weights, _ = make_problem(sizes, T, seed=seed)
    inputs = (x.requires_grad_(x_grad), *(W.requires_grad_() for W in weights))
    assert torch.autograd.gradcheck(SigmoidMLPFunction.apply, inputs, fast_mode=True)


def test_gradcheck_through_downstream_loss():
    x, *weights, d = make_problem((3, 4, 2), 5, seed=1)
    inputs = (x.requires_grad_(), *(W.requires_grad_() for W in weights))

    def loss(x, *weights):
        y = sigmoid_mlp(x, weights)
        return cos_loss(y) + sse_loss(y, d) + torch.log(y).sum()

    assert torch.autograd.gradcheck(loss, inputs)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 3), (2, 1, 4, 3)], ids=["1-D", "3-D", "4-D"])
def test_gradcheck_any_leading_shape(shape):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)]
    weights.append(torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True))
    y = sigmoid_mlp(x, weights)
    assert y.shape == (*shape[:-1], 2)
    assert torch.autograd.gradcheck(lambda x, *w: sigmoid_mlp(x, w), (x, *weights))


@pytest.mark.parametrize("sizes", [(2, 3, 1), (3, 2, 4, 2)])
def test_gradgradcheck(sizes):
    x, *weights, _ = make_problem(sizes, 4, seed=3)
    inputs = (x.requires_grad_(), *(W.requires_grad_() for W in weights))
    assert torch.autograd.gradgradcheck(lambda x, *w: sigmoid_mlp(x, w), inputs)


# --- manual against autograd on the same weights ----------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("x_grad", [True, False], ids=["x-grad", "x-no-grad"])
def test_sse_gradients_match_autograd(device, dtype, x_grad):
    x, *weights, d = make_problem((5, 5, 5, 1), 64, seed=4, dtype=dtype, device=device)
    assert_same_gradients(x, weights, sse_to(d), x_grad=x_grad, what=f"({dtype}, {device})")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_downstream_loss_gradients_match_autograd(device, dtype):
    x, *weights, _ = make_problem((4, 8, 6, 3), 32, seed=5, dtype=dtype, device=device)
    assert_same_gradients(x, weights, cos_loss, what=f"(cos loss, {dtype}, {device})")


@pytest.mark.parametrize("name", list(ODD_UPSTREAM))
def test_non_contiguous_upstream_gradient(device, name):
    x, *weights, _ = make_problem((3, 5, 4), 12, seed=6, device=device)
    assert_same_gradients(x, weights, ODD_UPSTREAM[name], what=f"({name}, {device})")


@given(
    sizes=sizes_st,
    T=points_st,
    seed=seeds_st,
    dtype=st.sampled_from([torch.float64, torch.float32]),
    loss_name=st.sampled_from(["sse", "cos", *ODD_UPSTREAM]),
    x_grad=st.booleans(),
    scale=st.floats(0.01, 8.0),
)
@fast_settings
def test_gradients_match_autograd_property(device, sizes, T, seed, dtype, loss_name, x_grad, scale):
    x, *weights, d = make_problem(sizes, T, seed=seed, dtype=dtype, device=device, scale=scale)
    loss = {"sse": sse_to(d), "cos": cos_loss, **ODD_UPSTREAM}[loss_name]
    assert_same_gradients(x, weights, loss, x_grad=x_grad, what=f"({sizes}, T={T}, {loss_name})")


@given(sizes=sizes_st, T=points_st, seed=seeds_st, scale=st.sampled_from([20.0, 50.0, 200.0]))
@fast_settings
def test_saturated_sigmoids_match_autograd(device, sizes, T, seed, scale):
    # |v| ≫ 10: σ'(v) underflows towards 0 and 1 − y loses every digit; the product form
    # y(1 − y) must still give autograd's gradients and never a NaN or an inf.
    x, *weights, d = make_problem(sizes, T, seed=seed, device=device, scale=scale)
    x = 4 * x - 2  # signed inputs, so that first-layer sums saturate on both sides
    assert_same_gradients(x, weights, sse_to(d), what=f"(scale {scale})")
    assert_same_gradients(x, weights, cos_loss, what=f"(cos loss, scale {scale})")


def test_saturated_outputs_stay_finite():
    x = torch.tensor([[1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    W = torch.tensor([[800.0, -800.0]], dtype=torch.float64, requires_grad=True)  # v = 1600
    y = sigmoid_mlp(x, [W])
    assert y.item() == 1.0
    y.sum().backward()
    assert torch.equal(W.grad, torch.zeros_like(W)), "σ'(1600) is 0 in float64"
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("used", [(0,), (1,), (0, 2), (0, 1, 2)], ids=["y1", "y2", "y1+y3", "all"])
def test_intermediate_outputs_get_correct_gradients(device, used):
    x, *weights, _ = make_problem((3, 4, 5, 2), 10, seed=7, device=device)
    c = [torch.linspace(-1, 1, W.shape[0], dtype=x.dtype, device=device) for W in weights]

    def loss(ys):
        # Uses y^(l) only for l + 1 in `used`: the others reach backward as None.
        return sum((c[l] * ys[l] ** 2).sum() for l in used)

    def autograd_layers(x, weights):
        ys, y = [], x
        for W in weights:
            y = torch.sigmoid(y @ W.T)
            ys.append(y)
        return ys

    def manual_layers(x, weights):
        return SigmoidMLPFunction.apply(x, *weights)

    _, manual = gradients(manual_layers, x, weights, loss)
    _, reference = gradients(autograd_layers, x, weights, loss)
    for i, (m, r) in enumerate(zip(manual, reference)):
        torch.testing.assert_close(m, r, rtol=1e-12, atol=1e-14, msg=lambda s, i=i: f"gradient {i}: {s}")


# --- what backward computes and what forward saves --------------------------------------------


class CountMatmuls(TorchDispatchMode):
    """Counts ``aten.mm`` calls, and any other matrix product, made while active."""

    OTHER: ClassVar[set[str]] = {"addmm", "bmm", "baddbmm", "matmul", "mv", "addmv", "dot", "einsum"}

    def __init__(self):
        super().__init__()
        self.mm = 0
        self.other = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.mm.default:
            self.mm += 1
        elif func._schema.name.removeprefix("aten::") in self.OTHER:
            self.other.append(func)
        return func(*args, **(kwargs or {}))


def count_backward_matmuls(sizes, x_grad, weight_grads):
    x, *weights, _ = make_problem(sizes, 7, seed=8)
    x.requires_grad_(x_grad)
    for W, wanted in zip(weights, weight_grads):
        W.requires_grad_(wanted)
    y = sigmoid_mlp(x, weights)
    inputs = [W for W in weights if W.requires_grad] + ([x] if x_grad else [])
    with CountMatmuls() as counter:
        torch.autograd.grad(y, inputs, torch.ones_like(y))
    assert counter.other == [], "backward should use only aten.mm for matrix products"
    return counter.mm


@pytest.mark.parametrize("sizes", [(3, 1), (3, 4, 1), (3, 3, 3, 1), (2, 5, 4, 3, 2)])
def test_backward_skips_input_gradient(sizes):
    L = len(sizes) - 1
    all_weights = [True] * L
    # Per layer one δ product W^(l)ᵀ δ^(l+1) (none below δ^(1)) and one ∂/∂W^(l): 2L − 1,
    # plus W^(0)ᵀ δ^(1) for ∂/∂x only when x asks for it.
    assert count_backward_matmuls(sizes, x_grad=False, weight_grads=all_weights) == 2 * L - 1
    assert count_backward_matmuls(sizes, x_grad=True, weight_grads=all_weights) == 2 * L


@pytest.mark.parametrize("sizes", [(3, 1), (3, 4, 1), (3, 3, 3, 1), (2, 5, 4, 3, 2)])
def test_backward_stops_at_lowest_wanted_layer(sizes):
    L = len(sizes) - 1
    only_last = [False] * (L - 1) + [True]
    assert count_backward_matmuls(sizes, x_grad=False, weight_grads=only_last) == 1
    # ∂/∂W^(l) alone needs δ^(L..l+1): L − l − 1 δ products and one weight gradient.
    for l in range(L):
        only_l = [i == l for i in range(L)]
        assert count_backward_matmuls(sizes, x_grad=False, weight_grads=only_l) == L - l


def test_backward_skips_layers_above_the_used_output():
    # A loss on y^(1) alone: nothing flows from the unused y^(2..L) (they reach backward as
    # None, not as zeros to multiply), so ∂/∂W^(0) takes one product and ∂/∂x one more.
    x, *weights, _ = make_problem((3, 4, 5, 2), 6, seed=8)
    weights = [W.requires_grad_() for W in weights]
    for x_grad, expected in ((False, 1), (True, 2)):
        x.requires_grad_(x_grad)
        y1 = SigmoidMLPFunction.apply(x, *weights)[0]
        inputs = weights + ([x] if x_grad else [])
        with CountMatmuls() as counter:
            grads = torch.autograd.grad(y1, inputs, torch.ones_like(y1), allow_unused=True)
        assert counter.mm == expected, f"{counter.mm} matrix products for a loss on y^(1)"
        assert all(g is None for g in grads[1:3]), "W^(1), W^(2) do not reach y^(1)"


@pytest.mark.parametrize("sizes", [(3, 1), (3, 4, 1), (2, 5, 4, 3, 2)])
def test_saves_exactly_layer_outputs_and_weights(sizes):
    x, *weights, _ = make_problem(sizes, 6, seed=9)
    weights = [W.requires_grad_() for W in weights]
    saved = []
    with saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        ys = SigmoidMLPFunction.apply(x, *weights)
    L = len(weights)
    assert len(saved) == 2 * L + 1, f"saved {len(saved)} tensors, expected y^(0..L) and W^(0..L−1)"
    expected = [x.shape, *(y.shape for y in ys), *(W.shape for W in weights)]
    assert [t.shape for t in saved] == expected
    for l, t in enumerate(saved[: L + 1]):
        torch.testing.assert_close(t, x if l == 0 else ys[l - 1], rtol=0, atol=0, msg=f"saved y^({l})")
    for l, (t, W) in enumerate(zip(saved[L + 1 :], weights)):
        assert t is W or t.data_ptr() == W.data_ptr(), f"saved W^({l}) is not the weight itself"


def test_forward_values_match_plain_ops(device):
    x, *weights, _ = make_problem((4, 3, 2), 5, seed=10, device=device)
    y = x
    for W in weights:
        y = 1 / (1 + torch.exp(-(y @ W.T)))  # σ(v) = 1 / (1 + e^(−v))
    torch.testing.assert_close(sigmoid_mlp(x, weights), y, msg="F(x; w) differs from SPEC.md's formula")
    torch.testing.assert_close(sigmoid_mlp_autograd(x, weights), y, msg="autograd F(x; w) differs")


def test_sigmoid_mlp_does_not_change_its_input():
    x, *weights, _ = make_problem((3, 2, 1), 4, seed=11)
    before = [t.clone() for t in (x, *weights)]
    sigmoid_mlp(x, weights)
    for t, b in zip((x, *weights), before):
        assert torch.equal(t, b), "forward wrote into an input"


# --- bad input ----------------------------------------------------------------------------------


def _weights():
    return [torch.randn(4, 3), torch.randn(1, 4)]


@pytest.mark.parametrize("forward", [sigmoid_mlp, sigmoid_mlp_autograd])
@pytest.mark.parametrize(
    "x, weights, error, match",
    [
        (torch.rand(5, 2), _weights(), ValueError, r"W\^\(0\) expects 3 features but x has 2"),
        (torch.rand(5, 3), [torch.randn(4, 3), torch.randn(1, 5)], ValueError, r"W\^\(0\) gives 4"),
        (torch.ones(5, 3, dtype=torch.int64), _weights(), TypeError, "floating dtype.*int64"),
        (torch.ones(5, 3, dtype=torch.bool), _weights(), TypeError, "floating dtype.*bool"),
        (torch.tensor(1.0), _weights(), ValueError, "0-d"),
        (torch.rand(5, 3, dtype=torch.float64), _weights(), TypeError, r"W\^\(0\) has dtype torch.float32"),
        (torch.rand(5, 3), [torch.randn(4, 3), torch.randn(4)], ValueError, r"W\^\(1\) must be 2-D"),
        (torch.rand(5, 3), [torch.randn(1, 1, 4, 3)], ValueError, r"W\^\(0\) must be 2-D"),
        (torch.rand(5, 3), [torch.randn(2, 4, 3), torch.randn(4)], ValueError, r"W\^\(1\) must be \(K"),
        (torch.rand(3, 5, 3), [torch.randn(2, 4, 3)], ValueError, "population of K = 2"),
        (torch.rand(5, 3), [], ValueError, "at least one matrix"),
        ([[0.0, 1.0, 2.0]], _weights(), TypeError, "x must be a torch.Tensor, got list"),
        (torch.rand(5, 3), [[[1.0, 2.0, 3.0]]], TypeError, r"weights\[0\] must be a torch.Tensor"),
    ],
    ids=[
        "features",
        "chain",
        "int",
        "bool",
        "0-d",
        "dtype",
        "1-D weight",
        "4-D weight",
        "population weights not all 3-D",
        "x for another population",
        "no weights",
        "list x",
        "list weight",
    ],
)
def test_bad_input_is_named(forward, x, weights, error, match):
    with pytest.raises(error, match=match):
        forward(x, weights)


def test_weights_on_another_device_than_x(device):
    # Without a GPU the meta device stands in for another device: the check must fire before
    # any computation, which on meta tensors would not fail by itself.
    other = torch.device("meta") if device.type == "cpu" else device
    x = torch.rand(5, 3)
    weights = [W.to(other) for W in _weights()]
    with pytest.raises(ValueError, match=rf"W\^\(0\) is on {other.type}(:0)? but x is on cpu"):
        sigmoid_mlp(x, weights)
    with pytest.raises(ValueError, match=rf"W\^\(0\) is on cpu but x is on {other.type}"):
        sigmoid_mlp(x.to(other), _weights())
    with pytest.raises(ValueError, match=rf"W\^\(1\) is on {other.type}(:0)? but x is on cpu"):
        check_inputs(x, [torch.randn(4, 3), torch.randn(1, 4, device=other)])


def test_sse_loss_checks_shapes():
    with pytest.raises(ValueError, match=r"y has shape \(3, 1\) but d has shape \(3,\)"):
        sse_loss(torch.rand(3, 1), torch.rand(3))


def test_sse_loss_value():
    y = torch.tensor([[0.2], [0.7]], dtype=torch.float64)
    d = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    torch.testing.assert_close(sse_loss(y, d), torch.tensor(0.5 * (0.2**2 + 0.3**2), dtype=torch.float64))


def test_without_the_private_functorch_helpers_apply_falls_back():
    """On a torch without ``torch._functorch.utils``, the Function runs through the plain Function.apply."""
    import subprocess
    import sys

    script = """
import sys, torch
sys.modules["torch._functorch.utils"] = None  # any import from it now raises ImportError
from torch_sigmoid_mlp import functional
assert not functional._DIRECT_APPLY, "the shortcut should be off"
g = torch.Generator().manual_seed(0)
x = torch.rand(5, 3, generator=g, dtype=torch.float64)
ws = [torch.rand(4, 3, generator=g, dtype=torch.float64, requires_grad=True),
      torch.rand(1, 4, generator=g, dtype=torch.float64, requires_grad=True)]
manual = torch.autograd.grad(functional.sigmoid_mlp(x, ws).sum(), ws)
reference = torch.autograd.grad(functional.sigmoid_mlp_autograd(x, ws).sum(), ws)
for a, b in zip(manual, reference):
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# --- forward mode (jvp) -----------------------------------------------------------------------

# Which inputs carry a tangent: x alone, the weights alone, or both (as jvp receives them: the
# others arrive as None).
TANGENTS = {"x": (True, False), "weights": (False, True), "both": (True, True)}


def with_tangents(x, weights, which):
    """``(primals, tangents)``: the inputs that carry a tangent under ``which``, and random tangents."""
    x_t, w_t = TANGENTS[which]
    primals = ([x] if x_t else []) + (list(weights) if w_t else [])
    g = torch.Generator().manual_seed(len(primals))
    tangents = [torch.randn(p.shape, generator=g, dtype=torch.float64).to(p) for p in primals]
    return primals, tangents


def network_of(x, weights, which, forward):
    """``forward(x, weights)`` as a function of the inputs that carry a tangent under ``which``."""
    x_t, w_t = TANGENTS[which]

    def f(*primals):
        xs = primals[0] if x_t else x
        ws = list(primals[int(x_t) :]) if w_t else weights
        return forward(xs, ws)

    return f


def plain_layers(x, weights):
    """``(y^(1), …, y^(L))`` as plain ops: what autograd's own forward mode differentiates."""
    ys, y = [], x
    for W in weights:
        y = torch.sigmoid(y @ W.T)
        ys.append(y)
    return tuple(ys)


@pytest.mark.parametrize("sizes, T", [((1, 1), 1), ((3, 1), 5), ((2, 2, 2, 1), 4), ((5, 1, 4, 3, 2), 6)])
@pytest.mark.parametrize("which", list(TANGENTS))
def test_gradcheck_forward_ad(sizes, T, which):
    # gradcheck builds the Jacobian column by column from jvp (and row by row from backward) for
    # every output y^(1..L), against finite differences; batched: jvp under vmap (jacfwd's path).
    x, *weights, _ = make_problem(sizes, T, seed=21 + T)
    x_t, w_t = TANGENTS[which]
    inputs = (x.requires_grad_(x_t), *(W.requires_grad_(w_t) for W in weights))
    assert torch.autograd.gradcheck(
        SigmoidMLPFunction.apply,
        inputs,
        check_forward_ad=True,
        check_backward_ad=True,
        check_batched_forward_grad=True,
    )


@given(sizes=sizes_st, T=points_st, seed=seeds_st, which=st.sampled_from(list(TANGENTS)))
@fast_settings
def test_gradcheck_forward_ad_random_architectures(sizes, T, seed, which):
    x, *weights, _ = make_problem(sizes, T, seed=seed)
    x_t, w_t = TANGENTS[which]
    inputs = (x.requires_grad_(x_t), *(W.requires_grad_(w_t) for W in weights))
    assert torch.autograd.gradcheck(SigmoidMLPFunction.apply, inputs, check_forward_ad=True, fast_mode=True)


@pytest.mark.parametrize("sizes", [(2, 3, 1), (3, 2, 4, 2)])
def test_gradgradcheck_forward_over_reverse(sizes):
    # forward mode through the hand-written backward: what torch.func.hessian does
    x, *weights, _ = make_problem(sizes, 4, seed=22)
    inputs = (x.requires_grad_(), *(W.requires_grad_() for W in weights))
    assert torch.autograd.gradgradcheck(lambda x, *w: sigmoid_mlp(x, w), inputs, check_fwd_over_rev=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("which", list(TANGENTS))
def test_func_jvp_matches_autograd_backend(device, dtype, which):
    x, *weights, _ = make_problem((4, 6, 5, 3), 9, seed=23, dtype=dtype, device=device)
    primals, tangents = with_tangents(x, weights, which)
    y, y_t = torch.func.jvp(network_of(x, weights, which, sigmoid_mlp), tuple(primals), tuple(tangents))
    ref, ref_t = torch.func.jvp(
        network_of(x, weights, which, sigmoid_mlp_autograd), tuple(primals), tuple(tangents)
    )
    rtol = RTOL[dtype]
    torch.testing.assert_close(y, ref, rtol=rtol, atol=0.0, msg="primal output of torch.func.jvp")
    # rtol of the tangent's scale: an entry near zero is a difference of larger terms
    scale = ref_t.abs().max().item()
    torch.testing.assert_close(y_t, ref_t, rtol=rtol, atol=rtol * scale, msg=f"ẏ^(L), tangents on {which}")


@pytest.mark.parametrize("which", list(TANGENTS))
def test_dual_numbers_match_autograd_forward_mode(which):
    # torch.autograd.forward_ad, every layer's tangent ẏ^(l), against autograd's forward mode of the
    # plain ops; 1-D and 3-D x go through sigmoid_mlp's reshape.
    x, *weights, _ = make_problem((3, 4, 5, 2), 6, seed=24)
    primals, tangents = with_tangents(x, weights, which)
    results = []
    for layers in (lambda x, ws: SigmoidMLPFunction.apply(x, *ws), plain_layers):
        with fwAD.dual_level():
            duals = [fwAD.make_dual(p, t) for p, t in zip(primals, tangents)]
            ys = network_of(x, weights, which, layers)(*duals)
            results.append([fwAD.unpack_dual(y) for y in ys])
    for l, (ours, ref) in enumerate(zip(*results), start=1):
        torch.testing.assert_close(ours.primal, ref.primal, rtol=1e-12, atol=0.0, msg=f"y^({l})")
        assert ours.tangent is not None, f"ẏ^({l}) missing"
        torch.testing.assert_close(ours.tangent, ref.tangent, rtol=1e-12, atol=1e-15, msg=f"ẏ^({l}), {which}")


def test_dual_numbers_through_any_leading_shape():
    g = torch.Generator().manual_seed(25)
    weights = [torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, generator=g).double()]
    for shape in [(3,), (2, 5, 3)]:
        x, x_t = torch.rand(shape, generator=g).double(), torch.randn(shape, generator=g).double()
        with fwAD.dual_level():
            ours = fwAD.unpack_dual(sigmoid_mlp(fwAD.make_dual(x, x_t), weights)).tangent
            ref = fwAD.unpack_dual(sigmoid_mlp_autograd(fwAD.make_dual(x, x_t), weights)).tangent
        assert ours.shape == (*shape[:-1], 2)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-15, msg=f"ẏ for x of shape {shape}")


def test_tangent_below_the_lowest_tangent_is_zero():
    # Only W^(2) carries a tangent: y^(1), y^(2) do not depend on it, so their tangents are zero.
    x, *weights, _ = make_problem((3, 4, 5, 2), 6, seed=26)
    with fwAD.dual_level():
        W2 = fwAD.make_dual(weights[2], torch.ones_like(weights[2]))
        tangents = [fwAD.unpack_dual(y).tangent for y in SigmoidMLPFunction.apply(x, *weights[:2], W2)]
    assert torch.count_nonzero(tangents[0]) == 0 and torch.count_nonzero(tangents[1]) == 0
    assert torch.count_nonzero(tangents[2]) > 0


@pytest.mark.parametrize(
    "x_t, w_t, expected",
    # per layer, with ẏ^(l) present one product W^(l) ẏ^(l); with Ẇ^(l) one more, Ẇ^(l) y^(l)
    [(True, [False] * 3, 3), (False, [True] * 3, 5), (True, [True] * 3, 6), (False, [False, False, True], 1)],
    ids=["x", "weights", "both", "last W"],
)
def test_jvp_skips_terms_without_tangent(x_t, w_t, expected):
    x, *weights, _ = make_problem((3, 4, 5, 2), 6, seed=27)
    L = len(weights)
    with fwAD.dual_level():
        duals = [
            fwAD.make_dual(t, torch.ones_like(t)) if wanted else t
            for t, wanted in zip([x, *weights], [x_t, *w_t])
        ]
        with CountMatmuls() as counter:
            SigmoidMLPFunction.apply(*duals)
    products = counter.mm + len(counter.other) - L  # less the forward pass's L products
    assert products == expected, f"{products} matrix products in jvp"


@pytest.mark.parametrize("wrt", ["x", "weights"])
def test_jacfwd_matches_jacrev(wrt):
    x, *weights, _ = make_problem((3, 4, 2), 5, seed=28)
    if wrt == "x":
        ours = torch.func.jacfwd(lambda x: sigmoid_mlp(x, weights))(x)  # (T, m, T, n)
        ref = torch.func.jacrev(lambda x: sigmoid_mlp_autograd(x, weights))(x)
        blocks = [(ours, ref)]
    else:
        ours = torch.func.jacfwd(lambda ws: sigmoid_mlp(x, ws))(weights)  # [(T, m, *W^(l).shape)]
        ref = torch.func.jacrev(lambda ws: sigmoid_mlp_autograd(x, ws))(weights)
        blocks = list(zip(ours, ref))
    for i, (a, b) in enumerate(blocks):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=f"jacfwd block {i} against jacrev")


@pytest.mark.parametrize("wrt", ["x", "weights"])
def test_hessian_matches_autograd_backend(wrt):
    # torch.func.hessian is jacfwd(jacrev(E)): jvp of the forward, then forward mode through backward
    x, *weights, d = make_problem((3, 4, 2), 5, seed=29)

    def E(forward):
        if wrt == "x":
            return lambda x: sse_loss(forward(x, weights), d)
        return lambda ws: sse_loss(forward(x, ws), d)

    arg = x if wrt == "x" else weights
    ours, ref = torch.func.hessian(E(sigmoid_mlp))(arg), torch.func.hessian(E(sigmoid_mlp_autograd))(arg)
    flat = [(ours, ref)] if wrt == "x" else [(a, b) for ra, rb in zip(ours, ref) for a, b in zip(ra, rb)]
    for i, (a, b) in enumerate(flat):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-14, msg=f"Hessian block {i} of E")


def test_forward_mode_runs_the_hand_written_jvp(monkeypatch):
    calls = []
    jvp = SigmoidMLPFunction.jvp

    def counted(ctx, *tangents):
        calls.append(len(tangents))
        return jvp(ctx, *tangents)

    monkeypatch.setattr(SigmoidMLPFunction, "jvp", staticmethod(counted))
    x, *weights, d = make_problem((3, 4, 2), 5, seed=30)
    uses = {
        "func.jvp": lambda: torch.func.jvp(lambda x: sigmoid_mlp(x, weights), (x,), (torch.ones_like(x),)),
        "jacfwd": lambda: torch.func.jacfwd(lambda ws: sigmoid_mlp(x, ws))(weights),
        "hessian": lambda: torch.func.hessian(lambda x: sse_loss(sigmoid_mlp(x, weights), d))(x),
    }
    for name, use in uses.items():
        calls.clear()
        use()
        assert calls, f"{name} did not call SigmoidMLPFunction.jvp"


def test_compile_traces_the_function_without_jvp():
    # Dynamo refuses a Function that defines jvp; sigmoid_mlp hands it the same Function without it.
    assert functional._TracedSigmoidMLPFunction.jvp is torch.autograd.Function.jvp
    x, *weights, _ = make_problem((3, 4, 2), 5, seed=31)
    weights = [W.requires_grad_() for W in weights]
    compiled = torch.compile(lambda x, ws: sigmoid_mlp(x, ws).sum(), backend="aot_eager", fullgraph=True)
    grads = torch.autograd.grad(compiled(x, weights), weights)
    ref = torch.autograd.grad(sigmoid_mlp_autograd(x, weights).sum(), weights)
    for l, (a, b) in enumerate(zip(grads, ref)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=f"compiled ∂/∂W^({l})")


# --- autocast -----------------------------------------------------------------------------------


@pytest.mark.parametrize("forward", [sigmoid_mlp, sigmoid_mlp_autograd])
@pytest.mark.parametrize("x_dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_autocast_casts_every_floating_dtype_but_float64(forward, x_dtype):
    # As nn.Linear: under autocast the product runs in the autocast dtype whatever the (non-float64)
    # dtypes of x and W^(l); the gradients come back in each one's own dtype.
    g = torch.Generator().manual_seed(32)
    x = torch.rand(5, 3, generator=g).to(x_dtype).requires_grad_()
    weights = [
        torch.randn(4, 3, generator=g).requires_grad_(),
        torch.randn(2, 4, generator=g).requires_grad_(),
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = forward(x, weights)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == x_dtype and [W.grad.dtype for W in weights] == [torch.float32] * 2
    ref = x.detach().to(torch.bfloat16)
    for W in weights:
        ref = torch.sigmoid(ref @ W.detach().to(torch.bfloat16).T)
    # the same bfloat16 operations in the same order, up to the summation order inside a product
    torch.testing.assert_close(y, ref, rtol=1e-2, atol=1e-2, msg="y^(L) under autocast")


@pytest.mark.parametrize("forward", [sigmoid_mlp, sigmoid_mlp_autograd])
def test_autocast_names_a_float64_mix(forward):
    weights = [torch.randn(4, 3), torch.randn(2, 4, dtype=torch.float64)]
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        pytest.raises(
            TypeError,
            match=r"W\^\(1\) has dtype torch.float64 but x has dtype torch.float32 \(under autocast",
        ),
    ):
        forward(torch.rand(5, 3), weights)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError, match=r"W\^\(0\) has dtype"):
        forward(torch.rand(5, 3, dtype=torch.float64), weights[:1])


def test_check_inputs_follows_autocast_only_when_told():
    # tape_free.py and lm.py compute in the weights' own dtype: for them a dtype mismatch stays one,
    # under autocast too; sigmoid_mlp passes the autocast dtype.
    x, weights = torch.rand(5, 3, dtype=torch.bfloat16), _weights()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(
            TypeError, match=r"W\^\(0\) has dtype torch.float32 but x has dtype torch.bfloat16$"
        ):
            check_inputs(x, weights)
        check_inputs(x, weights, amp_dtype=torch.bfloat16)
