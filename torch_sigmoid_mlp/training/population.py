r"""Training a population: ``K`` networks of one architecture, each its own run, as one computation.

:func:`~torch_sigmoid_mlp.train` comes here when ``model.population`` is set. Each epoch evaluates
every member at once (:mod:`~torch_sigmoid_mlp.training.population_steps`), tests each active
member's stop rules as a single run would (``"diverged"``, ``"tol"``, ``"early_stopping"``,
``"converged"``, ``"max_epochs"``), freezes the members that stopped, and steps the others. The run
ends when every member has stopped, or with ``until="first"`` when the first reaches ``tol``
(the others then stop with ``"member_reached_tol"``), or with ``until="best"`` once no member still
running can outrank the best of those that stopped (they stop with ``"outranked"``; see
:meth:`_Run.outranked`). ``"lbfgs"``, whose line search is a member's own, ``"lm_cg"`` and ``"br_cg"``, whose
CG iterations are a member's own, and ``torch.optim`` factories, which may couple the members, train the
members one after another instead.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import statistics
import time

import torch
from torch import Tensor

from . import population_lm
from .objective import sample_weight_unit, spread
from .population_steps import AdaptiveDescent, OptimizerStep, PopulationStep, Rprop, SteepestDescent
from .results import COLLAPSED_R2, TrainResult, _rank
from .solvers import _DEFAULT_LR, ADAM_EPS

__all__ = ["UNTIL", "batched", "check_population_run", "make_population_step", "summary", "train_population"]

#: ``train(until=...)`` for a population: run until every member has stopped, or the first reaches ``tol``,
#: or no member still running can outrank the best of those that stopped (:meth:`_Run.outranked`).
UNTIL = ("all", "first", "best")

#: ``until="best"``: every this many epochs the evidence of the members still running is compared
#: with the best of the stopped members' (one Gauss–Newton matrix and Cholesky factor per member: about
#: one epoch's work, once a member has stopped).
OUTRANK_EVERY = 25
#: ``until="best"``: a running member stops as ``"outranked"`` once its evidence, extrapolated to
#: ``max_epochs`` at OUTRANK_SAFETY times the rate it rose over the last ``2·OUTRANK_EVERY`` epochs,
#: stays more than OUTRANK_MARGIN (nats) below the best stopped member's. The evidence of a start
#: can stall and then rise again: on ``sin 6x`` from 30 points (``benchmarks/bench_robust.py``, seed 6)
#: one went from 28.5 at epoch 275 to 34.2 at 479 and was chosen, where a margin of 2 had stopped it
#: below the 32.0 of a stopped start (4 seeds of 10 at grid R² ≥ 0.999 became 3). With 20, every
#: row's success count and worst R² over 10 seeds are those of ``until="all"``
#: (``benchmarks/results/robust_until_best.md``), while on ``t³ − t``, where the starts crawling
#: along the valley stay 45 below one that converged, 30 points: 7 fits of 10 end at epoch 325–950
#: instead of 1000, the epochs of the population 0.72× and the wall time 0.78× (10 seeds, interleaved);
#: 100 points: 6 of 10 at 350–660, 0.71× and 0.74×. Where no start is outranked the checks cost about
#: one epoch in 25 (``sin 6x`` from 30 points: epochs 0.97×, wall time 1.08× on a shared machine).
OUTRANK_SAFETY, OUTRANK_MARGIN = 2.0, 20.0

#: What a population refuses, and why: each of these is a single run's.
_REFUSED = {
    "batch_size": "mini-batches (batch_size)",
    "chunk_size": "chunks (chunk_size)",
    "distributed": "data parallelism (distributed)",
    "resume": "resume= (resume a member alone: model.member(k) with resume=result.members[k])",
    "check_every": "check_every",
}


def make_population_step(method: str, weights, x, d, s, *, lr, options: dict | None) -> PopulationStep:
    """The :class:`PopulationStep` for ``method`` (``"lbfgs"`` has none: its members run one by one)."""
    options = dict(options or {})
    if method in ("lm", "br"):
        cls = population_lm.LevenbergMarquardt if method == "lm" else population_lm.BayesianRegularization
        return cls(weights, x, d, s, **options)
    if method in ("sgd", "adaptive"):
        if lr is None:
            raise ValueError(f"lr is required with method={method!r} (steepest descent)")
        return (SteepestDescent if method == "sgd" else AdaptiveDescent)(weights, x, d, s, lr=lr, **options)
    lr = _DEFAULT_LR[method] if lr is None else lr
    if method == "rprop":
        return Rprop(weights, x, d, s, lr=lr, **options)
    unit = sample_weight_unit(s)  # as a single run's
    optimizer = torch.optim.Adam(weights, lr=lr, **{"eps": ADAM_EPS * unit, **options})
    return OptimizerStep(weights, x, d, s, optimizer=optimizer, method=method)


def check_population_run(run: dict, restarts: int) -> None:
    """A clear error for what a population does not do (the docs of :func:`train` list them)."""
    for name, what in _REFUSED.items():
        if run.get(name) not in (None, False):
            raise ValueError(f"a population trains full-batch on one process's points: it takes no {what}")
    if restarts != 1:
        raise ValueError("a population is its own several starts: it takes restarts=1")
    if run["momentum"]:
        raise ValueError("a population's steepest descent takes no momentum")


def batched(method) -> bool:
    """Whether ``method`` trains a population's members together (else one after another)."""
    return not callable(method) and method not in ("lbfgs", "lm_cg", "br_cg")


def train_population(model, *, logdir, until: str, **run) -> TrainResult:
    """:func:`~torch_sigmoid_mlp.train` for ``model.population = K`` members; see the module's docs."""
    began = time.perf_counter()
    members = _together(model, logdir=logdir, until=until, **run)
    return summary(members, time.perf_counter() - began)


def summary(members: list, seconds: float) -> TrainResult:
    """The population's result: the best member's fields (:func:`~torch_sigmoid_mlp.training.results._rank`),
    ``start`` its index, and every member's result in ``members``."""
    best = min(range(len(members)), key=lambda k: _rank(members[k]))
    return dataclasses.replace(members[best], start=best, members=members, seconds=seconds)


def member_dir(logdir, k: int):
    """Where member ``k`` of a population trained one by one logs."""
    return None if logdir is None else f"{logdir}/member{k}"


class _Run:
    """The population's loop state: one host sync per epoch reads every member's ``E_k``, largest error
    and largest ``|w_k|`` (from a flat copy ``w_k``; ``w_{k−1}`` is kept for a member that diverges),
    and the stop rules are then tested in plain Python, member by member only where one can hold."""

    def __init__(
        self, model, step: PopulationStep, run: dict, spread: float, val: tuple | None, until: str = "all"
    ) -> None:
        self.model, self.step, self.run, self.val = model, step, run, val
        self.spread = spread
        # until="best" with no held-out points: the evidence ranks the members (results._rank)
        self.outranking = until == "best" and val is None
        self._evidence: dict[int, list] = {}  # running member -> [(epoch, ln p(D | α, β))] at the checks
        self.plain = [W.detach() for W in model.weights]
        W0 = self.plain[0]
        K = W0.shape[0]
        self.active = torch.ones(K, dtype=torch.bool, device=W0.device)
        self.running = list(range(K))  # the active members, as a list
        self._flat = [W.view(K, -1) for W in self.plain]
        self.snapshots = [torch.cat(self._flat, 1) for _ in range(2)]  # w_k, w_{k−1}: (K, P)
        self.window, self.stall = run["window"], None if run["ftol"] is None else run["ftol"] * spread
        self._merits = [collections.deque(maxlen=self.window + 1) for _ in range(K)]
        self.best_val, self.best_epoch = [math.inf] * K, [0] * K
        self.best_weights = self.snapshots[0].clone() if val is not None else None
        self.rows: list[list[list[float]]] = []  # per epoch: E_k, max_k (and validation SSE) of all
        self.reasons: list[str | None] = [None] * K
        self.epochs = [0] * K

    def epoch(self, epoch: int) -> None:
        """Evaluate every member at ``w_k`` and stop the active ones whose rule holds, in a single
        run's order: diverged, tol, early_stopping, converged, max_epochs."""
        E, max_error = self.step.evaluate()
        flat = torch.cat(self._flat, 1, out=self.snapshots[epoch & 1])
        readings = [E, max_error, torch.linalg.vector_norm(flat, math.inf, dim=1).to(E)]
        if self.val is not None:
            with torch.no_grad():
                readings.append(0.5 * (self.val[1] - self.model(self.val[0])).square().sum((1, 2)).to(E))
        E_k, max_k, w_k, *val = torch.stack(readings).tolist()
        self.rows.append([E_k, max_k, *val])
        run, stops = self.run, {}
        if not math.isfinite(sum(E_k) + sum(w_k)):
            stops.update((k, "diverged") for k in self.running if not math.isfinite(E_k[k] + w_k[k]))
        tol = run["tol"]
        if tol is not None and min(max_k[k] for k in self.running) < tol:
            stops.update((k, "tol") for k in self.running if max_k[k] < tol and k not in stops)
        if val:
            self._early(epoch, val[0], flat, stops)
        if self.stall is not None:
            self._stalled(epoch, E_k, E, stops)
        if self.outranking and epoch % OUTRANK_EVERY == 0:
            self.outranked(epoch, stops)
        if epoch >= run["max_epochs"]:
            stops.update((k, "max_epochs") for k in self.running if k not in stops)
        for k, reason in stops.items():
            self.stop(k, epoch, reason)

    def _early(self, epoch: int, val: list[float], flat: Tensor, stops: dict) -> None:
        """Keep each member's best validation SSE and weights; stop those whose ``patience`` ran out."""
        patience = self.run["patience"]
        for k in self.running:
            if val[k] < self.best_val[k]:
                self.best_val[k], self.best_epoch[k] = val[k], epoch
                self.best_weights[k] = flat[k]
            if patience is not None and epoch - self.best_epoch[k] >= patience and k not in stops:
                stops[k] = "early_stopping"

    def _stalled(self, epoch: int, E_k: list[float], E: Tensor, stops: dict) -> None:
        """The ``ftol`` test per member: its merit fell by at most ``ftol·E_0`` over ``window`` epochs."""
        merits = E_k if type(self.step).merits is PopulationStep.merits else self.step.merits(E).tolist()
        window, stall = self.window, self.stall
        for k in self.running:
            record, merit = self._merits[k], merits[k]
            if merit != merit:  # NaN: the member's objective changed its form, look no further back
                record.clear()
                continue
            record.append((epoch, merit))
            if len(record) > window and record[0][1] - merit <= stall and k not in stops:
                stops[k] = "converged"

    def outranked(self, epoch: int, stops: dict) -> None:
        r"""``until="best"``: stop the running members that can no longer outrank the best stopped one.

        .. code-block:: text

            ev*  = max ln p(D | α, β) of the members stopped "converged" or "mu_max", R² ≥ COLLAPSED_R2
            rate = max(0, ev_k(now) − ev_k(now − 2·OUTRANK_EVERY)) / (2·OUTRANK_EVERY)
            stop k as "outranked" if
                ev_k(now) + OUTRANK_SAFETY · rate · (max_epochs − now) + OUTRANK_MARGIN < ev*

        The starts are ranked by their evidence (:func:`~torch_sigmoid_mlp.training.results._rank`),
        so a member whose evidence cannot reach ``ev*`` by ``max_epochs``, even rising twice as fast as
        it has, would be trained to its own stop and then not chosen: on BR's valleys (``t³ − t``) a
        start crawling at training ``R²`` 0.99 for a thousand epochs, its evidence some 45 below that of
        a start that had converged hundreds of epochs before. Only members with an evidence (BR's,
        estimating ``α, β``: not searching for the first minimum of ``E``) are compared, and only
        after two checks since the first start stopped, so that the rate is measured.
        """
        step, running = self.step, [k for k in self.running if k not in stops]
        rows = self.rows
        spread = self.spread
        if not running or spread <= 0:
            return
        done = [
            k for k, reason in enumerate(self.reasons)
            if reason in ("converged", "mu_max") and 1 - rows[self.epochs[k]][0][k] / spread >= COLLAPSED_R2
        ]  # fmt: skip
        if not done:
            return
        evidence = step.evidence()
        known = [evidence[k] for k in done if evidence[k] is not None and math.isfinite(evidence[k])]
        if not known:
            return
        best, left = max(known), self.run["max_epochs"] - epoch
        searching = getattr(step, "searching", None)
        for k in running:
            history = self._evidence.setdefault(k, [])
            value = evidence[k]
            searching_k = searching is not None and bool(searching[k])
            if value is None or not math.isfinite(value) or searching_k:
                history.clear()  # no evidence to extrapolate from (yet), or an objective of another form
                continue
            history.append((epoch, value))
            if len(history) < 3:
                continue
            then, before = history[-3]
            rate = max(0.0, value - before) / (epoch - then)
            if value + OUTRANK_SAFETY * rate * left + OUTRANK_MARGIN < best:
                stops[k] = "outranked"

    def stop(self, k: int, epoch: int, reason: str) -> None:
        """Freeze member ``k`` at ``epoch``; put back ``w_{k−1}`` or its best validation weights."""
        self.reasons[k], self.epochs[k] = reason, epoch
        self.active[k] = False
        self.running.remove(k)
        back = {
            "diverged": lambda: self.snapshots[(epoch - 1) & 1],
            "early_stopping": lambda: self.best_weights,
        }
        if reason in back:
            with torch.no_grad():
                for W, part in zip(self._flat, back[reason]()[k].split([W.shape[1] for W in self._flat])):
                    W[k] = part


def _together(model, *, logdir, until, **run) -> list:
    """Every member's run in one loop of batched epochs."""
    x, d, s = run["x"], run["d"], run["sample_weight"]
    step = make_population_step(
        run["method"], list(model.weights), x, d, s, lr=run["lr"], options=run["options"]
    )
    E_0 = spread(d, s)  # the best constant output's E
    state = _Run(model, step, run, E_0, run["validation"], until)
    log = _PopulationLog(logdir, run["writer"], run["log_every"]) if logdir or run["writer"] else None
    began = time.perf_counter()
    try:
        _epochs(state, run, until, log)
    except BaseException:
        if log is not None:
            log.close()
        raise
    members = _results(state, E_0, time.perf_counter() - began, final=True)
    if log is not None:
        log.close(members)
    return members


def _epochs(state: _Run, run: dict, until: str, log) -> None:
    """The loop: evaluate, test every active member, freeze the stopped, step the rest."""
    step, callback = state.step, run["callback"]
    for epoch in range(run["max_epochs"] + 1):
        state.epoch(epoch)
        if log is not None:
            log.epoch(epoch, state)
        reached = until == "first" and "tol" in state.reasons
        stop = callback is not None and callback(epoch, summary(_results(state, math.nan, 0.0), 0.0)) is False
        if reached or stop:
            for k in list(state.running):
                state.stop(k, epoch, "member_reached_tol" if reached else "callback")
        if not state.running:
            return
        step.step(state.active)
        for k, reason in step.stopped.items():
            state.stop(k, epoch, reason)
        if not state.running:  # every member found no step in this epoch (μ_max together)
            return


def _results(state: _Run, spread: float, seconds: float, *, final: bool = False) -> list:
    """Each member's :class:`~torch_sigmoid_mlp.TrainResult`; at the end (``final``) re-scored where its
    weights were put back, and with its evidence."""
    step, rows = state.step, state.rows
    K = len(state.reasons)
    E, max_error = (t.tolist() for t in step.evaluate()) if final else ([math.nan] * K,) * 2
    evidence = step.evidence() if final else [None] * K
    results = []
    for k, reason in enumerate(state.reasons):
        epoch = state.epochs[k] if reason is not None else len(rows) - 1
        history = [row[0][k] for row in rows[: epoch + 1]]
        val_history = [row[2][k] for row in rows[: epoch + 1]] if state.val is not None else []
        final_k = (E[k], max_error[k]) if reason in ("diverged", "early_stopping") else (
            rows[epoch][0][k], rows[epoch][1][k],
        )  # fmt: skip
        results.append(TrainResult(
            epoch, reason == "tol", reason or "max_epochs", *final_k, loss_history=history,
            val_history=val_history, seconds=seconds, method=step.method, solver_state=step.member_state(k),
            r2=1 - final_k[0] / spread if spread > 0 else None, evidence=evidence[k],
        ))  # fmt: skip
    return results


class _PopulationLog:
    """TensorBoard for a population: per epoch ``population/best_sse``, ``population/median_sse``,
    ``population/best_max_abs_error`` and ``population/stopped`` (how many members have stopped),
    not ``K`` copies of every tag; at the end ``population/final_sse`` of each member as a histogram."""

    def __init__(self, logdir, writer, log_every: int) -> None:
        self._owns = writer is None
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(logdir))
        self.writer, self.log_every = writer, log_every

    def epoch(self, epoch: int, state: _Run) -> None:
        if epoch % self.log_every and state.running:
            return
        w = self.writer
        rows = state.rows[-1]
        E = rows[0]
        w.add_scalar("population/best_sse", min(E), epoch)
        w.add_scalar("population/median_sse", statistics.median(E), epoch)
        w.add_scalar("population/best_max_abs_error", min(rows[1]), epoch)
        w.add_scalar("population/stopped", len(state.reasons) - len(state.running), epoch)

    def close(self, members: list | None = None) -> None:
        if members is not None:
            finals = torch.tensor([m.final_loss for m in members], dtype=torch.float64)
            self.writer.add_histogram("population/final_sse", finals, max(m.epochs for m in members))
            self.writer.flush()
        if self._owns:
            self.writer.close()
