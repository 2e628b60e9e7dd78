r"""A fitted network as plain numbers, its input box, and the bound ``B`` on an exported arithmetic's error.

An exported arithmetic computes ``F̃``, the fit ``F`` (float64 :meth:`predict
<torch_sigmoid_mlp.SigmoidMLPRegressor.predict>`). Over the fitted box (each input column in its
``[min, max]``) the error is bounded layer by layer, per neuron, as in SPEC.md::

    e_v^(l+1) = |W̃^(l)| e^(l) + |W̃^(l) − W^(l)| max|y^(l)| + γ · |W̃^(l)| (max|y^(l)| + e^(l))
    e^(l+1)   = max σ'(v) over [v_lo − e_v − r, v_hi + e_v + r] · (e_v^(l+1) + r) + e_σ
    B         = s_y · e^(L) + (the output stage's rounding)

with ``e^(0)`` the inputs' rounding, ``γ`` the relative error of a float sum of products
(``γ_n = n·u/(1 − n·u)``; 0 in integers, where sums are exact), ``r`` the rounding of a
pre-activation to the σ table's input, ``e_σ`` the σ approximation's own error, and
``[v_lo, v_hi]`` an interval of the exact pre-activation. The box is cut into up to 4096 sub-boxes
and the intervals are propagated through each (interval arithmetic, widened outward by more than
float64 can round), so σ' is taken where each neuron actually is; ``B`` is the largest over the
sub-boxes. Every error term is an upper bound and is rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from .regressor import SigmoidMLPRegressor
from .sigmoid_approx import dsigma_max, sigma

__all__ = ["Arithmetic", "FittedNetwork", "fitted_network", "fitted_weights", "propagate_bound"]

#: Sub-boxes the bound is computed over, at most.
SUB_BOXES = 4096


@dataclass(frozen=True)
class FittedNetwork:
    """What an export needs of a fitted regressor, in float64 numpy.

    ``x' = a + (x − x_min)·(b − a)/(x_max − x_min)`` (``(a + b)/2`` for a constant column) and
    ``ŷ = y_min + (y^(L) − lo)·(y_max − y_min)/(hi − lo)``.
    """

    weights: tuple  # W^(0..L−1), float64 arrays (size_{l+1}, size_l)
    x_min: np.ndarray
    x_max: np.ndarray
    x_range: tuple
    y_min: np.ndarray
    y_max: np.ndarray
    y_range: tuple
    y_1d: bool
    names: tuple | None = None

    @property
    def sizes(self) -> tuple:
        return (self.weights[0].shape[1], *(W.shape[0] for W in self.weights))

    @property
    def x_scale(self) -> np.ndarray:
        """``(b − a)/(x_max − x_min)`` per column, 0 for a constant one."""
        a, b = self.x_range
        span = self.x_max - self.x_min
        return np.where(span > 0, (b - a) / np.where(span > 0, span, 1.0), 0.0)

    @property
    def y_scale(self) -> np.ndarray:
        """``(y_max − y_min)/(hi − lo)`` per output."""
        lo, hi = self.y_range
        return (self.y_max - self.y_min) / (hi - lo)

    @property
    def y_ends(self) -> np.ndarray:
        """``(2, m)``: ``ŷ`` at ``y^(L) = 0`` and at ``y^(L) = 1``, the reach of any output."""
        lo, _ = self.y_range
        return np.stack([self.y_min - lo * self.y_scale, self.y_min + (1 - lo) * self.y_scale])


def fitted_weights(regressor) -> list[Tensor]:
    """The weights ``W^(0..L−1)`` of a fitted regressor as float64 CPU tensors; checks what export needs."""
    if not isinstance(regressor, SigmoidMLPRegressor):
        raise TypeError(f"expected a fitted SigmoidMLPRegressor, got {type(regressor).__name__}")
    if not hasattr(regressor, "model_"):
        raise ValueError("this SigmoidMLPRegressor is not fitted yet: call fit first")
    weights = [W.detach().cpu().double() for W in regressor.model_.weights]
    for l, W in enumerate(weights):
        if not bool(torch.isfinite(W).all()):
            raise ValueError(
                f"W^({l}) holds NaN or infinite values: the fit diverged, there is nothing to export"
            )
    return weights


def fitted_network(regressor) -> FittedNetwork:
    """:class:`FittedNetwork` of a fitted regressor (checked as :func:`fitted_weights` checks it)."""
    weights = fitted_weights(regressor)

    def column(t) -> np.ndarray:
        return t.detach().double().cpu().numpy().reshape(-1)

    xs, ys = regressor.x_scaler_, regressor.y_scaler_
    names = getattr(regressor, "feature_names_in_", None)
    return FittedNetwork(
        tuple(W.numpy() for W in weights),
        column(xs.data_min_),
        column(xs.data_max_),
        tuple(xs.feature_range),
        column(ys.data_min_),
        column(ys.data_max_),
        tuple(ys.feature_range),
        bool(regressor._y_1d),
        None if names is None else tuple(str(name) for name in names),
    )


class Arithmetic(Protocol):
    """What :func:`propagate_bound` reads of an exported arithmetic."""

    input_error: np.ndarray  # (n,) in x' units
    device_weights: tuple  # W̃^(l) as float64
    gamma: tuple  # per layer, the relative error of a sum of products (0 in integers)
    sigma_rounding: tuple  # per layer, r
    sigma_error: float  # e_σ

    def output_error(self, e: np.ndarray) -> np.ndarray: ...


def _sub_boxes(net: FittedNetwork) -> tuple[np.ndarray, np.ndarray]:
    """``(K, n)`` lower and upper ends of ``x'`` over sub-boxes that cover the box."""
    a, b = net.x_range
    varying = net.x_max > net.x_min
    n_varying = int(varying.sum())
    k = max(1, round(SUB_BOXES ** (1 / n_varying))) if n_varying else 1
    while k**n_varying > SUB_BOXES:
        k -= 1
    edges = np.linspace(a, b, k + 1)
    grids = [np.arange(k) if v else np.zeros(1, dtype=int) for v in varying]
    index = np.stack([g.ravel() for g in np.meshgrid(*grids, indexing="ij")], axis=1)  # (K, n)
    middle = (a + b) / 2
    lo = np.where(varying, edges[index], middle)
    hi = np.where(varying, edges[np.minimum(index + 1, k)], middle)
    slack = 1e-15 * max(abs(a), abs(b))
    return lo - slack, hi + slack


def _interval_product(W: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """``[v_lo, v_hi] ∋ W y`` for every ``y ∈ [lo, hi]``, ``(K, rows)``, widened outward."""
    Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
    v_lo = lo @ Wp.T + hi @ Wn.T
    v_hi = hi @ Wp.T + lo @ Wn.T
    slack = 1e-13 * (np.maximum(np.abs(lo), np.abs(hi)) @ np.abs(W).T) + 1e-300
    return v_lo - slack, v_hi + slack


def propagate_bound(net: FittedNetwork, arithmetic: Arithmetic) -> np.ndarray:
    """``B`` per output, ``(m,)`` in y's units: ``|F̃(x) − F(x)| ≤ B`` for every ``x`` in the box."""
    lo, hi = _sub_boxes(net)
    e = np.broadcast_to(arithmetic.input_error, lo.shape)  # (K, n)
    for l, W in enumerate(net.weights):
        Wt = arithmetic.device_weights[l]
        y_abs = np.maximum(np.abs(lo), np.abs(hi))  # (K, size_l)
        e_v = e @ np.abs(Wt).T + y_abs @ np.abs(Wt - W).T
        e_v = e_v + arithmetic.gamma[l] * ((y_abs + e) @ np.abs(Wt).T)
        r = arithmetic.sigma_rounding[l]
        v_lo, v_hi = _interval_product(W, lo, hi)
        slope = dsigma_max(v_lo - e_v - r, v_hi + e_v + r)
        e = (slope * (e_v + r) + arithmetic.sigma_error) * (1 + 1e-9) + 1e-15
        lo, hi = sigma(v_lo) - 1e-15, sigma(v_hi) + 1e-15
    worst = arithmetic.output_error(e).max(axis=0)  # (m,)
    # float64 predict rounds too: about 1e-16 of |ŷ|; 1e-12 of it is far more than that
    return worst * (1 + 1e-9) + 1e-12 * np.abs(net.y_ends).max(axis=0)
