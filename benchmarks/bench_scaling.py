"""Time one data-parallel full-batch step against the number of processes on one machine.

Each run spawns ``P`` processes that form a ``gloo`` group on 127.0.0.1 (as ``torchrun`` would) and time the
step ``train`` takes in a process group: on its shard of the ``T`` test points each rank runs forward and
backward (:func:`~torch_sigmoid_mlp.training.distributed.global_gradients`: one ``all_reduce(SUM)`` of the
flat gradient buffer with ``E``, one ``all_reduce(MAX)`` of the largest error), reads ``E`` and the error back
to the host, and updates its weights. Every sample lies between two barriers, so it is the slowest rank's
time. Also timed, alone: the two all-reduces of a step (the communication), and one process with as many
threads as the largest group has processes (the other way to use the cores).

Reported: the median step time over the samples, the speedup over one process, the communication
time, and from them the points per rank above which communication is under 10 % of a step.

    python benchmarks/bench_scaling.py                      # 1 and 2 processes, the default sizes
    python benchmarks/bench_scaling.py --procs 1 2 4 8      # on a machine with 8 cores or more
    python benchmarks/bench_scaling.py --quick              # a few seconds, to check that it works
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torch_sigmoid_mlp import SigmoidMLP, shard
from torch_sigmoid_mlp.training.distributed import FlatGradients, all_reduce_max, global_gradients

RESULTS = Path(__file__).resolve().parent / "results"

# (n, T): the default n → n → n → 1 network; P = 2n² + n weights.
SIZES = [(8, 10_000), (8, 100_000), (8, 1_000_000), (32, 100_000)]


def make_problem(n: int, T: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    model = SigmoidMLP(n, dtype=dtype, generator=g)
    x = (0.1 + 0.8 * torch.rand(T, n, generator=g)).to(dtype)
    d = (0.1 + 0.8 * torch.rand(T, 1, generator=g)).to(dtype)
    return model, x, d


def _timed(fn, samples: int, budget_s: float) -> list[float]:
    """Seconds per call of ``fn``: a sample is enough calls to fill ~20 ms, timed between barriers.

    Every rank must take the same number of calls, so rank 0's calibration is broadcast.
    """
    fn()  # warm-up
    dist.barrier()
    t0 = time.perf_counter()
    fn()
    dist.barrier()
    one = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
    dist.broadcast(one, 0)
    calls = max(1, int(0.02 / one.item()))
    samples = max(3, min(samples, int(budget_s / (calls * one.item()))))
    times = []
    for _ in range(samples):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dist.barrier()
        times.append((time.perf_counter() - t0) / calls)
    return times


def _measure(n: int, T: int, world_size: int, args) -> dict:
    """Step and communication time for one size, on this rank's shard of ``T`` points."""
    dtype = getattr(torch, args.dtype)
    model, x, d = make_problem(n, T, dtype)
    x_r, d_r = shard(x).clone(), shard(d).clone()
    del x, d
    weights = list(model.weights)
    grads = FlatGradients(weights)
    lr = 0.1 / T

    def step():
        E, max_abs_error = global_gradients(model, x_r, d_r, grads)
        torch.stack([E, max_abs_error]).tolist()  # the host reads them for the stopping test
        with torch.no_grad():
            torch._foreach_add_(weights, grads.views, alpha=-lr)

    def communicate():
        grads.all_reduce_()
        all_reduce_max(grads.loss)

    step_s = _timed(step, args.samples, args.budget_s)
    comm_s = _timed(communicate, args.samples, args.budget_s / 4) if world_size > 1 else [0.0]
    return {
        "n": n,
        "T": T,
        "P": sum(W.numel() for W in weights),
        "step_s": statistics.median(step_s),
        "step_iqr_s": _iqr(step_s),
        "comm_s": statistics.median(comm_s),
    }


def _worker(rank: int, world_size: int, threads: int, port: int, args, out_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    rows = [_measure(n, T, world_size, args) for n, T in args.sizes]
    if rank == 0:
        Path(out_path).write_text(json.dumps(rows))
    dist.destroy_process_group()


def _iqr(xs: list[float]) -> float:
    if len(xs) < 4:
        return 0.0
    q = statistics.quantiles(xs, n=4)
    return q[2] - q[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(world_size: int, threads: int, args) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        mp.spawn(_worker, args=(world_size, threads, _free_port(), args, out), nprocs=world_size, join=True)
        return json.loads(Path(out).read_text())


def report_markdown(report: dict) -> str:
    procs = report["procs"]
    head = ["n", "T", "P"] + [f"{p} proc{'s' if p > 1 else ''}" for p in procs]
    head += [f"1 proc, {report['threads_reference']} threads"]
    head += [f"speedup at {procs[-1]}", f"all-reduce at {procs[-1]}", f"T/rank for comm < 10% at {procs[-1]}"]
    lines = [
        f"Step time (median) of one data-parallel full-batch step, {report['dtype']}, "
        f"{report['machine']}; torch {report['torch']}, gloo.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for i, (n, T) in enumerate(report["sizes"]):
        by_p = {p: report["runs"][str(p)][i] for p in procs}
        one = by_p[procs[0]]["step_s"]
        last = by_p[procs[-1]]
        cells = [str(n), f"{T:,}", f"{last['P']:,}"]
        cells += [_ms(by_p[p]["step_s"]) for p in procs]
        cells += [_ms(report["threads_run"][i]["step_s"])]
        cells += [f"{one / last['step_s']:.2f}×", _ms(last["comm_s"]) if procs[-1] > 1 else "—"]
        # The compute of a step grows ∝ T/rank; comm is fixed. From the 1-process time per point:
        per_point = one / T
        cells += [f"{10 * last['comm_s'] / per_point:,.0f}" if procs[-1] > 1 else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ms(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} µs"


def parse_size(text: str) -> tuple[int, int]:
    n, T = text.lower().split("x")
    return int(n), int(float(T))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procs", nargs="+", type=int, default=[1, 2], help="process counts (default 1 2)")
    p.add_argument("--sizes", nargs="+", type=parse_size, default=SIZES, metavar="NxT")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--samples", type=int, default=15)
    p.add_argument("--budget-s", type=float, default=3.0, help="rough cap on one size's timed seconds")
    p.add_argument("--quick", action="store_true", help="small sizes, few samples")
    p.add_argument("--output", default=None, help="file stem in benchmarks/results/ (default scaling_cpu)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.samples, args.budget_s = [(8, 10_000), (32, 20_000)], 5, 0.5
    procs = sorted(set(args.procs))
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "dtype": args.dtype,
        "procs": procs,
        "threads_reference": procs[-1],
        "sizes": args.sizes,
        "runs": {},
    }
    for world_size in procs:
        print(f"{world_size} process(es), 1 thread each ...", flush=True)
        report["runs"][str(world_size)] = run(world_size, 1, args)
    print(f"1 process, {procs[-1]} threads ...", flush=True)
    report["threads_run"] = run(1, procs[-1], args)
    text = report_markdown(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = args.output or "scaling_cpu"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(f"`{report['command']}`, {report['date']}\n\n{text}")


if __name__ == "__main__":
    main()
