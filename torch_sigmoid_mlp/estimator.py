"""``SigmoidMLPRegressor``: fit a function from test points and measurements, in the units of the data."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .data import atomic_path
from .distributed import default_device, is_distributed, shard
from .module import SigmoidMLP
from .scaling import MinMaxScaler
from .solvers import METHODS, choose_method
from .training import TrainResult, train

__all__ = ["LR_CONSTANT", "MAX_EPOCHS", "PATIENCE", "SOLVERS", "SigmoidMLPRegressor"]

#: ``lr=None`` with steepest descent (``"sgd"``, and the first ``η`` of ``"adaptive"``) uses
#: ``η = LR_CONSTANT / T`` (full batch) or ``LR_CONSTANT / batch_size``. ``E`` sums over points, so
#: its gradient — and the step ``η·∇E`` — grows with the number of points in it; dividing by that
#: number keeps the step per point fixed (``benchmarks/results/`` has the measurements behind 16).
LR_CONSTANT = 16.0

#: What ``solver=`` accepts: the solvers of :func:`~torch_sigmoid_mlp.train` and ``"auto"``.
SOLVERS = (*METHODS, "auto")

#: ``max_epochs=None`` runs at most this many epochs of the solver chosen. An epoch of LM or BR
#: solves a ``P×P`` system and reaches a bound in tens of epochs; L-BFGS needs hundreds; steepest
#: descent, RPROP and Adam take one short step an epoch and need tens of thousands.
MAX_EPOCHS = {
    "sgd": 100_000,
    "adaptive": 100_000,
    "rprop": 20_000,
    "adam": 20_000,
    "lbfgs": 5_000,
    "lm": 1_000,
    "br": 1_000,
}

#: ``n_iter_no_change=None`` stops early after this many epochs without a better validation SSE.
#: Sized to what an epoch of the solver does: LM's step is a whole Gauss–Newton solve, and six
#: failures in a row are MATLAB's ``trainlm`` default; a steepest-descent epoch moves the weights
#: by ``η·∇E`` only, and the validation error can wander for hundreds of epochs before it falls.
PATIENCE = {"sgd": 2_000, "adaptive": 1_000, "rprop": 500, "adam": 500, "lbfgs": 50, "lm": 6, "br": 6}

#: ``hidden=None``: two hidden layers of ``max(DEFAULT_WIDTH, n)`` neurons. Without biases every
#: first-layer neuron is ``σ(w·x)``, bent where ``w·x = 0``; it takes several neurons per layer, whose
#: weighted sums can cross zero anywhere, to bend a curve inside the data's range (SPEC.md's
#: ``n → n → n → 1`` cannot for ``n = 1``).
DEFAULT_WIDTH = 8

#: About how many TensorBoard records a run with ``logdir`` writes (see ``SigmoidMLPRegressor``).
LOG_RECORDS = 1000

#: Inputs are scaled into the same range as the default targets: signals of about 0.5 are what
#: ``SigmoidMLP.reset_parameters`` sizes its initial weights for.
INPUT_RANGE = (0.1, 0.9)

#: ``callback(k, result)`` of :meth:`SigmoidMLPRegressor.fit`; ``False`` stops the run.
Callback = Callable[[int, TrainResult], bool | None]

#: Written by :meth:`SigmoidMLPRegressor.save`; ``/2`` added ``warm_start`` and the batch-order
#: generator's state. ``/1`` files still load (and resume, on full batches: they draw no order).
_FORMAT = "torch-sigmoid-mlp/regressor/2"
_READABLE = ("torch-sigmoid-mlp/regressor/1", _FORMAT)
_DTYPES = {
    str(t).removeprefix("torch."): t for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


class SigmoidMLPRegressor:
    r"""Fit ``F(x; w) ≈ f`` at the test points, scikit-learn style, by the solver the problem calls for.

    .. code-block:: text

        x' = scale_x(x),  d' = scale_y(y)                       min–max, into (0.1, 0.9) and target_range
        w  = argmin  1/2 · Σ_t ‖d'_t − F(x'_t; w)‖²            until max_t |ŷ(t) − y_t| < tol
        ŷ  = scale_y⁻¹(F(scale_x(x); w))

    Inputs and targets are scaled column by column (:class:`~torch_sigmoid_mlp.MinMaxScaler`),
    a :class:`~torch_sigmoid_mlp.SigmoidMLP` is built and trained by
    :func:`~torch_sigmoid_mlp.train`, and predictions are mapped back to the units of ``y``.
    Does not depend on scikit-learn, but follows its conventions (``fit`` returns ``self``,
    fitted attributes end in ``_``, ``get_params``/``set_params``), so its tools accept it.

    Args:
        hidden: hidden layer widths; ``None`` is two layers of ``max(8, n)``
            (:data:`DEFAULT_WIDTH`).
        lr: ``η`` for ``"sgd"`` and ``"adaptive"`` (``None``: ``LR_CONSTANT / T`` for full batch,
            ``T`` the number of training points, and ``LR_CONSTANT / batch_size`` for mini-batches);
            the optimizer's ``lr`` for ``"rprop"``, ``"adam"``, ``"lbfgs"`` (``None``: theirs in
            :func:`~torch_sigmoid_mlp.train`); unused by ``"lm"`` and ``"br"``.
        max_epochs: the most epochs of :func:`~torch_sigmoid_mlp.train`; ``None`` is
            :data:`MAX_EPOCHS` of the solver that runs.
        tol: the uniform bound ``ε`` in the units of ``y``: training stops once every prediction
            is within ``tol`` of its measurement. It is converted per output column through that
            column's scale; with several outputs the tightest conversion is used.
        batch_size, momentum: as in :func:`~torch_sigmoid_mlp.train`.
        target_range: ``(a, b)`` with ``0 < a < b < 1``, where the targets are scaled to.
        validation_fraction: hold out this share of the points (drawn with ``seed``) and stop
            when their SSE has not improved for ``n_iter_no_change`` epochs, keeping the best
            weights; ``None`` fits all points.
        n_iter_no_change: the patience of that early stopping; ``None`` is :data:`PATIENCE` of the
            solver that runs.
        device: ``"auto"`` (CUDA when available, else CPU) or a device.
        dtype: of the weights and the scaled data.
        seed: seeds the initial weights, the hold-out split and the batch order.
        logdir: a TensorBoard log directory for the training run. It gets a record every
            ``max(1, max_epochs // LOG_RECORDS)`` epochs: writing every epoch would cost more than
            the epoch itself on a small network.
        progress: show a progress bar.
        solver: one of :data:`SOLVERS`: ``"auto"`` (default) chooses by
            :func:`~torch_sigmoid_mlp.choose_method` from the number of weights, of errors, and
            whether a ``tol`` or held-out points are asked for — Levenberg–Marquardt to a bound,
            Bayesian regularisation without one, L-BFGS for large networks, steepest descent with
            ``batch_size``; ``result_.method`` says which ran. Or a name of
            :func:`~torch_sigmoid_mlp.train`'s ``method``: ``"sgd"``, ``"adaptive"``, ``"rprop"``,
            ``"adam"``, ``"lbfgs"``, ``"lm"``, ``"br"``.
        restarts: train from this many starts and keep the best (converged first, then the
            lowest largest error); start ``i ≥ 1`` draws its initial weights with seed
            ``seed + i``, as ``seed=seed + i`` would. ``result_.restarts`` holds every start's
            result.
        warm_start: ``fit`` on a fitted estimator goes on with its run (see "Continuing a run")
            instead of starting afresh.

    Continuing a run:
        With ``warm_start=True``, ``fit`` on a fitted (or :meth:`load`\ ed) estimator keeps its
        scalers and network and trains on until the run has taken ``max_epochs`` epochs *in all*,
        counting those of the earlier ``fit`` calls (as ``n_estimators`` counts trees in
        scikit-learn's ensembles). The mini-batch order is drawn on from where the run left it
        (:meth:`save` keeps the generator's state), so a run stopped at epoch ``k`` — by
        ``max_epochs``, a ``callback`` or a crash after a checkpoint — and continued takes the
        same steps, to the bit, as one that was never stopped, and ``result_`` describes the
        whole run: the solver's state (momentum's velocity, LM's damping ``μ``, BR's ``α, β``, an
        optimizer's moments) is kept in ``result_.solver_state``. ``validation_fraction`` is
        refused, since early stopping's record of the best epoch is not kept. ``hidden``,
        ``dtype`` and ``seed`` are those the run began with; the data must have the same
        columns, and targets within the range the scalers were fitted to.

    Attributes:
        model_: the trained :class:`~torch_sigmoid_mlp.SigmoidMLP`.
        x_scaler_, y_scaler_: the fitted :class:`~torch_sigmoid_mlp.MinMaxScaler`\ s.
        result_: the :class:`~torch_sigmoid_mlp.TrainResult` of the run: of the last ``fit`` or
            ``partial_fit``, with the earlier parts of a continued run (``warm_start``) included.
        n_features_in_: ``n``.

    Example::

        >>> import numpy as np
        >>> X = np.linspace(0.0, 2.0, 40).reshape(-1, 1)
        >>> y = 3.0 + 2.0 * np.tanh(X[:, 0])
        >>> reg = SigmoidMLPRegressor(hidden=(4,), tol=0.1, device="cpu").fit(X, y)
        >>> reg.result_.method, reg.result_.stop_reason, bool(np.abs(reg.predict(X) - y).max() < 0.1)
        ('lm', 'tol', True)

    A run of 30 mini-batch epochs, stopped after 10 and continued, ends where one of 30 does::

        >>> whole = SigmoidMLPRegressor(hidden=(4,), batch_size=8, max_epochs=30, device="cpu").fit(X, y)
        >>> part = SigmoidMLPRegressor(hidden=(4,), batch_size=8, max_epochs=10, device="cpu").fit(X, y)
        >>> _ = part.set_params(max_epochs=30, warm_start=True).fit(X, y)
        >>> part.result_.epochs, part.result_.loss_history == whole.result_.loss_history
        (30, True)
    """

    def __init__(
        self,
        hidden=None,
        *,
        lr: float | None = None,
        max_epochs: int | None = None,
        tol: float | None = None,
        batch_size: int | None = None,
        momentum: float = 0.0,
        target_range: tuple[float, float] = (0.1, 0.9),
        validation_fraction: float | None = None,
        n_iter_no_change: int | None = None,
        device="auto",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        logdir: str | None = None,
        progress: bool = False,
        solver: str = "auto",
        restarts: int = 1,
        warm_start: bool = False,
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.max_epochs = max_epochs
        self.tol = tol
        self.batch_size = batch_size
        self.momentum = momentum
        self.target_range = target_range
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.dtype = dtype
        self.seed = seed
        self.logdir = logdir
        self.progress = progress
        self.solver = solver
        self.restarts = restarts
        self.warm_start = warm_start

    # -- scikit-learn's protocol -------------------------------------------------------------------

    _PARAMS = (
        "hidden", "lr", "max_epochs", "tol", "batch_size", "momentum", "target_range",
        "validation_fraction", "n_iter_no_change", "device", "dtype", "seed", "logdir", "progress",
        "solver", "restarts", "warm_start",
    )  # fmt: skip

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments by name (scikit-learn's ``clone`` and searches use them).

        ``deep`` is in scikit-learn's signature; with no nested estimators it changes nothing.
        """
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params) -> SigmoidMLPRegressor:
        """Change constructor arguments by name; an unknown name is a ``ValueError``. Returns ``self``."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"unknown parameter {name!r}; valid ones are {list(self._PARAMS)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- fitting -----------------------------------------------------------------------------------

    def fit(self, X, y, *, callback: Callback | None = None, writer=None) -> SigmoidMLPRegressor:
        """Scale ``X`` (``(T, n)``) and ``y`` (``(T,)`` or ``(T, m)``), build a network, train it.

        With ``warm_start`` and a fitted estimator, train on instead (see "Continuing a run").

        In a ``torch.distributed`` process group (under ``torchrun``, say) call ``fit`` on every rank
        with all the data: each rank trains on its own shard of the points, full batch, and every
        rank ends with the same model (:func:`~torch_sigmoid_mlp.train`'s "Data parallel").

        Args:
            X, y: the test points and their measurements.
            callback: called as ``callback(k, result)`` before each epoch ``k`` that the run
                takes (:func:`~torch_sigmoid_mlp.train`'s callback), with ``k`` counted from the
                start of the run and ``result`` the run so far; returning ``False`` stops the run
                there (``stop_reason == "callback"``). During the call ``result_`` is ``result``,
                the record of a run stopped at ``k``, so :meth:`save` there writes a checkpoint
                that ``warm_start`` continues exactly.
            writer: a ``SummaryWriter`` to log the run to, left open (instead of ``logdir``);
                a continued run's steps go on from the epochs it had taken.
        """
        if self.warm_start and hasattr(self, "model_"):
            return self._continue(X, y, callback, writer)
        X, Y = self._check_xy(X, y)
        self._check_settings()
        device = self._resolve_device()
        lo, hi = self.target_range
        self.x_scaler_ = MinMaxScaler(INPUT_RANGE).fit(X)
        self.y_scaler_ = MinMaxScaler((lo, hi)).fit(Y)
        self._y_1d = np.ndim(y) == 1 if not isinstance(y, Tensor) else y.dim() == 1
        self.n_features_in_ = X.shape[1]
        # one generator draws, in this order: the initial weights, the validation split, the batch
        # orders; it is the run's state that save() keeps for warm_start
        self._generator = torch.Generator().manual_seed(self.seed)
        hidden = self.hidden if self.hidden is not None else (max(DEFAULT_WIDTH, X.shape[1]),) * 2
        self.model_ = SigmoidMLP(
            X.shape[1], hidden, Y.shape[1], device=device, dtype=self.dtype, generator=self._generator
        )
        self.result_ = self._train(X, Y, restarts=self.restarts, callback=callback, writer=writer)
        return self

    def partial_fit(self, X, y, *, callback: Callback | None = None, writer=None) -> SigmoidMLPRegressor:
        """Train the fitted network further on ``(X, y)`` (up to ``max_epochs`` more epochs).

        New test points are welcome: ``E`` is a sum over points, so the network keeps its shape.
        The scalers from the first fit are kept, so targets must lie within the range that fit
        saw (outside it they would map outside ``(0, 1)``). Without a previous fit this is ``fit``.
        Momentum restarts from zero, and so does LM's damping ``μ``; ``restarts`` is not used here
        (one start: the fitted weights). ``result_`` is this call's run, and its batch orders
        are drawn afresh from ``seed``; ``warm_start`` continues it. ``callback`` and ``writer``
        are as in :meth:`fit`.
        """
        if not hasattr(self, "model_"):
            return self.fit(X, y, callback=callback, writer=writer)
        X, Y = self._check_more_data(X, y)
        self._generator = torch.Generator().manual_seed(self.seed)
        # one start: the fitted weights go on, where a restart would throw them away
        self.result_ = self._train(X, Y, restarts=1, callback=callback, writer=writer)
        return self

    def _continue(self, X, y, callback, writer) -> SigmoidMLPRegressor:
        """``fit`` with ``warm_start``: the run goes on to ``max_epochs`` epochs in all."""
        X, Y = self._check_more_data(X, y)
        if self.validation_fraction:
            raise ValueError(
                "warm_start continues a run exactly, and early stopping's record of the best epoch "
                "is not kept: set validation_fraction=None, or fit again"
            )
        if getattr(self, "_generator", None) is None:
            if self.batch_size is not None:
                raise ValueError(
                    "this model was saved without its mini-batch order (an older file format), so "
                    "warm_start cannot continue its run as it would have gone on: fit again"
                )
            self._generator = torch.Generator().manual_seed(self.seed)  # full batch draws nothing
        self.result_ = self._train(X, Y, restarts=1, callback=callback, writer=writer, before=self.result_)
        return self

    def _train(
        self, X: Tensor, Y: Tensor, *, restarts: int, callback, writer, before: TrainResult | None = None
    ) -> TrainResult:
        """Train ``model_`` on the scaled data; ``before`` is the run this goes on with (``warm_start``)."""
        generator = self._generator
        W0 = self.model_.weights[0]
        x = self.x_scaler_.transform(X).to(device=W0.device, dtype=W0.dtype)  # (T, n)
        d = self.y_scaler_.transform(Y).to(device=W0.device, dtype=W0.dtype)  # (T, m)
        validation = None
        if self.validation_fraction:
            T = x.shape[0]
            n_val = round(T * self.validation_fraction)
            if not 1 <= n_val < T:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} of {T} points leaves "
                    f"{n_val} for validation and {T - n_val} for training; both need at least one"
                )
            order = torch.randperm(T, generator=generator).to(x.device)
            val, fit = order[:n_val], order[n_val:]
            validation = (x[val], d[val])
            x, d = x[fit], d[fit]
        method = self._method(x.shape[0] * d.shape[1], validation is not None, before)
        lr = self.effective_lr(x.shape[0], method)
        max_epochs = self.max_epochs if self.max_epochs is not None else MAX_EPOCHS[method]
        patience = self.n_iter_no_change if self.n_iter_no_change is not None else PATIENCE[method]
        if is_distributed():
            # Every rank was given all the points (and drew the same split): each trains on its own
            # contiguous shard, and train sums the gradients over ranks.
            x, d = shard(x), shard(d)
            if validation is not None:
                validation = (shard(validation[0]), shard(validation[1]))
        if writer is not None and self.logdir is not None:
            raise ValueError(f"writer= is given and so is logdir={self.logdir!r}: log to one of them")

        on_epoch = None
        if callback is not None:

            def on_epoch(epoch: int, result: TrainResult):
                # the record of a run stopped here, which save() can write as a checkpoint; the lists
                # are the run's own, shared and not copied, so an epoch costs the same at any length
                self.result_ = dataclasses.replace(result, stop_reason="callback", converged=False)
                return callback(epoch, self.result_)

        return train(
            self.model_,
            x,
            d,
            lr=lr,
            max_epochs=max_epochs if before is None else max(max_epochs, before.epochs),
            tol=self._scaled_tol(),
            batch_size=self.batch_size,
            momentum=self.momentum,
            generator=generator,
            validation=validation,
            patience=patience if validation is not None else None,
            writer=writer,
            logdir=self.logdir,
            log_every=max(1, max_epochs // LOG_RECORDS),
            callback=on_epoch,
            progress=self.progress,
            method=method,
            restarts=restarts,
            resume=before,
        )

    def _method(self, N: int, validation: bool, before: TrainResult | None) -> str:
        """The solver that runs: ``solver``, or the one ``"auto"`` chose (kept by a continued run)."""
        if self.solver != "auto":
            return self.solver
        if before is not None:
            return before.method
        if self.momentum:
            return "sgd"
        P = sum(W.numel() for W in self.model_.weights)
        return choose_method(
            P, N, tol=self.tol is not None, validation=validation, batch_size=self.batch_size
        )

    def effective_lr(self, n_points: int, method: str | None = None) -> float | None:
        """The ``lr`` that ``fit`` passes to :func:`~torch_sigmoid_mlp.train` on ``n_points`` points.

        ``method`` is the solver that runs (default: ``solver``; after a fit, the one that ran).
        Steepest descent (``"sgd"``, ``"adaptive"``) steps with ``lr`` if set, else
        ``LR_CONSTANT / min(batch_size or T, T)`` with ``T = n_points`` (the points left after
        ``validation_fraction`` holds some out; under ``torchrun``, those of all ranks together);
        every other solver gets ``lr`` as it is, ``None`` included.

        Example::

            >>> sgd = SigmoidMLPRegressor(solver="sgd")
            >>> sgd.effective_lr(50), sgd.set_params(batch_size=8).effective_lr(50)
            (0.32, 2.0)
        """
        if method is None:
            method = self.result_.method if hasattr(self, "result_") else self.solver
        if method not in ("sgd", "adaptive") or self.lr is not None:
            return self.lr
        return LR_CONSTANT / min(self.batch_size or n_points, n_points)

    def _scaled_tol(self) -> float | None:
        """``tol`` in the units of the scaled targets: ``|Δd'| = s·|Δy|`` with ``s`` the column's scale."""
        if self.tol is None:
            return None
        lo, hi = self.target_range
        span = (self.y_scaler_.data_max_ - self.y_scaler_.data_min_).double().reshape(-1)
        span = span[span > 0]
        # A constant column is reproduced exactly by inverse_transform, whatever the network says.
        s = (hi - lo) / span.max().item() if span.numel() else 1.0
        return self.tol * s

    # -- prediction --------------------------------------------------------------------------------

    def predict(self, X):
        """Predictions in the units of ``y``, of ``X``'s kind: numpy in, numpy out; tensor in, tensor out.

        A list gives a numpy array. The dtype is ``X``'s if floating, else float64; ``(T,)`` when
        ``fit`` got a 1-D ``y``, else ``(T, m)``.
        """
        self._check_fitted()
        X_t = self._as_tensor(X, "X")
        if X_t.dim() != 2 or X_t.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have shape (T, {self.n_features_in_}) like the data the model was fitted on, "
                f"got {tuple(X_t.shape)}"
            )
        if not bool(torch.isfinite(X_t).all()):
            raise ValueError("X contains NaN or infinite values")
        W0 = self.model_.weights[0]
        with torch.no_grad():
            x = self.x_scaler_.transform(X_t).to(device=W0.device, dtype=W0.dtype)  # (T, n)
            y = self.y_scaler_.inverse_transform(self.model_(x).to(torch.float64).cpu())  # (T, m)
        if self._y_1d:
            y = y[:, 0]
        if isinstance(X, Tensor):
            return y.to(device=X.device, dtype=X.dtype if X.is_floating_point() else torch.float64)
        dtype = X.dtype if isinstance(X, np.ndarray) and X.dtype.kind == "f" else np.float64
        return y.numpy().astype(dtype, copy=False)

    def score(self, X, y) -> float:
        """``R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²``, averaged over the output columns (scikit-learn's default).

        A constant column scores 1 if predicted exactly, else 0.
        """
        Y = self._as_tensor(y, "y").reshape(len(y), -1)
        P = self._as_tensor(self.predict(X), "prediction").reshape(len(y), -1)
        if Y.shape != P.shape:
            raise ValueError(f"y has shape {tuple(Y.shape)} but the predictions have {tuple(P.shape)}")
        residual = ((Y - P) ** 2).sum(dim=0)  # (m,)
        total = ((Y - Y.mean(dim=0)) ** 2).sum(dim=0)  # (m,)
        exact = (residual == 0).double()
        r2 = torch.where(total > 0, 1 - residual / total.clamp_min(1e-300), exact)
        return r2.mean().item()

    # -- saving ------------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write weights, scalers, settings, the run's result and its batch order to one file, atomically.

        With ``warm_start``, the loaded estimator's ``fit`` continues the run where it was saved
        (the state of the generator that draws the mini-batch orders is kept). The file is
        written next to ``path`` under a temporary name and renamed over it, so a crash never
        leaves a half-written model at ``path``. It holds only tensors and plain Python values,
        which :meth:`load` reads with ``torch.load(weights_only=True)``.
        """
        self._check_fitted()
        params = self.get_params()
        params["dtype"] = str(self.dtype).removeprefix("torch.")
        params["device"] = str(self.device)
        params["hidden"] = None if self.hidden is None else [int(h) for h in self.hidden]
        params["target_range"] = [float(v) for v in self.target_range]
        params["warm_start"] = bool(self.warm_start)
        generator = getattr(self, "_generator", None)
        state = {
            "format": _FORMAT,
            "params": params,
            "sizes": list(self.model_.sizes),
            "weights": [W.detach().cpu() for W in self.model_.weights],
            "x_scaler": _cpu_state(self.x_scaler_),
            "y_scaler": _cpu_state(self.y_scaler_),
            "y_1d": self._y_1d,
            "result": dataclasses.asdict(self.result_),
            # a uint8 tensor, which torch.load(weights_only=True) reads; None after loading a /1 file
            "generator": None if generator is None else generator.get_state(),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            # on disk before the rename, so that a power cut cannot leave `path` naming an empty file
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path, *, device=None) -> SigmoidMLPRegressor:
        """Read a model written by :meth:`save`. Never runs code from the file.

        Args:
            path: the file.
            device: where to put the model; ``None`` uses the saved setting (``"auto"`` by default).

        Raises:
            ValueError: the file is missing, unreadable, truncated, or not a saved regressor.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no model file at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path} is not a readable model file ({type(exc).__name__}: {exc})") from exc
        try:
            if state.get("format") not in _READABLE:
                raise ValueError(f"format {state.get('format')!r}, expected {_FORMAT!r}")
            params = dict(state["params"])
            params["dtype"] = _DTYPES[params["dtype"]]
            params["target_range"] = tuple(params["target_range"])
            if params["hidden"] is not None:
                params["hidden"] = tuple(params["hidden"])
            if device is not None:
                params["device"] = device
            reg = cls(**params)
            sizes, weights = tuple(state["sizes"]), state["weights"]
            reg.model_ = SigmoidMLP(
                sizes[0], sizes[1:-1], sizes[-1], device=reg._resolve_device(), dtype=params["dtype"]
            )
            if len(weights) != len(reg.model_.weights):
                raise ValueError(f"{len(weights)} weight matrices for sizes {sizes}")
            with torch.no_grad():
                for mine, saved in zip(reg.model_.weights, weights):
                    if not isinstance(saved, Tensor) or saved.shape != mine.shape:
                        raise ValueError(f"a weight matrix does not have the shape {tuple(mine.shape)}")
                    mine.copy_(saved)
            reg.x_scaler_ = MinMaxScaler().load_state_dict(state["x_scaler"])
            reg.y_scaler_ = MinMaxScaler().load_state_dict(state["y_scaler"])
            if reg.x_scaler_.data_min_ is None or reg.x_scaler_.data_min_.shape != (sizes[0],):
                raise ValueError("the input scaler does not match the network's inputs")
            reg.n_features_in_ = sizes[0]
            reg._y_1d = bool(state["y_1d"])
            result = dict(state["result"])
            # asdict wrote each start's result as a dict as well
            result["restarts"] = [TrainResult(**r) for r in result.get("restarts", [])]
            reg.result_ = TrainResult(**result)
            reg._generator = None
            saved = state["generator"] if state["format"] == _FORMAT else None
            if saved is not None:
                if not isinstance(saved, Tensor) or saved.dtype != torch.uint8:
                    raise ValueError("the generator state is not a uint8 tensor")
                reg._generator = torch.Generator()
                reg._generator.set_state(saved)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"{path} is not a compatible SigmoidMLPRegressor file: {exc}") from exc
        return reg

    # -- checks ------------------------------------------------------------------------------------

    def _resolve_device(self) -> torch.device:
        if self.device == "auto":
            return default_device()  # under torchrun, this rank's GPU
        return torch.device(self.device)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit first")

    def _check_settings(self) -> None:
        lo, hi = self.target_range
        if not 0 < lo < hi < 1:
            raise ValueError(
                f"target_range must satisfy 0 < a < b < 1 (inside the sigmoid's range), got {(lo, hi)}"
            )
        for name in ("lr", "tol"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ValueError(f"{name} must be a positive finite number or None, got {value!r}")
        if self.dtype not in _DTYPES.values():
            raise TypeError(f"dtype must be a floating torch dtype, got {self.dtype!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if isinstance(self.restarts, bool) or not isinstance(self.restarts, int) or self.restarts < 1:
            raise ValueError(f"restarts must be a positive integer, got {self.restarts!r}")
        if self.solver in ("lm", "br") and self.lr is not None:
            raise ValueError(
                f"solver={self.solver!r} takes no lr: its step comes from solving (JᵀJ + μI) Δw = Jᵀe"
            )
        if self.solver in ("lm", "br") and self.batch_size is not None:
            raise ValueError(
                f"batch_size is for mini-batch solvers; solver={self.solver!r} takes full-batch steps"
            )
        if self.momentum and self.solver not in ("sgd", "auto"):
            raise ValueError(f"momentum is for solver='sgd'; solver={self.solver!r} has none")

    @staticmethod
    def _as_tensor(value, name: str) -> Tensor:
        """``value`` as a float64 CPU tensor (the scalers' precision: data may be large numbers)."""
        if isinstance(value, Tensor):
            return value.detach().to(device="cpu", dtype=torch.float64)
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric array-like: {exc}") from exc

    def _check_more_data(self, X, y) -> tuple[Tensor, Tensor]:
        """``X``, ``Y`` for training the fitted network on: its columns, inside its scalers' range."""
        X, Y = self._check_xy(X, y)
        self._check_settings()
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        if Y.shape[1] != self.model_.out_features:
            raise ValueError(
                f"y has {Y.shape[1]} outputs, the model was fitted with {self.model_.out_features}"
            )
        ymin, ymax = self.y_scaler_.data_min_, self.y_scaler_.data_max_
        if bool((ymin > Y).any() or (ymax < Y).any()):
            raise ValueError(
                "y has values outside the range the first fit scaled to "
                f"[{ymin.tolist()}, {ymax.tolist()}]; they would map outside (0, 1): fit again instead"
            )
        return X, Y

    def _check_xy(self, X, y) -> tuple[Tensor, Tensor]:
        X, Y = self._as_tensor(X, "X"), self._as_tensor(y, "y")
        if X.dim() != 2:
            hint = " (reshape(-1, 1) for a single feature)" if X.dim() == 1 else ""
            raise ValueError(f"X must have shape (T, n), got {tuple(X.shape)}{hint}")
        if Y.dim() == 1:
            Y = Y.unsqueeze(1)
        if Y.dim() != 2:
            raise ValueError(f"y must have shape (T,) or (T, m), got {tuple(Y.shape)}")
        if X.shape[0] == 0:
            raise ValueError("X holds no test points (T = 0)")
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} test points but y has {Y.shape[0]}")
        if not bool(torch.isfinite(X).all()):
            raise ValueError("X contains NaN or infinite values")
        if not bool(torch.isfinite(Y).all()):
            raise ValueError("y contains NaN or infinite values")
        return X, Y


def _cpu_state(scaler: MinMaxScaler) -> dict:
    state = scaler.state_dict()
    state["feature_range"] = list(state["feature_range"])
    return {k: v.cpu() if isinstance(v, Tensor) else v for k, v in state.items()}
