r"""Bayesian regularisation's rule on plain numbers, in one place: what one network's
:class:`~torch_sigmoid_mlp.solvers.BayesianRegularization` and every member of a population's
(:class:`~torch_sigmoid_mlp.training.population_lm.BayesianRegularization`) decide after a step.

Each function takes what one network (or member) has as Python numbers — ``α_l``, ``γ_l``, ``β``,
the sums ``E_W^(l) = Σ (w^(l)_ij)²`` and ``tr_l(H⁻¹)`` per layer, ``E_s`` — and returns what it has
next. The tensors (``JᵀSJ``, ``H`` and its factor, the trial passes) are the callers' own: one
network's a chunk of points at a time, a population's batched over its members.
"""

from __future__ import annotations

import math

from .results import COLLAPSED_R2

__all__ = [
    "COLLAPSED_EPOCHS", "COLLAPSED_GAMMA", "SEARCH_PATIENCE", "SEARCH_TOL", "collapsed", "evidence",
    "first_alphas", "first_beta", "gammas", "mean_alpha", "search_ends", "settled_beta", "unestimated",
    "update",
]  # fmt: skip

#: ``start="minimum"``: the first minimum of ``E`` counts as reached once an accepted step lowers
#: ``E`` by less than this share of it where the fit explains at least half the targets' variance,
#: or :data:`SEARCH_PATIENCE` such steps in a row wherever it is
SEARCH_TOL, SEARCH_PATIENCE = 1e-2, 5
#: ``start="trainbr"`` begins again from ``w_0`` once ``γ`` has stayed below ``COLLAPSED_GAMMA``
#: for ``COLLAPSED_EPOCHS`` epochs in a row (a dip of a step or two is no collapse)
COLLAPSED_GAMMA, COLLAPSED_EPOCHS = 1.0, 5


def unestimated(numels: list[int]) -> tuple[list[float], list[float], float]:
    """``(α_l, γ_l, β) = (0, P_l, 1)``: the state before the first estimate (and a search's start)."""
    return [0.0] * len(numels), [float(n) for n in numels], 1.0


def mean_alpha(numels: list[int], alphas: list[float]) -> float:
    """``Σ_l α_l·P_l / P``: the weight decay averaged over the weights, for the record."""
    return sum(a * n for a, n in zip(alphas, numels)) / sum(numels)


def first_alphas(numels: list[int], E_W: list[float]) -> list[float]:
    """trainbr's first ``α_l = P_l / (2·E_W^(l))`` (``E_W^(l)`` kept above 0)."""
    return [n / (2 * max(e, 1e-300)) for n, e in zip(numels, E_W)]


def first_beta(N: float, P: int, E: float) -> float:
    """trainbr's first ``β = (N − P) / (2·E_D)`` at ``w_0`` (``E_D = 2E_s``), ``1`` where that is not
    positive."""
    beta = (N - P) / (4 * E) if E > 0 else 0.0
    return beta if beta > 0 else 1.0


def settled_beta(N: float, E: float) -> float:
    """``β = N / (2·E_D)`` where a ``"minimum"`` search ended."""
    return N / (2 * max(2 * E, 1e-300))


def gammas(numels: list[int], alphas: list[float], traces: list[float]) -> list[float]:
    """``γ_l = P_l − 2α_l·tr_l(H⁻¹)``, kept in ``[0, P_l]`` (exact arithmetic keeps it there)."""
    return [min(max(n - 2 * a * t, 0.0), n) for n, a, t in zip(numels, alphas, traces)]


def update(
    gammas: list[float], alphas: list[float], beta: float, E_W: list[float], E: float, N: float
) -> tuple[list[float], float]:
    """``α_l ← γ_l / (2·E_W^(l))``, ``β ← (N − γ) / (2·E_D)``; each kept where its sum is 0, or where
    ``β`` would not be positive."""
    alphas = [g / (2 * e) if e > 0 and g > 0 else a for g, e, a in zip(gammas, E_W, alphas)]
    E_D = 2 * E
    new = (N - sum(gammas)) / (2 * E_D) if E_D > 0 else 0.0
    return alphas, new if new > 0 else beta


def collapsed(low: int, gamma: float, trainbr: bool, stuck: bool) -> tuple[int, bool]:
    """After a step of a start estimating ``α, β``: the epochs in a row with ``γ < COLLAPSED_GAMMA``,
    and whether a ``"trainbr"`` start has collapsed: ``γ`` low for ``COLLAPSED_EPOCHS`` epochs, or low
    where no step lowers ``F`` any more (``stuck``: ``μ > μ_max``)."""
    low = low + 1 if gamma < COLLAPSED_GAMMA else 0
    return low, trainbr and (low >= COLLAPSED_EPOCHS or (low > 0 and stuck))


def search_ends(plateau: int, E_k: float, E_new: float, stuck: bool, spread: float) -> tuple[int, bool]:
    """After a step of a ``"minimum"`` search from ``E_k`` to ``E_new`` (``stuck``: no step lowered
    it): the small steps in a row, and whether ``w`` is at (near) a minimum of ``E`` — no step lowers
    it, or a small step where the fit explains at least half the variance of the targets (``spread``
    is the best constant's ``E``), or :data:`SEARCH_PATIENCE` small steps in a row."""
    E_new = E_k if stuck else E_new
    small = E_k - E_new < SEARCH_TOL * E_k
    plateau = plateau + 1 if small else 0
    explains = E_new <= (1 - COLLAPSED_R2) * spread
    return plateau, stuck or (small and explains) or plateau >= SEARCH_PATIENCE


def evidence(
    F: float, log_det: float, numels: list[int], alphas: list[float], N: float, beta: float
) -> float:
    """``ln p(D | α, β) ≈ −F(w) − ½·ln det H + Σ_l (P_l/2)·ln(2α_l) + (N/2)·ln(β/π)``."""
    prior = sum(n / 2 * math.log(2 * a) for n, a in zip(numels, alphas))
    return -F - log_det / 2 + prior + N / 2 * math.log(beta / math.pi)
