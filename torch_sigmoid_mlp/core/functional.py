"""The bias-free sigmoid network as a function, with backpropagation written out by hand.

Notation follows SPEC.md: layers ``l = 0..L``, ``y^(0) = x``, ``W^(l)`` of shape
``(size_{l+1}, size_l)``, ``v^(l+1) = W^(l) y^(l)``, ``y^(l+1) = σ(v^(l+1))``. Test points are
rows, so in code ``v^(l+1) = y^(l) @ W^(l).T`` with shape ``(T, size_{l+1})``.

A population of ``K`` networks (SPEC.md, "Populations") stacks member ``k``'s ``W^(l)_k`` into
``W^(l)`` of shape ``(K, size_{l+1}, size_l)``; the same code then runs one batched product per layer,
``(K, T, size_l) × (K, size_l, size_{l+1})``, and its signals and deltas carry the member index first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

try:  # what torch's own Function.apply runs on its arguments; private, so it may move
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers
except ImportError:
    _unwrap_dead_wrappers = None
# SigmoidMLPFunction.apply's shortcut to the C++ apply needs both private helpers; without
# them it is the plain Function.apply (slower per call, the same results).
_transforms_active = getattr(torch._C, "_are_functorch_transforms_active", None)
_DIRECT_APPLY = _unwrap_dead_wrappers is not None and _transforms_active is not None
# One call that says whether autocast is on for any device type; without it, ask per device.
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)

__all__ = [
    "SigmoidMLPFunction",
    "check_inputs",
    "sigmoid_mlp",
    "sigmoid_mlp_autograd",
    "sse_loss",
]

# σ'(v) = σ(v)(1 − σ(v)) formed from y = σ(v) and multiplied by the incoming signal, in one kernel.
# The overload itself: calling the packet resolves it anew on every call.
_sigmoid_backward = torch.ops.aten.sigmoid_backward.default


class SigmoidMLPFunction(torch.autograd.Function):
    r"""Forward pass of the network, and backpropagation with explicit local gradients.

    Forward, for ``l = 0..L−1``::

        y^(l+1) = σ(W^(l) y^(l))

    Backward, with ``g_l = ∂loss/∂y^(l)`` the upstream gradients (``g_L`` is the usual one) and the
    error ``e = −g_L`` (for the SSE ``E`` this is ``e = d − y^(L)``)::

        δ^(L) = e ⊙ y^(L) ⊙ (1 − y^(L))
        δ^(l) = y^(l) ⊙ (1 − y^(l)) ⊙ (W^(l)ᵀ δ^(l+1) − g_l)        l = L−1..1
        ∂loss/∂W^(l) = −Σ_t δ^(l+1)(t) · y^(l)(t)ᵀ
        ∂loss/∂x     = −W^(0)ᵀ δ^(1)

    Inputs are ``x`` of shape ``(T, size_0)`` followed by the ``L`` weight matrices. For a
    population (SPEC.md, "Populations") the weights are ``(K, size_{l+1}, size_l)``, ``x`` is
    ``(T, size_0)`` shared by the members or ``(K, T, size_0)``, every signal and delta is
    ``(K, T, size_l)``, and each product is one batched product: member ``k``'s deltas and
    gradients are exactly those of network ``k`` alone. The outputs
    are the layer signals ``y^(1), …, y^(L)``: returning the intermediate ones (instead of keeping
    them as hidden state) lets ``torch.func`` and double backward see every tensor backward uses.
    ``g_l`` for ``l < L`` is zero unless a caller uses an intermediate output; it is accepted so
    that the Function is correct whatever the caller differentiates.

    Saved for backward: exactly ``y^(0..L)`` and the weights — no pre-activations ``v``, no
    ``σ'`` tensors. Backward computes ``δ^(l)`` only down to the lowest layer whose gradient is
    asked for (``ctx.needs_input_grad``); in particular no ``W^(0)ᵀ δ^(1)`` product when ``x``
    needs no gradient. Backward is itself made of differentiable operations, so
    ``gradgradcheck`` and Hessian-vector products work through it.

    Forward mode (``jvp``: ``torch.func.jvp``/``jacfwd``/``hessian``, ``torch.autograd.forward_ad``),
    with tangents ``ẋ``, ``Ẇ^(l)`` and ``ẏ^(0) = ẋ``, reuses the same saved signals in the forward
    order::

        v̇^(l+1) = Ẇ^(l) y^(l) + W^(l) ẏ^(l)
        ẏ^(l+1) = y^(l+1) ⊙ (1 − y^(l+1)) ⊙ v̇^(l+1)

    A term whose tangent is absent (an input without one) is skipped, not multiplied as zeros;
    the layers below the lowest tangent get zero tangents.
    The jvp is made of differentiable operations too, so forward-over-reverse (``hessian``) works.

    Use :func:`sigmoid_mlp`, which checks the inputs and accepts any leading batch shape.
    """

    generate_vmap_rule = True

    @classmethod
    def apply(cls, *args: Tensor) -> tuple[Tensor, ...]:
        # Function.apply binds forward's default arguments through inspect.signature on every
        # call, which costs more than a small network's whole forward pass; forward has no
        # defaults, so outside functorch transforms go straight to the C++ apply.
        if not _DIRECT_APPLY or _transforms_active():
            return super().apply(*args)
        return super(torch.autograd.Function, cls).apply(*_unwrap_dead_wrappers(args))

    @staticmethod
    def forward(x: Tensor, *weights: Tensor) -> tuple[Tensor, ...]:
        """``(y^(1), …, y^(L))`` with ``y^(l+1) = σ(W^(l) y^(l))``, ``y^(0) = x`` of shape ``(T, size_0)``."""
        ys = []
        y = x
        for W in weights:
            y = _linear(y, W).sigmoid_()  # y^(l+1) = σ(v^(l+1)), (T, size_{l+1}) or (K, T, size_{l+1})
            ys.append(y)
        return tuple(ys)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        """Save ``y^(0..L)`` and ``W^(0..L−1)``: everything backward reads, nothing more."""
        x, *weights = inputs
        ctx.num_layers = len(weights)
        ctx.set_materialize_grads(False)  # unused intermediate outputs arrive as None, not zeros
        ctx.save_for_backward(x, *output, *weights)
        ctx.save_for_forward(x, *output, *weights)  # forward mode (jvp) reads the same signals

    @staticmethod
    def jvp(ctx, x_t: Tensor | None, *weight_ts: Tensor | None) -> tuple[Tensor, ...]:
        """``(ẏ^(1), …, ẏ^(L))`` from the tangents ``ẋ, Ẇ^(0), …`` (``None``: zero), in the forward order."""
        saved = ctx.saved_tensors
        L = ctx.num_layers
        ys, weights = saved[: L + 1], saved[L + 1 :]  # y^(0..L), W^(0..L−1)
        # An input without a tangent arrives as None: its term is skipped, not multiplied as zeros.
        y_t = x_t  # ẏ^(0) = ẋ
        y_ts: list[Tensor | None] = []
        for l, W_t in enumerate(weight_ts):
            v_t = None if y_t is None else _linear(y_t, weights[l])  # W^(l) ẏ^(l), (T, size_{l+1})
            if W_t is not None:
                # v̇^(l+1) = Ẇ^(l) y^(l) + W^(l) ẏ^(l)
                if v_t is None:
                    v_t = _linear(ys[l], W_t)
                elif W_t.dim() == 2:
                    v_t = torch.addmm(v_t, ys[l], W_t.t())
                else:  # a population: (K, T, size_{l+1})
                    v_t = v_t + _linear(ys[l], W_t)
            # ẏ^(l+1) = y^(l+1) ⊙ (1 − y^(l+1)) ⊙ v̇^(l+1)
            y_t = None if v_t is None else _sigmoid_backward(v_t, ys[l + 1])
            # autograd takes no None for an output's tangent: below the lowest tangent, zeros
            y_ts.append(torch.zeros_like(ys[l + 1]) if y_t is None else y_t)
        return tuple(y_ts)

    @staticmethod
    def backward(ctx, *grad_ys: Tensor | None) -> tuple[Tensor | None, ...]:
        """``(∂loss/∂x, ∂loss/∂W^(0), …)`` from the explicit deltas; ``None`` where not needed."""
        saved = ctx.saved_tensors
        L = ctx.num_layers
        ys, weights = saved[: L + 1], saved[L + 1 :]  # y^(0..L), W^(0..L−1)
        needs = ctx.needs_input_grad  # (x, W^(0), …, W^(L−1))
        grads: list[Tensor | None] = [None] * (L + 1)

        # δ^(l) is needed down to the lowest l with ∂/∂W^(l−1) asked for; δ^(1) also serves x.
        lowest = 1 if needs[0] or needs[1] else next((l for l in range(2, L + 1) if needs[l]), None)
        if lowest is None:
            return tuple(grads)

        # Sign convention, stated once: PyTorch hands backward g = ∂loss/∂y, SPEC.md's error is
        # e = −g (for E, e = d − y^(L)). Backward carries −δ^(l) = ∂loss/∂v^(l), so that each
        # gradient is one plain product, with no negation spent on it.
        minus_delta = None  # −δ^(l+1); None stands for zero
        for l in range(L, lowest - 1, -1):
            y, g = ys[l], grad_ys[l - 1]
            if minus_delta is None:
                grad_y = g  # ∂loss/∂y^(L) = −e
            else:
                grad_y = _mm(minus_delta, weights[l])  # −W^(l)ᵀ δ^(l+1), (T, size_l)
                if g is not None:
                    grad_y = grad_y + g
            if grad_y is None:
                continue
            minus_delta = _sigmoid_backward(grad_y, y)  # −δ^(l) = y ⊙ (1 − y) ⊙ ∂loss/∂y^(l), (T, size_l)
            if needs[l]:
                # ∂/∂W^(l−1) = −δ^(l)ᵀ y^(l−1); per member, also where y^(0) = x is shared by all
                grads[l] = _mm(minus_delta.mT, ys[l - 1])
        if needs[0] and minus_delta is not None:
            grads[0] = _mm(minus_delta, weights[0])  # ∂loss/∂x = −W^(0)ᵀ δ^(1), (T, size_0)
            if grads[0].dim() > ys[0].dim():  # x shared by a population: the members' terms add up
                grads[0] = grads[0].sum(0)
        return tuple(grads)


def _linear(y: Tensor, W: Tensor) -> Tensor:
    """``v = y W^(l)ᵀ``: ``(T, size_{l+1})``, or ``(K, T, size_{l+1})`` for a population's ``W^(l)``."""
    # F.linear transposes W inside its kernel call: one op fewer per layer than mm(y, W.t())
    return F.linear(y, W) if W.dim() == 2 else torch.matmul(y, W.mT)


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` as one ``mm`` for matrices, one batched product (broadcast over members) otherwise."""
    return torch.mm(a, b) if a.dim() == 2 and b.dim() == 2 else torch.matmul(a, b)


class _TracedSigmoidMLPFunction(SigmoidMLPFunction):
    """:class:`SigmoidMLPFunction` without forward mode, for Dynamo to trace (``torch.compile``).

    Dynamo refuses to trace a Function that defines ``jvp``; this one has the same forward and
    backward, and a context that saves nothing for forward mode.
    """

    jvp = staticmethod(torch.autograd.Function.jvp)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, *weights = inputs
        ctx.num_layers = len(weights)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, *output, *weights)


def check_inputs(x: Tensor, weights: Sequence[Tensor], *, amp_dtype: torch.dtype | None = None) -> None:
    """Raise a ``TypeError``/``ValueError`` naming the problem if ``x`` and ``weights`` don't fit.

    ``weights[l]`` must be a floating 2-D tensor of shape ``(size_{l+1}, size_l)`` with the
    sizes chaining, all on ``x``'s device and of ``x``'s dtype, and ``x`` of shape
    ``(..., size_0)`` with at least one dimension. A population's weights are 3-D,
    ``(K, size_{l+1}, size_l)`` with one ``K`` for all, and its ``x`` is ``(T, size_0)`` or
    ``(K, T, size_0)``. With ``amp_dtype``, the dtype ``torch.autocast``
    computes in, the dtypes are those the products run in, as for ``nn.Linear``: every floating
    dtype but float64 becomes ``amp_dtype``, so float32 weights take a bfloat16 ``x``, and
    float64 mixes with nothing else.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if len(weights) == 0:
        raise ValueError("weights must hold at least one matrix W^(0)")
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (..., in_features); got a 0-d tensor")
    batched = isinstance(weights[0], Tensor) and weights[0].dim() == 3
    K = weights[0].shape[0] if batched else None
    size = x.shape[-1]
    for l, W in enumerate(weights):
        if not isinstance(W, Tensor):
            raise TypeError(f"weights[{l}] must be a torch.Tensor, got {type(W).__name__}")
        if batched and (W.dim() != 3 or W.shape[0] != K):
            raise ValueError(
                f"W^({l}) must be (K, size_{l + 1}, size_{l}) with K = {K} like W^(0) in a population, "
                f"got shape {tuple(W.shape)}"
            )
        if not batched and W.dim() != 2:
            raise ValueError(f"W^({l}) must be 2-D (size_{l + 1}, size_{l}), got shape {tuple(W.shape)}")
        if W.shape[-1] != size:
            what = "x has" if l == 0 else f"W^({l - 1}) gives"
            raise ValueError(
                f"W^({l}) expects {W.shape[-1]} features but {what} {size} (shape {tuple(W.shape)})"
            )
        if _amp_cast(W.dtype, amp_dtype) != _amp_cast(x.dtype, amp_dtype):
            under = "" if amp_dtype is None else f" (under autocast to {amp_dtype}, float64 is not cast)"
            raise TypeError(f"W^({l}) has dtype {W.dtype} but x has dtype {x.dtype}{under}")
        if W.device != x.device:
            raise ValueError(f"W^({l}) is on {W.device} but x is on {x.device}")
        size = W.shape[-2]
    if batched and not (x.dim() == 2 or (x.dim() == 3 and x.shape[0] == K)):
        raise ValueError(
            f"a population of K = {K} takes x of shape (T, {x.shape[-1]}) or ({K}, T, {x.shape[-1]}), "
            f"got {tuple(x.shape)}"
        )


def _amp_cast(dtype: torch.dtype, amp_dtype: torch.dtype | None) -> torch.dtype:
    """The dtype an operand of ``dtype`` has in a matrix product under autocast to ``amp_dtype``."""
    if amp_dtype is None or not dtype.is_floating_point or dtype == torch.float64:
        return dtype
    return amp_dtype


def _as_rows(x: Tensor) -> Tensor:
    """``x`` of shape ``(..., n)`` as a matrix of test points ``(T, n)``."""
    return x if x.dim() == 2 else x.reshape(-1, x.shape[-1])


def _population(weights) -> bool:
    """Whether ``weights`` are a population's, ``(K, size_{l+1}, size_l)``."""
    return weights[0].dim() == 3


def sigmoid_mlp(x: Tensor, weights: Sequence[Tensor]) -> Tensor:
    r"""``F(x; w) = y^(L)``, differentiated by the hand-written :class:`SigmoidMLPFunction`.

    Computes ``y^(l+1) = σ(W^(l) y^(l))`` for ``l = 0..L−1`` from ``y^(0) = x``.

    Args:
        x: test points, shape ``(..., size_0)``.
        weights: ``W^(0), …, W^(L−1)``, ``W^(l)`` of shape ``(size_{l+1}, size_l)``, same dtype
            and device as ``x``; a population's are ``(K, size_{l+1}, size_l)``.

    Shape:
        - Input: ``(..., size_0)``; for a population ``(T, size_0)`` or ``(K, T, size_0)``
        - Output: ``(..., size_L)``, every entry in ``(0, 1)``; for a population ``(K, T, size_L)``

    Example::

        >>> x = torch.tensor([[0.5, -1.0]])
        >>> W0 = torch.tensor([[1.0, 2.0]], requires_grad=True)
        >>> sigmoid_mlp(x, [W0])
        tensor([[0.1824]], grad_fn=<SigmoidMLPFunctionBackward>)
    """
    # Checking every W^(l) up front costs more than a small network's forward pass. The cheap
    # tests run first; the weights are checked in full only when the products refuse them (a
    # wrong shape, dtype or device), so that the error names the W^(l) at fault.
    amp_dtype = _amp_dtype_of(x)
    if not _looks_right(x, weights):
        check_inputs(x, weights, amp_dtype=amp_dtype)
    population = _population(weights)
    rows = x if population else _as_rows(x)
    # With grad mode off there is nothing to differentiate, and the Function's forward runs as
    # plain ops: torch.compile needs this, because Dynamo inlines a Function's forward when grad
    # is off and passes ctx as forward(x, *weights)'s x once there are two or more weights.
    function = _TracedSigmoidMLPFunction if torch.compiler.is_compiling() else SigmoidMLPFunction
    apply = function.apply if torch.is_grad_enabled() else function.forward
    if amp_dtype is None or x.dtype == torch.float64:  # autocast leaves float64 alone, so do we
        try:
            ys = apply(rows, *weights)
        except (RuntimeError, TypeError):
            check_inputs(x, weights, amp_dtype=amp_dtype)
            raise
    else:
        check_inputs(x, weights, amp_dtype=amp_dtype)  # the casts below would hide a float64 W^(l)
        # AMP, as nn.Linear has it wherever it sits in a model: x and the weights are cast to the
        # autocast dtype, whatever floating dtype (but float64) each has. The casts sit outside
        # the Function, so autograd casts the gradients back to each one's own dtype; autocast
        # itself is switched off inside so that backward sees the dtypes forward saved.
        with torch.autocast(x.device.type, enabled=False):
            ys = apply(rows.to(amp_dtype), *(W.to(amp_dtype) for W in weights))
    y = ys[-1]
    return y if population or x.dim() == 2 else y.reshape(*x.shape[:-1], y.shape[-1])


def _looks_right(x, weights) -> bool:
    """The part of :func:`check_inputs` that the matrix products would not catch themselves."""
    try:
        # F.linear would take a 1-D W^(l) as a vector, and meta tensors mix with any device
        device = x.device
        dim = weights[0].dim()
        return (
            isinstance(x, Tensor)
            and x.is_floating_point()
            and x.dim() > 0
            and (dim == 2 or (dim == 3 and x.dim() in (2, 3)))
            and all(W.dim() == dim and W.device == device for W in weights)
            and (dim == 2 or all(W.shape[0] == weights[0].shape[0] for W in weights))
            and (dim == 2 or x.dim() == 2 or x.shape[0] == weights[0].shape[0])
        )
    except (AttributeError, TypeError, IndexError):  # weights not a non-empty sequence of tensors
        return False


def _amp_dtype_of(x) -> torch.dtype | None:
    """The dtype autocast computes ``x``'s products in, or ``None`` (autocast off, or ``x`` no tensor)."""
    return _autocast_dtype(x.device.type) if _any_autocast() and isinstance(x, Tensor) else None


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``torch.autocast`` computes in on ``device_type``, or ``None`` when it is off.

    This stands in for ``torch.amp.custom_fwd``, which fixes one ``device_type`` when the class
    is defined and expects forward to take ``ctx`` (the Function uses ``setup_context``).
    """
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4: one API for every device type
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    if device_type == "cuda":
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return None


def sigmoid_mlp_autograd(x: Tensor, weights: Sequence[Tensor]) -> Tensor:
    """The same ``F(x; w)`` as :func:`sigmoid_mlp`, as plain torch ops differentiated by autograd.

    The reference the hand-written backward is checked against.
    """
    check_inputs(x, weights, amp_dtype=_amp_dtype_of(x))  # the products follow autocast
    y = x
    for W in weights:
        y = torch.sigmoid(y @ W.mT)  # (..., size_{l+1}); a population's (K, T, size_{l+1})
    return y


def sse_loss(y: Tensor, d: Tensor) -> Tensor:
    r"""``E = 1/2 · Σ (y − d)²`` over every element.

    Args:
        y: network outputs ``y^(L)``.
        d: measurements, the same shape as ``y``.

    Example::

        >>> sse_loss(torch.tensor([0.2, 0.7]), torch.tensor([0.0, 1.0]))
        tensor(0.0650)
    """
    if y.shape != d.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but d has shape {tuple(d.shape)}")
    return 0.5 * F.mse_loss(y, d, reduction="sum")
