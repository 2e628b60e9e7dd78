"""What watches a training run: TensorBoard records and a progress bar, attached to the loop as handlers.

A handler sees every epoch after the stop test (``epoch``), every step after it is taken
(``stepped``), and the end of the run (``close``, or ``abandon`` when an exception ends it). The loop
calls them the same way for every solver and never changes its numerical path for them: what they
record is read from what the epoch computed anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .gradients import compare_gradients
from .tracking import TrainingLog

__all__ = ["EpochState", "Handler", "ProgressBar", "TensorBoard"]


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


class TensorBoard(Handler):
    """Writes :class:`~torch_sigmoid_mlp.tracking.TrainingLog`'s records every ``log_every`` epochs
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
