"""All the weights as one vector ``w ∈ ℝ^P`` and back: the order every flat copy of them follows.

``w = (vec W^(0), vec W^(1), …)`` with each ``W^(l)`` read row by row (``W.reshape(-1)``): the order
of the Jacobian's columns, of the Gauss–Newton system, of the flat gradient buffer and of the
weight snapshots, so that a vector from one of them means the same weights in any other.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["as_weights", "flatten", "num_weights", "weights_of_sizes"]


def num_weights(weights: Sequence[Tensor]) -> int:
    """``P = Σ_l size_{l+1} · size_l``, the length of :func:`flatten`'s vector."""
    return sum(W.numel() for W in weights)


def weights_of_sizes(sizes: Sequence[int]) -> int:
    """``P = Σ_l size_{l+1} · size_l`` of a network of layer ``sizes``, before any weight exists
    (in Python integers: no size overflows it)."""
    return sum(int(a) * int(b) for a, b in itertools.pairwise(sizes))


def flatten(weights: Sequence[Tensor], *, out: Tensor | None = None) -> Tensor:
    """``w``, a copy of every ``W^(l)`` in one vector of shape ``(P,)`` (into ``out`` when given)."""
    return torch.cat([W.detach().reshape(-1) for W in weights], out=out)


def as_weights(flat: Tensor, weights: Sequence[Tensor]) -> list[Tensor]:
    """Views of ``flat`` (its first ``P`` entries) shaped like ``weights``: the inverse of :func:`flatten`."""
    parts = flat[: num_weights(weights)].split([W.numel() for W in weights])
    return [part.view(W.shape) for part, W in zip(parts, weights)]
