"""``TapeFreeStep`` against steepest descent through autograd.

The reference step is what a PyTorch user writes: ``E = sse_loss(model(x), d)`` with the
``"autograd"`` backend, ``E.backward()``, ``W -= η · W.grad``. Both start from the same weights
and must stay together, step after step, to float rounding.
"""

import copy

import pytest
import torch

import torch_sigmoid_mlp
from torch_sigmoid_mlp import SigmoidMLP, sse_loss, train
from torch_sigmoid_mlp.core.tape_free import TapeFreeStep

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

# max |tape_free − autograd| / max |autograd| allowed, by dtype.
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}

ARCHITECTURES = [
    (3, None, 1),  # SPEC.md's n → n → n → 1
    (2, (), 1),  # no hidden layer: W^(0) alone
    (4, (7,), 3),
    (5, (6, 3, 4), 2),
    (1, (1, 1), 1),
]


def make_pair(in_features, hidden, out_features, *, dtype, device, seed=0):
    """Two copies of one random model: one to train through autograd, one through the tape-free step."""
    reference = SigmoidMLP(
        in_features,
        hidden,
        out_features,
        backend="autograd",
        dtype=dtype,
        device=device,
        generator=torch.Generator().manual_seed(seed),
    )
    tape_free = SigmoidMLP(in_features, hidden, out_features, dtype=dtype, device=device)
    tape_free.load_state_dict(reference.state_dict())
    return reference, tape_free


def make_data(T, in_features, out_features, *, dtype, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, in_features, generator=g, dtype=torch.float64)
    d = 0.1 + 0.8 * torch.rand(T, out_features, generator=g, dtype=torch.float64)
    return x.to(device=device, dtype=dtype), d.to(device=device, dtype=dtype)


def autograd_step(model, x, d, lr):
    """One epoch through autograd; returns ``E`` and ``max_t |e(t)|`` before the update."""
    for W in model.weights:
        W.grad = None
    y = model(x)
    E = sse_loss(y, d)
    E.backward()
    with torch.no_grad():
        for W in model.weights:
            W -= lr * W.grad
    return E.detach(), (d - y).abs().max().detach()


def assert_close_rel(actual, expected, dtype, what):
    scale = expected.abs().max().clamp_min(1e-30)
    err = ((actual - expected).abs().max() / scale).item()
    assert err <= RTOL[dtype], f"{what}: relative difference {err:.3g} > {RTOL[dtype]:g}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("arch", ARCHITECTURES, ids=str)
def test_same_weights_loss_and_max_error_as_autograd(device, dtype, arch):
    reference, tape_free = make_pair(*arch, dtype=dtype, device=device)
    x, d = make_data(40, arch[0], arch[2], dtype=dtype, device=device)
    step = TapeFreeStep(tape_free.weights, rows=40)
    for k in range(8):
        E_ref, max_ref = autograd_step(reference, x, d, lr=0.3)
        E, max_error = step.forward(x, d)
        step.update(lr=0.3)
        assert E.shape == () and max_error.shape == ()
        assert_close_rel(E, E_ref, dtype, f"E at epoch {k}")
        assert_close_rel(max_error, max_ref, dtype, f"max |e| at epoch {k}")
        for l, (W, W_ref) in enumerate(zip(tape_free.weights, reference.weights)):
            assert_close_rel(W.detach(), W_ref.detach(), dtype, f"W^({l}) after epoch {k + 1}")


def test_update_actually_moves_weights_downhill():
    _, tape_free = make_pair(3, None, 1, dtype=torch.float64, device="cpu")
    x, d = make_data(30, 3, 1, dtype=torch.float64, device="cpu")
    before = [W.detach().clone() for W in tape_free.weights]
    step = TapeFreeStep(tape_free.weights, rows=30)
    E0, _ = step.forward(x, d)
    step.update(lr=0.5)
    E1, _ = step.forward(x, d)
    assert all(not torch.equal(W, W0) for W, W0 in zip(tape_free.weights, before)), "weights did not change"
    assert E1 < E0, f"E went from {E0.item()} to {E1.item()}"


def test_mini_batches_use_part_of_the_buffers(device):
    """A forward with fewer rows than allocated, then the full size again, matches autograd."""
    reference, tape_free = make_pair(3, (4,), 2, dtype=torch.float64, device=device)
    x, d = make_data(20, 3, 2, dtype=torch.float64, device=device)
    step = TapeFreeStep(tape_free.weights, rows=20)
    for batch in [slice(0, 7), slice(7, 20), slice(0, 20), slice(3, 4)]:
        autograd_step(reference, x[batch], d[batch], lr=0.2)
        step.forward(x[batch], d[batch])
        step.update(lr=0.2)
    for l, (W, W_ref) in enumerate(zip(tape_free.weights, reference.weights)):
        torch.testing.assert_close(W.detach(), W_ref.detach(), rtol=1e-12, atol=1e-14, msg=f"W^({l})")


def test_inputs_that_require_grad_and_grad_left_alone():
    reference, tape_free = make_pair(2, None, 1, dtype=torch.float64, device="cpu")
    x, d = make_data(10, 2, 1, dtype=torch.float64, device="cpu")
    step = TapeFreeStep(tape_free.weights, rows=10)
    step.forward(x.requires_grad_(), d.requires_grad_())
    step.update(lr=0.1)
    assert all(W.grad is None for W in tape_free.weights), "the tape-free step must not create .grad"
    autograd_step(reference, x.detach(), d.detach(), lr=0.1)
    for l, (W, W_ref) in enumerate(zip(tape_free.weights, reference.weights)):
        torch.testing.assert_close(W.detach(), W_ref.detach(), rtol=1e-12, atol=1e-14, msg=f"W^({l})")


def test_run_stops_before_the_update_that_would_follow_the_bound():
    reference, tape_free = make_pair(2, None, 1, dtype=torch.float64, device="cpu")
    x, _ = make_data(16, 2, 1, dtype=torch.float64, device="cpu")
    teacher = SigmoidMLP(2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    d = teacher(x).detach()  # reachable targets, so the bound is met
    step = TapeFreeStep(tape_free.weights, rows=16)
    tol = 0.5 * step.forward(x, d)[1].item()  # met after some epochs, not at the first
    epochs, converged, E, max_error = step.run(x, d, lr=0.5, epochs=2000, tol=tol)
    assert converged and max_error.item() < tol and epochs > 1, (epochs, converged, max_error)
    # The reference, stepped by hand with the same rule, stops at the same epoch with the same weights.
    epoch_ref = 1
    E_ref, max_ref = autograd_step(reference, x, d, lr=0.0)
    while max_ref.item() >= tol:
        autograd_step(reference, x, d, lr=0.5)
        E_ref, max_ref = autograd_step(reference, x, d, lr=0.0)
        epoch_ref += 1
    assert epoch_ref == epochs, f"tape_free stopped at epoch {epochs}, autograd at {epoch_ref}"
    torch.testing.assert_close(E, E_ref, rtol=1e-12, atol=0, msg="E at the stopping epoch")
    for l, (W, W_ref) in enumerate(zip(tape_free.weights, reference.weights)):
        torch.testing.assert_close(W.detach(), W_ref.detach(), rtol=1e-12, atol=1e-14, msg=f"W^({l})")


def test_run_without_tol_takes_every_epoch():
    _, tape_free = make_pair(2, None, 1, dtype=torch.float64, device="cpu")
    x, d = make_data(8, 2, 1, dtype=torch.float64, device="cpu")
    epochs, converged, _, _ = TapeFreeStep(tape_free.weights, rows=8).run(x, d, lr=0.1, epochs=5)
    assert (epochs, converged) == (5, False)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda w: TapeFreeStep(w, rows=0), ValueError, "rows"),
        (lambda w: TapeFreeStep([], rows=3), ValueError, "at least one"),
        (lambda w: TapeFreeStep([w[0], w[2].T], rows=3), ValueError, "W\\^\\(1\\)"),
        (lambda w: TapeFreeStep(w, rows=3).forward(torch.rand(4, 2), torch.rand(4, 1)), ValueError, "T ≤ 3"),
        (lambda w: TapeFreeStep(w, rows=3).forward(torch.rand(3, 5), torch.rand(3, 1)), ValueError, "x must"),
        (lambda w: TapeFreeStep(w, rows=3).forward(torch.rand(3, 2), torch.rand(3, 2)), ValueError, "d must"),
        (
            lambda w: TapeFreeStep(w, rows=3).forward(torch.rand(3, 2).double(), torch.rand(3, 1)),
            TypeError,
            "x must",
        ),
        (
            lambda w: TapeFreeStep(w, rows=3).forward(torch.rand(3, 2), torch.rand(3, 1).double()),
            TypeError,
            "d must",
        ),
        (
            lambda w: TapeFreeStep(w, rows=3).run(torch.rand(3, 2), torch.rand(3, 1), lr=1, epochs=0),
            ValueError,
            "epochs",
        ),
    ],
)
def test_bad_input_is_named(make, error, match):
    weights = [torch.rand(2, 2), torch.rand(2, 2), torch.rand(1, 2)]
    with pytest.raises(error, match=match):
        make(weights)


def test_fused_sgd_step_is_the_tape_free_step_under_its_first_name():
    assert torch_sigmoid_mlp.FusedSGDStep is TapeFreeStep


# -- train's tape-free path ----------------------------------------------------------------------

# rtol, atol for train's weights and E after some epochs: rounding differences grow a little per epoch.
TRAIN_TOL = {torch.float64: (1e-10, 1e-12), torch.float32: (2e-4, 1e-5)}


class FakeWriter:
    """Records what a ``SummaryWriter`` is asked to write, without TensorBoard."""

    def __init__(self):
        self.scalars = {}

    def add_scalar(self, tag, value, step):
        self.scalars[(tag, step)] = value

    def add_histogram(self, *args, **kwargs):
        pass

    def add_hparams(self, *args, **kwargs):
        pass

    def flush(self):
        pass


def spy_on_the_step(monkeypatch):
    """Count TapeFreeStep.update calls and autograd gradients (full batch or per mini-batch) during a run."""
    from torch_sigmoid_mlp.training.objective import Objective

    calls = {"update": 0, "grad": 0}
    update, grad, gradient = TapeFreeStep.update, torch.autograd.grad, Objective.gradient

    def counted_update(self, lr, **kwargs):
        calls["update"] += 1
        update(self, lr, **kwargs)

    def counted_grad(*args, **kwargs):
        calls["grad"] += 1
        return grad(*args, **kwargs)

    def counted_gradient(self):
        calls["grad"] += 1
        return gradient(self)

    monkeypatch.setattr(TapeFreeStep, "update", counted_update)
    monkeypatch.setattr(torch.autograd, "grad", counted_grad)
    monkeypatch.setattr(Objective, "gradient", counted_gradient)
    return calls


def assert_same_run(tape_free, reference, r_tape_free, r_ref, dtype, what):
    rtol, atol = TRAIN_TOL[dtype]
    assert (r_tape_free.epochs, r_tape_free.stop_reason) == (r_ref.epochs, r_ref.stop_reason), what
    torch.testing.assert_close(
        torch.tensor(r_tape_free.loss_history),
        torch.tensor(r_ref.loss_history),
        rtol=rtol,
        atol=atol,
        msg=f"{what}: loss_history",
    )
    for l, (W, W_ref) in enumerate(zip(tape_free.weights, reference.weights)):
        torch.testing.assert_close(W.detach(), W_ref.detach(), rtol=rtol, atol=atol, msg=f"{what}: W^({l})")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("arch", ARCHITECTURES, ids=str)
def test_train_tape_free_equals_the_autograd_backend(device, dtype, arch, monkeypatch):
    reference, tape_free = make_pair(*arch, dtype=dtype, device=device)
    x, d = make_data(50, arch[0], arch[2], dtype=dtype, device=device)
    x_val, d_val = make_data(20, arch[0], arch[2], dtype=dtype, device=device, seed=2)
    settings = {"lr": 0.05, "max_epochs": 25, "validation": (x_val, d_val)}
    r_ref = train(reference, x, d, **settings)
    calls = spy_on_the_step(monkeypatch)
    seen = []
    r_tape_free = train(tape_free, x, d, callback=lambda k, r: seen.append(k), **settings)
    assert calls == {"update": 25, "grad": 0}, f"the tape-free step was not the one taken: {calls}"
    assert seen == list(range(25)), "the callback is called at every epoch that steps"
    assert all(W.grad is None for W in tape_free.weights), "the tape-free path must not create .grad"
    assert_same_run(tape_free, reference, r_tape_free, r_ref, dtype, f"{arch}, {dtype}")
    rtol, atol = TRAIN_TOL[dtype]
    torch.testing.assert_close(
        torch.tensor(r_tape_free.val_history),
        torch.tensor(r_ref.val_history),
        rtol=rtol,
        atol=atol,
        msg="val_history",
    )


def test_train_tape_free_stops_at_the_same_epoch_on_tol(monkeypatch):
    reference, tape_free = make_pair(2, None, 1, dtype=torch.float64, device="cpu")
    x, _ = make_data(16, 2, 1, dtype=torch.float64, device="cpu")
    teacher = SigmoidMLP(2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    d = teacher(x).detach()  # reachable targets, so the bound is met
    tol = 0.5 * (reference(x) - d).abs().max().item()
    r_ref = train(reference, x, d, lr=0.5, tol=tol, max_epochs=2000)
    calls = spy_on_the_step(monkeypatch)
    r_tape_free = train(tape_free, x, d, lr=0.5, tol=tol, max_epochs=2000)
    assert r_tape_free.stop_reason == "tol" and r_tape_free.epochs > 1, r_tape_free
    assert calls == {"update": r_tape_free.epochs, "grad": 0}, calls
    assert_same_run(tape_free, reference, r_tape_free, r_ref, torch.float64, "tol stop")
    assert r_tape_free.max_abs_error == pytest.approx(r_ref.max_abs_error, rel=1e-10)


def test_train_tape_free_diverges_like_autograd(monkeypatch):
    """An update that overflows: both paths stop at the same epoch and restore the same finite weights."""
    reference, tape_free = make_pair(3, None, 1, dtype=torch.float32, device="cpu")
    x, d = make_data(512, 3, 1, dtype=torch.float32, device="cpu")
    r_ref = train(reference, x, d, lr=3e38, max_epochs=50)
    calls = spy_on_the_step(monkeypatch)
    r_tape_free = train(tape_free, x, d, lr=3e38, max_epochs=50)
    assert r_tape_free.stop_reason == "diverged" and calls["grad"] == 0, (r_tape_free, calls)
    assert all(torch.isfinite(W).all() for W in tape_free.weights)
    assert r_tape_free.epochs == r_ref.epochs
    for l, (W, W_ref) in enumerate(zip(tape_free.weights, reference.weights)):
        torch.testing.assert_close(W.detach(), W_ref.detach(), rtol=2e-4, atol=0, msg=f"restored W^({l})")


def test_train_inf_weight_with_finite_E_is_caught():
    """+inf in W^(0) saturates its unit (E stays finite); the weight check still stops the run."""
    _, tape_free = make_pair(2, None, 1, dtype=torch.float64, device="cpu")
    x, d = make_data(10, 2, 1, dtype=torch.float64, device="cpu")
    with torch.no_grad():
        tape_free.weights[0][0, 0] = float("inf")
    assert torch.isfinite(sse_loss(tape_free(x + 0.1), d)), "the premise: E is finite"
    result = train(tape_free, x + 0.1, d, lr=0.1, max_epochs=5)
    assert result.stop_reason == "diverged" and result.epochs == 0, result


def test_logged_epochs_stay_tape_free_and_log_the_steps_gradient(monkeypatch):
    reference, tape_free = make_pair(3, (4,), 2, dtype=torch.float64, device="cpu")
    x, d = make_data(30, 3, 2, dtype=torch.float64, device="cpu")
    unlogged = copy.deepcopy(tape_free)
    w_ref, w_tape_free = FakeWriter(), FakeWriter()
    r_ref = train(reference, x, d, lr=0.1, max_epochs=10, writer=w_ref, log_every=4)
    calls = spy_on_the_step(monkeypatch)
    r_tape_free = train(tape_free, x, d, lr=0.1, max_epochs=10, writer=w_tape_free, log_every=4)
    # every epoch is tape-free: ‖∂E/∂W^(l)‖ is read from the step's own G^(l) = −∂E/∂W^(l)
    assert calls == {"update": 10, "grad": 0}, calls
    assert_same_run(tape_free, reference, r_tape_free, r_ref, torch.float64, "with a writer")
    # Logging only reads what the step computed: the same kernels run in the same order, so the
    # weights are bit for bit those of the run without a writer.
    r_unlogged = train(unlogged, x, d, lr=0.1, max_epochs=10)
    assert r_unlogged.loss_history == r_tape_free.loss_history
    assert all(torch.equal(a, b) for a, b in zip(unlogged.weights, tape_free.weights))
    norms = sorted(key for key in w_tape_free.scalars if key[0].startswith("train/grad_norm"))
    assert norms == sorted(key for key in w_ref.scalars if key[0].startswith("train/grad_norm"))
    assert sorted(k for _, k in norms) == [0, 0, 4, 4, 8, 8], norms  # two layers, three records
    for key in norms:
        assert w_tape_free.scalars[key] == pytest.approx(w_ref.scalars[key], rel=1e-10), key


@pytest.mark.parametrize("settings", [{"momentum": 0.5}, {"batch_size": 8}], ids=["momentum", "mini-batch"])
def test_train_keeps_autograd_where_the_step_needs_it(settings, monkeypatch):
    _, tape_free = make_pair(3, None, 1, dtype=torch.float64, device="cpu")
    x, d = make_data(16, 3, 1, dtype=torch.float64, device="cpu")
    calls = spy_on_the_step(monkeypatch)
    train(tape_free, x, d, lr=0.1, max_epochs=3, **settings)
    assert calls["update"] == 0 and calls["grad"] > 0, calls


def test_train_autograd_backend_is_not_tape_free(monkeypatch):
    reference, _ = make_pair(3, None, 1, dtype=torch.float64, device="cpu")
    x, d = make_data(16, 3, 1, dtype=torch.float64, device="cpu")
    calls = spy_on_the_step(monkeypatch)
    train(reference, x, d, lr=0.1, max_epochs=3)
    # off the tape-free path each epoch's evaluation forms the gradient with E, the stopping one too
    assert calls == {"update": 0, "grad": 4}, calls


def test_float32_step_at_a_million_points_keeps_float32s_accuracy():
    """The step ``η·G^(l)`` summed in its own buffer, then added to ``W^(l)`` once.

    float32's unit roundoff is ``u = 2⁻²⁴ ≈ 6e-8``. Each entry of ``G^(l) = Σ_t δ^(l+1)(t) y^(l)(t)ᵀ``
    sums ``T = 10⁶`` products that carry a few ``u`` each from the forward pass; the matrix product
    sums them in blocks, and with rounding errors of either sign the error of such a sum grows like
    ``√T·u ≈ 6e-5`` of the sum's scale (Higham and Mary, SIAM J. Sci. Comput. 2019). Adding ``η·G`` to
    ``W`` rounds once more, by ``u·|W|``. So the step agrees with float64's to about 1e-4; 1e-3 leaves
    a factor of ten. Accumulating the product straight into ``W`` (``W.addmm_(δᵀ, y, alpha=η)``) rounds
    every block's partial sum against ``|W| ≫ |η·G|`` instead: with the CPU wheel's BLAS on the
    machine this was written on that was 1e-2, but how a BLAS blocks a product is its own choice,
    so that number is reported on failure rather than asserted.
    """
    from torch_sigmoid_mlp.core.tape_free import _sigmoid_backward_out

    T, sizes = 10**6, (4, (16, 16))
    g = torch.Generator().manual_seed(0)
    teacher = SigmoidMLP(*sizes, dtype=torch.float64, generator=g)
    x = (torch.rand(T, 4, generator=g, dtype=torch.float64) * 2 - 1).float()
    with torch.no_grad():
        noise = 0.05 * torch.randn(T, 1, generator=g, dtype=torch.float64)
        d = (teacher(x.double()) + noise).clamp(0.05, 0.95).float()
    start = SigmoidMLP(*sizes, generator=torch.Generator().manual_seed(1))  # float32 weights
    lr = 16.0 / T  # the estimator's default η

    def step(dtype, into_w=False):
        model = copy.deepcopy(start).to(dtype)
        tape_free = TapeFreeStep(model.weights, rows=T)
        tape_free.forward(x.to(dtype), d.to(dtype))
        if into_w:  # the product accumulated straight into W, block by block
            _sigmoid_backward_out(tape_free._err, tape_free._y_out, grad_input=tape_free._y_out)
            for W, _, delta, delta_t, y, back in tape_free._update_plan:
                torch.mm(delta, W, out=back)
                W.addmm_(delta_t, y, alpha=lr)
                _sigmoid_backward_out(back, y, grad_input=y)
            tape_free.weights[0].addmm_(tape_free._delta1_t, tape_free._x, alpha=lr)
        else:
            tape_free.update(lr)
        return [(W.detach().double() - W0.detach().double()) for W, W0 in zip(model.weights, start.weights)]

    def error(steps, reference):
        return max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(steps, reference))

    reference = step(torch.float64)
    ours, into_w = error(step(torch.float32), reference), error(step(torch.float32, into_w=True), reference)
    assert ours < 1e-3, f"float32 step off by {ours:.2e} of float64's (accumulated into W: {into_w:.2e})"
