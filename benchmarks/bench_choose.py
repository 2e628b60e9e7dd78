"""Choosing among starts: how often each rule keeps the start that generalises best.

For each problem and seed, ``--starts`` K independent starts (``SigmoidMLPRegressor`` with
``restarts=1`` and seeds ``seed, seed + 1, …``, every other setting the default, so "auto" runs
Bayesian regularisation). Each start is scored on the problem's grid or test split, and then each
rule chooses one start from what it can see on the training points alone:

- ``evidence``: the highest ``ln p(D | α, β)`` (SPEC.md, "Several starts"; the library's rule);
- ``GCV``: the lowest generalised cross-validation error ``N·E_D / (N − γ)²``, with ``γ`` the
  trace of the hat matrix below;
- ``PRESS``: the lowest approximate leave-one-out error ``Σ_t (e_t / (1 − h_tt))²``, with ``h_tt``
  the diagonal of the hat matrix ``J (JᵀJ + D_α/β)⁻¹ Jᵀ`` of the fit linearised at its weights (the
  smoother that one Gauss–Newton step of BR's objective applies to the targets);
- ``first``: start 0 alone, which is ``restarts=1``;
- ``best``: the start of the highest grid or test ``R²``, which no rule can see: what choosing
  cannot improve on.

For each rule: clean problems count the seeds whose chosen start reaches grid ``R²`` ≥ 0.999;
every row gives the worst and the mean ``R²`` of the chosen starts.

    python benchmarks/bench_choose.py              # 11 problems × 10 seeds × 4 starts (a few minutes)
    python benchmarks/bench_choose.py --quick      # 2 problems × 2 seeds, to check that it works
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

import machine
import torch
from bench_fit import write
from bench_robust import SUCCESS_R2, problems

from torch_sigmoid_mlp import SigmoidMLPRegressor, jacobian

RESULTS = Path(__file__).resolve().parent / "results"
PROBLEMS = [
    "sin 6x, T=30",
    "exp(−4x²), T=30",
    "cos 3x, T=30",
    "tanh 2x + x/3, T=30",
    "cos 3x, T=30, σ=0.1",
    "sin 3x, T=100, σ=0.1",
    "exp(−2|x|²), T=200, σ=0.05",
    "Friedman 1",
    "Friedman 2",
    "Friedman 3",
    "diabetes",
]
RULES = ["evidence", "GCV", "PRESS", "first", "best"]


def criteria(reg: SigmoidMLPRegressor, X, y) -> dict:
    """The evidence, GCV and PRESS of one fitted BR start, on its own scaled training points."""
    model, state = reg.model_, reg.result_.solver_state
    dtype = model.weights[0].dtype
    x = reg.x_scaler_.transform(torch.as_tensor(X, dtype=dtype))
    d = reg.y_scaler_.transform(torch.as_tensor(y, dtype=dtype).reshape(len(y), -1))
    with torch.no_grad():
        e = (d - model(x)).reshape(-1).double()
    J = jacobian(model, x).double()
    sizes = [W.numel() for W in model.weights]
    decay = torch.cat([torch.full((n,), a, dtype=torch.float64) for a, n in zip(state["alphas"], sizes)])
    M = J.T @ J + torch.diag(decay / state["beta"])
    h = (torch.linalg.solve(M, J.T).T * J).sum(1)  # diag of J M⁻¹ Jᵀ
    N, gamma = len(e), h.sum().item()
    return {
        "evidence": reg.result_.evidence,
        "GCV": N * e.square().sum().item() / (N - gamma) ** 2,
        "PRESS": (e / (1 - h)).square().sum().item(),
        "gamma": gamma,
    }


def run(name: str, seeds: range, starts: int) -> dict:
    problem = {p.name: p for p in problems()}[name]
    chosen = {rule: [] for rule in RULES}
    for seed in seeds:
        X, y, X_test, y_test = problem.make(seed)
        fits = []
        for i in range(starts):
            settings = {"hidden": problem.hidden, "seed": seed + i, "restarts": 1, "device": "cpu"}
            reg = SigmoidMLPRegressor(**settings, **problem.options)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reg.fit(X, y)
            if reg.result_.method != "br":
                raise SystemExit(f"{name}: the default fit ran {reg.result_.method!r}, not 'br'")
            fits.append(criteria(reg, X, y) | {"r2": reg.score(X_test, y_test)})
        chosen["evidence"].append(max(fits, key=lambda f: f["evidence"])["r2"])
        chosen["GCV"].append(min(fits, key=lambda f: f["GCV"])["r2"])
        chosen["PRESS"].append(min(fits, key=lambda f: f["PRESS"])["r2"])
        chosen["first"].append(fits[0]["r2"])
        chosen["best"].append(max(f["r2"] for f in fits))
        print(json.dumps({"problem": name, "seed": seed, "starts": fits}), file=sys.stderr)
    clean = problem.family == "clean"
    return {
        "problem": name,
        "family": problem.family,
        "rules": {
            rule: {
                "succeeded": sum(r >= SUCCESS_R2 for r in scores) if clean else None,
                "worst": min(scores),
                "mean": statistics.fmean(scores),
            }
            for rule, scores in chosen.items()
        },
    }


def markdown(head: dict, rows: list[dict]) -> str:
    out = [
        "# Choosing among starts: `bench_choose.py`",
        "",
        f"{machine.summary(head['machine'])}; `{head['command']}`; {head['seeds']} seeds, "
        f"{head['starts']} starts each.",
        "",
        "Each cell: the chosen starts' grid or test R², worst and mean over seeds; on clean problems "
        "first the seeds whose chosen start reached R² ≥ 0.999. `best` is the start of highest R², "
        "which no rule sees.",
        "",
        "| problem | " + " | ".join(RULES) + " |",
        "| --- |" + " --- |" * len(RULES),
    ]
    for row in rows:
        cells = []
        for rule in RULES:
            r = row["rules"][rule]
            share = f"{r['succeeded']}/{head['seeds']}, " if r["succeeded"] is not None else ""
            cells.append(f"{share}worst {r['worst']:.4f}, mean {r['mean']:.4f}")
        out.append(f"| {row['problem']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="choose")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = range(2 if args.quick else args.seeds)
    names = PROBLEMS[:2] if args.quick else PROBLEMS
    head = {
        "machine": machine.describe(),
        "command": " ".join(["python", *sys.argv]),
        "seeds": len(seeds),
        "starts": args.starts,
    }
    rows = [run(name, seeds, args.starts) for name in names]
    RESULTS.mkdir(exist_ok=True)
    write(RESULTS / f"{args.out}.json", json.dumps(head | {"rows": rows}, indent=1) + "\n")
    write(RESULTS / f"{args.out}.md", markdown(head, rows))
    print((RESULTS / f"{args.out}.md").read_text())


if __name__ == "__main__":
    main()
