"""Inspecting backpropagation: the local gradients ``δ^(l)``, and manual against autograd."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .functional import (
    SigmoidMLPFunction,
    _as_rows,
    _sigmoid_backward,
    check_inputs,
    sigmoid_mlp,
    sigmoid_mlp_autograd,
)
from .functional import sse_loss as _sse_loss

__all__ = ["GradientComparison", "GradientReport", "compare_gradients", "local_gradients"]

#: ``agree`` holds when every max relative difference is below this, by dtype. float64 leaves
#: room for the few ulps that the two orders of summation differ by, float32 for its 2^-24.
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


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
    """
    with torch.no_grad():
        deltas = [_sigmoid_backward(e, ys[-1])]  # δ^(L) = e ⊙ y^(L) ⊙ (1 − y^(L))
        for l in range(len(weights) - 1, 0, -1):
            deltas.append(_sigmoid_backward(deltas[-1] @ weights[l], ys[l]))  # δ^(l), (..., T, size_l)
    return deltas[::-1]


@dataclass(frozen=True)
class GradientComparison:
    """One row of a :class:`GradientReport`: ``name`` is ``"W^(l)"`` or ``"x"``.

    ``max_rel`` is ``max |manual − autograd| / max |autograd|``: relative to the gradient's
    scale, so that entries near zero do not blow it up (it is ``max_abs`` where autograd's
    gradient is all zero).
    """

    name: str
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class GradientReport:
    """Manual against autograd gradients of the same loss on the same weights.

    Attributes:
        rows: one :class:`GradientComparison` per ``W^(l)``, then one for ``x``.
        dtype: the dtype the gradients were computed in.
        tolerance: the bound on every ``max_rel`` for the two to ``agree``.
        agree: whether every ``max_rel`` is within ``tolerance``.
    """

    rows: tuple[GradientComparison, ...]
    dtype: torch.dtype
    tolerance: float

    @property
    def agree(self) -> bool:
        """Whether every row's ``max_rel`` is within ``tolerance``."""
        return all(row.max_rel <= self.tolerance for row in self.rows)

    @property
    def max_rel(self) -> float:
        """The largest relative difference over all rows."""
        return max(row.max_rel for row in self.rows)

    def __str__(self) -> str:
        lines = [f"{'gradient':<10} {'max |abs diff|':>15} {'max rel diff':>13}"]
        lines += [f"{r.name:<10} {r.max_abs:>15.3e} {r.max_rel:>13.3e}" for r in self.rows]
        verdict = "agree" if self.agree else "DISAGREE"
        lines.append(f"{verdict} ({str(self.dtype).removeprefix('torch.')}, tolerance {self.tolerance:.0e})")
        return "\n".join(lines)


def compare_gradients(
    model, x: Tensor, d: Tensor, loss: Callable[[Tensor, Tensor], Tensor] = _sse_loss
) -> GradientReport:
    """Gradients of ``loss(F(x), d)`` by the hand-written backward and by autograd, side by side.

    Both are taken on the model's current weights, for every ``W^(l)`` and for ``x``; the
    model's own ``backend`` and ``.grad`` fields are left untouched.

    Args:
        model: a :class:`~torch_sigmoid_mlp.SigmoidMLP`.
        x: test points, ``(..., size_0)``.
        d: measurements, the shape of the output.
        loss: any differentiable ``loss(y, d)`` returning a scalar; SSE by default.

    Example::

        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x, d = torch.rand(8, 2, dtype=torch.float64), torch.rand(8, 1, dtype=torch.float64)
        >>> compare_gradients(model, x, d).agree
        True
    """
    weights = [W.detach() for W in model.weights]
    grads = []
    for forward in (sigmoid_mlp, sigmoid_mlp_autograd):
        leaves = [t.clone().requires_grad_(True) for t in (*weights, x.detach())]
        value = loss(forward(leaves[-1], leaves[:-1]), d)
        grads.append(torch.autograd.grad(value, leaves))
    names = [f"W^({l})" for l in range(len(weights))] + ["x"]
    rows = []
    for name, manual, reference in zip(names, *grads):
        diff = (manual - reference).abs().max().item() if manual.numel() else 0.0
        scale = reference.abs().max().item() if reference.numel() else 0.0
        rel = diff / scale if scale > 0 else diff
        rows.append(GradientComparison(name, diff, rel))
    return GradientReport(tuple(rows), x.dtype, TOLERANCES.get(x.dtype, 1e-4))
