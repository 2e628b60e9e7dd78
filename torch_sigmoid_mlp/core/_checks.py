"""The checks that every public function shares, on numbers and on test points, worded one way everywhere.

A bad value is a ``ValueError`` naming the argument, what it must be and what it got
(``lr must be a positive finite number or None, got 0.0``). A value of the wrong kind altogether (a
float for a count, a string for a rate) is an :class:`ArgumentTypeError`, which is a ``TypeError``
and a ``ValueError`` at once, as scikit-learn's ``InvalidParameterError`` is: callers catching
either see it. The test points ``x``, their targets ``d`` and their weights ``s_t`` are checked
here too, once they are tensors of shape ``(T, n)``, ``(T, m)`` and ``(T,)``.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

__all__ = [
    "ArgumentTypeError",
    "check_integer",
    "check_number",
    "check_points",
    "check_sample_weight",
    "integer_words",
    "number_words",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind: both a ``TypeError`` and a ``ValueError``."""


def integer_words(low: int = 1, high: int | None = None) -> str:
    """What an integer in ``[low, high]`` is called in an error: ``"a positive integer"``, …"""
    words = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer ≥ {low}")
    return words if high is None else f"{words} of at most {high}"


def number_words(low: float | None = None, high: float | None = None) -> str:
    """What a finite number ``> 0`` (no ``low``), or in ``[low, high)``, is called in an error."""
    if low is None and high is None:
        return "a positive finite number"
    if low is None:
        return f"a number in (0, {high})"
    return f"a number in [{low}, {high})"


def _is_integer(value) -> bool:
    # bool is an int to Python, never a count to a caller; numpy's integers are numbers.Integral
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integer(value, name: str, *, low: int = 1, high: int | None = None, optional: bool = False):
    """``value`` as an ``int`` in ``[low, high]`` (``None`` passes with ``optional``), or a clear error.

    Example::

        >>> from torch_sigmoid_mlp.core._checks import check_integer
        >>> check_integer(3, "batch_size", optional=True)
        3
        >>> check_integer(0, "batch_size", optional=True)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be a positive integer or None, got 0
    """
    if value is None and optional:
        return None
    if not _is_integer(value) or value < low or (high is not None and value > high):
        error = ValueError if _is_integer(value) else ArgumentTypeError
        or_none = " or None" if optional else ""
        raise error(f"{name} must be {integer_words(low, high)}{or_none}, got {value!r}")
    return int(value)


def check_number(
    value, name: str, *, low: float | None = None, high: float | None = None, optional: bool = False
):
    """``value`` as a finite ``float``: ``> 0`` without ``low``, else in ``[low, high)``; or a clear error.

    ``None`` passes with ``optional``; numpy's scalars are numbers too.

    Example::

        >>> from torch_sigmoid_mlp.core._checks import check_number
        >>> check_number(0.5, "momentum", low=0.0, high=1.0)
        0.5
        >>> check_number(float("nan"), "lr")
        Traceback (most recent call last):
        ...
        ValueError: lr must be a positive finite number, got nan
    """
    if value is None and optional:
        return None
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = real and math.isfinite(value) and (value > 0 if low is None else value >= low)
    if not ok or (high is not None and value >= high):
        error = ValueError if real else ArgumentTypeError
        or_none = " or None" if optional else ""
        raise error(f"{name} must be {number_words(low, high)}{or_none}, got {value!r}")
    return float(value)


def check_points(x: Tensor, d: Tensor, names: tuple[str, str] = ("x", "d")) -> None:
    """``x`` and ``d`` hold the same number ``T`` of test points (rows), every value finite.

    Example::

        >>> from torch_sigmoid_mlp.core._checks import check_points
        >>> check_points(torch.zeros(3, 2), torch.zeros(2, 1))
        Traceback (most recent call last):
        ...
        ValueError: x has 3 test points but d has 2
    """
    (xn, dn) = names
    if x.shape[0] != d.shape[0]:
        raise ValueError(f"{xn} has {x.shape[0]} test points but {dn} has {d.shape[0]}")
    for value, name in ((x, xn), (d, dn)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contains NaN or infinite values")


def check_sample_weight(s: Tensor, T: int) -> None:
    """``s`` holds one weight ``s_t ≥ 0`` per test point, ``(T,)``, finite and not all zero."""
    if s.shape != (T,):
        raise ValueError(
            f"sample_weight must have shape ({T},), one weight per test point, got {tuple(s.shape)}"
        )
    if not bool(torch.isfinite(s).all()):
        raise ValueError("sample_weight contains NaN or infinite values")
    if bool((s < 0).any()):
        raise ValueError(f"sample_weight must be ≥ 0, got {s.min().item()!r}")
    if not bool((s > 0).any()):
        raise ValueError("sample_weight is zero for every test point: at least one weight must be > 0")
