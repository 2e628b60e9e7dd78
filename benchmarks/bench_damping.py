"""LM/BR's damping rule, Nielsen's against MATLAB trainlm's, in the estimator's default fits over seeds.

``SigmoidMLPRegressor(seed=k).fit`` on ``bench_robust.py``'s 1-D rows (clean, valley-shaped and noisy;
10 seeds each), once with each rule of :class:`~torch_sigmoid_mlp.solvers.LevenbergMarquardt`
(``damping=``, switched here by the solvers' default). Reported per row: the seeds that reached grid
``R² ≥ 0.999``, the worst and median grid ``R²``, the epochs of all starts summed over the seeds, the
starts that ended by ``max_epochs``, and the median wall time of a fit. Epochs and successes do not
depend on the machine's load; the times do.

    python benchmarks/bench_damping.py            # 10 seeds
    python benchmarks/bench_damping.py --seeds 3
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import statistics
import sys
import time

import bench_robust
import machine
import torch
from threadpoolctl import threadpool_limits

import torch_sigmoid_mlp.training.population_lm as population_lm
import torch_sigmoid_mlp.training.solvers as solvers
from torch_sigmoid_mlp import SigmoidMLPRegressor

RULES = ("nielsen", "trainlm")


def with_damping(rule: str):
    """The solvers' constructors with ``damping=rule`` as their default, for the estimator's fits."""
    originals = []
    for cls in (solvers.LevenbergMarquardt, population_lm.LevenbergMarquardt):
        originals.append((cls, cls.__init__))
        init = cls.__init__
        cls.__init__ = functools.partialmethod(
            lambda self, *a, _init=init, **k: _init(self, *a, **{"damping": rule, **k})
        )
    return originals


def one_d_rows() -> list:
    return [p for p in bench_robust.problems() if p.family in ("clean", "noisy") and "x₁" not in p.name
            and "|x|" not in p.name]  # fmt: skip


def run(rule: str, p, seeds: int) -> dict:
    originals = with_damping(rule)
    try:
        epochs, r2s, seconds, maxed = [], [], [], 0
        for seed in range(seeds):
            X, y, X_test, y_test = p.make(seed)
            began = time.perf_counter()
            reg = SigmoidMLPRegressor(hidden=p.hidden, tol=p.tol, seed=seed, device="cpu").fit(X, y)
            seconds.append(time.perf_counter() - began)
            starts = reg.result_.restarts or [reg.result_]
            epochs.append(sum(s.epochs for s in starts))
            maxed += sum(s.stop_reason == "max_epochs" for s in starts)
            r2s.append(bench_robust.r2(y_test, reg.predict(X_test)))
    finally:
        for cls, init in originals:
            cls.__init__ = init
    return {"success": sum(r >= bench_robust.SUCCESS_R2 for r in r2s), "r2_worst": min(r2s),
            "r2_median": statistics.median(r2s), "epochs": sum(epochs), "maxed": maxed,
            "seconds_median": statistics.median(seconds), "r2": r2s, "epochs_per_seed": epochs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    rows = []
    for p in one_d_rows():
        row = {"problem": p.name, "family": p.family}
        for rule in RULES:  # the rules alternate row by row: load falls on both alike
            row[rule] = run(rule, p, args.seeds)
        rows.append(row)
        lists = ("r2", "epochs_per_seed")
        brief = {rule: {k: v for k, v in row[rule].items() if k not in lists} for rule in RULES}
        print(json.dumps({"problem": p.name, **brief}), flush=True)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = f"{machine.summary()}; {now}; `python benchmarks/bench_damping.py {' '.join(sys.argv[1:])}`"
    lines = [
        "# LM/BR's damping, Nielsen's rule against trainlm's: `bench_damping.py`", "", head + ".", "",
        "Default fits (BR, 3 starts) of bench_robust's 1-D rows; per rule: seeds at grid R² ≥ 0.999 "
        "(clean rows), worst and median grid R², epochs of all starts summed over the seeds, starts "
        "ended by max_epochs, median seconds of a fit (a shared machine: times are noisy).", "",
        "| problem | Nielsen | trainlm | epochs Nielsen / trainlm |", "| --- | --- | --- | ---: |",
    ]  # fmt: skip

    def cell(s):
        ok = f"{s['success']}/{args.seeds}, " if s["success"] is not None else ""
        return (f"{ok}worst R² {s['r2_worst']:.4f}, median {s['r2_median']:.5f}; {s['epochs']} epochs, "
                f"{s['maxed']} at max_epochs; {s['seconds_median'] * 1e3:.0f} ms")  # fmt: skip

    for row in rows:
        if row["family"] != "clean":
            for rule in RULES:
                row[rule]["success"] = None
        ratio = row["nielsen"]["epochs"] / row["trainlm"]["epochs"]
        lines.append(f"| {row['problem']} | {cell(row['nielsen'])} | {cell(row['trainlm'])} | {ratio:.2f} |")
    total = {rule: sum(r[rule]["epochs"] for r in rows) for rule in RULES}
    lines.append(f"| **all rows** | {total['nielsen']} epochs | {total['trainlm']} epochs | "
                 f"**{total['nielsen'] / total['trainlm']:.2f}** |")  # fmt: skip
    bench_robust.RESULTS.mkdir(exist_ok=True)
    record = json.dumps({"head": head, "rows": rows}, indent=1) + "\n"
    (bench_robust.RESULTS / "damping.json").write_text(record)
    (bench_robust.RESULTS / "damping.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
