"""Per-point gradients and Jacobians from the explicit deltas against ``torch.func``; ``torch.compile``.

Three comparisons, each on a few network sizes (float32), the contenders interleaved round by round
and each reported as the median over rounds of the time per call:

- :func:`~torch_sigmoid_mlp.per_sample_gradients` (one forward, one backward, one einsum per layer)
  against ``torch.func.vmap(torch.func.grad(E_t))`` over plain torch ops;
- :func:`~torch_sigmoid_mlp.jacobian` (one batched backward with unit output errors) against
  ``torch.func.jacrev`` of ``y^(L)`` with respect to the weights, reshaped to the same ``(T·m, P)``;
- one forward + backward of ``E`` through the Function, eager against ``torch.compile(fullgraph=True)``
  (inductor); the compile time is the first step's, with an empty inductor cache.

Memory: the bytes of the result, and the peak the call adds. On the CPU the peak is the rise of
the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) in a fresh
process per measurement; on CUDA, ``torch.cuda.max_memory_allocated`` above what was allocated.

    python benchmarks/bench_derivatives.py
    python benchmarks/bench_derivatives.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before torch is imported: compile times are for an empty cache, as on a first run.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_derivatives_inductor_"))

import machine
import torch

from torch_sigmoid_mlp import (
    SigmoidMLP,
    jacobian,
    per_sample_gradients,
    sigmoid_mlp,
    sigmoid_mlp_autograd,
    sse_loss,
)

RESULTS = Path(__file__).resolve().parent / "results"

# (sizes, T): the teacher problem of the training tests, then two larger networks. jacrev runs one
# backward pass over all T points per output entry, T·m of them, so its time and memory grow as T²:
# the largest case keeps T small enough for it.
CASES = [((3, 3, 3, 1), 64), ((10, 32, 32, 1), 512), ((20, 64, 64, 4), 256)]
QUICK_CASES = [((3, 3, 3, 1), 64), ((10, 32, 32, 1), 256)]


def make_problem(sizes, T, device, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    model = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], generator=g, dtype=dtype)
    x = torch.empty(T, sizes[0], dtype=dtype).uniform_(0.1, 0.9, generator=g)
    d = torch.empty(T, sizes[-1], dtype=dtype).uniform_(0.1, 0.9, generator=g)
    return model.to(device), x.to(device), d.to(device)


def contenders(kind, model, x, d):
    """``{name: callable}`` for one comparison; every callable returns its result."""
    weights = [W.detach() for W in model.weights]
    T, m = d.shape
    if kind == "per_sample":

        def E_t(ws, x_t, d_t):  # one point's term of E
            return sse_loss(sigmoid_mlp_autograd(x_t[None], ws), d_t[None])

        vmap_grad = torch.func.vmap(torch.func.grad(E_t), in_dims=(None, 0, 0))
        return {
            "deltas": lambda: per_sample_gradients(model, x, d),
            "vmap(grad)": lambda: vmap_grad(weights, x, d),
        }
    if kind == "jacobian":
        jac = torch.func.jacrev(lambda ws: sigmoid_mlp_autograd(x, ws))

        def jacrev():
            return torch.cat([b.reshape(T * m, -1) for b in jac(weights)], dim=1)

        return {"deltas": lambda: jacobian(model, x), "jacrev": jacrev}
    raise ValueError(kind)


def nbytes(result) -> int:
    tensors = result if isinstance(result, (list, tuple)) else [result]
    return sum(t.numel() * t.element_size() for t in tensors)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(fns: dict, device: str, rounds: int, min_batch_s: float = 0.02) -> dict:
    """Median seconds per call of each ``fns`` entry, over ``rounds`` interleaved rounds."""
    reps = {}
    for name, fn in fns.items():  # warm up, then pick calls per round so a round lasts min_batch_s
        for _ in range(2):
            fn()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        reps[name] = max(1, int(min_batch_s / max(time.perf_counter() - t0, 1e-7)))
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                fns[name]()
            sync(device)
            samples[name].append((time.perf_counter() - t0) / reps[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _cpu_peak(kind, sizes, T, name, threads, queue) -> None:
    """In a fresh process: how far one call raises the peak resident set, in bytes."""
    torch.set_num_threads(threads)
    model, x, d = make_problem(sizes, T, "cpu")
    fns = contenders(kind, model, x, d)
    small = contenders(kind, *make_problem(sizes, 2, "cpu"))
    small[name]()  # first-call set-up (functorch, kernels) is not the call's
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _vm_kib("VmHWM") * 1024
    fns[name]()  # its result counts: the peak is reached while it is alive
    queue.put(_vm_kib("VmHWM") * 1024 - before)


def peak_bytes(kind, sizes, T, name, device) -> int | None:
    if device == "cuda":
        model, x, d = make_problem(sizes, T, device)
        fn = contenders(kind, model, x, d)[name]
        fn()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = fn()
        torch.cuda.synchronize()
        del result
        return torch.cuda.max_memory_allocated() - before
    if not Path("/proc/self/clear_refs").exists():
        return None
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak, args=(kind, sizes, T, name, torch.get_num_threads(), queue))
    proc.start()
    value = queue.get(timeout=120)
    proc.join()
    return value


def bench_derivative(kind, sizes, T, device, rounds) -> dict:
    model, x, d = make_problem(sizes, T, device)
    fns = contenders(kind, model, x, d)
    ours, theirs = (fns[name]() for name in fns)
    for a, b in zip(*(r if isinstance(r, list) else [r] for r in (ours, theirs))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=f"{kind}: the contenders disagree")
    times = interleaved_medians(fns, device, rounds)
    row = {
        "comparison": kind,
        "sizes": list(sizes),
        "T": T,
        "device": device,
        "P": sum(W.numel() for W in model.weights),
    }
    for name in fns:
        row[name] = {
            "seconds": times[name],
            "result_bytes": nbytes(fns[name]()),
            "peak_bytes": peak_bytes(kind, sizes, T, name, device),
        }
    return row


def bench_compile(sizes, T, device, rounds) -> dict:
    model, x, d = make_problem(sizes, T, device)
    weights = [W.detach().clone().requires_grad_(True) for W in model.weights]

    def loss(ws, x, d):
        return sse_loss(sigmoid_mlp(x, ws), d)

    compiled_loss = torch.compile(loss, fullgraph=True)

    def step(f):
        for W in weights:
            W.grad = None
        E = f(weights, x, d)
        E.backward()
        return [W.grad for W in weights]

    torch._dynamo.reset()
    sync(device)
    t0 = time.perf_counter()
    compiled_grads = step(compiled_loss)
    sync(device)
    compile_s = time.perf_counter() - t0
    eager_grads = step(loss)
    for a, b in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg="compiled and eager gradients disagree")
    times = interleaved_medians(
        {"eager": lambda: step(loss), "compiled": lambda: step(compiled_loss)}, device, rounds
    )
    return {
        "comparison": "compile",
        "sizes": list(sizes),
        "T": T,
        "device": device,
        "P": sum(W.numel() for W in model.weights),
        "compile_seconds": compile_s,
        "eager": {"seconds": times["eager"]},
        "compiled": {"seconds": times["compiled"]},
    }


def fmt_s(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def fmt_b(b: int | None) -> str:
    if b is None:
        return "n/a"
    return f"{b / 2**20:.3g} MiB" if b >= 2**20 else f"{b / 2**10:.3g} KiB"


def _case(r) -> str:
    return f"| {r['device']} | {'-'.join(map(str, r['sizes']))} | {r['T']} | {r['P']} "


def _comparison_table(rows, kind, ours, theirs) -> list[str]:
    lines = [
        f"| device | sizes | T | P | {ours} | {theirs} | speed-up | result | peak, {ours} | peak, {theirs} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["comparison"] == kind):
        a, b = r[ours], r[theirs]
        lines.append(
            _case(r) + f"| {fmt_s(a['seconds'])} | {fmt_s(b['seconds'])} "
            f"| {b['seconds'] / a['seconds']:.1f}× | {fmt_b(a['result_bytes'])} "
            f"| {fmt_b(a['peak_bytes'])} | {fmt_b(b['peak_bytes'])} |"
        )
    return lines


def markdown(rows, header) -> str:
    lines = [header, ""]
    lines += ["### Per-point gradients: explicit deltas against `torch.func.vmap(torch.func.grad)`", ""]
    lines += _comparison_table(rows, "per_sample", "deltas", "vmap(grad)")
    lines += ["", "### Jacobian `(T·m, P)`: explicit deltas against `torch.func.jacrev`", ""]
    lines += _comparison_table(rows, "jacobian", "deltas", "jacrev")
    lines += [
        "",
        "### One forward + backward of E through the Function: `torch.compile(fullgraph=True)` against eager",
        "",
        "| device | sizes | T | P | compile (first step) | eager step | compiled step | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["comparison"] == "compile"):
        a, b = r["eager"], r["compiled"]
        lines.append(
            _case(r) + f"| {fmt_s(r['compile_seconds'])} | {fmt_s(a['seconds'])} | {fmt_s(b['seconds'])} "
            f"| {a['seconds'] / b['seconds']:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small sizes, fewer rounds (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per comparison")
    parser.add_argument("--out", default="derivatives", help="results/<out>.{json,md}")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared machine, idle threads spinning in OpenMP "
        "barriers swamp the timings of calls this short)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = QUICK_CASES if args.quick else CASES
    rounds = args.rounds or (5 if args.quick else 15)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    t_start = time.perf_counter()
    for device in devices:
        for sizes, T in cases:
            for kind in ("per_sample", "jacobian"):
                rows.append(bench_derivative(kind, sizes, T, device, rounds))
                print(json.dumps(rows[-1]), flush=True)
            rows.append(bench_compile(sizes, T, device, rounds))
            print(json.dumps(rows[-1]), flush=True)
    command = sys.argv[1:] if argv is None else argv
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"## bench_derivatives ({now})\n\nMachine: {machine.summary()}. "
        f"float32; times are medians over {rounds} "
        f"interleaved rounds; compile time is the first compiled step with an empty inductor cache. "
        f"Command: `{' '.join(['python', f'benchmarks/{Path(__file__).name}', *command])}` "
        f"({time.perf_counter() - t_start:.0f} s)."
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"machine": machine.summary(), "date": now, "rounds": rounds, "rows": rows}, indent=1)
        + "\n"
    )
    text = markdown(rows, header)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
