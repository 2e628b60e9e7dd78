"""The regressor's parameters: their defaults' constants, and what each may be, checked in one place.

:data:`PARAMETER_CONSTRAINTS` declares, parameter by parameter, the check that turns what the
constructor stored into the value ``fit`` uses (scikit-learn's ``_parameter_constraints``, as
functions that keep this library's messages); :func:`check_params` applies it, then the rules that
tie several parameters together. The constructor only stores (scikit-learn's convention).
"""

from __future__ import annotations

import functools
import numbers
import types
from collections.abc import Callable

import numpy as np
import torch

from ..core._checks import check_integer, check_number
from ..core.memory import check_device_has_data
from ..training.distributed import default_device
from ..training.solvers import METHODS, SECOND_ORDER

__all__ = [
    "DEFAULT_WIDTH",
    "DENSE_WORK",
    "DTYPES",
    "INPUT_RANGE",
    "LOG_RECORDS",
    "LR_CONSTANT",
    "MATRIX_FREE_PRODUCTS",
    "MAX_EPOCHS",
    "MIN_DENSE_EPOCHS",
    "ONE_INPUT_RANGE",
    "PARAMETER_CONSTRAINTS",
    "PATIENCE",
    "SOLVERS",
    "WIDTH_FACTORS",
    "check_params",
    "default_max_epochs",
    "effective_lr",
    "hidden_candidates",
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
    "lm_cg": 1_000,
    "br_cg": 1_000,
    "br": 1_000,
}

#: ``max_epochs=None`` caps an LM or BR fit at ``DENSE_WORK / (N·P² + P³)`` epochs — what an epoch
#: costs — and at no fewer than :data:`MIN_DENSE_EPOCHS` (see :func:`default_max_epochs`). On the
#: problems of ``benchmarks/bench_robust.py`` the cap is 1000 epochs, well above what a fit takes,
#: except on the large one (``T = 2000``, 30 inputs, ``P = 752``), where it is 64: there BR's test
#: MSE was within 3 % of its lowest by epoch 60 on each of four seeds, and its convergence stop
#: came at 90–205 epochs, 9–21 % above that lowest, in up to three times the time.
DENSE_WORK = 1e11

#: The fewest epochs :data:`DENSE_WORK` leaves an LM or BR fit.
MIN_DENSE_EPOCHS = 50

#: ``"lm_cg"``'s epoch is counted as this many products ``JᵀSJ·v`` of ``O(N·P)`` each (its CG iterations
#: over every ``μ`` tried, and the passes for ``JᵀSe`` and ``diag(JᵀSJ)``) when :data:`DENSE_WORK`
#: caps its epochs: ``benchmarks/results/matrix_free.md`` measured 26–39 products an epoch.
MATRIX_FREE_PRODUCTS = 50


def default_max_epochs(method: str, P: int, N: int) -> int:
    """``max_epochs=None``: :data:`MAX_EPOCHS` of ``method``, and for ``"lm"``/``"br"`` no more
    epochs than :data:`DENSE_WORK` pays for at ``N·P² + P³`` an epoch (``P`` weights, ``N`` errors),
    for ``"lm_cg"`` at ``N·P·MATRIX_FREE_PRODUCTS`` an epoch.

    Example::

        >>> default_max_epochs("br", 80, 100), default_max_epochs("br", 752, 2000)
        (1000, 64)
        >>> default_max_epochs("lm_cg", 752, 2000), default_max_epochs("lm_cg", 20_000, 100_000)
        (1000, 50)
    """
    if method in ("lm_cg", "br_cg"):
        affordable = int(DENSE_WORK // (N * P * MATRIX_FREE_PRODUCTS))
        return min(MAX_EPOCHS[method], max(MIN_DENSE_EPOCHS, affordable))
    if method not in ("lm", "br"):
        return MAX_EPOCHS[method]
    affordable = int(DENSE_WORK // (N * P**2 + P**3))
    return min(MAX_EPOCHS[method], max(MIN_DENSE_EPOCHS, affordable))


#: ``n_iter_no_change=None`` stops early after this many epochs without a better validation SSE.
#: Sized to what an epoch of the solver does: LM's step is a whole Gauss–Newton solve, and six
#: failures in a row are MATLAB's ``trainlm`` default; a steepest-descent epoch moves the weights
#: by ``η·∇E`` only, and the validation error can wander for hundreds of epochs before it falls.
PATIENCE = {
    "sgd": 2_000,
    "adaptive": 1_000,
    "rprop": 500,
    "adam": 500,
    "lbfgs": 50,
    "lm": 6,
    "lm_cg": 6,
    "br": 6,
    "br_cg": 6,
}

#: ``hidden=None``: two hidden layers of ``max(DEFAULT_WIDTH, n)`` neurons. Without biases every
#: first-layer neuron is ``σ(w·x)``, bent where ``w·x = 0``; it takes several neurons per layer, whose
#: weighted sums can cross zero anywhere, to bend a curve inside the data's range (SPEC.md's
#: ``n → n → n → 1`` cannot for ``n = 1``).
DEFAULT_WIDTH = 8

#: ``hidden="auto"``: the widths tried, as multiples of the default width ``w = max(DEFAULT_WIDTH, n)``
#: (two layers each; see :func:`hidden_candidates`).
WIDTH_FACTORS = (0.5, 1.0, 2.0)


def hidden_candidates(n: int) -> list[tuple[int, int]]:
    """The architectures ``hidden="auto"`` fits for ``n`` inputs, smallest first: two layers of
    ``f·w`` neurons (at least 2) for each ``f`` in :data:`WIDTH_FACTORS`, ``w = max(DEFAULT_WIDTH, n)``.

    Example::

        >>> hidden_candidates(1), hidden_candidates(10)
        ([(4, 4), (8, 8), (16, 16)], [(5, 5), (10, 10), (20, 20)])
    """
    w = max(DEFAULT_WIDTH, n)
    widths = sorted({max(2, round(f * w)) for f in WIDTH_FACTORS})
    return [(width, width) for width in widths]


#: About how many TensorBoard records a run with ``logdir`` writes (see ``SigmoidMLPRegressor``).
LOG_RECORDS = 1000

#: Inputs are scaled into ``[−1, 1]``, symmetric about 0. Without biases a first-layer neuron
#: ``σ(w·x)`` bends where ``w·x = 0``: scaled this way that is the middle of the data's range, where
#: a bend is useful, rather than its corner (``benchmarks/results/fit.md`` has the effect on the
#: epochs to a bound). One input is scaled into :data:`ONE_INPUT_RANGE` instead.
INPUT_RANGE = (-1.0, 1.0)

#: One input is scaled into ``[−0.75, 1]``. With one input every first-layer unit is ``σ(w_i x)``,
#: all of them centred at ``x = 0``, and ``σ(−wx) = 1 − σ(wx)``: centred on the data, BR starts
#: gather them into clusters of equal ``|w_i|`` and crawl along a valley with no minimum at finite
#: weights (:class:`~torch_sigmoid_mlp.training.solvers.LevenbergMarquardt`). Off-centre, over the
#: 17 one-input clean rows of ``benchmarks/bench_robust.py`` (10 seeds, the default fits;
#: ``benchmarks/results/valley_defaults_range.md``) no start of 510 ended by ``max_epochs`` (against
#: 18, 17 of them on the cubic ``t³ − t``), in 0.79× the epochs; fits at grid ``R² ≥ 0.999``: the
#: cubic from 30, 100, 400 points 3, 8, 8 → 6, 10, 10 of 10 (worst ``R²`` 0.948 → 0.948, 0.988 →
#: 0.9995, 0.991 → 0.9999), ``exp(−4x²)`` from 30 9 → 10, ``sin 6x`` from 30 4 → 4 (worst 0.944 →
#: 0.990), no count lower; the worst ``R²`` of rows where every seed succeeds moved by less than
#: 10⁻⁴, as did the noisy one-input rows' (``robust.md``). Over 30 seeds
#: (``valley_defaults_t{30,100,400}_30seeds.md``) the cubic's starts at ``max_epochs`` went 40 of
#: 270 → 0 and its successes 6, 24, 26 → 11, 28, 30, every other count held or rose but ``sin 6x``
#: from 30 points' (9 → 8; its worst ``R²`` 0.944 → 0.444, seed 15, where the evidence chose a start
#: at 0.444 over one at 0.995: from 30 points most of its fits end below 0.999 either way; there
#: ``[−0.875, 1]`` fit 12, worst 0.762, and ``[−0.5, 1]`` 7, worst 0.886: ``..._t30_30seeds_other.md``).
#: ``[−0.5, 1]`` took 1.6–2.1× the epochs on ``cos 3x`` and ``exp(−4x²)`` and fit ``sin 6x`` from 30
#: points on 3 seeds; ``[−0.875, 1]`` left the cubic from 30 at 5. With several inputs ``[−0.75, 1]`` lost
#: on the held-out rows (diabetes worst test ``R²`` 0.361 → 0.353, with ``validation_fraction=0.15``
#: 0.357 → 0.306; Friedman 1 with 30 inputs test MSE 1.53 → 1.99;
#: ``benchmarks/results/robust_inputs075.md``), so they keep :data:`INPUT_RANGE`.
ONE_INPUT_RANGE = (-0.75, 1.0)

#: The dtypes ``dtype=`` takes, by name.
DTYPES = {
    str(t).removeprefix("torch."): t for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def _hidden(hidden, name: str) -> tuple[int, ...] | str | None:
    """``hidden`` as a tuple of widths: an int is one layer, as scikit-learn's ``hidden_layer_sizes``;
    ``None`` and ``"auto"`` as they are."""
    if hidden is None or (isinstance(hidden, str) and hidden == "auto"):
        return hidden
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, (bool, np.bool_)):
        hidden = (hidden,)
    if isinstance(hidden, str) or not hasattr(hidden, "__iter__"):
        raise ValueError(f"{name} must be an int, a sequence of ints, 'auto' or None, got {hidden!r}")
    return tuple(check_integer(h, f"{name}[{i}]", low=1) for i, h in enumerate(hidden))


def _target_range(target_range, name: str) -> tuple[float, float]:
    try:
        lo, hi = (check_number(v, name, low=0.0, high=1.0) for v in target_range)
    except (TypeError, ValueError):
        lo = hi = None
    if lo is None or not 0 < lo < hi:
        raise ValueError(
            f"{name} must be (a, b) with 0 < a < b < 1 (inside the sigmoid's range), got {target_range!r}"
        )
    return (lo, hi)


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """``dtype`` as a floating torch dtype, from its name (``"float32"``, ``"torch.float32"``) or itself."""
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    raise ValueError(f"{name} must be one of {list(DTYPES)} (or the torch dtype), got {dtype!r}")


def check_device(device, name: str = "device") -> torch.device:
    """``device`` parsed, and refused if this machine does not have it, before any work."""
    if isinstance(device, str) and device == "auto":
        return default_device()  # under torchrun, this rank's GPU
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be 'auto' or a torch device, got {device!r}: {exc}") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r} but CUDA is not available here: use 'cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name}={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={device!r} but MPS is not available here: use 'cpu' or 'auto'")
    check_device_has_data(resolved, name)
    return resolved


_optional_number = functools.partial(check_number, optional=True)


def _restarts(value, name: str) -> int | str:
    """``"auto"``, or a number of starts ``≥ 1``."""
    if isinstance(value, str) and value == "auto":
        return value
    return check_integer(value, name, low=1)


#: Each parameter's check, in the order ``fit`` applies them: it takes the stored value and the
#: parameter's name and returns the value to use (numpy scalars become Python numbers), or raises
#: ``ValueError`` naming the parameter. ``None``: the value is used as given, or (``seed``,
#: ``random_state``, ``solver``) checked with the parameters it depends on by :func:`check_params`.
PARAMETER_CONSTRAINTS: dict[str, Callable[[object, str], object] | None] = {
    "hidden": _hidden,
    "lr": _optional_number,
    "tol": _optional_number,
    "max_epochs": functools.partial(check_integer, low=0, optional=True),
    "batch_size": functools.partial(check_integer, low=1, optional=True),
    "n_iter_no_change": functools.partial(check_integer, low=1, optional=True),
    "restarts": _restarts,
    "momentum": functools.partial(check_number, low=0.0, high=1.0),
    "validation_fraction": functools.partial(check_number, high=1.0, optional=True),
    "target_range": _target_range,
    "dtype": check_dtype,
    "device": check_device,
    "seed": None,
    "random_state": None,
    "solver": None,
    "logdir": None,
    "progress": None,
    "warm_start": None,
}


def check_params(params: dict) -> types.SimpleNamespace:
    """The parameters, checked, with numpy scalars as Python numbers and ``seed`` resolved.

    ``fit`` calls this before any work: scikit-learn's constructors only store what they get.
    """
    s = types.SimpleNamespace(**params)
    for name, check in PARAMETER_CONSTRAINTS.items():
        if check is not None:
            setattr(s, name, check(params[name], name))
    seed, random_state = params["seed"], params["random_state"]
    what = "seed" if random_state is None else "random_state"
    # restarts draw with seed + i, which torch.Generator.manual_seed takes below 2**64
    s.seed = check_integer(seed if random_state is None else random_state, what, low=0, high=2**63 - 1)
    solver = params["solver"]
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver in SECOND_ORDER and params["lr"] is not None:
        raise ValueError(f"solver={solver!r} takes no lr: its step comes from solving (JᵀJ + μI) Δw = Jᵀe")
    if solver in SECOND_ORDER and params["batch_size"] is not None:
        raise ValueError(f"batch_size is for mini-batch solvers; solver={solver!r} takes full-batch steps")
    if params["momentum"] and solver not in ("sgd", "auto"):
        raise ValueError(f"momentum is for solver='sgd'; solver={solver!r} has none")
    return s


def effective_lr(settings, method: str, n_points: int, weight_sum: float | None) -> float | None:
    """The ``lr`` ``fit`` passes to the loop (see :meth:`SigmoidMLPRegressor.effective_lr`)."""
    if method not in ("sgd", "adaptive") or settings.lr is not None:
        return settings.lr
    if settings.batch_size is None or settings.batch_size >= n_points:
        return LR_CONSTANT / (n_points if weight_sum is None else weight_sum)
    if weight_sum is None:
        return LR_CONSTANT / settings.batch_size
    return LR_CONSTANT / (settings.batch_size * weight_sum / n_points)
