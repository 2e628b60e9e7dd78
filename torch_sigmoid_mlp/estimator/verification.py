r"""Whether a fit's promise ``|F(x_t) − d_t| < ε`` survives export to float32 or fixed-point arithmetic.

:func:`check_export` answers for one arithmetic, in y's units:

- ``bound``: ``B ≥ |F̃(x) − F(x)|`` for every ``x`` in the fitted box, proven by error propagation
  through the layers (:func:`~.network_box.propagate_bound`);
- ``max_error``: ``max_t |F̃(x_t) − y_t|`` on given points, computed in the exported arithmetic
  itself (its bit-exact model, :attr:`ExportCheck.predict`);
- ``holds``: ``max_error < tol`` on the points; without points, ``max_t |F(x_t) − d_t| + B < tol``
  on the training points, which proves the promise at every one of them.

``"auto"`` takes the smallest word for which it holds: int16, then int32, float32 and float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .fixed_point import IntegerPlan
from .floating import FloatPlan
from .network_box import FittedNetwork, fitted_network, propagate_bound

__all__ = ["ARITHMETICS", "ExportCheck", "check_export"]

#: The arithmetics of an export, smallest word first (the order ``"auto"`` tries them in).
ARITHMETICS = ("int16", "int32", "float32", "float64")


@dataclass(frozen=True)
class ExportCheck:
    r"""What :func:`check_export` found for one arithmetic; all errors in y's units, per output.

    Attributes:
        arithmetic: ``"float64"``, ``"float32"``, ``"int32"`` or ``"int16"``.
        bound: ``B``, ``(m,)``: ``|F̃(x) − F(x)| ≤ B`` for every ``x`` in the fitted box.
        max_error: ``max_t |F̃(x_t) − y_t|`` over the given points, ``(m,)``, or ``None``.
        fit_error: ``max_t |F(x_t) − d_t|`` of the float fit on its training points (from
            ``result_``, rounded up), ``(m,)``, or ``None`` when the model has no record of it.
        tol: the regressor's ``tol``, or ``None``.
        proven: ``fit_error + bound < tol`` for every output: ε holds at every training point in
            this arithmetic, proven, not sampled; ``None`` without a ``tol``.
        holds: ``max_error < tol`` where points were given, else :attr:`proven`.
        tol_needed: ``tol − max(bound)``: the ``tol`` a refit would need for ``ε = tol`` to be
            proven in this arithmetic (about: the refit's ``B`` differs a little); ``None``
            without a ``tol``, ``≤ 0`` where no refit can.
        reason: for ``"auto"``, why this arithmetic was chosen; else ``""``.
    """

    arithmetic: str
    bound: np.ndarray
    max_error: np.ndarray | None
    fit_error: np.ndarray | None
    tol: float | None
    proven: bool | None
    holds: bool | None
    tol_needed: float | None
    reason: str = ""
    plan: object = field(default=None, repr=False)

    def predict(self, X) -> np.ndarray:
        """The exported file's prediction of ``X`` (``(N, n)``, the data's units), in y's units:
        bit for bit the integer file's, and the float32 file's compiled with ``-ffp-contract=off``."""
        return self.plan.predict(X)

    def summary(self) -> str:
        """A few lines: B, the error on the points, and whether ε holds or is proven."""
        how = "if libm's exp is within an ulp" if self.arithmetic == "float64" else "proven"
        lines = [f"{self.arithmetic}: B = {_numbers(self.bound)} over the fitted box ({how})"]
        if self.max_error is not None:
            verdict = "" if self.tol is None else (" < " if self.holds else " >= ") + f"tol {self.tol:.4g}"
            lines.append(f"  max |error| on the points: {_numbers(self.max_error)}{verdict}")
        if self.tol is not None and self.fit_error is not None:
            total = self.fit_error + self.bound
            verdict = "proven at every training point" if self.proven else "not proven"
            fit = f"fit error {_numbers(self.fit_error)} + B = {_numbers(total)}"
            lines.append(f"  {fit} vs tol {self.tol:.4g}: {verdict}")
        if self.reason:
            lines += ["  chosen by auto:", *(f"    {part}" for part in self.reason.split("; "))]
        return "\n".join(lines)


def _numbers(values: np.ndarray) -> str:
    return ", ".join(f"{v:.4e}" for v in np.asarray(values).tolist())


def _fit_error(regressor, net: FittedNetwork) -> np.ndarray | None:
    """``max_t |F(x_t) − d_t|`` per output in y's units from ``result_.max_abs_error`` (scaled)."""
    result = getattr(regressor, "result_", None)
    if result is None or not np.isfinite(result.max_abs_error):
        return None
    lo, hi = net.y_range
    # the fit measured its error in its own dtype; float32 rounds predict's value by ~1e-7
    slack = 1e-12 if regressor.model_.weights[0].dtype == torch.float64 else 1e-6
    return (result.max_abs_error + slack) * (net.y_max - net.y_min) / (hi - lo) * (1 + 1e-9)


def _points(net: FittedNetwork, X, y) -> tuple[np.ndarray, np.ndarray] | None:
    if X is None and y is None:
        return None
    if X is None or y is None:
        raise ValueError("X and y go together: give both (the points to check on) or neither")
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = net.sizes[0], net.sizes[-1]
    if X.ndim != 2 or X.shape[1] != n:
        raise ValueError(f"X must have shape (T, {n}), got {X.shape}")
    y = y.reshape(len(y), -1) if y.ndim else y
    if y.ndim != 2 or y.shape != (len(X), m):
        raise ValueError(f"y must have {len(X)} rows of {m} output(s), got shape {np.shape(y)}")
    if len(X) == 0 or not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must hold at least one point, all finite")
    return X, y


def _plan(net: FittedNetwork, arithmetic: str):
    return IntegerPlan(net, arithmetic) if arithmetic.startswith("int") else FloatPlan(net, arithmetic)


def _check(regressor, net, arithmetic: str, points, tol: float | None) -> ExportCheck:
    plan = _plan(net, arithmetic)
    bound = propagate_bound(net, plan)
    max_error = None
    if points is not None:
        X, y = points
        max_error = np.abs(plan.predict(X).reshape(len(X), -1) - y).max(axis=0)
    fit_error = _fit_error(regressor, net)
    proven = None
    if tol is not None:
        proven = bool(fit_error is not None and np.all(fit_error + bound < tol))
    holds = proven if max_error is None or tol is None else bool(np.all(max_error < tol))
    tol_needed = None if tol is None else tol - float(bound.max())
    return ExportCheck(arithmetic, bound, max_error, fit_error, tol, proven, holds, tol_needed, plan=plan)


def _auto(regressor, net, points, tol: float | None) -> ExportCheck:
    """The first of :data:`ARITHMETICS` whose check holds, with why; ``ValueError`` where none does."""
    if tol is None:
        raise ValueError(
            "arithmetic='auto' picks the smallest word that keeps tol, and this model has no tol: "
            "name the arithmetic (float32, int32, int16)"
        )
    tried = []
    for arithmetic in ARITHMETICS:
        try:
            check = _check(regressor, net, arithmetic, points, tol)
        except ValueError as exc:
            tried.append(f"{arithmetic} does not fit ({exc})")
            continue
        what = "max |error| on the points" if check.max_error is not None else "fit error + B"
        value = check.max_error if check.max_error is not None else check.fit_error + check.bound
        if check.holds:
            reason = "; ".join([*tried, f"{arithmetic}: {what} {_numbers(value)} < tol {check.tol:.4g}"])
            return ExportCheck(**{**check.__dict__, "reason": reason})
        tried.append(f"{arithmetic}: {what} {_numbers(value)} >= tol {check.tol:.4g}")
    raise ValueError("no arithmetic keeps tol: " + "; ".join(tried))


def check_export(regressor, arithmetic: str, X=None, y=None, *, tol: float | None = None) -> ExportCheck:
    r"""How far ``regressor`` exported in ``arithmetic`` is from its float64 fit, with proof.

    ``B`` (``bound``) bounds ``|F̃(x) − F(x)|`` over every ``x`` in the fitted box (each input
    column in its ``[min, max]``), ``F`` the float64 :meth:`predict
    <torch_sigmoid_mlp.SigmoidMLPRegressor.predict>` and ``F̃`` the exported file. Given points
    ``X, y`` (the data's units), ``max_error`` is ``max_t |F̃(x_t) − y_t|`` computed in the
    exported arithmetic itself. See :class:`ExportCheck` for every field.

    Args:
        regressor: a fitted :class:`~torch_sigmoid_mlp.SigmoidMLPRegressor`.
        arithmetic: ``"float64"``, ``"float32"``, ``"int32"``, ``"int16"``, or ``"auto"``: the
            first of those (int16 first) for which :attr:`ExportCheck.holds`; its ``reason``
            says why. ``"auto"`` needs the regressor's ``tol``.
        X, y: points to measure the exported error on, ``(T, n)`` and ``(T,)`` or ``(T, m)``.
        tol: the ``ε`` to check, in y's units; default the regressor's ``tol`` (a model refitted
            to a smaller ``tol``, such as ``tol_needed``, is checked against the ``ε`` it is for).

    Raises:
        ValueError: a word the network does not fit (naming the column, weight matrix or
            output), ``"auto"`` where no arithmetic keeps ``tol``, or bad points.

    Example::

        >>> import numpy as np
        >>> X = np.linspace(0.0, 2.0, 50).reshape(-1, 1)
        >>> reg = SigmoidMLPRegressor(tol=0.01, device="cpu", seed=0).fit(X, 3 + 2 * np.tanh(X[:, 0]))
        >>> check = check_export(reg, "int32")
        >>> bool(check.bound[0] < 1e-6), check.proven
        (True, True)
        >>> bool(np.abs(check.predict(X) - reg.predict(X)).max() <= check.bound[0])
        True
    """
    net = fitted_network(regressor)
    if arithmetic != "auto" and arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {', '.join(ARITHMETICS)} or auto, got {arithmetic!r}")
    points = _points(net, X, y)
    if tol is None:
        tol = regressor.tol
    if tol is not None and not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    tol = None if tol is None else float(tol)
    if arithmetic == "auto":
        return _auto(regressor, net, points, tol)
    return _check(regressor, net, arithmetic, points, tol)
