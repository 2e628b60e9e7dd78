"""``SigmoidMLPRegressor``: fit a function from test points and measurements, in the units of the data."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core._checks import check_integer, check_number, check_points, check_sample_weight
from ..core.functional import sigmoid_mlp
from ..core.module import SigmoidMLP
from ..training.distributed import default_device, is_distributed, shard
from ..training.loop import TrainResult, train
from ..training.solvers import METHODS, choose_method
from .normalization import MinMaxScaler
from .outputs import atomic_path, check_output

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.exceptions import NotFittedError
except ImportError:  # scikit-learn is optional: without it the estimator is a plain class
    _SKLEARN_BASES: tuple[type, ...] = ()

    class NotFittedError(ValueError, AttributeError):
        """A method that needs a fitted estimator was called before ``fit`` (scikit-learn's name)."""

else:
    # RegressorMixin first: scikit-learn's tags and clone expect the mixin before BaseEstimator
    _SKLEARN_BASES = (RegressorMixin, BaseEstimator)

__all__ = [
    "HISTORY_KEPT",
    "LR_CONSTANT",
    "MAX_EPOCHS",
    "PATIENCE",
    "SOLVERS",
    "NotFittedError",
    "SigmoidMLPRegressor",
]

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

#: Inputs are scaled into ``[−1, 1]``, symmetric about 0. Without biases a first-layer neuron
#: ``σ(w·x)`` bends where ``w·x = 0``: scaled this way that is the middle of the data's range, where
#: a bend is useful, rather than its corner (``benchmarks/results/fit.md`` has the effect on the
#: epochs to a bound).
INPUT_RANGE = (-1.0, 1.0)

#: ``callback(k, result)`` of :meth:`SigmoidMLPRegressor.fit`; ``False`` stops the run.
Callback = Callable[[int, TrainResult], bool | None]

#: Written by :meth:`SigmoidMLPRegressor.save`; ``/2`` added ``warm_start`` and the batch-order
#: generator's state; ``/3`` a SHA-256 of the contents (:func:`_digest`), ``feature_names_in_``,
#: the training data's fingerprint, and a loss history bounded by :data:`HISTORY_KEPT`. ``/1`` and
#: ``/2`` files still load (``/1`` ones resume on full batches only: they draw no order).
_FORMAT = "torch-sigmoid-mlp/regressor/3"
_READABLE = ("torch-sigmoid-mlp/regressor/1", "torch-sigmoid-mlp/regressor/2", _FORMAT)

#: A model file keeps ``E`` (and the validation SSE) of at most this many of the run's last epochs:
#: 80 kB as float64, so that a checkpoint of a long run costs what one of a short run does. The
#: run's :class:`~torch_sigmoid_mlp.TrainResult` in memory keeps all of them.
HISTORY_KEPT = 10_000
_DTYPES = {
    str(t).removeprefix("torch."): t for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


class SigmoidMLPRegressor(*_SKLEARN_BASES):
    r"""Fit ``F(x; w) ≈ f`` at the test points, scikit-learn style, by the solver the problem calls for.

    .. code-block:: text

        x' = scale_x(x),  d' = scale_y(y)                       min–max, into [−1, 1] and target_range
        w  = argmin  1/2 · Σ_t ‖d'_t − F(x'_t; w)‖²            until max_t |ŷ(t) − y_t| < tol
        ŷ  = scale_y⁻¹(F(scale_x(x); w))

    Inputs and targets are scaled column by column (:class:`~torch_sigmoid_mlp.MinMaxScaler`),
    a :class:`~torch_sigmoid_mlp.SigmoidMLP` is built and trained by
    :func:`~torch_sigmoid_mlp.train`, and predictions are mapped back to the units of ``y``.
    With weights ``s_t`` (``sample_weight``) it minimises SPEC.md's ``E_s = 1/2 · Σ_t s_t ‖d'_t −
    F(x'_t; w)‖²`` instead: an integer weight is the point repeated that often, a zero weight the
    point left out (it takes no part in the scaling, the ``tol`` stop or the step either).

    scikit-learn: where it is installed the class is one of its estimators (``BaseEstimator``,
    ``RegressorMixin``), passes its estimator checks and works with its tools (``Pipeline``,
    ``GridSearchCV``, ``clone``, ``check_is_fitted``); without it the class works the same, on
    its own. The parameters are checked by ``fit``, not by the constructor, which only stores
    them (scikit-learn's convention); numpy scalars are welcome wherever a number is.
    A ``pandas.DataFrame`` with string column names sets ``feature_names_in_``, and ``predict``
    and ``score`` then refuse a frame whose names differ from them or come in another order.

    Args:
        hidden: hidden layer widths, or one int for one hidden layer (scikit-learn's
            ``hidden_layer_sizes``); ``None`` is two layers of ``max(8, n)`` (:data:`DEFAULT_WIDTH`).
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
        device: ``"auto"`` (CUDA when available, else CPU) or a device; one that this machine
            does not have is refused by ``fit`` before any work.
        dtype: of the weights and the scaled data: ``"float32"``, ``"float64"``, ``"float16"``,
            ``"bfloat16"`` or the torch dtype. ``predict`` computes in float64 whatever it is, so
            that a point's prediction does not depend on the points predicted with it.
        seed: seeds the initial weights, the hold-out split and the batch order.
        random_state: scikit-learn's name for the seed, which its tools set: an int is used in
            place of ``seed``; ``None`` (default) leaves ``seed`` in charge.
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
        feature_names_in_: the column names of the ``DataFrame`` fitted on, when they are all
            strings (absent otherwise).

    Example::

        >>> import numpy as np
        >>> X = np.linspace(0.0, 2.0, 40).reshape(-1, 1)
        >>> y = 3.0 + 2.0 * np.tanh(X[:, 0])
        >>> reg = SigmoidMLPRegressor(tol=0.1, device="cpu").fit(X, y)
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
        dtype="float32",
        seed: int = 0,
        random_state: int | None = None,
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
        self.random_state = random_state
        self.logdir = logdir
        self.progress = progress
        self.solver = solver
        self.restarts = restarts
        self.warm_start = warm_start

    # -- scikit-learn's protocol -------------------------------------------------------------------

    _PARAMS = (
        "hidden", "lr", "max_epochs", "tol", "batch_size", "momentum", "target_range",
        "validation_fraction", "n_iter_no_change", "device", "dtype", "seed", "random_state", "logdir",
        "progress", "solver", "restarts", "warm_start",
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
        # compared by repr: a parameter may be an array, whose == is not a truth value
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if repr(v) != repr(defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        """Whether ``fit`` has run (scikit-learn's ``check_is_fitted`` asks this)."""
        return hasattr(self, "model_")

    if _SKLEARN_BASES:

        def __sklearn_tags__(self):
            """scikit-learn's tags: a regressor of one or several outputs, on dense finite data."""
            tags = super().__sklearn_tags__()
            tags.target_tags.single_output = True
            tags.target_tags.multi_output = True
            return tags

    def __getstate__(self) -> dict:
        # a torch.Generator does not pickle; its state (a uint8 tensor) does
        state = super().__getstate__() if _SKLEARN_BASES else self.__dict__
        state = dict(state)
        if isinstance(state.get("_generator"), torch.Generator):
            state["_generator"] = state["_generator"].get_state()
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if isinstance(state.get("_generator"), Tensor):
            generator = torch.Generator()
            generator.set_state(state["_generator"])
            state["_generator"] = generator
        if _SKLEARN_BASES:
            super().__setstate__(state)
        else:
            self.__dict__.update(state)

    # -- fitting -----------------------------------------------------------------------------------

    def fit(
        self, X, y, sample_weight=None, *, callback: Callback | None = None, writer=None
    ) -> SigmoidMLPRegressor:
        """Scale ``X`` (``(T, n)``) and ``y`` (``(T,)`` or ``(T, m)``), build a network, train it.

        With ``warm_start`` and a fitted estimator, train on instead (see "Continuing a run").

        In a ``torch.distributed`` process group (under ``torchrun``, say) call ``fit`` on every rank
        with all the data: each rank trains on its own shard of the points, full batch, and every
        rank ends with the same model (:func:`~torch_sigmoid_mlp.train`'s "Data parallel").

        Args:
            X, y: the test points and their measurements.
            sample_weight: ``s_t ≥ 0`` per test point, ``(T,)``, not all zero; ``None`` weighs
                every point 1. The default ``lr`` counts ``Σ_t s_t`` points (see
                :meth:`effective_lr`), so integer weights fit as the repeated points do. With
                ``validation_fraction`` the points of positive weight are split, each keeping its
                weight; the held-out points' SSE, which early stopping watches, is unweighted.
            callback: called as ``callback(k, result)`` before each epoch ``k`` that the run
                takes (:func:`~torch_sigmoid_mlp.train`'s callback), with ``k`` counted from the
                start of the run and ``result`` the run so far; returning ``False`` stops the run
                there (``stop_reason == "callback"``). During the call ``result_`` is ``result``,
                the record of a run stopped at ``k``, so :meth:`save` there writes a checkpoint
                that ``warm_start`` continues exactly.
            writer: a ``SummaryWriter`` to log the run to, left open (instead of ``logdir``);
                a continued run's steps go on from the epochs it had taken.
        """
        settings = self._settings()
        if self.warm_start and hasattr(self, "model_"):
            return self._continue(X, y, sample_weight, settings, callback, writer)
        X, Y, weights, names, y_1d = self._check_xy(X, y, sample_weight)
        lo, hi = settings.target_range
        self.x_scaler_ = MinMaxScaler(INPUT_RANGE).fit(X)
        self.y_scaler_ = MinMaxScaler((lo, hi)).fit(Y)
        self._y_1d = y_1d
        self.n_features_in_ = X.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        # one generator draws, in this order: the initial weights, the validation split, the batch
        # orders; it is the run's state that save() keeps for warm_start
        self._generator = torch.Generator().manual_seed(settings.seed)
        hidden = settings.hidden if settings.hidden is not None else (max(DEFAULT_WIDTH, X.shape[1]),) * 2
        self.model_ = SigmoidMLP(
            X.shape[1],
            hidden,
            Y.shape[1],
            device=settings.device,
            dtype=settings.dtype,
            generator=self._generator,
        )
        self.result_ = self._train(
            X, Y, weights, settings, restarts=settings.restarts, callback=callback, writer=writer
        )
        return self

    def partial_fit(
        self, X, y, sample_weight=None, *, callback: Callback | None = None, writer=None
    ) -> SigmoidMLPRegressor:
        """Train the fitted network further on ``(X, y)`` (up to ``max_epochs`` more epochs).

        New test points are welcome: ``E`` is a sum over points, so the network keeps its shape.
        The scalers from the first fit are kept, so targets must lie within the range that fit
        saw (outside it they would map outside ``(0, 1)``). Without a previous fit this is ``fit``.
        Momentum restarts from zero, and so does LM's damping ``μ``; ``restarts`` is not used here
        (one start: the fitted weights). ``result_`` is this call's run, and its batch orders
        are drawn afresh from ``seed``; ``warm_start`` continues it. ``sample_weight``,
        ``callback`` and ``writer`` are as in :meth:`fit`.
        """
        if not hasattr(self, "model_"):
            return self.fit(X, y, sample_weight, callback=callback, writer=writer)
        settings = self._settings()
        X, Y, weights = self._check_more_data(X, y, sample_weight)
        self._generator = torch.Generator().manual_seed(settings.seed)
        # one start: the fitted weights go on, where a restart would throw them away
        self.result_ = self._train(X, Y, weights, settings, restarts=1, callback=callback, writer=writer)
        return self

    def _continue(self, X, y, sample_weight, settings, callback, writer) -> SigmoidMLPRegressor:
        """``fit`` with ``warm_start``: the run goes on to ``max_epochs`` epochs in all."""
        X, Y, weights = self._check_more_data(X, y, sample_weight)
        if settings.validation_fraction:
            raise ValueError(
                "warm_start continues a run exactly, and early stopping's record of the best epoch "
                "is not kept: set validation_fraction=None, or fit again"
            )
        if getattr(self, "_generator", None) is None:
            if settings.batch_size is not None:
                raise ValueError(
                    "this model was saved without its mini-batch order (an older file format), so "
                    "warm_start cannot continue its run as it would have gone on: fit again"
                )
            self._generator = torch.Generator().manual_seed(settings.seed)  # full batch draws nothing
        self.result_ = self._train(
            X, Y, weights, settings, restarts=1, callback=callback, writer=writer, before=self.result_
        )
        return self

    def _train(
        self,
        X: Tensor,
        Y: Tensor,
        s: Tensor | None,
        settings: types.SimpleNamespace,
        *,
        restarts: int,
        callback,
        writer,
        before: TrainResult | None = None,
    ) -> TrainResult:
        """Train ``model_`` on the scaled data, weighted by ``s`` (``(T,)``, or ``None``: all 1).

        ``before`` is the run this goes on with (``warm_start``).
        """
        generator = self._generator
        W0 = self.model_.weights[0]
        x = self.x_scaler_.transform(X).to(device=W0.device, dtype=W0.dtype)  # (T, n)
        d = self.y_scaler_.transform(Y).to(device=W0.device, dtype=W0.dtype)  # (T, m)
        validation = None
        if settings.validation_fraction:
            T = x.shape[0]
            n_val = round(T * settings.validation_fraction)
            if not 1 <= n_val < T:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} of {T} points leaves "
                    f"{n_val} for validation and {T - n_val} for training; both need at least one"
                )
            order = torch.randperm(T, generator=generator)
            val, fit = order[:n_val], order[n_val:]
            validation = (x[val.to(x.device)], d[val.to(x.device)])
            x, d = x[fit.to(x.device)], d[fit.to(x.device)]
            s = None if s is None else s[fit]
        method = self._method(x.shape[0] * d.shape[1], validation is not None, before)
        # Σ s_t in float64 before the cast, so that integer weights count exactly the repeated points
        lr = self._effective_lr(settings, method, x.shape[0], None if s is None else s.sum().item())
        max_epochs = settings.max_epochs if settings.max_epochs is not None else MAX_EPOCHS[method]
        patience = settings.n_iter_no_change if settings.n_iter_no_change is not None else PATIENCE[method]
        if s is not None:
            s = s.to(device=W0.device, dtype=W0.dtype)  # (T,)
        if is_distributed():
            # Every rank was given all the points (and drew the same split): each trains on its own
            # contiguous shard, and train sums the gradients over ranks.
            x, d = shard(x), shard(d)
            s = None if s is None else shard(s)
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
            tol=self._scaled_tol(settings.tol),
            batch_size=settings.batch_size,
            momentum=settings.momentum,
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
            sample_weight=s,
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

    def effective_lr(
        self, n_points: int, method: str | None = None, weight_sum: float | None = None
    ) -> float | None:
        """The ``lr`` that ``fit`` passes to :func:`~torch_sigmoid_mlp.train` on ``n_points`` points.

        ``method`` is the solver that runs (default: ``solver``; after a fit, the one that ran).
        Steepest descent (``"sgd"``, ``"adaptive"``) steps with ``lr`` if set, else
        ``LR_CONSTANT / Σ_t s_t`` on full batches and ``LR_CONSTANT / (B · s̄)`` on mini-batches of
        ``B = min(batch_size, T)``, with ``T = n_points`` (the points left after
        ``validation_fraction`` holds some out; under ``torchrun``, those of all ranks together),
        ``Σ_t s_t = weight_sum`` (default ``T``: every weight 1) and ``s̄ = Σ_t s_t / T`` the mean
        weight: the step per unit of weight stays the same, so integer weights step as the
        repeated points would. Every other solver gets ``lr`` as it is, ``None`` included.

        Example::

            >>> sgd = SigmoidMLPRegressor(solver="sgd")
            >>> sgd.effective_lr(50), sgd.effective_lr(50, weight_sum=100.0)
            (0.32, 0.16)
            >>> sgd.set_params(batch_size=8).effective_lr(50)
            2.0
        """
        if method is None:
            method = self.result_.method if hasattr(self, "result_") else self.solver
        return self._effective_lr(self._settings(), method, n_points, weight_sum)

    @staticmethod
    def _effective_lr(settings, method: str, n_points: int, weight_sum: float | None) -> float | None:
        if method not in ("sgd", "adaptive") or settings.lr is not None:
            return settings.lr
        if settings.batch_size is None or settings.batch_size >= n_points:
            return LR_CONSTANT / (n_points if weight_sum is None else weight_sum)
        if weight_sum is None:
            return LR_CONSTANT / settings.batch_size
        return LR_CONSTANT / (settings.batch_size * weight_sum / n_points)

    def _scaled_tol(self, tol: float | None) -> float | None:
        """``tol`` in the units of the scaled targets: ``|Δd'| = s·|Δy|`` with ``s`` the column's scale."""
        if tol is None:
            return None
        lo, hi = self.y_scaler_.feature_range
        span = (self.y_scaler_.data_max_ - self.y_scaler_.data_min_).double().reshape(-1)
        span = span[span > 0]
        # A constant column is reproduced exactly by inverse_transform, whatever the network says.
        s = (hi - lo) / span.max().item() if span.numel() else 1.0
        return float(tol * s)

    # -- prediction --------------------------------------------------------------------------------

    def predict(self, X):
        """Predictions in the units of ``y``, of ``X``'s kind: numpy in, numpy out; tensor in, tensor out.

        ``ŷ = scale_y⁻¹(F(scale_x(X); w))``, computed in float64 from the weights (whatever their
        dtype), so that each point's prediction is the same whichever points are predicted with
        it. A list or a ``DataFrame`` gives a numpy array. The dtype is ``X``'s if floating, else
        float64; ``(T,)`` when ``fit`` got a 1-D ``y``, else ``(T, m)``.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: ``X`` has another number of columns than the data fitted on, or (a
                ``DataFrame``) other column names or another order of them.
        """
        self._check_fitted()
        y = self._forward(self._check_X(X))  # (T, m)
        if self._y_1d:
            y = y[:, 0]
        if isinstance(X, Tensor):
            return y.to(device=X.device, dtype=X.dtype if X.is_floating_point() else torch.float64)
        dtype = X.dtype if isinstance(X, np.ndarray) and X.dtype.kind == "f" else np.float64
        return y.numpy().astype(dtype, copy=False)

    def score(self, X, y, sample_weight=None) -> float:
        """``R² = 1 − Σ_t s_t (y_t − ŷ_t)² / Σ_t s_t (y_t − ȳ)²``, averaged over the output columns.

        ``ȳ = Σ_t s_t y_t / Σ_t s_t`` and ``s_t = 1`` without ``sample_weight``: scikit-learn's
        ``r2_score(y, ŷ, sample_weight=s)``, the default score of its regressors. A constant
        column scores 1 if predicted exactly, else 0.
        """
        self._check_fitted()
        X_t = self._check_X(X)
        Y, _ = self._check_y(y, X_t)
        s = self._check_weights(sample_weight, X_t.shape[0])
        s = torch.ones(X_t.shape[0], dtype=torch.float64) if s is None else s
        P = self._forward(X_t)  # (T, m)
        if Y.shape != P.shape:
            raise ValueError(f"y has shape {tuple(Y.shape)} but the predictions have {tuple(P.shape)}")
        w = s.unsqueeze(1)  # (T, 1)
        mean = (w * Y).sum(dim=0) / s.sum()  # (m,)
        residual = (w * (Y - P) ** 2).sum(dim=0)  # (m,)
        total = (w * (Y - mean) ** 2).sum(dim=0)  # (m,)
        exact = (residual == 0).double()
        r2 = torch.where(total > 0, 1 - residual / total.clamp_min(1e-300), exact)
        return r2.mean().item()

    def _forward(self, X: Tensor) -> Tensor:
        """``scale_y⁻¹(F(scale_x(X); w))`` for checked float64 points ``X``, in float64 on the CPU."""
        weights = [W.detach().to(torch.float64) for W in self.model_.weights]
        with torch.no_grad():
            x = self.x_scaler_.transform(X).to(weights[0].device)  # (T, n)
            return self.y_scaler_.inverse_transform(sigmoid_mlp(x, weights).cpu())  # (T, m)

    # -- saving ------------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write weights, scalers, settings, the run's result and its batch order to one file, atomically.

        With ``warm_start``, the loaded estimator's ``fit`` continues the run where it was saved
        (the state of the generator that draws the mini-batch orders is kept). The file is
        written next to ``path`` under a temporary name and renamed over it, so a crash never
        leaves a half-written model at ``path``; ``path`` follows
        :func:`~torch_sigmoid_mlp.data.check_output`'s rules (a symlink is written through; a
        directory, FIFO or device node is refused). It holds only tensors and plain Python values,
        which :meth:`load` reads with ``torch.load(weights_only=True)``, and a SHA-256 of all of
        them that :meth:`load` checks. Of the loss history it keeps the last :data:`HISTORY_KEPT`
        entries, so that a checkpoint costs the same at epoch 10⁶ as at epoch 10⁴; it also keeps
        ``feature_names_in_`` and ``data_fingerprint_`` when the estimator has them.

        Raises:
            ValueError: the weights hold NaN or infinite values, or ``path`` cannot be written
                (:class:`~torch_sigmoid_mlp.data.OutputError`, naming ``path``).
        """
        self._check_fitted()
        for l, W in enumerate(self.model_.weights):
            if not bool(torch.isfinite(W).all()):
                raise ValueError(f"W^({l}) holds NaN or infinite values: refusing to save a broken model")
        check_output(path)
        params = self._plain_params()
        generator = getattr(self, "_generator", None)
        names = getattr(self, "feature_names_in_", None)
        state = {
            "format": _FORMAT,
            "params": params,
            "sizes": list(self.model_.sizes),
            "weights": [W.detach().cpu() for W in self.model_.weights],
            "x_scaler": _cpu_state(self.x_scaler_),
            "y_scaler": _cpu_state(self.y_scaler_),
            "y_1d": self._y_1d,
            "result": _bounded(dataclasses.asdict(self.result_)),
            # a uint8 tensor, which torch.load(weights_only=True) reads; None after loading a /1 file
            "generator": None if generator is None else generator.get_state(),
            "feature_names": None if names is None else [str(name) for name in names],
            "data_fingerprint": getattr(self, "data_fingerprint_", None),
        }
        state["sha256"] = _digest(state)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            # on disk before the rename, so that a power cut cannot leave `path` naming an empty file
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path, *, device=None) -> SigmoidMLPRegressor:
        """Read a model written by :meth:`save`. Never runs code from the file.

        Checks the file's SHA-256 (format ``/3``) and that every weight is finite. A loss history
        longer than :data:`HISTORY_KEPT` reads back with NaN for the epochs the file did not keep.

        Args:
            path: the file.
            device: where to put the model; ``None`` uses the saved setting (``"auto"`` by default).

        Raises:
            ValueError: the file is missing, unreadable, truncated, damaged (its checksum does
                not match), holds non-finite weights, or is not a saved regressor.
        """
        if device is not None:
            _device(device)  # a device this machine lacks is named as such, not as a bad file
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no model file at {path}")
        try:
            with open(path, "rb") as f:
                is_zip = f.read(4) == b"PK\x03\x04"
        except OSError as exc:
            raise ValueError(f"{path} is not a readable model file ({exc.strerror or exc})") from exc
        if not is_zip:
            # save() writes torch.save's zip archive; anything else would only get unpickling's story
            raise ValueError(f"{path} is not a readable model file (not a zip archive, which save() writes)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path} is not a readable model file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(state, dict) or state.get("format") not in _READABLE:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"{path} is not a compatible SigmoidMLPRegressor file: format {found!r}, expected {_FORMAT!r}"
            )
        if state["format"] == _FORMAT:
            saved = state.pop("sha256", None)
            if saved != _digest(state):
                raise ValueError(
                    f"{path} is damaged: its contents do not match the checksum it was saved with"
                )
        try:
            params = dict(state["params"])
            dtype = _DTYPES[params["dtype"]]
            params["target_range"] = tuple(params["target_range"])
            if isinstance(params["hidden"], list):
                params["hidden"] = tuple(params["hidden"])
            if device is not None:
                params["device"] = device
            reg = cls(**params)
            sizes, weights = tuple(state["sizes"]), state["weights"]
            reg.model_ = SigmoidMLP(
                sizes[0], sizes[1:-1], sizes[-1], device=reg._settings().device, dtype=dtype
            )
            if len(weights) != len(reg.model_.weights):
                raise ValueError(f"{len(weights)} weight matrices for sizes {sizes}")
            with torch.no_grad():
                for l, (mine, saved) in enumerate(zip(reg.model_.weights, weights)):
                    if not isinstance(saved, Tensor) or saved.shape != mine.shape:
                        raise ValueError(f"a weight matrix does not have the shape {tuple(mine.shape)}")
                    if not bool(torch.isfinite(saved).all()):
                        raise ValueError(f"W^({l}) holds NaN or infinite values")
                    mine.copy_(saved)
            reg.x_scaler_ = MinMaxScaler().load_state_dict(state["x_scaler"])
            reg.y_scaler_ = MinMaxScaler().load_state_dict(state["y_scaler"])
            if reg.x_scaler_.data_min_ is None or reg.x_scaler_.data_min_.shape != (sizes[0],):
                raise ValueError("the input scaler does not match the network's inputs")
            reg.n_features_in_ = sizes[0]
            reg._y_1d = bool(state["y_1d"])
            reg.result_ = _result(state["result"])
            reg._generator = None
            saved = state["generator"] if state["format"] != _READABLE[0] else None
            if saved is not None:
                if not isinstance(saved, Tensor) or saved.dtype != torch.uint8:
                    raise ValueError("the generator state is not a uint8 tensor")
                reg._generator = torch.Generator()
                reg._generator.set_state(saved)
            names = state.get("feature_names")
            if names is not None:
                if len(names) != sizes[0] or not all(isinstance(n, str) for n in names):
                    raise ValueError(f"feature_names must be {sizes[0]} strings, got {names!r}")
                reg.feature_names_in_ = np.asarray(names, dtype=object)
            if state.get("data_fingerprint") is not None:
                reg.data_fingerprint_ = str(state["data_fingerprint"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"{path} is not a compatible SigmoidMLPRegressor file: {exc}") from exc
        return reg

    # -- checks ------------------------------------------------------------------------------------

    def _settings(self) -> types.SimpleNamespace:
        """The parameters, checked, with numpy scalars as Python numbers and ``seed`` resolved.

        ``fit`` calls this before any work: scikit-learn's constructors only store what they get.
        """
        s = types.SimpleNamespace(**self.get_params())
        s.hidden = _hidden(self.hidden)
        s.lr = check_number(self.lr, "lr", optional=True)
        s.tol = check_number(self.tol, "tol", optional=True)
        s.max_epochs = check_integer(self.max_epochs, "max_epochs", low=0, optional=True)
        s.batch_size = check_integer(self.batch_size, "batch_size", low=1, optional=True)
        s.n_iter_no_change = check_integer(self.n_iter_no_change, "n_iter_no_change", low=1, optional=True)
        s.restarts = check_integer(self.restarts, "restarts", low=1)
        s.momentum = check_number(self.momentum, "momentum", low=0.0, high=1.0)
        s.validation_fraction = check_number(
            self.validation_fraction, "validation_fraction", high=1.0, optional=True
        )
        try:
            lo, hi = (check_number(v, "target_range", low=0.0, high=1.0) for v in self.target_range)
        except (TypeError, ValueError):
            lo = hi = None
        if lo is None or not 0 < lo < hi:
            raise ValueError(
                "target_range must be (a, b) with 0 < a < b < 1 (inside the sigmoid's range), "
                f"got {self.target_range!r}"
            )
        s.target_range = (lo, hi)
        s.dtype = _dtype(self.dtype)
        s.device = _device(self.device)
        seed = self.seed if self.random_state is None else self.random_state
        what = "seed" if self.random_state is None else "random_state"
        # restarts draw with seed + i, which torch.Generator.manual_seed takes below 2**64
        s.seed = check_integer(seed, what, low=0, high=2**63 - 1)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
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
        return s

    def _plain_params(self) -> dict:
        """The parameters as plain Python values (what ``torch.load(weights_only=True)`` reads back)."""
        s = self._settings()
        params = self.get_params()
        for name in ("lr", "tol", "max_epochs", "batch_size", "n_iter_no_change", "restarts", "momentum"):
            params[name] = getattr(s, name)
        params["validation_fraction"] = s.validation_fraction
        params["target_range"] = list(s.target_range)
        # an int stays an int, so that a loaded estimator's parameters are those it was saved with
        one = isinstance(self.hidden, numbers.Integral)
        params["hidden"] = None if s.hidden is None else s.hidden[0] if one else list(s.hidden)
        params["dtype"] = str(s.dtype).removeprefix("torch.")
        params["device"] = str(self.device)
        params["seed"] = check_integer(self.seed, "seed", low=0)
        params["random_state"] = check_integer(self.random_state, "random_state", low=0, optional=True)
        params["warm_start"] = bool(self.warm_start)
        params["progress"] = bool(self.progress)
        params["logdir"] = None if self.logdir is None else str(self.logdir)
        return params

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call fit with appropriate "
                "arguments before using this estimator"
            )

    @staticmethod
    def _as_tensor(value, name: str) -> Tensor:
        """``value`` as a contiguous float64 CPU tensor (the scalers' precision: data may be large).

        A numpy array is copied first, so that any strides (negative ones too) and read-only
        memory work and the tensor never shares the caller's memory.
        """
        if value is None:
            raise ValueError(f"{name} is None; expected array-like (array or non-string sequence)")
        if isinstance(value, Tensor):
            if value.layout != torch.strided:
                raise TypeError(f"{name} is a sparse tensor ({value.layout}); pass {name}.to_dense()")
            if value.is_complex():
                raise ValueError(f"Complex data not supported: {name} has dtype {value.dtype}")
            return value.detach().to(device="cpu", dtype=torch.float64).contiguous()
        if _is_sparse(value):
            raise TypeError(
                f"{name} is a sparse matrix ({type(value).__name__}) and sparse input is not "
                f"supported: pass dense data, {name}.toarray()"
            )
        try:
            array = np.asarray(value)
            if np.iscomplexobj(array):
                raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}")
            array = np.array(array, dtype=np.float64, order="C")
        except TypeError as exc:  # an element that is no number: scikit-learn calls this a TypeError
            raise TypeError(f"{name} must be numeric: {exc}") from exc
        except ValueError as exc:
            if str(exc).startswith("Complex"):
                raise
            raise ValueError(f"{name} must be numeric: {exc}") from exc
        return torch.from_numpy(array)

    def _check_X(self, X) -> Tensor:
        """``X`` for a fitted estimator: its column names (if it had some) and number of columns."""
        names = _feature_names(X)
        X_t = self._as_2d(X)
        cls = type(self).__name__
        fitted = getattr(self, "feature_names_in_", None)
        # a tensor never carries column names: it is read by position, as the command line reads a CSV
        if fitted is not None and names is None and not isinstance(X, Tensor):
            warnings.warn(
                f"X does not have valid feature names, but {cls} was fitted with feature names",
                UserWarning,
                stacklevel=3,
            )
        elif fitted is None and names is not None:
            warnings.warn(
                f"X has feature names, but {cls} was fitted without feature names", UserWarning, stacklevel=3
            )
        elif (
            fitted is not None
            and names is not None
            and (len(names) != len(fitted) or (names != fitted).any())
        ):
            unseen = [n for n in names if n not in set(fitted)]
            missing = [n for n in fitted if n not in set(names)]
            parts = [f"unseen at fit time: {unseen}"] if unseen else []
            parts += [f"seen at fit time, yet now missing: {missing}"] if missing else []
            if not parts:
                parts = [f"in another order than in fit, {list(fitted)}: got {list(names)}"]
            raise ValueError(
                f"The feature names should match those that were passed during fit; feature names "
                f"{'; '.join(parts)}"
            )
        if X_t.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X_t.shape[1]} features, but {cls} is expecting {self.n_features_in_} features "
                "as input"
            )
        if not bool(torch.isfinite(X_t).all()):
            raise ValueError("X contains NaN or infinite values")
        return X_t

    def _as_2d(self, X) -> Tensor:
        X = self._as_tensor(X, "X")
        if X.dim() != 2:
            raise ValueError(
                f"X must have shape (T, n), got {tuple(X.shape)}: Reshape your data with "
                "X.reshape(-1, 1) if it has a single feature, or X.reshape(1, -1) if it is a single "
                "test point"
            )
        return X

    def _check_y(self, y, X: Tensor) -> tuple[Tensor, bool]:
        """``y`` as ``(T, m)`` for the ``T`` test points of ``X``, and whether it was 1-D."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        Y = self._as_tensor(y, "y")
        y_1d = Y.dim() == 1
        if y_1d:
            Y = Y.unsqueeze(1)
        if Y.dim() != 2:
            raise ValueError(f"y must have shape (T,) or (T, m), got {tuple(Y.shape)}")
        check_points(X, Y, ("X", "y"))
        return Y, y_1d

    def _check_weights(self, sample_weight, T: int) -> Tensor | None:
        """``sample_weight`` as ``(T,)`` float64: finite, ``≥ 0`` and not all zero (``None`` stays)."""
        if sample_weight is None:
            return None
        s = self._as_tensor(sample_weight, "sample_weight")
        if s.dim() == 0:  # one number for every point, as scikit-learn allows
            s = s.expand(T).contiguous()
        check_sample_weight(s, T)
        return s

    def _check_xy(self, X, y, sample_weight) -> tuple[Tensor, Tensor, Tensor | None, np.ndarray | None, bool]:
        """``X``, ``Y`` and ``s`` for a fresh fit, without the points of zero weight; X's column
        names; whether ``y`` was 1-D."""
        names = _feature_names(X)
        X = self._as_2d(X)
        if X.shape[1] == 0:
            raise ValueError(
                f"X holds no features: 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 "
                "is required."
            )
        if X.shape[0] == 0:
            raise ValueError(
                f"X holds no test points (T = 0): 0 sample(s) (shape={tuple(X.shape)}) while a "
                "minimum of 1 is required."
            )
        Y, y_1d = self._check_y(y, X)
        X, Y, s = _without_zero_weights(X, Y, self._check_weights(sample_weight, X.shape[0]))
        return X, Y, s, names, y_1d

    def _check_more_data(self, X, y, sample_weight) -> tuple[Tensor, Tensor, Tensor | None]:
        """``X``, ``Y``, ``s`` for training the fitted network on: its columns, inside its scalers' range."""
        X = self._check_X(X)
        Y, _ = self._check_y(y, X)
        X, Y, s = _without_zero_weights(X, Y, self._check_weights(sample_weight, X.shape[0]))
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
        return X, Y, s


def _without_zero_weights(X: Tensor, Y: Tensor, s: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Drop the points of weight 0, which ``E_s`` does not see; all weights 1 become ``None``."""
    if s is None:
        return X, Y, None
    keep = s > 0
    if not bool(keep.all()):
        X, Y, s = X[keep], Y[keep], s[keep]
    # unweighted, the loop keeps its fastest path (and the same steps, bit for bit)
    return X, Y, None if bool((s == 1).all()) else s


def _is_sparse(value) -> bool:
    """A scipy.sparse matrix or array, told without importing scipy."""
    return type(value).__module__.startswith("scipy.sparse")


def _feature_names(X) -> np.ndarray | None:
    """A ``DataFrame``'s column names when they are all strings, else ``None`` (scikit-learn's rule)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, (np.ndarray, Tensor)):
        return None
    names = np.asarray(list(columns), dtype=object)
    strings = [isinstance(n, str) for n in names]
    if names.size and all(strings):
        return names
    if any(strings):
        kinds = sorted({type(n).__name__ for n in names})
        raise TypeError(
            f"X's column names must all be strings to be used as feature names, got types {kinds}: "
            "convert them with X.columns = X.columns.astype(str)"
        )
    return None


def _hidden(hidden) -> tuple[int, ...] | None:
    """``hidden`` as a tuple of widths: an int is one layer, as scikit-learn's ``hidden_layer_sizes``."""
    if hidden is None:
        return None
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, (bool, np.bool_)):
        hidden = (hidden,)
    if isinstance(hidden, str) or not hasattr(hidden, "__iter__"):
        raise ValueError(f"hidden must be an int, a sequence of ints or None, got {hidden!r}")
    return tuple(check_integer(h, f"hidden[{i}]", low=1) for i, h in enumerate(hidden))


def _dtype(dtype) -> torch.dtype:
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be one of {list(_DTYPES)} (or the torch dtype), got {dtype!r}")


def _device(device) -> torch.device:
    """``device`` parsed, and refused if this machine does not have it, before any work."""
    if isinstance(device, str) and device == "auto":
        return default_device()  # under torchrun, this rank's GPU
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device must be 'auto' or a torch device, got {device!r}: {exc}") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available here: use 'cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available here: use 'cpu' or 'auto'")
    return resolved


def _cpu_state(scaler: MinMaxScaler) -> dict:
    state = scaler.state_dict()
    state["feature_range"] = list(state["feature_range"])
    return {k: v.cpu() if isinstance(v, Tensor) else v for k, v in state.items()}


def _bounded(result: dict) -> dict:
    """A result (``asdict``) whose histories keep their last :data:`HISTORY_KEPT` entries.

    ``history_length`` records how many there were, so that :func:`_result` can put each kept
    entry back at its epoch.
    """
    out = dict(result)
    out["history_length"] = [len(result["loss_history"]), len(result["val_history"])]
    out["loss_history"] = list(result["loss_history"][-HISTORY_KEPT:])
    out["val_history"] = list(result["val_history"][-HISTORY_KEPT:])
    out["restarts"] = [_bounded(r) for r in result.get("restarts", [])]
    return out


def _result(saved: dict) -> TrainResult:
    """The :class:`TrainResult` of a saved result: ``loss_history[k]`` is NaN where not kept."""
    saved = dict(saved)
    lengths = saved.pop("history_length", None)
    if lengths is not None:
        for key, length in zip(("loss_history", "val_history"), lengths):
            kept = list(saved[key])
            saved[key] = [math.nan] * (length - len(kept)) + kept
    saved["restarts"] = [_result(r) for r in saved.get("restarts", [])]
    return TrainResult(**saved)


def _digest(value) -> str:
    """SHA-256 of a saved state's contents: every tensor's dtype, shape and bytes, every plain value.

    Dicts are read in sorted key order, so the digest does not depend on how the file stored them.
    """
    h = hashlib.sha256()

    def feed(v) -> None:
        if isinstance(v, Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            h.update(f"D{len(v)}".encode())
            for k in sorted(v, key=str):
                feed(str(k))
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(f"L{len(v)}".encode())
            for item in v:
                feed(item)
        else:
            # repr keeps every bit of a float (and tells 1 from 1.0 from True)
            h.update(f"V{v!r};".encode())

    feed(value)
    return h.hexdigest()
