"""γ and ln det H of Bayesian regularisation from products alone, against the dense Cholesky factor.

For each seed a network is fitted a few BR epochs (``BayesianRegularization``, dense), and at its
``w, α_l, β`` the Hessian ``H = 2β·JᵀSJ + 2·D_α`` is given to the estimators of
``training/trace_estimate.py`` as ``V ↦ H V`` only:

- ``γ_l = P_l − 2α_l·tr_l(H⁻¹)``: plain Hutchinson on ``H⁻¹`` (``weights=None, deflate=0``), Hutchinson
  on ``2D_α^{1/2}H⁻¹2D_α^{1/2}`` (``weights=2·D_α, deflate=0``) and the deflated estimator (the default);
  the error of ``γ = Σ_l γ_l`` relative to the dense one, and the worst layer's relative error;
- ``½·ln det H`` (what the evidence takes): SLQ with the Jacobi scaling and no deflation, and with
  ``D = 2·D_α`` and a deflated Schur complement of ``d`` columns; its absolute error;
- where the network has more weights than the points rows (``R = T·m < P``), both from the data space
  as ``MatrixFreeBR(trace_space="data")`` computes them (``G = I + UUᵀ``, ``R×R``: Woodbury and
  Sylvester), at the same ``w, α_l, β``.

Problems: ``1-8-8-1`` on 40 noisy points of ``0.5 + 0.3·sin 3x`` (40 epochs), ``10-16-16-1`` on 500 noisy
points of a smooth 10-input function (15 epochs); a run still searching for its first minimum is
settled there (``α_l = P_l/(2E_W^(l))``, ``β = N/(2E_D)``, one update). Medians and worst cases over
the seeds. One torch thread.

    python benchmarks/bench_trace.py              # 20 seeds
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import machine
import torch

from torch_sigmoid_mlp import SigmoidMLP
from torch_sigmoid_mlp.training import matrix_free_br
from torch_sigmoid_mlp.training.matrix_free_br import MatrixFreeBR
from torch_sigmoid_mlp.training.objective import Objective
from torch_sigmoid_mlp.training.solvers import BayesianRegularization, inverse_diagonal
from torch_sigmoid_mlp.training.trace_estimate import inverse_trace, log_determinant

RESULTS = Path(__file__).parent / "results"


def problem(kind: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    if kind == "1-8-8-1":
        x = torch.rand(40, 1, generator=g, dtype=f64) * 2 - 1  # (T, 1)
        d = 0.5 + 0.3 * torch.sin(3 * x) + 0.05 * torch.randn(40, 1, generator=g, dtype=f64)
        return SigmoidMLP(1, [8, 8], 1, generator=g, dtype=f64), x, d, 40
    x = torch.rand(500, 10, generator=g, dtype=f64) * 2 - 1  # (T, 10)
    d = 0.5 + 0.2 * torch.sin(2 * x[:, :1] * x[:, 1:2]) + 0.1 * x[:, 2:3] ** 2
    d = d + 0.1 * torch.randn(500, 1, generator=g, dtype=f64)
    return SigmoidMLP(10, [16, 16], 1, generator=g, dtype=f64), x, d, 15


def br_hessian(kind: str, seed: int):
    """``(H, sizes, alphas, gamma_dense, log_det_dense, data)`` after a few dense BR epochs; ``data``:
    ``(γ_l, ln det H)`` from the data space where ``R < P``, else ``None``."""
    model, x, d, epochs = problem(kind, seed)
    step = BayesianRegularization(Objective(model, x, d))
    for _ in range(epochs):
        step.evaluate()
        step.step()
    A, _, E, _ = step.objective.gauss_newton()
    w = step._flat()
    if step.searching:
        step._settle(A, w, E.item())
    H = step._hessian(A, w)  # (P, P)
    sizes, alphas = step._numels, list(step.alphas)
    traces = [part.sum().item() for part in inverse_diagonal(H).split(sizes)]
    gammas = [n - 2 * a * t for n, a, t in zip(sizes, alphas, traces)]
    data = None
    if x.shape[0] * d.shape[1] < H.shape[0]:
        free = MatrixFreeBR(Objective(model, x, d), trace_space="data")
        free.alphas, free.beta, free._searching = list(step.alphas), step.beta, False
        products = free._gauss_newton()[0]
        factor = free._data_space(products)[0]
        log_det_data = 2 * factor.diagonal().log().sum().item()  # ln det G
        log_det_data += sum(n * math.log(2 * a) for n, a in zip(sizes, alphas))  # + ln det 2·D_α
        free._estimate(products, w, E.item())
        data = (list(free.gammas), log_det_data)
    return H, sizes, alphas, gammas, torch.linalg.slogdet(H)[1].item(), data


DATA_SPACE = "data space (R < P): G = I + UUᵀ, Woodbury"
DATA_SPACE_LOG_DET = "data space (R < P): ln det G, Sylvester"


def gamma_errors(estimated: list[float], dense: list[float]) -> tuple[float, float]:
    total = abs(sum(estimated) - sum(dense)) / sum(dense)
    layer = max(abs(e - t) / t for e, t in zip(estimated, dense))
    return total, layer


#: br_cg's γ on the probes along a run (``--runs``): MatrixFreeBR options, and whether CG is preconditioned
#: on the deflated basis too (``inverse_trace(coarse=)``)
RUN_VARIANTS = {
    "fresh, Jacobi, every step (br_cg before)": ({"trace_recycle": False, "trace_interval": 1}, False),
    "recycled, two-level, every step (default)": ({}, True),
    "recycled, two-level, interval ≤ 8": ({"trace_interval": 8}, True),
}


def along_a_run(kind: str, seed: int, variant: str) -> dict:
    """br_cg on the probes (``trace_space="probes"``) for the problem's epochs with a :data:`RUN_VARIANTS`
    variant: the products with ``H`` and seconds of its estimates; then the ``γ`` it holds, and its next
    estimate, against the dense ``γ`` at its ``w, α_l, β`` (``None`` where the run ended searching)."""
    options, coarse = RUN_VARIANTS[variant]
    model, x, d, epochs = problem(kind, seed)
    step = MatrixFreeBR(Objective(model, x, d), trace_space="probes", trace_seed=seed, **options)
    spent = []  # (seconds, products) per call: products 0 where γ was held
    inner = step._estimate

    def timed(A, w, E):
        began, before = time.perf_counter(), A.products
        inner(A, w, E)
        spent.append((time.perf_counter() - began, A.products - before))

    step._estimate = timed
    matrix_free_br.inverse_trace = functools.partial(inverse_trace, coarse=coarse)
    try:
        began = time.perf_counter()
        for _ in range(epochs):
            step.evaluate()
            step.step()
        seconds = time.perf_counter() - began
        out = {
            "calls": len(spent),
            "products": [p for _, p in spent if p > 0],
            "estimate_seconds": sum(t for t, _ in spent),
            "seconds": seconds,
        }
        if step.searching:
            return out | {"held": None, "next": None}
        products, _, E, _ = step._gauss_newton()
        w = step._flat()
        dense = BayesianRegularization(Objective(model, x, d))
        dense.alphas, dense.beta, dense._searching = list(step.alphas), step.beta, False
        A, _, E_dense, _ = dense.objective.gauss_newton()
        dense._estimate(A, w, E_dense.item())
        held = abs(step.gamma - dense.gamma) / dense.gamma
        step._wait = 0  # an estimate here, whatever the interval
        inner(products, w, E.item())
        return out | {"held": held, "next": abs(step.gamma - dense.gamma) / dense.gamma}
    finally:
        matrix_free_br.inverse_trace = inverse_trace


def run_rows(seeds: int) -> list[dict]:
    """:func:`along_a_run` with each variant over the seeds (their order rotating), summarised."""
    rows = []
    names = list(RUN_VARIANTS)
    for kind in ("1-8-8-1", "10-16-16-1"):
        seen = {name: [] for name in names}
        for seed in range(seeds):
            turn = seed % len(names)
            for name in names[turn:] + names[:turn]:
                seen[name].append(along_a_run(kind, seed, name))
        for name, runs in seen.items():
            compared = [r for r in runs if r["next"] is not None]
            products = [p for r in runs for p in r["products"]]
            rows.append({
                "network": kind,
                "variant": name,
                "compared": len(compared),
                "held_median": statistics.median(r["held"] for r in compared),
                "held_worst": max(r["held"] for r in compared),
                "next_median": statistics.median(r["next"] for r in compared),
                "next_worst": max(r["next"] for r in compared),
                "calls": sum(r["calls"] for r in runs),
                "estimates": len(products),
                "products_per_estimate": statistics.fmean(products),
                "products_per_run_median": statistics.median(sum(r["products"]) for r in runs),
                "estimate_seconds_median": statistics.median(r["estimate_seconds"] for r in runs),
                "seconds_median": statistics.median(r["seconds"] for r in runs),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--out", default="trace", help="results file stem")
    parser.add_argument("--runs", action="store_true", help="also br_cg along a run (RUN_VARIANTS)")
    parser.add_argument("--static", action=argparse.BooleanOptionalAction, default=True,
                        help="the estimators at one H (--no-static: --runs alone)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    s = args.probes
    gamma_variants = {
        f"Hutchinson on H⁻¹, {2 * s} probes": dict(deflate=0, scaled=False, probes=2 * s),
        f"Hutchinson on 2D_α^½H⁻¹2D_α^½, {2 * s} probes": dict(deflate=0, scaled=True, probes=2 * s),
        f"deflated, {s} probes (d = {s // 2})": dict(deflate=None, scaled=True, probes=s),
        f"deflated, {s // 2} probes (d = {s // 4})": dict(deflate=None, scaled=True, probes=s // 2),
    }
    log_det_variants = {
        f"SLQ, Jacobi, {s} probes × 40 steps": dict(deflate=0, scaled=False),
        f"SLQ, 2D_α, d = 64, {s} × 40": dict(deflate=64, scaled=True),
        f"SLQ, 2D_α, d = 2⌈γ⌉ + 16, {s} × 40": dict(deflate="gamma", scaled=True),
    }
    rows = []
    for kind in ("1-8-8-1", "10-16-16-1") if args.static else ():
        seen = {name: ([], []) for name in gamma_variants} | {name: [] for name in log_det_variants}
        gammas = []
        for seed in range(args.seeds):
            H, sizes, alphas, dense, log_det, data = br_hessian(kind, seed)
            gammas.append(sum(dense))
            if data is not None:
                total, layer = gamma_errors(data[0], dense)
                seen.setdefault(DATA_SPACE, ([], []))
                seen[DATA_SPACE][0].append(total)
                seen[DATA_SPACE][1].append(layer)
                seen.setdefault(DATA_SPACE_LOG_DET, []).append(abs(data[1] - log_det) / 2)
            D2 = torch.cat([H.new_full((n,), 2 * a) for n, a in zip(sizes, alphas)])  # 2·D_α, (P,)
            apply = lambda V, H=H: H @ V  # noqa: E731
            for name, v in gamma_variants.items():
                g = torch.Generator().manual_seed(10_000 + seed)
                if v["scaled"]:
                    t = inverse_trace(apply, H.diagonal(), sizes, probes=v["probes"], deflate=v["deflate"],
                                      weights=D2, generator=g)  # fmt: skip
                    estimated = [n - ti for n, ti in zip(sizes, t.tolist())]
                else:
                    t = inverse_trace(apply, H.diagonal(), sizes, probes=v["probes"], deflate=0, generator=g)
                    estimated = [n - 2 * a * ti for n, a, ti in zip(sizes, alphas, t.tolist())]
                total, layer = gamma_errors(estimated, dense)
                seen[name][0].append(total)
                seen[name][1].append(layer)
            for name, v in log_det_variants.items():
                g = torch.Generator().manual_seed(20_000 + seed)
                deflate = 2 * math.ceil(sum(dense)) + 16 if v["deflate"] == "gamma" else v["deflate"]
                D = D2 if v["scaled"] else H.diagonal()
                estimate = log_determinant(
                    apply, H.shape[0], probes=s, steps=40, deflate=deflate, diagonal=D, generator=g
                )
                seen[name].append(abs(estimate.item() - log_det) / 2)
        row = {
            "network": kind,
            "P": H.shape[0],
            "gamma_median": statistics.median(gammas),
            "gamma": {},
            "log_det": {},
        }
        for name in [*gamma_variants, DATA_SPACE]:
            if name not in seen:
                continue
            totals, layers = seen[name]
            row["gamma"][name] = {
                "median": statistics.median(totals),
                "worst": max(totals),
                "layer_median": statistics.median(layers),
                "layer_worst": max(layers),
            }
        for name in [*log_det_variants, DATA_SPACE_LOG_DET]:
            if name not in seen:
                continue
            row["log_det"][name] = {"median": statistics.median(seen[name]), "worst": max(seen[name])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    runs = run_rows(args.seeds) if args.runs else []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = f"{machine.summary()}; {now}; `python benchmarks/bench_trace.py {' '.join(sys.argv[1:])}`"
    lines = ["# γ and ln det H of Bayesian regularisation from products: `bench_trace.py`", "",
             head + ".", "",
             f"{args.seeds} seeds per network; relative error (a fraction) of γ = Σ_l γ_l against the dense "
             "Cholesky γ (median, worst), and the worst layer's relative error of γ_l (median, worst over "
             "the seeds).", "",
             "| network | P | median γ | estimator | γ error median | worst | worst layer median | worst |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for row in rows:
        for name, r in row["gamma"].items():
            lines.append(f"| {row['network']} | {row['P']} | {row['gamma_median']:.1f} | {name} | "
                         f"{r['median']:.2e} | {r['worst']:.2e} | {r['layer_median']:.2e} | "
                         f"{r['layer_worst']:.2e} |")  # fmt: skip
    lines += ["", "Absolute error of ½·ln det H (the evidence's term), in nats:", "",
              "| network | estimator | median | worst |", "| --- | --- | ---: | ---: |"]  # fmt: skip
    for row in rows:
        for name, r in row["log_det"].items():
            lines.append(f"| {row['network']} | {name} | {r['median']:.3g} | {r['worst']:.3g} |")
    if runs:
        lines += [
            "",
            'br_cg along a run (`--runs`): `MatrixFreeBR(trace_space="probes")` for the network\'s epochs '
            "(40, 15) from the same start, in each variant (the order rotating seed by seed). Then, at its "
            "last w, α_l, β, the relative error of the γ it holds (the last estimate's, where γ was held "
            "since) and of an estimate made there, against the dense γ (runs that ended searching left "
            "out: compared). Cost: accepted steps (calls), estimates made, block products with H per "
            "estimate (subspace iteration, preconditioner and CG; mean) and per run (median), the "
            "seconds of a run's estimates and of the whole run (medians; a shared machine).",
            "",
            "| network | variant | compared | held γ error median | worst | next estimate's median | worst | "
            "calls | estimates | products per estimate | per run | estimates' s | run s |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in runs:
            lines.append(f"| {r['network']} | {r['variant']} | {r['compared']} | {r['held_median']:.2e} | "
                         f"{r['held_worst']:.2e} | {r['next_median']:.2e} | {r['next_worst']:.2e} | "
                         f"{r['calls']} | {r['estimates']} | {r['products_per_estimate']:.1f} | "
                         f"{r['products_per_run_median']:.0f} | {r['estimate_seconds_median']:.2f} | "
                         f"{r['seconds_median']:.2f} |")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"machine": machine.describe(), "head": head, "rows": rows, "runs": runs}, indent=1) + "\n"
    )
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
