"""What watches a training run: TensorBoard records and a progress bar, attached to the loop as handlers.

A handler sees every epoch after the stop test (``epoch``), every step after it is taken
(``stepped``), and the end of the run (``close``, or ``abandon`` when an exception ends it). The loop
calls them the same way for every solver and never changes its numerical path for them: what they
record is read from what the epoch computed anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.gradient_check import compare_gradients

__all__ = ["EpochState", "Handler", "ProgressBar", "TensorBoard", "TrainingLog"]


@dataclass
class EpochState:
    """What epoch ``epoch`` measured at ``w_k``; ``reason`` is set when the run stops there."""

    epoch: int
    loss: float
    max_abs_error: float
    val_loss: float | None
    reason: str | None
    step: object  # the solvers.Step
    model: object


class Handler:
    """Watches a run; every method is optional."""

    def epoch(self, state: EpochState) -> None:
        pass

    def stepped(self, state: EpochState) -> None:
        pass

    def close(self, state: EpochState, hparams: dict, metrics: dict) -> None:
        pass

    def abandon(self) -> None:
        pass


#: Weight histograms are written at the first and last epoch and every this many logged epochs:
#: they are large next to a scalar and change slowly.
HISTOGRAM_EVERY = 100


class TrainingLog:
    """What :func:`~torch_sigmoid_mlp.train` writes to TensorBoard, through ``SummaryWriter``.

    Tags, with ``step`` the epoch ``k`` and every value taken at the weights ``w_k``:

    - ``train/sse`` (``E``), ``train/max_abs_error`` (``max_t |y^(L)(t) − d_t|``), the solver's own
      scalars (``train/lr`` for ``η``; ``train/mu`` for LM's damping; ``train/gamma``, ``train/alpha``,
      ``train/beta`` for Bayesian regularisation), and ``train/grad_norm/W{l}`` (``‖∂E/∂W^(l)‖``, the
      gradient the epoch stepped along, where the solver forms one) — every ``log_every`` epochs and
      at the last one;
    - ``val/sse`` when validating;
    - ``check/max_rel_diff``: manual against autograd gradients, from
      :func:`~torch_sigmoid_mlp.compare_gradients`;
    - ``weights/W{l}`` histograms at the first and last epoch and every ``HISTOGRAM_EVERY`` logs;
    - at the end, the hyper-parameters with ``hparam/final_loss``, ``hparam/max_abs_error`` and
      ``hparam/epochs``, in the same log directory.

    Args:
        writer: the caller's ``SummaryWriter``, left open; or ``None`` with ``logdir``.
        logdir: a directory for a writer this log opens and :meth:`close` closes.
        log_every: epochs between scalar records.
    """

    def __init__(self, writer=None, logdir: str | None = None, *, log_every: int = 1) -> None:
        if writer is not None and logdir is not None:
            raise ValueError("pass either writer= or logdir=, not both")
        if writer is None and logdir is None:
            raise ValueError("pass writer= (a SummaryWriter) or logdir= (a directory to log to)")
        self._owns_writer = writer is None
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(logdir))
        self.writer = writer
        self.log_every = log_every
        self._logged = 0

    def wants(self, epoch: int) -> bool:
        """Whether ``epoch`` is one of every ``log_every``-th epoch (the caller records the last one too)."""
        return epoch % self.log_every == 0

    def epoch(
        self,
        epoch: int,
        sse: float,
        max_abs_error: float,
        metrics: dict[str, float],
        weights: Sequence[Tensor],
        val_sse: float | None = None,
        last: bool = False,
    ) -> None:
        """Record epoch ``epoch``: ``E``, the largest error, the solver's ``metrics`` (``train/<name>``)."""
        w = self.writer
        w.add_scalar("train/sse", sse, epoch)
        w.add_scalar("train/max_abs_error", max_abs_error, epoch)
        for name, value in metrics.items():
            w.add_scalar(f"train/{name}", value, epoch)
        if val_sse is not None:
            w.add_scalar("val/sse", val_sse, epoch)
        if last or self._logged % HISTOGRAM_EVERY == 0:
            for l, W in enumerate(weights):
                w.add_histogram(f"weights/W{l}", W.detach().float().cpu(), epoch)
        self._logged += 1

    def gradients(self, epoch: int, grads: Sequence[Tensor]) -> None:
        """Record ``train/grad_norm/W{l}``, the norms of the gradient epoch ``epoch`` stepped along."""
        norms = torch.stack([torch.linalg.vector_norm(g) for g in grads]).tolist()
        for l, norm in enumerate(norms):
            self.writer.add_scalar(f"train/grad_norm/W{l}", norm, epoch)

    def check(self, epoch: int, max_rel_diff: float) -> None:
        """Record ``check/max_rel_diff``, the largest relative gap of manual from autograd ``∂E/∂W^(l)``."""
        self.writer.add_scalar("check/max_rel_diff", max_rel_diff, epoch)

    def close(self, hparams: dict, metrics: dict) -> None:
        """Write the hyper-parameters with the final metrics; close the writer if this log opened it.

        ``hparams`` values must be ``int``, ``float``, ``str`` or ``bool`` (TensorBoard's types).
        """
        metrics = {f"hparam/{name}": value for name, value in metrics.items()}
        # run_name="." keeps the hparams record in the run's own directory instead of a timestamped
        # sub-run, so TensorBoard shows one run with its curves and its hyper-parameters together.
        self.writer.add_hparams(hparams, metrics, run_name=".")
        self.writer.flush()
        if self._owns_writer:
            self.writer.close()

    def abandon(self) -> None:
        """Close an owned writer without the hyper-parameter record (the run was interrupted)."""
        if self._owns_writer:
            self.writer.close()


class TensorBoard(Handler):
    """Writes :class:`TrainingLog`'s records every ``log_every`` epochs
    and at the last.

    With ``check_every=K`` it also logs ``check/max_rel_diff`` (manual against autograd ``∂E/∂W^(l)``
    on the training points ``x``, ``d``) every ``K`` epochs.
    """

    def __init__(self, writer, logdir, *, log_every: int, check_every: int | None, points) -> None:
        self.log = TrainingLog(writer, logdir, log_every=log_every)
        self.check_every, self.points = check_every, points
        self._logged = False

    def epoch(self, s: EpochState) -> None:
        self._logged = self.log.wants(s.epoch) or s.reason is not None
        s.step.keep_gradients = self._logged  # the step forms ∂E/∂W^(l) for the epochs that record it
        if self._logged:
            last = s.reason is not None
            self.log.epoch(
                s.epoch, s.loss, s.max_abs_error, s.step.metrics(), s.model.weights, s.val_loss, last
            )
        if self.check_every is not None and s.epoch % self.check_every == 0:
            self.log.check(s.epoch, compare_gradients(s.model, *self.points).max_rel)

    def stepped(self, s: EpochState) -> None:
        if self._logged:
            grads: list[Tensor] | None = s.step.gradients()
            if grads is not None:
                self.log.gradients(s.epoch, grads)

    def close(self, s: EpochState, hparams: dict, metrics: dict) -> None:
        if not self._logged:  # a solver's own stop came after the epoch was seen: record it as the last
            self.log.epoch(
                s.epoch, s.loss, s.max_abs_error, s.step.metrics(), s.model.weights, s.val_loss, True
            )
        self.log.close(hparams, metrics)

    def abandon(self) -> None:
        self.log.abandon()


class ProgressBar(Handler):
    """A ``tqdm`` bar over the epochs, showing ``E`` and the largest error."""

    def __init__(self, total: int, initial: int = 0) -> None:
        try:
            from tqdm import tqdm
        except ImportError as exc:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from exc
        self.bar = tqdm(total=total, initial=initial, unit="epoch", leave=False)

    def epoch(self, s: EpochState) -> None:
        self.bar.set_postfix(E=f"{s.loss:.4g}", max_err=f"{s.max_abs_error:.3g}", refresh=False)
        if s.reason is None:
            self.bar.update()

    def close(self, s: EpochState, hparams: dict, metrics: dict) -> None:
        self.bar.close()

    def abandon(self) -> None:
        self.bar.close()
