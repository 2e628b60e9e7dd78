"""Levenberg–Marquardt against steepest descent, to ``max|err| < 0.01`` on the teacher problem.

The problem of ``tests/test_training.py``: a bias-free 3-3-3-1 teacher (seed 8, weights twice the
default initialisation) gives the targets of T = 64 points x ∈ [−1, 1)³; the student starts from
``SigmoidMLP(3, generator=torch.Generator().manual_seed(seed))``, float32, on the CPU.

- ``train(method="sgd", lr=2.0)`` (η = 128/T, the training test's), full batch, and
  ``train(method="lm")``, both with ``tol=0.01``, from student seed 0: epochs, wall seconds (median
  over rounds, the two interleaved) and the final largest error; the loss curves ``E`` against
  epochs and against seconds (steepest descent's epochs timed through its callback, LM's by runs
  of 0, 1, 2, … epochs from the same start, median of 5 each) are drawn to ``docs/lm-vs-sgd.png``.
- From student seeds 0–9 each method once, to see how often each start converges and how fast;
  then ``restarts=3`` for both from seed 0 (each start with the method's own epoch budget).

- ``--floor``: the LM and BR epoch against its floor, the same epoch in the fewest plain torch ops
  (``lm_floor.md``): one network and per member of a population of 8, at 1-8-8-1 and 2-16-16-1,
  T = 100 and 1000.

    python benchmarks/bench_lm.py
    python benchmarks/bench_lm.py --quick
    python benchmarks/bench_lm.py --floor
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import machine
import torch

from torch_sigmoid_mlp import SigmoidMLP, train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PICTURE = ROOT / "docs" / "lm-vs-sgd.png"
TOL, LR = 0.01, 128 / 64
BUDGET = {"sgd": 200_000, "lm": 1_000}  # epochs: far more than either needs from a start that converges


def teacher_problem(T: int = 64):
    """The targets of tests/test_training.py's teacher (seed 8, weights ×2), x in [−1, 1)³, float32."""
    g = torch.Generator().manual_seed(8)
    teacher = SigmoidMLP(3, generator=g)
    with torch.no_grad():
        for W in teacher.weights:
            W.mul_(2.0)
        x = torch.rand(T, 3, generator=g) * 2 - 1  # (T, 3)
        d = teacher(x)  # (T, 1)
    return x, d


def student(seed: int) -> SigmoidMLP:
    return SigmoidMLP(3, generator=torch.Generator().manual_seed(seed))


def fit(method: str, seed: int, x, d, **kwargs):
    model = student(seed)
    settings = {"lr": LR} if method == "sgd" else {}
    settings |= {"tol": TOL, "max_epochs": BUDGET[method]} | kwargs
    return train(model, x, d, method=method, **settings)


def summary(result) -> dict:
    return {
        "stop_reason": result.stop_reason,
        "epochs": result.epochs,
        "seconds": result.seconds,
        "max_abs_error": result.max_abs_error,
        "final_loss": result.final_loss,
    }


def curves(x, d, seed: int) -> dict:
    """``E`` per epoch with the wall time at the start of each epoch, for both methods."""
    stamps = []
    began = time.perf_counter()
    sgd = fit("sgd", seed, x, d, callback=lambda k, r: stamps.append(time.perf_counter() - began))
    stamps.append(sgd.seconds)  # the last epoch, which stops instead of calling back
    lm = fit("lm", seed, x, d)
    # An LM run of k epochs ends at the start of epoch k: its wall time (median of 5) is that epoch's
    # time stamp; the running maximum keeps the stamps in order where timing noise would not.
    lm_stamps, latest = [], 0.0
    for k in range(lm.epochs + 1):
        latest = max(latest, statistics.median(fit("lm", seed, x, d, max_epochs=k).seconds for _ in range(5)))
        lm_stamps.append(latest)
    return {
        "sgd": {"loss": sgd.loss_history, "seconds": stamps},
        "lm": {"loss": lm.loss_history, "seconds": lm_stamps},
    }


def draw(curve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    labels = {"sgd": "steepest descent (η = 2)", "lm": "Levenberg–Marquardt"}
    for method, style in (("sgd", "-"), ("lm", "o-")):
        loss, seconds = curve[method]["loss"], curve[method]["seconds"]
        by_epoch.plot(range(len(loss)), loss, style, ms=3, label=labels[method])
        by_time.plot(seconds, loss, style, ms=3, label=labels[method])
    by_epoch.set_xscale("symlog", linthresh=10)
    by_epoch.set_xlabel("epoch (linear to 10, then log)")
    by_time.set_xscale("log")
    by_time.set_xlabel("wall seconds (log)")
    for ax in (by_epoch, by_time):
        ax.set_yscale("log")
        ax.set_ylabel("E = ½ Σ (y − d)²")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    fig.suptitle("3-3-3-1 teacher problem (T = 64), student seed 0, float32, to max|y − d| < 0.01")
    PICTURE.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def median_of(per_seed: list[dict], method: str, key: str) -> float:
    return statistics.median(r[method][key] for r in per_seed if r[method]["stop_reason"] == "tol")


def fmt_s(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


# -- the epoch against its floor ------------------------------------------------------------------------
#
# The floor is an LM (BR) epoch written in the fewest plain torch ops, batched over K members (K = 1 for
# one network): the forward keeping the signals, J from the deltas, JᵀJ and Jᵀe, then per trial of μ the
# damped matrix, one Cholesky, one solve, one trial forward and its SSE; BR adds, after an accepted
# step, H's Cholesky and one triangular inverse, from which every layer's tr_l(H⁻¹) follows. It makes
# the trials the library's run made (recorded from that run), so that a rejected trial costs one
# factorisation and one trial forward on both sides.

FLOOR_CASES = [((1, 8, 8, 1), 100), ((1, 8, 8, 1), 1000), ((2, 16, 16, 1), 100), ((2, 16, 16, 1), 1000)]
FLOOR_EPOCHS = 60


def floor_problem(sizes, T: int, K: int | None):
    """A smooth target of ``sizes[0]`` inputs at ``T`` points in float64, and a network (``K`` members)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, sizes[0], generator=g, dtype=torch.float64) * 2 - 1  # (T, n)
    d = 0.5 + 0.35 * torch.sin(3 * x.sum(1, keepdim=True))  # (T, 1), inside (0, 1)
    model = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], dtype=torch.float64, generator=g, population=K)
    return x, d, model


def library_trials(method: str, sizes, T: int, K: int | None) -> list[tuple[list[int], int]]:
    """The trials the library's run of FLOOR_EPOCHS epochs makes: per epoch the number of members
    evaluated at each trial (one network: 1 each), and the members whose γ BR estimated.

    A population's run is recorded trying one ``μ`` a round (``speculate = 1``), which takes the same
    steps: the floor makes each rejected trial on its own, as the rule states it, and the library's
    timed run batches a rejection's next ``μ`` with it where it can (``population_lm._lm_step``)."""
    import torch_sigmoid_mlp.training.population_lm as population_lm
    import torch_sigmoid_mlp.training.solvers as solvers

    x, d, model = floor_problem(sizes, T, K)
    epochs, estimates = [], []
    patched = []

    def patch(owner, name, wrapper):
        original = getattr(owner, name)
        patched.append((owner, name, original))
        setattr(owner, name, wrapper(original))

    def on_step(original):
        def step(self, *args):
            epochs.append([])
            estimates.append(0)
            return original(self, *args)

        return step

    def on_estimate(original):
        def estimate(self, idx, *args):
            if estimates:
                estimates[-1] += 1 if K is None else len(idx)
            return original(self, idx, *args)

        return estimate

    if K is None:
        patch(solvers.LevenbergMarquardt, "step", on_step)
        patch(solvers, "accept", lambda f: lambda *a, **k: epochs[-1].append(1) or f(*a, **k))
        patch(solvers, "reject", lambda f: lambda *a, **k: epochs[-1].append(1) or f(*a, **k))
        patch(solvers.BayesianRegularization, "_estimate", lambda f: lambda self, *a: on_estimate(
            lambda self, idx, *a: f(self, *a))(self, None, *a))  # fmt: skip
    else:
        cls = population_lm.LevenbergMarquardt
        patch(cls, "step", on_step)
        patch(population_lm.BayesianRegularization, "step", on_step)

        def on_error(original):
            def error(self, idx, flat=None, *, largest=True):
                if flat is not None:
                    epochs[-1].append(len(idx))
                return original(self, idx, flat, largest=largest)

            return error

        patch(cls, "error", on_error)
        patch(population_lm.BayesianRegularization, "_estimate", on_estimate)

        def one_value_a_round(original):
            def init(self, *args, **kwargs):
                original(self, *args, **kwargs)
                self.speculate = 1  # the trials as the rule makes them, one μ after another

            return init

        patch(cls, "__init__", one_value_a_round)
    try:
        train(model, x, d, method=method, max_epochs=FLOOR_EPOCHS)
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
    return [(e, n) for e, n in zip(epochs, estimates) if e]


def floor_epoch(Ws, x, d, trials: list[int], estimate: int, numels: list[int]) -> None:
    """One LM epoch in plain ops for ``K`` stacked members (``Ws[l]`` is ``(K, size_{l+1}, size_l)``),
    with ``trials`` (members per trial), and BR's traces for ``estimate`` members."""
    K, T = Ws[0].shape[0], x.shape[0]
    ys = [x.expand(K, T, x.shape[1])]
    for W in Ws:
        ys.append(torch.bmm(ys[-1], W.mT).sigmoid_())  # y^(l+1), (K, T, size_{l+1})
    e = d - ys[-1]  # (K, T, 1)
    delta = ys[-1] * (1 - ys[-1])  # δ^(L) of the unit error, (K, T, 1)
    J = x.new_empty(K, T, sum(numels))  # (K, T, P)
    ends = list(itertools.accumulate(numels))
    for l in range(len(Ws) - 1, -1, -1):
        block = J[..., ends[l] - numels[l] : ends[l]].unflatten(-1, Ws[l].shape[1:])
        torch.mul(delta[..., :, None], ys[l][..., None, :], out=block)  # rows δ ⊗ y, written into J
        if l > 0:
            delta = torch.bmm(delta, Ws[l]) * ys[l] * (1 - ys[l])  # δ^(l)
    A = J.mT @ J  # (K, P, P)
    g = (J.mT @ e)[..., 0]  # (K, P)
    eye = torch.eye(A.shape[-1], dtype=A.dtype)
    for k in trials:
        U, _ = torch.linalg.cholesky_ex(A[:k] + 1e-3 * eye, upper=True)
        dw = torch.cholesky_solve(g[:k, :, None], U, upper=True)  # (k, P, 1)
        parts = dw.split(numels, 1)
        y = x.expand(k, T, x.shape[1])
        for W, part in zip(Ws, parts):
            y = torch.bmm(y, (W[:k] + part.view(k, *W.shape[1:])).mT).sigmoid_()
        (d - y).square().sum((1, 2))  # the trial's SSE
    if estimate:
        U, _ = torch.linalg.cholesky_ex(A[:estimate] + 1e-2 * eye, upper=True)  # H = UᵀU
        inverse = torch.linalg.solve_triangular(U, eye.expand_as(U), upper=True)  # U⁻¹
        diagonal = inverse.square().sum(-1)  # diag(H⁻¹)
        torch.stack([part.sum(1) for part in diagonal.split(numels, 1)], 1)  # tr_l(H⁻¹)


def floor_rows(rounds: int) -> list[dict]:
    rows = []
    for sizes, T in FLOOR_CASES:
        for K in (None, 8):
            for method in ("lm", "br"):
                trials = library_trials(method, sizes, T, K)
                members = 1 if K is None else K
                library, floor = [], []
                for _ in range(rounds):  # interleaved
                    x, d, model = floor_problem(sizes, T, K)
                    began = time.perf_counter()
                    train(model, x, d, method=method, max_epochs=FLOOR_EPOCHS)
                    library.append((time.perf_counter() - began) / FLOOR_EPOCHS / members)
                    x, d, model = floor_problem(sizes, T, K)
                    Ws = [W.detach() if K else W.detach()[None] for W in model.weights]
                    numels = [W[0].numel() for W in Ws]
                    began = time.perf_counter()
                    for epoch_trials, estimate in trials:
                        floor_epoch(Ws, x, d, epoch_trials, estimate, numels)
                    floor.append((time.perf_counter() - began) / max(len(trials), 1) / members)
                row = {
                    "sizes": "-".join(map(str, sizes)), "T": T, "K": members, "method": method,
                    "trials_per_epoch": sum(len(t) for t, _ in trials) / max(len(trials), 1),
                    "library_us": statistics.median(library) * 1e6,
                    "floor_us": statistics.median(floor) * 1e6,
                }  # fmt: skip
                row["ratio"] = row["library_us"] / row["floor_us"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def floor_markdown(rows: list[dict], head: str) -> str:
    lines = [
        "## The LM and BR epoch against its plain-op floor (`bench_lm.py --floor`)",
        "",
        head,
        "",
        f"µs per epoch (per member of a population), median of interleaved rounds of {FLOOR_EPOCHS} "
        "epochs from one start, float64; the floor makes the library's own μ trials (recorded from its "
        "run), one factorisation and trial pass each, and BR's floor its estimates of γ. A population's "
        "library epoch tries a rejection's next μ in the same batched factorisation where the member's "
        "last step had a rejection, so it makes those trials in fewer rounds.",
        "",
        "| network | T | members | solver | trials / epoch | library µs | floor µs | library / floor |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['sizes']} | {r['T']} | {r['K']} | {r['method']} | {r['trials_per_epoch']:.2f} | "
                     f"{r['library_us']:.0f} | {r['floor_us']:.0f} | {r['ratio']:.2f}× |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round and seeds 0–2, for a check")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--floor", action="store_true", help="only the epoch against its plain-op floor")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.floor:
        rows = floor_rows(3 if args.quick else 7)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = f"{machine.summary()}; {now}; `python benchmarks/bench_lm.py {' '.join(sys.argv[1:])}`."
        RESULTS.mkdir(exist_ok=True)
        record = {"machine": machine.summary(), "date": now, "command": " ".join(sys.argv[1:]), "rows": rows}
        (RESULTS / "lm_floor.json").write_text(json.dumps(record, indent=1) + "\n")
        (RESULTS / "lm_floor.md").write_text(floor_markdown(rows, head))
        print(floor_markdown(rows, head))
        return
    rounds, seeds = (1, range(3)) if args.quick else (5, range(10))
    x, d = teacher_problem()

    # -- from seed 0: the headline, interleaved rounds ------------------------------------------------
    fit("lm", 0, x, d, max_epochs=2), fit("sgd", 0, x, d, max_epochs=10)  # warm up
    runs = {"sgd": [], "lm": []}
    for _ in range(rounds):
        for method in runs:
            runs[method].append(fit(method, 0, x, d))
    head = {}
    for method, results in runs.items():
        head[method] = summary(results[0]) | {"seconds": statistics.median(r.seconds for r in results)}
        assert all(r.epochs == results[0].epochs for r in results), "a run is not reproducible"
    ratio = {
        "epochs": head["sgd"]["epochs"] / max(head["lm"]["epochs"], 1),
        "seconds": head["sgd"]["seconds"] / head["lm"]["seconds"],
    }
    print(json.dumps({"seed 0": head, "sgd / lm": ratio}), flush=True)
    curve = curves(x, d, 0)
    if not args.quick:  # a check leaves the README's picture alone
        draw(curve, PICTURE)

    # -- every start of seeds 0–9, and three restarts -----------------------------------------------------
    per_seed = []
    for seed in seeds:
        row = {"seed": seed, "sgd": summary(fit("sgd", seed, x, d)), "lm": summary(fit("lm", seed, x, d))}
        per_seed.append(row)
        print(json.dumps(row), flush=True)
    restarts = {}
    for method in ("sgd", "lm"):
        r = fit(method, 0, x, d, restarts=3, generator=torch.Generator().manual_seed(0))
        restarts[method] = summary(r) | {"start": r.start, "starts": [summary(s) for s in r.restarts]}
    print(json.dumps({"restarts=3": restarts}), flush=True)

    # -- write --------------------------------------------------------------------------------------
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(exist_ok=True)
    record = {
        "machine": machine.summary(),
        "date": now,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "tol": TOL, "lr": LR, "budget": BUDGET, "rounds": rounds, "seed 0": head, "sgd / lm": ratio,
        "per_seed": per_seed, "restarts=3": restarts, "curves": curve,
    }  # fmt: skip
    (RESULTS / f"lm{suffix}.json").write_text(json.dumps(record, indent=1) + "\n")

    def line(name, s):
        ok = "yes" if s["stop_reason"] == "tol" else f"no ({s['stop_reason']})"
        return f"| {name} | {ok} | {s['epochs']} | {fmt_s(s['seconds'])} | {s['max_abs_error']:.4f} |"

    md = [
        f"## bench_lm ({now})",
        "",
        f"Machine: {machine.summary()}. `python benchmarks/{record['command']}`.",
        "The 3-3-3-1 teacher problem of",
        "tests/test_training.py (T = 64, float32), `tol = 0.01` (max |y − d|); steepest descent with",
        f"η = {LR:g}, full batch; budgets {BUDGET['sgd']} (SD) and {BUDGET['lm']} (LM) epochs per start.",
        "",
        f"### From student seed 0 (seconds: median of {rounds} interleaved runs)",
        "",
        "| method | reached tol | epochs | wall time | final max abs error |",
        "|---|---|---:|---:|---:|",
        line("steepest descent", head["sgd"]),
        line("Levenberg–Marquardt", head["lm"]),
        "",
        f"LM takes {ratio['epochs']:.0f}× fewer epochs and {ratio['seconds']:.0f}× less wall time. "
        f"Loss curves: `docs/{PICTURE.name}`.",
        "",
        "### Every student seed, one run each",
        "",
        *[
            f"{name}: reached tol from {sum(r[m]['stop_reason'] == 'tol' for r in per_seed)} of "
            f"{len(per_seed)} starts; median over those {median_of(per_seed, m, 'epochs'):.0f} epochs, "
            f"{fmt_s(median_of(per_seed, m, 'seconds'))}.  "
            for m, name in (("sgd", "Steepest descent"), ("lm", "Levenberg–Marquardt"))
        ],
        "",
        "| seed | SD reached tol | SD epochs | SD time | SD max err | LM reached tol | LM epochs | LM time "
        "| LM max err |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in per_seed:
        cells = []
        for method in ("sgd", "lm"):
            cells.append(line("", row[method])[4:-2])
        md.append(f"| {row['seed']} | " + " | ".join(cells) + " |")
    md += [
        "",
        "### `restarts=3` from seed 0 (starts 1, 2 drawn with seeds 1, 2 of `torch.Generator`)",
        "",
        "| method | best start | reached tol | epochs (best) | wall time (all starts) | max abs error |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for method, name in (("sgd", "steepest descent"), ("lm", "Levenberg–Marquardt")):
        r = restarts[method]
        md.append(line(f"{name} | {r['start']}", r))
    (RESULTS / f"lm{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
