"""Steepest descent on ``E`` until the error is below ``tol`` at every test point (SPEC.md)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .functional import sse_loss
from .gradients import compare_gradients
from .module import SigmoidMLP
from .tracking import TrainingLog

__all__ = ["STOP_REASONS", "TrainResult", "train"]

#: Why :func:`train` stopped, in the order it tests them at the start of an epoch.
STOP_REASONS = ("diverged", "tol", "early_stopping", "max_epochs", "callback")


@dataclass
class TrainResult:
    """What :func:`train` did and where it left the weights.

    Attributes:
        epochs: weight updates taken (epochs run to the end).
        converged: ``stop_reason == "tol"``: ``|y^(L)(t) − d_t| < tol`` at every test point.
        stop_reason: one of ``"tol"``, ``"max_epochs"``, ``"callback"``, ``"diverged"``,
            ``"early_stopping"``.
        final_loss: ``E`` at the returned weights.
        max_abs_error: ``max_t |y^(L)(t) − d_t|`` at the returned weights.
        loss_history: ``loss_history[k]`` is ``E`` at the start of epoch ``k`` (all points), for
            ``k = 0..epochs``; the last entry is at the weights the run ended on (which are the
            returned ones unless it ``"diverged"`` or stopped early and restored others).
        val_history: the validation SSE at the start of each epoch; empty without validation.
        seconds: wall-clock time of the run.
    """

    epochs: int
    converged: bool
    stop_reason: str
    final_loss: float
    max_abs_error: float
    loss_history: list[float] = field(default_factory=list)
    val_history: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _check_points(model: SigmoidMLP, x, d, names: tuple[str, str]) -> tuple[Tensor, Tensor]:
    """``x`` as ``(T, n)`` and ``d`` as ``(T, m)`` on the model's device and dtype, or a clear error."""
    W0 = model.weights[0]
    for value, name in zip((x, d), names):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dtype != W0.dtype:
            raise TypeError(f"{name} has dtype {value.dtype} but the model's weights are {W0.dtype}")
        if value.device != W0.device:
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
    """``W ← W − η·g``; with momentum ``μ``, ``b ← μ·b + g`` then ``W ← W − η·b`` (torch.optim.SGD's form).

    Each line is one in-place ``foreach`` call over all layers, so an interrupt (Ctrl-C) lands
    between whole updates, never inside one.
    """
    with torch.no_grad():
        if momentum:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
            grads = buffers
        torch._foreach_add_(weights, grads, alpha=-lr)


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
    lr: float,
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
    backpropagation). Stopping rules, tested in this order at the start of each epoch:

    - ``"diverged"``: ``E(w_k)`` or a weight is not finite (only an update that overflows
      gets there: ``E`` is bounded by ``T·m/2``; a too large ``η`` more often saturates the
      sigmoids, which stalls instead); ``w_{k−1}``, the last finite weights, are restored;
    - ``"tol"``: ``|y^(L)(t) − d_t| < tol`` for every test point and output;
    - ``"early_stopping"``: the validation SSE has not improved for ``patience`` epochs; the
      weights of its best epoch are restored;
    - ``"max_epochs"``: ``max_epochs`` updates have been taken;
    - ``"callback"``: ``callback(k, result)`` returned ``False`` (``result`` is the run so far;
      its lists are the live ones, copy them to keep them).

    Per epoch the host reads back one small tensor (``E``, the largest error, the largest
    ``|w|`` per layer and the validation SSE together): the stopping test needs it, and nothing
    else in the loop waits for the device.
    A ``KeyboardInterrupt`` (Ctrl-C) is not caught: it propagates with the weights as the last
    whole update left them (an update is never half applied) and a ``logdir`` writer closed, so
    a caller can catch it and save the model.

    Args:
        model: the :class:`~torch_sigmoid_mlp.SigmoidMLP` to train in place.
        x: test points, ``(T, n)``, on the model's device and dtype.
        d: targets ``(T, m)`` (or ``(T,)`` when ``m = 1``) strictly inside ``(0, 1)``.
        lr: ``η > 0``. ``E`` sums over points, so its gradient grows with ``T`` (or the batch size):
            ``η ∝ 1/T`` keeps the step size independent of the number of points.
        max_epochs: the most updates to take.
        tol: the uniform bound ``ε`` on the error, in the units of ``d``; ``None`` never stops on it.
        batch_size: ``None`` for full batch, else points per step.
        momentum: ``μ ∈ [0, 1)``; ``0`` is plain steepest descent.
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
    """
    if not isinstance(model, SigmoidMLP):
        raise TypeError(f"model must be a SigmoidMLP, got {type(model).__name__}")
    x, d = _check_points(model, x, d, ("x", "d"))
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
        x_val, d_val = _check_points(model, *validation, ("x_val", "d_val"))
    elif patience is not None:
        raise ValueError("patience needs validation=(x_val, d_val) to watch")
    if check_every is not None and writer is None and logdir is None:
        raise ValueError("check_every logs to TensorBoard: pass writer= or logdir= as well")
    if progress:
        try:
            from tqdm import tqdm
        except ImportError as exc:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from exc

    # -- state of the run ------------------------------------------------------------------------
    weights = list(model.weights)
    plain = [W.detach() for W in weights]  # the same storage, outside autograd
    full_batch = batch_size is None
    T = x.shape[0]
    buffers = [torch.zeros_like(W) for W in weights] if momentum else None

    def step(ws, grads):
        _descend(ws, grads, lr, momentum, buffers)

    last_finite = [W.clone() for W in plain]  # w_{k−1}, restored if w_k or E(w_k) is not finite
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
            # forward on all points at w_k (keeping the graph for a full-batch backward)
            with torch.set_grad_enabled(full_batch):
                y = model(x)  # y^(L), (T, m)
                E = sse_loss(y, d)
            max_err = (y.detach() - d).abs().amax()  # max_t |y^(L)(t) − d_t|
            # An overflowing update leaves ±inf in W; the sigmoid can still map that to a finite E,
            # so the largest |w| of each layer is read along with E.
            readings = [E.detach(), max_err, *torch._foreach_norm(plain, math.inf)]
            if validation is not None:
                with torch.no_grad():
                    readings.append(sse_loss(model(x_val), d_val))
            E_k, max_k, *rest = torch.stack(readings).tolist()  # the one host sync of the epoch
            w_max, val = rest[: len(weights)], rest[len(weights) :]
            result.loss_history.append(E_k)
            result.val_history += val
            if val and val[0] < best_val:
                best_val, best_epoch = val[0], epoch
                torch._foreach_copy_(best_weights, plain)

            # stop?
            reason = None
            if not math.isfinite(E_k) or not all(map(math.isfinite, w_max)):
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
                if callback(epoch, result) is False:
                    reason = "callback"

            # backward and update: w_{k+1} = w_k − η·∇E
            grads = None
            if reason is None:
                torch._foreach_copy_(last_finite, plain)
                if full_batch:
                    grads = torch.autograd.grad(E, weights)  # ∂E/∂W^(l), by the model's backend
                    step(weights, grads)
                else:
                    if shuffle:
                        order = torch.randperm(T, generator=generator, device=_device_of(generator))
                        order = order.to(x.device)  # (T,)
                    else:
                        order = torch.arange(T, device=x.device)  # (T,)
                    wants = log is not None and log.wants(epoch)
                    grads = _mini_batch_epoch(model, x, d, order, batch_size, step, wants)

            # log
            if log is not None and (log.wants(epoch) or reason is not None):
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

    # -- the weights to return, and what they score -------------------------------------------------
    result.epochs, result.stop_reason, result.converged = epoch, reason, reason == "tol"
    result.final_loss, result.max_abs_error = E_k, max_k
    restore = {"diverged": last_finite, "early_stopping": best_weights}.get(reason)
    if restore is not None:
        with torch.no_grad():
            torch._foreach_copy_(weights, restore)
            y = model(x)
            result.final_loss = sse_loss(y, d).item()
            result.max_abs_error = (y - d).abs().max().item()
    result.seconds = time.perf_counter() - start
    if log is not None:
        log.close(
            _hparams(model, lr, max_epochs, tol, batch_size, momentum, patience),
            {"final_loss": result.final_loss, "max_abs_error": result.max_abs_error, "epochs": epoch},
        )
    return result


def _device_of(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def _hparams(model, lr, max_epochs, tol, batch_size, momentum, patience) -> dict:
    """The run's settings as TensorBoard hparams (``None`` has no hparam type: written as a word)."""
    return {
        "lr": lr,
        "max_epochs": max_epochs,
        "tol": "none" if tol is None else tol,
        "batch_size": "full" if batch_size is None else batch_size,
        "momentum": momentum,
        "patience": "none" if patience is None else patience,
        "sizes": "-".join(map(str, model.sizes)),
        "backend": model.backend,
    }
