"""Wide problems — 10 to 50 inputs, 300 to 3000 weights — ours beside FANN and scikit-learn, in one run.

The question it answers: where does the default fit, whose Levenberg–Marquardt and Bayesian
regularisation solve a ``P×P`` system ``JᵀJ + μI`` an epoch, cost more than a first-order trainer,
and what does each solver give for it? Every problem is a network ``n → h → h → m`` of
``P = n·h + h·h + h·m`` weights (the library's networks have no biases), fitted to ``T`` points and
scored on ``T/4`` others drawn alike (the test set), by the test MSE in the units of the targets,
which lie in ``[0, 1]`` as the inputs do. The grid spans ``n`` = 10 … 50, ``P`` = 276 … 2958,
``T`` = 100 … 5000 and ``m`` = 1 to 3. The targets, made here (no download):

- **sincos**: ``y_j = Σ_k a_jk · sin(ω_jk · u_jkᵀ(2x − 1) + φ_jk)``, ``K = 8`` random unit
  directions ``u_jk`` per output, ``ω_jk ~ U(2, 4)``, ``φ_jk ~ U(0, 2π)``, ``a_jk ~ N(0, 1)``.
- **friedman**: Friedman 1 per output on five of the inputs (chosen per output), the rest irrelevant:
  ``10 sin(π x_a x_b) + 20 (x_c − 1/2)² + 10 x_d + 5 x_e``.
- **sinsq**: ``sin(z₁ + z₂/2) + 0.3·z₃²`` on ``z = 2x − 1``, the other inputs irrelevant (one output).
- **teacher**: a random sigmoid network ``n → g → g → m`` with biases (``g = max(4, h/2)``), weights
  ``N(0, 9/fan_in)`` on the inputs ``2x − 1``, biases ``N(0, 1/4)``.
- **like …**: four problems shaped like public data sets (inputs, outputs, training points, hidden
  ``(16, 16)``), with targets of the kinds above.

Each target is mapped affinely onto ``[0, 1]`` by its range over a fixed reference sample of
20 000 points (the same for every seed), then, for the noisy rows (``σ = 0.05``), Gaussian noise
is added to the training *and* test targets and the result clipped to ``[0, 1]``: the test MSE of
a noisy row cannot fall below about ``σ² = 0.0025``. The target function is fixed per problem;
seed ``k`` draws the points and the noise and seeds every contender's initial weights.

Contenders, interleaved seed by seed (the order rotates, so that load falls on all alike):

- ``ours (defaults)``: ``SigmoidMLPRegressor(hidden=(h, h), seed=k, device="cpu")``, every other
  setting at its default; ``--solvers S …`` adds ``solver=S`` for each name given (``br_cg@probes``,
  ``br_cg@every``, ``br_cg@fresh``: br_cg with bench_fit.BR_CG_VARIANTS's options; ``br_cg:cg_eta=1e-3``:
  br_cg with that keyword default, bench_fit.solver_variant). Seconds are
  ``fit``'s wall time (all its starts); ``result_.method`` and ``result_.stop_reason`` are recorded.
- ``FANN rprop``: libfann2 (FANN 2.2, float build, through ctypes) ``[n, h, h, m]`` sigmoid units
  with biases, iRPROP−, 1000 epochs, FANN's other defaults, weights ``U(−0.1, 0.1)`` after
  ``srand(k)``, on inputs and targets min–max scaled into ``[0.1, 0.9]``; left out with a note
  where the library is not installed (``apt-get install libfann2``).
- ``sklearn lbfgs``, ``sklearn adam``: ``MLPRegressor(hidden_layer_sizes=(h, h),
  activation="logistic", solver=…, max_iter=2000, random_state=k)``, its other settings (its own
  stopping rule, ``alpha=1e-4``) at their defaults, on inputs and targets standardised (its user
  guide's scaling).

Every prediction is mapped back to the ``[0, 1]`` units before scoring. Every number is a median
over the seeds. One torch and BLAS thread. The ratios: ours' median test MSE over the lower of
FANN's and L-BFGS's, and ours' median seconds over FANN's.

    python benchmarks/bench_wide.py                          # 5 seeds, 20 problems
    python benchmarks/bench_wide.py --quick                  # 2 seeds, 3 problems
    python benchmarks/bench_wide.py --solvers lm_cg br_cg    # also ours with these solvers
    python benchmarks/bench_wide.py --solvers br_cg:cg_eta=1e-3   # a solver with a keyword default set
    python benchmarks/bench_wide.py --solvers lm_cg --no-defaults --no-others  # that solver alone
    python benchmarks/bench_wide.py --only like --out wide_a  # shards, run side by side, then
    python benchmarks/bench_wide.py --merge wide_a wide_b --out wide
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import itertools
import json
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import machine
import numpy as np
import torch
from bench_fit import LIBC, load_fann, solver_variant
from fann import FANN_SIGMOID, FANN_TRAIN_RPROP
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from threadpoolctl import threadpool_limits

from torch_sigmoid_mlp import ConvergenceWarning, SigmoidMLPRegressor

RESULTS = Path(__file__).parent / "results"
FANN_EPOCHS = 1000
SKLEARN_MAX_ITER = 2000
NOISE = 0.05  # σ of the noisy rows, in the [0, 1] units of the targets
REFERENCE_POINTS = 20_000  # the sample whose range maps a target onto [0, 1]
TEST_FRACTION = 4  # T/4 test points


@dataclass
class Problem:
    """``kind`` targets of ``n`` inputs and ``m`` outputs, ``T`` training points, hidden ``(h, h)``."""

    name: str
    kind: str  # sincos, friedman, teacher
    n: int
    m: int
    h: int
    T: int
    noise: float = 0.0
    quick: bool = False

    @property
    def P(self) -> int:
        """``P = n·h + h·h + h·m``: the weights of ``n → h → h → m`` without biases."""
        return self.n * self.h + self.h * self.h + self.h * self.m

    def function(self):
        """The target ``f: (N, n) → (N, m)`` in ``[0, 1]`` on the reference sample; fixed per problem."""
        rng = np.random.default_rng([7, sum(map(ord, self.name))])
        n, m = self.n, self.m
        if self.kind == "sincos":
            K = 8
            u = rng.standard_normal((m, K, n))
            u /= np.linalg.norm(u, axis=2, keepdims=True)  # (m, K, n) unit directions
            omega, phi = rng.uniform(2, 4, (m, K)), rng.uniform(0, 2 * np.pi, (m, K))
            a = rng.standard_normal((m, K))

            def raw(X):
                z = np.einsum("mkn,tn->tmk", u, 2 * X - 1)  # (N, m, K)
                return np.einsum("mk,tmk->tm", a, np.sin(omega * z + phi))  # (N, m)

        elif self.kind == "friedman":
            inputs = np.stack([rng.choice(n, 5, replace=False) for _ in range(m)])  # (m, 5)

            def raw(X):
                a, b, c, d, e = (X[:, inputs[:, i]] for i in range(5))  # each (N, m)
                return 10 * np.sin(np.pi * a * b) + 20 * (c - 0.5) ** 2 + 10 * d + 5 * e

        elif self.kind == "sinsq":
            if m != 1:
                raise ValueError(f"sinsq has one output, got m={m}")

            def raw(X):
                z = 2 * X - 1  # (N, n)
                return (np.sin(z[:, 0] + z[:, 1] / 2) + 0.3 * z[:, 2] ** 2)[:, None]  # (N, 1)

        elif self.kind == "teacher":
            g = max(4, self.h // 2)
            sizes = (n, g, g, m)
            W = [rng.normal(0, 3 / math.sqrt(a), (b, a)) for a, b in itertools.pairwise(sizes)]
            B = [rng.normal(0, 0.5, b) for b in sizes[1:]]

            def raw(X):
                y = 2 * X - 1  # (N, n)
                for W_l, b_l in zip(W, B):
                    y = 1 / (1 + np.exp(-(y @ W_l.T + b_l)))  # (N, size_{l+1})
                return y

        else:
            raise ValueError(f"unknown kind {self.kind!r}")
        reference = raw(rng.uniform(0, 1, (REFERENCE_POINTS, n)))  # (R, m)
        low, high = reference.min(axis=0), reference.max(axis=0)
        return lambda X: (raw(X) - low) / (high - low)

    def make(self, seed: int, f=None):
        """Training and test points of seed ``k``: ``X`` (T, n), ``Y`` (T, m) and ``T/4`` test rows."""
        f = self.function() if f is None else f
        rng = np.random.default_rng([11, seed, sum(map(ord, self.name))])
        T_test = self.T // TEST_FRACTION
        X = rng.uniform(0, 1, (self.T + T_test, self.n))  # (T + T/4, n)
        Y = f(X)  # (T + T/4, m)
        if self.noise:
            Y = Y + self.noise * rng.standard_normal(Y.shape)
        Y = np.clip(Y, 0, 1)
        return X[: self.T], Y[: self.T], X[self.T :], Y[self.T :]


def problems() -> list[Problem]:
    s = NOISE
    return [
        Problem("teacher n=10 m=1 σ", "teacher", 10, 1, 12, 300, noise=s, quick=True),
        Problem("teacher n=20 m=3", "teacher", 20, 3, 16, 1000, quick=True),
        Problem("friedman n=20 m=1 σ", "friedman", 20, 1, 20, 1000, noise=s),
        Problem("sincos n=20 m=3 σ", "sincos", 20, 3, 20, 2000, noise=s),
        Problem("teacher n=10 m=3", "teacher", 10, 3, 16, 5000),
        Problem("teacher n=30 m=3 σ", "teacher", 30, 3, 24, 1000, noise=s),
        Problem("teacher n=40 m=1", "teacher", 40, 1, 20, 300),
        Problem("sincos n=30 m=1", "sincos", 30, 1, 28, 2000),
        Problem("friedman n=40 m=1", "friedman", 40, 1, 32, 2000),
        Problem("teacher n=50 m=3", "teacher", 50, 3, 34, 1000),
        Problem("sincos n=50 m=1 σ", "sincos", 50, 1, 34, 1500, noise=s),
        Problem("friedman n=50 m=1 σ", "friedman", 50, 1, 16, 500, noise=s),
        # fewer errors than weights (T·m < P), P ≤ 1500: where "auto" weighs br_cg against dense BR
        Problem("sinsq n=20 m=1", "sinsq", 20, 1, 20, 100),
        Problem("teacher n=30 m=1 T=150", "teacher", 30, 1, 20, 150),
        Problem("friedman n=20 m=1 σ T=150", "friedman", 20, 1, 24, 150, noise=s),
        Problem("sincos n=30 m=2 T=150", "sincos", 30, 2, 20, 150),
        # shaped like public sets: (inputs, outputs, training points), hidden (16, 16)
        Problem("like 48-in 3-out T=374 (sincos σ)", "sincos", 48, 3, 16, 374, noise=s),
        Problem("like 14-in 3-out T=2104 (teacher σ)", "teacher", 14, 3, 16, 2104, noise=s),
        Problem("like 10-in 1-out T=2088 (friedman σ)", "friedman", 10, 1, 16, 2088, noise=s, quick=True),
        Problem("like 32-in 1-out T=2048 (sincos σ)", "sincos", 32, 1, 16, 2048, noise=s),
        # N ≥ P, P ≤ AUTO_LBFGS_PARAMS and a dense epoch of 4.8·10⁹ and 5.1·10⁹ flops: dense BR
        Problem("friedman n=20 m=2 σ T=3000", "friedman", 20, 2, 20, 3000, noise=s),
        Problem("teacher n=16 m=2 T=4000", "teacher", 16, 2, 20, 4000),
        # the same past P = 1000 (AUTO_LBFGS_PARAMS): 5.8·10⁹ and 7.5·10⁹ flops a dense epoch
        Problem("sincos n=24 m=1 σ T=3000", "sincos", 24, 1, 24, 3000, noise=s),
        Problem("teacher n=30 m=1 T=3000", "teacher", 30, 1, 24, 3000),
    ]


# -- contenders: each returns a predict function (to [0, 1] units), its fit's seconds and extras -----


def ours(solver: str | None):
    def run(p: Problem, X, Y, seed: int):
        settings = {"hidden": (p.h, p.h), "seed": seed, "device": "cpu"}
        began = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught, solver_variant(solver) as name:
            warnings.simplefilter("always", ConvergenceWarning)
            if name is not None:
                settings["solver"] = name
            reg = SigmoidMLPRegressor(**settings).fit(X, Y)
        seconds = time.perf_counter() - began
        r = reg.result_
        extra = {
            "method": r.method,
            "stop": r.stop_reason,
            "epochs": r.epochs,
            "starts": max(1, len(r.restarts)),
            "warned": any(issubclass(w.category, ConvergenceWarning) for w in caught),
        }
        return lambda X_new: np.asarray(reg.predict(X_new)).reshape(len(X_new), -1), seconds, extra

    return run


def sklearn_mlp(solver: str):
    def run(p: Problem, X, Y, seed: int):
        sx, sy = StandardScaler().fit(X), StandardScaler().fit(Y)
        mlp = MLPRegressor(hidden_layer_sizes=(p.h, p.h), activation="logistic", solver=solver,
                           max_iter=SKLEARN_MAX_ITER, random_state=seed)  # fmt: skip
        target = sy.transform(Y)  # (T, m)
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SklearnConvergenceWarning)
            mlp.fit(sx.transform(X), target[:, 0] if p.m == 1 else target)
        seconds = time.perf_counter() - began

        def predict(X_new):
            return sy.inverse_transform(mlp.predict(sx.transform(X_new)).reshape(len(X_new), -1))

        return predict, seconds, {"epochs": mlp.n_iter_}

    return run


def fann_rprop(lib):
    def run(p: Problem, X, Y, seed: int):
        sx, sy = MinMaxScaler((0.1, 0.9)).fit(X), MinMaxScaler((0.1, 0.9)).fit(Y)
        x = np.ascontiguousarray(sx.transform(X), dtype=np.float32)  # (T, n)
        d = np.ascontiguousarray(sy.transform(Y), dtype=np.float32)  # (T, m)
        sizes = (p.n, p.h, p.h, p.m)
        began = time.perf_counter()
        ann = lib.fann_create_standard_array(len(sizes), (ctypes.c_uint * len(sizes))(*sizes))
        lib.fann_set_activation_function_hidden(ann, FANN_SIGMOID)
        lib.fann_set_activation_function_output(ann, FANN_SIGMOID)
        lib.fann_set_training_algorithm(ann, FANN_TRAIN_RPROP)
        LIBC.srand(seed)
        lib.fann_randomize_weights(ann, -0.1, 0.1)
        data = lib.fann_create_train(x.shape[0], p.n, p.m)
        ctypes.memmove(data.contents.input[0], x.ctypes.data, x.nbytes)
        ctypes.memmove(data.contents.output[0], d.ctypes.data, d.nbytes)
        for _ in range(FANN_EPOCHS):
            lib.fann_train_epoch(ann, data)
        seconds = time.perf_counter() - began
        lib.fann_destroy_train(data)

        def predict(X_new):
            rows = np.ascontiguousarray(sx.transform(X_new), dtype=np.float32)
            pointer = ctypes.POINTER(ctypes.c_float)
            out = np.array([lib.fann_run(ann, row.ctypes.data_as(pointer))[: p.m] for row in rows])  # (N, m)
            return sy.inverse_transform(out)

        return predict, seconds, {"epochs": FANN_EPOCHS}

    return run


# -- scoring and the tables -------------------------------------------------------------------------


def mse(Y, pred) -> float:
    """``1/(N·m) · Σ_t ‖y_t − ŷ_t‖²``, in the ``[0, 1]`` units of the targets."""
    return float(np.mean((Y - pred) ** 2))


def summarise(fits: list[dict]) -> dict:
    s = {
        "seeds": len(fits),
        "mse_median": statistics.median(f["mse"] for f in fits),
        "mse_worst": max(f["mse"] for f in fits),
        "train_mse_median": statistics.median(f["train_mse"] for f in fits),
        "seconds_median": statistics.median(f["seconds"] for f in fits),
        "seconds_total": sum(f["seconds"] for f in fits),
    }
    if "method" in fits[0]:
        s["methods"] = sorted({f["method"] for f in fits})
        s["stops"] = {k: sum(f["stop"] == k for f in fits) for k in sorted({f["stop"] for f in fits})}
        s["epochs_median"] = statistics.median(f["epochs"] for f in fits)
        s["starts_median"] = statistics.median(f["starts"] for f in fits)
        s["warned"] = sum(f["warned"] for f in fits)
    return s


def ratios(summary: dict, name: str) -> dict:
    """Ours' median MSE over the lower of FANN's and L-BFGS's; ours' median seconds over FANN's."""
    out = {}
    refs = [summary[k]["mse_median"] for k in ("FANN rprop", "sklearn lbfgs") if k in summary]
    if refs:
        out["mse_ratio"] = summary[name]["mse_median"] / min(refs)
    if "FANN rprop" in summary:
        out["time_ratio"] = summary[name]["seconds_median"] / summary["FANN rprop"]["seconds_median"]
    return out


def cell(s: dict) -> str:
    return f"{s['mse_median']:.2e} · {s['seconds_median']:.2f} s"


def stop_text(s: dict) -> str:
    stops = ", ".join(f"{k} {v}" for k, v in s["stops"].items())
    return f"{'/'.join(s['methods'])}: {stops}"


def markdown(head: dict, record: list[dict], names: list[str], ours_names: list[str]) -> str:
    start, end = head["load_average"], head["load_average_end"]
    load = f"load average (1, 5, 15 min) {start} at the start, {end} at the end"
    lines = [
        "# Wide problems: `bench_wide.py`",
        "",
        f"{head['machine']}; {head['date']}; `{head['command']}`; {head['seeds']} seeds; "
        f"{head['elapsed_s']:.0f} s in all; {load}."
        + (
            f" **Cut short: {head['problems_done']} of {head['problems_todo']} problems.**"
            if head["problems_done"] < head["problems_todo"]
            else ""
        ),
        "",
        "Each cell: median test MSE (targets in [0, 1]; σ rows have noise σ = 0.05 on the test targets "
        "too, so a floor near 2.5e-3) · median wall seconds of one fit. `ours` columns add the solver "
        "that ran and the stop reasons (counts over the seeds). Ratios: ours' MSE / the lower of FANN's "
        "and sklearn L-BFGS's; ours' seconds / FANN's.",
        "",
    ]
    if max(start[0], end[0]) > head["cores"] / 2:
        lines += [f"*Other work shared the machine (load above, {head['cores']} cores): the seconds are "
                  "noisy and stretched, the MSEs, solvers and stop reasons are not.*", ""]  # fmt: skip
    if head.get("notes"):
        lines += [line for note in head["notes"] for line in (f"*{note}*", "")]
    ratio_heads = [h for k in ours_names for h in (f"{k}: MSE ratio", f"{k}: time / FANN")]
    heads = ["problem", "n", "m", "P", "T", *names, *ratio_heads]
    lines += ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    for row in record:
        p, s = row["p"], row["summary"]
        cells = []
        for k in names:
            c = cell(s[k])
            if k in ours_names:
                c += f"; {stop_text(s[k])}"
            cells.append(c)
        for k in ours_names:
            r = row["ratios"][k]
            cells += [f"{r['mse_ratio']:.2f}" if "mse_ratio" in r else "–",
                      f"{r['time_ratio']:.1f}" if "time_ratio" in r else "–"]  # fmt: skip
        lines.append(f"| {p.name} | {p.n} | {p.m} | {p.P} | {p.T} | " + " | ".join(cells) + " |")
    totals = [f"**{sum(r['summary'][k]['seconds_total'] for r in record):.1f} s**" for k in names]
    total_ratios = []
    for k in ours_names:
        mse_r = [r["ratios"][k]["mse_ratio"] for r in record if "mse_ratio" in r["ratios"][k]]
        geo = f"**{math.exp(statistics.fmean(map(math.log, mse_r))):.2f}** (geometric mean)" if mse_r else "–"
        if "FANN rprop" in names:
            t = sum(r["summary"][k]["seconds_total"] for r in record)
            t_fann = sum(r["summary"]["FANN rprop"]["seconds_total"] for r in record)
            total_ratios += [geo, f"**{t / t_fann:.1f}** (total seconds)"]
        else:
            total_ratios += [geo, "–"]
    lines.append("| **total** (all fits) | | | | | " + " | ".join(totals + total_ratios) + " |")
    lines += ["", "Median epochs and starts of ours; fits that warned (ConvergenceWarning):", ""]
    for row in record:
        s = row["summary"]
        parts = [f"{k}: {s[k]['epochs_median']:g} epochs, {s[k]['starts_median']:g} starts, "
                 f"warned {s[k]['warned']}" for k in ours_names]  # fmt: skip
        lines.append(f"- {row['p'].name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def json_row(r: dict) -> dict:
    p = r["p"]
    return {"problem": p.name, "kind": p.kind, "n": p.n, "m": p.m, "h": p.h, "P": p.P, "T": p.T,
            "noise": p.noise, "summary": r["summary"], "ratios": r["ratios"], "fits": r["fits"]}  # fmt: skip


def write(stem: str, record: list[dict], names: list[str], ours_names: list[str], head: dict) -> str:
    """The results so far to ``results/{stem}.json`` and ``.md`` (after every problem: a run cut short
    keeps what it finished); returns the Markdown."""
    head = {k: v for k, v in head.items() if k != "started"} | {
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "elapsed_s": time.perf_counter() - head["started"],
        "problems_done": len(record),
    }
    RESULTS.mkdir(exist_ok=True)
    rows = [json_row(r) for r in record]
    (RESULTS / f"{stem}.json").write_text(json.dumps(head | {"problems": rows}, indent=1) + "\n")
    md = markdown(head, record, names, ours_names)
    (RESULTS / f"{stem}.md").write_text(md)
    return md


def merge(stems: list[str], out: str, notes: list[str]) -> str:
    """Shards' results (``results/{stem}.json`` of runs with disjoint ``--only``) as one table, in
    :func:`problems` order, written to ``results/{out}.json`` and ``.md``; returns the Markdown."""
    shards = [json.loads((RESULTS / f"{stem}.json").read_text()) for stem in stems]
    by_name = {p.name: p for p in problems()}
    rows = {row["problem"]: row for shard in shards for row in shard["problems"]}
    keys = ("summary", "ratios", "fits")
    record = [{"p": p} | {k: rows[name][k] for k in keys} for name, p in by_name.items() if name in rows]
    names = list(dict.fromkeys(k for shard in shards for row in shard["problems"] for k in row["summary"]))
    ours_names = [k for k in names if k.startswith("ours")]
    commands = "; ".join(f"`{shard['command']}`" for shard in shards)
    merged_by = f"python benchmarks/bench_wide.py --merge {' '.join(stems)} --out {out}"
    note = (f"{len(shards)} shards, run side by side on this machine (their fits one at a time within "
            f"each): {commands}; merged by `{merged_by}`.")  # fmt: skip
    head = {
        "machine": shards[0]["machine"],
        "date": min(shard["date"] for shard in shards),
        "command": merged_by,
        "cores": shards[0].get("cores", os.cpu_count()),
        "seeds": min(shard["seeds"] for shard in shards),
        "notes": [note, *notes] + [n for shard in shards for n in shard.get("notes", [])],
        "load_average": [max(v) for v in zip(*(shard["load_average"] for shard in shards))],
        "load_average_end": [max(v) for v in zip(*(shard["load_average_end"] for shard in shards))],
        "elapsed_s": max(shard["elapsed_s"] for shard in shards),
        "problems_todo": len(by_name),
        "problems_done": len(record),
        "shards": [{k: v for k, v in shard.items() if k != "problems"} for shard in shards],
    }
    json_rows = [json_row(r) for r in record]
    (RESULTS / f"{out}.json").write_text(json.dumps(head | {"problems": json_rows}, indent=1) + "\n")
    md = markdown(head, record, names, ours_names)
    (RESULTS / f"{out}.md").write_text(md)
    return md


def check_solvers(solvers: list[str], parser: argparse.ArgumentParser) -> None:
    """A one-epoch fit with each ``--solvers`` name, so that an unknown one stops the run at once."""
    X = np.random.default_rng(0).uniform(0, 1, (20, 3))  # (20, 3)
    for solver in solvers:
        try:
            with warnings.catch_warnings(), solver_variant(solver) as name:
                warnings.simplefilter("ignore", ConvergenceWarning)
                SigmoidMLPRegressor(hidden=(2, 2), solver=name, max_epochs=1, restarts=1, device="cpu").fit(
                    X, X[:, :1]
                )
        except (ValueError, TypeError) as exc:
            parser.error(f"--solvers {solver}: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 problems")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per problem (default 5, quick 2)")
    parser.add_argument("--solvers", nargs="*", default=[], help="also ours with solver=S for each")
    parser.add_argument("--only", nargs="+", default=None, help="problems whose name contains one of these")
    parser.add_argument("--no-others", action="store_true", help="ours alone (no FANN, no scikit-learn)")
    parser.add_argument("--no-defaults", action="store_true", help="no ours (defaults): --solvers only")
    parser.add_argument("--out", default=None, help="results file stem (default wide[_quick])")
    merge_help = "merge these results (runs of disjoint --only) into --out; run nothing"
    parser.add_argument("--merge", nargs="+", default=None, metavar="STEM", help=merge_help)
    parser.add_argument("--note", action="append", default=[], help="a remark for the results file")
    args = parser.parse_args()
    if args.merge:
        print(merge(args.merge, args.out or "wide", args.note))
        return
    seeds = args.seeds or (2 if args.quick else 5)
    if seeds < 1:
        parser.error(f"--seeds must be ≥ 1, got {seeds}")
    torch.set_num_threads(1)
    threadpool_limits(1)
    check_solvers(args.solvers, parser)
    info = machine.describe()
    notes = list(args.note)
    contenders = {} if args.no_defaults else {"ours (defaults)": ours(None)}
    contenders |= {f"ours {s}": ours(s) for s in args.solvers}
    if not contenders:
        parser.error("--no-defaults needs --solvers")
    ours_names = list(contenders)
    if not args.no_others:
        lib = load_fann()
        if lib is not None:
            contenders["FANN rprop"] = fann_rprop(lib)
        else:
            notes.append("FANN left out: libfann2 is not installed here (apt-get install libfann2).")
        contenders |= {"sklearn lbfgs": sklearn_mlp("lbfgs"), "sklearn adam": sklearn_mlp("adam")}
    names = list(contenders)
    wanted = args.only or [""]
    todo = [p for p in problems() if (p.quick or not args.quick) and any(w in p.name for w in wanted)]
    if not todo:
        parser.error(f"no problem's name contains one of {wanted!r}")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python benchmarks/bench_wide.py", *sys.argv[1:]])
    head = {"machine": machine.summary(info), "load_average": info["load_average"], "date": now,
            "command": command, "cores": info["cores"], "seeds": seeds, "notes": notes,
            "problems_todo": len(todo), "started": time.perf_counter()}  # fmt: skip
    stem = args.out or ("wide_quick" if args.quick else "wide")
    record = []
    for p in todo:
        f = p.function()
        fits = {k: [] for k in names}
        for seed in range(seeds):
            X, Y, X_test, Y_test = p.make(seed, f)
            turn = seed % len(names)
            for name in names[turn:] + names[:turn]:  # the order rotates: load falls on all alike
                predict, seconds, extra = contenders[name](p, X, Y, seed)
                scores = {"mse": mse(Y_test, predict(X_test)), "train_mse": mse(Y, predict(X))}
                fits[name].append({"seed": seed, "seconds": seconds, **extra, **scores})
        summary = {k: summarise(fits[k]) for k in names}
        row = {
            "p": p,
            "summary": summary,
            "fits": fits,
            "ratios": {k: ratios(summary, k) for k in ours_names},
        }
        record.append(row)
        print(
            f"{p.name} (P={p.P}, T={p.T}): " + " | ".join(f"{k}: {cell(summary[k])}" for k in names),
            flush=True,
        )
        if p is not todo[-1]:
            write(stem, record, names, ours_names, head)
    print(write(stem, record, names, ours_names, head))


if __name__ == "__main__":
    main()
