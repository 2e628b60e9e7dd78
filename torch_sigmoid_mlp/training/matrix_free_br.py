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

import copy
import math

import torch
from torch import Tensor

from .matrix_free import MatrixFreeLM
from .objective import Objective
from .solvers import DATA_SPACE_ROWS, SECOND_ORDER, BayesianRegularization, data_space
from .trace_estimate import (
    INVERSE_TRACE_PROBES,
    LOG_DET_PROBES,
    LOG_DET_STEPS,
    Recycled,
    inverse_trace,
    log_determinant,
)

__all__ = ["DATA_SPACE_ROWS", "GAMMA_SETTLED", "TRACE_SPACES", "MatrixFreeBR"]

#: ``trace_space=`` of :class:`MatrixFreeBR`: where ``γ_l`` and ``ln det H`` come from.
TRACE_SPACES = ("auto", "data", "probes")
#: On the probes an estimate whose ``γ`` moved by less than this share of it since the last one doubles
#: the accepted steps to the next (up to ``trace_interval``); a larger move brings them back to one.
#: Measured (``benchmarks/results/br_cg_gamma.md``): 40-epoch runs on 1-8-8-1 made 349 estimates for 537
#: accepted steps, the γ they held at the end within 0.4 % of the dense γ there (median; 1.9 % worst;
#: estimating every step 0.2 %, 5.0 %: the γ held is one or more updates of α_l, β old).
GAMMA_SETTLED = 0.01


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
    ``benchmarks/results/trace.md``. The probes are drawn at the first estimate and kept
    (``trace_recycle``): each later estimate moves the deflated basis by one step of subspace iteration
    and starts CG from the last estimate's solutions, ``H`` having changed by one step, preconditioned
    on the deflated basis as well as by Jacobi (``inverse_trace``'s ``coarse``). With
    ``trace_interval > 1``, once ``γ`` has settled (it moved by less than :data:`GAMMA_SETTLED` of
    itself between two estimates) the steps between estimates double, up to ``trace_interval``; in
    between ``α_l, β`` follow ``E_W^(l), E_D`` with the last ``γ_l`` (``α_l = γ_l/(2E_W^(l))``,
    ``β = (N − γ)/(2E_D)``). It is off by default: measured (``benchmarks/results/br_cg_gamma.md``), up
    to every 8th step took 3.1 and 3.8 s against 5.1 and 5.3 s every step on two bench_robust rows, but
    on a 10-input teacher (276 weights, 300 points) no less time, and one of three fits ended at 1.9×
    the test MSE of every step's. The evidence
    deflates ``2⌈γ⌉ + 16`` directions and takes
    :data:`~torch_sigmoid_mlp.training.trace_estimate.LOG_DET_PROBES` Lanczos probes.

    Where the points give fewer rows than weights (``R = T·m < P``, a wide network on few points) both
    come exactly from the data space instead, with ``R×R`` matrices and no ``P×P`` one
    (``trace_space``; ``U = (2β)^½·S^½ J C⁻¹``, ``C² = 2·D_α``, ``U_l U_lᵀ = (β/α_l)·S^½ J_l J_lᵀ S^½``
    from :meth:`~torch_sigmoid_mlp.training.matrix_free.GaussNewtonProducts.layer_grams`):

    .. code-block:: text

        H = C (I + UᵀU) C,   G = I + UUᵀ = I + Σ_l U_l U_lᵀ                        (R×R)
        γ_l = P_l − tr_l((I + UᵀU)⁻¹) = tr_l(Uᵀ G⁻¹ U) = Σ_ij (G⁻¹)_ij (U_l U_lᵀ)_ij   (Woodbury)
        ln det H = Σ_l P_l·ln(2α_l) + ln det G                                       (Sylvester)

    One Cholesky factor of ``G`` and its inverse, ``O(R³)``, against the probes' ``probes`` block CG
    solves of ``O(R·P)`` products each. Measured (``benchmarks/results/br_cg_gamma.md``): ``γ`` within
    ``10⁻¹¹`` of the dense Cholesky's (1-8-8-1, 20 seeds), and whole fits 0.7 s against dense ``"br"``'s
    8.7 s (1220 weights, 300 points; the probes took 10 s).

    The probes of an estimate that draws come from a generator seeded with ``trace_seed`` and the
    number of estimates before it, kept in :meth:`state_dict` with the recycled probes and solutions:
    a run is reproducible, and a resumed one computes what the whole run would.

    Args:
        objective: the points and the model.
        trace_space: one of :data:`TRACE_SPACES`: ``"data"`` (exact, ``R×R``; one process only),
            ``"probes"`` (the estimators), ``"auto"`` (default): ``"data"`` where ``R < P``,
            ``R ≤`` :data:`DATA_SPACE_ROWS` and the points are on one process, else ``"probes"``.
        probes: the solves of each ``γ`` estimate.
        trace_rtol: their CG's relative residual.
        trace_seed: the probes' seed.
        trace_recycle: keep the probes, the deflated basis and the solutions from one estimate to the
            next (:class:`~torch_sigmoid_mlp.training.trace_estimate.Recycled`; in :meth:`state_dict`):
            each estimate one step of subspace iteration and CG from the last solutions instead of
            ``2·d`` products and CG from zero; ``False``: every estimate drawn afresh.
        trace_interval: the most accepted steps from one estimate on the probes to the next (``1``,
            default: every step, as the dense solver).
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
        trace_space: str = "auto",
        trace_recycle: bool = True,
        trace_interval: int = 1,
        **options,
    ) -> None:
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 2:
            raise ValueError(f"probes must be an int ≥ 2, got {probes!r}")
        if not (isinstance(trace_rtol, (int, float)) and 0 < trace_rtol < 1):
            raise ValueError(f"trace_rtol must be a number in (0, 1), got {trace_rtol!r}")
        if isinstance(trace_interval, bool) or not isinstance(trace_interval, int) or trace_interval < 1:
            raise ValueError(f"trace_interval must be an int ≥ 1, got {trace_interval!r}")
        if not isinstance(trace_recycle, bool):
            raise ValueError(f"trace_recycle must be True or False, got {trace_recycle!r}")
        if trace_space not in TRACE_SPACES:
            raise ValueError(f"trace_space must be one of {TRACE_SPACES}, got {trace_space!r}")
        if trace_space == "data" and objective.distributed:
            raise ValueError("trace_space='data' needs the points on one process (distributed=False)")
        super().__init__(objective, **options)
        rows = objective.x.shape[0] * objective.d.shape[1]  # R = T·m
        if trace_space == "auto":
            small = data_space(objective.P, rows, distributed=objective.distributed)
            trace_space = "data" if small else "probes"
        self.trace_space = trace_space
        self.probes, self.trace_rtol = probes, float(trace_rtol)
        self.trace_seed = int(trace_seed)
        self._draws = 0  # estimates drawn so far: the next one's probes come from (trace_seed, _draws)
        self._recycled = Recycled() if trace_recycle else None  # probes, Q, solutions kept between estimates
        self.trace_iterations = 0  # products with H of the last γ estimate (subspace iteration's and CG's)
        self.trace_interval = trace_interval
        self._interval, self._wait = 1, 0  # accepted steps from one estimate to the next; those still to go

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

    def _data_space(self, A) -> tuple[Tensor, list[Tensor]]:
        """``(L_G, [U_l U_lᵀ])``: ``G = I + Σ_l U_l U_lᵀ``'s Cholesky factor and its terms, ``(R, R)``."""
        terms = [(self.beta / a) * K for a, K in zip(self.alphas, A.layer_grams())]  # U_l U_lᵀ
        G = sum(terms)
        G.diagonal().add_(1.0)
        return torch.linalg.cholesky(G), terms

    def _estimate(self, A, w: Tensor, E: float) -> None:
        """``γ_l`` from ``H``'s products at ``w`` (or exactly from the data space), then ``α_l, β``."""
        if self.trace_space == "data":
            factor, terms = self._data_space(A)
            inverse = torch.cholesky_inverse(factor)  # G⁻¹, (R, R)
            gammas = [(inverse * M).sum().item() for M in terms]  # tr(G⁻¹ U_l U_lᵀ)
            self._update([min(max(g, 0.0), float(n)) for g, n in zip(gammas, self._numels)], w, E)
            return
        if self._wait > 0:  # γ settled: α_l, β from the last γ_l and E_W^(l), E_D at w
            self._wait -= 1
            self._update(list(self.gammas), w, E)
            return
        apply, diagonal, prior = self._hessian_products(A, w)
        before = A.products
        traces = inverse_trace(
            apply,
            diagonal,
            self._numels,
            probes=self.probes,
            weights=prior,
            generator=self._generator(),
            rtol=self.trace_rtol,
            max_iter=self.cg_max_iter,
            recycle=self._recycled,
        )  # tr_l(2α_l·H⁻¹), (L,)
        self.trace_iterations = A.products - before
        gammas = [min(max(n - t, 0.0), float(n)) for n, t in zip(self._numels, traces.tolist())]
        settled = abs(sum(gammas) - self.gamma) <= GAMMA_SETTLED * max(sum(gammas), 1.0)
        self._interval = min(2 * self._interval, self.trace_interval) if settled else 1
        self._wait = self._interval - 1
        self._update(gammas, w, E)

    def _begin_search(self) -> None:
        super()._begin_search()
        self._interval, self._wait = 1, 0

    def _evidence_at(self, A, w: Tensor, E: Tensor) -> float | None:
        apply, _, prior = self._hessian_products(A, w)
        if not bool((prior > 0).all()):
            return None
        if self.trace_space == "data":
            factor = self._data_space(A)[0]
            log_det = 2 * factor.diagonal().log().sum().item() + prior.log().sum().item()
        else:
            log_det = self._log_det_probes(apply, prior, w)
        if not math.isfinite(log_det):
            return None
        prior_term = sum(n / 2 * math.log(2 * a) for n, a in zip(self._numels, self.alphas))
        F = self._objective_value(E.item(), w)
        return -F - log_det / 2 + prior_term + self.N / 2 * math.log(self.beta / math.pi)

    def _log_det_probes(self, apply, prior: Tensor, w: Tensor) -> float:
        """``ln det H`` by deflated SLQ."""
        deflate = min(w.numel(), 2 * math.ceil(self.gamma) + 16)
        return log_determinant(
            apply,
            w.numel(),
            probes=LOG_DET_PROBES,
            steps=LOG_DET_STEPS,
            deflate=deflate,
            diagonal=prior,
            generator=self._generator(),
        ).item()

    def _generator(self) -> torch.Generator:
        """The next estimate's probes: a generator seeded from ``trace_seed`` and the estimates so far."""
        self._draws += 1
        return torch.Generator().manual_seed(self.trace_seed * 1_000_003 + self._draws)

    def evidence(self) -> float | None:
        # a search's end settled for the evidence alone leaves the run as it was: the recycled solves too
        kept = copy.copy(self._recycled), self._interval, self._wait  # its tensors are replaced, not written
        self._wait = 0  # and estimated there, whatever the run's interval
        try:
            return super().evidence()
        finally:
            self._recycled, self._interval, self._wait = kept

    def metrics(self) -> dict[str, float]:
        return {**BayesianRegularization.metrics(self), "cg_iterations": float(self.cg_iterations)}

    def state_dict(self) -> dict:
        state = {**super().state_dict(), "trace_draws": self._draws}
        state["trace_interval"], state["trace_wait"] = self._interval, self._wait
        if self._recycled is not None:
            state["trace_recycled"] = self._recycled.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        draws = state.pop("trace_draws", None)
        recycled = state.pop("trace_recycled", None)
        self._interval, self._wait = int(state.pop("trace_interval", 1)), int(state.pop("trace_wait", 0))
        super().load_state_dict(state)
        if draws is not None:
            self._draws = int(draws)
        if self._recycled is not None:
            self._recycled = Recycled()
            if recycled is not None:
                self._recycled.load_state_dict(recycled, device=self._plain[0].device)


SECOND_ORDER["br_cg"] = MatrixFreeBR  # make_step builds it by name
