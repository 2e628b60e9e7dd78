r"""σ without libm: a cubic per interval of a table, and bounds on its error and on σ' over an interval.

Exported files that have no ``exp`` (float32 and fixed-point C) evaluate the sigmoid
``σ(v) = 1 / (1 + e^(−v))`` for ``|v| < V`` as a cubic in the position ``t ∈ [0, 1)`` inside the
interval ``[k·h, (k + 1)·h)`` of ``|v|``, and use the symmetry ``σ(−v) = 1 − σ(v)``::

    σ(|v|) ≈ p_k(t) = c_0k + t·(c_1k + t·(c_2k + t·c_3k)),   |v| = (k + t)·h

Each ``p_k`` interpolates σ at the four Chebyshev nodes of its interval, so that (interpolation
at Chebyshev nodes, degree 3)::

    |σ(v) − p_k(t)| ≤ max |σ⁗| / 4! · 2 · (h/4)⁴        over the interval

with ``σ⁗ = σ'·(1 − 2σ)·(1 − 12σ')`` (``σ' = σ(1 − σ)``): at most ``1.0e-8`` for ``h = 1/8``.
What the rounding of the coefficients and of Horner's steps adds depends on the arithmetic and is
bounded where each arithmetic is built (:mod:`.fixed_point`, :mod:`.float32`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cubic_table", "dsigma_max", "interpolation_error", "sigma", "sigma_tail"]

#: A bound on ``|σ⁽⁵⁾|`` over the reals (its maximum is below 0.24), used to cover σ⁗ between samples.
_SIGMA5_BOUND = 1.0


def sigma(v):
    """``σ(v) = 1 / (1 + e^(−v))`` in float64, elementwise, without overflow for large ``|v|``."""
    v = np.asarray(v, dtype=np.float64)
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigma_tail(V: float) -> float:
    """``σ(−V) = 1 − σ(V)``: how far σ is from 0 or 1 beyond ``|v| ≥ V``, rounded up."""
    return float(sigma(-V)) * (1 + 1e-12)


def dsigma_max(lo, hi):
    """``max σ'(v)`` over ``v ∈ [lo, hi]`` (elementwise), rounded up: σ' falls with ``|v|``."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    c = np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))  # the point of [lo, hi] closest to 0
    s = sigma(c)
    return s * (1.0 - s) * (1 + 1e-12) + 1e-300


def _sigma4(v):
    s = sigma(v)
    d1 = s * (1.0 - s)
    return d1 * (1.0 - 2.0 * s) * (1.0 - 12.0 * d1)


def interpolation_error(h: float, n_intervals: int) -> np.ndarray:
    """Per interval ``k``, a bound on ``|σ − p_k|`` for the cubic through its 4 Chebyshev nodes.

    ``max |σ⁗|`` over the interval is taken on 257 samples plus ``|σ⁽⁵⁾| ≤ 1`` times half their
    spacing, so it is an upper bound.
    """
    grid = (np.arange(n_intervals)[:, None] + np.linspace(0.0, 1.0, 257)[None, :]) * h
    m4 = np.abs(_sigma4(grid)).max(axis=1) + _SIGMA5_BOUND * h / 512
    return m4 / math.factorial(4) * 2.0 * (h / 4.0) ** 4 * (1 + 1e-9)


def cubic_table(h: float, n_intervals: int) -> np.ndarray:
    """``(n_intervals, 4)`` float64: ``c_0k..c_3k`` of the cubic in ``t`` through σ at the Chebyshev
    nodes of ``[k·h, (k + 1)·h]``."""
    nodes = (1.0 + np.cos((2 * np.arange(4) + 1) * np.pi / 8)) / 2  # in t ∈ [0, 1]
    vandermonde = nodes[:, None] ** np.arange(4)[None, :]  # (4, 4): row i is (1, t_i, t_i², t_i³)
    values = sigma((np.arange(n_intervals)[:, None] + nodes[None, :]) * h)  # (K, 4)
    return np.linalg.solve(vandermonde[None], values[..., None])[..., 0]
