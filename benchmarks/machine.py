"""What a benchmark ran on: recorded beside every result, since the numbers mean nothing without it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def describe() -> dict:
    """CPU model and cores, torch and its threads, Python, the load average at the start, the GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        # other work on the machine skews every number: the load average (1, 5, 15 min) at the start
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def summary(info: dict | None = None) -> str:
    """:func:`describe` in one line, for a Markdown results file."""
    info = describe() if info is None else info
    text = f"{info['cpu']}, {info['cores']} CPUs ({info['torch_threads']} torch threads)"
    if "gpu" in info:
        text += f"; {info['gpu']}"
    return text + f"; torch {info['torch']}, Python {info['python']}"


def vm_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmHWM``: the peak resident set, ``VmRSS``: the current one)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")
