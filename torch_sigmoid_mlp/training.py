"""Steepest descent on ``E`` until the error is below ``tol`` at every test point (SPEC.md)."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .distributed import (
    FlatGradients,
    any_rank,
    broadcast_,
    global_error,
    global_gradients,
    is_distributed,
    is_main_process,
)
from .functional import sse_loss
from .fused import FusedSGDStep
from .gradients import compare_gradients
from .lm import levenberg_marquardt
from .module import SigmoidMLP
from .tracking import TrainingLog

__all__ = ["METHODS", "STOP_REASONS", "TrainResult", "train"]

#: Why :func:`train` stopped, in the order it tests them at the start of an epoch; ``"mu_max"`` only
#: with ``method="lm"``.
STOP_REASONS = ("diverged", "tol", "early_stopping", "max_epochs", "callback", "mu_max")

#: The training methods of :func:`train`.
METHODS = ("sgd", "lm")


@dataclass
class TrainResult:
    """What :func:`train` did and where it left the weights.

    Attributes:
        epochs: weight updates taken (epochs run to the end).
        converged: ``stop_reason == "tol"``: ``|y^(L)(t) − d_t| < tol`` at every test point.
        stop_reason: one of ``"tol"``, ``"max_epochs"``, ``"callback"``, ``"diverged"``,
            ``"early_stopping"``, or with ``method="lm"`` ``"mu_max"``: no step with damping
            ``μ ≤ μ_max`` lowers ``E`` (a minimum, to rounding).
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
    if x.shape[0] != d.shape[0]:
        raise ValueError(f"{xn} has {x.shape[0]} test points but {dn} has {d.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{xn} contains NaN or infinite values")
    if not bool(torch.isfinite(d).all()):
        raise ValueError(f"{dn} contains NaN or infinite values")
    if not bool(((d > 0) & (d < 1)).all()):
        raise ValueError(
            f"{dn} must lie strictly inside (0, 1), the range of the output sigmoid; got values in "
            f"[{d.min().item():.4g}, {d.max().item():.4g}] (scale them first, e.g. with MinMaxScaler)"
        )
    return x, d


def _positive(value, name: str, *, integer: bool = False, optional: bool = False):
    if value is None and optional:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive finite number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def _descend(weights: Sequence[Tensor], grads: Sequence[Tensor], lr: float, momentum: float, buffers):
    """``W ← W − η·g``; with momentum ``β``, ``b ← β·b + g`` then ``W ← W − η·b`` (torch.optim.SGD's form).

    Each line is one in-place ``foreach`` call over all layers, so an interrupt (Ctrl-C) lands
    between whole updates, never inside one.
    """
    with torch.no_grad():
        if momentum:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
            grads = buffers
        torch._foreach_add_(weights, grads, alpha=-lr)


class _Snapshots:
    """``w_k`` and ``w_{k−1}`` as two flat copies of all weights, written in turn.

    One ``cat`` per epoch takes the copy, and the largest ``|w|`` comes from it in one reduction:
    at small sizes a kernel per layer costs more than the arithmetic.
    """

    def __init__(self, weights: Sequence[Tensor]) -> None:
        self._weights = list(weights)
        # views of contiguous weights are taken once; any other layout is flattened (copied) per epoch
        self._flat = [W.view(-1) for W in weights] if all(W.is_contiguous() for W in weights) else None
        numel = sum(W.numel() for W in weights)
        options = {"dtype": weights[0].dtype, "device": weights[0].device}
        self._buffers = [torch.empty(numel, **options) for _ in range(2)]
        self._as_weights = [
            [part.view(W.shape) for part, W in zip(buffer.split([W.numel() for W in weights]), weights)]
            for buffer in self._buffers
        ]
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


def _mini_batch_epoch(
    model: SigmoidMLP, x: Tensor, d: Tensor, order: Tensor, batch_size: int, step, want_grads: bool
) -> list[Tensor] | None:
    """One pass over the points in ``order``, a step per batch; the summed gradients if wanted."""
    weights = list(model.weights)
    total = None
    for batch in order.split(batch_size):
        E_b = sse_loss(model(x[batch]), d[batch])  # E over the batch's points
        grads = torch.autograd.grad(E_b, weights)  # ∂E_b/∂W^(l), by the model's backend
        step(weights, grads)
        if want_grads:
            total = list(grads) if total is None else torch._foreach_add(total, grads)
    return total


def train(
    model: SigmoidMLP,
    x: Tensor,
    d: Tensor,
    *,
    lr: float | None = None,
    max_epochs: int = 10_000,
    tol: float | None = None,
    batch_size: int | None = None,
    momentum: float = 0.0,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    validation: tuple[Tensor, Tensor] | None = None,
    patience: int | None = None,
    writer=None,
    logdir: str | None = None,
    log_every: int = 1,
    check_every: int | None = None,
    callback: Callable[[int, TrainResult], bool | None] | None = None,
    progress: bool = False,
    distributed: bool | None = None,
    chunk_size: int | None = None,
    method: str = "sgd",
    restarts: int = 1,
) -> TrainResult:
    r"""Steepest descent on ``E(w) = 1/2 · Σ_t ‖d_t − y^(L)(t)‖²`` until ``max_t |y^(L)(t) − d_t| < tol``.

    .. code-block:: text

        w_{k+1} = w_k − η · ∇E(w_k)

    An epoch ``k`` takes one forward pass over all ``T`` points at ``w_k``, reads ``E(w_k)`` and
    the largest error from it, and stops *before* updating if a stopping rule holds, so the
    returned weights are the ones the result describes. Otherwise it steps: full batch
    (``batch_size=None``) along the gradient of ``E`` itself, summed over all points; with a
    ``batch_size``, along the gradient of each batch's SSE in turn (``1`` is online learning).
    The gradient is the model's own (``model.backend``: ``"manual"`` runs the hand-written
    backpropagation). Plain steepest descent on the full batch with the ``"manual"`` backend
    (``momentum=0``, no ``batch_size``, ``chunk_size`` or process group) runs tape-free through
    :class:`~torch_sigmoid_mlp.FusedSGDStep`: no autograd graph and no ``.grad``, the
    deltas in buffers allocated once, and each ``W^(l) += η δ^(l+1)ᵀ y^(l)`` one in-place
    product. Epochs that write a TensorBoard record (every ``log_every``-th with a writer) log
    ``‖∂E/∂W^(l)‖``, so they take the autograd step instead; both give the same weights to float
    rounding. Stopping rules, tested in this order at the start of each epoch:

    - ``"diverged"``: ``E(w_k)`` or a weight is not finite (only an update that overflows
      gets there: ``E`` is bounded by ``T·m/2``; a too large ``η`` more often saturates the
      sigmoids, which stalls instead); ``w_{k−1}``, the last finite weights, are restored;
    - ``"tol"``: ``|y^(L)(t) − d_t| < tol`` for every test point and output;
    - ``"early_stopping"``: the validation SSE has not improved for ``patience`` epochs; the
      weights of its best epoch are restored;
    - ``"max_epochs"``: ``max_epochs`` updates have been taken;
    - ``"callback"``: ``callback(k, result)`` returned ``False`` (``result`` is the run so far;
      its lists are the live ones, copy them to keep them).

    Data parallel: in a ``torch.distributed`` process group every rank calls ``train`` with the
    same model and settings, and with *its own shard* of the points as ``x``, ``d`` (and of
    ``validation``; :func:`~torch_sigmoid_mlp.shard` cuts one) — ``train`` does not split them.
    ``E`` and its gradient are sums over points, so each rank runs forward and backward on its
    shard, one ``all_reduce`` sums gradients and ``E`` over ranks in one flat buffer, a second
    takes the largest error, and every rank takes the same step from rank 0's initial weights
    (broadcast first): the weights equal single-process full-batch training to float rounding,
    and every stopping test sees all points, so the ranks stop together. A ``callback``
    returning ``False`` on any rank stops all of them (give one to every rank or to none). Only
    rank 0 writes TensorBoard events and shows progress. Full batch only. Data-parallel epochs, like
    those with ``chunk_size``, run backward together with the forward pass, chunk by chunk, so the
    epoch that stops computes a gradient it does not use.

    Per epoch the host reads back ``E``, the largest error, the largest ``|w|`` over all weights and
    the validation SSE together (on a GPU as one small tensor): the stopping test needs them, and
    nothing else in the loop waits for the device. The ``|w|`` are read because an overflowing
    update can leave ``±inf`` in a weight whose unit the sigmoid saturates, with ``E`` finite.
    A ``KeyboardInterrupt`` (Ctrl-C) is not caught: it propagates with the weights as the last
    whole update left them (an update is never half applied) and a ``logdir`` writer closed, so
    a caller can catch it and save the model.

    Args:
        model: the :class:`~torch_sigmoid_mlp.SigmoidMLP` to train in place.
        x: test points, ``(T, n)``, on the model's device and dtype.
        d: targets ``(T, m)`` (or ``(T,)`` when ``m = 1``) strictly inside ``(0, 1)``.
        lr: ``η > 0``, required with ``method="sgd"``, unused by ``"lm"``. ``E`` sums over points,
            so its gradient grows with ``T`` (or the batch size): ``η ∝ 1/T`` keeps the step size
            independent of the number of points.
        max_epochs: the most updates to take.
        tol: the uniform bound ``ε`` on the error, in the units of ``d``; ``None`` never stops on it.
        batch_size: ``None`` for full batch, else points per step.
        momentum: ``β ∈ [0, 1)``; ``0`` is plain steepest descent.
        shuffle: draw a new order of the points each epoch (mini-batch only).
        generator: makes the shuffling reproducible.
        validation: ``(x_val, d_val)``, evaluated at the start of every epoch into ``val_history``.
        patience: with ``validation``, stop after this many epochs without a new best validation SSE.
        writer: a ``torch.utils.tensorboard.SummaryWriter`` to log to (left open).
        logdir: a directory for a ``SummaryWriter`` that ``train`` opens and closes.
        log_every: epochs between TensorBoard records (see
            :class:`~torch_sigmoid_mlp.tracking.TrainingLog` for the tags).
        check_every: every this many epochs, log ``check/max_rel_diff``, the largest relative
            difference between the manual and the autograd gradient of ``E``; needs a writer.
        callback: called as ``callback(k, result)`` at each epoch that does not stop otherwise.
        progress: show a ``tqdm`` progress bar with ``E`` and the largest error.
        distributed: train on the points of every rank of the default ``torch.distributed``
            process group (see "Data parallel" above). ``None`` (default) does when a group is
            initialised; ``False`` trains on this process's points alone even then.
        chunk_size: compute the full-batch gradient ``chunk_size`` points at a time
            (:func:`~torch_sigmoid_mlp.accumulate_gradients`), so that memory grows with the chunk,
            not with ``T``; the same steps as without, to float rounding. ``x`` and ``d`` may then
            live in host memory while the model is on a GPU. Full batch only.
        method: ``"sgd"``, the steepest descent above, or ``"lm"``: Levenberg–Marquardt
            (:func:`~torch_sigmoid_mlp.levenberg_marquardt`, MATLAB's ``trainlm`` defaults) on the
            full batch, ``(JᵀJ + μI) Δw = Jᵀe`` per epoch with the same epoch semantics and ``tol``
            stop, and the extra stop ``"mu_max"``. For networks of up to
            :data:`~torch_sigmoid_mlp.LM_MAX_PARAMS` weights; it takes no ``lr``, and refuses
            ``batch_size``, ``momentum``, ``validation``, ``callback``, ``check_every``,
            ``progress``, ``distributed`` and ``chunk_size``. With a writer it logs ``train/sse``
            per epoch and ``train/max_abs_error`` and ``train/mu`` at the last.
        restarts: train from this many starts and keep the best: converged first, then the lowest
            ``max_abs_error``; the model ends with its weights. Start 0 is the model's weights as
            passed; start ``i ≥ 1`` redraws them with ``model.reset_parameters`` and
            ``torch.Generator().manual_seed(s0 + i)`` (which also shuffles its mini-batches),
            ``s0`` being ``generator.initial_seed()``, or without a generator one number drawn from
            torch's global generator. Each start runs to its own stop (``max_epochs`` each, the
            callback called per start); with ``logdir`` start ``i`` logs to ``logdir/start<i>``.
            The result is the best start's, with ``restarts`` listing every start's and ``start``
            naming the best.

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
        ('tol', 1, [5, 6, 3])
    """
    settings = dict(locals())  # every argument as passed, for the starts of _train_restarts
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _positive(restarts, "restarts", integer=True)
    if not isinstance(model, SigmoidMLP):
        raise TypeError(f"model must be a SigmoidMLP, got {type(model).__name__}")
    if restarts > 1:
        return _train_restarts(settings)
    if method == "lm":
        return _train_lm(settings)
    if lr is None:
        raise ValueError("lr is required with method='sgd' (steepest descent); method='lm' needs none")
    # with chunks, the points may stay in host memory: each chunk is copied to the model's device
    x, d = _check_points(model, x, d, ("x", "d"), any_device=chunk_size is not None)
    _positive(lr, "lr")
    _positive(tol, "tol", optional=True)
    _positive(batch_size, "batch_size", integer=True, optional=True)
    _positive(log_every, "log_every", integer=True)
    _positive(check_every, "check_every", integer=True, optional=True)
    _positive(patience, "patience", integer=True, optional=True)
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 0:
        raise ValueError(f"max_epochs must be a non-negative integer, got {max_epochs!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation must be a pair (x_val, d_val)")
        x_val, d_val = _check_points(
            model, *validation, ("x_val", "d_val"), any_device=chunk_size is not None
        )
    elif patience is not None:
        raise ValueError("patience needs validation=(x_val, d_val) to watch")
    if check_every is not None and writer is None and logdir is None:
        raise ValueError("check_every logs to TensorBoard: pass writer= or logdir= as well")
    _positive(chunk_size, "chunk_size", integer=True, optional=True)
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
    if distributed and not is_main_process():
        writer, logdir, progress = None, None, False  # rank 0 alone writes
    if progress:
        try:
            from tqdm import tqdm
        except ImportError as exc:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from exc

    # -- state of the run ------------------------------------------------------------------------
    weights = list(model.weights)
    plain = [W.detach() for W in weights]  # the same storage, outside autograd
    full_batch = batch_size is None
    if distributed:
        broadcast_(weights)  # every rank starts from rank 0's w_0, as DistributedDataParallel does
    # W^(l).grad as views of one flat buffer: the all-reduce's, and the chunks' accumulator
    flat = FlatGradients(weights) if distributed or chunk_size is not None else None
    T = x.shape[0]
    buffers = [torch.zeros_like(W) for W in weights] if momentum else None
    # Plain full-batch steepest descent with the hand-written backward needs no autograd graph:
    # the epoch runs tape-free (no .grad, buffers allocated once, the update fused with ∇E).
    tape_free = model.backend == "manual" and full_batch and not momentum and flat is None
    fused = FusedSGDStep(weights, rows=T) if tape_free else None
    # One readback per epoch either way; on the CPU reading each 0-d tensor beats stacking them.
    on_cpu = plain[0].device.type == "cpu"

    def step(ws, grads):
        _descend(ws, grads, lr, momentum, buffers)

    snapshots = _Snapshots(plain)  # w_k and w_{k−1}: restored if w_k or E(w_k) is not finite
    best_val, best_epoch = math.inf, 0
    best_weights = [W.clone() for W in plain] if validation is not None else None
    result = TrainResult(0, False, "max_epochs", math.nan, math.nan)
    log = (
        TrainingLog(writer, logdir, log_every=log_every) if writer is not None or logdir is not None else None
    )
    bar = tqdm(total=max_epochs, unit="epoch", leave=False) if progress else None
    start = time.perf_counter()
    try:
        for epoch in range(max_epochs + 1):
            # A TensorBoard record of this epoch logs ‖∂E/∂W^(l)‖: that epoch takes the autograd
            # step, whose gradient tensors exist (to float rounding the same step).
            logged = log is not None and log.wants(epoch)  # this epoch gets a TensorBoard record
            tape_free_epoch = fused is not None and not logged
            if tape_free_epoch:
                # forward at w_k into the step's buffers: 2E (halved once read) and max_t |y^(L)(t) − d_t|
                E, max_err = fused.forward_sums(x, d)
            elif flat is not None:
                # forward and backward at w_k, a chunk at a time; E, ∇E and the largest error over
                # the points of every rank (one all_reduce(SUM) and one all_reduce(MAX))
                E, max_err = global_gradients(model, x, d, flat, chunk_size=chunk_size, reduce=distributed)
            else:
                # forward on all points at w_k (keeping the graph for a full-batch backward)
                with torch.set_grad_enabled(full_batch):
                    y = model(x)  # y^(L), (T, m)
                    E = sse_loss(y, d)
                max_err = (y.detach() - d).abs().amax()  # max_t |y^(L)(t) − d_t|
            # An overflowing update leaves ±inf in W; the sigmoid can still map that to a finite E,
            # so the largest |w| is read along with E.
            readings = [E.detach(), max_err, snapshots.take(epoch)]
            if validation is not None and flat is not None:
                E_val, _ = global_error(model, x_val, d_val, chunk_size=chunk_size, reduce=distributed)
                readings.append(E_val)
            elif validation is not None:
                with torch.no_grad():
                    readings.append(sse_loss(model(x_val), d_val))
            # the one host sync of the epoch
            E_k, max_k, *rest = [r.item() for r in readings] if on_cpu else torch.stack(readings).tolist()
            if tape_free_epoch:
                E_k *= 0.5  # exact: the step returned Σ_t ‖e(t)‖²
            w_max, *val = rest
            result.loss_history.append(E_k)
            result.val_history += val
            if val and val[0] < best_val:
                best_val, best_epoch = val[0], epoch
                torch._foreach_copy_(best_weights, plain)

            # stop?
            reason = None
            if not math.isfinite(E_k) or not math.isfinite(w_max):
                reason = "diverged"
            elif tol is not None and max_k < tol:
                reason = "tol"
            elif patience is not None and epoch - best_epoch >= patience:
                reason = "early_stopping"
            elif epoch == max_epochs:
                reason = "max_epochs"
            elif callback is not None:
                result.epochs, result.final_loss, result.max_abs_error = epoch, E_k, max_k
                result.seconds = time.perf_counter() - start
                stop = callback(epoch, result) is False
                if distributed:
                    stop = any_rank(stop, weights[0].device)  # a stop on one rank stops them all
                if stop:
                    reason = "callback"

            # backward and update: w_{k+1} = w_k − η·∇E
            grads = None
            if reason is None:
                if tape_free_epoch:
                    fused.update(lr)  # W^(l) += η Σ_t δ^(l+1)(t) y^(l)(t)ᵀ from the forward's buffers
                elif full_batch:
                    # ∂E/∂W^(l) by the model's backend; in flat already when computed with the forward
                    grads = flat.views if flat is not None else torch.autograd.grad(E, weights)
                    step(weights, grads)
                else:
                    if shuffle:
                        order = torch.randperm(T, generator=generator, device=_device_of(generator))
                        order = order.to(x.device)  # (T,)
                    else:
                        order = torch.arange(T, device=x.device)  # (T,)
                    grads = _mini_batch_epoch(model, x, d, order, batch_size, step, logged)

            # log
            if logged or (log is not None and reason is not None):
                log.epoch(epoch, E_k, max_k, lr, weights, grads, val[0] if val else None, reason is not None)
            if log is not None and check_every is not None and epoch % check_every == 0:
                log.check(epoch, compare_gradients(model, x, d).max_rel)
            if bar is not None:
                bar.set_postfix(E=f"{E_k:.4g}", max_err=f"{max_k:.3g}", refresh=False)
                if reason is None:
                    bar.update()
            if reason is not None:
                break
    except BaseException:
        if log is not None:
            log.abandon()
        raise
    finally:
        if bar is not None:
            bar.close()
        if flat is not None:
            for W in weights:
                W.grad = None  # let the flat buffer go

    # -- the weights to return, and what they score -------------------------------------------------
    result.epochs, result.stop_reason, result.converged = epoch, reason, reason == "tol"
    result.final_loss, result.max_abs_error = E_k, max_k
    restore = {"diverged": snapshots.previous(epoch), "early_stopping": best_weights}.get(reason)
    if restore is not None:
        with torch.no_grad():
            torch._foreach_copy_(weights, restore)
        E, max_err = global_error(model, x, d, chunk_size=chunk_size, reduce=distributed)
        result.final_loss, result.max_abs_error = E.item(), max_err.item()
    result.seconds = time.perf_counter() - start
    if log is not None:
        log.close(
            _hparams(
                model,
                lr=lr,
                max_epochs=max_epochs,
                tol=tol,
                batch_size=batch_size,
                momentum=momentum,
                patience=patience,
            ),
            {"final_loss": result.final_loss, "max_abs_error": result.max_abs_error, "epochs": epoch},
        )
    return result


def _device_of(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def _hparams(model: SigmoidMLP, **settings) -> dict:
    """The run's settings and the model's sizes and backend as TensorBoard hparams.

    ``None`` has no hparam type, so it is written as a word: ``"full"`` for ``batch_size``, else ``"none"``.
    """
    hparams = {
        name: ("full" if name == "batch_size" else "none") if value is None else value
        for name, value in settings.items()
    }
    return {**hparams, "sizes": "-".join(map(str, model.sizes)), "backend": model.backend}


def _train_lm(s: dict) -> TrainResult:
    """``method="lm"``: :func:`~torch_sigmoid_mlp.levenberg_marquardt` on all points, as a TrainResult.

    ``s`` holds :func:`train`'s arguments. Each epoch solves one dense system on the full batch of
    this process's points, so the options of the steepest-descent loop that need mini-batches, momentum,
    a look at every epoch or other ranks' points are refused rather than ignored.
    """
    model = s["model"]
    x, d = _check_points(model, s["x"], s["d"], ("x", "d"))
    _positive(s["tol"], "tol", optional=True)
    _positive(s["log_every"], "log_every", integer=True)
    distributed = is_distributed() if s["distributed"] is None else s["distributed"]
    refused = {
        "batch_size": s["batch_size"] is not None,
        "momentum": s["momentum"] != 0,
        "validation": s["validation"] is not None,
        "patience": s["patience"] is not None,
        "callback": s["callback"] is not None,
        "check_every": s["check_every"] is not None,
        "progress": bool(s["progress"]),
        "distributed": bool(distributed),
        "chunk_size": s["chunk_size"] is not None,
    }
    for name, given in refused.items():
        if given:
            raise ValueError(
                f"{name}= is not supported with method='lm', which takes whole full-batch steps on this "
                f"process's points; use method='sgd' for it"
            )
    start = time.perf_counter()
    lm = levenberg_marquardt(model, x, d, max_epochs=s["max_epochs"], tol=s["tol"])
    result = TrainResult(
        epochs=lm.epochs,
        converged=lm.stop_reason == "tol",
        stop_reason=lm.stop_reason,
        final_loss=lm.final_loss,
        max_abs_error=lm.max_abs_error,
        loss_history=list(lm.loss_history),
        seconds=time.perf_counter() - start,
    )

    if s["writer"] is not None or s["logdir"] is not None:
        # written after the run, from its history of E: no writer is left open if LM refuses the model
        log = TrainingLog(s["writer"], s["logdir"], log_every=s["log_every"])
        w = log.writer
        for k, E in enumerate(lm.loss_history):
            if log.wants(k) or k == lm.epochs:
                w.add_scalar("train/sse", E, k)
        w.add_scalar("train/max_abs_error", lm.max_abs_error, lm.epochs)
        w.add_scalar("train/mu", lm.mu, lm.epochs)
        for l, W in enumerate(model.weights):
            w.add_histogram(f"weights/W{l}", W.detach().float().cpu(), lm.epochs)
        log.close(
            _hparams(model, method="lm", max_epochs=s["max_epochs"], tol=s["tol"]),
            {"final_loss": lm.final_loss, "max_abs_error": lm.max_abs_error, "epochs": lm.epochs},
        )
    return result


def _train_restarts(s: dict) -> TrainResult:
    """``restarts=k``: :func:`train` from ``k`` starts, the model left with the best one's weights.

    ``s`` holds :func:`train`'s arguments. Start 0 trains the model's weights as they are; start
    ``i ≥ 1`` first redraws them by ``model.reset_parameters`` with ``torch.Generator().manual_seed(s0 + i)``,
    which also shuffles its mini-batches, where ``s0`` is ``generator.initial_seed()`` (or, without a
    generator, one number drawn from torch's global generator). The best start is a converged one
    if any, and among those the lowest ``max_abs_error``.
    """
    model, generator = s["model"], s["generator"]
    if s["writer"] is not None:
        raise ValueError("with restarts, pass logdir= (each start logs to logdir/start<i>), not writer=")
    s0 = generator.initial_seed() if generator is not None else int(torch.randint(2**62, ()).item())
    results: list[TrainResult] = []
    best, best_weights = 0, None
    began = time.perf_counter()
    for i in range(s["restarts"]):
        run = dict(s, restarts=1)
        if i > 0:
            run["generator"] = torch.Generator().manual_seed(s0 + i)
            model.reset_parameters(generator=run["generator"])
        if s["logdir"] is not None:
            run["logdir"] = os.path.join(str(s["logdir"]), f"start{i}")
        results.append(train(**run))
        if best_weights is None or _rank(results[i]) < _rank(results[best]):
            best, best_weights = i, [W.detach().clone() for W in model.weights]
    with torch.no_grad():
        torch._foreach_copy_([W.detach() for W in model.weights], best_weights)
    return dataclasses.replace(
        results[best], restarts=results, start=best, seconds=time.perf_counter() - began
    )


def _rank(result: TrainResult) -> tuple[bool, float]:
    """Smaller is better: converged first, then the lower largest error."""
    return (not result.converged, result.max_abs_error)
