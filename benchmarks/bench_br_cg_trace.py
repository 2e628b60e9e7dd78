"""One start of ``"br_cg"`` against dense ``"br"`` on a bench_wide problem, epoch by epoch: where they part.

Each fit is ``SigmoidMLPRegressor(hidden=(h, h), seed=k, device="cpu", solver=S, restarts=1)`` on
``bench_wide.py``'s points of seed ``k``, as bench_wide fits them; ``S`` takes bench_fit's
``solver_variant`` syntax (``br_cg:cg_warm_epochs=True,cg_eta=None``). A handler records at every
epoch ``E``, ``μ``, the start (``trainbr`` / ``minimum``, searching or not), ``γ_l``, ``α_l``, ``β``,
``E_W^(l)`` and the CG iterations. The table gives per fit the test MSE, epochs, stop, the epoch at
which a collapsed ``trainbr`` start began again from ``w_0``, the largest ``E_W`` of the run, the
final ``γ_l``, ``α_l``, ``β``, ``E_D``, and the CG iterations of the run; the JSON keeps every epoch.

    python benchmarks/bench_br_cg_trace.py                          # sinsq n=20, 5 seeds
    python benchmarks/bench_br_cg_trace.py --solvers br br_cg br_cg:cg_warm_epochs=True --seeds 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import machine
import numpy as np
import torch
from bench_fit import solver_variant
from bench_wide import RESULTS, mse, problems

import torch_sigmoid_mlp.estimator.regressor as regressor
from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.training.handlers import Handler

SOLVERS = ["br", "br_cg:cg_warm_epochs=True", "br_cg:cg_warm_epochs=True,cg_eta=None", "br_cg"]


class Trace(Handler):
    """The solver's state at every epoch's ``w_k``."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def epoch(self, state) -> None:
        step = state.step
        self.rows.append({
            "k": state.epoch, "E": state.loss, "mu": step.mu, "start": getattr(step, "start", None),
            "searching": getattr(step, "_searching", None), "gammas": list(getattr(step, "gammas", [])),
            "alphas": list(getattr(step, "alphas", [])), "beta": getattr(step, "beta", None),
            "E_W": [W.detach().double().square().sum().item() for W in state.model.weights],
            "cg": getattr(step, "cg_iterations", 0),
        })  # fmt: skip


def fit(problem, seed: int, solver: str) -> dict:
    X, Y, X_test, Y_test = problem.make(seed)
    traces = []
    train = regressor.train

    def traced(*args, **kwargs):  # the regressor's own call of train, with the handler added
        traces.append(Trace())
        return train(*args, handlers=[traces[-1]], **kwargs)

    regressor.train = traced
    try:
        with solver_variant(solver) as name:
            reg = SigmoidMLPRegressor(hidden=(problem.h, problem.h), seed=seed, device="cpu", solver=name,
                                      restarts=1).fit(X, Y)  # fmt: skip
    finally:
        regressor.train = train
    r, rows = reg.result_, traces[-1].rows
    last = rows[-1]
    return {
        "solver": solver, "seed": seed, "epochs": r.epochs, "stop": r.stop_reason,
        "mse": mse(Y_test, np.asarray(reg.predict(X_test)).reshape(Y_test.shape)),
        "restart": next((t["k"] for t in rows if t["start"] == "minimum"), None),
        "E_W_max": max(sum(t["E_W"]) for t in rows), "E_W": sum(last["E_W"]),
        "gammas": last["gammas"], "alphas": last["alphas"], "beta": last["beta"], "E_D": 2 * r.final_loss,
        "cg": sum(t["cg"] for t in rows), "trace": rows,
    }  # fmt: skip


def markdown(head: dict, fits: list[dict], notes: list[str]) -> str:
    lines = [
        "# `br_cg` against dense `br`, epoch by epoch: `bench_br_cg_trace.py`",
        "",
        f"{head['machine']}; {head['date']}; `{head['command']}`; load average {head['load_average']} at "
        "the start. Nothing below depends on the load (epochs, MSE, γ, stops; no seconds).",
        "",
        *(f"*{n}*\n" for n in notes),
        f"Problem `{head['problem']}`: one start each (`restarts=1`). `restart`: the epoch at which a "
        "collapsed `trainbr` start began again from `w_0` as `minimum` (plain LM steps until a minimum of "
        "`E`); `E_W max`: the largest `Σ w²` of the run. The final `γ_l`, `α_l` (0: still searching at the "
        "end), `β` and `E_D = 2E` are at the returned weights; `CG`: CG iterations of the whole run.",
        "",
        "| solver | seed | test MSE | epochs (stop) | restart | E_W max | E_W end | γ_l | α_l | β | E_D "
        "| CG |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in fits:
        gammas = ", ".join(f"{g:.1f}" for g in f["gammas"])
        alphas = ", ".join(f"{a:.2g}" for a in f["alphas"])
        lines.append(
            f"| {f['solver']} | {f['seed']} | {f['mse']:.2e} | {f['epochs']} ({f['stop']}) | {f['restart']} "
            f"| {f['E_W_max']:.3g} | {f['E_W']:.3g} | {gammas} | {alphas} | {f['beta']:.3g} | {f['E_D']:.2e} "
            f"| {f['cg']} |"
        )
    lines += ["", "Median test MSE per solver:", ""]
    for solver in dict.fromkeys(f["solver"] for f in fits):
        values = sorted(f["mse"] for f in fits if f["solver"] == solver)
        lines.append(f"- {solver}: {np.median(values):.2e} (worst {values[-1]:.2e})")
    return "\n".join(lines) + "\n"


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--problem", default="sinsq n=20 m=1", help="a bench_wide problem's name")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--solvers", nargs="+", default=SOLVERS)
    parser.add_argument("--out", default="br_cg_trace_sinsq", help="results file stem")
    parser.add_argument("--note", action="append", default=[], help="a remark for the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    problem = next(p for p in problems() if p.name == args.problem)
    head = {
        "machine": machine.summary(), "load_average": machine.describe()["load_average"],
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench_br_cg_trace.py " + " ".join(sys.argv[1:]),
        "problem": problem.name,
    }  # fmt: skip
    fits = []
    for seed in range(args.seeds):
        for solver in args.solvers:
            fits.append(fit(problem, seed, solver))
            f = fits[-1]
            print(f"{solver} seed {seed}: test MSE {f['mse']:.2e}, {f['epochs']} epochs ({f['stop']}), "
                  f"E_W max {f['E_W_max']:.3g}, CG {f['cg']}", flush=True)  # fmt: skip
    fits.sort(key=lambda f: (args.solvers.index(f["solver"]), f["seed"]))
    (RESULTS / f"{args.out}.json").write_text(json.dumps(head | {"fits": fits}) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(head, fits, args.note))


if __name__ == "__main__":
    main()
