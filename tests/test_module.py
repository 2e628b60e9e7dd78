"""``SigmoidMLP``: architecture, initialisation, backends, conversions, and its checks."""

import copy
import math

import pytest
import torch
from torch import nn

from torch_sigmoid_mlp import SigmoidMLP, sigmoid_mlp_autograd, sse_loss

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- architecture -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, sizes",
    [
        ((3,), {}, (3, 3, 3, 1)),  # SPEC.md's default n → n → n → 1
        ((5,), {}, (5, 5, 5, 1)),
        ((4, ()), {}, (4, 1)),  # no hidden layer
        ((4, (), 2), {}, (4, 2)),
        ((2, (7,)), {}, (2, 7, 1)),
        ((2, [3, 5, 4], 3), {}, (2, 3, 5, 4, 3)),
        ((6,), {"hidden": (2, 2), "out_features": 4}, (6, 2, 2, 4)),
    ],
)
def test_sizes_and_weight_shapes(args, kwargs, sizes):
    model = SigmoidMLP(*args, **kwargs)
    assert model.sizes == sizes
    assert model.num_layers == len(sizes) - 1
    assert model.in_features == sizes[0] and model.out_features == sizes[-1]
    assert [tuple(W.shape) for W in model.weights] == list(zip(sizes[1:], sizes[:-1]))


def test_no_parameter_but_the_weights():
    model = SigmoidMLP(3, (4, 2), 2)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["weights.0", "weights.1", "weights.2"], "no biases, nothing besides W^(l)"
    assert list(model.buffers()) == []
    assert sum(p.numel() for p in model.parameters()) == 4 * 3 + 2 * 4 + 2 * 2


@pytest.mark.parametrize(
    "args, match",
    [
        ((0,), "in_features must be a positive integer, got 0"),
        ((2.0,), "in_features must be a positive integer, got 2.0"),
        ((True,), "in_features must be a positive integer, got True"),
        ((3, (4, 0)), r"hidden\[1\] must be a positive integer, got 0"),
        ((3, (4,), -1), "out_features must be a positive integer, got -1"),
    ],
)
def test_bad_sizes_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        SigmoidMLP(*args)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_dtype_and_device(device, dtype):
    model = SigmoidMLP(3, (4,), device=device, dtype=dtype, generator=seeded(0))
    assert all(W.dtype == dtype and W.device.type == device.type for W in model.weights)
    x = torch.rand(5, 3, dtype=dtype, device=device)
    y = model(x)
    assert y.dtype == dtype and y.device.type == device.type and y.shape == (5, 1)
    assert ((y > 0) & (y < 1)).all()


# --- initialisation -----------------------------------------------------------------------------


def test_reset_parameters_is_reproducible():
    a = SigmoidMLP(4, (6, 5), 2, generator=seeded(7))
    b = SigmoidMLP(4, (6, 5), 2, generator=seeded(7))
    c = SigmoidMLP(4, (6, 5), 2, generator=seeded(8))
    for l, (Wa, Wb, Wc) in enumerate(zip(a.weights, b.weights, c.weights)):
        assert torch.equal(Wa, Wb), f"W^({l}) differs for the same seed"
        assert not torch.equal(Wa, Wc), f"W^({l}) is equal for different seeds"
    before = [W.detach().clone() for W in a.weights]
    a.reset_parameters(seeded(8))
    assert all(torch.equal(Wa, Wc) for Wa, Wc in zip(a.weights, c.weights))
    a.reset_parameters(seeded(7))
    assert all(torch.equal(Wa, W) for Wa, W in zip(a.weights, before))


def test_reset_parameters_bounds():
    # w ~ U(−a, a) with a = sqrt(12 / size_l): every draw inside, the extremes near ±a, and the
    # variance a²/3 = 4 / size_l.
    model = SigmoidMLP(200, (50,), 300, dtype=torch.float64, generator=seeded(1))
    for l, W in enumerate(model.weights):
        a = math.sqrt(12 / model.sizes[l])
        assert W.abs().max() <= a, f"W^({l}) leaves [−a, a]"
        assert W.max() > 0.99 * a and W.min() < -0.99 * a, f"W^({l}) does not fill [−a, a]"
        assert abs(W.var().item() / (a**2 / 3) - 1) < 0.05, f"Var(W^({l})) is not a²/3"
        assert abs(W.mean().item()) < 0.05 * a


def test_cpu_generator_gives_the_same_weights_on_any_device(device):
    on_cpu = SigmoidMLP(3, (4,), 2, dtype=torch.float64, generator=seeded(5))
    here = SigmoidMLP(3, (4,), 2, dtype=torch.float64, device=device, generator=seeded(5))
    for l, (W_cpu, W) in enumerate(zip(on_cpu.weights, here.weights)):
        assert W.device.type == device.type
        assert torch.equal(W.cpu(), W_cpu), f"W^({l}) on {device} differs from the CPU draw"
    # A generator on the weights' own device draws in place, reproducibly.
    here.reset_parameters(torch.Generator(device).manual_seed(6))
    first = [W.detach().clone() for W in here.weights]
    here.reset_parameters(torch.Generator(device).manual_seed(6))
    assert all(torch.equal(W, W1) for W, W1 in zip(here.weights, first))


def test_reset_parameters_uses_global_generator_without_one():
    torch.manual_seed(3)
    a = SigmoidMLP(3)
    torch.manual_seed(3)
    b = SigmoidMLP(3)
    assert all(torch.equal(Wa, Wb) for Wa, Wb in zip(a.weights, b.weights))


# --- forward and backends -----------------------------------------------------------------------


def test_forward_matches_formula_on_any_leading_shape():
    model = SigmoidMLP(3, (4,), 2, dtype=torch.float64, generator=seeded(2))
    x = torch.rand(2, 5, 3, dtype=torch.float64, generator=seeded(3))
    y = model(x)
    assert y.shape == (2, 5, 2)
    W0, W1 = (W.detach() for W in model.weights)
    expected = torch.sigmoid(torch.sigmoid(x @ W0.T) @ W1.T)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=0, msg="(2, 5, 3) input")
    torch.testing.assert_close(model(x[0, 0]), expected[0, 0], rtol=1e-12, atol=0, msg="1-D input")
    assert model(x[0, 0]).shape == (2,)
    torch.testing.assert_close(model(x.reshape(10, 3)), expected.reshape(10, 2), msg="2-D input")


def test_manual_backend_runs_the_hand_written_function():
    model = SigmoidMLP(2, generator=seeded(4))
    x = torch.rand(3, 2)
    assert type(model(x).grad_fn).__name__ == "SigmoidMLPFunctionBackward"
    model.backend = "autograd"
    assert type(model(x).grad_fn).__name__ == "SigmoidBackward0"


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_backend_switch_on_live_model(device, dtype, rtol):
    model = SigmoidMLP(4, (5, 3), 2, device=device, dtype=dtype, generator=seeded(5))
    g = seeded(6)
    x = torch.rand(16, 4, generator=g, dtype=dtype).to(device)
    d = torch.rand(16, 2, generator=g, dtype=dtype).to(device)
    results = {}
    for backend in ("manual", "autograd", "manual"):
        model.backend = backend
        model.zero_grad()
        y = model(x)
        sse_loss(y, d).backward()
        results.setdefault(backend, []).append((y.detach(), [W.grad.clone() for W in model.weights]))
    (y_m, g_m), (y_m2, g_m2) = results["manual"]
    (y_a, g_a) = results["autograd"][0]
    torch.testing.assert_close(y_m, y_a, rtol=rtol, atol=0, msg="outputs differ between backends")
    torch.testing.assert_close(y_m, y_m2, rtol=0, atol=0, msg="switching back changed the output")
    for l, (m, a, m2) in enumerate(zip(g_m, g_a, g_m2)):
        scale = a.abs().max().item()
        torch.testing.assert_close(m, a, rtol=rtol, atol=rtol * scale, msg=f"∂E/∂W^({l}) differs")
        torch.testing.assert_close(m, m2, rtol=0, atol=0, msg=f"∂E/∂W^({l}) changed after switching back")


def test_invalid_backend():
    with pytest.raises(ValueError, match=r"backend must be one of \['autograd', 'manual'\], got 'numpy'"):
        SigmoidMLP(3, backend="numpy")
    model = SigmoidMLP(3)
    with pytest.raises(ValueError, match="got 'Manual'"):
        model.backend = "Manual"
    assert model.backend == "manual", "a rejected backend must leave the old one in place"


def test_repr_shows_sizes_and_backend():
    model = SigmoidMLP(3, (4, 2), 2, backend="autograd")
    assert repr(model) == "SigmoidMLP(sizes=(3, 4, 2, 2), backend='autograd')"
    assert model.extra_repr() == "sizes=(3, 4, 2, 2), backend='autograd'"
    model.backend = "manual"
    assert "backend='manual'" in repr(model)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["manual", "autograd"])
@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.rand(4, 2), ValueError, r"W\^\(0\) expects 3 features but x has 2"),
        (torch.ones(4, 3, dtype=torch.int32), TypeError, "floating dtype, got torch.int32"),
        (torch.ones(4, 3, dtype=torch.bool), TypeError, "floating dtype, got torch.bool"),
        (torch.tensor(0.5), ValueError, "at least one dimension"),
        (torch.rand(4, 3, dtype=torch.float64), TypeError, "torch.float32 but x has dtype torch.float64"),
        (torch.rand(4, 3, device="meta"), ValueError, "is on cpu but x is on meta"),
    ],
    ids=["features", "int", "bool", "0-d", "dtype", "device"],
)
def test_forward_rejects_bad_input(backend, x, error, match):
    model = SigmoidMLP(3, backend=backend)
    with pytest.raises(error, match=match):
        model(x)


# --- conversions and state ----------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(3, 1), (3, 3, 3, 1), (2, 5, 4, 3)])
def test_sequential_round_trip(sizes):
    model = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], dtype=torch.float64, generator=seeded(9))
    seq = model.to_sequential()
    assert len(seq) == 2 * model.num_layers
    assert all(isinstance(m, nn.Linear) and m.bias is None for m in seq[::2])
    assert all(isinstance(m, nn.Sigmoid) for m in seq[1::2])
    x = torch.rand(7, sizes[0], dtype=torch.float64, generator=seeded(10))
    torch.testing.assert_close(seq(x), model(x), rtol=0, atol=0, msg="to_sequential changed F(x)")

    back = SigmoidMLP.from_sequential(seq, backend="autograd")
    assert back.sizes == model.sizes and back.backend == "autograd"
    assert all(W.dtype == torch.float64 for W in back.weights)
    torch.testing.assert_close(back(x), seq(x), rtol=0, atol=0, msg="from_sequential changed F(x)")
    for W, linear in zip(back.weights, seq[::2]):
        assert torch.equal(W, linear.weight)
        assert W.data_ptr() != linear.weight.data_ptr(), "from_sequential must copy, not share"


def test_from_sequential_of_a_fresh_sequential():
    torch.manual_seed(11)
    seq = nn.Sequential(nn.Linear(4, 6, bias=False), nn.Sigmoid(), nn.Linear(6, 2, bias=False), nn.Sigmoid())
    model = SigmoidMLP.from_sequential(seq)
    assert model.sizes == (4, 6, 2) and model.backend == "manual"
    x = torch.rand(5, 4)
    torch.testing.assert_close(model(x), seq(x), msg="from_sequential changed F(x)")


@pytest.mark.parametrize(
    "layers, error, match",
    [
        ([nn.Linear(3, 2), nn.Sigmoid()], ValueError, "layer 0 .* has a bias"),
        ([nn.Linear(3, 2, bias=False), nn.ReLU()], ValueError, "layer 1 must be nn.Sigmoid, got ReLU"),
        ([nn.Linear(3, 2, bias=False)], ValueError, r"pairs, got 1 module\(s\)"),
        (
            [nn.Linear(3, 2, bias=False), nn.Sigmoid(), nn.Linear(3, 1, bias=False)],
            ValueError,
            r"pairs, got 3 module\(s\)",
        ),
        ([nn.Sigmoid(), nn.Linear(3, 2, bias=False)], ValueError, "layer 0 must be nn.Linear, got Sigmoid"),
        (
            [nn.Linear(3, 2, bias=False), nn.Sigmoid(), nn.Linear(4, 1, bias=False), nn.Sigmoid()],
            ValueError,
            "layer 2 takes 4 features, the layer before gives 2",
        ),
        ([], ValueError, r"got 0 module\(s\)"),
    ],
    ids=["bias", "relu", "missing sigmoid", "missing last sigmoid", "order", "non-chaining", "empty"],
)
def test_from_sequential_rejects(layers, error, match):
    with pytest.raises(error, match=match):
        SigmoidMLP.from_sequential(nn.Sequential(*layers))


def test_from_sequential_needs_a_sequential():
    with pytest.raises(TypeError, match=r"expected nn\.Sequential, got Linear"):
        SigmoidMLP.from_sequential(nn.Linear(3, 1, bias=False))


def test_state_dict_round_trip():
    model = SigmoidMLP(3, (4,), 2, generator=seeded(12))
    state = model.state_dict()
    assert list(state) == ["weights.0", "weights.1"]
    other = SigmoidMLP(3, (4,), 2, generator=seeded(13))
    x = torch.rand(6, 3)
    assert not torch.equal(other(x), model(x))
    other.load_state_dict(state)
    torch.testing.assert_close(other(x), model(x), rtol=0, atol=0, msg="state_dict round trip changed F(x)")
    with pytest.raises(RuntimeError, match="size mismatch"):
        SigmoidMLP(3, (5,), 2).load_state_dict(state)


def test_to_moves_and_casts(device):
    model = SigmoidMLP(3, generator=seeded(14)).to(device=device, dtype=torch.float64)
    assert all(W.device.type == device.type and W.dtype == torch.float64 for W in model.weights)
    x = torch.rand(4, 3, dtype=torch.float64, device=device)
    expected = sigmoid_mlp_autograd(x, [W.detach() for W in model.weights])
    torch.testing.assert_close(model(x), expected, msg="F(x) after .to()")


# --- autocast inside a larger model -----------------------------------------------------------

# The dtype torch.autocast computes in, by device type: bfloat16 is what CPUs support.
AMP_DTYPE = {"cpu": torch.bfloat16, "cuda": torch.float16}


def seeded_linear(fan_in: int, fan_out: int, g: torch.Generator) -> nn.Linear:
    linear = nn.Linear(fan_in, fan_out)
    with torch.no_grad():
        for p in linear.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
    return linear


@pytest.mark.parametrize("backend", ["manual", "autograd"])
def test_autocast_inside_sequential_matches_to_sequential(device, backend):
    # Linear → SigmoidMLP → Linear under autocast, against the same network with the SigmoidMLP
    # replaced by its to_sequential(): nn.Linear and nn.Sigmoid are autocast's own reference.
    amp = AMP_DTYPE[device.type]
    g = seeded(20)
    mlp = SigmoidMLP(3, (5,), 2, backend=backend, generator=g)
    model = nn.Sequential(seeded_linear(4, 3, g), mlp, seeded_linear(2, 1, g)).to(device)
    reference = nn.Sequential(copy.deepcopy(model[0]), mlp.to_sequential(), copy.deepcopy(model[2]))
    x = torch.rand(32, 4, generator=g).to(device)
    d = torch.rand(32, 1, generator=g).to(device)
    seen = []
    mlp.register_forward_hook(lambda module, args, out: seen.append((args[0].dtype, out.dtype)))

    results = []
    for net in (model, reference):
        with torch.autocast(device.type, dtype=amp):
            y = net(x)
        sse_loss(y.float(), d).backward()
        results.append((y, [p.grad for p in net.parameters()]))
    (y, grads), (y_ref, grads_ref) = results

    # The SigmoidMLP takes the previous Linear's autocast output and computes in that dtype.
    assert seen == [(amp, amp)], f"SigmoidMLP saw and returned dtypes {seen}"
    assert y.dtype == y_ref.dtype == amp
    assert all(p.dtype == torch.float32 for p in model.parameters()), "autocast must not cast the weights"
    assert [g.dtype for g in grads] == [torch.float32] * len(grads), "gradients in the weights' dtype"
    # Both run the same low-precision operations on the same values; a product's summation order
    # inside the kernel may still differ, which moves a result by a few units of its last place
    # (bfloat16 keeps 8 significant bits: one unit is 2^-8 relative; float16, 2^-11).
    torch.testing.assert_close(y, y_ref, rtol=2e-2, atol=2e-2, msg="y under autocast")
    for i, (a, b) in enumerate(zip(grads, grads_ref)):
        scale = b.abs().max().item()
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2 * scale, msg=f"gradient of parameter {i}")
