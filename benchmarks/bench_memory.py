"""Measure the memory one full-batch training step of an n → n → n → 1 network needs, as T grows:
the bytes autograd saves for backward, and the peak memory of the step.

Contenders are (a), (b0), (b) and (cf) of ``bench_step.py``: nn.Sequential + autograd + SGD, the
same maths through this library's autograd backend, this library's Function, and the tape-free step
``TapeFreeStep`` that ``train`` runs (c: the same buffers, plus two flat copies of the weights).

- **saved**: every tensor packed by ``torch.autograd.graph.saved_tensors_hooks`` during the
  forward pass, each storage counted once at its full size. **saved, activations** leaves out
  the storages of ``x``, ``d`` and the weights, which exist whatever the method. The tape-free step
  builds no graph, so it saves nothing; its preallocated buffers are reported as **buffers**.
- **peak**: on CUDA, ``torch.cuda.max_memory_allocated`` during three steps minus the memory
  allocated before them. On the CPU, where no allocator keeps such a count for torch, each
  configuration runs in a fresh single-threaded subprocess (Linux): it builds the problem, takes
  one step (**first step**: the growth of the resident set, which includes what stays allocated
  afterwards, such as ``.grad``), then resets the kernel's peak-RSS mark (``/proc/self/clear_refs``)
  and reports the rise of ``VmHWM`` over the RSS before three more steps: what a step needs at its
  peak beyond what is already held, to the page, allocator slack included.
- **packed**: the sum of ``numel · element_size`` over every packed tensor, a storage counted each
  time it is packed (autograd packs the same ``y^(l)`` for ``Linear`` and for ``Sigmoid``).

    python benchmarks/bench_memory.py            # n = 8, T = 10^3 … 10^6, float32 and float64
    python benchmarks/bench_memory.py --quick    # T up to 10^4
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import shlex
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_step
import machine

CONTENDERS = ["a", "b0", "b", "cf"]
T_VALUES = [1000, 10_000, 100_000, 1_000_000]


def saved_bytes(name, n, T, dtype, device):
    """Bytes packed for backward by one forward pass of contender ``name``, total and activations only."""
    x, d, weights, lr = bench_step.make_problem(n, T, dtype, device)
    step = bench_step.BUILDERS[name](x, d, weights, lr)
    step()  # creates .grad and any lazy state, as in the timed steps
    storages = {}
    packed = 0

    def pack(t):
        nonlocal packed
        packed += t.numel() * t.element_size()
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    data = {x.untyped_storage().data_ptr(), d.untyped_storage().data_ptr()}
    data |= {W.untyped_storage().data_ptr() for W in _weights_of(step)}
    total = sum(storages.values())
    activations = sum(b for ptr, b in storages.items() if ptr not in data)
    return total, activations, packed, _buffer_bytes(step)


def _weights_of(step):
    """The parameters a step updates, found in its closure (model, optimizer or tape-free step)."""
    found = []
    for cell in step.__closure__ or ():
        obj = cell.cell_contents
        if isinstance(obj, torch.optim.Optimizer):
            found += [p for group in obj.param_groups for p in group["params"]]
        elif hasattr(obj, "__self__") and hasattr(obj.__self__, "weights"):  # a TapeFreeStep method
            found += obj.__self__.weights
    return found


def _buffer_bytes(step):
    for cell in step.__closure__ or ():
        owner = getattr(cell.cell_contents, "__self__", None)
        if owner is not None and hasattr(owner, "_ys"):
            buffers = [*owner._ys, owner._e, *owner._products]
            return sum(b.numel() * b.element_size() for b in buffers)
    return 0


def peak_cuda(name, n, T, dtype):
    device = torch.device("cuda")
    x, d, weights, lr = bench_step.make_problem(n, T, dtype, device)
    step = bench_step.BUILDERS[name](x, d, weights, lr)
    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    return {"peak_bytes": torch.cuda.max_memory_allocated() - before}


def _vm(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_cpu_child(name, n, T, dtype):
    """In a subprocess: the resident set's growth over the first step, and its peak over three more."""
    torch.set_num_threads(1)  # one thread: no per-thread scratch in the count
    x, d, weights, lr = bench_step.make_problem(n, T, getattr(torch, dtype), torch.device("cpu"))
    step = bench_step.BUILDERS[name](x, d, weights, lr)
    libc = ctypes.CDLL(None)
    libc.malloc_trim(0)  # hand back what building the problem freed, so it isn't counted
    start = _vm("VmRSS")
    step()
    first = _vm("VmRSS") - start
    libc.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _vm("VmRSS")
    for _ in range(3):
        step()
    print(json.dumps({"first_step_bytes": first, "peak_bytes": _vm("VmHWM") - before}))


def peak_cpu(name, n, T, dtype):
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, str(n), str(T), str(dtype).removeprefix("torch.")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def mib(b):
    return f"{b / 2**20:.2f} MiB" if b >= 2**16 else f"{b / 1024:.1f} KiB"


def markdown(report):
    info = report["machine"]
    lines = [
        "# Memory of one full-batch training step",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores; torch {info['torch']}. {report['date']}; load "
        f"average at the start {' / '.join(map(str, info['load_average']))} (1 / 5 / 15 min).",
        "",
        f"Command: `{report['command']}`",
        "",
        "saved: bytes packed for backward (each storage once); packed: the same, a storage counted "
        "each time it is packed; activations: saved without x, d and the weights; buffers: the tape-free "
        "step's preallocated signals and deltas; first step: growth of the resident memory over the "
        "first step; peak: the peak over three more steps above what was held before them (see the "
        "script's docstring).",
        "",
        "| device, dtype | n | T | contender | saved | saved, activations | packed | buffers | first step "
        "| peak | saved vs (a) | packed vs (a) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        ref = next(
            r
            for r in report["rows"]
            if r["contender"] == "a"
            and (r["device"], r["dtype"], r["n"], r["T"]) == (row["device"], row["dtype"], row["n"], row["T"])
        )
        first = row.get("first_step_bytes")
        cells = [
            f"{row['device']}, {row['dtype']}",
            str(row["n"]),
            str(row["T"]),
            bench_step.LABELS[row["contender"]],
            *(mib(row[k]) for k in ["saved_bytes", "saved_activation_bytes", "packed_bytes", "buffer_bytes"]),
            "—" if first is None else mib(first),
            mib(row["peak_bytes"]),
            f"{row['saved_bytes'] / ref['saved_bytes']:.2f}",
            f"{row['packed_bytes'] / ref['packed_bytes']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--T", nargs="+", type=lambda s: int(float(s)), default=T_VALUES)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    p.add_argument("--quick", action="store_true", help="T up to 10^4")
    p.add_argument("--output", default=None, help="file stem under benchmarks/results/ (default: memory)")
    p.add_argument("--child", nargs=4, metavar=("NAME", "N", "T", "DTYPE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        name, n, T, dtype = args.child
        peak_cpu_child(name, int(n), int(T), dtype)
        return
    if args.quick and args.T == T_VALUES:
        args.T = T_VALUES[:2]
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    report = {
        "command": shlex.join(
            ["python", "benchmarks/bench_memory.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "rows": [],
    }
    for device in map(torch.device, devices):
        for dtype in (getattr(torch, name) for name in args.dtypes):
            for T in args.T:
                for name in CONTENDERS:
                    total, activations, packed, buffers = saved_bytes(name, args.n, T, dtype, device)
                    peak = (
                        peak_cuda(name, args.n, T, dtype)
                        if device.type == "cuda"
                        else peak_cpu(name, args.n, T, dtype)
                    )
                    row = {
                        "device": str(device),
                        "dtype": str(dtype).removeprefix("torch."),
                        "n": args.n,
                        "T": T,
                        "contender": name,
                        "saved_bytes": total,
                        "saved_activation_bytes": activations,
                        "packed_bytes": packed,
                        "buffer_bytes": buffers,
                        **peak,
                    }
                    report["rows"].append(row)
                    print(
                        f"{device} {row['dtype']} T={T} {name}: saved {mib(total)}, packed {mib(packed)}, "
                        f"buffers {mib(buffers)}, peak {mib(row['peak_bytes'])}",
                        flush=True,
                    )
    bench_step.RESULTS.mkdir(exist_ok=True)
    stem = args.output or ("memory_quick" if args.quick else "memory")
    (bench_step.RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    (bench_step.RESULTS / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
