"""Populations: what K networks trained as one computation cost per member, against one network at a
time and against FANN's RPROP epoch, and what several starts cost the estimator.

Part 1, epochs. For steepest descent and RPROP at (n, T) = (2, 100), (8, 1000), (32, 2000) with the
default hidden (n, n), and for Levenberg–Marquardt at 1-8-8-1, T = 100 (P = 80) and 4-16-14-1,
T = 300 (P = 302): the time of ``train(population, x, d, max_epochs=E)`` per member and epoch, for
K ∈ {1, 4, 16, 64} (LM: {1, 4, 8, 16}); beside it one network's epoch through ``train`` (K networks
one after another cost K of these), and FANN's RPROP epoch (``fann_train_epoch``, FANN_TRAIN_RPROP,
the same sizes). Every contender starts each sample from the same weights; samples are interleaved
round by round and the median kept (``bench_step.measure``). float32, one torch thread.

Part 2, fits. ``SigmoidMLPRegressor().fit`` with ``restarts`` = 1, 3 and 8 (each start to its own
convergence stop, no ``tol``), the starts run as one population, and ``restarts=8`` one after
another (a no-op callback keeps them apart), on bench_robust's clean 1- to 3-D problems over
seeds: the median wall time of each and its ratio to ``restarts=1``, and the median over seeds of
the epochs of the slowest of the 8 starts over start 0's, the least ``restarts=8`` can cost.

    python benchmarks/bench_population.py            # both parts (a few minutes)
    python benchmarks/bench_population.py --quick    # fewer sizes and seeds, to check that it works
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import machine
import numpy as np
import torch
from bench_step import Skip, _load_fann, measure
from fann import FANN_SIGMOID, FANN_TRAIN_RPROP

from torch_sigmoid_mlp import SigmoidMLP, SigmoidMLPRegressor, train

RESULTS = Path(__file__).resolve().parent / "results"
FIRST_ORDER = [(2, 100, (2, 2)), (8, 1000, (8, 8)), (32, 2000, (32, 32))]
LM_SIZES = [(1, 100, (8, 8)), (4, 300, (16, 14))]


def problem(n: int, T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, n, generator=g) * 2 - 1
    d = 0.5 + 0.35 * torch.sin(2 * x.sum(1, keepdim=True) / n**0.5)
    return x, d


def train_step(model, x, d, method: str, epochs: int, members: int):
    """One call trains ``epochs`` epochs from the same weights; ``.epochs`` counts member-epochs."""
    start = [W.detach().clone() for W in model.weights]
    lr = 0.5 / x.shape[0] if method == "sgd" else None

    def step():
        with torch.no_grad():
            torch._foreach_copy_([W.detach() for W in model.weights], start)
        train(model, x, d, method=method, lr=lr, max_epochs=epochs)

    step.epochs = epochs * members
    return step


def fann_rprop_step(x, d, hidden):
    lib = _load_fann(torch.float32)
    T, n = x.shape
    sizes = [n, *hidden, 1]
    ann = lib.fann_create_standard_array(len(sizes), (ctypes.c_uint * len(sizes))(*sizes))
    lib.fann_set_activation_function_hidden(ann, FANN_SIGMOID)
    lib.fann_set_activation_function_output(ann, FANN_SIGMOID)
    lib.fann_set_training_algorithm(ann, FANN_TRAIN_RPROP)
    data = lib.fann_create_train(T, n, 1)
    ctypes.memmove(data.contents.input[0], x.numpy().ctypes.data, x.numel() * 4)
    ctypes.memmove(data.contents.output[0], d.numpy().ctypes.data, d.numel() * 4)

    def step():
        lib.fann_train_epoch(ann, data)

    step.keep = (lib, ann, data)
    return step


def epochs_part(args) -> list[dict]:
    rows = []
    configs = [(m, *size) for m in ("sgd", "rprop") for size in FIRST_ORDER[: 1 if args.quick else 3]]
    configs += [("lm", *size) for size in LM_SIZES[: 1 if args.quick else 2]]
    for method, n, T, hidden in configs:
        x, d = problem(n, T)
        Ks = [1, 4, 8, 16] if method == "lm" else [1, 4, 16, 64]
        if args.quick:
            Ks = Ks[:3]
        epochs = 10 if method == "lm" else max(5, min(200, 2_000_000 // (T * n * n)))
        steps = {}
        single = SigmoidMLP(n, hidden, generator=torch.Generator().manual_seed(1))
        steps["one network"] = train_step(single, x, d, method, epochs, 1)
        for K in Ks:
            population = SigmoidMLP(n, hidden, population=K, generator=torch.Generator().manual_seed(1))
            steps[f"K={K}"] = train_step(population, x, d, method, epochs, K)
        if method == "rprop" or method == "sgd":
            try:
                steps["FANN RPROP"] = fann_rprop_step(x, d, hidden)
            except Skip as why:
                print(f"  FANN skipped: {why}", file=sys.stderr)
        samples, _ = measure(
            steps, torch.device("cpu"), rounds=args.rounds, sample_s=0.05, budget_s=8, warmup_s=0.05
        )
        us = {name: statistics.median(times) * 1e6 for name, times in samples.items()}
        P = sum(a * b for a, b in zip((n, *hidden), (*hidden, 1)))
        row = {"method": method, "n": n, "T": T, "hidden": hidden, "P": P, "us_per_member_epoch": us}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def fits_part(args) -> list[dict]:
    rng_problems = [
        ("cos 3x, T=100", 1, 100, lambda X: np.cos(3 * X[:, 0])),
        ("sin 6x, T=30", 1, 30, lambda X: np.sin(6 * X[:, 0])),
        ("sin(2x₁)cos(x₂), T=200", 2, 200, lambda X: np.sin(2 * X[:, 0]) * np.cos(X[:, 1])),
        ("exp(−|x|²)+x₃/2, T=400", 3, 400, lambda X: np.exp(-(X[:, :2] ** 2).sum(1)) + 0.5 * X[:, 2]),
    ]
    seeds = range(2 if args.quick else 5)
    variants = {"restarts=1": (1, False), "restarts=3": (3, False), "restarts=8": (8, False)}
    variants["restarts=8, one after another"] = (8, True)
    rows = []
    for name, n, T, f in rng_problems[: 2 if args.quick else 4]:
        times = {v: [] for v in variants}
        tails = []  # per seed: the slowest of the 8 starts' epochs over start 0's
        for seed in seeds:
            rng = np.random.default_rng(1000 + seed)
            X = rng.uniform(-1, 1, (T, n))
            y = f(X)
            for v, (restarts, apart) in variants.items():
                reg = SigmoidMLPRegressor(restarts=restarts, seed=seed, device="cpu")
                began = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    reg.fit(X, y, callback=(lambda k, r: None) if apart else None)
                times[v].append(time.perf_counter() - began)
                if v == "restarts=8":
                    epochs = [start.epochs for start in reg.result_.restarts[:8]]
                    tails.append(max(epochs) / epochs[0])
        median = {v: statistics.median(t) for v, t in times.items()}
        row = {
            "problem": name,
            "seconds": median,
            "ratio": {v: median[v] / median["restarts=1"] for v in median},
            "slowest_over_first": statistics.median(tails),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def markdown(head: dict, epochs: list[dict], fits: list[dict]) -> str:
    out = [
        "# Populations: per-member epoch time, and the estimator's starts",
        "",
        f"Machine: {machine.summary(head['machine'])}. Command: `{head['command']}`.",
        "",
        "## Epoch time per member (µs, median), K members as one population",
        "",
        "One network's epoch is also the per-member cost of K networks trained one after another.",
        "",
    ]
    for row in epochs:
        names = list(row["us_per_member_epoch"])
        single = row["us_per_member_epoch"]["one network"]
        out.append(
            f"**{row['method']}**, n={row['n']}, T={row['T']}, hidden={tuple(row['hidden'])}, P={row['P']}"
        )
        out.append("")
        out.append("| " + " | ".join(names) + " |")
        out.append("|" + "---|" * len(names))
        cells = [
            f"{row['us_per_member_epoch'][k]:.1f} ({row['us_per_member_epoch'][k] / single:.2f}×)"
            for k in names
        ]
        out += ["| " + " | ".join(cells) + " |", ""]
    out += [
        "## Estimator fits (no tol: each start to its convergence stop); median wall time over seeds",
        "",
        "The last column: the epochs of the slowest of the 8 starts over start 0's (median over seeds). "
        "The population runs until its slowest member stops, so `restarts=8` costs at least this many "
        "times `restarts=1` even where a batched epoch of 8 costs no more than one network's.",
        "",
        "| problem | " + " | ".join(fits[0]["seconds"]) + " | slowest ÷ start 0 |" if fits else "",
        "|---|" + "---|" * (len(fits[0]["seconds"]) + 1 if fits else 0),
    ]
    for row in fits:
        cells = [f"{row['seconds'][v]:.2f} s ({row['ratio'][v]:.2f}×)" for v in row["seconds"]]
        cells.append(f"{row['slowest_over_first']:.2f}×")
        out.append(f"| {row['problem']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-fits", action="store_true")
    parser.add_argument("--out", default="population")
    args = parser.parse_args()
    torch.set_num_threads(1)
    head = {"machine": machine.describe(), "command": " ".join(["python", *sys.argv])}
    epochs = epochs_part(args)
    fits = [] if args.skip_fits else fits_part(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps(head | {"epochs": epochs, "fits": fits}, indent=1) + "\n"
    )
    (RESULTS / f"{args.out}.md").write_text(markdown(head, epochs, fits))
    print((RESULTS / f"{args.out}.md").read_text())


if __name__ == "__main__":
    main()
