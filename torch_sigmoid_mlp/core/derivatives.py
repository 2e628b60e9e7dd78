"""More than the summed gradient: local gradients, per-point gradients, the Jacobian, Hessian-vector products.

The explicit deltas ``δ^(l+1)(t)`` and signals ``y^(l)(t)`` of SPEC.md are kept per test point
``t``; the gradient of ``E`` sums their outer products over ``t``. Not summing gives the gradient
of each point's term ``E_t = 1/2 · ‖d_t − y^(L)(t)‖²``; replacing the output error by a unit
vector gives the derivative of one output, i.e. a row of the Jacobian. Both cost one forward and
one backward pass, where autograd needs ``torch.func.vmap`` or one backward per output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._flat import num_weights
from .functional import SigmoidMLPFunction, _as_rows, _sigmoid_backward, check_inputs, sigmoid_mlp, sse_loss

__all__ = ["hvp", "jacobian", "local_gradients", "per_sample_gradients"]


def local_gradients(model, x: Tensor, d: Tensor) -> list[Tensor]:
    r"""The local gradients ``[δ^(1), …, δ^(L)]`` of SPEC.md, for inspection and teaching.

    .. code-block:: text

        e      = d − y^(L)
        δ^(L)  = e ⊙ y^(L) ⊙ (1 − y^(L))
        δ^(l)  = y^(l) ⊙ (1 − y^(l)) ⊙ (W^(l)ᵀ δ^(l+1))        l = L−1..1

    Args:
        model: a :class:`~torch_sigmoid_mlp.SigmoidMLP`.
        x: test points, ``(T, size_0)``.
        d: measurements, ``(T, size_L)``.

    Returns:
        ``δ^(l)`` for ``l = 1..L``, each of shape ``(T, size_l)``; ``∂E/∂W^(l) = −δ^(l+1)ᵀ y^(l)``.

    Example::

        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0))
        >>> [tuple(delta.shape) for delta in local_gradients(model, torch.rand(4, 2), torch.rand(4, 1))]
        [(4, 2), (4, 2), (4, 1)]
    """
    return _signals_and_deltas(model, x, d)[1]


def _signals(model, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """The detached weights ``W^(0..L−1)`` and the signals ``y^(0..L)`` at ``x`` (as rows), no graph."""
    weights = [W.detach() for W in model.weights]
    x = _as_rows(x).detach()
    check_inputs(x, weights)
    with torch.no_grad():
        return weights, [x, *SigmoidMLPFunction.forward(x, *weights)]  # y^(0..L), (T, size_l)


def _signals_and_deltas(model, x: Tensor, d: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """``y^(0..L)`` and ``[δ^(1), …, δ^(L)]`` at ``x`` for the SSE's error ``e = d − y^(L)``, no graph."""
    weights, ys = _signals(model, x)
    d = _as_rows(d)
    if d.shape != ys[-1].shape:
        raise ValueError(f"d has shape {tuple(d.shape)}, expected {tuple(ys[-1].shape)}")
    return ys, _deltas(weights, ys, d - ys[-1])  # e = d − y^(L)


def _deltas(weights: list[Tensor], ys: list[Tensor], e: Tensor) -> list[Tensor]:
    """``[δ^(1), …, δ^(L)]`` for the output error ``e``, which may carry extra leading dimensions.

    ``e`` of shape ``(..., T, size_L)`` gives ``δ^(l)`` of shape ``(..., T, size_l)``: one
    backward pass per leading index, all in one batched matmul per layer.

    :class:`~torch_sigmoid_mlp.SigmoidMLPFunction`'s backward and the tape-free step run this
    recursion in loops of their own, each where it is hot: the first stays differentiable (double
    backward) and carries ``−δ`` to spend no negation on it, the second writes ``δ^(l)`` over
    ``y^(l)`` in its buffers between the updates of the weights.
    """
    with torch.no_grad():
        deltas = [_sigmoid_backward(e, ys[-1])]  # δ^(L) = e ⊙ y^(L) ⊙ (1 − y^(L))
        for l in range(len(weights) - 1, 0, -1):
            deltas.append(_sigmoid_backward(deltas[-1] @ weights[l], ys[l]))  # δ^(l), (..., T, size_l)
    return deltas[::-1]


def per_sample_gradients(model, x: Tensor, d: Tensor) -> list[Tensor]:
    r"""``∂E_t/∂W^(l) = −δ^(l+1)(t) · y^(l)(t)ᵀ`` for every test point ``t`` and layer ``l``.

    ``E_t = 1/2 · ‖d_t − y^(L)(t)‖²`` is point ``t``'s term of ``E``, so the results summed over
    ``t`` are ``∂E/∂W^(l)``. One forward pass, one backward pass for the deltas, and one outer
    product per layer; nothing is differentiated by autograd.

    Args:
        model: a :class:`~torch_sigmoid_mlp.SigmoidMLP`.
        x: test points, ``(..., size_0)``; the leading dimensions are flattened into ``T``.
        d: measurements, ``(..., size_L)`` with the same leading dimensions.

    Returns:
        One tensor per ``W^(l)``, of shape ``(T, size_{l+1}, size_l)``, without a graph.

    Example::

        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0))
        >>> x, d = torch.rand(5, 2), torch.rand(5, 1)
        >>> grads = per_sample_gradients(model, x, d)
        >>> [tuple(g.shape) for g in grads]
        [(5, 2, 2), (5, 2, 2), (5, 1, 2)]
        >>> model.zero_grad(); sse_loss(model(x), d).backward()
        >>> all(torch.allclose(g.sum(0), W.grad) for g, W in zip(grads, model.weights))
        True
    """
    ys, deltas = _signals_and_deltas(model, x, d)
    # deltas[l] is δ^(l+1), ys[l] is y^(l): the gradient of W^(l), per point, not summed over t.
    return [torch.einsum("ti,tj->tij", delta, y).neg_() for delta, y in zip(deltas, ys)]


def jacobian(model, x: Tensor) -> Tensor:
    r"""``J = ∂y^(L)/∂w``: ``∂y^(L)_k(t)/∂W^(l) = δ_k^(l+1)(t) · y^(l)(t)ᵀ`` with ``e = u_k``.

    The deltas of SPEC.md with the output error ``e(t)`` replaced by the unit vector ``u_k`` are
    the derivatives of output ``k`` (for ``E``, ``e = d − y^(L)`` carries the minus sign of
    ``∂E/∂W = −δ yᵀ``; here there is none). All ``m = size_L`` outputs run as one batched
    backward pass.

    Args:
        model: a :class:`~torch_sigmoid_mlp.SigmoidMLP`.
        x: test points, ``(..., size_0)``; the leading dimensions are flattened into ``T``.

    Returns:
        ``J`` of shape ``(T·m, P)`` with ``P`` the number of weights: row ``t·m + k`` is
        ``y^(L)_k(t)`` (the order of ``model(x).reshape(-1)``), the columns follow
        ``torch.cat([W.reshape(-1) for W in model.weights])``. No graph.

    Example::

        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0))
        >>> J = jacobian(model, torch.tensor([[0.2, 0.7], [0.9, 0.4]]))
        >>> J.shape
        torch.Size([2, 10])
        >>> J
        tensor([[ 0.0004,  0.0014,  0.0018,  0.0063, -0.0088, -0.0020,  0.0278,  0.0062,
                  0.0885,  0.1391],
                [ 0.0021,  0.0009,  0.0042,  0.0019, -0.0078, -0.0009,  0.0248,  0.0029,
                  0.0904,  0.1298]])
    """
    return jacobian_and_output(model, x)[0]


def jacobian_and_output(model, x: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`jacobian` and ``y^(L)`` ``(T, m)``, the forward pass's own output, from one pass."""
    weights, ys = _signals(model, x)
    T, m = ys[-1].shape
    units = torch.eye(m, dtype=ys[-1].dtype, device=ys[-1].device)  # u_k, (m, m)
    e = units[:, None, :].expand(m, T, m)  # e(t) = u_k for every t, (m, T, m)
    deltas = _deltas(weights, ys, e)  # δ^(l+1), (m, T, size_{l+1})
    P = num_weights(weights)
    J = ys[-1].new_empty(T, m, P)
    offset = 0
    for delta, y in zip(deltas, ys):
        size = delta.shape[-1] * y.shape[-1]
        # W^(l)'s columns of J, seen as (T, m, size_{l+1}, size_l), receive the outer products
        # δ_k^(l+1)(t) y^(l)(t)ᵀ directly: several times faster than building blocks and concatenating.
        block = J[:, :, offset : offset + size].unflatten(-1, (delta.shape[-1], y.shape[-1]))
        torch.mul(delta.transpose(0, 1)[..., :, None], y[:, None, None, :], out=block)
        offset += size
    return J.reshape(T * m, P), ys[-1]  # row t·m + k


def hvp(model, x: Tensor, d: Tensor, v: Sequence[Tensor]) -> list[Tensor]:
    r"""The Hessian-vector product ``H v = ∂/∂w ⟨∂E/∂w, v⟩`` of ``E = 1/2 · Σ_t ‖d_t − y^(L)(t)‖²``.

    Computed by double backward through the hand-written
    :class:`~torch_sigmoid_mlp.SigmoidMLPFunction` (whatever ``model.backend`` is): the first
    backward builds the explicit deltas with a graph, the second differentiates them.

    Args:
        model: a :class:`~torch_sigmoid_mlp.SigmoidMLP`.
        x: test points, ``(..., size_0)``.
        d: measurements, the shape of ``model(x)``.
        v: the direction, one tensor ``V^(l)`` per weight matrix, shaped like ``W^(l)``: the form
            ``model.weights``, gradients and :func:`per_sample_gradients` use, so that a direction
            can be built from any of them.

    Returns:
        ``H v`` in the same form as ``v``: a list of tensors shaped like the weights, no graph.

    Example::

        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x, d = torch.rand(5, 2, dtype=torch.float64), torch.rand(5, 1, dtype=torch.float64)
        >>> Hv = hvp(model, x, d, [torch.ones_like(W) for W in model.weights])
        >>> [tuple(h.shape) for h in Hv]
        [(2, 2), (2, 2), (1, 2)]
    """
    weights = [W.detach().requires_grad_(True) for W in model.weights]
    if len(v) != len(weights):
        raise ValueError(f"v must hold one tensor per weight matrix ({len(weights)}), got {len(v)}")
    for l, (V, W) in enumerate(zip(v, weights)):
        if not isinstance(V, Tensor):
            raise TypeError(f"v[{l}] must be a torch.Tensor, got {type(V).__name__}")
        if V.shape != W.shape:
            raise ValueError(f"v[{l}] has shape {tuple(V.shape)}, expected W^({l})'s {tuple(W.shape)}")
    with torch.enable_grad():
        E = sse_loss(sigmoid_mlp(x.detach(), weights), d.detach())
        grads = torch.autograd.grad(E, weights, create_graph=True)  # ∂E/∂W^(l), with a graph
        gv = sum((g * V).sum() for g, V in zip(grads, v))  # ⟨∂E/∂w, v⟩
        return list(torch.autograd.grad(gv, weights))
