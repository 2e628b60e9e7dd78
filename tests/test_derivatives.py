"""Per-point gradients, Jacobians and HVPs against ``torch.func``; double backward, ``torch.func``,
``torch.compile`` and autocast through the hand-written Function."""

import pytest
import torch
from problems import random_problem

from torch_sigmoid_mlp import (
    SigmoidMLP,
    SigmoidMLPFunction,
    hvp,
    jacobian,
    per_sample_gradients,
    sigmoid_mlp,
    sigmoid_mlp_autograd,
    sse_loss,
)

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

# (sizes, T): the default n → n → n → 1 network, no hidden layer, several outputs, a deep one.
ARCHITECTURES = [
    ((3, 3, 3, 1), 11),
    ((4, 2), 5),
    ((2, 5, 3), 7),
    ((1, 6, 4, 3, 2), 9),
    ((5, 1, 4), 1),
]
ARCH_IDS = ["-".join(map(str, sizes)) for sizes, _ in ARCHITECTURES]


def detached(model):
    return [W.detach().clone() for W in model.weights]


def E_autograd(weights, x, d):
    return sse_loss(sigmoid_mlp_autograd(x, weights), d)


def E_manual(weights, x, d):
    return sse_loss(sigmoid_mlp(x, weights), d)


# --- per-sample gradients ---------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "T"), ARCHITECTURES, ids=ARCH_IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_per_sample_gradients_match_vmap_grad(device, sizes, T, seed):
    model, x, d = random_problem(sizes, T, seed=seed, device=device)
    ours = per_sample_gradients(model, x, d)

    def E_t(weights, x_t, d_t):  # one point's term of E
        return E_autograd(weights, x_t[None], d_t[None])

    reference = torch.func.vmap(torch.func.grad(E_t), in_dims=(None, 0, 0))(detached(model), x, d)
    for l, (mine, ref) in enumerate(zip(ours, reference)):
        assert mine.shape == (T, sizes[l + 1], sizes[l])
        torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-14, msg=f"∂E_t/∂W^({l})")


@pytest.mark.parametrize(("sizes", "T"), ARCHITECTURES, ids=ARCH_IDS)
def test_per_sample_gradients_sum_to_the_gradient(device, sizes, T):
    model, x, d = random_problem(sizes, T, seed=3, device=device)
    ours = per_sample_gradients(model, x, d)
    sse_loss(model(x), d).backward()
    for l, (mine, W) in enumerate(zip(ours, model.weights)):
        torch.testing.assert_close(mine.sum(0), W.grad, rtol=1e-10, atol=1e-14, msg=f"Σ_t ∂E_t/∂W^({l})")


def test_per_sample_gradients_flatten_leading_dimensions():
    model, x, d = random_problem((3, 4, 2), 12, seed=4)
    flat = per_sample_gradients(model, x, d)
    batched = per_sample_gradients(model, x.reshape(3, 4, 3), d.reshape(3, 4, 2))
    for l, (a, b) in enumerate(zip(batched, flat)):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"W^({l}) with x of shape (3, 4, n)")


def test_per_sample_gradients_float32_match_float64():
    model, x, d = random_problem((3, 3, 3, 1), 20, seed=5)
    reference = per_sample_gradients(model, x, d)
    model32 = model.float()
    ours = per_sample_gradients(model32, x.float(), d.float())
    for l, (a, b) in enumerate(zip(ours, reference)):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-6, msg=f"W^({l}) in float32")


def test_per_sample_gradients_check_d():
    model, x, d = random_problem((3, 2), 4)
    with pytest.raises(ValueError, match="d has shape"):
        per_sample_gradients(model, x, d[:3])
    with pytest.raises(ValueError, match="expects 3 features"):
        per_sample_gradients(model, x[:, :2], d)


# --- Jacobian ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "T"), ARCHITECTURES, ids=ARCH_IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_jacobian_matches_jacrev(device, sizes, T, seed):
    model, x, _ = random_problem(sizes, T, seed=seed, device=device)
    J = jacobian(model, x)
    P = sum(W.numel() for W in model.weights)
    m = sizes[-1]
    assert J.shape == (T * m, P)
    blocks = torch.func.jacrev(lambda ws: sigmoid_mlp_autograd(x, ws))(detached(model))  # (T, m, *W.shape)
    reference = torch.cat([b.reshape(T * m, -1) for b in blocks], dim=1)
    torch.testing.assert_close(J, reference, rtol=1e-10, atol=1e-14, msg=f"J for sizes {sizes}")


def test_jacobian_gives_the_gradient():
    # ∇E = −Jᵀe with e = d − y^(L) flattened like y.reshape(-1): ties the row and column orders
    # to the ones sse_loss and model.weights use.
    model, x, d = random_problem((2, 5, 3), 8, seed=6)
    J = jacobian(model, x)
    e = (d - model(x)).detach().reshape(-1)
    sse_loss(model(x), d).backward()
    grad = torch.cat([W.grad.reshape(-1) for W in model.weights])
    torch.testing.assert_close(-J.T @ e, grad, rtol=1e-10, atol=1e-14, msg="−Jᵀe against ∂E/∂w")


def test_jacobian_flattens_leading_dimensions():
    model, x, _ = random_problem((3, 4, 2), 12, seed=7)
    torch.testing.assert_close(
        jacobian(model, x.reshape(2, 6, 3)), jacobian(model, x), rtol=0, atol=0, msg="x of shape (2, 6, n)"
    )


# --- Hessian-vector products ------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "T"), ARCHITECTURES, ids=ARCH_IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_hvp_matches_torch_func(device, sizes, T, seed):
    model, x, d = random_problem(sizes, T, seed=seed, device=device)
    g = torch.Generator().manual_seed(seed + 100)
    v = [torch.randn(W.shape, generator=g, dtype=W.dtype).to(device) for W in model.weights]
    ours = hvp(model, x, d, v)
    weights = detached(model)
    _, reference = torch.func.jvp(lambda ws: torch.func.grad(E_autograd)(ws, x, d), (weights,), (v,))
    for l, (mine, ref) in enumerate(zip(ours, reference)):
        torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-13, msg=f"(Hv) for W^({l})")


def test_hvp_is_the_hessian_times_v():
    model, x, d = random_problem((2, 3, 1), 6, seed=8)
    weights = detached(model)
    flat = torch.cat([W.reshape(-1) for W in weights])
    shapes = [W.shape for W in weights]

    def E_flat(w):
        ws = [c.reshape(s) for c, s in zip(w.split([s.numel() for s in shapes]), shapes)]
        return E_autograd(ws, x, d)

    H = torch.func.hessian(E_flat)(flat)  # (P, P)
    torch.testing.assert_close(H, H.T, rtol=1e-12, atol=1e-14, msg="the Hessian is symmetric")
    for i in range(flat.numel()):  # every column of H, one unit direction at a time
        unit = torch.zeros_like(flat)
        unit[i] = 1.0
        v = [c.reshape(s) for c, s in zip(unit.split([s.numel() for s in shapes]), shapes)]
        column = torch.cat([h.reshape(-1) for h in hvp(model, x, d, v)])
        torch.testing.assert_close(column, H[:, i], rtol=1e-10, atol=1e-13, msg=f"column {i} of H")


def test_hvp_leaves_the_model_alone():
    model, x, d = random_problem((3, 3, 3, 1), 5, seed=9)
    before = detached(model)
    hvp(model, x, d, [torch.ones_like(W) for W in model.weights])
    assert all(W.grad is None for W in model.weights)
    for W, W0 in zip(model.weights, before):
        torch.testing.assert_close(W.detach(), W0, rtol=0, atol=0, msg="weights unchanged")


def test_hvp_checks_v():
    model, x, d = random_problem((3, 2, 1), 4)
    with pytest.raises(ValueError, match="one tensor per weight matrix"):
        hvp(model, x, d, [torch.ones(2, 3, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"v\[1\] has shape \(2, 1\)"):
        hvp(model, x, d, [torch.ones(2, 3, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)])
    with pytest.raises(TypeError, match=r"v\[0\] must be a torch.Tensor"):
        hvp(model, x, d, [[1.0], torch.ones(1, 2, dtype=torch.float64)])


# --- double backward ----------------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "T"), ARCHITECTURES, ids=ARCH_IDS)
@pytest.mark.parametrize("x_grad", [False, True], ids=["x-const", "x-grad"])
def test_gradgradcheck_random_architectures(sizes, T, x_grad):
    model, x, _ = random_problem(sizes, T, seed=10)
    inputs = [x.clone().requires_grad_(x_grad), *(W.requires_grad_(True) for W in detached(model))]
    # Every output y^(1..L) of the Function, so that the upstream gradients g_l of the
    # intermediate layers are differentiated too.
    assert torch.autograd.gradgradcheck(SigmoidMLPFunction.apply, inputs)
    assert torch.autograd.gradgradcheck(lambda x, *ws: sigmoid_mlp(x, ws), inputs)


# --- torch.func over sigmoid_mlp ---------------------------------------------------------------


def test_func_grad_matches_autograd():
    model, x, d = random_problem((3, 3, 3, 1), 10, seed=11)
    weights = detached(model)
    ours = torch.func.grad(E_manual)(weights, x, d)
    reference = torch.func.grad(E_autograd)(weights, x, d)
    for l, (a, b) in enumerate(zip(ours, reference)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=f"torch.func.grad, W^({l})")


def test_func_jacrev_over_x_matches_autograd():
    model, x, _ = random_problem((3, 4, 2), 6, seed=12)
    weights = detached(model)
    ours = torch.func.jacrev(lambda x: sigmoid_mlp(x, weights))(x)
    reference = torch.func.jacrev(lambda x: sigmoid_mlp_autograd(x, weights))(x)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-15, msg="∂y/∂x by jacrev")


def test_vmap_over_a_batch_of_weight_sets():
    B, sizes = 4, (3, 5, 2)
    _, x, d = random_problem(sizes, 7, seed=13)
    sets = [detached(random_problem(sizes, 1, seed=20 + b)[0]) for b in range(B)]
    stacked = [torch.stack(Ws) for Ws in zip(*sets)]  # W^(l) for every set, (B, size_{l+1}, size_l)

    ys = torch.func.vmap(lambda ws: sigmoid_mlp(x, ws))(stacked)  # (B, T, m)
    grads = torch.func.vmap(torch.func.grad(E_manual), in_dims=(0, None, None))(stacked, x, d)
    for b, ws in enumerate(sets):
        torch.testing.assert_close(
            ys[b], sigmoid_mlp_autograd(x, ws), rtol=1e-12, atol=1e-15, msg=f"y for set {b}"
        )
        for l, (g, ref) in enumerate(zip(grads, torch.func.grad(E_autograd)(ws, x, d))):
            torch.testing.assert_close(g[b], ref, rtol=1e-12, atol=1e-15, msg=f"∂E/∂W^({l}), set {b}")


def test_vmap_over_batches_of_points():
    model, _, _ = random_problem((2, 3, 1), 1, seed=14)
    weights = detached(model)
    xs = torch.rand(5, 6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ys = torch.func.vmap(lambda x: sigmoid_mlp(x, weights))(xs)
    torch.testing.assert_close(ys, sigmoid_mlp_autograd(xs, weights), rtol=1e-12, atol=1e-15, msg="vmap x")


# --- torch.compile ------------------------------------------------------------------------------


class RecordingBackend:
    """A ``torch.compile`` backend that keeps every graph Dynamo hands it, then runs ``aot_eager``.

    ``aot_eager`` runs AOTAutograd, which traces forward and the Function's backward into graphs
    (what inductor would then compile) without inductor's C++ compile time, about 30 s cold.
    """

    def __init__(self):
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)


@pytest.mark.parametrize("x_grad", [False, True], ids=["x-const", "x-grad"])
def test_compile_fullgraph_forward_and_backward(x_grad):
    model, x, d = random_problem((3, 3, 3, 1), 16, seed=15)
    backend = RecordingBackend()
    step = torch.compile(E_manual, backend=backend, fullgraph=True)
    results = []
    for forward in (step, E_manual):
        leaves = [x.clone().requires_grad_(x_grad), *(W.requires_grad_(True) for W in detached(model))]
        E = forward(leaves[1:], leaves[0], d)
        E.backward()
        results.append((E.detach(), [t.grad for t in leaves[int(not x_grad) :]]))
    assert len(backend.graphs) == 1, "one graph, no graph break"
    # The Function enters the graph whole, with its hand-written backward as the backward body,
    # rather than being traced through as plain ops that autograd would differentiate.
    assert "autograd_function_apply" in backend.graphs[0].code
    (E_c, grads_c), (E_e, grads_e) = results
    torch.testing.assert_close(E_c, E_e, rtol=1e-12, atol=1e-15, msg="compiled E")
    for i, (a, b) in enumerate(zip(grads_c, grads_e)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=f"compiled gradient {i}")


def test_compiled_training_steps_match_eager():
    # Several steps through the same compiled graph: no recompilation, the same weights as eager.
    model, x, d = random_problem((2, 4, 1), 10, seed=16, dtype=torch.float32)
    twin = SigmoidMLP(2, (4,), 1)
    twin.load_state_dict(model.state_dict())
    backend = RecordingBackend()
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    for net in (compiled, twin):
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        for _ in range(5):
            opt.zero_grad()
            sse_loss(net(x), d).backward()
            opt.step()
    assert len(backend.graphs) == 1, "compiled once for all five steps"
    for l, (a, b) in enumerate(zip(model.weights, twin.weights)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"W^({l}) after 5 compiled steps")


# --- autocast -----------------------------------------------------------------------------------


def _amp_gradients(model, x, d, *, x_grad=False):
    model.zero_grad()
    x = x.clone().requires_grad_(x_grad)
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        y = model(x)
        E = sse_loss(y, d)
    E.backward()
    return y, [W.grad for W in model.weights], x.grad


@pytest.mark.parametrize("x_grad", [False, True], ids=["x-const", "x-grad"])
def test_autocast_computes_in_bfloat16_and_returns_float32_gradients(device, x_grad):
    model, x, d = random_problem((3, 8, 8, 2), 64, seed=17, dtype=torch.float32, device=device)
    y, grads, x_gradient = _amp_gradients(model, x, d, x_grad=x_grad)
    assert y.dtype == torch.bfloat16
    assert [g.dtype for g in grads] == [torch.float32] * 3
    assert (x_gradient is not None) == x_grad
    if x_grad:
        assert x_gradient.dtype == torch.float32

    # The same numbers as autocast applied to the plain ops: both round to bfloat16 in the same
    # places; a different summation order inside bfloat16 matmuls may still move a last bit.
    model.backend = "autograd"
    y_ref, grads_ref, x_ref = _amp_gradients(model, x, d, x_grad=x_grad)
    torch.testing.assert_close(y, y_ref, rtol=1e-2, atol=1e-2, msg="y^(L) against the autograd backend")
    for l, (a, b) in enumerate(zip(grads, grads_ref)):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3, msg=f"∂E/∂W^({l}) against autograd backend")
    if x_grad:
        torch.testing.assert_close(x_gradient, x_ref, rtol=2e-2, atol=2e-3, msg="∂E/∂x against autograd")

    # And close to float32, to bfloat16's 8 bits.
    model.backend = "manual"
    model.zero_grad()
    sse_loss(model(x), d).backward()
    for l, (a, W) in enumerate(zip(grads, model.weights)):
        scale = W.grad.abs().max().item()
        assert (a - W.grad).abs().max().item() < 3e-2 * scale, f"∂E/∂W^({l}) bfloat16 vs float32"


def test_autocast_leaves_float64_alone():
    model, x, _ = random_problem((3, 3, 3, 1), 8, seed=18)
    reference = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, reference, rtol=0, atol=0, msg="float64 under autocast")


def test_autocast_off_is_untouched():
    model, x, _ = random_problem((3, 3, 3, 1), 8, seed=19, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert model(x).dtype == torch.float32


def test_compile_fullgraph_without_grad():
    # Inference under no_grad / inference_mode: one graph, the same outputs as eager.
    model, x, _ = random_problem((3, 3, 3, 1), 16, seed=20)
    backend = RecordingBackend()
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    with torch.no_grad():
        y = compiled(x)
    with torch.inference_mode():
        y_inference = compiled(x)
    reference = sigmoid_mlp_autograd(x, detached(model))
    torch.testing.assert_close(y, reference, rtol=1e-12, atol=1e-15, msg="compiled under no_grad")
    torch.testing.assert_close(y_inference, reference, rtol=1e-12, atol=1e-15, msg="under inference_mode")
    assert len(backend.graphs) >= 1
