r"""Bayesian regularisation without forming ``J`` or ``JᵀSJ``: the matrix-free step, and ``γ`` and the
evidence from products.

.. code-block:: text

    (JᵀSJ + D_α/β + μ·u·I) Δw = JᵀSe − (D_α/β)·w     by CG on products (MatrixFreeLM)
    H V = 2β·JᵀSJ V + 2·D_α V                         the same products
    γ_l = P_l − tr_l(2D_α^½ H⁻¹ 2D_α^½)              inverse_trace, weights 2·D_α (deflated Hutchinson)
    ln det H                                          log_determinant, D = 2·D_α (deflated SLQ)

:class:`MatrixFreeBR` is :class:`~torch_sigmoid_mlp.solvers.BayesianRegularization`'s rule — its starts,
``α_l, β`` updates, collapse and search — with :class:`~torch_sigmoid_mlp.training.matrix_free.MatrixFreeLM`'s
solve; only where the dense solver reads ``H``'s Cholesky factor (``diag(H⁻¹)``, ``ln det H``) it
estimates from products instead (:mod:`~torch_sigmoid_mlp.training.trace_estimate`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .matrix_free import MatrixFreeLM
from .objective import Objective
from .solvers import SECOND_ORDER, BayesianRegularization
from .trace_estimate import (
    INVERSE_TRACE_PROBES,
    LOG_DET_PROBES,
    LOG_DET_STEPS,
    inverse_trace,
    log_determinant,
)

__all__ = ["MatrixFreeBR"]


class MatrixFreeBR(MatrixFreeLM, BayesianRegularization):
    r"""Bayesian-regularised Levenberg–Marquardt with matrix-free steps and estimated ``γ_l``, evidence.

    .. code-block:: text

        (JᵀSJ + D_α/β + μ·u·I) Δw = JᵀSe − (D_α/β)·w            CG on products, as MatrixFreeLM
        H = 2β·JᵀSJ + 2·D_α   (products only; diag(H) = 2β·diag(JᵀSJ) + 2·D_α)
        γ_l = P_l − 2α_l·tr_l(H⁻¹)  ≈  P_l − tr_l(C H⁻¹ C),  C = (2·D_α)^½      (inverse_trace)
        α_l ← γ_l / (2·E_W^(l)),   β ← (N − Σ_l γ_l) / (2·E_D)
        ln p(D | α, β) ≈ −F − ½·ln det H + Σ_l (P_l/2)·ln(2α_l) + (N/2)·ln(β/π)   (log_determinant)

    Everything else is :class:`~torch_sigmoid_mlp.solvers.BayesianRegularization`'s (``start=``, the
    collapse and the search for the first minimum, ``0 ≤ γ_l ≤ P_l``) and
    :class:`~torch_sigmoid_mlp.training.matrix_free.MatrixFreeLM`'s (``cg_*`` options, warm starts,
    the forcing of ``eta``). ``γ_l`` is estimated after each accepted step as the dense solver
    computes it, from ``JᵀSJ`` at ``w_k`` and ``α_l, β`` before the update: ``probes`` solves with
    ``H`` as one CG block (half of them a deflated subspace), Jacobi-preconditioned, to ``trace_rtol``;
    its error is the estimator's, a fraction of a percent of ``γ`` on the BR Hessians of
    ``benchmarks/results/trace.md``. The evidence deflates ``2⌈γ⌉ + 16`` directions and takes
    :data:`~torch_sigmoid_mlp.training.trace_estimate.LOG_DET_PROBES` Lanczos probes. The probes
    of each estimate come from a generator seeded with ``trace_seed`` and the number of estimates
    before it, kept in :meth:`state_dict`: a run is reproducible, and a resumed one draws what the
    whole run would.

    Args:
        objective: the points and the model.
        probes: the solves of each ``γ`` estimate.
        trace_rtol: their CG's relative residual.
        trace_seed: the probes' seed.
        **options: :class:`~torch_sigmoid_mlp.training.matrix_free.MatrixFreeLM`'s and
            :class:`~torch_sigmoid_mlp.solvers.BayesianRegularization`'s (``start``, ``mu``,
            ``cg_eta`` …).
    """

    method = "br_cg"

    def __init__(
        self,
        objective: Objective,
        *,
        probes: int = INVERSE_TRACE_PROBES,
        trace_rtol: float = 1e-3,
        trace_seed: int = 0,
        **options,
    ) -> None:
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 2:
            raise ValueError(f"probes must be an int ≥ 2, got {probes!r}")
        if not (isinstance(trace_rtol, (int, float)) and 0 < trace_rtol < 1):
            raise ValueError(f"trace_rtol must be a number in (0, 1), got {trace_rtol!r}")
        super().__init__(objective, **options)
        self.probes, self.trace_rtol = probes, float(trace_rtol)
        self.trace_seed = int(trace_seed)
        self._draws = 0  # estimates drawn so far: the next one's probes come from (trace_seed, _draws)
        self.trace_iterations = 0  # CG iterations of the last γ estimate (the block's longest column)

    def evaluate(self) -> tuple[Tensor, Tensor]:
        self._E_k, max_error = MatrixFreeLM.evaluate(self)  # E_s(w_k), which BR's step reads too
        return self._E_k, max_error

    # -- the system: MatrixFreeLM's hook with BayesianRegularization._system's term -------------

    def _operator_diagonal(self, w: Tensor) -> Tensor | None:
        """``D_α/β`` ``(P,)``, and so the right-hand side ``JᵀSe − (D_α/β)·w`` (``None`` while searching:
        ``α = 0``, plain LM steps)."""
        if self._searching or self.alphas[0] == 0.0:
            return None
        return self._decay(w) / self.beta

    # -- H from products ---------------------------------------------------------------------------

    def _hessian_products(self, A, w: Tensor):
        """``(V ↦ H V, diag(H), 2·D_α)`` with ``H = 2β·JᵀSJ + 2·D_α`` from ``A``'s products."""
        prior = 2 * self._decay(w)  # 2·D_α, (P,)
        two_beta = 2 * self.beta

        def apply(V: Tensor) -> Tensor:
            return two_beta * A(V) + prior[:, None] * V  # H V, (P, k)

        return apply, two_beta * self._diagonal + prior, prior

    def _estimate(self, A, w: Tensor, E: float) -> None:
        """``γ_l`` from ``H``'s products at ``w``, then ``α_l, β``."""
        apply, diagonal, prior = self._hessian_products(A, w)
        traces = inverse_trace(
            apply,
            diagonal,
            self._numels,
            probes=self.probes,
            weights=prior,
            generator=self._generator(),
            rtol=self.trace_rtol,
            max_iter=self.cg_max_iter,
        )  # tr_l(2α_l·H⁻¹), (L,)
        gammas = [min(max(n - t, 0.0), float(n)) for n, t in zip(self._numels, traces.tolist())]
        self._update(gammas, w, E)

    def _evidence_at(self, A, w: Tensor, E: Tensor) -> float | None:
        apply, _, prior = self._hessian_products(A, w)
        if not bool((prior > 0).all()):
            return None
        deflate = min(w.numel(), 2 * math.ceil(self.gamma) + 16)
        log_det = log_determinant(
            apply,
            w.numel(),
            probes=LOG_DET_PROBES,
            steps=LOG_DET_STEPS,
            deflate=deflate,
            diagonal=prior,
            generator=self._generator(),
        ).item()
        if not math.isfinite(log_det):
            return None
        prior_term = sum(n / 2 * math.log(2 * a) for n, a in zip(self._numels, self.alphas))
        F = self._objective_value(E.item(), w)
        return -F - log_det / 2 + prior_term + self.N / 2 * math.log(self.beta / math.pi)

    def _generator(self) -> torch.Generator:
        """The next estimate's probes: a generator seeded from ``trace_seed`` and the estimates so far."""
        self._draws += 1
        return torch.Generator().manual_seed(self.trace_seed * 1_000_003 + self._draws)

    def metrics(self) -> dict[str, float]:
        return {**BayesianRegularization.metrics(self), "cg_iterations": float(self.cg_iterations)}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "trace_draws": self._draws}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        draws = state.pop("trace_draws", None)
        super().load_state_dict(state)
        if draws is not None:
            self._draws = int(draws)


SECOND_ORDER["br_cg"] = MatrixFreeBR  # make_step builds it by name
