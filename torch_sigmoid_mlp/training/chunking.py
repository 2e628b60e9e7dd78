r"""The full-batch gradient in chunks of test points, with memory bounded by the chunk, not by ``T``.

``E`` is a sum over test points, so for chunks ``C_1, C_2, …`` of ``K`` points each::

    E = Σ_c E_c,      ∂E/∂W^(l) = Σ_c ∂E_c/∂W^(l) = −Σ_c Σ_{t ∈ C_c} δ^(l+1)(t) · y^(l)(t)ᵀ

A forward and backward pass per chunk, each adding into ``W^(l).grad``, gives the same gradient as
one pass over all ``T`` points (up to the order of float additions) while holding the activations
``y^(0..L)`` of only ``K`` points at a time.
"""

from __future__ import annotations

from torch import Tensor

from ..core.module import SigmoidMLP
from .objective import Objective

__all__ = ["accumulate_gradients", "chunked_error"]


def accumulate_gradients(
    model: SigmoidMLP, x: Tensor, d: Tensor, *, chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    r"""Add ``∂E/∂W^(l)`` over all test points into each ``W^(l).grad``, ``chunk_size`` points at a time.

    .. math::
        ∂E/∂W^{(l)} = \sum_c ∂E_c/∂W^{(l)}, \qquad E = \sum_c E_c, \qquad
        \max_t |e(t)| = \max_c \max_{t ∈ C_c} |e(t)|

    Gradients are *added* to whatever ``.grad`` holds (as ``backward`` does); zero them first. The
    peak memory is that of a forward and backward pass over ``chunk_size`` points. ``x`` and ``d``
    may live on another device than the model (a large set in CPU memory, the model on a GPU):
    each chunk is moved to the model's device on its own, so the device holds one chunk at a time.

    Args:
        model: the network; its ``backend`` does the backward pass.
        x: test points, shape ``(T, size_0)``.
        d: measurements, shape ``(T, size_L)``.
        chunk_size: ``K``, the number of points per pass; ``None`` is one pass over all ``T``.

    Returns:
        ``(E, max_abs_error)``: 0-d tensors on the model's device, ``E = 1/2 · Σ_t ‖d_t − y^(L)(t)‖²``
        and ``max_t max_i |d_ti − y^(L)_i(t)|``, both at the current weights; 0 when ``T = 0``.

    Example::

        >>> model = SigmoidMLP(2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> x = torch.rand(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> d = torch.full((10, 1), 0.5, dtype=torch.float64)
        >>> E, max_abs_error = accumulate_gradients(model, x, d, chunk_size=3)  # 4 passes: 3+3+3+1
        >>> E_full = sse_loss(model(x), d)
        >>> torch.allclose(E, E_full)
        True
        >>> g = model.weights[0].grad.clone()
        >>> model.zero_grad()
        >>> E_full.backward()
        >>> torch.allclose(g, model.weights[0].grad)
        True
    """
    return _objective(model, x, d, chunk_size).accumulate_gradients()


def chunked_error(
    model: SigmoidMLP, x: Tensor, d: Tensor, *, chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    r"""``E`` and ``max_t |e(t)|`` at the current weights, a forward pass per chunk, no gradients.

    The evaluation half of :func:`accumulate_gradients`, under ``torch.no_grad()``: same
    arguments, same return value, and the same memory bound.

    Example::

        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0))
        >>> x, d = torch.rand(7, 2), torch.full((7, 1), 0.5)
        >>> E, max_abs_error = chunked_error(model, x, d, chunk_size=2)
        >>> torch.allclose(E, sse_loss(model(x), d))
        True
    """
    return _objective(model, x, d, chunk_size).error()


def _objective(model: SigmoidMLP, x: Tensor, d: Tensor, chunk_size: int | None) -> Objective:
    """The :class:`~torch_sigmoid_mlp.Objective` of ``E`` over ``x``, ``d``, in chunks of ``chunk_size``."""
    if x.dim() != 2 or d.dim() != 2 or x.shape[0] != d.shape[0]:
        raise ValueError(
            f"x and d must be (T, size_0) and (T, size_L) with the same T; "
            f"got shapes {tuple(x.shape)} and {tuple(d.shape)}"
        )
    # each chunk is copied to the model's device on its own, so a device holds K points at a time
    return Objective(model, x, d, chunk_size=chunk_size)
