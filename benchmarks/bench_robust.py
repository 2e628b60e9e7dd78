"""Default fits over many seeds and kinds of problem: ours beside scikit-learn and FANN, in one run.

The question it answers: does ``SigmoidMLPRegressor(hidden=h).fit(X, y)`` — the call a user makes,
perhaps with a ``tol`` — give a good fit on *every* seed, in reasonable time? Each seed draws its own
points (and noise) and seeds every contender's initial weights. The families:

- **clean**: smooth 1-, 2- and 3-D functions at several frequencies, ``T`` from 30 to 400 points
  drawn uniformly; scored by the ``R²`` on a dense grid of the domain. A fit *succeeds* with
  ``R² ≥ 0.999``. Among them valley-shaped 1-D targets (the cubic ``t³ − t``, a smoothed ramp, a
  smoothed step), along whose valleys second-order steps crawl.
- **noisy**: the same kinds of function with Gaussian noise on the measurements; scored by the
  ``R²`` of the prediction against the *true* function on the grid.
- **teacher**: SPEC's realizable setting, a ``SigmoidMLP(3)`` teacher with 200 points and ``tol=0.01``;
  scored by whether ``max_t |F(x_t) − d_t| < tol`` on the training points.
- **held-out**: Friedman 1, 2, 3 (noisy, ``noise=1``) and the diabetes data, 75/25 splits drawn per
  seed; scored by the test ``R²``; diabetes also with ``validation_fraction=0.15``.
- **large**: Friedman 1 with 30 inputs (25 of them irrelevant), ``T = 2000``, hidden ``(16, 16)``;
  scored by the test MSE.

Contenders, interleaved seed by seed:

- ``ours``: ``SigmoidMLPRegressor(hidden=h, tol=tol, seed=k, device="cpu")``, every other setting at
  its default (``--solvers`` adds ``solver=S`` variants, ``br_cg@probes``, ``br_cg@every``,
  ``br_cg@fresh`` br_cg with bench_fit.BR_CG_VARIANTS's options; ``--dtypes`` ``dtype=D`` ones;
  ``--variant V`` patches in bench_valley.py's initial weights or input range ``V`` for every fit of
  ours). Seconds are ``fit``'s wall time.
- ``sklearn lbfgs``, ``sklearn adam``: ``MLPRegressor(hidden_layer_sizes=h, activation="logistic",
  solver=…, max_iter=5000 | 2000, random_state=k)``, on inputs and targets standardised (its user
  guide's scaling), its other settings at their defaults; ``sklearn lbfgs tol=1e-10`` the same with
  ``tol=1e-10``, which runs L-BFGS on until its line search gives out.
- ``FANN rprop``: libfann2 (Debian's, through ctypes) ``[n, h…, 1]`` sigmoid units with biases,
  iRPROP−, 1000 epochs, on inputs and targets min–max scaled into ``[0.1, 0.9]``.

Every number is a median or a worst case over the seeds, never a mean. One torch and BLAS thread.
A second table gives ours' time over each scikit-learn L-BFGS contender's, row by row and in all.

    python benchmarks/bench_robust.py            # 10 seeds
    python benchmarks/bench_robust.py --quick    # 3 seeds, fewer problems
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import machine
import numpy as np
import torch
from bench_fit import LIBC, load_fann, solver_variant
from fann import FANN_SIGMOID, FANN_TRAIN_RPROP
from sklearn.datasets import load_diabetes, make_friedman1, make_friedman2, make_friedman3
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from threadpoolctl import threadpool_limits

from torch_sigmoid_mlp import ConvergenceWarning, SigmoidMLP, SigmoidMLPRegressor

RESULTS = Path(__file__).parent / "results"
SUCCESS_R2 = 0.999  # a clean fit succeeds at this grid R²
FANN_EPOCHS = 1000


@dataclass
class Problem:
    name: str
    family: str  # clean, noisy, teacher, heldout, large
    make: object  # seed -> (X, y, X_test, y_test)
    hidden: tuple[int, ...] | None = None
    tol: float | None = None
    options: dict = field(default_factory=dict)  # ours only (validation_fraction)
    quick: bool = False


def smooth(name: str, f, n: int, T: int, noise: float = 0.0, **kw) -> Problem:
    """``f`` on ``[−1, 1]^n`` at ``T`` uniform points, scored on a grid (``R²`` against ``f``)."""

    def make(seed: int):
        rng = np.random.default_rng(1000 + seed)
        X = rng.uniform(-1, 1, (T, n))
        y = f(X) + noise * rng.standard_normal(T)
        side = {1: 400, 2: 40, 3: 14}[n]
        axes = np.meshgrid(*[np.linspace(-1, 1, side)] * n, indexing="ij")
        grid = np.stack([a.reshape(-1) for a in axes], axis=1)
        return X, y, grid, f(grid)

    family = "noisy" if noise else "clean"
    return Problem(f"{name}, T={T}" + (f", σ={noise}" if noise else ""), family, make, **kw)


def teacher_problem(quick: bool) -> Problem:
    def make(seed: int):
        g = torch.Generator().manual_seed(5000 + seed)
        teacher = SigmoidMLP(3, dtype=torch.float64, generator=g)
        x = torch.rand(200, 3, generator=g, dtype=torch.float64)
        with torch.no_grad():
            y = teacher(x)[:, 0].numpy()
        return x.numpy(), y, x.numpy(), y

    return Problem("teacher SigmoidMLP(3), T=200", "teacher", make, hidden=(3, 3), tol=0.01, quick=quick)


def heldout(name: str, load, family: str = "heldout", **kw) -> Problem:
    def make(seed: int):
        X, y = load()
        X_fit, X_test, y_fit, y_test = train_test_split(X, y, test_size=0.25, random_state=seed)
        return X_fit, y_fit, X_test, y_test

    return Problem(name, family, make, **kw)


def problems() -> list[Problem]:
    f1 = [
        ("cos 3x", lambda X: np.cos(3 * X[:, 0])),
        ("sin 6x", lambda X: np.sin(6 * X[:, 0])),
        ("exp(−4x²)", lambda X: np.exp(-4 * X[:, 0] ** 2)),
        ("tanh 2x + x/3", lambda X: np.tanh(2 * X[:, 0]) + X[:, 0] / 3),
    ]
    # valleys: targets where LM's steps crawl along a curved valley for hundreds of epochs
    valleys = [
        ("t³ − t, t = 1.5x", lambda X: (1.5 * X[:, 0]) ** 3 - 1.5 * X[:, 0]),
        ("softplus ramp log(1 + e^4x)/4", lambda X: np.logaddexp(0, 4 * X[:, 0]) / 4),
        ("smooth step tanh 5x", lambda X: np.tanh(5 * X[:, 0])),
    ]
    out = []
    for T in (30, 100, 400):
        for i, (name, f) in enumerate(f1):
            out.append(smooth(name, f, 1, T, quick=T == 100 and i < 2))
        out.append(smooth(*valleys[0], 1, T, quick=T == 100))
    out += [smooth(name, f, 1, 100) for name, f in valleys[1:]]
    bump = lambda X: np.exp(-2 * (X[:, 0] ** 2 + X[:, 1] ** 2))  # noqa: E731
    wave = lambda X: np.sin(2 * X[:, 0]) * np.cos(1.5 * X[:, 1])  # noqa: E731
    three = lambda X: np.sin(2 * X[:, 0]) + X[:, 2] * np.cos(2 * X[:, 1])  # noqa: E731
    out += [
        smooth("exp(−2|x|²)", bump, 2, 200, quick=True),
        smooth("sin 2x₁·cos 1.5x₂", wave, 2, 400),
        smooth("sin 2x₁ + x₃·cos 2x₂", three, 3, 1000, hidden=(10, 10)),
        smooth("sin 3x", lambda X: np.sin(3 * X[:, 0]), 1, 100, noise=0.1, quick=True),
        smooth("cos 3x", lambda X: np.cos(3 * X[:, 0]), 1, 30, noise=0.1),
        smooth("exp(−2|x|²)", bump, 2, 200, noise=0.05),
        teacher_problem(quick=True),
    ]
    friedman = {
        "Friedman 1": lambda: make_friedman1(600, noise=1.0, random_state=0),
        "Friedman 2": lambda: make_friedman2(600, noise=1.0, random_state=0),
        "Friedman 3": lambda: make_friedman3(600, noise=0.01, random_state=0),
    }
    out += [heldout(k, v, quick=k == "Friedman 1") for k, v in friedman.items()]
    diabetes = lambda: load_diabetes(return_X_y=True)  # noqa: E731
    out += [
        heldout("diabetes", diabetes, quick=True),
        heldout("diabetes, validation_fraction=0.15", diabetes, options={"validation_fraction": 0.15}),
        heldout(
            "Friedman 1, 30 inputs, T=2000",
            lambda: make_friedman1(2667, n_features=30, noise=1.0, random_state=0),
            family="large",
            hidden=(16, 16),
        ),
    ]
    return out


# -- contenders: each returns a predict function and how long its fit took ---------------------------


def ours(solver: str | None, dtype: str | None = None):
    def run(p: Problem, X, y, seed: int):
        settings = {"hidden": p.hidden, "tol": p.tol, "seed": seed, "device": "cpu", **p.options}
        if dtype is not None:
            settings["dtype"] = dtype
        began = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught, solver_variant(solver) as name:
            warnings.simplefilter("always", ConvergenceWarning)
            if name is not None:
                settings["solver"] = name
            reg = SigmoidMLPRegressor(**settings).fit(X, y)
        seconds = time.perf_counter() - began
        r = reg.result_
        extra = {
            "method": r.method,
            "stop": r.stop_reason,
            "epochs": r.epochs,
            "starts": max(1, len(r.restarts)),
            # every start's epochs and stop: a population's wall time follows the longest
            "start_epochs": [m.epochs for m in r.restarts] or [r.epochs],
            "start_stops": [m.stop_reason for m in r.restarts] or [r.stop_reason],
        }
        extra["warned"] = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return reg.predict, seconds, extra

    return run


def sklearn_mlp(solver: str, tol: float | None = None):
    """``MLPRegressor`` with ``solver``; ``tol`` replaces its default ``1e-4`` (``"lbfgs"`` with
    ``1e-10`` runs on until its line search gives out)."""
    extra = {} if tol is None else {"tol": tol}

    def run(p: Problem, X, y, seed: int):
        hidden = p.hidden or (max(8, X.shape[1]),) * 2
        sx, sy = StandardScaler().fit(X), StandardScaler().fit(y.reshape(-1, 1))
        mlp = MLPRegressor(hidden_layer_sizes=hidden, activation="logistic", solver=solver, random_state=seed,
                           max_iter=5000 if solver == "lbfgs" else 2000, **extra)  # fmt: skip
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SklearnConvergenceWarning)
            mlp.fit(sx.transform(X), sy.transform(y.reshape(-1, 1))[:, 0])
        seconds = time.perf_counter() - began

        def predict(X_new):
            return sy.inverse_transform(mlp.predict(sx.transform(X_new)).reshape(-1, 1))[:, 0]

        return predict, seconds, {"epochs": mlp.n_iter_}

    return run


def linear(p: Problem, X, y, seed: int):
    began = time.perf_counter()
    model = LinearRegression().fit(X, y)
    return model.predict, time.perf_counter() - began, {"epochs": 0}


def fann_rprop(lib):
    def run(p: Problem, X, y, seed: int):
        hidden = p.hidden or (max(8, X.shape[1]),) * 2
        sx, sy = MinMaxScaler((0.1, 0.9)).fit(X), MinMaxScaler((0.1, 0.9)).fit(y.reshape(-1, 1))
        x = np.ascontiguousarray(sx.transform(X), dtype=np.float32)
        d = np.ascontiguousarray(sy.transform(y.reshape(-1, 1)), dtype=np.float32)
        sizes = (X.shape[1], *hidden, 1)
        began = time.perf_counter()
        ann = lib.fann_create_standard_array(len(sizes), (ctypes.c_uint * len(sizes))(*sizes))
        lib.fann_set_activation_function_hidden(ann, FANN_SIGMOID)
        lib.fann_set_activation_function_output(ann, FANN_SIGMOID)
        lib.fann_set_training_algorithm(ann, FANN_TRAIN_RPROP)
        LIBC.srand(seed)
        lib.fann_randomize_weights(ann, -0.1, 0.1)
        data = lib.fann_create_train(*x.shape, 1)
        ctypes.memmove(data.contents.input[0], x.ctypes.data, x.nbytes)
        ctypes.memmove(data.contents.output[0], d.ctypes.data, d.nbytes)
        for _ in range(FANN_EPOCHS):
            lib.fann_train_epoch(ann, data)
        seconds = time.perf_counter() - began
        lib.fann_destroy_train(data)

        def predict(X_new):
            rows = np.ascontiguousarray(sx.transform(X_new), dtype=np.float32)
            pointer = ctypes.POINTER(ctypes.c_float)
            out = np.array([lib.fann_run(ann, row.ctypes.data_as(pointer))[0] for row in rows])
            return sy.inverse_transform(out.reshape(-1, 1))[:, 0]

        return predict, seconds, {"epochs": FANN_EPOCHS}

    return run


# -- scoring ------------------------------------------------------------------------------------------


def r2(y, pred) -> float:
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - np.mean(y)) ** 2))


def score(p: Problem, predict, X, y, X_test, y_test) -> dict:
    out = {"r2": r2(y_test, predict(X_test)), "train_r2": r2(y, predict(X))}
    if p.family == "large":
        out["mse"] = float(np.mean((y_test - predict(X_test)) ** 2))
    if p.tol is not None:
        out["reached"] = bool(np.max(np.abs(predict(X) - y)) < p.tol)
    return out


def summarise(p: Problem, fits: list[dict]) -> dict:
    r2s = [f["r2"] for f in fits]
    s = {
        "seeds": len(fits),
        "r2_median": statistics.median(r2s),
        "r2_worst": min(r2s),
        "seconds_median": statistics.median(f["seconds"] for f in fits),
        "seconds_worst": max(f["seconds"] for f in fits),
        "seconds_total": sum(f["seconds"] for f in fits),
    }
    if p.family == "clean":
        s["success"] = sum(r >= SUCCESS_R2 for r in r2s)
    if p.tol is not None:
        s["success"] = sum(f["reached"] for f in fits)
    if p.family == "large":
        s["mse_median"] = statistics.median(f["mse"] for f in fits)
    if "warned" in fits[0]:
        s["warned"] = sum(f["warned"] for f in fits)
        s["methods"] = sorted({f["method"] for f in fits})
        s["stops"] = sorted({f["stop"] for f in fits})
    return s


def cell(p: Problem, s: dict) -> str:
    if p.family in ("clean", "teacher"):
        head = f"{s['success']}/{s['seeds']}"
        head += f", worst R² {s['r2_worst']:.4f}" if p.family == "clean" else ""
    elif p.family == "large":
        head = f"MSE {s['mse_median']:.3g}, R² {s['r2_median']:.3f}"
    else:
        head = f"R² {s['r2_median']:.3f} (worst {s['r2_worst']:.3f})"
    return f"{head}; {s['seconds_median'] * 1e3:.0f} ms (worst {s['seconds_worst'] * 1e3:.0f})"


def ratios(record: list[dict], names: list[str]) -> list[str]:
    """Ours' median seconds of a fit over each scikit-learn L-BFGS contender's, per row and in all."""
    ours_name, others = names[0], [k for k in names if k.startswith("sklearn lbfgs")]
    if not others:
        return []
    lines = [
        "", f"Time of `{ours_name}` over scikit-learn L-BFGS's: median seconds of a fit, row by row, and the "
        "total wall time.", "",
        "| problem | " + " | ".join(f"over {k}" for k in others) + " |",
        "| --- | " + " | ".join("---:" for _ in others) + " |",
    ]  # fmt: skip
    for row in record:
        mine = row["summary"][ours_name]["seconds_median"]
        cells = [f"{mine / row['summary'][k]['seconds_median']:.1f}×" for k in others]
        lines.append(f"| {row['p'].name} | " + " | ".join(cells) + " |")
    total = {k: sum(r["summary"][k]["seconds_total"] for r in record) for k in [ours_name, *others]}
    overall = [f"**{total[ours_name] / total[k]:.1f}×**" for k in others]
    lines.append("| **total wall time** | " + " | ".join(overall) + " |")
    return lines


def markdown(head: dict, record: list[dict], names: list[str]) -> str:
    lines = [
        "# Default fits over seeds: `bench_robust.py`",
        "",
        f"{head['machine']}; {head['date']}; `{head['command']}`; {head['seeds']} seeds; "
        f"{head['elapsed_s']:.0f} s in all.",
        "",
        "Clean and teacher rows: seeds that succeeded (grid R² ≥ 0.999; the bound reached), the worst "
        "grid R²; noisy rows: R² against the true function; held-out rows: test R²; then the median "
        "and worst wall time of one fit (all its starts).",
        "",
        "| problem | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for row in record:
        p = row["p"]
        lines.append(f"| {p.name} | " + " | ".join(cell(p, row["summary"][k]) for k in names) + " |")
    totals = {k: sum(r["summary"][k]["seconds_total"] for r in record) for k in names}
    lines.append("| **total wall time** | " + " | ".join(f"**{totals[k]:.1f} s**" for k in names) + " |")
    ours_name = names[0]
    lines += ratios(record, names)
    stops = [f"{r['p'].name}: {', '.join(r['summary'][ours_name]['methods'])} → "
             f"{', '.join(r['summary'][ours_name]['stops'])}; warned {r['summary'][ours_name]['warned']}"
             for r in record]  # fmt: skip
    lines += ["", f"`{ours_name}`: solver chosen → stop reasons; fits that warned (ConvergenceWarning):", ""]
    lines += [f"- {s}" for s in stops]
    return "\n".join(lines) + "\n"


def run_problem(p: Problem, contenders: dict, names: list[str], seeds: int) -> dict:
    """Every contender on ``p`` over ``seeds`` seeds, interleaved seed by seed."""
    fits = {k: [] for k in names}
    for seed in range(seeds):
        X, y, X_test, y_test = p.make(seed)
        turn = seed % len(names)
        for name in names[turn:] + names[:turn]:  # the order rotates: load falls on all alike
            predict, seconds, extra = contenders[name](p, X, y, seed)
            fits[name].append({"seed": seed, "seconds": seconds, **extra,
                               **score(p, predict, X, y, X_test, y_test)})  # fmt: skip
    summary = {k: summarise(p, fits[k]) for k in names}
    print(f"{p.name}: " + " | ".join(f"{k}: {cell(p, summary[k])}" for k in names), flush=True)
    return {"p": p, "summary": summary, "fits": fits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, a few problems")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per problem (default 10, quick 3)")
    parser.add_argument("--solvers", nargs="*", default=[], help="also ours with solver=S for these")
    parser.add_argument("--dtypes", nargs="*", default=[], help="also ours with dtype=D for these")
    parser.add_argument("--only", default=None, help="problems whose name contains this")
    parser.add_argument("--ftol", type=float, default=None, help="override every solver's ftol (tuning)")
    parser.add_argument(
        "--damping", choices=("trainlm", "nielsen"), default=None, help="LM/BR's damping rule (tuning)"
    )
    parser.add_argument("--no-others", action="store_true", help="ours alone (for tuning)")
    parser.add_argument(
        "--variant",
        default=None,
        help="ours with bench_valley.py's initial weights or input range V (tuning)",
    )
    parser.add_argument("--out", default=None, help="results file stem (default robust[_quick])")
    args = parser.parse_args()
    seeds = args.seeds or (3 if args.quick else 10)
    torch.set_num_threads(1)
    threadpool_limits(1)
    info = machine.describe()
    if args.ftol is not None:
        import torch_sigmoid_mlp.training.solvers as solvers

        for k, (_, w) in solvers.CONVERGENCE.items():
            solvers.CONVERGENCE[k] = (args.ftol, w)
    if args.damping is not None:
        import torch_sigmoid_mlp.training.population_lm as population_lm
        import torch_sigmoid_mlp.training.solvers as solvers

        for cls in (solvers.LevenbergMarquardt, population_lm.LevenbergMarquardt):
            cls.__init__.__kwdefaults__["damping"] = args.damping
    contenders = {"ours (defaults)": ours(None)} | {f"ours {s}": ours(s) for s in args.solvers}
    contenders |= {f"ours dtype={t}": ours(None, t) for t in args.dtypes}
    if not args.no_others:
        contenders["sklearn lbfgs"] = sklearn_mlp("lbfgs")
        contenders["sklearn lbfgs tol=1e-10"] = sklearn_mlp("lbfgs", 1e-10)
        contenders["sklearn adam"] = sklearn_mlp("adam")
        contenders["linear regression"] = linear
        lib = load_fann()
        if lib is not None:
            contenders["FANN rprop"] = fann_rprop(lib)
    names = list(contenders)
    todo = [p for p in problems() if (p.quick or not args.quick) and (args.only or "") in p.name]
    started = time.perf_counter()
    record = []
    with contextlib.ExitStack() as stack:
        if args.variant is not None:
            import bench_valley

            stack.enter_context(bench_valley.patched(args.variant, step=False))
        for p in todo:
            record.append(run_problem(p, contenders, names, seeds))
    elapsed = time.perf_counter() - started
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python benchmarks/bench_robust.py", *sys.argv[1:]])
    head = {"machine": machine.summary(info), "load_average": info["load_average"], "date": now,
            "command": command, "seeds": seeds, "elapsed_s": elapsed}  # fmt: skip
    stem = args.out or ("robust_quick" if args.quick else "robust")
    RESULTS.mkdir(exist_ok=True)
    rows = [{"problem": r["p"].name, "family": r["p"].family, "tol": r["p"].tol, "hidden": r["p"].hidden,
             "summary": r["summary"], "fits": r["fits"]} for r in record]  # fmt: skip
    (RESULTS / f"{stem}.json").write_text(json.dumps(head | {"problems": rows}, indent=1) + "\n")
    md = markdown(head, record, names)
    (RESULTS / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
