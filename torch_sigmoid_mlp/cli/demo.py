"""The built-in demo: what ``torch-sigmoid-mlp fit`` fits when it is given no data file."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core._checks import check_integer

__all__ = ["Demo", "sine_demo"]


@dataclass(frozen=True)
class Demo:
    """A function sampled at test points, with the settings that fit it.

    Attributes:
        name: what the command line calls it.
        formula: the function, in one line.
        x: test points ``x_t``, ``(T, n)``, float64.
        d: measurements ``d_t = f(x_t)``, ``(T,)``, float64.
        input_names, target_name: column names, as a CSV file would have them.
        hidden: hidden-layer widths that fit it.
        tol: the uniform bound ``ε`` it is fitted to, in the units of ``d``.
    """

    name: str
    formula: str
    x: Tensor
    d: Tensor
    input_names: tuple[str, ...]
    target_name: str
    hidden: tuple[int, ...]
    tol: float


def sine_demo(points: int = 41) -> Demo:
    r"""One rising half-wave of the sine, ``d = sin(x)`` at ``T`` equispaced ``x ∈ [−π/2, π/2]``.

    .. code-block:: text

        x_t = −π/2 + π · (t − 1)/(T − 1),   d_t = sin(x_t),   t = 1..T

    A smooth S-shaped curve whose bend sits mid-range, to be fitted to ``|F(x_t) − d_t| < 0.04``
    (2% of its range) at every point, with two hidden layers of 8 neurons. SPEC.md's default
    architecture for one input, ``1 → 1 → 1 → 1``, cannot draw it: without biases every
    neuron of the first layer is ``σ(w·x)``, bent at ``x = 0``, and a chain of single neurons
    cannot move the bend into the data's range; it takes several neurons per layer, whose
    weighted sums can cross zero anywhere.

    Args:
        points: ``T``, the number of test points (at least 2).

    Example::

        >>> demo = sine_demo()
        >>> demo.name, demo.x.shape, demo.hidden, demo.tol
        ('sine', torch.Size([41, 1]), (8, 8), 0.04)
        >>> print(f"{demo.d.min():.1f} {demo.d.max():.1f}")
        -1.0 1.0
    """
    points = check_integer(points, "points", low=2)
    x = torch.linspace(-math.pi / 2, math.pi / 2, points, dtype=torch.float64).unsqueeze(1)  # (T, 1)
    return Demo(
        name="sine",
        formula="d = sin(x), x in [-pi/2, pi/2]",
        x=x,
        d=torch.sin(x[:, 0]),  # (T,)
        input_names=("x",),
        target_name="d",
        hidden=(8, 8),
        tol=0.04,
    )
