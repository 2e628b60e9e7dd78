r"""Levenberg–Marquardt and Bayesian regularisation for a population: one batched system per epoch.

Each member ``k`` keeps its own damping ``μ_k`` (and for BR its ``α_{k,l}, β_k, γ_{k,l}``, its
search and its start) and follows the single network's rules of
:class:`~torch_sigmoid_mlp.solvers.LevenbergMarquardt` and
:class:`~torch_sigmoid_mlp.solvers.BayesianRegularization` exactly; what is batched is the work:
the Jacobians ``(k, N, P)`` (a block of points at a time where they are large), the Gauss–Newton
matrices ``(k, P, P)`` and their Cholesky factors, for the ``k`` members still active (a stopped
member is left out of every product). The trial steps of
an epoch go on until every active member has accepted one or reached ``μ_max``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from ..core.functional import _sigmoid_backward
from . import br_rule
from .objective import sample_weight_unit, spread
from .population_steps import PopulationStep
from .solvers import LM_MAX_PARAMS, accept, check_damping, inverse_diagonal, reject
from .solvers import BayesianRegularization as _SingleBR

__all__ = ["BayesianRegularization", "LevenbergMarquardt"]

#: the most numbers of the members' Jacobians formed at once (256 MB in float64): the members in groups,
#: and one member's points in blocks where its whole ``J`` is larger (``bench_lm_memory.py``: a population
#: of one at P = 136 and T = 3·10⁶, 1.1 GB in all against the whole ``J``'s 3.9 GB)
JACOBIAN_NUMBERS = 1 << 25
#: A round of trials tries a second damping value for a member only where at most
#: ``SPECULATE_MEMBERS`` members are still seeking a step and a factorisation is cheap, ``P³`` at most
#: ``SPECULATE_FLOPS`` (``_lm_step``). Measured per member and epoch, 60 epochs from one start
#: (``bench_lm.floor_problem``, interleaved, AMD EPYC, one thread), one value a round against two:
#: at 1-8-8-1 (P = 80), T = 100, K = 3: LM 505 / 465 µs, BR 858 / 746; K = 8 (two only where at most
#: 3 seek): LM 391 / 338, BR 627 / 615, and two for all 8: 480 and 767; at P = 130 (2-10-10-1), K = 3:
#: LM 614 / 926, BR 914 / 1067; at P = 304 (2-16-16-1), K = 3: LM 2272 / 4461. Where the extra
#: factorisations and trial passes cost more than the round they save, none is made.
SPECULATE_MEMBERS, SPECULATE_FLOPS = 3, 1e6


class LevenbergMarquardt(PopulationStep):
    r"""``(JᵀSJ + μ_k I) Δw_k = JᵀSe`` per member, ``μ_k`` adapted as the single network's ``"lm"``.

    What each member decides from (``μ_k``, ``ν_k``; BR's ``α_{k,l}, β_k, γ_{k,l}``) is a handful of
    numbers, kept as Python numbers as the single network keeps them: tensors that small cost more
    to index than to compute. The tensors are the batched work alone.
    """

    method = "lm"

    def __init__(
        self, weights, x, d, s, *, mu=1e-3, mu_increase=None, mu_decrease=None, mu_max=1e10, damping="trainlm"
    ) -> None:
        super().__init__(weights, x, d, s)
        mu, mu_increase, mu_decrease, mu_max = check_damping(mu, mu_increase, mu_decrease, mu_max, damping)
        if self.plain[0].device.type != "cpu":
            raise ValueError(
                f"method={self.method!r} trains a population on the CPU (its per-member state is kept "
                f"there); the weights are on {self.plain[0].device}: move the population to the CPU, or "
                "train its members one by one (population.member(k))"
            )
        self.P = sum(W[0].numel() for W in self.plain)
        if self.P > LM_MAX_PARAMS:
            raise ValueError(
                f"method={self.method!r} solves a dense P×P system each epoch, and this network has "
                f"P = {self.P} weights, more than LM_MAX_PARAMS = {LM_MAX_PARAMS}"
            )
        self.x, self.d = x.detach(), d.detach()
        self.s = None if s is None else s.detach().reshape(-1, 1)  # (T, 1)
        self.mu_increase, self.mu_decrease, self.mu_max = mu_increase, mu_decrease, mu_max
        self.damping = damping
        self.mu = [float(mu)] * self.K  # μ_k
        # μ_k in the weights' unit, as the single network's (objective.weight_unit)
        self._unit = sample_weight_unit(s)
        self.nu = [mu_increase] * self.K  # Nielsen's ν_k: member k's next rejection's factor
        self._numels = [W[0].numel() for W in self.plain]
        self._ends = list(itertools.accumulate(self._numels))  # where each W^(l)'s columns end
        self._everyone = torch.arange(self.K)
        self._kept = None  # (the weights' versions, _signals of every member there)
        # the most damping values a round of trials tries per member (_lm_step), and whether each
        # member's last step needed more than one
        self.speculate = 2 if self.P**3 <= SPECULATE_FLOPS else 1
        self._rejected = [False] * self.K

    # -- the members' weights as rows of a matrix ---------------------------------------------------

    def _members(self, idx: Tensor) -> list[Tensor]:
        """``W^(l)`` of the members ``idx``: the weights themselves when that is all of them."""
        return self.plain if len(idx) == self.K else [W[idx.to(W.device)] for W in self.plain]

    def _flat(self, idx: Tensor) -> Tensor:
        """``w_k`` of the members ``idx``, ``(k, P)`` in float64."""
        return torch.cat([W.reshape(len(idx), -1) for W in self._members(idx)], 1).double()

    def _load(self, idx: Tensor, flat: Tensor) -> None:
        with torch.no_grad():
            for W, part in zip(self.plain, flat.split(self._numels, 1)):
                part = part.reshape(-1, *W.shape[1:])
                if len(idx) == self.K:
                    W.copy_(part)
                else:
                    W.index_copy_(0, idx.to(W.device), part.to(W))

    # -- sums over the points -------------------------------------------------------------------------

    def _signals(
        self, idx: Tensor, weights: list[Tensor] | None = None, *, largest: bool = True
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor | None]:
        """The members' weights (theirs, or ``weights``), ``y^(0..L)`` and ``(E_k, max_k)`` there
        (``max_k`` only where ``largest``: a trial step needs ``E_k`` alone).

        Every member's pass at its own weights is kept until a weight changes (their version
        counters): the loop's :meth:`evaluate` makes it at ``w_k``, and the epoch's
        :meth:`gauss_newton` takes it from there rather than running the same pass again.
        """
        own = weights is None and len(idx) == self.K
        if own and self._kept is not None and self._kept[0] == [W._version for W in self.plain]:
            weights, ys, E, worst = self._kept[1]
            return weights, ys, E, worst if largest else None
        weights = self._members(idx) if weights is None else weights
        ys = [self.x.expand(len(idx), *self.x.shape)]
        for W in weights:
            ys.append(torch.bmm(ys[-1], W.mT).sigmoid_())  # y^(l+1), (k, T, size_{l+1})
        e = self.d - ys[-1]  # (k, T, m)
        E = 0.5 * (e.square() if self.s is None else self.s * e.square()).sum((1, 2))
        worst = None
        if largest or own:
            worst = (e.abs() if self.s is None else torch.where(self.s > 0, e.abs(), 0)).amax((1, 2))
        if own:
            self._kept = ([W._version for W in self.plain], (weights, ys, E, worst))
        return weights, ys, E, worst if largest else None

    def error(
        self, idx: Tensor, flat: Tensor | None = None, *, largest: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """``(E_k, max_t |e_k(t)|)`` of the members ``idx``, at their weights or at ``flat`` (``(k, P)``
        in the model's dtype); ``max`` is ``None`` unless ``largest``."""
        weights = None
        if flat is not None:
            weights = [
                part.reshape(-1, *W.shape[1:]) for W, part in zip(self.plain, flat.split(self._numels, 1))
            ]
        with torch.no_grad():
            return self._signals(idx, weights, largest=largest)[2:]

    def evaluate(self) -> tuple[Tensor, Tensor]:
        self._E, max_error = self.error(self._everyone)
        return self._E, max_error

    def gauss_newton(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(JᵀSJ, JᵀSe, E_k)`` of the members ``idx``: ``(k, P, P)``, ``(k, P)`` in float64, ``(k,)``."""
        per_member = self.x.shape[0] * self.d.shape[1] * self.P
        group = max(1, JACOBIAN_NUMBERS // max(per_member, 1))
        if len(idx) <= group:
            return self._gauss_newton(idx)
        parts = [self._gauss_newton(part) for part in idx.split(group)]
        return tuple(torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]

    def _gauss_newton(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`gauss_newton` of a group of members, summed a block of points at a time: at most
        :data:`JACOBIAN_NUMBERS` numbers of ``J`` at once, all the points in one block where they fit.
        """
        with torch.no_grad():
            weights, ys, E, _ = self._signals(idx)
            k, T, m = ys[-1].shape
            block = max(1, JACOBIAN_NUMBERS // (k * m * self.P))  # points a block
            A = g = None
            for t in range(0, T, block):
                points = slice(t, t + block)
                J, SJ, Se = self._jacobian(weights, [y[:, points] for y in ys], points)
                if A is None:
                    A, g = J.mT @ SJ, (J.mT @ Se)[..., 0]
                else:
                    A.baddbmm_(J.mT, SJ)
                    g.add_((J.mT @ Se)[..., 0])
            return A, g, E

    def _jacobian(self, weights: list[Tensor], ys: list[Tensor], points: slice) -> tuple[Tensor, ...]:
        """``(J, SJ, Se)`` of the points ``points`` (their signals ``ys``), in float64: ``(k, R, P)``,
        ``(k, R, P)``, ``(k, R, 1)`` with ``R`` their rows ``t·m + i``; ``SJ`` is ``J`` itself
        without sample weights."""
        k, T, m = ys[-1].shape
        J = ys[-1].new_empty(k, T, m, self.P)  # ∂y^(L)_i(t)/∂w, rows t·m + i
        if m == 1:
            delta = _sigmoid_backward(torch.ones_like(ys[-1]), ys[-1])[..., None]  # δ^(L), (k, T, 1, 1)
        else:
            units = torch.eye(m, dtype=ys[-1].dtype, device=ys[-1].device).expand(k, T, m, m)
            delta = _sigmoid_backward(units, ys[-1][:, :, None, :])  # δ^(L) of each y^(L)_i, (k, T, m, m)
        ends = self._ends
        for l in range(len(weights) - 1, -1, -1):
            # ∂y^(L)_i(t)/∂W^(l) = δ_i^(l+1)(t) · y^(l)(t)ᵀ, written into J's columns of W^(l)
            block = J[..., ends[l] - self._numels[l] : ends[l]].unflatten(-1, weights[l].shape[1:])
            torch.mul(delta[..., :, None], ys[l][:, :, None, None, :], out=block)
            if l > 0:
                back = torch.bmm(delta.reshape(k, T * m, -1), weights[l]).reshape(k, T, m, -1)
                delta = _sigmoid_backward(back, ys[l][:, :, None, :])  # δ^(l)
        J = J.reshape(k, T * m, self.P).double()
        e = (self.d[points] - ys[-1]).double().reshape(k, T * m, 1)
        if self.s is None:
            return J, J, e
        rows = self.s[points].double().expand(-1, m).reshape(-1, 1)  # s_t per row, (T·m, 1)
        return J, J * rows, rows * e

    # -- the solver's own form, for BR to change ------------------------------------------------------

    def _form(self, members: list[int]) -> tuple[Tensor | None, list[float]]:
        """What a step of ``members`` must lower, ``F = 2b·E + Σ_i D_i·w_i²``, as ``(D, b)``: the decay
        of each weight ``(k, P)`` (``None``: none) and ``b`` per member. LM lowers ``E``: no decay,
        ``b = ½``. Its system is ``F/(2b)``'s quadratic model, ``(JᵀSJ + D/b + μI) Δw = JᵀSe −
        (D/b)·w``."""
        return None, [0.5] * len(members)

    def _accepted(self, idx, members: list[int], A: Tensor, w: Tensor, E: Tensor) -> None:
        """After the members ``idx`` accepted a step (at their new ``w`` and ``E_s``)."""

    # -- the step -------------------------------------------------------------------------------------

    def step(self, active: Tensor) -> None:
        self.stopped = {}
        idx = active.nonzero()[:, 0].cpu()
        if len(idx):
            self._lm_step(idx)

    def _lm_step(self, idx: Tensor) -> tuple[list[bool], Tensor]:
        """One LM step for each member in ``idx``; which accepted one, and their ``E`` there.

        Each trial is evaluated at the trial weights themselves (views of one ``(k, P)`` tensor in the
        model's dtype); the weights are written once, when every member has its answer.

        A round may try up to :attr:`speculate` damping values per member at once: ``μ_k`` and the
        ones its next rejections would give (:func:`~torch_sigmoid_mlp.training.solvers.reject`), in
        one batched factorisation and one batched trial pass. The member takes the first of them that
        lowers its objective, so ``μ_k``, the step and the stops are those of trying them one after
        another; what changes is the number of rounds. Along a curved valley MATLAB's rule rejects
        and then accepts in nearly every epoch, and there one round does the work of two. A member
        tries more than one value where its last step, or this epoch's last round, had a rejection
        (where steps are accepted at the first ``μ`` no factorisation is spent in vain), and only in a
        round of at most :data:`SPECULATE_MEMBERS` members of at most ``SPECULATE_FLOPS^(1/3)``
        weights: there the round's own work costs more than a factorisation.
        """
        A, g, E = self.gauss_newton(idx)  # at w_k
        w = self._flat(idx)
        members = idx.tolist()
        decay, b = self._form(members)  # F = 2b·E + Σ D·w²
        M, rhs = A, g
        if decay is not None:
            ratio = decay / torch.tensor(b, dtype=torch.float64)[:, None]  # D_α/β, (k, P)
            M = A.clone()
            M.diagonal(dim1=-2, dim2=-1).add_(ratio)  # A + diag(ratio)
            rhs = g - ratio * w
        F_k = self._values(E, w, decay, b)
        dtype = self.plain[0].dtype
        mu, nu = [self.mu[k] for k in members], [self.nu[k] for k in members]
        accepted, rejected = [False] * len(members), [False] * len(members)  # in this epoch
        more = [self._rejected[k] for k in members]  # whether member j tries more than one μ a round
        E_new_all, current = E.clone(), w.clone()
        pending = list(range(len(members)))  # the members still seeking a step, as positions in idx
        while pending:
            tries = self._tries(pending, mu, nu, [more[j] for j in pending])  # (position, μ, ν)
            at = torch.tensor([j for j, _, _ in tries])
            mu_at = torch.tensor([m * self._unit for _, m, _ in tries], dtype=M.dtype)
            damped = M[at]
            damped.diagonal(dim1=-2, dim2=-1).add_(mu_at[:, None])
            factor, info = torch.linalg.cholesky_ex(damped, upper=True)  # M + μ I, each trial its own μ
            rhs_at = rhs[at]
            dw = torch.cholesky_solve(rhs_at[..., None], factor, upper=True)[..., 0]  # Δw, (trials, P)
            trial = (w[at] + dw).to(dtype)
            E_new, _ = self.error(idx[at], trial, largest=False)
            w_new = trial.double()  # as stored, in the model's dtype
            # ½·Δwᵀ(μΔw + rhs): the quadratic model's decrease; with F, failed factorisations: one read
            model = 0.5 * (dw * (mu_at[:, None] * dw + rhs_at)).sum(1)
            readings = [E_new.double(), model, info.to(model)]
            if decay is not None:
                readings.append((decay[at] * w_new.square()).sum(1))
            E_t, model_t, info_t, *penalty = torch.stack(readings).tolist()
            won, seeking_next, row = {}, [], 0
            for j in pending:
                first, begin = None, row
                while row < len(tries) and tries[row][0] == j:
                    r = row
                    row += 1
                    # F = β·E_D + Σ_l α_l E_W^(l); a failed factorisation counts as a rejected step
                    F_new = b[j] * 2 * E_t[r] + (penalty[0][r] if penalty else 0.0)
                    if first is None and info_t[r] == 0 and F_new < F_k[j]:
                        first, F_first = r, F_new
                last = r
                rejected[j] = rejected[j] or first != begin
                if first is not None:
                    predicted = 2 * b[j] * model_t[first]
                    rho = (F_k[j] - F_first) / predicted if predicted > 0 else 1.0
                    mu[j], nu[j] = accept(self, rho, *tries[first][1:])
                    won[j], accepted[j] = first, True
                    continue
                mu[j], nu[j] = reject(self, *tries[last][1:])
                if mu[j] > self.mu_max:
                    self.stopped[members[j]] = "mu_max"  # no μ ≤ μ_max lowers it: back to w_k
                else:
                    seeking_next.append(j)
                    more[j] = True
            if len(won) == len(members) == len(tries):
                E_new_all, current = E_new, w_new
            elif won:
                rows, into = torch.tensor(list(won.values())), torch.tensor(list(won))
                current[into], E_new_all[into] = w_new[rows], E_new[rows]
            pending = seeking_next
        self._load(idx, current)
        for k, m, v, r in zip(members, mu, nu, rejected):
            self.mu[k], self.nu[k], self._rejected[k] = m, v, r
        if all(accepted):
            self._accepted(idx, members, A, current, E_new_all)
        elif any(accepted):
            on = torch.tensor(accepted)
            self._accepted(
                idx[on], [k for k, a in zip(members, accepted) if a], A[on], current[on], E_new_all[on]
            )
        return accepted, E_new_all

    @staticmethod
    def _values(E: Tensor, w: Tensor, decay: Tensor | None, b: list[float]) -> list[float]:
        """``F = 2b·E + Σ D·w²`` per member, as Python numbers."""
        E = E.double().tolist()
        if decay is None:
            return [b_k * 2 * E_k for b_k, E_k in zip(b, E)]
        return [b_k * 2 * E_k + p for b_k, E_k, p in zip(b, E, (decay * w.square()).sum(1).tolist())]

    def _tries(self, pending: list[int], mu: list[float], nu: list[float], more: list[bool]) -> list[tuple]:
        """The trials of a round: for each member still seeking a step, ``(its position, μ, ν)`` for its
        ``μ`` and, where ``more`` and at most :data:`SPECULATE_MEMBERS` members seek one, for each
        further rejection, up to :attr:`speculate` values in all, while ``μ ≤ μ_max``."""
        tries = []
        few = len(pending) <= SPECULATE_MEMBERS
        for j, extra in zip(pending, more):
            m, n = mu[j], nu[j]
            tries.append((j, m, n))
            for _ in range(self.speculate - 1 if extra and few else 0):
                m, n = reject(self, m, n)
                if m > self.mu_max:
                    break
                tries.append((j, m, n))
        return tries

    def metrics(self) -> dict[str, Tensor]:
        return {"mu": torch.tensor(self.mu, dtype=torch.float64)}

    def member_state(self, k: int) -> dict:
        return {"mu": self.mu[k], "nu": self.nu[k]}


class BayesianRegularization(LevenbergMarquardt):
    r""":class:`~torch_sigmoid_mlp.solvers.BayesianRegularization`'s rules per member
    (:mod:`~torch_sigmoid_mlp.training.br_rule`, the one place they are written), its state as the
    single network keeps it, one list entry per member: ``alphas[k]``, ``gammas[k]`` (per layer),
    ``beta[k]``, whether each still searches for its first minimum, its start (``"trainbr"`` until a
    collapse), and its ``w_0`` to begin again from."""

    method = "br"
    SEARCH_TOL, SEARCH_PATIENCE = br_rule.SEARCH_TOL, br_rule.SEARCH_PATIENCE
    COLLAPSED_GAMMA, COLLAPSED_EPOCHS = br_rule.COLLAPSED_GAMMA, br_rule.COLLAPSED_EPOCHS

    def __init__(self, weights, x, d, s, *, start: str = "trainbr", **options) -> None:
        super().__init__(weights, x, d, s, **options)
        if start not in _SingleBR.STARTS:
            raise ValueError(f"start must be one of {_SingleBR.STARTS}, got {start!r}")
        K, L = self.K, len(self._numels)
        self._layer = torch.repeat_interleave(torch.arange(L), torch.tensor(self._numels))  # l of each weight
        # (P, L): 1 where weight i is in layer l, so that values @ _layers sums each layer's share
        self._layers = torch.nn.functional.one_hot(self._layer, L).double()
        # α_{k,l} = 0 until they are first estimated, γ_{k,l} = P_l, β_k = 1
        states = [br_rule.unestimated(self._numels) for _ in range(K)]
        self.alphas, self.gammas, self.beta = (list(v) for v in zip(*states))
        self._mu0 = list(self.mu)
        self._w0 = self._flat(self._everyone)
        self.searching = [start == "minimum"] * K
        self.trainbr = [start == "trainbr"] * K
        self._new_stage = [False] * K
        self._low = [0] * K  # epochs in a row with γ < COLLAPSED_GAMMA
        self._plateau = [0] * K  # searching: small steps in a row
        self._spread = spread(d, s)  # E_s of the best constant output
        self.N = float(x.shape[0] * d.shape[1]) if s is None else s.double().sum().item() * d.shape[1]

    def _decay(self, members: list[int]) -> Tensor | None:
        """``D_α`` of ``members``, each weight's ``α_l``, ``(k, P)``; ``None`` where every ``α`` is 0."""
        alphas = [self.alphas[k] for k in members]
        if not any(a for row in alphas for a in row):
            return None
        return torch.tensor(alphas, dtype=torch.float64)[:, self._layer]

    def _form(self, members):
        return self._decay(members), [self.beta[k] for k in members]

    def _first_alphas(self, w: Tensor) -> list[list[float]]:
        """trainbr's first ``α_l = P_l / (2·E_W^(l))`` at ``w``, per member."""
        return [br_rule.first_alphas(self._numels, E_W) for E_W in (w.square() @ self._layers).tolist()]

    def _hessian(self, members: list[int], A: Tensor) -> Tensor:
        """``H = 2β·JᵀSJ + 2·D_α`` per member."""
        H = A * torch.tensor([2 * self.beta[k] for k in members], dtype=torch.float64)[:, None, None]
        decay = self._decay(members)
        if decay is not None:
            H.diagonal(dim1=-2, dim2=-1).add_(2 * decay)
        return H

    def _accepted(self, idx, members, A, w, E) -> None:
        on = [j for j, k in enumerate(members) if not self.searching[k]]
        if not on:
            return
        if len(on) < len(members):
            at = torch.tensor(on)
            members, A, w, E = [members[j] for j in on], A[at], w[at], E[at]
        self._estimate(members, A, w, E.double().tolist())

    def _estimate(self, members: list[int], A: Tensor, w: Tensor, E: list[float]) -> None:
        """``γ_l`` from ``H`` at ``w``, then ``α_l ← γ_l/(2E_W^(l))``, ``β ← (N − γ)/(2E_D)``, per member
        as :meth:`~torch_sigmoid_mlp.solvers.BayesianRegularization._estimate`."""
        traces = inverse_diagonal(self._hessian(members, A)) @ self._layers  # tr_l(H⁻¹), (k, L)
        traces, E_W = torch.stack([traces, w.square() @ self._layers]).tolist()
        for k, t, e_w, E_k in zip(members, traces, E_W, E):
            self.gammas[k] = gammas = br_rule.gammas(self._numels, self.alphas[k], t)
            self.alphas[k], self.beta[k] = br_rule.update(
                gammas, self.alphas[k], self.beta[k], e_w, E_k, self.N
            )

    def step(self, active: Tensor) -> None:
        self.stopped = {}
        idx = active.nonzero()[:, 0].cpu()
        if not len(idx):
            return
        members = idx.tolist()
        E_k = (self._E if len(members) == self.K else self._E[idx]).double().tolist()
        first = [j for j, k in enumerate(members) if not self.searching[k] and self.alphas[k][0] == 0.0]
        if first:  # "trainbr": its start at w_0
            for j, alphas in zip(first, self._first_alphas(self._flat(idx[first]))):
                k = members[j]
                self.alphas[k], self.beta[k] = alphas, br_rule.first_beta(self.N, self.P, E_k[j])
        searching = [self.searching[k] for k in members]
        _, E_new = self._lm_step(idx)
        collapsed = []
        for k, was_searching in zip(members, searching):
            if was_searching:
                continue
            stuck = self.stopped.get(k) == "mu_max"
            self._low[k], ended = br_rule.collapsed(self._low[k], sum(self.gammas[k]), self.trainbr[k], stuck)
            if ended:
                collapsed.append(k)
        if collapsed:
            self._load(torch.tensor(collapsed), self._w0[collapsed])  # begin again from w_0, as "minimum"
            for k in collapsed:
                self.alphas[k], self.gammas[k], self.beta[k] = br_rule.unestimated(self._numels)
                self.searching[k], self.trainbr[k], self._plateau[k] = True, False, 0
                self.stopped.pop(k, None)  # a μ_max of the collapsed objective does not end the new search
            self._restart_damping(collapsed)
        if any(searching):
            E_new = E_new.double().tolist()
            self._end_searches([(j, k) for j, k in enumerate(members) if searching[j]], E_k, E_new)

    def _end_searches(self, seeking: list[tuple[int, int]], E_k: list[float], E_new: list[float]) -> None:
        """The searching members (``(position, member)``) at (near) a minimum of ``E`` start estimating
        ``α, β`` there."""
        done = []
        for j, k in seeking:
            stuck = self.stopped.get(k) == "mu_max"
            self._plateau[k], ended = br_rule.search_ends(
                self._plateau[k], E_k[j], E_new[j], stuck, self._spread
            )
            if ended:
                done.append(k)
        if not done:
            return
        for k in done:
            self.stopped.pop(k, None)
            self.searching[k] = False
        at = torch.tensor(done)
        A, _, E = self.gauss_newton(at)
        self._settle(done, A, self._flat(at), E.double().tolist())
        self._restart_damping(done)

    def _settle(self, members: list[int], A: Tensor, w: Tensor, E: list[float]) -> None:
        """The search's end at ``w``: ``α_l = P_l/(2E_W^(l))``, ``β = N/(2E_D)``, one update."""
        for k, alphas, E_k in zip(members, self._first_alphas(w), E):
            self.alphas[k], self.beta[k] = alphas, br_rule.settled_beta(self.N, E_k)
        self._estimate(members, A, w, E)

    def _restart_damping(self, members: list[int]) -> None:
        for k in members:
            self.mu[k], self.nu[k], self._new_stage[k] = self._mu0[k], self.mu_increase, True

    def merits(self, E: Tensor) -> Tensor:
        """``F/(2β)`` per member (``E`` while searching); NaN right after its objective changed."""
        everyone = list(range(self.K))
        F = self._values(E, self._flat(self._everyone), self._decay(everyone), self.beta)
        E = E.double().tolist()
        values = [
            math.nan if new else E_k if searching else F_k / (2 * beta)
            for new, searching, E_k, F_k, beta in zip(self._new_stage, self.searching, E, F, self.beta)
        ]
        self._new_stage = [False] * self.K
        return torch.tensor(values, dtype=torch.float64)

    def evidence(self) -> list[float | None]:
        """Each member's ``ln p(D | α, β)``, as the single network's
        :meth:`~torch_sigmoid_mlp.solvers.BayesianRegularization.evidence`: a member still searching
        is given ``α_l, β`` at its ``w`` as the search's end would, for the evidence alone."""
        everyone = list(range(self.K))
        A, _, E = self.gauss_newton(self._everyone)
        w = self._flat(self._everyone)
        kept = [list(a) for a in self.alphas], [list(g) for g in self.gammas], list(self.beta)
        searching = [k for k in everyone if self.searching[k]]
        if searching:
            at = torch.tensor(searching)
            self._settle(searching, A[at], w[at], E[at].double().tolist())
        try:
            factor, info = torch.linalg.cholesky_ex(self._hessian(everyone, A))
            log_det = (2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(1)).tolist()
            F = self._values(E, w, self._decay(everyone), self.beta)
            values = []
            for k, ok in enumerate((info == 0).tolist()):
                if self.alphas[k][0] == 0.0 or not ok:
                    values.append(None)
                    continue
                values.append(
                    br_rule.evidence(F[k], log_det[k], self._numels, self.alphas[k], self.N, self.beta[k])
                )
        finally:
            self.alphas, self.gammas, self.beta = kept
        return values

    def metrics(self) -> dict[str, Tensor]:
        states = [self.member_state(k) for k in range(self.K)]
        return {
            key: torch.tensor([s[key] for s in states], dtype=torch.float64)
            for key in ("mu", "gamma", "alpha", "beta")
        }

    def member_state(self, k: int) -> dict:
        return {
            "mu": self.mu[k],
            "gamma": sum(self.gammas[k]),
            "alpha": br_rule.mean_alpha(self._numels, self.alphas[k]),
            "beta": self.beta[k],
            "nu": self.nu[k],
            "alphas": list(self.alphas[k]),
            "gammas": list(self.gammas[k]),
            "searching": self.searching[k],
            "start": "trainbr" if self.trainbr[k] else "minimum",
            "w0": self._w0[k].clone(),
            "low": self._low[k],
            "plateau": self._plateau[k],
        }
