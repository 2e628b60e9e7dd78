"""Matrix-free Levenberg–Marquardt (``solver="lm_cg"``) against dense LM (``"lm"``): epochs and their time.

A smooth function of 30 inputs, ``y = sin(x·a) + 0.5·cos(x·b) + 0.1·|x|²`` with fixed random
directions ``a, b``, at T = 2000 training points and 2000 test points, fitted by
``SigmoidMLPRegressor(hidden=(h, h), solver=…, restarts=1, max_epochs=…)`` (no ``tol``: the fit
runs to its convergence stop or the epoch cap) for ``h`` = 8, 20, 32, i.e. P = 312, 1020, 2016
weights. Reported per fit: epochs, stop, seconds, seconds per epoch, training and test ``R²``, and
for ``lm_cg`` the products ``JᵀSJ·v`` per epoch (its CG iterations; each ``O(N·P)``). The two
solvers of one size run in one process, one after the other, on one thread.

A second table compares ``lm_cg``'s own choices: the warm start after a rejected ``μ``
(``cg_warm``) and a float32 model against a float64 one (products in the model's
dtype, CG's vectors in float64 either way). The main table has ``lm_cg`` with its forcing sequence
with Ceres's fixed ``eta = 0.1`` (``cg_forcing="none"``, the default) and with its forcing
sequence (``"sqrt"``).

    python benchmarks/bench_matrix_free.py
    python benchmarks/bench_matrix_free.py --quick     # h = 8 only, fewer epochs
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe, summary

from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.training.matrix_free import GaussNewtonProducts

RESULTS = Path(__file__).resolve().parent / "results"


def data(T: int, n: int = 30, seed: int = 0):
    g = np.random.default_rng(seed)
    a, b = g.normal(size=n) / np.sqrt(n), g.normal(size=n) / np.sqrt(n)
    X = g.uniform(-1, 1, size=(2 * T, n))
    y = np.sin(2 * X @ a) + 0.5 * np.cos(3 * X @ b) + 0.1 * (X**2).sum(1)
    return X[:T], y[:T], X[T:], y[T:]


def r2(y, p) -> float:
    return float(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum())


class Count:
    """Counts the products ``JᵀSJ·v`` (each column of a block counts once)."""

    def __init__(self):
        self.n = 0
        self._call = GaussNewtonProducts.__call__

    def __enter__(self):
        count = self

        def counted(products, V):
            count.n += 1 if V.dim() == 1 else V.shape[1]
            return count._call(products, V)

        GaussNewtonProducts.__call__ = counted
        return self

    def __exit__(self, *exc):
        GaussNewtonProducts.__call__ = self._call


def fit(h: int, solver: str, max_epochs: int, split, dtype="float64", **options) -> dict:
    X, y, X_test, y_test = split
    est = SigmoidMLPRegressor(
        hidden=(h, h), solver=solver, restarts=1, max_epochs=max_epochs, seed=0, dtype=dtype
    )
    with Count() as count:
        t0 = time.perf_counter()
        if options:
            _fit_with_options(est, X, y, options)
        else:
            est.fit(X, y)
        seconds = time.perf_counter() - t0
    r = est.result_
    P = sum(W.numel() for W in est.model_.weights)
    return {
        "h": h, "P": P, "solver": solver, "dtype": dtype, "options": options, "epochs": r.epochs,
        "stop": r.stop_reason, "seconds": seconds, "seconds_per_epoch": seconds / max(r.epochs, 1),
        "train_r2": r2(y, est.predict(X)), "test_r2": r2(y_test, est.predict(X_test)),
        "products_per_epoch": count.n / max(r.epochs, 1) if solver == "lm_cg" else None,
    }  # fmt: skip


def _fit_with_options(est, X, y, options: dict) -> None:
    """``fit`` with solver options the estimator does not take: passed to ``train`` through a wrapper."""
    import torch_sigmoid_mlp.estimator.regressor as regressor

    train = regressor.train

    def with_options(*args, **kwargs):
        kwargs["options"] = {**(kwargs.get("options") or {}), **options}
        return train(*args, **kwargs)

    regressor.train = with_options
    try:
        est.fit(X, y)
    finally:
        regressor.train = train


def row(f: dict) -> str:
    products = "—" if f["products_per_epoch"] is None else f"{f['products_per_epoch']:.0f}"
    solver = f["solver"] + (
        "" if not f["options"] else " " + ", ".join(f"{k}={v}" for k, v in f["options"].items())
    )
    return (
        f"| {f['P']} | {solver} | {f['epochs']} ({f['stop']}) | {f['seconds']:.1f} | "
        f"{f['seconds_per_epoch']:.3f} | {products} | {f['train_r2']:.4f} | {f['test_r2']:.4f} |"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    split = data(2000)
    sizes = [(8, 10)] if args.quick else [(8, 50), (20, 30), (32, 20)]
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe(),
        "fits": [],
        "variants": [],
    }
    for h, cap in sizes:
        for solver, options in (("lm", {}), ("lm_cg", {}), ("lm_cg", {"cg_forcing": "sqrt"})):
            f = fit(h, solver, cap, split, **options)
            print(row(f), flush=True)
            report["fits"].append(f)
    variants = [("float64", {"cg_warm": "previous"}), ("float64", {"cg_warm": "zero"}), ("float32", {})]
    for h, cap in sizes:
        for dtype, options in variants:
            f = fit(h, "lm_cg", cap, split, dtype=dtype, **options)
            print(dtype, options, row(f), flush=True)
            report["variants"].append(f)
    header = [
        "| P | solver | epochs (stop) | s | s/epoch | products/epoch | train R² | test R² |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines = [
        "Fits of 30 inputs → (h, h) → 1 at T = 2000 (`SigmoidMLPRegressor(hidden=(h, h), solver=…, "
        "restarts=1, max_epochs=cap)`, caps " + ", ".join(f"{c} at h = {h}" for h, c in sizes) + "), "
        "float64, one thread; the times are noisy (a shared machine), epochs, products and R² are not.",
        "",
        *header,
        *(row(f) for f in report["fits"]),
        "",
        "`lm_cg`'s choices (the default, `cg_warm='scaled'`, `cg_forcing='none'`, float64, is the "
        "table's `lm_cg` row above):",
        "",
        "| P | dtype | options | epochs (stop) | s | s/epoch | products/epoch | train R² | test R² |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in report["variants"]:
        cells = row(f).split("|")[3:]  # from the epochs on
        lines.append(f"| {f['P']} | {f['dtype']} | {f['options'] or 'default'} |" + "|".join(cells))
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "matrix_free.json").write_text(json.dumps(report, indent=1) + "\n")
        (RESULTS / "matrix_free.md").write_text(
            f"`{report['command']}`, {report['date']}, {summary(report['machine'])}\n\n{text}"
        )


if __name__ == "__main__":
    main()
