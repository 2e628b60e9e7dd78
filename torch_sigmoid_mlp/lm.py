"""Levenberg–Marquardt: Gauss–Newton steps on ``E``, damped by ``μ``, from the explicit Jacobian."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .derivatives import jacobian
from .functional import _as_rows, check_inputs

__all__ = ["LM_MAX_PARAMS", "LMResult", "levenberg_marquardt"]

#: The most weights ``P`` Levenberg–Marquardt accepts. Each epoch forms and factorises the dense
#: ``P×P`` matrix ``JᵀJ + μI`` in float64: at ``P = 4000`` that is 128 MB and about 2·10^10 flops
#: for ``JᵀJ`` and the Cholesky factor together (with ``T·m ≈ P`` rows), a fraction of a second
#: on a laptop core; both grow as ``P²`` and ``P³``, where steepest descent's epoch grows as ``P``.
LM_MAX_PARAMS = 4000


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
    mu_increase: float = 10.0,
    mu_decrease: float = 0.1,
    mu_max: float = 1e10,
) -> LMResult:
    r"""Minimise ``E(w) = 1/2 · Σ_t ‖d_t − F(x_t; w)‖²`` by Levenberg–Marquardt steps, in place.

    With ``e = d − y^(L)`` flattened to ``T·m`` entries and ``J = ∂y^(L)/∂w`` from
    :func:`~torch_sigmoid_mlp.jacobian` (so ``∇E = −Jᵀe`` and ``JᵀJ`` is the Gauss–Newton
    approximation of the Hessian), an epoch solves

    .. code-block:: text

        (JᵀJ + μI) Δw = Jᵀe              by Cholesky
        w ← w + Δw                       if E(w + Δw) < E(w), then μ ← μ · mu_decrease
        μ ← μ · mu_increase, solve again  otherwise, until μ > μ_max

    Small ``μ`` is a Gauss–Newton step, large ``μ`` a short steepest-descent step ``Jᵀe / μ``.
    The defaults are MATLAB's ``trainlm``. Like :func:`~torch_sigmoid_mlp.train`, each epoch
    starts from one forward pass at the current weights and stops *before* updating when
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
        mu_increase: factor ``> 1`` applied to ``μ`` after a step that does not lower ``E``.
        mu_decrease: factor in ``(0, 1)`` applied to ``μ`` after a step that does.
        mu_max: give up (``stop_reason="mu_max"``) once ``μ`` exceeds it.

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
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 0:
        raise ValueError(f"max_epochs must be a non-negative integer, got {max_epochs!r}")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol must be positive or None, got {tol!r}")
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"mu must be positive and finite, got {mu!r}")
    if not mu_increase > 1:
        raise ValueError(f"mu_increase must be > 1, got {mu_increase!r}")
    if not 0 < mu_decrease < 1:
        raise ValueError(f"mu_decrease must lie in (0, 1), got {mu_decrease!r}")
    if not mu_max > mu:
        raise ValueError(f"mu_max must exceed mu ({mu!r}), got {mu_max!r}")
    weights = list(model.weights)
    numels = [W.numel() for W in weights]
    P = sum(numels)
    if P > LM_MAX_PARAMS:
        raise ValueError(
            f"Levenberg–Marquardt solves a dense P×P system each epoch, and this network has "
            f"P = {P} weights, more than LM_MAX_PARAMS = {LM_MAX_PARAMS} (memory grows as P², time as "
            f"P³); use method='sgd' (steepest descent) for a network this large"
        )
    x, d = _as_rows(x).detach(), _as_rows(d).detach()
    check_inputs(x, weights)

    def error(flat_w: Tensor) -> tuple[Tensor, float]:
        """Load ``flat_w`` into the model and return ``e = d − y^(L)`` and ``E`` there."""
        for W, chunk in zip(weights, flat_w.split(numels)):
            W.copy_(chunk.view_as(W))  # in place: the parameters keep their own storage
        e = d - model(x)  # (T, m)
        return e, 0.5 * e.square().sum().item()

    with torch.no_grad():
        y = model(x)
        if d.shape != y.shape:
            raise ValueError(f"d has shape {tuple(d.shape)}, expected {tuple(y.shape)}")
        w = torch.nn.utils.parameters_to_vector(weights).double()  # (P,)
        e = d - y  # (T, m)
        E = 0.5 * e.square().sum().item()
        eye = torch.eye(P, dtype=torch.float64, device=w.device)
        history, epoch, reason = [], 0, "max_epochs"
        while True:
            history.append(E)
            max_err = e.abs().max().item()
            if tol is not None and max_err < tol:
                reason = "tol"
                break
            if epoch == max_epochs:
                break
            J = jacobian(model, x).double()  # ∂y^(L)/∂w, (T·m, P)
            A = J.T @ J  # Gauss–Newton Hessian, (P, P)
            g = J.T @ e.reshape(-1).double()  # Jᵀe = −∇E, (P,)
            while True:
                factor, info = torch.linalg.cholesky_ex(A + mu * eye)
                # A failed factorisation (μ too small for rounding) counts as a rejected step.
                if info.item() == 0:
                    step = torch.cholesky_solve(g[:, None], factor)[:, 0]  # Δw, (P,)
                    e_new, E_new = error(w + step)
                    if E_new < E:
                        e, E = e_new, E_new
                        w = torch.nn.utils.parameters_to_vector(weights).double()  # as stored
                        mu *= mu_decrease
                        break
                mu *= mu_increase
                if mu > mu_max:
                    reason = "mu_max"
                    break
            if reason == "mu_max":
                e, E = error(w)  # back to the last accepted weights
                max_err = e.abs().max().item()
                break
            epoch += 1
    return LMResult(epoch, reason, E, max_err, mu, history)
