r"""Data-parallel training over test points on ``torch.distributed``.

``E = 1/2 · Σ_t ‖d_t − y^(L)(t)‖²`` is a sum over test points, so for any partition of the points
into shards ``S_0, …, S_{P−1}`` (one per rank)::

    ∂E/∂W^(l) = Σ_r ∂E_r/∂W^(l),      E = Σ_r E_r,      max_t |e(t)| = max_r max_{t ∈ S_r} |e(t)|

where ``E_r = 1/2 · Σ_{t ∈ S_r} ‖d_t − y^(L)(t)‖²``. Each rank computes its shard's gradient, one
``all_reduce(SUM)`` over a flat buffer of all ``P`` weights adds them up, and every rank takes the
same step from the same weights — the weights stay equal across ranks and equal to single-process
full-batch training, up to the order in which floats are added.

These helpers are thin: the default process group is PyTorch's (started by ``torchrun`` and
:func:`init_from_env`, or by the caller's own ``init_process_group``); without one, every function
here answers as a single process would (rank 0 of 1) and communicates nothing.
"""

from __future__ import annotations

import datetime
import gc
import os

import torch
import torch.distributed as dist
from torch import Tensor

from ..core.module import SigmoidMLP
from .chunking import accumulate_gradients, chunked_error
from .ranks import (
    FlatGradients,
    all_reduce_max,
    any_rank,
    broadcast_,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
)

__all__ = [
    "FlatGradients",
    "all_reduce_max",
    "any_rank",
    "broadcast_",
    "default_device",
    "end_process_group",
    "get_rank",
    "get_world_size",
    "global_error",
    "global_gradients",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "shard",
]

# The variables torchrun sets for every process it starts; MASTER_ADDR/MASTER_PORT come with them.
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def shard(x: Tensor, rank: int | None = None, world_size: int | None = None) -> Tensor:
    r"""Rank ``r``'s contiguous share of the test points (rows) of ``x``.

    The ``T`` rows are cut into ``P = world_size`` contiguous blocks in rank order; the first
    ``T mod P`` ranks get ``⌈T/P⌉`` rows and the others ``⌊T/P⌋`` (``Tensor.tensor_split``), so
    concatenating the shards of ranks ``0..P−1`` gives ``x`` back. The result is a view, no copy.
    A rank may get no rows when ``T < P``; its share of ``E`` and of the gradient is then zero.

    Args:
        x: test points (or measurements), shape ``(T, ...)``.
        rank, world_size: default to this process's rank and the group's size.

    Example::

        >>> x = torch.arange(5)
        >>> [shard(x, r, 2).tolist() for r in range(2)]
        [[0, 1, 2], [3, 4]]
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if x.dim() == 0:
        raise ValueError("x must have a dimension of test points to shard; got a 0-d tensor")
    return x.tensor_split(world_size)[rank]


def global_gradients(
    model: SigmoidMLP,
    x: Tensor,
    d: Tensor,
    grads: FlatGradients,
    *,
    chunk_size: int | None = None,
    reduce: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""Every rank's ``∂E/∂W^(l)``, ``E`` and ``max_t |e(t)|`` over the points of all ranks.

    .. math::
        ∂E/∂W^{(l)} = \sum_r ∂E_r/∂W^{(l)}, \qquad E = \sum_r E_r, \qquad
        \max_t |e(t)| = \max_r \max_{t ∈ S_r} |e(t)|

    Zeroes ``grads``, adds this rank's shard gradient into it (:func:`accumulate_gradients`, in
    chunks of ``chunk_size`` points), then sums gradients and ``E`` over ranks with one
    ``all_reduce(SUM)`` on the flat buffer, and takes the maximum error with one
    ``all_reduce(MAX)`` on a scalar. On return every rank holds the same ``W^(l).grad``. Without a
    process group, or with ``reduce=False``, this is the gradient of this process's points alone.

    Args:
        model: the network, with the same weights on every rank.
        x, d: this rank's shard ``S_r`` of the test points and measurements (e.g. :func:`shard`).
        grads: the :class:`FlatGradients` of ``model.parameters()``.
        chunk_size: points per forward/backward pass; ``None`` is the whole shard at once.
        reduce: ``False`` skips the two all-reduces.

    Returns:
        ``(E, max_abs_error)``, 0-d tensors, the same on every rank.
    """
    grads.zero_()
    E_r, max_abs_error_r = accumulate_gradients(model, x, d, chunk_size=chunk_size)
    if not reduce:
        return E_r, max_abs_error_r
    grads.loss.copy_(E_r)
    grads.all_reduce_()
    return grads.loss[0].clone(), all_reduce_max(max_abs_error_r)


def global_error(
    model: SigmoidMLP, x: Tensor, d: Tensor, *, chunk_size: int | None = None, reduce: bool = True
) -> tuple[Tensor, Tensor]:
    r"""``E = Σ_r E_r`` and ``max_r max_{t ∈ S_r} |e(t)|`` over the shards of all ranks, no gradients.

    :func:`~torch_sigmoid_mlp.training.chunking.chunked_error` on this rank's shard ``x, d``, then one
    ``all_reduce(SUM)`` and one ``all_reduce(MAX)`` (none with ``reduce=False``). Returns 0-d
    tensors, the same on every rank.
    """
    E_r, max_abs_error_r = chunked_error(model, x, d, chunk_size=chunk_size)
    if not reduce:
        return E_r, max_abs_error_r
    if is_distributed():
        dist.all_reduce(E_r, op=dist.ReduceOp.SUM)  # in place: chunked_error returned a fresh tensor
    return E_r, all_reduce_max(max_abs_error_r)


def init_from_env(backend: str | None = None, timeout: datetime.timedelta | None = None) -> bool:
    """Initialise the default process group when ``torchrun`` started this process.

    ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (with ``MASTER_ADDR`` and
    ``MASTER_PORT``) for every process it starts; when they are present the group is started from
    them (``init_method="env://"``). The default backend is ``gloo`` on a machine without GPUs
    for this job, and ``"cpu:gloo,cuda:nccl"`` when every local rank has a GPU: ``nccl`` then
    carries CUDA tensors and ``gloo`` CPU ones, and ``LOCAL_RANK`` becomes the current CUDA device
    (see :func:`default_device`). Call :func:`end_process_group` at the end.

    Args:
        backend: overrides the choice above (e.g. ``"gloo"``).
        timeout: how long a collective waits for the other ranks before it fails (PyTorch's
            default when ``None``).

    Returns:
        ``True`` when a default group is initialised on return (now or before), ``False`` when
        the environment names none (a plain ``python`` run), in which case nothing changes.
    """
    if is_distributed():
        return True
    if not all(name in os.environ for name in _TORCHRUN_ENV):
        return False
    if not dist.is_available():
        raise RuntimeError("torchrun set RANK/WORLD_SIZE but this torch build has no torch.distributed")
    if backend is None:
        backend = "gloo"
        if _local_gpus():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    return True


def _local_gpus() -> bool:
    """``True`` when CUDA is here and there is one GPU for each process on this machine."""
    if not torch.cuda.is_available():
        return False
    # torchrun sets LOCAL_WORLD_SIZE; without it, this rank's index is the best lower bound we have
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", int(os.environ.get("LOCAL_RANK", 0)) + 1))
    return local_world_size <= torch.cuda.device_count()


def default_device() -> torch.device:
    """The device ``device="auto"`` means: this rank's GPU ``cuda:LOCAL_RANK`` under ``torchrun`` on a
    machine with a GPU per process, else ``cuda`` when there is one, else ``cpu``."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if "LOCAL_RANK" in os.environ and _local_gpus():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device("cuda")


def end_process_group(wait: bool = True) -> None:
    """End the default group on every rank: wait for all ranks, free the group, then return.

    Call it once per process, on every rank, when no collective is left (nothing without a group).
    ``torch.distributed.destroy_process_group()`` alone only drops the group's entry in
    ``torch.distributed``: an object that still refers to the group (a ``DistributedDataParallel``
    in a reference cycle, say) keeps ``gloo``'s worker threads alive into interpreter shutdown,
    where a thread that drops its last tensor needs the GIL, is stopped by the exiting interpreter
    inside C++ code and aborts the process (``terminate called without an active exception``,
    ``SIGABRT``). So: collect such cycles, wait at a barrier until every rank is done
    communicating, destroy the group while the interpreter is fully alive (its threads are joined
    then), and collect again. Delete your own references to the group (a DDP wrapper) first.

    Args:
        wait: ``False`` skips the barrier, for a rank that stops on an error while the others
            may still be inside a collective (which a barrier would be mistaken for).
    """
    if not is_distributed():
        return
    gc.collect()
    try:
        if wait:
            dist.barrier()
    finally:
        dist.destroy_process_group()
        gc.collect()
