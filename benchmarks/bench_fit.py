"""Fits of public, reproducible targets: every solver of the estimator beside scikit-learn and FANN.

Two kinds of problem, all generated here or loaded from ``sklearn.datasets`` (no download):

- **Uniform bound** (``T ≤ 1000``): smooth 1-, 2- and 3-D functions and two teacher networks of
  SPEC's default architecture, each with hidden layers and a bound ``tol`` in the target's units.
  A fit *reaches* the bound when ``max_t |F(x_t) − d_t| < tol`` at every point, tested here, in
  float64 and the target's units, on the predictions of the fitted model.
- **Held-out error**: Friedman 1, 2, 3 (600 points, ``random_state=0``, no noise) and the diabetes
  data, each split 75/25 (``train_test_split(random_state=0)``); no ``tol``; test R² and MSE.

Contenders, each from seeds 0–9 for a bound (0–2 with ``--quick``) and 0–2 for a held-out set,
interleaved (seed by seed, every contender in turn, in an order that rotates):

- ours: ``SigmoidMLPRegressor(hidden=h, tol=tol, solver=S, seed=k, device="cpu")`` with every
  other setting at its default, for each ``S`` in ``torch_sigmoid_mlp.training.METHODS`` and
  ``"auto"`` where the estimator takes it. Epochs and seconds are its ``result_``'s.
- scikit-learn ``MLPRegressor(hidden_layer_sizes=h, activation="logistic", solver=adam|lbfgs,
  random_state=k)``, its output unit linear, with biases, on the same min–max scaling as ours
  (inputs to (0.1, 0.9), targets to (0.1, 0.9), fitted on the training points). For the bound:
  ``alpha=0`` (ours has no penalty), ``tol=0``, no iteration limit, and ``warm_start``: where
  L-BFGS-B stops by its own test (the relative reduction of the loss, which scikit-learn does not
  expose) it is fitted again from there, until the budget is spent. The bound is tested after
  every adam epoch and every lbfgs evaluation of the loss (line-search points included: each is a
  weight vector the fit could end on), off the clock, by hooks on two private methods of
  scikit-learn 1.x. For held-out error: its defaults (its own stopping rule, ``alpha=1e-4``) with
  ``max_iter=2000``, on our scaling and, as ``standardised``, on zero-mean unit-variance inputs and
  targets (the scaling its user guide recommends and its default ``tol`` is sized for).
- FANN 2.2 (Debian's libfann2, float build, through ctypes) where installed: ``[n, h…, 1]`` with
  ``FANN_SIGMOID`` units (FANN's default steepness 0.5 makes it ``1/(1 + e^−s)``) and biases,
  ``FANN_TRAIN_RPROP``, FANN's other defaults, weights drawn by ``fann_randomize_weights(−0.1,
  0.1)`` after ``srand(k)``; one ``fann_train_epoch`` at a time, on our scaling. For the bound:
  its bit-fail count with ``bit_fail_limit = tol`` (scaled) after each epoch, confirmed on the
  updated weights by ``fann_test_data``. For held-out error: 15 % of the training points held out
  (drawn with ``k``), the weights of the best validation MSE kept, stopped after 200 epochs
  without improvement or 5000 in all.

Every fit gets a budget of CPU seconds of training (``--budget`` for a bound, ``--budget-heldout``
for a held-out set): CPU time, which other work on the machine does not stretch; the seconds
reported are wall seconds, as ``result_.seconds`` is. scikit-learn and FANN stop at the budget.
Ours runs with its defaults where ``max_epochs`` times the epoch rate (measured once per problem
and solver on two short fits) fits the budget, else with ``max_epochs`` cut to fit it; the table
gives the cut. A contender that reaches a bound from none of the first ``--give-up`` seeds (3),
each in the whole budget, is not run on the rest (2 with ``--quick``).

Columns: how many seeds reached the bound; the median epochs and seconds of training over those
that did; the median final ``max|err|`` over all seeds; for held-out sets the median test R² (with
the range) and MSE. Medians, not means: one slow start is not the typical fit. One torch and BLAS
thread. ``results/fit.json`` holds every fit; the Markdown ends with the short version, one line
per problem: the best of ours beside the best of scikit-learn and FANN.

    python benchmarks/bench_fit.py
    python benchmarks/bench_fit.py --quick
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import ctypes.util
import dataclasses
import datetime
import functools
import inspect
import json
import math
import os
import signal
import statistics
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import machine
import numpy as np
import torch
from fann import FANN_SIGMOID, FANN_TRAIN_RPROP, FannTrainData
from sklearn.datasets import load_diabetes, make_friedman1, make_friedman2, make_friedman3
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from threadpoolctl import threadpool_limits

from torch_sigmoid_mlp import SigmoidMLP, SigmoidMLPRegressor, estimator, sine_demo, training

RESULTS = Path(__file__).resolve().parent / "results"
SCALE = (0.1, 0.9)  # the estimator's INPUT_RANGE and default target_range, for every contender
HELDOUT_SKLEARN_MAX_ITER = 2000
FANN_VAL_FRACTION, FANN_PATIENCE, FANN_MAX_EPOCHS = 0.15, 200, 5000


# -- problems -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Problem:
    name: str
    hidden: tuple[int, ...]
    X: np.ndarray  # (T, n) training points
    y: np.ndarray  # (T,)
    tol: float | None = None  # the uniform bound; None: a held-out set
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    quick: bool = False  # in the --quick subset

    @property
    def label(self) -> str:
        sizes = "-".join(str(s) for s in (self.X.shape[1], *self.hidden, 1))
        bound = f", tol {self.tol:g}" if self.tol is not None else ""
        return f"{self.name} ({sizes}, T = {len(self.X)}{bound})"


#: ``solver_variant``'s variants of ``"br_cg"``: the defaults of :class:`MatrixFreeBR` they set, and whether
#: its ``inverse_trace`` preconditions on the deflated basis (``coarse=``)
BR_CG_VARIANTS = {
    "probes": ({"trace_space": "probes"}, True),  # γ_l and the evidence from the probes on every problem
    "every": ({"trace_interval": 1}, True),  # γ estimated after every accepted step (the default)
    "interval8": ({"trace_interval": 8}, True),  # up to every 8th once γ settles (default in 6e1aebd–bbc01e7)
    # and drawn afresh every step, Jacobi alone: br_cg before issue 30's changes
    "fresh": ({"trace_space": "probes", "trace_recycle": False, "trace_interval": 1}, False),
}


@contextlib.contextmanager
def solver_variant(solver: str | None):
    """``solver`` as ``SigmoidMLPRegressor(solver=…)`` takes it, with a variant after ``@`` and options
    after ``:`` set for the ``with`` block (the estimator passes no solver options): ``"br_cg@probes"``,
    ``"br_cg@every"``, ``"br_cg@interval8"``, ``"br_cg@fresh"`` are ``"br_cg"`` as :data:`BR_CG_VARIANTS`
    sets it; ``"br_cg:cg_eta=1e-3"`` (``name[@variant]:key=value,key=value``) sets those keyword
    defaults of the solver's class (on the class of its MRO whose ``__init__`` names the key), each
    value a Python literal or a bare string. ``"lbfgs:weight_decay=3e-3"`` is L-BFGS by name with the
    weight decay ``"auto"`` gives it above 1500 weights, at that ``α``."""
    head, _, given = (solver or "").partition(":")
    name, _, variant = head.partition("@")
    if variant and (name != "br_cg" or variant not in BR_CG_VARIANTS):
        raise ValueError(f"unknown solver variant {variant!r} in {solver!r}")
    options = dict(option_value(item, solver) for item in given.split(",")) if given else {}
    if name == "lbfgs" and options:
        with _lbfgs_options(options):
            yield name
        return
    module = training.matrix_free_br
    patched = []  # (kwdefaults, the key, its value before)
    for key, value in options.items():
        owners = [c for c in getattr(training.solvers.SECOND_ORDER.get(name), "__mro__", ())
                  if key in (getattr(c.__dict__.get("__init__"), "__kwdefaults__", None) or {})]  # fmt: skip
        if not owners:
            raise ValueError(f"{name!r} has no keyword default {key!r} (in {solver!r})")
        defaults = owners[0].__init__.__kwdefaults__
        patched.append((defaults, key, defaults[key]))
        defaults[key] = value
    defaults = module.MatrixFreeBR.__init__.__kwdefaults__
    kept, inverse_trace = dict(defaults), module.inverse_trace
    if variant:
        variant_options, coarse = BR_CG_VARIANTS[variant]
        defaults.update(variant_options)
        module.inverse_trace = functools.partial(inverse_trace, coarse=coarse)
    try:
        yield name or None
    finally:
        defaults.update(kept)
        module.inverse_trace = inverse_trace
        for kwdefaults, key, value in reversed(patched):
            kwdefaults[key] = value


@contextlib.contextmanager
def _lbfgs_options(options: dict):
    """The estimator's L-BFGS fits with ``options`` (``weight_decay`` alone) in the ``with`` block."""
    if set(options) != {"weight_decay"}:
        raise ValueError(f"lbfgs takes weight_decay alone as a variant option, got {sorted(options)}")
    regressor = estimator.regressor
    kept = regressor._auto_options
    regressor._auto_options = lambda solver, method: dict(options) if method == "lbfgs" else None
    try:
        yield
    finally:
        regressor._auto_options = kept


def option_value(item: str, solver: str) -> tuple[str, object]:
    """``"key=value"`` of a ``solver_variant`` name as ``(key, value)``: a Python literal, else the string."""
    key, equals, text = item.partition("=")
    if not equals or not key:
        raise ValueError(f"solver options are key=value, got {item!r} in {solver!r}")
    try:
        return key, ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return key, text


def grid(lo: float, hi: float, points: int) -> np.ndarray:
    return np.linspace(lo, hi, points).reshape(-1, 1)  # (T, 1)


def teacher(n: int, T: int, tol: float) -> Problem:
    """bench_lm's teacher: SigmoidMLP(n) (seed 8, weights ×2), x ∈ [−1, 1)ⁿ; the student is (n, n)."""
    g = torch.Generator().manual_seed(8)
    net = SigmoidMLP(n, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for W in net.weights:
            W.mul_(2.0)
        x = torch.rand(T, n, generator=g, dtype=torch.float64) * 2 - 1  # (T, n)
        d = net(x)[:, 0]  # (T,)
    return Problem(f"teacher SigmoidMLP({n})", (n, n), x.numpy(), d.numpy(), tol)


def problems() -> list[Problem]:
    demo = sine_demo()
    rng = np.random.default_rng(0)
    sine3 = grid(0.0, 3 * math.pi, 60)
    tanh = grid(-3.0, 3.0, 50)
    decay = np.round(np.arange(21) * 0.1, 10).reshape(-1, 1)  # the README's decay.csv: t = 0, 0.1, …, 2
    g1, g2 = np.meshgrid(np.linspace(-2, 2, 10), np.linspace(-2, 2, 10))
    bump = np.column_stack([g1.ravel(), g2.ravel()])  # (100, 2)
    wave = rng.uniform(-1.5, 1.5, size=(200, 2))
    cube = rng.uniform(-1.0, 1.0, size=(300, 3))
    smooth = [
        Problem("sine demo, sin x on [−π/2, π/2]", demo.hidden, demo.x.numpy(), demo.d.numpy(), demo.tol,
                quick=True),
        Problem("sin x on [0, 3π]", (10, 10), sine3, np.sin(sine3[:, 0]), 0.02),
        Problem("3 + 2·tanh x on [−3, 3]", (4, 4), tanh, 3 + 2 * np.tanh(tanh[:, 0]), 0.02),
        Problem("5·exp(−t) on [0, 2]", (4, 4), decay, 5 * np.exp(-decay[:, 0]), 0.05),
        Problem("exp(−x₁² − x₂²), 10×10 grid on [−2, 2]²", (8, 8), bump,
                np.exp(-(bump**2).sum(axis=1)), 0.05, quick=True),
        Problem("sin 2x₁ · cos x₂ on [−1.5, 1.5]²", (10, 10), wave,
                np.sin(2 * wave[:, 0]) * np.cos(wave[:, 1]), 0.05),
        Problem("sin 2x₁ + x₃·cos 2x₂ on [−1, 1]³", (10, 10), cube,
                np.sin(2 * cube[:, 0]) + np.cos(2 * cube[:, 1]) * cube[:, 2], 0.05),
        teacher(2, 64, 0.01),
        teacher(3, 64, 0.01),
    ]  # fmt: skip
    heldout = []
    for name, make, hidden in (
        ("Friedman 1", make_friedman1, (10, 10)),
        ("Friedman 2", make_friedman2, (8, 8)),
        ("Friedman 3", make_friedman3, (8, 8)),
        ("diabetes", None, (10, 10)),
    ):
        X, y = load_diabetes(return_X_y=True) if make is None else make(n_samples=600, random_state=0)
        X, X_test, y, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
        heldout.append(Problem(name, hidden, X, y, None, X_test, y_test, quick=name == "diabetes"))
    return smooth + heldout


# -- contenders: ours ---------------------------------------------------------------------------------


def clocks() -> tuple[float, float]:
    """Wall and CPU seconds. Budgets are CPU seconds, which other work on the machine does not stretch;
    the seconds reported are wall seconds, as ``result_.seconds`` is."""
    return time.perf_counter(), time.process_time()


class OutOfTime(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` on the way swallows it."""


@contextlib.contextmanager
def alarm(seconds: float):
    def ring(signum, frame):
        raise OutOfTime

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


DEFAULT_MAX_EPOCHS = inspect.signature(SigmoidMLPRegressor).parameters["max_epochs"].default
# max_epochs=None: each solver's own default, where the estimator has one table of them
SOLVER_MAX_EPOCHS = getattr(estimator, "MAX_EPOCHS", {})


def our_solvers() -> list[str]:
    """``training.METHODS``, and ``"auto"`` where the estimator takes it (fitted once to find out)."""
    solvers = list(training.METHODS)
    X = np.linspace(0, 1, 8).reshape(-1, 1)
    try:
        SigmoidMLPRegressor(hidden=(2,), solver="auto", max_epochs=1, device="cpu").fit(X, X[:, 0])
    except ValueError:
        return solvers
    return [*solvers, "auto"] if "auto" not in solvers else solvers


def ours(solver: str):
    def build(p: Problem, seed: int, **settings) -> SigmoidMLPRegressor:
        settings = {"tol": p.tol, "solver": solver} | settings
        return SigmoidMLPRegressor(hidden=p.hidden, seed=seed, device="cpu", **settings)

    def run(p: Problem, seed: int, budget: float, plan: dict) -> dict:
        if "max_epochs" not in plan:
            plan |= epochs_for(build, p, budget)
        settings = {} if plan["max_epochs"] is None else {"max_epochs": plan["max_epochs"]}
        reg = build(p, seed, **settings)
        try:
            with alarm(3 * budget + 5):  # a safety net only: max_epochs is what keeps to the budget
                reg.fit(p.X, p.y)
        except OutOfTime:
            return {"stop": "out of time", "epochs": None, "seconds": None}
        r = reg.result_
        return {
            "stop": r.stop_reason,
            "method": getattr(r, "method", solver),
            "epochs": r.epochs,
            "seconds": r.seconds,
            "max_epochs": plan["max_epochs"],
            "predict": reg.predict,
        }

    return run


def epochs_for(build, p: Problem, budget: float) -> dict:
    """``max_epochs``: the default (``None``) where the default run fits ``budget`` at the measured rate.

    The default is that of the solver that runs (for ``"auto"``, the one it chooses on this
    problem, found by a fit of one epoch). The rate is CPU seconds per epoch of that solver from two
    runs of seed 0 without ``tol``, of ``k`` and ``4k`` epochs: their difference leaves out what a
    fit costs before its first epoch.
    """
    first = build(p, 0, max_epochs=1)
    first.fit(p.X, p.y)
    method = getattr(first.result_, "method", first.solver)
    default = SOLVER_MAX_EPOCHS.get(method, DEFAULT_MAX_EPOCHS)

    def probe(epochs: int) -> tuple[float, int]:
        reg = build(p, 0, max_epochs=epochs, tol=None, solver=method)
        began = time.process_time()
        with alarm(3 * budget + 5):
            reg.fit(p.X, p.y)
        return time.process_time() - began, reg.result_.epochs

    k = 25
    while True:
        (c1, n1), (c4, n4) = probe(k), probe(4 * k)
        if c4 >= 0.05 or n4 < 4 * k or 4 * k >= 20_000:
            break
        k *= 4
    rate = (c4 - c1) / (n4 - n1) if n4 > n1 and c4 > c1 else c4 / max(n4, 1)
    fits = int(budget / rate) if rate > 0 else None
    plan = {"default_max_epochs": default, "seconds_per_epoch": rate}
    if fits is None or (isinstance(default, int) and fits >= default):
        return plan | {"max_epochs": None}
    return plan | {"max_epochs": max(fits, 1)}


# -- contenders: scikit-learn -------------------------------------------------------------------------


class _Stop(BaseException):
    pass


@dataclasses.dataclass
class Watch:
    """What the hooks test (scaled points, the scaled bound, the training-time budget) and count."""

    x: np.ndarray
    d: np.ndarray  # (T, 1)
    bound: float | None
    budget: float  # CPU seconds
    began: tuple[float, float] = (0.0, 0.0)  # wall and CPU clocks at the start
    off_clock: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0])  # in the hooks' tests
    evaluations: int = 0  # adam: epochs; lbfgs: evaluations of the loss and its gradient
    reached: bool = False
    best: np.ndarray | None = None  # lbfgs: the packed weights to end on
    best_loss: float = math.inf

    def start(self) -> None:
        self.began = clocks()

    def pause(self, since: tuple[float, float]) -> None:
        now = clocks()
        self.off_clock = [off + n - s for off, n, s in zip(self.off_clock, now, since)]

    def training_seconds(self) -> tuple[float, float]:
        """Wall and CPU seconds of training so far."""
        return tuple(n - b - off for n, b, off in zip(clocks(), self.began, self.off_clock))

    def spent(self) -> bool:
        return self.training_seconds()[1] > self.budget


class WatchedMLP(MLPRegressor):
    """MLPRegressor whose run stops at the uniform bound or the budget, tested off the clock.

    Hooks on scikit-learn 1.x's private ``_update_no_improvement_count`` (called after each adam
    epoch) and ``_loss_grad_lbfgs`` (each evaluation of the objective for L-BFGS-B).
    """

    watch: Watch

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        super()._update_no_improvement_count(early_stopping, X, y, sample_weight)
        w, began = self.watch, clocks()
        w.evaluations += 1
        if w.bound is not None:
            out = self.predict(w.x).reshape(w.d.shape)
            w.reached = bool(np.abs(out - w.d).max() < w.bound)
        w.pause(began)
        if w.reached or w.spent():
            self._no_improvement_count = self.n_iter_no_change + 1  # adam's trigger_stopping then stops

    def _loss_grad_lbfgs(self, packed, X, y, sample_weight, activations, *rest):
        loss, grad = super()._loss_grad_lbfgs(packed, X, y, sample_weight, activations, *rest)
        w, began = self.watch, clocks()
        w.evaluations += 1
        if loss < w.best_loss:
            w.best_loss, w.best = loss, packed.copy()
        if w.bound is not None and np.abs(activations[-1] - y).max() < w.bound:
            w.reached, w.best = True, packed.copy()
        w.pause(began)
        if w.reached or w.spent():
            raise _Stop
        return loss, grad


def sklearn_mlp(solver: str, scaling: str = "minmax"):
    """``scaling``: ``"minmax"`` as ours, or ``"standard"`` (zero mean, unit variance: what scikit-learn's
    user guide recommends for its MLPs, and what its default ``tol`` is sized for)."""

    def scaler():
        return MinMaxScaler(SCALE) if scaling == "minmax" else StandardScaler()

    def run(p: Problem, seed: int, budget: float, plan: dict) -> dict:
        sx, sy = scaler().fit(p.X), scaler().fit(p.y.reshape(-1, 1))
        x, d = sx.transform(p.X), sy.transform(p.y.reshape(-1, 1))  # (T, n), (T, 1)
        if p.tol is not None:
            # warm_start: where L-BFGS-B stops by its own tests (its relative reduction of the loss,
            # which scikit-learn does not expose), fit again from the weights it stopped at
            settings = {"alpha": 0.0, "tol": 0.0, "max_iter": 10**9, "n_iter_no_change": 10**9,
                        "max_fun": 10**9, "warm_start": True}  # fmt: skip
            bound = p.tol * sy.scale_[0]
        else:
            settings, bound = {"max_iter": HELDOUT_SKLEARN_MAX_ITER}, None
        mlp = WatchedMLP(hidden_layer_sizes=p.hidden, activation="logistic", solver=solver, random_state=seed,
                         **settings)  # fmt: skip
        mlp.watch = w = Watch(x, d, bound, budget)
        fits = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            w.start()
            while True:
                done = w.evaluations
                try:
                    mlp.fit(x, d[:, 0])
                except _Stop:
                    mlp._unpack(w.best)  # fit left the weights of its last evaluation
                fits += 1
                if p.tol is None or w.reached or w.spent() or w.evaluations == done:
                    break
        seconds, cpu = w.training_seconds()
        stop = "tol" if w.reached else "budget" if cpu > budget else "own rule"
        return {
            "stop": stop,
            "fits": fits,
            "epochs": w.evaluations,
            "seconds": seconds,
            "predict": lambda X: sy.inverse_transform(mlp.predict(sx.transform(X)).reshape(-1, 1))[:, 0],
        }

    return run


# -- contenders: FANN ---------------------------------------------------------------------------------

fann_type = ctypes.c_float  # the float build


def load_fann():
    """libfloatfann (or libfann, also float) with its prototypes, or ``None`` where not installed."""
    for name in ("floatfann", "fann"):
        path = ctypes.util.find_library(name)
        if path:
            break
    else:
        return None
    lib, ann, data = ctypes.CDLL(path), ctypes.c_void_p, ctypes.POINTER(FannTrainData)
    prototypes = {
        "fann_create_standard_array": (ann, [ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]),
        "fann_set_activation_function_hidden": (None, [ann, ctypes.c_int]),
        "fann_set_activation_function_output": (None, [ann, ctypes.c_int]),
        "fann_set_training_algorithm": (None, [ann, ctypes.c_int]),
        "fann_randomize_weights": (None, [ann, fann_type, fann_type]),
        "fann_set_bit_fail_limit": (None, [ann, fann_type]),
        "fann_get_bit_fail": (ctypes.c_uint, [ann]),
        "fann_create_train": (data, [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]),
        "fann_train_epoch": (ctypes.c_float, [ann, data]),
        "fann_test_data": (ctypes.c_float, [ann, data]),
        "fann_run": (ctypes.POINTER(fann_type), [ann, ctypes.POINTER(fann_type)]),
        "fann_copy": (ann, [ann]),
        "fann_destroy": (None, [ann]),
        "fann_destroy_train": (None, [data]),
    }
    for name, (restype, argtypes) in prototypes.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = restype, argtypes
    return lib


LIBC = ctypes.CDLL(None)  # FANN draws its weights with the C library's rand()


def fann_rprop(lib):
    def train_data(x: np.ndarray, d: np.ndarray):
        data = lib.fann_create_train(*x.shape, d.shape[1])
        # fann_create_train allocates input and output as one contiguous block of rows each
        ctypes.memmove(data.contents.input[0], x.ctypes.data, x.nbytes)
        ctypes.memmove(data.contents.output[0], d.ctypes.data, d.nbytes)
        return data

    def run(p: Problem, seed: int, budget: float, plan: dict) -> dict:
        sx, sy = MinMaxScaler(SCALE).fit(p.X), MinMaxScaler(SCALE).fit(p.y.reshape(-1, 1))
        x = np.ascontiguousarray(sx.transform(p.X), dtype=np.float32)  # (T, n)
        d = np.ascontiguousarray(sy.transform(p.y.reshape(-1, 1)), dtype=np.float32)  # (T, 1)
        sizes = (p.X.shape[1], *p.hidden, 1)
        ann = lib.fann_create_standard_array(len(sizes), (ctypes.c_uint * len(sizes))(*sizes))
        lib.fann_set_activation_function_hidden(ann, FANN_SIGMOID)
        lib.fann_set_activation_function_output(ann, FANN_SIGMOID)
        lib.fann_set_training_algorithm(ann, FANN_TRAIN_RPROP)
        LIBC.srand(seed)
        lib.fann_randomize_weights(ann, -0.1, 0.1)  # fann_create_standard's own range
        held = []
        if p.tol is not None:
            fit = train_data(x, d)
            lib.fann_set_bit_fail_limit(ann, p.tol * sy.scale_[0])
        else:
            order = np.random.default_rng(seed).permutation(len(x))
            n_val = round(len(x) * FANN_VAL_FRACTION)
            fit = train_data(x[order[n_val:]], d[order[n_val:]])
            val = train_data(x[order[:n_val]], d[order[:n_val]])
            held = [val]
        best, best_mse, best_epoch = None, math.inf, 0
        epochs, seconds, cpu, stop = 0, 0.0, 0.0, "budget"
        while cpu < budget:
            began = clocks()
            lib.fann_train_epoch(ann, fit)  # errors at w_k, then the RPROP update to w_{k+1}
            now = clocks()
            seconds, cpu = seconds + now[0] - began[0], cpu + now[1] - began[1]
            epochs += 1
            if p.tol is not None:
                # the epoch's bit-fail count is of w_k; confirm on the weights the network now holds
                if lib.fann_get_bit_fail(ann) == 0:
                    lib.fann_test_data(ann, fit)
                    if lib.fann_get_bit_fail(ann) == 0:
                        stop = "tol"
                        break
                continue
            mse = lib.fann_test_data(ann, held[0])
            if mse < best_mse:
                if best is not None:
                    lib.fann_destroy(best)
                best, best_mse, best_epoch = lib.fann_copy(ann), mse, epochs
            if epochs - best_epoch >= FANN_PATIENCE or epochs >= FANN_MAX_EPOCHS:
                stop = "early stopping" if epochs - best_epoch >= FANN_PATIENCE else "max_epochs"
                break
        if best is not None:
            lib.fann_destroy(ann)
            ann = best
        for data in (fit, *held):
            lib.fann_destroy_train(data)

        def predict(X: np.ndarray) -> np.ndarray:
            rows = np.ascontiguousarray(sx.transform(X), dtype=np.float32)
            pointer = ctypes.POINTER(fann_type)
            out = np.array([lib.fann_run(ann, row.ctypes.data_as(pointer))[0] for row in rows])
            return sy.inverse_transform(out.reshape(-1, 1))[:, 0]

        return {"stop": stop, "epochs": epochs, "seconds": seconds, "predict": predict,
                "release": lambda: lib.fann_destroy(ann)}  # fmt: skip

    return run


# -- running --------------------------------------------------------------------------------------------


def evaluate(p: Problem, out: dict) -> dict:
    """The fit's own numbers and, from its predictions in the target's units: max|err|, R², MSE."""
    predict = out.pop("predict", None)
    release = out.pop("release", None)
    if predict is not None:
        err = predict(p.X) - p.y
        out["max_abs_error"] = float(np.abs(err).max())
        if p.tol is not None:
            out["reached"] = out["max_abs_error"] < p.tol
        else:
            e = predict(p.X_test) - p.y_test
            out["test_mse"] = float(np.mean(e**2))
            out["test_r2"] = float(1 - np.sum(e**2) / np.sum((p.y_test - p.y_test.mean()) ** 2))
    else:
        out["reached"] = False
    if release is not None:
        release()
    return out


def med(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(p: Problem, fits: list[dict]) -> dict:
    s = {"seeds": len(fits), "max_abs_error": med(f.get("max_abs_error") for f in fits),
         "stops": dict(Counter(f["stop"] for f in fits).most_common())}  # fmt: skip
    methods = Counter(f.get("method") for f in fits if f.get("method"))
    if methods:
        s["method"] = "/".join(m for m, _ in methods.most_common())
    if any(f.get("max_epochs") for f in fits):
        s["max_epochs"] = max(f["max_epochs"] or 0 for f in fits)
    if p.tol is not None:
        done = [f for f in fits if f["reached"]]
        s |= {"reached": len(done), "epochs": med(f["epochs"] for f in done),
              "seconds": med(f["seconds"] for f in done),
              "slowest": max((f["seconds"] for f in done), default=None)}  # fmt: skip
    else:
        r2 = [f["test_r2"] for f in fits if "test_r2" in f]
        s |= {"test_r2": med(r2), "test_r2_range": [min(r2), max(r2)] if r2 else None,
              "test_mse": med(f.get("test_mse") for f in fits), "epochs": med(f["epochs"] for f in fits),
              "seconds": med(f["seconds"] for f in fits)}  # fmt: skip
    return s


def best(p: Problem, rows: dict[str, dict], names: list[str]) -> str | None:
    """The best contender among ``names``: most seeds reached, then the fastest; or the best test R²."""
    rows = {k: v for k, v in rows.items() if k in names}
    if not rows:
        return None
    if p.tol is not None:
        return min(rows, key=lambda k: (-rows[k]["reached"], rows[k]["seconds"] or math.inf,
                                        rows[k]["max_abs_error"] or math.inf))  # fmt: skip
    return max(rows, key=lambda k: rows[k]["test_r2"] if rows[k]["test_r2"] is not None else -math.inf)


def fmt_s(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def fmt(v, spec: str = ".3g") -> str:
    return "–" if v is None else format(v, spec)


def describe(p: Problem, name: str, s: dict) -> str:
    if p.tol is not None:
        if not s["reached"]:
            return f"{who(name, s)} 0/{s['seeds']} (median max|err| {fmt(s['max_abs_error'])})"
        reached = f"{s['reached']}/{s['seeds']}"
        return f"{who(name, s)} {reached} in {fmt_s(s['seconds'])} (slowest {fmt_s(s['slowest'])})"
    return f"{who(name, s)} R² {fmt(s['test_r2'], '.3f')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # fmt: off
    parser.add_argument("--quick", action="store_true", help="seeds 0–2, a few problems, short budgets")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for a bound (default 10, quick 3)")
    parser.add_argument("--seeds-heldout", type=int, default=None, help="for a held-out set (default 3)")
    parser.add_argument("--budget", type=float, default=None, help="CPU seconds per bound fit (default 1)")
    parser.add_argument("--budget-heldout", type=float, default=None, help="per held-out fit (default 2)")
    parser.add_argument("--give-up", type=int, default=None,
                        help="seeds after which a contender that reached no bound stops (3; quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    args = parser.parse_args()
    # fmt: on
    seeds = args.seeds or (3 if args.quick else 10)
    seeds_heldout = args.seeds_heldout or 3
    budget = args.budget or (0.2 if args.quick else 1.0)
    budget_heldout = args.budget_heldout or (0.2 if args.quick else 2.0)
    give_up = args.give_up or (2 if args.quick else 3)
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    info = machine.describe()
    started = time.perf_counter()

    contenders = {f"ours {s}": ours(s) for s in our_solvers()}
    contenders |= {"sklearn adam": sklearn_mlp("adam"), "sklearn lbfgs": sklearn_mlp("lbfgs")}
    heldout_only = {"sklearn adam, standardised": sklearn_mlp("adam", "standard"),
                    "sklearn lbfgs, standardised": sklearn_mlp("lbfgs", "standard")}  # fmt: skip
    contenders |= heldout_only
    lib = load_fann()
    if lib is not None:
        contenders["FANN rprop"] = fann_rprop(lib)
    ourselves = [k for k in contenders if k.startswith("ours")]
    others = [k for k in contenders if not k.startswith("ours")]
    print(
        f"contenders: {', '.join(contenders)}" + ("" if lib else " (libfann2 is not installed)"), flush=True
    )

    todo = [p for p in problems() if p.quick or not args.quick]
    record = []
    for p in todo:
        names = [k for k in contenders if p.tol is None or k not in heldout_only]
        plans = {k: {} for k in names}  # ours: the max_epochs found for the problem
        fits_of = {k: [] for k in names}
        stopped = set()
        for seed in range(seeds if p.tol is not None else seeds_heldout):
            # interleaved, in an order that rotates from seed to seed: load from other work on the
            # machine falls on every contender alike
            turn = seed % len(names)
            for name in names[turn:] + names[:turn]:
                if name in stopped:
                    continue
                run = contenders[name]
                fit = evaluate(p, run(p, seed, budget if p.tol is not None else budget_heldout, plans[name]))
                fits = fits_of[name]
                fits.append({"seed": seed, **fit})
                if p.tol is not None and len(fits) == give_up and not any(f["reached"] for f in fits):
                    stopped.add(name)  # each of these took the whole budget; the rest would too, most likely
        rows = {k: summarise(p, fits_of[k]) | plans[k] for k in names}
        for name in names:
            print(json.dumps({"problem": p.name, "contender": name, **rows[name]}), flush=True)
        record.append({"problem": p.label, "tol": p.tol, "hidden": p.hidden, "T": len(p.X),
                       "summary": rows, "fits": fits_of})  # fmt: skip
        ours_best, others_best = best(p, rows, ourselves), best(p, rows, others)
        shown = (
            [ours_best] if ours_best == "ours auto" or "ours auto" not in rows else ["ours auto", ours_best]
        )
        record[-1]["short"] = f"{p.label}: " + "; ".join(
            describe(p, k, rows[k]) for k in [*shown, others_best]
        )
        print(record[-1]["short"], flush=True)
    elapsed = time.perf_counter() - started

    # -- write --------------------------------------------------------------------------------------
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    suffix = "_quick" if args.quick else ""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    settings = {
        "seeds": seeds, "seeds_heldout": seeds_heldout, "budget_s": budget,
        "budget_heldout_s": budget_heldout, "give_up": give_up, "threads": args.threads,
        "default_max_epochs": DEFAULT_MAX_EPOCHS, "fann": lib is not None,
    }  # fmt: skip
    head = {"machine": machine.summary(info), "load_average": info["load_average"], "date": now,
            "command": command, "settings": settings, "elapsed_s": elapsed}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    write(RESULTS / f"fit{suffix}.json", json.dumps(head | {"problems": record}, indent=1) + "\n")
    md = markdown(head, record)
    write(RESULTS / f"fit{suffix}.md", md)
    print(md)


def who(name: str, s: dict) -> str:
    """The contender, and for ``auto`` the solver(s) it ran."""
    return name if "method" not in s or s["method"] == name.split()[-1] else f"{name} → {s['method']}"


def stops(s: dict) -> str:
    """Why the fits ended, with how many of each: ``tol 9, max_epochs 1``."""
    return ", ".join(f"{reason} {k}" for reason, k in s["stops"].items())


def max_epochs(name: str, s: dict) -> str:
    """Ours: the ``max_epochs`` it ran with, cut to the budget or its solver's default."""
    if not name.startswith("ours"):
        return "–"
    default = s.get("default_max_epochs")
    return f"{s['max_epochs']} of {default}" if s.get("max_epochs") else f"default, {default}"


def markdown(head: dict, record: list[dict]) -> str:
    settings, load = head["settings"], " / ".join(map(str, head["load_average"]))
    md = [
        f"## bench_fit ({head['date']})",
        "",
        f"Machine: {head['machine']}; load average at the start {load}. "
        f"`python benchmarks/{head['command']}`, {head['elapsed_s']:.0f} s in all. "
        f"Seeds 0–{settings['seeds'] - 1}; "
        f"a budget of {settings['budget_s']:g} CPU seconds of training per bound fit and "
        f"{settings['budget_heldout_s']:g} per held-out fit. Ours: `SigmoidMLPRegressor(hidden, tol, solver, "
        'seed, device="cpu")`, every other setting at its default but `max_epochs` where the last column '
        "says `k of n`: cut from its solver's default `n` to `k`, to keep to the budget; `a → b`: "
        "solver `a` ran `b`. scikit-learn: "
        '`MLPRegressor(activation="logistic")`, linear output unit, biases. FANN 2.2: RPROP, `FANN_SIGMOID`, '
        "biases" + ("" if settings["fann"] else " (not run here: libfann2 is not installed)") + ". "
        "The script's docstring has the details.",
        "",
        "### Uniform bound: max |F(x_t) − d_t| < tol at every point",
        "",
        f"Reached: from how many seeds (`0/{settings['give_up']}`: it reached the bound from none of the "
        f"first {settings['give_up']}, each in the whole budget, and was not run on the rest). Epochs and "
        "seconds of training: medians over the seeds that reached the bound; slowest: the most seconds "
        "one of them took. max|err|: the median at the end over all seeds run, in the target's units. "
        "Stop reasons, with how many seeds: ours' `result_.stop_reason`; for scikit-learn and FANN `tol`, "
        "`budget`, `own rule` (scikit-learn's own stopping test or `max_iter`), FANN's `early stopping` and "
        "`max_epochs` on the held-out sets.",
        "",
        "| problem | contender | reached | epochs | seconds to the bound | slowest | max\\|err\\| "
        "| max_epochs | stop reasons |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in record:
        if r["tol"] is None:
            continue
        for name, s in r["summary"].items():
            cap = max_epochs(name, s)
            md.append(f"| {r['problem']} | {who(name, s)} | {s['reached']}/{s['seeds']} | "
                      f"{fmt(s['epochs'], '.0f')} | {fmt_s(s['seconds'])} | {fmt_s(s['slowest'])} | "
                      f"{fmt(s['max_abs_error'], '.4f')} | {cap} | {stops(s)} |")  # fmt: skip
    md += [
        "",
        "### Held-out error (25 % test split, no tol)",
        "",
        f"Medians over seeds 0–{settings['seeds_heldout'] - 1}, R²'s range in brackets; epochs and seconds "
        "of training (scikit-learn's "
        "lbfgs: evaluations of the loss). `standardised`: scikit-learn on zero-mean, unit-variance inputs "
        "and targets, the scaling its default `tol` is sized for. Stop reasons as above.",
        "",
        "| problem | contender | test R² | test MSE | epochs | seconds | max_epochs | stop reasons |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in record:
        if r["tol"] is not None:
            continue
        for name, s in r["summary"].items():
            lo, hi = s["test_r2_range"] or (None, None)
            cap = max_epochs(name, s)
            md.append(f"| {r['problem']} | {who(name, s)} | {fmt(s['test_r2'], '.3f')} "
                      f"[{fmt(lo, '.3f')}, {fmt(hi, '.3f')}] | {fmt(s['test_mse'], '.4g')} | "
                      f"{fmt(s['epochs'], '.0f')} | {fmt_s(s['seconds'])} | {cap} | "
                      f"{stops(s)} |")  # fmt: skip
    md += ["", "### Short version: the best of ours; the best of scikit-learn and FANN", ""]
    md += [f"- {r['short']}" for r in record]
    return "\n".join(md) + "\n"


def write(path: Path, text: str) -> None:
    """Atomically: a run stopped half-way leaves the previous results whole."""
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)


if __name__ == "__main__":
    main()
