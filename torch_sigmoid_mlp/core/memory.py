"""What a network costs in memory, checked before it is allocated.

The estimate is a lower bound: the weights ``W^(l)`` three times (weights, gradients, a step's
buffer) and every layer's signals ``y^(l)(t)`` twice (forward values and backward deltas). A request
above the memory that is free now is refused with a ``ValueError`` before anything is allocated; one
below it may still fail in the allocator, which the caller then reports as the same refusal.

Example::

    >>> from torch_sigmoid_mlp.core.memory import memory_needed
    >>> memory_needed((2, 8, 8, 1), 100, torch.float64)  # 8 bytes · (3·88 + 2·100·19)
    32512
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._flat import weights_of_sizes

__all__ = ["check_device_has_data", "check_memory", "memory_available", "memory_needed"]


def memory_needed(sizes: Sequence[int], T: int, dtype: torch.dtype) -> int:
    """Bytes a pass (and a step) of a ``sizes`` network on ``T`` points needs at the least.

    Computed in Python integers, so that no size overflows it.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    weights = weights_of_sizes(sizes)
    return itemsize * (3 * weights + 2 * int(T) * sum(int(s) for s in sizes))


def memory_available(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes, where the system says (Linux, CUDA); else ``None``."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(sizes: Sequence[int], T: int, device, dtype: torch.dtype = torch.float64) -> None:
    """Refuse, before allocating, a ``sizes`` network on ``T`` points that cannot fit in the free memory.

    Raises:
        ValueError: the estimate (:func:`memory_needed`) exceeds what :func:`memory_available` reports;
            the message names the architecture, the points and both amounts.
    """
    device = torch.device(device)
    needed, free = memory_needed(sizes, T, dtype), memory_available(device)
    if free is not None and needed > free:
        architecture = "-".join(map(str, sizes))
        raise ValueError(
            f"a {architecture} bias-free sigmoid network on {T} points needs at least "
            f"{needed / 2**30:.3g} GiB, and {free / 2**30:.3g} GiB are free on {device}"
        )


def check_device_has_data(device, name: str = "device") -> None:
    """Refuse a device whose tensors hold no data (``"meta"``): nothing could be trained or read there."""
    if torch.device(device).type == "meta":
        raise ValueError(
            f"{name}={str(device)!r} holds shapes but no data, and a fit needs values: "
            "use 'cpu', 'cuda' or 'auto'"
        )
