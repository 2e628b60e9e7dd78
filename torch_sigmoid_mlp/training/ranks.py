"""The reduction over ranks: the one place that calls ``all_reduce`` and ``broadcast``.

The objective (:mod:`~torch_sigmoid_mlp.training.objective`) sums ``E``, ``∇E``, ``JᵀSJ`` and ``JᵀSe``
over ranks with these helpers, and the loop votes and broadcasts with them; the public face of data
parallelism, :mod:`~torch_sigmoid_mlp.training.distributed` (``shard``, ``init_from_env``, the global
gradient), builds on them too. Without a process group every helper answers as a single process
would (rank 0 of 1) and communicates nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor

from ..core._flat import as_weights, flatten, num_weights

__all__ = [
    "FlatGradients",
    "all_reduce_max",
    "any_rank",
    "broadcast_",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
]


def is_distributed() -> bool:
    """``True`` when a default ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank in the default group; 0 without one."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes in the default group; 1 without one."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """``True`` on rank 0 (and in a single process): the one process that writes files and output."""
    return get_rank() == 0


class FlatGradients:
    r"""One flat buffer holding every ``∂E/∂W^(l)``, so that one ``all_reduce`` sums them all.

    The buffer has ``P + 1`` entries, ``P = Σ_l size_{l+1}·size_l``: each ``W^(l).grad`` is a
    view of its slice, so ``backward`` accumulates straight into the buffer (autograd adds into an
    existing ``.grad`` in place) and nothing is copied before or after the reduction; the last entry,
    :attr:`loss`, carries ``E`` along in the same call. This is what DDP's
    ``gradient_as_bucket_view=True`` does, with a single bucket.

    Args:
        params: the weights ``W^(0), …, W^(L−1)`` (all of one dtype and device).

    Attributes:
        buffer: the flat tensor, shape ``(P + 1,)``.
        views: ``∂E/∂W^(l)`` as views of ``buffer``, shaped like the ``params``.
        loss: a 1-element view of ``buffer``'s last entry, where the caller puts ``E_r``.

    Example::

        >>> from torch_sigmoid_mlp.training.ranks import FlatGradients
        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0))
        >>> grads = FlatGradients(model.parameters())
        >>> grads.buffer.shape  # 2·2 + 2·2 + 1·2 weights, and E
        torch.Size([11])
        >>> model.weights[0].grad.data_ptr() == grads.buffer.data_ptr()
        True
    """

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("FlatGradients needs at least one parameter")
        first = self.params[0]
        for p in self.params:
            if p.dtype != first.dtype or p.device != first.device:
                raise ValueError(
                    f"every parameter must share one dtype and device; got {p.dtype} on {p.device} "
                    f"and {first.dtype} on {first.device}"
                )
        numel = num_weights(self.params)
        self.buffer = torch.zeros(numel + 1, dtype=first.dtype, device=first.device)  # (P + 1,)
        self.views: list[Tensor] = as_weights(self.buffer, self.params)
        self.loss = self.buffer[numel:]  # (1,)
        self.attach()

    def attach(self) -> None:
        """Make each ``W.grad`` a view of the buffer again (after someone set it to ``None``)."""
        for p, view in zip(self.params, self.views):
            if p.grad is not view:
                p.grad = view

    def zero_(self) -> None:
        """Zero every gradient and ``E``, keeping the views (``zero_grad()`` would drop them)."""
        self.attach()
        self.buffer.zero_()

    def all_reduce_(self) -> None:
        """Sum the buffer over all ranks, in place, with one ``all_reduce``; nothing without a group."""
        if is_distributed():
            dist.all_reduce(self.buffer, op=dist.ReduceOp.SUM)


def all_reduce_max(value: Tensor) -> Tensor:
    """The maximum of ``value`` over all ranks (``value`` itself without a group), as a new tensor."""
    out = value.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """``True`` on every rank when ``flag`` is ``True`` on at least one (a vote to stop, say).

    ``device`` must suit the backend: a CUDA device for ``nccl``.
    """
    if not is_distributed():
        return flag
    return bool(all_reduce_max(torch.tensor(float(flag), device=device)).item())


def broadcast_(tensors: Iterable[Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s, in one ``broadcast``; nothing without a group.

    This is what ``DistributedDataParallel`` does to the weights when it is built: every rank then
    starts from the same ``w_0`` even if their initialisations differed.
    """
    if not is_distributed():
        return
    tensors = list(tensors)
    with torch.no_grad():
        flat = flatten(tensors)  # (P,)
        dist.broadcast(flat, src)
        torch._foreach_copy_(tensors, as_weights(flat, tensors))
