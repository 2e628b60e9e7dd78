"""Peak memory of one Levenberg–Marquardt epoch against the number of test points T.

For each T, a fresh process builds the default network of n inputs (n → n → n → 1, P weights) and T
points and runs one epoch of ``train(method="lm")``'s step: ``JᵀJ`` and ``Jᵀe`` accumulated a block
of points at a time (:meth:`~torch_sigmoid_mlp.training.objective.Objective.gauss_newton`), the damped solve
and the trial evaluation. Beside it, the same sums from the whole ``T·m × P`` Jacobian at once
(:func:`~torch_sigmoid_mlp.jacobian`), which is what memory would be without blocks. Reported is
the rise of the process's peak resident set (``VmHWM``, reset just before the epoch) on top of the
data, and the epoch's time. The blocked epoch's peak should be flat in T; the whole Jacobian's grows
as ``8·T·m·P`` bytes. The third column is one epoch of ``method="lm_cg"``
(:class:`~torch_sigmoid_mlp.training.matrix_free.MatrixFreeLM`): no ``J`` and no ``P×P`` matrix, its
memory the signals of ``w_k`` and of a trial, ``2·8·T·Σ_{l≥1} size_l`` bytes, and vectors of ``P``:
``O(N + P)``. The fourth is one epoch of a population of one
(:class:`~torch_sigmoid_mlp.training.population_lm.LevenbergMarquardt`, what ``restarts`` run their
starts as): its ``JᵀJ`` and ``Jᵀe`` summed a block of at most ``JACOBIAN_NUMBERS`` numbers of ``J`` at a
time, beside the signals of ``w_k`` and of a trial.

    python benchmarks/bench_lm_memory.py
    python benchmarks/bench_lm_memory.py --points 1e4 1e5 1e6 -n 8
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import shlex
import sys
import time
from pathlib import Path

import torch
from machine import describe, summary, vm_kib

from torch_sigmoid_mlp import SigmoidMLP, jacobian
from torch_sigmoid_mlp.training import population_lm
from torch_sigmoid_mlp.training.matrix_free import MatrixFreeLM
from torch_sigmoid_mlp.training.objective import Objective
from torch_sigmoid_mlp.training.solvers import LevenbergMarquardt

RESULTS = Path(__file__).resolve().parent / "results"
HOWS = ("blocks", "whole J", "lm_cg", "population")


def _measure(n: int, T: int, how: str, queue) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    model = SigmoidMLP(n, dtype=torch.float64, generator=g)
    x = torch.empty(T, n, dtype=torch.float64).uniform_(-1, 1, generator=g)
    d = torch.empty(T, 1, dtype=torch.float64).uniform_(0.1, 0.9, generator=g)
    if how == "population":
        model = SigmoidMLP(n, dtype=torch.float64, generator=g, population=1)
        everyone = torch.ones(1, dtype=torch.bool)
        first = population_lm.LevenbergMarquardt(list(model.weights), x[:8], d[:8], None)
        first.evaluate()
        first.step(everyone)  # first-call set-up (kernels, allocator) is not the epoch's
        step = population_lm.LevenbergMarquardt(list(model.weights), x, d, None)
    else:
        solver = MatrixFreeLM if how == "lm_cg" else LevenbergMarquardt
        objective = Objective(model, x[:8], d[:8])
        first = solver(objective)
        first.evaluate()
        first.step()  # first-call set-up (kernels, allocator) is not the epoch's
        objective = Objective(model, x, d)
        step = solver(objective)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = vm_kib("VmHWM") * 1024
    t0 = time.perf_counter()
    if how == "population":
        step.evaluate()
        step.step(everyone)
    elif how in ("blocks", "lm_cg"):
        step.evaluate()
        step.step()
    else:
        J = jacobian(model, x).double()  # (T·m, P), all at once
        e = (d - model(x).detach()).reshape(-1)
        A = J.T @ J
        J.T @ e  # Jᵀe, as the step forms it
        torch.linalg.cholesky(A + 1e-3 * torch.eye(A.shape[0], dtype=A.dtype))
    seconds = time.perf_counter() - t0
    queue.put({"peak_bytes": vm_kib("VmHWM") * 1024 - before, "seconds": seconds})


def measure(n: int, T: int, how: str) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(n, T, how, queue))
    proc.start()
    row = queue.get(timeout=600)
    proc.join()
    return {"n": n, "T": T, "how": how, **row}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", nargs="+", type=lambda s: int(float(s)), default=[10**4, 10**5, 10**6])
    p.add_argument("-n", type=int, default=8, help="inputs, and width of the two hidden layers")
    args = p.parse_args(argv)
    P = 2 * args.n**2 + args.n
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe(),
        "n": args.n,
        "P": P,
        "rows": [],
    }
    for T in args.points:
        for how in HOWS:
            if how == "whole J" and 8 * T * P > 4 * 2**30:
                continue  # more than 4 GiB for J alone
            row = measure(args.n, T, how)
            print(f"T={T:,} {how}: {row['peak_bytes'] / 2**20:.1f} MiB, {row['seconds']:.3g} s", flush=True)
            report["rows"].append(row)
    lines = [
        f"Extra peak memory (rise of the peak RSS) of one LM epoch, {args.n}-{args.n}-{args.n}-1 "
        f"(P = {P}), float64, one thread; the epoch's time in brackets.",
        "",
        "| T | JᵀJ, Jᵀe in blocks (train) | the whole J at once | lm_cg: no J, no JᵀJ | population of one |",
        "|---|---|---|---|---|",
    ]
    for T in args.points:
        cells = []
        for how in HOWS:
            r = next((r for r in report["rows"] if r["T"] == T and r["how"] == how), None)
            cells.append("—" if r is None else f"{r['peak_bytes'] / 2**20:.1f} MiB ({r['seconds']:.3g} s)")
        lines.append(f"| {T:,} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lm_memory.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "lm_memory.md").write_text(
        f"`{report['command']}`, {report['date']}, {summary(report['machine'])}\n\n{text}"
    )


if __name__ == "__main__":
    main()
