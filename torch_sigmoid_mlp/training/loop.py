"""The training loop: every solver's epochs in one loop, until the error is below ``tol`` at every point."""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from collections.abc import Callable

import torch
from torch import Tensor

from ..core._checks import check_integer, check_number, check_points, check_sample_weight
from ..core._flat import as_weights, num_weights
from ..core.module import SigmoidMLP
from .distributed import any_rank, broadcast_, is_distributed, is_main_process
from .handlers import EpochState, ProgressBar, TensorBoard
from .objective import Objective
from .population import UNTIL, batched, check_population_run, member_dir, summary, train_population
from .results import COLLAPSED_R2, STOP_REASONS, TrainResult, _rank
from .settings import Distribution, Logging, Stop, merged
from .solvers import LM_MAX_PARAMS, METHODS, Step, choose_method, make_step

__all__ = [
    "COLLAPSED_R2",
    "LM_MAX_PARAMS",
    "METHODS",
    "STOP_REASONS",
    "ConvergenceWarning",
    "Distribution",
    "Logging",
    "Stop",
    "TrainResult",
    "train",
]


class ConvergenceWarning(UserWarning):
    """A fit ended far from its targets: a near-constant output, or most of their variance unexplained.

    :class:`~torch_sigmoid_mlp.SigmoidMLPRegressor` and the command line emit it with what happened
    and what to try; the fit is still returned.
    """


def _check_points(
    model: SigmoidMLP, x, d, names: tuple[str, str], *, any_device: bool = False
) -> tuple[Tensor, Tensor]:
    """``x`` as ``(T, n)`` and ``d`` as ``(T, m)`` on the model's device (any, with ``any_device``) and
    dtype, or a clear error."""
    W0 = model.weights[0]
    for value, name in zip((x, d), names):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dtype != W0.dtype:
            raise TypeError(f"{name} has dtype {value.dtype} but the model's weights are {W0.dtype}")
        if value.device != W0.device and not any_device:
            raise ValueError(f"{name} is on {value.device} but the model is on {W0.device}")
    (xn, dn), (n, m) = names, (model.in_features, model.out_features)
    if d.dim() == 1 and m == 1:
        d = d.unsqueeze(1)
    if x.dim() != 2 or x.shape[1] != n:
        raise ValueError(f"{xn} must have shape (T, {n}), got {tuple(x.shape)}")
    if d.dim() != 2 or d.shape[1] != m:
        raise ValueError(f"{dn} must have shape (T, {m}), got {tuple(d.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{xn} holds no test points (T = 0)")
    check_points(x, d, names)
    if not bool(((d > 0) & (d < 1)).all()):
        raise ValueError(
            f"{dn} must lie strictly inside (0, 1), the range of the output sigmoid; got values in "
            f"[{d.min().item():.4g}, {d.max().item():.4g}] (scale them first, e.g. with MinMaxScaler)"
        )
    return x, d


def _check_sample_weight(s, x: Tensor) -> Tensor | None:
    """``s`` as ``(T,)`` in ``x``'s dtype and device, finite and ``≥ 0``, or a clear error."""
    if s is None:
        return None
    if not isinstance(s, Tensor):
        raise TypeError(f"sample_weight must be a torch.Tensor, got {type(s).__name__}")
    s = s.to(device=x.device, dtype=x.dtype)
    check_sample_weight(s, x.shape[0])
    return s


class _Snapshots:
    """``w_k`` and ``w_{k−1}`` as two flat copies of all weights, written in turn.

    One ``cat`` per epoch takes the copy, and the largest ``|w|`` comes from it in one reduction:
    at small sizes a kernel per layer costs more than the arithmetic.
    """

    def __init__(self, weights: list[Tensor]) -> None:
        self._weights = list(weights)
        # views of contiguous weights are taken once; any other layout is flattened (copied) per epoch
        self._flat = [W.view(-1) for W in weights] if all(W.is_contiguous() for W in weights) else None
        options = {"dtype": weights[0].dtype, "device": weights[0].device}
        self._buffers = [torch.empty(num_weights(weights), **options) for _ in range(2)]
        self._as_weights = [as_weights(buffer, weights) for buffer in self._buffers]
        self.take(0)
        self._buffers[1].copy_(self._buffers[0])  # before the first update, w_{−1} is w_0

    def take(self, epoch: int) -> Tensor:
        """Copy ``w_epoch`` aside; return its largest ``|w|`` as a 0-d tensor (``inf``/``nan`` if any is)."""
        buffer = self._buffers[epoch & 1]
        flat = self._flat if self._flat is not None else [W.reshape(-1) for W in self._weights]
        torch.cat(flat, out=buffer)
        return torch.linalg.vector_norm(buffer, math.inf)

    def previous(self, epoch: int) -> list[Tensor]:
        """``w_{epoch−1}``, shaped like the weights."""
        return self._as_weights[(epoch - 1) & 1]


class _EarlyStopping:
    """The validation SSE each epoch; stops after ``patience`` epochs without a new best, restoring it."""

    def __init__(self, objective: Objective, plain: list[Tensor], patience: int | None) -> None:
        self.objective, self.plain, self.patience = objective, plain, patience
        self.best, self.best_epoch = math.inf, 0
        self.weights = [W.clone() for W in plain]

    def reading(self) -> Tensor:
        return self.objective.error()[0]

    def update(self, epoch: int, val: float) -> bool:
        if val < self.best:
            self.best, self.best_epoch = val, epoch
            torch._foreach_copy_(self.weights, self.plain)
        return self.patience is not None and epoch - self.best_epoch >= self.patience


def _unwrap(model):
    """The :class:`SigmoidMLP` to train: itself, or the one a ``DistributedDataParallel`` wraps."""
    module = getattr(model, "module", None)
    if isinstance(model, torch.nn.parallel.DistributedDataParallel) and isinstance(module, SigmoidMLP):
        return module  # train does data parallelism itself: every rank steps the same weights
    if not isinstance(model, SigmoidMLP):
        raise TypeError(f"model must be a SigmoidMLP, got {type(model).__name__}")
    if torch.nn.utils.parametrize.is_parametrized(model.weights):
        raise ValueError(
            "model.weights are parametrized (torch.nn.utils.parametrize / weight_norm): train steps the "
            "weights W^(l) themselves and would leave the parametrization's own parameters untrained; "
            "remove it (parametrize.remove_parametrizations) or train with a torch.optim loop over "
            "model.parameters()"
        )
    return model


def train(
    model: SigmoidMLP,
    x: Tensor,
    d: Tensor,
    *,
    # the step
    method: str | Callable = "sgd",
    lr: float | None = None,
    momentum: float = 0.0,
    batch_size: int | None = None,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    options: dict | None = None,
    sample_weight: Tensor | None = None,
    restarts: int = 1,
    resume: TrainResult | None = None,
    # the run around it: each group's fields are keywords of their own too (**settings)
    stop: Stop | None = None,
    logging: Logging | None = None,
    distribution: Distribution | None = None,
    **settings,
) -> TrainResult:
    r"""Minimise ``E_s(w) = 1/2 · Σ_t s_t · ‖d_t − y^(L)(t)‖²`` until ``max_t |y^(L)(t) − d_t| < tol``.

    .. code-block:: text

        for k = 0, 1, …:
            E(w_k), max_t |e(t)|         evaluate at w_k (one forward pass; the epoch's one host sync)
            stop?                        diverged, tol, early_stopping, max_epochs, callback
            w_{k+1} = step(w_k)          method="sgd": w_k − η·∇E(w_k), the seed's steepest descent

    Every solver runs in this one loop; what varies is its step, chosen once
    (:mod:`~torch_sigmoid_mlp.solvers`: ``"sgd"``, ``"adaptive"``, ``"rprop"``, ``"adam"``, ``"lbfgs"``,
    ``"lm"``, ``"lm_cg"``, ``"br"``, ``"br_cg"``, ``"auto"``, or any ``torch.optim`` optimizer), and the
    points are seen through an :class:`~torch_sigmoid_mlp.objective.Objective` — all at once, in chunks of
    ``chunk_size``, or sharded across the ranks of a process group — so every solver gets
    validation, callbacks, progress, TensorBoard, chunking and data parallelism alike. The loop
    stops *before* stepping when a rule holds, so the returned weights are the ones the result
    describes. The rules, in this order:

    - ``"diverged"``: ``E(w_k)`` or a weight is not finite (an overflowing update; the sigmoid
      can map an infinite weight to a finite ``E``, so the largest ``|w|`` is read too);
      ``w_{k−1}``, the last finite weights, are restored;
    - ``"tol"``: ``|y^(L)(t) − d_t| < tol`` for every test point (with ``s_t > 0``) and output;
    - ``"early_stopping"``: the validation SSE has not improved for ``patience`` epochs; the
      weights of its best epoch are restored;
    - ``"converged"`` (with ``ftol``): further epochs no longer pay: over the last ``window``
      epochs the objective fell by at most ``ftol · E_0``, with ``E_0 = ½·Σ_t s_t ‖d_t − d̄‖²``
      the ``E_s`` of the best constant output — the training ``R²`` rose by at most ``ftol``
      (scikit-learn's ``tol`` over ``n_iter_no_change`` epochs, scipy's ``ftol``, in a scale every
      problem has). The objective is ``E_s``, or Bayesian regularisation's ``F/(2β)``;
    - ``"max_epochs"``: ``max_epochs`` epochs have been run (counted over the whole run with
      ``resume``);
    - ``"callback"``: ``callback(k, result)`` returned ``False`` (``result`` is the run so far;
      its lists are the live ones, copy them to keep them);
    - ``"mu_max"`` (``"lm"``, ``"lm_cg"``, ``"br"``, ``"br_cg"``): the step found no ``μ ≤ μ_max``
      that lowers the objective;
      the weights stay at ``w_k``.

    Plain full-batch steepest descent with the ``"manual"`` backend, on points held in one tensor
    on the model's device, runs tape-free (:class:`~torch_sigmoid_mlp.TapeFreeStep`): no autograd
    graph, no ``.grad``, buffers allocated once. Logging reads what the step computed and never
    changes the path.

    Data parallel: in a ``torch.distributed`` process group every rank calls ``train`` with the
    same model and settings, and with *its own shard* of the points (and of ``validation`` and
    ``sample_weight``; :func:`~torch_sigmoid_mlp.shard` cuts one). Every sum over points — ``E``,
    ``∇E``, ``JᵀJ``, ``Jᵀe`` — is all-reduced, every rank takes the same step from rank 0's
    initial weights, and the ranks stop together. Only rank 0 writes TensorBoard events and
    shows progress. A ``DistributedDataParallel`` wrapping a ``SigmoidMLP`` is accepted and its
    module trained this way.

    A ``KeyboardInterrupt`` (Ctrl-C) is not caught: it propagates with the weights as the last
    whole step left them and a ``logdir`` writer closed, so a caller can catch it and save.

    The settings come in two kinds: the step's own (``method``, ``lr``, ``momentum``, ``batch_size``,
    ``shuffle``, ``generator``, ``options``, ``sample_weight``, and ``restarts``, ``resume``), and those
    of the run around it, in three groups (:mod:`~torch_sigmoid_mlp.training.settings`):
    ``stop=Stop(...)`` (``max_epochs``, ``tol``, ``ftol``, ``window``, ``validation``, ``patience``,
    ``until``), ``logging=Logging(...)`` (``writer``, ``logdir``, ``log_every``, ``check_every``,
    ``callback``, ``progress``, ``handlers``) and ``distribution=Distribution(...)``
    (``distributed``, ``chunk_size``). Every field of a group is also a keyword of ``train`` of
    its own name, so ``train(model, x, d, tol=0.01)`` is ``train(model, x, d, stop=Stop(tol=0.01))``;
    one given both ways, or a keyword no group has, is a ``TypeError``.

    Args:
        model: the :class:`~torch_sigmoid_mlp.SigmoidMLP` to train in place.
        x: test points, ``(T, n)``, on the model's device and dtype (any device with ``chunk_size``).
        d: targets ``(T, m)`` (or ``(T,)`` when ``m = 1``) strictly inside ``(0, 1)``.
        stop, logging, distribution: the groups of the run's settings; ``None`` takes each field
            from its keyword, or its default.
        lr: ``η > 0``, required with ``"sgd"``; the first ``η`` of ``"adaptive"``; the optimizer's
            ``lr`` for ``"rprop"`` (its first step ``Δ_0``, default 0.1), ``"adam"`` (0.01) and
            ``"lbfgs"`` (1); unused by ``"lm"`` and ``"br"``. ``E`` sums over points, so ``η ∝ 1/T``
            keeps steepest descent's step independent of the number of points.
        max_epochs: the most epochs (steps) to run.
        tol: the uniform bound ``ε`` on the error, in the units of ``d``; ``None`` never stops on it.
        batch_size: ``None`` for full batch, else points per step (``"sgd"``, ``"rprop"``, ``"adam"``
            and optimizers given as ``method``).
        momentum: ``β ∈ [0, 1)`` with ``"sgd"``: ``torch.optim.SGD(momentum=β)``.
        shuffle: draw a new order of the points each epoch (mini-batch only).
        generator: makes the shuffling reproducible.
        validation: ``(x_val, d_val)``, evaluated at the start of every epoch into ``val_history``.
        patience: with ``validation``, stop after this many epochs without a new best validation SSE.
        writer: a ``torch.utils.tensorboard.SummaryWriter`` to log to (left open).
        logdir: a directory for a ``SummaryWriter`` that ``train`` opens and closes.
        log_every: epochs between TensorBoard records (see
            :class:`~torch_sigmoid_mlp.handlers.TrainingLog` for the tags).
        check_every: every this many epochs, log ``check/max_rel_diff``, the largest relative
            difference between the manual and the autograd gradient of ``E``; needs a writer.
        callback: called as ``callback(k, result)`` at each epoch that does not stop otherwise.
        progress: show a ``tqdm`` progress bar with ``E`` and the largest error.
        distributed: train on the points of every rank of the default process group. ``None``
            (default) does when a group is initialised; ``False`` trains on this process's points.
        chunk_size: evaluate ``E`` and its derivatives ``chunk_size`` points at a time, so that memory
            grows with the chunk, not with ``T`` (the same steps, to float rounding).
        method: the solver, a name in :data:`METHODS` or ``"auto"``
            (:func:`~torch_sigmoid_mlp.solvers.choose_method`), or a factory
            ``params -> torch.optim.Optimizer``.
        restarts: train from this many starts; the model ends with the best one's weights. With a
            ``tol`` the first start that reaches it ends the run (as a callback's stop does);
            otherwise each start runs to its own stop, and the best is the one that did not
            collapse (training ``R² ≥ COLLAPSED_R2``) with the lowest validation SSE, else the
            highest evidence (``"br"``), else the lowest ``E`` (SPEC.md, "Several starts").
            Start 0 is the model's weights as passed; start ``i ≥ 1`` redraws them with
            ``model.reset_parameters`` and ``torch.Generator().manual_seed(s0 + i)`` (which also
            shuffles its mini-batches), ``s0`` being ``generator.initial_seed()``, or without a
            generator one number drawn from torch's global generator. With ``logdir`` start 0
            logs to ``logdir`` and start ``i ≥ 1`` to ``logdir/start<i>``.
        sample_weight: ``s_t ≥ 0`` per point, ``(T,)``: SPEC.md's ``E_s``; points with ``s_t = 0``
            are not fitted and not held to ``tol``.
        ftol: stop as ``"converged"`` once the objective falls by at most ``ftol · E_0`` over
            ``window`` epochs (see the rules above); ``None`` (default) never stops on it.
            :data:`~torch_sigmoid_mlp.solvers.CONVERGENCE` holds the estimator's per-solver defaults.
        window: the epochs that ``ftol`` looks back over.
        options: the solver's own settings (``mu``, ``mu_increase``, ``mu_decrease``, ``mu_max``
            for ``"lm"``, ``"lm_cg"``, ``"br"`` and ``"br_cg"``, and ``cg_eta``, ``cg_max_iter``,
            ``cg_rtol``, ``cg_warm``, ``cg_forcing``, ``cg_warm_epochs`` for ``"lm_cg"`` and ``"br_cg"``,
            ``probes``, ``trace_rtol``, ``trace_seed``, ``trace_space``, ``trace_recycle``,
            ``trace_interval`` for ``"br_cg"``; ``lr_increase``, ``lr_decrease``, ``max_increase`` for
            ``"adaptive"``; keyword arguments of the ``torch.optim`` class otherwise).
        resume: the :class:`TrainResult` of an earlier part of this run on the same points:
            epochs count on from its ``epochs``, its histories and ``seconds`` go on, and its
            ``solver_state`` is restored, so that the run takes the steps it would have taken.
        handlers: further :class:`~torch_sigmoid_mlp.handlers.Handler`\ s to watch the run.
        until: for a population, ``"all"`` (default) runs until every member has stopped;
            ``"first"`` ends the run when the first member reaches ``tol`` (the others stop with
            ``"member_reached_tol"``); ``"best"`` (with ``"br"`` and no ``validation``) also stops a
            running member as ``"outranked"`` once its evidence cannot reach the best stopped
            member's by ``max_epochs`` (:meth:`~torch_sigmoid_mlp.training.population._Run.outranked`).

    Populations (``model = SigmoidMLP(..., population=K)``, SPEC.md's "Populations"): every member
    takes its own run of ``method`` — its own ``η``, ``μ``, ``α``, ``β``, RPROP steps, stop — in one batched
    computation per epoch; a member that stops is frozen, and the result's ``members[k]`` is member ``k``'s
    (:mod:`~torch_sigmoid_mlp.training.population`). ``"lbfgs"``, ``"lm_cg"``, ``"br_cg"`` and ``torch.optim``
    factories train the members one after another. A population takes full-batch points of one process:
    ``batch_size``, ``chunk_size``, ``distributed``, ``resume``, ``check_every``, ``momentum``,
    ``restarts > 1`` and ``handlers`` are refused with a ``ValueError``. TensorBoard
    gets the best and median member's ``E`` and how many have stopped (``population/…`` tags).

    Returns:
        A :class:`TrainResult`.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> teacher, model = SigmoidMLP(2, generator=g), SigmoidMLP(2, generator=g)
        >>> x = torch.rand(32, 2, generator=g)
        >>> with torch.no_grad():
        ...     d = teacher(x)
        >>> result = train(model, x, d, lr=0.5, tol=0.01)
        >>> result.stop_reason, result.max_abs_error < 0.01, result.epochs
        ('tol', True, 8)

    Levenberg–Marquardt to a ten times tighter bound, from three starts::

        >>> model = SigmoidMLP(2, generator=g)
        >>> result = train(model, x, d, method="lm", tol=0.001, restarts=3, generator=torch.Generator())
        >>> result.stop_reason, result.start, [start.epochs for start in result.restarts]
        ('tol', 0, [5])
    """
    given = merged({"stop": stop, "logging": logging, "distribution": distribution}, settings)
    max_epochs, tol, ftol, window = given["max_epochs"], given["tol"], given["ftol"], given["window"]
    validation, patience, until = given["validation"], given["patience"], given["until"]
    writer, logdir, log_every = given["writer"], given["logdir"], given["log_every"]
    check_every = given["check_every"]
    callback, progress, handlers = given["callback"], given["progress"], given["handlers"]
    distributed, chunk_size = given["distributed"], given["chunk_size"]
    model = _unwrap(model)
    if not callable(method) and method not in (*METHODS, "auto"):
        raise ValueError(
            f"method must be one of {(*METHODS, 'auto')} or a torch.optim factory, got {method!r}"
        )
    restarts = check_integer(restarts, "restarts")
    if until not in UNTIL:
        raise ValueError(f"until must be one of {UNTIL}, got {until!r}")
    # -- the settings, checked before any work -----------------------------------------------------
    run, logdir = _checked_run(
        model, x, d, lr=lr, max_epochs=max_epochs, tol=tol, batch_size=batch_size, momentum=momentum,
        shuffle=shuffle, validation=validation, patience=patience, writer=writer, logdir=logdir,
        log_every=log_every, check_every=check_every, callback=callback, progress=progress,
        distributed=distributed, chunk_size=chunk_size, method=method, sample_weight=sample_weight,
        options=options, resume=resume, handlers=handlers, restarts=restarts, ftol=ftol, window=window,
    )  # fmt: skip
    if model.population is not None:
        check_population_run(run, restarts)
        if handlers:
            raise ValueError("a population takes no handlers: its TensorBoard record is its own (logdir=)")
        if batched(run["method"]):
            return train_population(model, logdir=logdir, until=until, **run)
        return _members_one_by_one(model, generator, logdir, run)
    if restarts == 1:
        return _train_one(model, generator=generator, logdir=logdir, **run)
    return _train_restarts(model, restarts, generator, logdir, run)


def _checked_run(
    model: SigmoidMLP, x, d, *, lr, max_epochs, tol, batch_size, momentum, shuffle, validation, patience,
    writer, logdir, log_every, check_every, callback, progress, distributed, chunk_size, method,
    sample_weight, options, resume, handlers, restarts, ftol, window,
) -> tuple[dict, str | None]:  # fmt: skip
    """:func:`train`'s arguments checked, as :func:`_train_one` takes them, and the ``logdir``."""
    # with chunks, the points may stay in host memory: each chunk is copied to the model's device
    x, d = _check_points(model, x, d, ("x", "d"), any_device=chunk_size is not None)
    sample_weight = _check_sample_weight(sample_weight, x)
    check_number(lr, "lr", optional=True)
    if lr is not None and lr > torch.finfo(x.dtype).max:
        raise ValueError(
            f"lr={lr!r} overflows the weights' dtype {x.dtype} (largest {torch.finfo(x.dtype).max:.4g})"
        )
    check_number(tol, "tol", optional=True)
    batch_size = check_integer(batch_size, "batch_size", optional=True)
    log_every = check_integer(log_every, "log_every")
    check_every = check_integer(check_every, "check_every", optional=True)
    patience = check_integer(patience, "patience", optional=True)
    check_number(ftol, "ftol", optional=True, low=0.0)
    window = check_integer(window, "window")
    chunk_size = check_integer(chunk_size, "chunk_size", optional=True)
    max_epochs = check_integer(max_epochs, "max_epochs", low=0)
    check_number(momentum, "momentum", low=0.0, high=1.0)
    if momentum and method != "sgd":
        raise ValueError(f"momentum is steepest descent's (method='sgd'); method={method!r} takes none")
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation must be a pair (x_val, d_val)")
        validation = _check_points(model, *validation, ("x_val", "d_val"), any_device=chunk_size is not None)
    elif patience is not None:
        raise ValueError("patience needs validation=(x_val, d_val) to watch")
    if check_every is not None and writer is None and logdir is None:
        raise ValueError("check_every logs to TensorBoard: pass writer= or logdir= as well")
    if writer is not None and logdir is not None:
        raise ValueError("pass either writer= or logdir=, not both")
    distributed = _checked_distributed(distributed, batch_size, chunk_size)
    if distributed and not is_main_process():
        writer, logdir, progress = None, None, False  # rank 0 alone writes
    if resume is not None and restarts > 1:
        raise ValueError("resume= continues one run: it takes restarts=1")
    if method == "auto":
        P = num_weights(model.weights) // (model.population or 1)  # one member's weights
        method = choose_method(
            P,
            x.shape[0] * d.shape[1],
            tol=tol is not None,
            validation=validation is not None,
            batch_size=batch_size,
            distributed=distributed,
        )

    return dict(
        x=x, d=d, lr=lr, max_epochs=max_epochs, tol=tol, batch_size=batch_size, momentum=momentum,
        shuffle=shuffle, validation=validation, patience=patience, writer=writer, log_every=log_every,
        check_every=check_every, callback=callback, progress=progress, distributed=distributed,
        chunk_size=chunk_size, method=method, sample_weight=sample_weight, options=options,
        resume=resume, handlers=handlers or [], ftol=ftol, window=window,
    ), logdir  # fmt: skip


def _checked_distributed(distributed: bool | None, batch_size: int | None, chunk_size: int | None) -> bool:
    """Whether the run is data parallel: ``None`` asks whether there is a process group."""
    if distributed is None:
        distributed = is_distributed()
    elif distributed and not is_distributed():
        raise ValueError(
            "distributed=True needs an initialised default process group "
            "(torch.distributed.init_process_group, or torchrun and init_from_env())"
        )
    if batch_size is not None and (distributed or chunk_size is not None):
        what = "distributed training" if distributed else "chunk_size"
        raise ValueError(f"{what} computes full-batch gradients: batch_size must be None, got {batch_size}")
    return distributed


def _train_one(
    model: SigmoidMLP, *, x, d, lr, max_epochs, tol, batch_size, momentum, shuffle, generator, validation,
    patience, writer, logdir, log_every, check_every, callback, progress, distributed, chunk_size, method,
    sample_weight, options, resume, handlers, ftol, window,
) -> TrainResult:  # fmt: skip
    """One start of :func:`train`, its arguments checked."""
    weights, plain, objective, step, early, snapshots = _start(
        model, x, d, lr=lr, momentum=momentum, batch_size=batch_size, shuffle=shuffle, generator=generator,
        options=options, resume=resume, validation=validation, patience=patience, chunk_size=chunk_size,
        sample_weight=sample_weight, distributed=distributed, method=method,
    )  # fmt: skip
    spread = objective.spread()  # E_s of the best constant output
    merits = _Merits(step, ftol, window, spread, resume)

    # -- what watches the run ---------------------------------------------------------------------
    done = 0 if resume is None else resume.epochs
    watchers = _watchers(handlers, writer, logdir, log_every, check_every, (x, d), progress, max_epochs, done)
    result = _first_result(step.method, resume, done)
    # One readback per epoch either way; on the CPU reading each 0-d tensor beats stacking them.
    on_cpu = plain[0].device.type == "cpu"
    scale = step.loss_scale
    began = time.perf_counter() - (0.0 if resume is None else resume.seconds)
    epoch, reason, state = done, None, None
    try:
        evaluate, take, history = step.evaluate, snapshots.take, result.loss_history
        for epoch in range(done, max(done, max_epochs) + 1):
            # evaluate at w_k: E, the largest error, the largest |w| and the validation SSE
            E, max_err = evaluate()  # no step hands back an E with a graph
            readings = [E, max_err, take(epoch)]
            if early is not None:
                readings.append(early.reading())
            # the one host sync of the epoch
            E_k, max_k, w_max, *val = (
                [r.item() for r in readings] if on_cpu else torch.stack(readings).tolist()
            )
            E_k *= scale
            history.append(E_k)
            if val:
                result.val_history.append(val[0])

            # stop?
            if not math.isfinite(E_k) or not math.isfinite(w_max):
                reason = "diverged"
            elif tol is not None and max_k < tol:
                reason = "tol"
            elif early is not None and early.update(epoch, val[0]):
                reason = "early_stopping"
            elif merits.stalled(epoch, E_k):
                reason = "converged"
            elif epoch >= max_epochs:
                reason = "max_epochs"
            elif callback is not None:
                # the record of a run stopped here, which a checkpoint keeps
                _record(result, epoch, E_k, max_k, time.perf_counter() - began, step, spread, merits)
                stop = callback(epoch, result) is False
                if distributed:
                    stop = any_rank(stop, weights[0].device)  # a stop on one rank stops them all
                if stop:
                    reason = "callback"
            # log
            if watchers:
                state = EpochState(epoch, E_k, max_k, val[0] if val else None, reason, step, model)
                for watcher in watchers:
                    watcher.epoch(state)
            if reason is not None:
                break

            # step: w_{k+1}
            step.step()
            if step.stop_reason is not None:  # no step was taken: the run ends at w_k
                reason = step.stop_reason
                if watchers:
                    state.reason = reason
                break
            for watcher in watchers:
                watcher.stepped(state)
    except BaseException:
        for watcher in watchers:
            watcher.abandon()
        raise
    finally:
        objective.release()

    # -- the weights to return, and what they score -----------------------------------------------
    result.stop_reason, result.converged = reason, reason == "tol"
    _record(result, epoch, E_k, max_k, 0.0, step, spread, merits)
    _restore(reason, plain, snapshots, early, epoch, objective, result, spread)
    result.evidence, result.seconds = step.evidence(), time.perf_counter() - began
    settings = dict(
        method=step.method, lr=lr, max_epochs=max_epochs, tol=tol, batch_size=batch_size, momentum=momentum,
        patience=patience,
    )  # fmt: skip
    _close(watchers, state, model, result, settings)
    return result


def _start(
    model: SigmoidMLP, x, d, *, lr, momentum, batch_size, shuffle, generator, options, resume, validation,
    patience, chunk_size, sample_weight, distributed, method,
) -> tuple:  # fmt: skip
    """The weights (and the same storage outside autograd), the objective, the step, early stopping,
    and the snapshots of the weights that a diverged run goes back to."""
    weights = list(model.weights)
    plain = [W.detach() for W in weights]  # the same storage, outside autograd
    if distributed:
        broadcast_(weights)  # every rank starts from rank 0's w_0, as DistributedDataParallel does
    objective = Objective(
        model, x, d, sample_weight=sample_weight, chunk_size=chunk_size, distributed=distributed
    )
    step: Step = make_step(
        method, objective, lr=lr, momentum=momentum, batch_size=batch_size, shuffle=shuffle,
        generator=generator, options=options,
    )  # fmt: skip
    if resume is not None and resume.solver_state:
        step.load_state_dict(resume.solver_state)
    early = None
    if validation is not None:
        val_objective = Objective(model, *validation, chunk_size=chunk_size, distributed=distributed)
        early = _EarlyStopping(val_objective, plain, patience)
    snapshots = _Snapshots(plain)  # w_k and w_{k−1}: restored if w_k or E(w_k) is not finite
    return weights, plain, objective, step, early, snapshots


def _first_result(method: str, resume: TrainResult | None, done: int) -> TrainResult:
    """The record a run starts with: empty, or the resumed run's first ``done`` epochs."""
    result = TrainResult(0, False, "max_epochs", math.nan, math.nan, method=method)
    if resume is not None:
        result.loss_history = list(resume.loss_history[:done])
        result.val_history = list(resume.val_history[:done])
    return result


def _close(watchers, state, model: SigmoidMLP, result: TrainResult, settings: dict) -> None:
    """Tell every watcher the run is over: its settings (as hparams) and what it reached."""
    hparams = _hparams(model, **settings)
    metrics = {
        "final_loss": result.final_loss,
        "max_abs_error": result.max_abs_error,
        "epochs": result.epochs,
    }
    for watcher in watchers:
        watcher.close(state, hparams, metrics)


def _watchers(handlers, writer, logdir, log_every, check_every, points, progress, max_epochs, done) -> list:
    """The handlers given, then TensorBoard and the progress bar where asked for."""
    watchers = list(handlers)
    if writer is not None or logdir is not None:
        watchers.append(
            TensorBoard(writer, logdir, log_every=log_every, check_every=check_every, points=points)
        )
    if progress:
        watchers.append(ProgressBar(max_epochs, initial=min(done, max_epochs)))
    return watchers


def _record(result: TrainResult, epoch, E_k, max_k, seconds, step, spread, merits: _Merits) -> None:
    """``result`` as the record of a run that stops at ``epoch`` (``E_k``, ``max_k`` its readings)."""
    result.epochs, result.final_loss, result.max_abs_error, result.seconds = epoch, E_k, max_k, seconds
    result.solver_state, result.merits = step.state_dict(), merits.kept()
    result.r2 = 1 - E_k / spread if spread > 0 else None


def _restore(reason, plain, snapshots, early, epoch, objective, result, spread: float) -> None:
    """After a divergence or early stopping, put back the weights to return and score them."""
    restore = {"diverged": lambda: snapshots.previous(epoch), "early_stopping": lambda: early.weights}.get(
        reason
    )
    if restore is not None:
        with torch.no_grad():
            torch._foreach_copy_(plain, restore())
        E, max_err = objective.error()
        result.final_loss, result.max_abs_error = E.item(), max_err.item()
        result.r2 = 1 - result.final_loss / spread if spread > 0 else None


class _Merits:
    """The ``ftol`` test: the step's objective at the last ``window + 1`` epochs, and whether it fell
    by at most ``ftol · E_0`` over them.

    Where the objective is ``E`` itself a resumed run reads it back from the loss history; the other
    steps' (Bayesian regularisation's ``F/(2β)``) travel in :attr:`TrainResult.merits`.
    """

    def __init__(self, step: Step, ftol: float | None, window: int, spread: float, resume) -> None:
        self.step, self.window = step, window
        self.stall = None if ftol is None else ftol * spread
        self.of_E = type(step).merit is Step.merit
        before = []
        if resume is not None and self.of_E:
            history, done = resume.loss_history, resume.epochs
            before = [(k, history[k]) for k in range(max(0, done - window - 1), done) if k < len(history)]
        elif resume is not None:
            before = [tuple(m) for m in resume.merits if m[0] < resume.epochs]
        self.record = collections.deque(before, maxlen=window + 1)

    def stalled(self, epoch: int, E_k: float) -> bool:
        """Record epoch ``epoch``; whether the objective fell by at most the threshold over the window."""
        if self.stall is None:
            return False
        merit = self.step.merit(E_k)
        if merit is None:  # the step's objective changed its form: look no further back
            self.record.clear()
            return False
        self.record.append((epoch, merit))
        return len(self.record) > self.window and self.record[0][1] - merit <= self.stall

    def kept(self) -> list[list[float]]:
        """What a resumed run needs: nothing where the loss history holds it."""
        return [] if self.of_E else [list(m) for m in self.record]


def _members_one_by_one(model: SigmoidMLP, generator, logdir, run: dict) -> TrainResult:
    """A population whose solver is a member's own (``"lbfgs"``'s line search, a ``torch.optim``
    factory): each member trained alone by :func:`_train_one`, its weights copied back."""
    began, members = time.perf_counter(), []
    for k in range(model.population):
        single = model.member(k)
        members.append(_train_one(single, generator=generator, logdir=member_dir(logdir, k), **run))
        with torch.no_grad():
            for W, trained in zip(model.weights, single.weights):
                W[k] = trained
    return summary(members, time.perf_counter() - began)


def _hparams(model: SigmoidMLP, **settings) -> dict:
    """The run's settings and the model's sizes and backend as TensorBoard hparams.

    ``None`` has no hparam type, so it is written as a word: ``"full"`` for ``batch_size``, else ``"none"``.
    """
    hparams = {
        name: ("full" if name == "batch_size" else "none") if value is None else value
        for name, value in settings.items()
    }
    return {**hparams, "sizes": "-".join(map(str, model.sizes)), "backend": model.backend}


def start_dir(logdir, i: int):
    """Where start ``i ≥ 1`` of a fit from several starts logs: ``logdir/start<i>``."""
    return None if logdir is None else os.path.join(str(logdir), f"start{i}")


def _train_restarts(model: SigmoidMLP, restarts: int, generator, logdir, run: dict) -> TrainResult:
    """``restarts=k``: :func:`train` from ``k`` starts, the model left with the best one's weights.

    Start 0 trains the model's weights as they are; start ``i ≥ 1`` first redraws them by
    ``model.reset_parameters`` with ``torch.Generator().manual_seed(s0 + i)``, which also shuffles its
    mini-batches, where ``s0`` is ``generator.initial_seed()`` (or, without a generator, one number
    drawn from torch's global generator). With a ``tol``, the first start that reaches it ends the
    run, as does a callback's stop; otherwise every start runs to its own stop and the best is
    chosen by :func:`_rank`.

    Where a population can hold them (:func:`_together`), the starts run as one: all of them
    without a ``tol``, until the best is known (``until="best"``: a start whose evidence can no
    longer reach that of the best start that stopped ends as ``"outranked"``, where one after another
    it would have run to its own stop, and lost); with one, start 0 alone and, if it misses, the
    others together until the first reaches it. The choice is the same either way.
    """
    if run["writer"] is not None:
        raise ValueError(
            "with restarts, pass logdir= (start 0 logs to it, start i to logdir/start<i>), not writer="
        )
    s0 = generator.initial_seed() if generator is not None else int(torch.randint(2**62, ()).item())
    results: list[TrainResult] = []
    best, best_weights = 0, None
    began = time.perf_counter()
    together = _together(run, logdir, num_weights(model.weights), run["x"].shape[0] * run["d"].shape[1])
    for i in range(restarts):
        if together and i == (0 if run["tol"] is None else 1):
            results += _starts_as_population(model, range(i, restarts), s0, run)
            ranked = min(range(i, restarts), key=lambda j: _rank(results[j]))
            if best_weights is None or _rank(results[ranked]) < _rank(results[best]):
                best, best_weights = ranked, [W.detach().clone() for W in model.weights]
            break
        start_generator = generator
        if i > 0:
            start_generator = torch.Generator().manual_seed(s0 + i)
            model.reset_parameters(generator=start_generator)
        # start 0 logs where one start would, so that a fit whose first start is enough looks like one
        start_logdir = logdir if i == 0 else start_dir(logdir, i)
        results.append(_train_one(model, generator=start_generator, logdir=start_logdir, **run))
        if best_weights is None or _rank(results[i]) < _rank(results[best]):
            best, best_weights = i, [W.detach().clone() for W in model.weights]
        if results[i].stop_reason in ("tol", "callback"):  # reached, or asked to stop
            break
    with torch.no_grad():
        torch._foreach_copy_([W.detach() for W in model.weights], best_weights)
    return dataclasses.replace(
        results[best], restarts=results, start=best, seconds=time.perf_counter() - began
    )


#: Several starts run as one population only where that is faster than one after another, which at
#: large sizes on the CPU it is not (``benchmarks/results/population.md``): an LM/BR epoch of at most
#: this many flops (``N·P² + P³``; at 1-8-8-1, T = 100 a population of 8 costs 0.35× per member, at
#: P = 302, T = 300 0.8–1×), a first-order epoch of at most this many (``N·P``; 0.3× at (8, 1000),
#: about 1× at (32, 2000)).
TOGETHER_DENSE_FLOPS, TOGETHER_FLOPS = 1e7, 1e6


def _together(run: dict, logdir, P: int, N: int) -> bool:
    """Whether several starts run as one population: a batched solver on a problem small enough that
    it pays (:data:`TOGETHER_DENSE_FLOPS`), full-batch points of one process, and nothing that watches
    a single run (callback, TensorBoard, progress, handlers)."""
    dense = run["method"] in ("lm", "br")
    small = N * P**2 + P**3 <= TOGETHER_DENSE_FLOPS if dense else N * P <= TOGETHER_FLOPS
    return (
        small
        and batched(run["method"])
        and run["batch_size"] is None
        and run["chunk_size"] is None
        and not run["distributed"]
        and not run["momentum"]
        and run["resume"] is None
        and run["callback"] is None
        and logdir is None
        and not run["progress"]
        and not run["handlers"]
        and run["check_every"] is None
    )


def _starts_as_population(model: SigmoidMLP, starts: range, s0: int, run: dict) -> list[TrainResult]:
    """Starts ``starts`` trained as one population (start 0: the model's weights as they are, start
    ``i ≥ 1``: redrawn with ``manual_seed(s0 + i)``); the model is left with the best one's weights."""
    W0 = model.weights[0]
    population = SigmoidMLP(
        model.in_features, model.sizes[1:-1], model.out_features, backend=model.backend,
        device=W0.device, dtype=W0.dtype, population=len(starts),
    )  # fmt: skip
    with torch.no_grad():
        for j, i in enumerate(starts):
            if i > 0:
                model.reset_parameters(generator=torch.Generator().manual_seed(s0 + i))
            for P, W in zip(population.weights, model.weights):
                P[j] = W
    until = "best" if run["tol"] is None else "first"
    result = train_population(population, logdir=None, until=until, **run)
    with torch.no_grad():
        for W, P in zip(model.weights, population.weights):
            W.copy_(P[result.start])
    return result.members
