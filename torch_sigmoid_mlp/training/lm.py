"""Levenberg–Marquardt: Gauss–Newton steps on ``E``, damped by ``μ``, from the explicit Jacobian."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..core.functional import _as_rows, check_inputs
from .solvers import LM_MAX_PARAMS

__all__ = ["LM_MAX_PARAMS", "LMResult", "levenberg_marquardt"]


@dataclass(frozen=True)
class LMResult:
    """What :func:`levenberg_marquardt` did, as plain values.

    Attributes:
        epochs: weight updates taken (accepted steps).
        stop_reason: ``"tol"`` (``|y^(L)(t) − d_t| < tol`` at every test point), ``"max_epochs"``,
            or ``"mu_max"`` (no step with ``μ ≤ μ_max`` lowers ``E``: a minimum up to rounding).
        loss_history: ``E`` at the start of epoch ``k``, for ``k = 0..epochs``; the last entry is
            at the weights the run ended on.
        final_loss: ``E`` at those weights.
        max_abs_error: ``max_t |y^(L)(t) − d_t|`` at those weights.
        mu: the damping ``μ`` at the end, to resume from.
    """

    epochs: int
    stop_reason: str
    final_loss: float
    max_abs_error: float
    mu: float
    loss_history: list[float] = field(default_factory=list)


def levenberg_marquardt(
    model,
    x: Tensor,
    d: Tensor,
    *,
    max_epochs: int = 1000,
    tol: float | None = None,
    mu: float = 1e-3,
    mu_increase: float | None = None,
    mu_decrease: float | None = None,
    mu_max: float = 1e10,
    damping: str = "trainlm",
) -> LMResult:
    r"""Minimise ``E(w) = 1/2 · Σ_t ‖d_t − F(x_t; w)‖²`` by Levenberg–Marquardt steps, in place.

    :func:`~torch_sigmoid_mlp.train` with ``method="lm"``
    (:class:`~torch_sigmoid_mlp.solvers.LevenbergMarquardt`), as plain values. With ``e = d − y^(L)``
    flattened to ``T·m`` entries and ``J = ∂y^(L)/∂w`` from the explicit deltas (so ``∇E = −Jᵀe``
    and ``JᵀJ`` is the Gauss–Newton approximation of the Hessian), an epoch solves

    .. code-block:: text

        (JᵀJ + μI) Δw = Jᵀe              by Cholesky
        w ← w + Δw, μ ← μ · mu_decrease  if E(w + Δw) < E(w)
        μ ← μ · mu_increase, solve again otherwise, until μ > μ_max

    Small ``μ`` is a Gauss–Newton step, large ``μ`` a short steepest-descent step ``Jᵀe / μ``.
    ``damping="nielsen"`` takes Nielsen's rule instead: ``μ ← μ · max(mu_decrease, 1 − (2ρ − 1)³)``
    after an accepted step, where ``ρ`` is the decrease of ``E`` over the one the step's quadratic
    model predicts, and ``μ ← μ · ν, ν ← 2ν`` after a rejected one.
    ``μ = 10⁻³`` and ``μ_max = 10¹⁰`` are MATLAB's ``trainlm``'s. Like :func:`~torch_sigmoid_mlp.train`,
    each epoch starts from one forward pass at the current weights and stops *before* updating when
    ``max_t |y^(L)(t) − d_t| < tol``. The system is solved in float64 whatever the model's
    dtype: ``JᵀJ`` squares the condition number of ``J``, which float32 cannot carry once ``μ``
    is small.

    Args:
        model: a :class:`~torch_sigmoid_mlp.SigmoidMLP` with at most :data:`LM_MAX_PARAMS`
            weights; its weights are updated in place.
        x: test points, ``(..., size_0)``.
        d: measurements, the shape of ``model(x)``.
        max_epochs: the most updates to take.
        tol: stop once every ``|y^(L)(t) − d_t| < tol``; ``None`` never stops on it.
        mu: the initial damping ``μ > 0``.
        mu_increase: factor ``> 1`` applied to ``μ`` after a step that does not lower ``E`` (with
            ``"nielsen"`` the first of a run of them, doubled each time); ``None``: 10, or 2 for
            ``"nielsen"``.
        mu_decrease: factor in ``(0, 1)`` applied to ``μ`` after a step that does (with ``"nielsen"``
            the largest cut); ``None``: 0.1, or 1/3 for ``"nielsen"``.
        mu_max: give up (``stop_reason="mu_max"``) once ``μ`` exceeds it.
        damping: ``"trainlm"`` (default) or ``"nielsen"``
            (:class:`~torch_sigmoid_mlp.solvers.LevenbergMarquardt`).

    Returns:
        An :class:`LMResult`.

    Example::

        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> teacher = SigmoidMLP(2, dtype=torch.float64)
        >>> x = torch.rand(40, 2, dtype=torch.float64)
        >>> d = teacher(x).detach()
        >>> student = SigmoidMLP(2, dtype=torch.float64)
        >>> result = levenberg_marquardt(student, x, d, tol=1e-3)
        >>> result.stop_reason, result.epochs, result.max_abs_error < 1e-3
        ('tol', 8, True)
    """
    from .loop import train  # the loop imports the solvers, which this module's users need not

    x, d = _as_rows(x).detach(), _as_rows(d).detach()
    check_inputs(x, list(model.weights))
    with torch.no_grad():
        y = model(x[:1])
    if d.shape[1:] != y.shape[1:] or d.shape[0] != x.shape[0]:
        raise ValueError(f"d has shape {tuple(d.shape)}, expected {(x.shape[0], *y.shape[1:])}")
    options = {"mu": mu, "mu_increase": mu_increase, "mu_decrease": mu_decrease, "mu_max": mu_max,
               "damping": damping}  # fmt: skip
    result = train(model, x, d, method="lm", max_epochs=max_epochs, tol=tol, options=options)
    return LMResult(
        result.epochs,
        result.stop_reason,
        result.final_loss,
        result.max_abs_error,
        result.solver_state["mu"],
        result.loss_history,
    )
