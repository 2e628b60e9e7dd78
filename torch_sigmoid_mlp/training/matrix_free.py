r"""Levenberg–Marquardt without forming ``J`` or ``JᵀSJ``: products from the network's own passes, and CG.

SPEC.md, "Second order without forming ``JᵀJ``":

.. code-block:: text

    J v    = ẏ^(L)        v̇^(l+1) = Ẇ^(l) y^(l) + W^(l) ẏ^(l),   ẏ^(l+1) = y^(l+1)(1 − y^(l+1)) v̇^(l+1)
    Jᵀ u   : W^(l) block  Σ_t δ^(l+1)(t) y^(l)(t)ᵀ,  the deltas of SPEC.md with the error e replaced by u
    JᵀSJ v = Jᵀ(S·(J v))                               (S = diag(s_t), each point's weight on its m rows)
    diag(JᵀSJ) : W^(l) block  Σ_t s_t Σ_i (δ_i^(l+1)(t))² ⊗ (y^(l)(t))²   (δ_i: the deltas of e = u_i)

The signals ``y^(l)`` come from one forward pass at ``w_k`` and serve every product of the epoch; each
product is one forward-mode and one backward pass over them, ``O(N·P)``, a chunk of points at a time,
summed over the ranks of a process group. No ``N×P`` or ``P×P`` matrix is ever held: memory beyond
the model and the data is the signals (``T·Σ_l size_l`` numbers) and a few vectors of ``P``.
:class:`MatrixFreeLM` solves Levenberg–Marquardt's system with them by conjugate gradients
(:func:`~torch_sigmoid_mlp.training.krylov.conjugate_gradients`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from ..core._flat import as_weights, flatten
from ..core.derivatives import _deltas
from ..core.functional import SigmoidMLPFunction, _sigmoid_backward
from .krylov import conjugate_gradients
from .objective import JACOBIAN_BLOCK, Objective
from .ranks import is_distributed
from .solvers import SECOND_ORDER, LevenbergMarquardt

__all__ = ["FORCING", "WARM_STARTS", "GaussNewtonProducts", "MatrixFreeLM"]


class GaussNewtonProducts:
    r"""``V ↦ JᵀSJ·V``, ``JᵀSe`` and ``diag(JᵀSJ)`` at the weights of the last :meth:`forward`.

    .. code-block:: text

        JᵀSJ V = Σ_chunks Jᵀ_c (S_c · (J_c V))       one forward-mode and one backward pass per chunk
        JᵀSe   = Σ_t s_t J_tᵀ e_t                     the deltas of e = s ⊙ (d − y^(L))
        diag   = Σ_t s_t Σ_i (δ_i^(l+1))² ⊗ (y^(l))²  one backward pass per output i

    Args:
        objective: the points (their chunks, sample weights and ranks) and the model.
        rows: points per chunk; ``None``: the objective's ``chunk_size``, or as many as keep a chunk's
            ``m`` deltas per neuron within ``JACOBIAN_BLOCK`` numbers (all of them on small problems).

    Memory: the signals ``y^(1..L)`` of every point (``T·Σ_{l≥1} size_l`` numbers, ``y^(0)`` is the
    data itself where it lies on the model's device), a copy of ``w``, and per pass the temporaries
    of one chunk; :class:`MatrixFreeLM` holds two sets of signals (``w_k``'s and a trial's).

    Every sum is accumulated in float64 and, in a process group, summed over the ranks (one
    ``all_reduce`` per product). The products themselves run in the model's dtype, on its device.

    Shape:
        ``V``: ``(P,)`` or ``(P, k)`` (``k`` directions at once), any dtype; the product is float64,
        shaped as ``V``. Columns follow ``torch.cat([W.reshape(-1) for W in weights])``.

    Example::

        >>> model = SigmoidMLP(2, (3,), 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> x, d = torch.rand(20, 2, dtype=torch.float64), torch.rand(20, 1, dtype=torch.float64)
        >>> products = GaussNewtonProducts(Objective(model, x, d))
        >>> _ = products.forward()
        >>> J = jacobian(model, x)
        >>> v = torch.ones(products.P, dtype=torch.float64)
        >>> torch.allclose(products(v), J.T @ (J @ v))
        True
    """

    def __init__(self, objective: Objective, rows: int | None = None) -> None:
        self.objective = objective
        self.P = objective.P
        # chunks of chunk_size, or as many points as keep a chunk's m deltas per neuron (diag's) within
        # JACOBIAN_BLOCK numbers: the passes' temporaries stay bounded whatever T is
        neurons = sum(W.shape[-2] for W in objective.weights) * objective.d.shape[1]
        self.rows = (
            rows or objective.chunk_size or max(1, min(objective.x.shape[0], JACOBIAN_BLOCK // neurons))
        )
        self._plain = [W.detach() for W in objective.weights]
        self.signals: list[tuple[list[Tensor], Tensor, Tensor | None]] = []  # (y^(0..L), d, s) per chunk
        self.at: Tensor | None = None  # the weights (flat, model's dtype) the signals are of
        self.value: tuple[Tensor, Tensor] | None = None  # (E_s, max_t |e(t)|) there
        self.weights: list[Tensor] = []  # W^(0..L−1) there
        self.products = 0  # JᵀSJ·V products formed since construction (CG's iterations, and warm starts)

    def _distributed(self) -> bool:
        return self.objective.distributed and is_distributed()

    def _reduce(self, total: Tensor) -> Tensor:
        if self._distributed():
            dist.all_reduce(total)
        return total

    def forward(self) -> tuple[Tensor, Tensor]:
        """Forward pass at the current weights, keeping ``y^(0..L)`` per chunk; ``(E_s, max_t |e(t)|)``,
        summed (and maximised) over ranks."""
        o = self.objective
        weights = self._plain
        E, max_error = o._zeros()
        signals = []
        with torch.no_grad():
            for x, d, s in o._chunks(self.rows):
                ys = [x, *SigmoidMLPFunction.forward(x, *weights)]  # y^(0..L), (K, size_l)
                E_c, max_c = o._terms(ys[-1], d, s)
                E += E_c
                max_error = torch.maximum(max_error, max_c)
                signals.append((ys, d, s))
        E, max_error = o._sum(E, max_error)
        # the weights too: a trial loads others into the model while these signals still serve
        self.at = flatten(weights)  # a copy, (P,)
        self.weights = as_weights(self.at, weights)  # views of it, shaped as W^(l)
        self.signals, self.value = signals, (E, max_error)
        return E, max_error

    def adopt(self, other: GaussNewtonProducts) -> None:
        """Take ``other``'s signals (a trial forward at weights that were then accepted)."""
        self.signals, self.at, self.value, self.weights = other.signals, other.at, other.value, other.weights
        other.clear()

    def clear(self) -> None:
        """Drop the signals."""
        self.signals, self.at, self.value, self.weights = [], None, None, []

    def current(self) -> bool:
        """Whether the signals are those of the weights as they are now."""
        return self.at is not None and torch.equal(self.at, flatten(self._plain))

    def _blocks(self, G: list[Tensor]) -> Tensor:
        """Per-layer ``(k, size_{l+1}, size_l)`` blocks as one float64 ``(P, k)``."""
        return torch.cat([g.reshape(g.shape[0], -1) for g in G], dim=1).T.double()

    def rhs_and_diagonal(self) -> tuple[Tensor, Tensor]:
        """``(JᵀSe, diag(JᵀSJ))`` at the signals' weights, float64 ``(P,)`` each, summed over ranks."""
        weights = self.weights
        g = torch.zeros(self.P, dtype=torch.float64, device=weights[0].device)
        diagonal = torch.zeros_like(g)
        with torch.no_grad():
            for ys, d, s in self.signals:
                K, m = d.shape
                e = d - ys[-1]  # e = d − y^(L), (K, m)
                if s is not None:
                    e = s * e
                g += self._jtu(ys, e[None])[:, 0]  # Jᵀ S e, (P,)
                units = torch.eye(m, dtype=e.dtype, device=e.device)[:, None, :].expand(m, K, m)  # u_i
                deltas = _deltas(weights, ys, units)  # δ_i^(l+1), (m, K, size_{l+1})
                squares = []
                for delta, y in zip(deltas, ys):
                    per_point = delta.double().square().sum(0)  # Σ_i (δ_i^(l+1)(t))², (K, size_{l+1})
                    if s is not None:
                        per_point = s.double() * per_point
                    squares.append((per_point.T @ y.double().square())[None])  # (1, size_{l+1}, size_l)
                diagonal += self._blocks(squares)[:, 0]
        if self._distributed():
            both = self._reduce(torch.cat([g, diagonal]))
            g, diagonal = both[: self.P], both[self.P :]
        return g, diagonal

    def _tangents(self, V: Tensor) -> list[Tensor]:
        """``v``'s blocks as the tangents ``Ẇ^(l)``, in the model's dtype: ``(k, size_{l+1}, size_l)``."""
        tangents, offset = [], 0
        for W in self.weights:
            n = W.numel()
            tangents.append(V[offset : offset + n].T.reshape(V.shape[1], *W.shape).to(W.dtype))
            offset += n
        return tangents

    def _jv(self, ys: list[Tensor], tangents: list[Tensor]) -> Tensor:
        """``J_c v`` of one chunk by forward mode, ``(k, K, m)``."""
        y_t = None  # ẏ^(0) = ẋ = 0
        for l, W in enumerate(self.weights):
            v_t = torch.matmul(ys[l], tangents[l].mT)  # Ẇ^(l) y^(l), (k, K, size_{l+1})
            if y_t is not None:
                v_t += torch.matmul(y_t, W.mT)  # + W^(l) ẏ^(l)
            y_t = _sigmoid_backward(v_t, ys[l + 1])  # ẏ^(l+1) = y^(l+1)(1 − y^(l+1)) v̇^(l+1)
        return y_t

    def _jtu(self, ys: list[Tensor], u: Tensor) -> Tensor:
        """``J_cᵀ u`` of one chunk by the deltas of ``e = u`` ``(k, K, m)``: float64 ``(P, k)``."""
        deltas = _deltas(self.weights, ys, u)  # δ^(l+1) of u, (k, K, size_{l+1})
        return self._blocks([delta.mT @ y for delta, y in zip(deltas, ys)])  # Σ_t δ^(l+1) y^(l)ᵀ

    def __call__(self, V: Tensor) -> Tensor:
        """``JᵀSJ·V``, float64, shaped as ``V`` (``(P,)`` or ``(P, k)``)."""
        vector = V.dim() == 1
        V = V[:, None] if vector else V  # (P, k)
        tangents = self._tangents(V)
        total = torch.zeros(self.P, V.shape[1], dtype=torch.float64, device=V.device)
        with torch.no_grad():
            for ys, _, s in self.signals:
                Jv = self._jv(ys, tangents)  # (k, K, m)
                total += self._jtu(ys, Jv if s is None else s * Jv)  # Jᵀ S J v, (P, k)
        self.products += 1
        total = self._reduce(total)
        return total[:, 0] if vector else total

    def layer_grams(self) -> list[Tensor]:
        r"""``S^½ J_l J_lᵀ S^½`` for each layer ``l``: float64 ``(R, R)``, ``R = T·m`` rows of this process's
        points (output-major within each chunk: row ``i·K + t`` of a chunk of ``K`` points).

        .. code-block:: text

            J_l's row (t, i) = δ_i^(l+1)(t) ⊗ y^(l)(t)     (δ_i: the deltas of e = u_i, as diag's)
            (J_l J_lᵀ)[(t,i), (t',i')] = (δ_i^(l+1)(t)·δ_i'^(l+1)(t')) · (y^(l)(t)·y^(l)(t'))

        Two Gram matrices of ``size_{l+1}`` and ``size_l`` columns and their elementwise product, ``O(R²·
        (size_l + size_{l+1}))``: no row of ``J`` is formed. Only for a small ``R`` (the matrices are
        ``R×R``), and one process (the rows of other ranks are not here).
        """
        weights = self.weights
        deltas_of, signals_of = [[] for _ in weights], [[] for _ in weights]
        with torch.no_grad():
            for ys, d, s in self.signals:
                K, m = d.shape
                units = torch.eye(m, dtype=d.dtype, device=d.device)[:, None, :].expand(m, K, m)  # u_i
                root = None if s is None else s.double().sqrt()  # s_t^½, (K, 1)
                for l, (delta, y) in enumerate(zip(_deltas(weights, ys, units), ys)):
                    delta = delta.double()  # δ_i^(l+1)(t), (m, K, size_{l+1})
                    if root is not None:
                        delta = root * delta
                    deltas_of[l].append(delta.reshape(m * K, -1))  # rows i·K + t
                    signals_of[l].append(y.double().repeat(m, 1))  # y^(l)(t) on each output's rows
        grams = []
        for B, Y in zip(deltas_of, signals_of):
            B, Y = torch.cat(B), torch.cat(Y)  # (R, size_{l+1}), (R, size_l)
            grams.append((B @ B.T) * (Y @ Y.T))  # (R, R)
        return grams

    def jacobian_vector(self, V: Tensor) -> Tensor:
        """``J v`` at this process's points, rows ``t·m + i`` (as :func:`~torch_sigmoid_mlp.jacobian`):
        ``(T_r·m,)`` or ``(T_r·m, k)``, in the model's dtype."""
        vector = V.dim() == 1
        V = V[:, None] if vector else V
        tangents = self._tangents(V)
        with torch.no_grad():
            rows = [self._jv(ys, tangents).flatten(1, 2).T for ys, _, _ in self.signals]  # (K·m, k)
        out = torch.cat(rows) if rows else V.new_zeros(0, V.shape[1]).to(self.weights[0].dtype)
        return out[:, 0] if vector else out

    def jacobian_transpose_vector(self, U: Tensor) -> Tensor:
        """``Jᵀ u`` summed over the ranks, ``u`` of this process's rows ``t·m + i`` (``(T_r·m,)`` or
        ``(T_r·m, k)``); no sample weights. Float64 ``(P,)`` or ``(P, k)``."""
        vector = U.dim() == 1
        U = U[:, None] if vector else U
        total = torch.zeros(self.P, U.shape[1], dtype=torch.float64, device=U.device)
        start = 0
        with torch.no_grad():
            for ys, d, _ in self.signals:
                K, m = d.shape
                u = U[start : start + K * m].T.reshape(U.shape[1], K, m).to(d.dtype)  # (k, K, m)
                total += self._jtu(ys, u)
                start += K * m
        total = self._reduce(total)
        return total[:, 0] if vector else total


#: ``cg_warm=`` of :class:`MatrixFreeLM`: where CG starts after a rejected ``μ``.
WARM_STARTS = ("scaled", "previous", "zero")
#: :class:`MatrixFreeLM` keeps ``μ`` at or above this (in the weights' unit).
MU_MIN = 1e-20
#: ``cg_forcing=`` of :class:`MatrixFreeLM`: how ``eta`` follows the right-hand side's norm.
FORCING = ("sqrt", "none")


class MatrixFreeLM(LevenbergMarquardt):
    r"""Levenberg–Marquardt with its system solved by conjugate gradients on products, no ``JᵀSJ`` formed.

    .. code-block:: text

        (JᵀSJ + D + μ·u·I) Δw = r     by Jacobi-preconditioned CG, preconditioner diag(JᵀSJ) + D + μ·u
        D = _operator_diagonal(w) (none here),  r = JᵀSe − D·w

    ``μ`` follows :class:`~torch_sigmoid_mlp.solvers.LevenbergMarquardt`'s rule exactly (the same
    ``step``: accept where ``E_s`` falls, ``μ`` in the weights' unit ``u``, ``damping=``, ``mu_max``);
    only the solve differs. Each epoch is one forward pass at ``w_k`` (kept, :class:`GaussNewtonProducts`),
    one backward pass for ``JᵀSe`` and ``m`` for ``diag(JᵀSJ)``, then per CG iteration one product
    ``O(N·P)``; each ``μ`` tried is a CG solve and one trial forward pass, and the accepted trial's
    forward is the next epoch's. CG stops by Ceres's inexact-Newton rule (``eta``: the quadratic
    model falling by less than ``eta`` of itself per iteration on average), at ``cg_rtol`` relative
    residual, or after ``cg_max_iter`` iterations. ``eta`` is ``cg_eta`` (Ceres's 0.1) every epoch
    (``cg_forcing="none"``, default), or shrinks as ``cg_eta·√(‖r_k‖/‖r_0‖)`` with the right-hand side
    ``r_k`` (the gradient; ``cg_forcing="sqrt"``), a forcing sequence of inexact Newton methods
    (Nocedal and Wright, 7.1). A fixed ``eta`` truncates every step alike, and near an exact minimum
    the fit creeps: from the same starts, the teacher problems of ``tests/problems.py`` (seeds 1 and
    2) reached ``E < 10⁻¹⁴`` in 289 and 54 epochs with it, in 30 and 18 with ``"sqrt"`` (dense LM: 38
    and 17). But the forcing's CG runs long: fitting 30 inputs at T = 2000
    (``benchmarks/results/matrix_free.md``) it took 100–270 products an epoch against 26–39, for
    about the same training ``R²`` after as many epochs.

    CG starts from the last accepted ``Δw`` (the previous epoch's step: consecutive Gauss–Newton
    steps point alike), and after a rejection from the rejected trial's ``Δw`` scaled by
    ``μ_old/μ_new`` (``cg_warm="scaled"``; the large-``μ`` limit ``Δw ≈ r/μ``), as it is
    (``"previous"``) or from zero (``"zero"``). ``benchmarks/results/matrix_free.md`` compares them.
    Where the points give fewer rows than weights (``R = T·m < P``) and the system has no diagonal
    ``D`` (plain LM steps: ``"lm_cg"``, and ``"br_cg"`` while it searches with ``α = 0``), an epoch's
    first ``μ`` starts from zero instead (``cg_warm_epochs``): ``JᵀSJ`` is singular there (rank
    ``≤ R``), and the part ``x₀ₙ`` of a warm start in its null space stays in the solution (the
    residual there is ``μ·u·x₀ₙ``, below any stop once ``μ`` is small), so it is stepped again every
    epoch, a drift of constant velocity (with ``D = D_α/β > 0`` the operator has no null space, and
    the warm start stays). Measured (``benchmarks/results/br_cg_trace_sinsq.md``: ``sinsq n=20`` of
    ``bench_wide.py``, ``P = 820``, ``R = 100``, 5 seeds, one start of ``"br_cg"``; on every seed
    BR's ``"trainbr"`` start collapsed at epoch 6 and began again with plain LM steps): from the last
    step ``E_W = Σ w²`` grew to 2.3·10³–2.3·10⁷ (dense ``"br"``'s 240–330), the test MSE 2.7e-4 to
    2.2e-2, median 9.9e-3 (dense ``"br"`` 3.3e-3); from zero ``E_W`` stayed within 440–1500, the test
    MSE 1.9e-3 to 4.3e-3, median 2.35e-3, in fewer CG iterations (310–420 a fit against 400–2900).
    ``"lm_cg"`` on the three rows of ``bench_wide.py`` with ``R < P`` among ``results/wide_lm_cg.md``'s
    (``results/wide_lm_cg_warm.md``, 3 seeds, one run): lower test MSE on all 9 fits, medians 4.12e-3,
    2.10e-3, 2.14e-2 against 7.28e-3, 5.35e-3, 3.09e-2.

    Its quadratic-model decrease (for ``damping="nielsen"``'s ``ρ``) is CG's own ``−q(Δw) + ½μu‖Δw‖²``,
    exact for an inexact ``Δw`` too. The CG vectors are float64 (``O(P)`` each, nothing beside the
    ``O(N·P)`` products); the products run in the model's dtype.

    Hooks for a subclass that changes the system as
    :meth:`BayesianRegularization._system <torch_sigmoid_mlp.solvers.BayesianRegularization._system>`
    does for the dense matrix:

    - :meth:`_operator_diagonal` ``(w) → (P,) or None``: a diagonal ``D`` added to ``JᵀSJ`` in the
      operator and in the preconditioner (``D_α/β``), and the right-hand side ``JᵀSe − D·w`` with it.

    ``A`` as ``_before_step``/``_accepted`` receive it is the :class:`GaussNewtonProducts` at ``w_k``.

    A population (``SigmoidMLP(..., population=K)``) trains its members one after another, each as
    one network (the loop's path for solvers that are not batched).

    Args:
        objective: the points and the model.
        cg_eta: Ceres's stop (``0 < eta < 1``), ``None`` to solve to ``cg_rtol``.
        cg_max_iter: the most CG iterations per ``μ``.
        cg_rtol: the relative residual at which CG stops in any case.
        cg_warm: one of :data:`WARM_STARTS`.
        cg_forcing: one of :data:`FORCING`.
        cg_warm_epochs: whether an epoch's first ``μ`` starts CG from the last accepted ``Δw``;
            ``None`` (default): where ``R = T·m ≥ P`` or the system has a diagonal ``D``, else from zero.
        **options: :class:`~torch_sigmoid_mlp.solvers.LevenbergMarquardt`'s (``mu``, ``damping`` …).
    """

    method = "lm_cg"

    def __init__(
        self,
        objective: Objective,
        *,
        cg_eta: float | None = 0.1,
        cg_max_iter: int = 500,
        cg_rtol: float = 1e-10,
        cg_warm: str = "scaled",
        cg_forcing: str = "none",
        cg_warm_epochs: bool | None = None,
        **options,
    ) -> None:
        super().__init__(objective, **options)
        if cg_eta is not None and not 0 < cg_eta < 1:
            raise ValueError(f"cg_eta must lie in (0, 1) or be None, got {cg_eta!r}")
        if isinstance(cg_max_iter, bool) or not isinstance(cg_max_iter, int) or cg_max_iter < 1:
            raise ValueError(f"cg_max_iter must be an int ≥ 1, got {cg_max_iter!r}")
        if not (isinstance(cg_rtol, (int, float)) and 0 <= cg_rtol < 1):
            raise ValueError(f"cg_rtol must be a number in [0, 1), got {cg_rtol!r}")
        if cg_warm not in WARM_STARTS:
            raise ValueError(f"cg_warm must be one of {WARM_STARTS}, got {cg_warm!r}")
        if cg_forcing not in FORCING:
            raise ValueError(f"cg_forcing must be one of {FORCING}, got {cg_forcing!r}")
        if not (cg_warm_epochs is None or isinstance(cg_warm_epochs, bool)):
            raise ValueError(f"cg_warm_epochs must be True, False or None, got {cg_warm_epochs!r}")
        self.cg_eta, self.cg_max_iter, self.cg_rtol = cg_eta, cg_max_iter, float(cg_rtol)
        self.cg_warm, self.cg_forcing = cg_warm, cg_forcing
        self._first_rhs, self._eta = None, cg_eta
        self.products = GaussNewtonProducts(objective)
        self._trial = GaussNewtonProducts(objective, self.products.rows)  # the trial forward's signals
        self._accepted_dw: Tensor | None = None  # the last accepted Δw: the next epoch's warm start
        self._warm_epochs = cg_warm_epochs
        # R = T·m ≥ P (rows, not Σ_t s_t·m: JᵀSJ's rank is at most the rows): JᵀSJ may have full rank, no
        # null space for a warm start to carry from epoch to epoch
        self._full_rank = objective.N >= objective.P
        self._last: tuple[Tensor, float] | None = None  # this epoch's last trial Δw and its μ
        self._trial_dw: Tensor | None = None
        self._q = 0.0
        self.cg_iterations = 0  # CG iterations of the last epoch, all μ together

    # -- the hooks of LevenbergMarquardt.step ------------------------------------------------------

    def _gauss_newton(self):
        """``(products, JᵀSe, E_s, max |e|)`` at ``w_k``: the signals of :meth:`evaluate`'s forward, or of
        the accepted trial's, which was at these weights."""
        # accepted inexact steps lower μ every epoch (no factorisation fails to raise it): kept above
        # MU_MIN, where it still counts against underflow (a μ of 0 would stay 0 when multiplied)
        self.mu = max(self.mu, MU_MIN)
        p = self.products
        if self._trial.current():
            p.adopt(self._trial)  # the accepted trial's forward: none again at w_k
            self._accepted_dw = self._trial_dw  # this epoch's warm start (else the one kept)
        else:
            self._trial.clear()  # a rejected trial's signals
            if not p.current():
                p.forward()
        E, max_error = p.value
        g, diagonal = p.rhs_and_diagonal()
        self._diagonal = diagonal
        self._last = None
        self.cg_iterations = 0
        return p, g, E, max_error

    def _operator_diagonal(self, w: Tensor) -> Tensor | None:
        """A diagonal ``D`` ``(P,)`` added to ``JᵀSJ`` (operator and preconditioner); ``None`` here."""
        return None

    def _system(self, A, g: Tensor, w: Tensor):
        extra = self._operator_diagonal(w)  # D, (P,) or None
        rhs = g if extra is None else g - extra * w  # JᵀSe − D·w, as the dense _system's
        self._eta = self._forcing(rhs.norm().item())
        return (A, extra), rhs

    def _forcing(self, norm: float) -> float | None:
        """This epoch's ``eta``: ``cg_eta``, or with ``cg_forcing="sqrt"`` ``cg_eta·min(1, √(‖r_k‖/‖r_0‖))``
        (``r_0`` the first epoch's right-hand side); ``None`` (solve to ``cg_rtol``) below ``1e-12``."""
        if self.cg_eta is None:
            return None
        if self._first_rhs is None:
            self._first_rhs = norm
        if self.cg_forcing == "none" or not self._first_rhs > 0:
            return self.cg_eta
        eta = self.cg_eta * min(1.0, (norm / self._first_rhs) ** 0.5)
        return eta if eta > 1e-12 else None

    def _workspace(self, M) -> None:
        return None

    def _solve(self, M, rhs: Tensor, damped=None) -> Tensor | None:
        """``Δw`` from ``(JᵀSJ + D + μ·u·I) Δw = rhs`` by preconditioned CG; ``None`` where not finite."""
        products, extra = M
        damping = self.mu * self._unit if extra is None else extra + self.mu * self._unit  # μ·u (+ D)
        diagonal = self._diagonal + damping  # (P,)
        # a weight no point's output depends on, with μ·u below rounding: 1 for its preconditioner
        diagonal = torch.where(diagonal > 0, diagonal, 1.0)

        def apply(V: Tensor) -> Tensor:
            return products(V) + damping * V  # (JᵀSJ + D + μ·u·I) V

        x0 = self._warm_start(extra is not None)
        result = conjugate_gradients(
            apply, rhs, diagonal=diagonal, x0=x0, rtol=self.cg_rtol, eta=self._eta, max_iter=self.cg_max_iter
        )
        self.cg_iterations += int(result.iterations.item())
        dw = result.x
        self._last = (dw, self.mu)
        if not bool(torch.isfinite(dw).all()):
            self._last = None
            return None
        self._q = float(result.q.item())
        self._trial_dw = dw
        return dw

    def _warm_start(self, decayed: bool) -> Tensor | None:
        """CG's ``x₀`` for this ``μ`` (``decayed``: the system has a diagonal ``D``)."""
        if self._last is None:  # the epoch's first μ: the last accepted step, or zero (see the class)
            warm = self._full_rank or decayed if self._warm_epochs is None else self._warm_epochs
            return self._accepted_dw if warm else None
        dw, mu = self._last
        if self.cg_warm == "zero":
            return None
        return dw * (mu / self.mu) if self.cg_warm == "scaled" else dw

    def _predicted(self, dw: Tensor, rhs: Tensor) -> float:
        # −q(Δw) of the damped model plus ½μu‖Δw‖²: rhsᵀΔw − ½Δwᵀ(JᵀSJ + D)Δw for any Δw CG returns
        return -self._q + 0.5 * self.mu * self._unit * torch.dot(dw, dw).item()

    def _trial_error(self, trial: Tensor) -> tuple[Tensor, Tensor]:
        self._load(trial)  # at the model's weights, whose signals the trial's products keep
        return self._trial.forward()  # its signals kept: an accepted trial's forward is the next epoch's

    def evaluate(self) -> tuple[Tensor, Tensor]:
        known, self._known = self._known, None
        if known is not None:
            return known  # at the accepted trial, whose signals the step takes
        return self.products.forward()  # at w_k, its signals kept for the step

    def metrics(self) -> dict[str, float]:
        return {"mu": self.mu, "cg_iterations": float(self.cg_iterations)}

    def state_dict(self) -> dict:
        # the warm start too: a resumed run's CG starts where the whole run's would
        start = self._trial_dw if self._trial.current() else self._accepted_dw  # the step to w_k
        start = None if start is None else start.clone()
        return {**super().state_dict(), "cg_start": start, "first_rhs": self._first_rhs}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict({k: v for k, v in state.items() if k not in ("cg_start", "first_rhs")})
        self._first_rhs = state.get("first_rhs")
        start = state.get("cg_start")
        W0 = self._plain[0]
        self._accepted_dw = None if start is None else start.to(dtype=torch.float64, device=W0.device)


SECOND_ORDER["lm_cg"] = MatrixFreeLM  # make_step builds it by name
