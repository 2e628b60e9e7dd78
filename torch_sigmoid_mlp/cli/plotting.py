"""The picture of a fit: the function against its test points, and the loss per epoch.

matplotlib is an optional dependency (``pip install 'torch-sigmoid-mlp[plot]'``);
:func:`require_matplotlib` says so in one line when it is missing. Figures are built with
``matplotlib.figure.Figure``, not ``pyplot``, so no window or GUI backend is ever involved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..estimator.outputs import MissingDependencyError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MissingDependencyError", "fit_figure", "require_matplotlib"]

#: Points on the fitted curve of a one-input plot: enough for a smooth line between test points.
CURVE_POINTS = 400


def require_matplotlib() -> None:
    """Raise :class:`MissingDependencyError` with the install command if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "plotting needs matplotlib, which is not installed: pip install 'torch-sigmoid-mlp[plot]'"
        ) from None


def fit_figure(
    x: Tensor,
    d: Tensor,
    predict: Callable[[Tensor], Tensor],
    loss_history: Sequence[float],
    *,
    tol: float | None = None,
    input_names: Sequence[str] = (),
    target_name: str = "d",
    title: str = "",
) -> Figure:
    """Two panels: the fit on the left, ``E`` per epoch on the right (log scale).

    With one input the left panel draws the test points ``(x_t, d_t)`` and the fitted curve
    ``F(x)`` over their range; with more inputs it draws ``F(x_t)`` against ``d_t``, where a
    perfect fit lies on the diagonal. Either way a band of width ``±tol`` shows the uniform bound.

    Args:
        x: test points, ``(T, n)``, in the units of the data.
        d: measurements, ``(T,)``, in the units of the target.
        predict: maps ``(k, n)`` inputs to ``(k,)`` predictions in the units of the target.
        loss_history: ``E`` at the start of each epoch.
        tol: the uniform bound ``ε`` in the units of the target, if one was asked for.
        input_names, target_name: axis labels.
        title: drawn above the fit panel.

    Example::

        >>> x = torch.linspace(0.0, 1.0, 5).unsqueeze(1)
        >>> fig = fit_figure(x, x[:, 0] ** 2, lambda x: x[:, 0] ** 2, [0.5, 0.1], tol=0.01, title="x²")
        >>> [ax.get_title() for ax in fig.axes]
        ['x²', 'loss']
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    x, d = x.detach().cpu().double(), d.detach().cpu().double().reshape(-1)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_fit, ax_loss = fig.subplots(1, 2)

    if x.shape[1] == 1:
        grid = torch.linspace(x.min().item(), x.max().item(), CURVE_POINTS, dtype=x.dtype)
        curve = predict(grid.unsqueeze(1)).detach().cpu().double().reshape(-1)
        if tol is not None:
            ax_fit.fill_between(grid, curve - tol, curve + tol, alpha=0.2, label=f"F(x) ± {tol:g}")
        ax_fit.plot(grid, curve, color="C0", label="F(x), the network")
        ax_fit.plot(x[:, 0], d, "o", color="C1", markersize=4, label="test points")
        ax_fit.set_xlabel(input_names[0] if input_names else "x")
        ax_fit.set_ylabel(target_name)
    else:
        y = predict(x).detach().cpu().double().reshape(-1)
        lo, hi = min(d.min().item(), y.min().item()), max(d.max().item(), y.max().item())
        if tol is not None:
            ax_fit.fill_between(
                [lo, hi], [lo - tol, hi - tol], [lo + tol, hi + tol], alpha=0.2, label=f"± {tol:g}"
            )
        ax_fit.plot([lo, hi], [lo, hi], color="C0", linewidth=1, label="F(x) = d")
        ax_fit.plot(d, y, "o", color="C1", markersize=4, label="test points")
        ax_fit.set_xlabel(f"measured {target_name}")
        ax_fit.set_ylabel(f"predicted {target_name}")
    ax_fit.set_title(title)
    ax_fit.legend()

    ax_loss.semilogy(range(len(loss_history)), loss_history, color="C2")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("E = ½ Σ (y − d)², scaled targets")
    ax_loss.set_title("loss")
    ax_loss.grid(True, which="both", alpha=0.3)
    return fig
