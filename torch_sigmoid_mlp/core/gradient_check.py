"""The hand-written backward against autograd: one loss, one set of weights, both gradients side by side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .functional import sigmoid_mlp, sigmoid_mlp_autograd
from .functional import sse_loss as _sse_loss

__all__ = ["GradientComparison", "GradientReport", "compare_gradients"]

#: ``agree`` holds when every max relative difference is below this, by dtype. float64 leaves
#: room for the few ulps that the two orders of summation differ by, float32 for its 2^-24.
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


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
