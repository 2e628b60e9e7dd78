"""The module with PyTorch's own tools: one group of tests per row of the README's interoperability table.

Each compares with the same network run eagerly, or with the same weights on the ``"autograd"``
backend (plain torch ops that autograd differentiates), in float64. The exports of a fitted
regressor (``export_onnx``, ``export_c``) are tested in ``test_export.py``.
"""

import io

import numpy as np
import pytest
import torch
from torch.func import functional_call

from torch_sigmoid_mlp import SigmoidMLP, sse_loss

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

# float64 results of the same operations in another order (another kernel, a fused graph):
# a few ulps of each result, far below these bounds.
RTOL = 1e-12


def twins(sizes=(3, 4, 2), *, seed=0, dtype=torch.float64):
    """The same network on the ``"manual"`` backend and on the ``"autograd"`` backend."""
    manual = SigmoidMLP(
        sizes[0], sizes[1:-1], sizes[-1], dtype=dtype, generator=torch.Generator().manual_seed(seed)
    )
    reference = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], backend="autograd", dtype=dtype)
    reference.load_state_dict(manual.state_dict())
    return manual, reference


def points(T, n, *, seed=1, dtype=torch.float64, lead=()):
    return torch.rand(*lead, T, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def params_of(model):
    return {name: p.detach() for name, p in model.named_parameters()}


def assert_close_tree(ours, ref, what):
    """Every tensor of two matching pytrees agrees to ``RTOL`` of its scale."""
    flat, spec = torch.utils._pytree.tree_flatten(ours)
    flat_ref, spec_ref = torch.utils._pytree.tree_flatten(ref)
    assert spec == spec_ref, f"{what}: structures differ"
    for i, (a, b) in enumerate(zip(flat, flat_ref)):
        scale = b.abs().max().item() if b.numel() else 0.0
        torch.testing.assert_close(a, b, rtol=RTOL, atol=RTOL * scale, msg=lambda s, i=i: f"{what}[{i}]: {s}")


# --- torch.func ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd"])
@pytest.mark.parametrize("wrt", ["x", "weights"])
def test_func_jacobians_of_the_module(transform, wrt):
    manual, reference = twins()
    x = points(5, 3)
    jac = getattr(torch.func, transform)
    results = []
    for model in (manual, reference):
        params = params_of(model)
        if wrt == "x":
            results.append(jac(lambda x, model=model, params=params: functional_call(model, params, (x,)))(x))
        else:
            results.append(jac(lambda p, model=model: functional_call(model, p, (x,)))(params))
    assert_close_tree(*results, f"{transform} over {wrt}")


def test_func_hessian_of_E():
    manual, reference = twins()
    x, d = points(5, 3), points(5, 2, seed=2)
    results = []
    for model in (manual, reference):
        params = params_of(model)

        def E(p, x, model=model):
            return sse_loss(functional_call(model, p, (x,)), d)

        results.append(
            (torch.func.hessian(E, argnums=0)(params, x), torch.func.hessian(E, argnums=1)(params, x))
        )
    assert_close_tree(*results, "hessian of E over the weights and over x")


def test_func_vmap_over_points_and_over_models():
    manual, reference = twins()
    xs = points(6, 3, lead=(4,))  # 4 batches of 6 points
    ys = torch.func.vmap(lambda x: manual(x))(xs)
    assert_close_tree(ys, reference(xs), "vmap over batches of points")

    # an ensemble: 3 models' weights stacked, one vmapped call
    models = [twins(seed=s)[0] for s in range(3)]
    stacked, _ = torch.func.stack_module_state(models)
    x = points(6, 3)
    ys = torch.func.vmap(lambda p: functional_call(manual, p, (x,)))(stacked)
    assert_close_tree(list(ys), [m(x).detach() for m in models], "vmap over stacked models")


def test_func_per_point_gradients():
    manual, reference = twins()
    x, d = points(7, 3), points(7, 2, seed=3)
    results = []
    for model in (manual, reference):

        def E_t(p, x_t, d_t, model=model):
            return sse_loss(functional_call(model, p, (x_t.unsqueeze(0),)), d_t.unsqueeze(0))

        results.append(torch.func.vmap(torch.func.grad(E_t), in_dims=(None, 0, 0))(params_of(model), x, d))
    assert_close_tree(*results, "vmap(grad(E_t)), per point")


# --- torch.compile ------------------------------------------------------------------------------


@pytest.mark.slow
def test_compile_module_with_inductor_forward_and_backward():
    # torch.compile's default backend, inductor, which generates and compiles C++ (CPU): the slow
    # test of this file, about 40 s cold on two cores and under 10 s with inductor's cache warm.
    manual, _ = twins((3, 3, 3, 1))
    compiled = torch.compile(manual, fullgraph=True)
    x, d = points(16, 3), points(16, 1, seed=4)
    results = []
    for net in (compiled, manual):
        manual.zero_grad()
        x_leaf = x.clone().requires_grad_()
        E = sse_loss(net(x_leaf), d)
        E.backward()
        results.append([E.detach(), x_leaf.grad, *(W.grad.clone() for W in manual.weights)])
    assert_close_tree(*results, "inductor-compiled E and its gradients against eager")


def test_compile_module_inside_a_model():
    # the SigmoidMLP as one layer of a larger compiled model, trained for a few steps
    manual, _ = twins((4, 5, 2))
    twin_net = torch.nn.Sequential(torch.nn.Linear(3, 4, dtype=torch.float64), manual)
    eager_net = torch.nn.Sequential(
        torch.nn.Linear(3, 4, dtype=torch.float64), SigmoidMLP(4, (5,), 2, dtype=torch.float64)
    )
    eager_net.load_state_dict(twin_net.state_dict())
    compiled = torch.compile(twin_net, backend="aot_eager", fullgraph=True)
    x, d = points(10, 3), points(10, 2, seed=5)
    for net, params in ((compiled, twin_net.parameters()), (eager_net, eager_net.parameters())):
        opt = torch.optim.SGD(params, lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            sse_loss(net(x), d).backward()
            opt.step()
    assert_close_tree(
        list(twin_net.state_dict().values()), list(eager_net.state_dict().values()), "after 3 steps"
    )


# --- torch.export -------------------------------------------------------------------------------


def test_torch_export_of_the_module():
    manual, reference = twins((3, 3, 3, 1))
    N = torch.export.Dim("N")
    program = torch.export.export(manual, (points(8, 3),), dynamic_shapes={"x": {0: N}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()
    for T in (1, 8, 50):  # the batch size is free
        x = points(T, 3, seed=T)
        assert_close_tree(loaded(x), reference(x).detach(), f"exported program, T = {T}")
    ops = {node.target for node in program.graph.nodes if node.op == "call_function"}
    assert all("linear" in str(op) or "sigmoid" in str(op) for op in ops), f"unexpected ops {ops}"


# --- ONNX through torch.onnx.export -------------------------------------------------------------


def test_torch_onnx_export_of_the_module(tmp_path):
    pytest.importorskip("onnxscript")  # what torch.onnx.export(dynamo=True) translates with
    ort = pytest.importorskip("onnxruntime")
    manual, reference = twins((3, 3, 3, 1), dtype=torch.float32)
    path = tmp_path / "module.onnx"
    torch.onnx.export(
        manual.eval(),
        (points(8, 3, dtype=torch.float32),),
        path,
        dynamo=True,
        input_names=["x"],
        output_names=["y"],
        dynamic_shapes={"x": {0: torch.export.Dim("N")}},
        verbose=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for T in (1, 30):
        x = points(T, 3, seed=T, dtype=torch.float32)
        (y,) = session.run(None, {"x": x.numpy()})
        # float32 in both; onnxruntime's kernels round in their own order: a few float32 ulps
        np.testing.assert_allclose(y, reference(x).detach().numpy(), rtol=1e-6, atol=1e-6)
