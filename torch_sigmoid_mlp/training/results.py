"""What :func:`~torch_sigmoid_mlp.train` returns, and how its starts (or a population's members) rank."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["COLLAPSED_R2", "STOP_REASONS", "TrainResult"]

#: Why :func:`train` stopped: the stop rules in the order they are tested at the start of an epoch,
#: then ``"mu_max"``, the stop of a Levenberg–Marquardt step that finds no way down.
#: ``"converged"`` is the stop of a run whose ``E`` no longer falls (``ftol``), not a bound reached:
#: that is ``"tol"``.
#: ``"member_reached_tol"`` ends the members of a population still running when another reached ``tol``
#: (``until="first"``); ``"outranked"`` those that can no longer outrank the best member that stopped
#: (``until="best"``).
STOP_REASONS = (
    "diverged", "tol", "early_stopping", "converged", "max_epochs", "callback", "mu_max",
    "member_reached_tol", "outranked",
)  # fmt: skip


@dataclass
class TrainResult:
    """What :func:`train` did and where it left the weights.

    Attributes:
        epochs: epochs run to their end (each took one step ``w_k → w_{k+1}``).
        converged: ``stop_reason == "tol"``: ``|y^(L)(t) − d_t| < tol`` at every test point.
        stop_reason: one of :data:`STOP_REASONS`: ``"tol"``, ``"max_epochs"``, ``"callback"``,
            ``"diverged"`` (the last finite weights restored), ``"early_stopping"`` (the best
            validation weights restored), ``"converged"`` (``E`` fell by less than ``ftol`` of its
            spread over the last ``window`` epochs), or ``"mu_max"``: no Levenberg–Marquardt step
            with damping ``μ ≤ μ_max`` lowers ``E`` (a minimum, to rounding).
        final_loss: ``E`` at the returned weights.
        max_abs_error: ``max_t |y^(L)(t) − d_t|`` at the returned weights.
        loss_history: ``loss_history[k]`` is ``E`` at the start of epoch ``k`` (all points), for
            ``k = 0..epochs``; the last entry is at the weights the run ended on (which are the
            returned ones unless it ``"diverged"`` or stopped early and restored others).
        val_history: the validation SSE at the start of each epoch; empty without validation.
        seconds: wall-clock time of the run (with ``restarts``, of all starts together).
        restarts: with ``restarts=k > 1``, the result of every start in order (each with its own
            ``seconds`` and an empty ``restarts``); the weights and the fields above are those of
            the best, ``restarts[start]``. Empty with one start.
        start: the index of the start the weights come from (``0``: the model's own weights).
        method: the solver that ran (``"auto"`` resolved to the one it chose).
        solver_state: what the solver needs to go on exactly where it stopped (``μ`` for
            ``"lm"``; ``μ, γ, α, β`` for ``"br"``; the ``torch.optim`` state otherwise); ``train``'s
            ``resume=`` takes it back.
        r2: ``1 − final_loss / E_0``, the training ``R²`` on the (scaled) targets, with ``E_0 =
            ½·Σ_t s_t ‖d_t − d̄‖²`` the error of the best constant output (``None`` if ``E_0 = 0``).
        evidence: ``"br"``: ``ln p(D | α, β)`` at the returned weights, by the Laplace approximation
            (SPEC.md, "Several starts"); higher is better. ``None`` for the other solvers.
        merits: ``[k, objective]`` at the last ``window + 1`` epochs that the ``ftol`` test read, for
            a solver whose objective is not ``E`` (``"br"``); a resumed run goes on from them (or
            from ``loss_history``), so that it stops where an unbroken one would.
        members: for a population (``SigmoidMLP(..., population=K)``), ``members[k]`` is member
            ``k``'s own result (its ``seconds`` those of the whole run); the fields above are then
            those of the best member, ``members[start]``. Empty for one network.
    """

    epochs: int
    converged: bool
    stop_reason: str
    final_loss: float
    max_abs_error: float
    loss_history: list[float] = field(default_factory=list)
    val_history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    restarts: list[TrainResult] = field(default_factory=list)
    start: int = 0
    method: str = "sgd"
    solver_state: dict = field(default_factory=dict)
    r2: float | None = None
    evidence: float | None = None
    merits: list[list[float]] = field(default_factory=list)
    members: list[TrainResult] = field(default_factory=list)


#: A start whose training ``R²`` is below this has collapsed (explains less than half the variance):
#: it is chosen only where every start has.
COLLAPSED_R2 = 0.5


def _rank(result: TrainResult) -> tuple:
    """Smaller is better, in this order: a start that reached ``tol``; one that did not collapse
    (``r2 ≥ COLLAPSED_R2``); then, by what does not reward fitting the noise where there is such a
    thing, the lowest validation SSE (held-out points), the highest evidence (``"br"``), else the
    lowest ``E``; the lowest largest error breaks ties."""
    collapsed = result.r2 is not None and not result.r2 >= COLLAPSED_R2
    if result.val_history:
        merit = min(result.val_history)
    elif result.evidence is not None and math.isfinite(result.evidence):
        merit = -result.evidence
    else:
        merit = result.final_loss
    return (not result.converged, collapsed, merit, result.max_abs_error)
