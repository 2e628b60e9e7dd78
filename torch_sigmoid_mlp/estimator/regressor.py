"""``SigmoidMLPRegressor``: fit a function from test points and measurements, in the units of the data."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..core._flat import num_weights, weights_of_sizes
from ..core.functional import sigmoid_mlp
from ..core.memory import check_memory
from ..core.module import SigmoidMLP
from ..training.distributed import is_distributed, shard
from ..training.loop import COLLAPSED_R2, ConvergenceWarning, TrainResult, start_dir, train
from ..training.results import _rank
from ..training.solvers import (
    AUTO_WEIGHT_DECAY,
    CONVERGENCE,
    check_dense_size,
    choose_method,
    choose_restarts,
    wants_second_opinion,
)
from . import model_file
from .checks import check_fitted, check_more_data, check_weights, check_X, check_xy, check_y
from .model_file import HISTORY_KEPT
from .normalization import MinMaxScaler
from .params import (
    DEFAULT_WIDTH,
    INPUT_RANGE,
    LOG_RECORDS,
    LR_CONSTANT,
    MAX_EPOCHS,
    ONE_INPUT_RANGE,
    PATIENCE,
    SOLVERS,
    check_params,
    default_max_epochs,
    effective_lr,
    hidden_candidates,
)
from .protocol import regressor_tags

__all__ = ["HISTORY_KEPT", "LR_CONSTANT", "MAX_EPOCHS", "PATIENCE", "SOLVERS", "SigmoidMLPRegressor"]

#: ``callback(k, result)`` of :meth:`SigmoidMLPRegressor.fit`; ``False`` stops the run.
Callback = Callable[[int, TrainResult], bool | None]


class SigmoidMLPRegressor:
    r"""Fit ``F(x; w) ≈ f`` at the test points, scikit-learn style, by the solver the problem calls for.

    .. code-block:: text

        x' = scale_x(x),  d' = scale_y(y)                       min–max, into [−1, 1] and target_range
        w  = argmin  1/2 · Σ_t ‖d'_t − F(x'_t; w)‖²            until max_t |ŷ(t) − y_t| < tol
        ŷ  = scale_y⁻¹(F(scale_x(x); w))

    Inputs and targets are scaled column by column (:class:`~torch_sigmoid_mlp.MinMaxScaler`; one
    input into ``[−0.75, 1]``, :data:`~torch_sigmoid_mlp.estimator.params.ONE_INPUT_RANGE`),
    a :class:`~torch_sigmoid_mlp.SigmoidMLP` is built and trained by
    :func:`~torch_sigmoid_mlp.train`, and predictions are mapped back to the units of ``y``.
    With weights ``s_t`` (``sample_weight``) it minimises SPEC.md's ``E_s = 1/2 · Σ_t s_t ‖d'_t −
    F(x'_t; w)‖²`` instead: an integer weight is the point repeated that often, a zero weight the
    point left out (it takes no part in the scaling, the ``tol`` stop or the step either). A weight
    is a repeated point for every part of the fit: what is chosen from the number of points — the
    solver and the starts of ``"auto"``, the epoch cap, the default step — counts ``Σ_t s_t`` of them,
    and the stop rules, the ranking of starts and BR's ``β`` see ``E_s``. So a uniform weight ``c``
    is the data repeated ``c`` times (BR then finds the smaller weight decay of ``c``-fold data). Two
    draws over rows are the exceptions, where the repeated copies of a point may fall apart and a
    weighted point cannot: ``validation_fraction`` holds out whole rows, each with its weight, and
    mini-batches (``batch_size``) take whole rows, the step sized for ``B`` points of the mean weight.

    scikit-learn: the class implements its estimator protocol (:mod:`.protocol`) without importing
    it, passes its estimator checks and works with its tools (``Pipeline``, ``GridSearchCV``,
    ``clone``, ``check_is_fitted``); without scikit-learn the class works the same, on its own.
    The parameters are checked by ``fit`` (:data:`~.params.PARAMETER_CONSTRAINTS`), not by the
    constructor, which only stores them (scikit-learn's convention); numpy scalars are welcome
    wherever a number is.
    A ``pandas.DataFrame`` with string column names sets ``feature_names_in_``, and ``predict``
    and ``score`` then refuse a frame whose names differ from them or come in another order.

    Args:
        hidden: hidden layer widths, or one int for one hidden layer (scikit-learn's
            ``hidden_layer_sizes``); ``None`` is two layers of ``max(8, n)`` (:data:`DEFAULT_WIDTH`).
            ``"auto"`` fits each of :func:`~.params.hidden_candidates` (two layers of half, once
            and twice that width) and keeps the best by the rule that chooses among starts: the
            held-out error with ``validation_fraction``, else BR's evidence, which weighs how well
            a network fits against how many well-determined weights it needs; with a ``tol``, the
            smallest that reaches it. ``widths_`` holds each fit's result, ``model_.sizes`` the
            architecture kept. It costs the fits it makes.
        lr: ``η`` for ``"sgd"`` and ``"adaptive"`` (``None``: ``LR_CONSTANT / T`` for full batch,
            ``T`` the number of training points, and ``LR_CONSTANT / batch_size`` for mini-batches);
            the optimizer's ``lr`` for ``"rprop"``, ``"adam"``, ``"lbfgs"`` (``None``: theirs in
            :func:`~torch_sigmoid_mlp.train`); unused by ``"lm"``, ``"lm_cg"``, ``"br"`` and ``"br_cg"``.
        max_epochs: the most epochs of :func:`~torch_sigmoid_mlp.train`; ``None`` is
            :data:`MAX_EPOCHS` of the solver that runs, and for LM and BR no more than an epoch's
            cost ``N·P² + P³`` leaves of :data:`DENSE_WORK` (:func:`default_max_epochs`).
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
        dtype: of the weights and the scaled data: ``"float64"`` (default), ``"float32"``,
            ``"float16"``, ``"bfloat16"`` or the torch dtype. ``predict`` computes in float64 whatever
            it is, so that a point's prediction does not depend on the points predicted with it.
            float64 is the default because a float32 fit can stop where its rounding, not the
            data, ends it (LM finds no ``μ`` that lowers ``E`` on a plateau it would cross in
            float64), and on the networks this library trains an epoch costs about the same in
            either (``benchmarks/results/robust.md``: the ``dtype='float32'`` column).
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
            Bayesian regularisation without one (``"br_cg"`` for wide networks on fewer errors than
            weights), L-BFGS for large networks (with a fixed weight decay,
            :data:`~torch_sigmoid_mlp.training.solvers.AUTO_WEIGHT_DECAY`), steepest descent with
            ``batch_size``; ``result_.method`` says which ran. Or a name of
            :func:`~torch_sigmoid_mlp.train`'s ``method``: ``"sgd"``, ``"adaptive"``, ``"rprop"``,
            ``"adam"``, ``"lbfgs"``, ``"lm"``, ``"br"``, or ``"lm_cg"`` (LM's step by conjugate gradients
            on products with ``J``: no ``P×P`` matrix, so no ``LM_MAX_PARAMS`` limit;
            :mod:`~torch_sigmoid_mlp.training.matrix_free`), or ``"br_cg"`` (BR likewise, ``γ`` and the
            evidence estimated; :mod:`~torch_sigmoid_mlp.training.matrix_free_br`).
        restarts: train from this many starts; ``"auto"`` (default) chooses the number from the
            cost of one start (:func:`~torch_sigmoid_mlp.solvers.choose_restarts`). With a ``tol``
            the first start that reaches it ends the fit; without one every start runs until it
            has converged and the best is kept: the lowest held-out error with
            ``validation_fraction``, else the highest evidence (``"br"``), else the lowest ``E``; a
            start that explains less than half the targets' variance is kept only if all do.
            Start ``i ≥ 1`` draws its initial weights with seed ``seed + i``, as ``seed=seed + i``
            would. ``result_.restarts`` holds every start's result. With ``"auto"``, a BR fit
            whose best start explains less than 90 % of the variance on the training points gets one
            start more, from the minimum of ``E``
            (:func:`~torch_sigmoid_mlp.solvers.wants_second_opinion`).
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
        dtype="float64",
        seed: int = 0,
        random_state: int | None = None,
        logdir: str | None = None,
        progress: bool = False,
        solver: str = "auto",
        restarts: int | str = "auto",
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

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments by name (scikit-learn's ``clone`` and searches use them).

        ``deep`` is in scikit-learn's signature; with no nested estimators it changes nothing.
        """
        return {name: getattr(self, name) for name in _parameter_names(type(self))}

    def set_params(self, **params) -> SigmoidMLPRegressor:
        """Change constructor arguments by name; an unknown name is a ``ValueError``. Returns ``self``."""
        names = _parameter_names(type(self))
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"unknown parameter {name!r}; valid ones are {list(names)}")
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

    #: scikit-learn's word for what this estimator is (its tags say it too)
    _estimator_type = "regressor"

    def __sklearn_tags__(self):
        """scikit-learn's tags: a regressor of one or several outputs, on dense finite data."""
        return regressor_tags()

    def __getstate__(self) -> dict:
        # a torch.Generator does not pickle; its state (a uint8 tensor) does
        state = dict(self.__dict__)
        if isinstance(state.get("_generator"), torch.Generator):
            state["_generator"] = state["_generator"].get_state()
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if isinstance(state.get("_generator"), Tensor):
            generator = torch.Generator()
            generator.set_state(state["_generator"])
            state["_generator"] = generator
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

        Raises:
            ValueError: bad data or parameters, found before any work: among them a ``solver``
                ``"lm"``/``"br"`` network of more than ``LM_MAX_PARAMS`` weights, a network the free
                memory cannot hold (:func:`~torch_sigmoid_mlp.core.memory.check_memory`), a device
                with no data (``"meta"``), a column whose range overflows.
        """
        settings = self._settings()
        if self.warm_start and hasattr(self, "model_"):
            return self._continue(X, y, sample_weight, settings, callback, writer)
        X, Y, weights, names, y_1d = check_xy(self, X, y, sample_weight)
        _refuse_before_work(self.solver, X.shape[1], Y.shape[1], X.shape[0], settings)
        lo, hi = settings.target_range
        self.x_scaler_ = MinMaxScaler(ONE_INPUT_RANGE if X.shape[1] == 1 else INPUT_RANGE).fit(X)
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
        if settings.hidden == "auto":
            self._fit_widths(X, Y, weights, settings, callback, writer)
        else:
            if hasattr(self, "widths_"):
                del self.widths_  # an earlier hidden="auto" fit's, not this one's
            (hidden,) = _hidden_layers(X.shape[1], settings)
            self.model_ = self._network(X.shape[1], hidden, Y.shape[1], settings)
            self.result_ = self._train(
                X, Y, weights, settings, restarts=settings.restarts, callback=callback, writer=writer
            )
        _warn_if_far(self.result_)
        return self

    def _network(self, n: int, hidden: tuple[int, ...], m: int, settings) -> SigmoidMLP:
        return _allocate(n, hidden, m, settings, self._generator)

    def _fit_widths(self, X, Y, weights, settings, callback, writer) -> None:
        """``hidden="auto"``: a fit for each of :func:`hidden_candidates`, smallest first, each from
        the same seed; the best by ``train``'s rule among starts is kept, and with a ``tol`` the
        first that reaches it ends the search. ``widths_`` keeps every fit's result."""
        if self.logdir is not None or writer is not None:
            raise ValueError("hidden='auto' fits several networks: give hidden to log one run to TensorBoard")
        self.widths_, best = {}, None
        for hidden in hidden_candidates(X.shape[1]):
            self._generator = torch.Generator().manual_seed(settings.seed)
            self.model_ = self._network(X.shape[1], hidden, Y.shape[1], settings)
            result = self._train(
                X, Y, weights, settings, restarts=settings.restarts, callback=callback, writer=None
            )
            self.widths_[hidden] = result
            if best is None or _rank(result) < _rank(best[1]):
                best = (self.model_, result, self._generator)
            if result.converged:
                break
        self.model_, self.result_, self._generator = best

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
        X, Y, weights = check_more_data(self, X, y, sample_weight)
        self._generator = torch.Generator().manual_seed(settings.seed)
        # one start: the fitted weights go on, where a restart would throw them away
        self.result_ = self._train(X, Y, weights, settings, restarts=1, callback=callback, writer=writer)
        return self

    def _continue(self, X, y, sample_weight, settings, callback, writer) -> SigmoidMLPRegressor:
        """``fit`` with ``warm_start``: the run goes on to ``max_epochs`` epochs in all."""
        X, Y, weights = check_more_data(self, X, y, sample_weight)
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
        x, d, s, validation = self._held_out(x, d, s, settings.validation_fraction)
        # A weight is a repeated point: what is decided from the number of points (the solver, the
        # starts, the epoch cap, the step) counts Σ_t s_t of them, in float64 before the cast, so that
        # integer weights decide as the repeated points do.
        weight_sum = None if s is None else s.sum().item()
        P, N = num_weights(self.model_.weights), (weight_sum or x.shape[0]) * d.shape[1]
        rows = x.shape[0] * d.shape[1]  # R = T·m, the data space's rows
        method = self._method(N, validation is not None, before, rows)
        if auto := restarts == "auto":
            restarts = choose_restarts(
                method, P, N, tol=settings.tol is not None, distributed=is_distributed(), rows=rows
            )
        ftol, window = CONVERGENCE.get(method, (None, 10))
        lr = effective_lr(settings, method, x.shape[0], weight_sum)
        max_epochs = (
            settings.max_epochs if settings.max_epochs is not None else default_max_epochs(method, P, N)
        )
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

        run = dict(
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
            ftol=ftol,
            window=window,
            options=_auto_options(self.solver, method),
        )
        result = train(self.model_, x, d, **run)
        if auto and before is None and wants_second_opinion(result, tol=settings.tol is not None, P=P, N=N):
            result = _second_opinion(self.model_, x, d, run, result, self._generator.initial_seed())
        return result

    def _held_out(self, x: Tensor, d: Tensor, s: Tensor | None, fraction: float | None):
        """``(x, d, s)`` of the points trained on and ``(x, d)`` of those held out (``None`` without a
        ``validation_fraction``), drawn from the run's generator."""
        if not fraction:
            return x, d, s, None
        T = x.shape[0]
        n_val = round(T * fraction)
        if not 1 <= n_val < T:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {T} points leaves "
                f"{n_val} for validation and {T - n_val} for training; both need at least one"
            )
        order = torch.randperm(T, generator=self._generator)
        val, fit = order[:n_val].to(x.device), order[n_val:]
        return x[fit.to(x.device)], d[fit.to(x.device)], None if s is None else s[fit], (x[val], d[val])

    def _method(self, N: float, validation: bool, before: TrainResult | None, rows: int) -> str:
        """The solver that runs: ``solver``, or the one ``"auto"`` chose (kept by a continued run);
        ``rows = T·m`` of the points fitted (``N`` counts them by their sample weights)."""
        if self.solver != "auto":
            return self.solver
        if before is not None:
            return before.method
        if self.momentum:
            return "sgd"
        P = num_weights(self.model_.weights)
        return choose_method(
            P,
            N,
            tol=self.tol is not None,
            validation=validation,
            batch_size=self.batch_size,
            distributed=is_distributed(),
            rows=rows,
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
        return effective_lr(self._settings(), method, n_points, weight_sum)

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
        check_fitted(self)
        y = self._forward(check_X(self, X))  # (T, m)
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
        check_fitted(self)
        X_t = check_X(self, X)
        Y, _ = check_y(self, y, X_t)
        s = check_weights(sample_weight, X_t.shape[0])
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
        check_fitted(self)
        model_file.write(self, path)

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
                not match), holds non-finite weights, is not a saved regressor, or a field fails
                its check (:func:`~torch_sigmoid_mlp.estimator.model_file.check_state`, which
                names it), before anything is built from it.
        """
        return model_file.read(cls, path, device)

    # -- checks ------------------------------------------------------------------------------------

    def _settings(self) -> types.SimpleNamespace:
        """The parameters checked by :func:`~torch_sigmoid_mlp.estimator.params.check_params`."""
        return check_params(self.get_params())


def _hidden_layers(n: int, settings) -> list[tuple[int, ...]]:
    """The hidden layers of every network ``fit`` builds for ``n`` inputs."""
    if settings.hidden == "auto":
        return hidden_candidates(n)
    return [settings.hidden if settings.hidden is not None else (max(DEFAULT_WIDTH, n),) * 2]


def _refuse_before_work(solver: str, n: int, m: int, T: int, settings) -> None:
    """A ``ValueError`` for settings that cannot run, before anything is allocated: a dense solver's
    size limit (:func:`~torch_sigmoid_mlp.solvers.check_dense_size`) and memory that is not free
    (:func:`~torch_sigmoid_mlp.core.memory.check_memory`, the command line's estimate too)."""
    for hidden in _hidden_layers(n, settings):
        sizes = (n, *hidden, m)
        check_dense_size(solver, weights_of_sizes(sizes))
        check_memory(sizes, T, settings.device, settings.dtype)


def _allocate(n: int, hidden: tuple[int, ...], m: int, settings, generator) -> SigmoidMLP:
    """The network, or a ``ValueError`` where its memory cannot be had (the estimate is a lower bound:
    the allocation itself may still fail)."""
    try:
        return SigmoidMLP(n, hidden, m, device=settings.device, dtype=settings.dtype, generator=generator)
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "alloc" not in str(exc):
            raise
        sizes = "-".join(map(str, (n, *hidden, m)))
        raise ValueError(f"not enough memory for a {sizes} network on {settings.device}") from exc


def _auto_options(solver: str, method: str) -> dict | None:
    """The solver's options ``"auto"`` adds: the large networks' L-BFGS minimises ``E_s + (α/2)·Σ w²``
    (``α = AUTO_WEIGHT_DECAY``); a solver given by name runs with its own defaults."""
    return {"weight_decay": AUTO_WEIGHT_DECAY} if solver == "auto" and method == "lbfgs" else None


def _second_opinion(model: SigmoidMLP, x: Tensor, d: Tensor, run: dict, result: TrainResult, seed: int):
    """One start more, from the minimum of ``E`` (BR's ``start="minimum"``), where the best of
    ``restarts="auto"``'s ``"trainbr"`` starts explains little of the targets' variance
    (:func:`~torch_sigmoid_mlp.solvers.wants_second_opinion`); it is kept if it ranks better by
    ``train``'s rule and has the higher evidence.

    It is start ``k`` (seed ``seed + k``) after the ``k`` before it, logged to ``logdir/start<k>``.
    """
    starts = list(result.restarts) or [result]
    k = len(starts)
    kept = [W.detach().clone() for W in model.weights]
    generator = torch.Generator().manual_seed(seed + k)
    model.reset_parameters(generator=generator)
    options = {**(run.get("options") or {}), "start": "minimum"}
    again = {
        **run,
        "restarts": 1,
        "generator": generator,
        "logdir": start_dir(run["logdir"], k),
        "options": options,
    }
    other = train(model, x, d, **again)
    starts.append(other)
    seconds = result.seconds + other.seconds
    # kept only where the evidence agrees: what this start is for is an optimum the evidence prefers
    # (with validation_fraction the held-out error of a few points alone took worse fits, diabetes)
    wins = other.evidence is not None and (result.evidence is None or other.evidence > result.evidence)
    if wins and _rank(other) < _rank(result):
        return dataclasses.replace(other, restarts=starts, start=k, seconds=seconds)
    with torch.no_grad():
        torch._foreach_copy_([W.detach() for W in model.weights], kept)
    return dataclasses.replace(result, restarts=starts, seconds=seconds)


def _warn_if_far(result: TrainResult) -> None:
    """A :class:`~torch_sigmoid_mlp.ConvergenceWarning` when the fit took no step (stopped at epoch 0 by
    anything but ``tol``, ``max_epochs=0`` or a callback), or explains less than half of the
    targets' variance on the training points (``result.r2 < COLLAPSED_R2``).

    A fit that met its ``tol`` so is one whose targets vary little against ``tol`` (a near-constant
    output meets it, from the first epoch on); it is told so, rather than to try more starts."""
    if result.epochs == 0 and result.stop_reason not in ("tol", "max_epochs", "callback"):
        # no step was taken, whatever R² the initial weights score: never a silent non-fit
        warnings.warn(
            f"the fit took no step: solver {result.method!r} stopped by {result.stop_reason!r} at epoch 0, "
            "so the weights are the initial ones. Try another solver, or check the data and sample_weight",
            ConvergenceWarning,
            stacklevel=3,
        )
        return
    if result.r2 is None or result.r2 >= COLLAPSED_R2 or result.stop_reason == "callback":
        return
    explains = (
        f"explains only {100 * max(result.r2, 0.0):.0f} % of the targets' variance on the training points"
    )
    if result.stop_reason == "tol":
        message = (
            f"max |F(x_t) − d_t| < tol holds after {result.epochs} epoch(s), but the fit {explains} "
            f"(R² {result.r2:.3f}): the targets vary little against tol, so a near-constant output "
            "meets it. A smaller tol asks for their shape"
        )
    elif result.epochs:
        message = (
            f"the fit {explains} (R² {result.r2:.3f}; solver {result.method!r}, stopped by "
            f"{result.stop_reason!r}, {max(1, len(result.restarts))} start(s)): no better than a "
            "near-constant output. Try more restarts, more hidden neurons, or another solver; if the "
            "targets are mostly noise, this may be the best fit there is"
        )
    else:
        return
    warnings.warn(message, ConvergenceWarning, stacklevel=3)


@functools.cache
def _parameter_names(cls) -> tuple[str, ...]:
    """The constructor's keyword arguments, in its order (scikit-learn reads them the same way)."""
    return tuple(name for name in inspect.signature(cls.__init__).parameters if name != "self")
