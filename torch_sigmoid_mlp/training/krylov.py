"""Preconditioned conjugate gradients on a symmetric positive definite operator given by its products.

SPEC.md, "Second order without forming ``JᵀJ``": the Levenberg–Marquardt system ``(JᵀJ + μI) Δw = Jᵀe``
and Bayesian regularisation's ``H z = r`` are solved from products ``v ↦ A v`` alone, which the network's
forward-mode and backward passes give without holding ``J`` (``N×P``) or ``A`` (``P×P``). Several
right-hand sides (Hutchinson's probes, or one per member of a population) go as the columns of one
block, each column its own CG run sharing every product.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CGResult", "conjugate_gradients"]


@dataclass
class CGResult:
    """What :func:`conjugate_gradients` returns.

    Attributes:
        x: the solutions, shaped as ``b``.
        iterations: the iterations each column took, ``(k,)`` (an ``int`` tensor).
        converged: whether each column met a stop rule (``rtol`` or ``eta``) before ``max_iter``, ``(k,)``.
        q: the quadratic model ``q(x) = ½·xᵀAx − bᵀx`` at each column's ``x``, ``(k,)``.
    """

    x: Tensor
    iterations: Tensor
    converged: Tensor
    q: Tensor


def conjugate_gradients(
    apply: Callable[[Tensor], Tensor],
    b: Tensor,
    *,
    diagonal: Tensor | None = None,
    precondition: Callable[[Tensor], Tensor] | None = None,
    x0: Tensor | None = None,
    rtol: float = 1e-10,
    eta: float | None = None,
    max_iter: int = 500,
) -> CGResult:
    r"""Solve ``A x = b`` by conjugate gradients preconditioned by ``diag(A)`` (Jacobi).

    .. code-block:: text

        r_0 = b − A x_0,   z_0 = r_0 / diagonal,   p_0 = z_0
        α_i = r_iᵀz_i / p_iᵀAp_i,   x_{i+1} = x_i + α_i p_i,   r_{i+1} = r_i − α_i A p_i
        z_{i+1} = r_{i+1} / diagonal,   p_{i+1} = z_{i+1} + (r_{i+1}ᵀz_{i+1} / r_iᵀz_i) p_i

    Each column stops at the first of:

    - ``‖r_i‖ ≤ rtol·‖b‖`` (solved);
    - with ``eta``: the quadratic model ``q(x) = ½xᵀAx − bᵀx = −½xᵀ(b + r)`` falls by less than ``eta``
      of itself per iteration on average, ``i·(q_{i−1} − q_i) ≤ eta·(−q_i)`` — the inexact-Newton rule
      of Ceres Solver's CGNR (Nash and Sofer), ``eta = 0.1`` there: far from a minimum a step that
      takes most of the model's decrease is as good as the exact one and costs a few products;
    - a direction of non-positive curvature ``p_iᵀAp_i ≤ 0`` (``A`` is not positive definite in
      rounding): ``x_i`` so far is returned;
    - ``max_iter`` iterations.

    Args:
        apply: ``V ↦ A V`` for a block ``V`` shaped as ``b``; ``A`` symmetric positive definite.
        b: the right-hand sides, ``(P,)`` or ``(P, k)`` (``k`` independent systems sharing ``A``).
        diagonal: the preconditioner's diagonal, ``(P,)`` or ``(P, k)`` (one per column), all
            positive; ``None`` is no preconditioner.
        precondition: ``R ↦ M⁻¹R`` for a residual block ``(P, k)``, ``M`` symmetric positive definite
            (a preconditioner other than a diagonal; ``diagonal`` is then unused).
        x0: the first iterate (a warm start), shaped as ``b``; ``None`` is zero.
        rtol: the relative residual at which a column is solved.
        eta: Ceres's stop on the quadratic model's relative decrease; ``None`` solves to ``rtol``.
        max_iter: the most iterations.

    Returns:
        A :class:`CGResult`.

    Example::

        >>> import torch
        >>> from torch_sigmoid_mlp.training.krylov import conjugate_gradients
        >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
        >>> result = conjugate_gradients(lambda v: A @ v, b, diagonal=A.diagonal())
        >>> result.x, result.iterations.item()
        (tensor([0.0909, 0.6364], dtype=torch.float64), 2)
    """
    if rtol < 0 or max_iter < 0 or (eta is not None and not 0 < eta < 1):
        raise ValueError(f"need rtol ≥ 0, max_iter ≥ 0 and 0 < eta < 1, got {rtol}, {max_iter}, {eta}")
    vector = b.dim() == 1
    B = b[:, None] if vector else b  # (P, k)
    k = B.shape[1]

    def block(t: Tensor | None) -> Tensor | None:
        return None if t is None else (t[:, None] if t.dim() == 1 else t)

    D, X0 = block(diagonal), block(x0)
    product = (lambda V: apply(V[:, 0])[:, None]) if vector else apply
    if precondition is not None:
        inverse = precondition
    elif D is None:
        inverse = lambda R: R  # noqa: E731
    else:
        inverse = lambda R: R / D  # noqa: E731
    if X0 is None:
        X, R = torch.zeros_like(B), B.clone()
    else:
        X = X0.clone()
        R = B - product(X)  # (P, k)
    Z = inverse(R)
    Pdir = Z.clone()
    rz = (R * Z).sum(0)  # (k,)
    b_norm = B.norm(dim=0)
    q = -0.5 * (X * (B + R)).sum(0)
    iterations = torch.zeros(k, dtype=torch.long, device=B.device)
    active = R.norm(dim=0) > rtol * b_norm
    converged = ~active
    for i in range(1, max_iter + 1):
        if not active.any():
            break
        AP = product(Pdir)  # (P, k)
        curvature = (Pdir * AP).sum(0)
        active = active & (curvature > 0)
        alpha = torch.where(active, rz / torch.where(active, curvature, 1), 0)  # frozen columns: α = 0
        X.add_(alpha * Pdir)
        R.sub_(alpha * AP)
        iterations += active.long()
        q_new = -0.5 * (X * (B + R)).sum(0)
        solved = R.norm(dim=0) <= rtol * b_norm
        if eta is not None:
            solved = solved | ((q_new < 0) & (i * (q - q_new) <= eta * -q_new))
        q = torch.where(active, q_new, q)
        converged = converged | (active & solved)
        active = active & ~solved
        Z = inverse(R)
        rz_new = (R * Z).sum(0)
        beta = torch.where(active, rz_new / torch.where(rz == 0, 1, rz), 0)
        Pdir = Z + beta * Pdir
        rz = rz_new
    x = X[:, 0] if vector else X
    return CGResult(x=x, iterations=iterations, converged=converged, q=q)
