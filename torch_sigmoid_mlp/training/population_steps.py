r"""A population's epoch: every member's step at once, each with its own solver state.

SPEC.md, "Populations": ``E_pop = Σ_k E_k`` and ``E_k`` depends on ``w_k`` alone, so one batched
forward and backward pass gives every member its own ``E_k`` and ``∇E_k``, and each solver's rule
runs per member on tensors with the member index first: ``η_k`` of the bold driver, RPROP's and
Adam's per-weight state (elementwise, so ``torch.optim`` on the stacked weights *is* each member's
own), LM's ``μ_k`` and BR's ``α_k, β_k, γ_k`` (:mod:`~torch_sigmoid_mlp.training.population_lm`).

A step moves only the members still *active*; the others are frozen where they stopped.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AdaptiveDescent", "OptimizerStep", "PopulationPass", "PopulationStep", "Rprop", "SteepestDescent"]

_sigmoid_backward_out = torch.ops.aten.sigmoid_backward.grad_input
_INF = float("inf")


class PopulationPass:
    r"""Forward and backward of all ``K`` members into buffers allocated once, off the autograd tape.

    .. code-block:: text

        y^(l+1)_k = σ(W^(l)_k y^(l)_k)        one batched product per layer
        e_k       = d − y^(L)_k,   E_k = ½·Σ_t s_t ‖e_k(t)‖²
        δ^(L)_k   = s_t · e_k ⊙ y^(L)_k ⊙ (1 − y^(L)_k)
        δ^(l)_k   = y^(l)_k ⊙ (1 − y^(l)_k) ⊙ (W^(l)_kᵀ δ^(l+1)_k)
        G^(l)_k   = Σ_t δ^(l+1)_k(t) · y^(l)_k(t)ᵀ = −∂E_k/∂W^(l)_k

    Signals are held as SPEC.md writes them, test points as columns: ``y^(l)`` is ``(K, size_l, T)``
    and every product is ``W^(l)_k`` times a ``size_l × T`` matrix. On the CPU that batched product is
    several times faster at small sizes than the same one with points as rows (a ``T × size_l``
    matrix times ``W^(l)_kᵀ``); ``benchmarks/bench_population.py`` measures the result. :meth:`backward`
    writes ``δ^(l)`` over ``y^(l)`` and leaves ``G^(l)`` in :attr:`gradients` (``(K, size_{l+1},
    size_l)``); the weights are not touched unless it is asked to update them.
    """

    def __init__(self, weights: list[Tensor], x: Tensor, d: Tensor, s: Tensor | None) -> None:
        self.weights = [W.detach() for W in weights]
        K, T = self.weights[0].shape[0], x.shape[-2]
        options = {"dtype": x.dtype, "device": x.device}
        self.x = x.detach().mT.expand(K, -1, -1).contiguous()  # y^(0), (K, n, T)
        self.d = d.detach().mT.contiguous()  # (m, T)
        self.s = None if s is None else s.detach().reshape(1, 1, -1)  # s_t, (1, 1, T)
        sizes = [W.shape[1] for W in self.weights]
        self._ys = [torch.empty(K, size, T, **options) for size in sizes]  # y^(1..L), later δ^(1..L)
        self._e = torch.empty(K, sizes[-1], T, **options)
        self._back = [torch.empty(K, size, T, **options) for size in sizes[:-1]]
        self.gradients = [torch.empty_like(W) for W in self.weights]

    def forward(self) -> tuple[Tensor, Tensor]:
        """``(E_k, max_t |e_k(t)|)`` for every member, two ``(K,)`` tensors."""
        y = self.x
        for W, out in zip(self.weights, self._ys):
            y = torch.bmm(W, y, out=out).sigmoid_()  # y^(l+1) = σ(W^(l) y^(l)), (K, size_{l+1}, T)
        e = torch.sub(self.d, y, out=self._e)  # e_k = d − y^(L)_k, (K, m, T)
        if self.s is None:
            return 0.5 * e.square().sum((1, 2)), torch.linalg.vector_norm(e, _INF, dim=(1, 2))
        return 0.5 * (self.s * e.square()).sum((1, 2)), torch.where(self.s > 0, e.abs(), 0).amax((1, 2))

    def backward(self, update: float | None = None) -> list[Tensor]:
        """``G^(l)_k = −∂E_k/∂W^(l)_k`` from the last :meth:`forward`'s signals (which it consumes).

        With ``update=η`` it adds ``η·G^(l)_k`` to every member's ``W^(l)_k`` instead, one kernel per
        layer (each ``W^(l)`` once ``W^(l)ᵀ δ^(l+1)`` has been formed with its old value).
        """
        ys, Ws, Gs = self._ys, self.weights, self.gradients
        _sigmoid_backward_out(self._e, ys[-1], grad_input=ys[-1])  # δ^(L)
        if self.s is not None:
            ys[-1].mul_(self.s)
        for l in range(len(Ws) - 1, 0, -1):
            W, delta, y = Ws[l], ys[l], ys[l - 1]
            if W.shape[1] == 1:  # one neuron above: W^(l)ᵀ δ^(l+1) is an outer product
                back = torch.mul(W.mT, delta, out=self._back[l - 1])
            else:
                back = torch.bmm(W.mT, delta, out=self._back[l - 1])  # W^(l)ᵀ δ^(l+1), (K, size_l, T)
            if update is None:
                torch.bmm(delta, y.mT, out=Gs[l])  # G^(l) = δ^(l+1) y^(l)ᵀ
            else:
                W.baddbmm_(delta, y.mT, alpha=update)  # W^(l) += η·δ^(l+1) y^(l)ᵀ
            _sigmoid_backward_out(back, y, grad_input=y)  # δ^(l)
        if update is None:
            torch.bmm(ys[0], self.x.mT, out=Gs[0])  # G^(0) = δ^(1) xᵀ
        else:
            Ws[0].baddbmm_(ys[0], self.x.mT, alpha=update)
        return Gs


class PopulationStep:
    """One epoch of a population's solver. ``evaluate()`` gives ``(E_k, max_k)`` as ``(K,)`` tensors;
    ``step(active)`` moves the members whose entry of the ``(K,)`` bool tensor is true.

    :attr:`stopped` maps a member to the reason its solver stopped it (LM's ``"mu_max"``) in the last
    step; :meth:`merits` is what each member's solver minimises, in ``E``'s units (NaN: its
    objective just changed form); :meth:`member_state` is member ``k``'s ``solver_state``, in the form
    the single network's solver takes back (``resume=``).
    """

    method = ""

    def __init__(self, weights: list[Tensor], x: Tensor, d: Tensor, s: Tensor | None) -> None:
        self.plain = [W.detach() for W in weights]
        self.K = self.plain[0].shape[0]
        self.stopped: dict[int, str] = {}

    def evaluate(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def step(self, active: Tensor) -> None:
        raise NotImplementedError

    def merits(self, E: Tensor) -> Tensor:
        """What each member minimises at ``w_k`` (``E_k`` here), NaN where its objective just changed."""
        return E

    def evidence(self) -> list[float | None]:
        return [None] * self.K

    def metrics(self) -> dict[str, Tensor]:
        """Per-member scalars worth logging, each a ``(K,)`` tensor."""
        return {}

    def member_state(self, k: int) -> dict:
        return {}


class SteepestDescent(PopulationStep):
    """``w_k ← w_k + η·G_k`` for every active member, ``G_k = −∇E_k`` from one :class:`PopulationPass`."""

    method = "sgd"

    def __init__(self, weights, x, d, s, *, lr: float) -> None:
        super().__init__(weights, x, d, s)
        self.batch = PopulationPass(weights, x, d, s)
        W0 = self.plain[0]
        self.lr = torch.full((self.K,), float(lr), dtype=W0.dtype, device=W0.device)  # η_k
        self._key: tuple | None = None

    def evaluate(self) -> tuple[Tensor, Tensor]:
        return self.batch.forward()

    def step(self, active: Tensor) -> None:
        key = (active._version, id(active), self.lr._version, id(self.lr))
        if key != self._key:  # a member stopped, or η_k changed: η_k, 0 for a frozen member, (K, 1, 1)
            self._key, self._rates = key, (self.lr * active)[:, None, None]
            self._uniform = self.method == "sgd" and bool(active.all())
        batch = self.batch
        if self._uniform:  # W += η·δᵀy in one kernel per layer
            batch.backward(update=self.lr[0].item())
            return
        for W, G in zip(self.plain, batch.backward()):
            W.addcmul_(G, self._rates)

    def metrics(self) -> dict[str, Tensor]:
        return {"lr": self.lr}


class AdaptiveDescent(SteepestDescent):
    """The bold driver per member (:class:`~torch_sigmoid_mlp.solvers.AdaptiveDescent`): ``η_k`` grows
    after a lower ``E_k`` and a step that raised ``E_k`` by more than 4 % is taken back."""

    method = "adaptive"

    def __init__(self, weights, x, d, s, *, lr, lr_increase=1.05, lr_decrease=0.7, max_increase=1.04) -> None:
        super().__init__(weights, x, d, s, lr=lr)
        self.lr_increase, self.lr_decrease, self.max_increase = lr_increase, lr_decrease, max_increase
        self._previous = [W.clone() for W in self.plain]  # w_{k−1} of each member
        self._E_previous = torch.full_like(self.lr, _INF)

    def evaluate(self) -> tuple[Tensor, Tensor]:
        self._E, max_error = super().evaluate()
        return self._E, max_error

    def step(self, active: Tensor) -> None:
        E = self._E
        back = (self.max_increase * self._E_previous < E) & active  # take the step to w_k back
        keep = active & ~back
        if bool(back.any()):
            mask = back[:, None, None]
            for W, previous in zip(self.plain, self._previous):
                torch.where(mask, previous, W, out=W)
            self.batch.forward()  # at w_{k−1} again, for the shorter step from there
        lower = keep & (self._E_previous > E)
        self.lr = torch.where(
            back, self.lr * self.lr_decrease, torch.where(lower, self.lr * self.lr_increase, self.lr)
        )
        self._E_previous = torch.where(keep, E, self._E_previous)
        for W, previous in zip(self.plain, self._previous):
            torch.where(keep[:, None, None], W, previous, out=previous)
        super().step(active)

    def member_state(self, k: int) -> dict:
        return {
            "lr": self.lr[k].item(),
            "E_previous": self._E_previous[k].item(),
            "previous": [W[k].clone() for W in self._previous],
        }


class OptimizerStep(PopulationStep):
    """Adam on the stacked weights: it acts weight by weight, so ``torch.optim`` on the
    ``(K, size_{l+1}, size_l)`` tensors runs each member's own optimizer. A frozen member gets a zero
    gradient and its weights back after the step."""

    def __init__(self, weights, x, d, s, *, optimizer: torch.optim.Optimizer, method: str) -> None:
        super().__init__(weights, x, d, s)
        self.batch = PopulationPass(weights, x, d, s)
        self.optimizer, self.method, self.params = optimizer, method, list(weights)

    def evaluate(self) -> tuple[Tensor, Tensor]:
        return self.batch.forward()

    def step(self, active: Tensor) -> None:
        mask = active[:, None, None]
        everyone = bool(active.all())
        for W, G in zip(self.params, self.batch.backward()):
            W.grad = G.neg() if everyone else torch.where(mask, G.neg(), 0)  # ∂E_k/∂W^(l)_k
        before = None if everyone else [W.clone() for W in self.plain]
        self.optimizer.step()
        if before is not None:
            for W, kept in zip(self.plain, before):
                torch.where(mask, W, kept, out=W)
        for W in self.params:
            W.grad = None

    def metrics(self) -> dict[str, Tensor]:
        W0 = self.plain[0]
        return {"lr": torch.full((self.K,), float(self.optimizer.param_groups[0]["lr"]), dtype=W0.dtype)}


class Rprop(PopulationStep):
    r"""RPROP per member and weight, ``torch.optim.Rprop``'s rule written out on the stacked weights.

    .. code-block:: text

        s = sign(g · g_prev)                                   g = ∂E_k/∂w, per weight of every member
        Δ ← clamp(Δ · (η⁺ if s > 0, η⁻ if s < 0, else 1), Δ_min, Δ_max)
        g ← 0 where s < 0                                      (iRPROP−: no step after a sign change)
        w ← w − sign(g) · Δ,   g_prev ← g

    The same arithmetic as the optimizer, without its per-call bookkeeping, which at small sizes costs
    more than the epoch. A frozen member gets ``g = 0``: it neither moves nor changes its ``Δ``.
    """

    method = "rprop"

    def __init__(self, weights, x, d, s, *, lr: float, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)) -> None:
        super().__init__(weights, x, d, s)
        self.batch = PopulationPass(weights, x, d, s)
        self.lr, (self.eta_minus, self.eta_plus), (self.low, self.high) = lr, etas, step_sizes
        self.previous = [torch.zeros_like(W) for W in self.plain]  # g_prev
        self.steps = [torch.full_like(W, lr) for W in self.plain]  # Δ, from Δ_0 = lr
        W0 = self.plain[0]
        self._factors = torch.tensor([self.eta_minus, 1.0, self.eta_plus], dtype=W0.dtype, device=W0.device)
        self._taken = torch.zeros(self.K, dtype=torch.long)  # steps each member took

    def evaluate(self) -> tuple[Tensor, Tensor]:
        return self.batch.forward()

    def step(self, active: Tensor) -> None:
        everyone = bool(active.all())
        for W, G, previous, delta in zip(self.plain, self.batch.backward(), self.previous, self.steps):
            g = G.neg_() if everyone else torch.where(active[:, None, None], G.neg_(), 0)  # ∂E_k/∂W
            sign = (g * previous).sign_()
            delta.mul_(self._factors[sign.long() + 1]).clamp_(self.low, self.high)  # η⁻, 1 or η⁺
            g = torch.where(sign < 0, 0, g)
            W.addcmul_(g.sign(), delta, value=-1)
            previous.copy_(g)
        self._taken += active.cpu()

    def member_state(self, k: int) -> dict:
        """Member ``k``'s state as ``torch.optim.Rprop`` keeps it: ``resume=`` goes on with its own ``Δ``."""
        shapes = [W.shape[1:] for W in self.plain]
        optimizer = torch.optim.Rprop(
            [torch.zeros(shape) for shape in shapes], lr=self.lr, etas=(self.eta_minus, self.eta_plus),
            step_sizes=(self.low, self.high),
        )  # fmt: skip
        state = optimizer.state_dict()
        step = torch.tensor(float(self._taken[k]))
        state["state"] = {
            i: {"step": step.clone(), "prev": prev[k].clone(), "step_size": delta[k].clone()}
            for i, (prev, delta) in enumerate(zip(self.previous, self.steps))
        }
        return {"optimizer": state}

    def metrics(self) -> dict[str, Tensor]:
        return {"lr": torch.full((self.K,), float(self.lr), dtype=torch.float64)}
