"""Peak memory of one full-batch gradient against the number of test points T, with and without chunks.

For each T and chunk size K, a fresh process builds the n → n → n → 1 network and T points and runs
:func:`~torch_sigmoid_mlp.training.chunking.accumulate_gradients` once; reported is the memory the pass itself
adds on top of the data (the points are T-sized whatever K is):

- on the CPU, the rise of the process's peak resident set (``VmHWM``, reset to the current size just
  before the pass through ``/proc/self/clear_refs``);
- on CUDA (when present), ``torch.cuda.max_memory_allocated`` during the pass, with the points kept
  in host memory: each chunk is copied to the GPU on its own, so with a K the device never holds
  more than K points; without one, all T are copied at once.

With K the peak should be flat in T; without, it grows ∝ T. Also reported: the pass's time (median of
3), the cost of many small matrix products instead of a few big ones.

    python benchmarks/bench_chunk_memory.py
    python benchmarks/bench_chunk_memory.py --points 1e4 1e5 1e6 4e6 --chunks 4096 65536
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import queue as queue_module
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import vm_kib

from torch_sigmoid_mlp import SigmoidMLP, accumulate_gradients

RESULTS = Path(__file__).resolve().parent / "results"


def _measure(device: str, n: int, T: int, K: int | None, dtype: str, queue) -> None:
    """In a fresh process: the extra peak memory (bytes) and the time of one gradient pass."""
    torch.set_num_threads(1)
    dtype_ = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    model = SigmoidMLP(n, dtype=dtype_, generator=g, device=device)
    # In place, so that building the data leaves no peak above the current size behind.
    x = torch.empty(T, n, dtype=dtype_).uniform_(0.1, 0.9, generator=g)  # stays in host memory
    d = torch.empty(T, 1, dtype=dtype_).uniform_(0.1, 0.9, generator=g)
    accumulate_gradients(model, x[:2], d[:2])  # first-call set-up (kernels, allocator) is not the pass's
    times = []
    for i in range(3):
        model.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        elif i == 0:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            before = vm_kib("VmHWM") * 1024
        t0 = time.perf_counter()
        accumulate_gradients(model, x, d, chunk_size=K)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if device == "cuda":
            peak = torch.cuda.max_memory_allocated() - before
        elif i == 0:
            peak = vm_kib("VmHWM") * 1024 - before
    queue.put({"peak_bytes": peak, "seconds": statistics.median(times)})


def measure(device: str, n: int, T: int, K: int | None, dtype: str) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(device, n, T, K, dtype, queue))
    proc.start()
    while True:
        try:
            row = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"the measuring process for T={T}, K={K} died (exit code {proc.exitcode})"
                ) from None
    proc.join()
    return {"device": device, "n": n, "T": T, "K": K, **row}


def _mib(b: float) -> str:
    return f"{b / 2**20:.1f} MiB"


def report_markdown(report: dict) -> str:
    lines = []
    for device in report["devices"]:
        rows = [r for r in report["rows"] if r["device"] == device]
        chunks = list(dict.fromkeys(r["K"] for r in rows))
        where = "peak RSS rise" if device == "cpu" else "max_memory_allocated, points in host memory"
        lines += [
            f"Extra peak memory of one full-batch gradient pass, n = {report['n']} (P = "
            f"{2 * report['n'] ** 2 + report['n']:,}), {report['dtype']}, {device} ({where}); "
            f"time of the pass in brackets.",
            "",
            "| T | " + " | ".join("all at once" if K is None else f"K = {K:,}" for K in chunks) + " |",
            "|---|" + "---|" * len(chunks),
        ]
        for T in report["points"]:
            cells = []
            for K in chunks:
                r = next(r for r in rows if r["T"] == T and r["K"] == K)
                cells.append(f"{_mib(r['peak_bytes'])} ({r['seconds'] * 1e3:.3g} ms)")
            lines.append(f"| {T:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--points", nargs="+", type=lambda s: int(float(s)), default=[10**4, 10**5, 10**6, 4 * 10**6]
    )
    p.add_argument("--chunks", nargs="+", type=int, default=[4096, 65536], help="chunk sizes K")
    p.add_argument("-n", type=int, default=8, help="inputs, and width of the two hidden layers")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    p.add_argument("--output", default=None, help="file stem in benchmarks/results/ (default chunk_memory)")
    args = p.parse_args(argv)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "n": args.n,
        "points": args.points,
        "devices": devices,
        "rows": [],
    }
    for device in devices:
        for T in args.points:
            for K in [None, *args.chunks]:
                row = measure(device, args.n, T, K, args.dtype)
                print(
                    f"{device} T={T:,} K={K}: {_mib(row['peak_bytes'])}, {row['seconds'] * 1e3:.3g} ms",
                    flush=True,
                )
                report["rows"].append(row)
    text = report_markdown(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = args.output or "chunk_memory"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(
        f"`{report['command']}`, {report['date']}, {report['machine']}\n\n{text}"
    )


if __name__ == "__main__":
    main()
