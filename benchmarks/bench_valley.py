"""Why LM and BR crawl on the cubic valley, and which change to the step would cure it: measured.

The question: the default fit of ``t³ − t, t = 1.5x`` (``bench_robust.py``'s valley rows) ends many
starts by ``max_epochs`` at grid ``R²`` near 0.985. Is that the step's rule (damping, scaling, the
curvature of the path, BR's ``α, β`` schedule, the initial weights' scale) or the landscape?

Two parts:

1. **trajectory** of start 0 of seed 0 (``T = 30``, ``solver="lm"`` and the default ``"br"``, up to
   ``--long`` epochs): ``E``, the norm of each layer's weights, ``μ`` after the step, the accepted
   step's ``ρ`` (actual over predicted decrease) and ``‖Δw‖``, and BR's ``α_l``, ``γ``.
2. **variants** of one start (``restarts=1``, the default BR otherwise) over ``--seeds`` seeds of the
   cubic at ``T = 30, 100, 400``: epochs, starts ended by ``max_epochs``, seeds at grid ``R² ≥
   0.999``, worst and median grid ``R²``. The variants other than the library's options are defined
   here, by patching the single network's step (they change nothing in the library):

   - ``trainlm``: the default; ``nielsen``: ``damping="nielsen"``;
   - ``more``: Marquardt's scaling ``μ·D`` with Moré's ``D = max over epochs of diag(JᵀSJ + D_α/β)``
     in place of ``μI``;
   - ``geodesic``: Transtrum and Sethna's geodesic acceleration: ``a = −(M + μI)⁻¹ JᵀS r''``, ``r''``
     the residuals' second directional derivative along the LM step ``v`` (central difference,
     ``h = 0.1``), ``Δw = v + a/2``, a trial with ``2‖a‖/‖v‖ > 0.75`` rejected;
   - ``hold``: BR's ``α_l, β`` updated only once an accepted step lowered ``F`` by less than 10⁻³ of it
     (LM converged in between), not after every accepted step;
   - ``init×0.5``, ``init×2``: the initial weights ``U(−c·a, c·a)``; ``init¹×1.5``, ``init¹×2``,
     ``init¹×3`` the input layer's alone;
   - ``init¹strata``: the input layer drawn stratified, not iid: column ``j``'s ``|w_ij|`` one in each
     of ``size_1`` equal strata of ``[0, a]``, in the middle half of its stratum (so that no two start
     closer than ``a/(2·size_1)``), in a random order and with random signs; ``init¹strata×2`` the
     same on ``[0, 2a]``;
   - ``inputs(-0.5,1)``, ``inputs(-0.75,1)``, ``inputs(-0.875,1)``, ``inputs(-1,0.5)``,
     ``inputs(-1,1)``: the inputs min–max scaled into that range (``INPUT_RANGE`` and
     ``ONE_INPUT_RANGE`` both), so that the input layer's units ``σ(w_i x)``, all centred at ``x = 0``
     without biases, are no longer centred on the data (``[−1, 1]``: they are, as before the
     estimator scaled one input into ``ONE_INPUT_RANGE = [−0.75, 1]``; results files before that
     change ran ``trainlm`` with ``[−1, 1]``);
   - ``A+B``: variants ``A`` and ``B`` together (an initial weights' one and an input range).

3. **defaults** (``--defaults V …``): the estimator's default fit (BR, 3 starts run as a population)
   with variant ``V`` (``trainlm``, ``nielsen``, an ``init`` or ``inputs`` one: those the
   population's step shares) over bench_robust's 1-D clean rows (``--only``: those whose name holds
   it), as ``bench_robust.py --only`` would score them; the JSON keeps every start's stop, epochs,
   evidence and grid ``R²``. ``bench_robust.py --variant V`` runs the whole of bench_robust so.

One torch and BLAS thread; epochs, stops and ``R²`` do not depend on the machine's load.

    python benchmarks/bench_valley.py                 # 10 seeds
    python benchmarks/bench_valley.py --seeds 3 --variants trainlm geodesic
    python benchmarks/bench_valley.py --defaults trainlm init¹×2 --only "t³" --out valley_defaults_x
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import statistics
import sys
import warnings

import bench_robust
import machine
import numpy as np
import torch
from threadpoolctl import threadpool_limits

import torch_sigmoid_mlp.core.module as module
import torch_sigmoid_mlp.estimator.regressor as regressor
import torch_sigmoid_mlp.training.loop as loop
import torch_sigmoid_mlp.training.population_lm as population_lm
import torch_sigmoid_mlp.training.solvers as solvers
from torch_sigmoid_mlp import SigmoidMLPRegressor

VARIANTS = (
    "trainlm",
    "nielsen",
    "more",
    "geodesic",
    "hold",
    "init×0.5",
    "init×2",
    "init¹×2",
    "inputs(-0.5,1)",
    "inputs(-1,1)",
    "init¹×1.5",
    "init¹×3",
    "init¹strata",
    "init¹strata×2",
    "inputs(-0.75,1)",
    "inputs(-0.875,1)",
    "inputs(-1,0.5)",
    "init¹×2+inputs(-0.75,1)",
)
GEODESIC_H, GEODESIC_RATIO = 0.1, 0.75
HOLD_DROP = 1e-3


def cubic(X):
    return (1.5 * X[:, 0]) ** 3 - 1.5 * X[:, 0]


def rows() -> list:
    return [p for p in bench_robust.problems() if p.name.startswith("t³ − t")]


# -- the variants' steps: solvers.LevenbergMarquardt.step with a scaling and an acceleration ----------


def _geodesic(self, w, v, factor):
    """Transtrum's acceleration ``a`` along the LM step ``v``, or ``None`` where ``2‖a‖/‖v‖`` is too large."""
    o = self.objective

    def outputs(flat):
        self._load(flat)
        with torch.no_grad():
            return o.model(o.x).double()  # y^(L), (T, m)

    y0, y_plus, y_minus = outputs(w), outputs(w + GEODESIC_H * v), outputs(w - GEODESIC_H * v)
    second = (y_plus - 2 * y0 + y_minus) / GEODESIC_H**2  # r''_vv (r = y − d), (T, m)
    self._load(w)
    s = 1.0 if o.s is None else o.s.double().reshape(-1, 1)
    grads = torch.autograd.grad((o.model(o.x).double() * (s * second)).sum(), o.weights)
    JtSr = torch.cat([g.reshape(-1) for g in grads]).double()  # JᵀS r'', (P,)
    a = -torch.cholesky_solve(JtSr[:, None], factor)[:, 0]
    return None if 2 * a.norm().item() > GEODESIC_RATIO * v.norm().item() else a


def variant_step(scaling: str, geodesic: bool):
    def step(self) -> None:
        A, g, E, _ = self.objective.gauss_newton()
        w = self._flat()
        self._before_step(A, w, E.item())
        M, rhs = self._system(A, g, w)
        F_k = self._objective_value(E.item(), w)
        if scaling == "more":
            d = M.diagonal().clamp_min(1e-12 * self._unit)
            kept = getattr(self, "_D", None)
            self._D = D = d.clone() if kept is None else torch.maximum(kept, d)
        else:
            D = torch.full_like(rhs, self._unit)
        damped = torch.empty_like(M)
        while True:
            damped.copy_(M).diagonal().add_(self.mu * D)
            factor, info = torch.linalg.cholesky_ex(damped)
            if info.item() == 0:
                dw = torch.cholesky_solve(rhs[:, None], factor)[:, 0]
                a = self._geodesic(w, dw, factor) if geodesic else 0.0
                if a is not None:
                    v, dw = dw, dw + 0.5 * a
                    self._load(w + dw)
                    E_new, max_new = self.objective.error(self._rows)
                    w_new = self._flat()
                    F_new = self._objective_value(E_new.item(), w_new)
                    if F_new < F_k:
                        predicted = self._model_scale() * 0.5 * torch.dot(v, self.mu * D * v + rhs).item()
                        self._last_drop = (F_k - F_new) / F_k if F_k > 0 else 0.0
                        self._last_rho = (F_k - F_new) / predicted if predicted > 0 else 1.0
                        self.mu, self.nu = solvers.accept(self, self._last_rho)
                        self._known = (E_new, max_new)
                        self._accepted(A, w_new, E_new.item())
                        return
            self.mu, self.nu = solvers.reject(self)
            if self.mu > self.mu_max:
                self._load(w)
                self.stop_reason = "mu_max"
                return

    return step


def _held_accepted(self, A, w, E) -> None:
    if not self._searching and self._last_drop < HOLD_DROP:
        self._estimate(A, w, E)


def _strata(W, a: float, generator) -> None:
    """``init¹strata``: each column's ``|w_ij|`` one per stratum ``[i·a/h, (i+1)·a/h]`` of ``[0, a]``
    (``h`` rows), in the stratum's middle half, the strata in a random order, random signs."""
    h, n = W.shape[-2:]
    for j in range(n):
        u = torch.rand(h, generator=generator, dtype=torch.float64)
        order = torch.randperm(h, generator=generator)
        signs = torch.randint(0, 2, (h,), generator=generator) * 2 - 1
        W[..., j].copy_(a / h * (order + 0.25 + 0.5 * u) * signs)


@contextlib.contextmanager
def patched(variant: str, step: bool = True):
    """The library with ``variant``'s step (one network's), initial weights or input range (parts
    joined by ``+``), put back afterwards; ``step=False`` keeps the library's own step (the
    variants other than the step's)."""
    LM, BR, Net = solvers.LevenbergMarquardt, solvers.BayesianRegularization, module.SigmoidMLP
    PLM = population_lm.LevenbergMarquardt
    saved = [(LM, "step", LM.step), (LM, "__init__", LM.__init__), (PLM, "__init__", PLM.__init__),
             (BR, "_accepted", BR._accepted), (Net, "reset_parameters", Net.reset_parameters),
             (regressor, "INPUT_RANGE", regressor.INPUT_RANGE),
             (regressor, "ONE_INPUT_RANGE", regressor.ONE_INPUT_RANGE)]  # fmt: skip
    if step:
        LM._geodesic = _geodesic
        LM.step = variant_step("more" if variant == "more" else "identity", variant == "geodesic")
    for part in variant.split("+"):
        if part == "nielsen":
            for cls, _, init in saved[1:3]:
                cls.__init__ = lambda self, *a, _init=init, **k: _init(
                    self, *a, **{"damping": "nielsen", **k}
                )
        if part == "hold":
            BR._accepted = _held_accepted
        if part.startswith("inputs"):
            bounds = tuple(float(v) for v in part[len("inputs(") : -1].split(","))
            regressor.INPUT_RANGE = regressor.ONE_INPUT_RANGE = bounds
        if part.startswith("init"):
            first, reset = part[4] == "¹", saved[4][2]
            strata, c = "strata" in part, float(part.split("×")[1]) if "×" in part else 1.0

            def scaled(self, generator=None, first=first, strata=strata, c=c, reset=reset):
                reset(self, generator)
                with torch.no_grad():
                    if strata:
                        W = self.weights[0]
                        _strata(W, c * math.sqrt(12.0 / W.shape[-1]), generator)
                        return
                    for W in self.weights[:1] if first else self.weights:
                        W.mul_(c)

            Net.reset_parameters = scaled
    try:
        yield
    finally:
        for cls, name, value in saved:
            setattr(cls, name, value)


# -- part 1: the trajectory ----------------------------------------------------------------------------


def trajectory(solver: str, epochs: int, every: int) -> list[dict]:
    log = []
    base = variant_step("identity", False)

    def step(self):
        base(self)
        if self._known is None:
            return
        w = self._flat()
        entry = {"epoch": len(log), "E": self._known[0].item(), "mu": self.mu, "rho": self._last_rho,
                 "weights": [p.norm().item() for p in w.split(self._numels)]}  # fmt: skip
        if isinstance(self, solvers.BayesianRegularization):
            entry |= {"alphas": list(self.alphas), "gamma": self.gamma, "searching": self._searching}
        log.append(entry)

    X, y, grid, target = rows()[0].make(0)
    saved = solvers.LevenbergMarquardt.step
    solvers.LevenbergMarquardt.step = step
    try:
        options = {} if solver == "br" else {"solver": solver}
        reg = SigmoidMLPRegressor(seed=0, restarts=1, max_epochs=epochs, device="cpu", **options).fit(X, y)
    finally:
        solvers.LevenbergMarquardt.step = saved
    keep = [e for e in log if e["epoch"] % every == 0] + log[-1:]
    first = reg.model_.weights[0].detach().reshape(-1)
    return {"solver": solver, "stop": reg.result_.stop_reason, "epochs": reg.result_.epochs,
            "r2": bench_robust.r2(target, reg.predict(grid)),
            "input_layer": first.tolist(), "log": keep}  # fmt: skip


# -- part 2: the variants over seeds -------------------------------------------------------------------


def shape(reg) -> dict:
    """Where a fit ended: the input layer's ``|w_i|`` (one input, no biases: unit ``i`` is ``σ(w_i x)``,
    and ``σ(−wx) = 1 − σ(wx)``, so units of equal ``|w_i|`` are one feature), the least gap between two
    of them, and the largest weight of the layers above."""
    W = [w.detach().double() for w in reg.model_.weights]
    first = W[0].abs().reshape(-1).sort().values
    return {"input_abs": first.tolist(), "input_gap": first.diff().min().item(),
            "outer_max": max(w.abs().max().item() for w in W[1:])}  # fmt: skip


def run(variant: str, p, seeds: int) -> dict:
    fits = []
    with patched(variant), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(seeds):
            X, y, grid, target = p.make(seed)
            reg = SigmoidMLPRegressor(seed=seed, restarts=1, device="cpu").fit(X, y)
            fits.append({"seed": seed, "epochs": reg.result_.epochs, "stop": reg.result_.stop_reason,
                         "r2": bench_robust.r2(target, reg.predict(grid)), **shape(reg)})  # fmt: skip
    if variant == "trainlm":  # the copy of the step above against the library's own, on seed 0
        X, y, _, _ = p.make(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            own = SigmoidMLPRegressor(seed=0, restarts=1, device="cpu").fit(X, y).result_.epochs
        if own != fits[0]["epochs"]:
            raise RuntimeError(
                f"the bench's copy of the step took {fits[0]['epochs']} epochs, the library's {own}"
            )
    r2s = [f["r2"] for f in fits]
    return {"epochs": sum(f["epochs"] for f in fits), "maxed": sum(f["stop"] == "max_epochs" for f in fits),
            "success": sum(r >= bench_robust.SUCCESS_R2 for r in r2s), "r2_worst": min(r2s),
            "r2_median": statistics.median(r2s), "fits": fits}  # fmt: skip


def clean_rows() -> list:
    return [p for p in bench_robust.problems() if p.family == "clean" and "x₁" not in p.name
            and "|x|" not in p.name]  # fmt: skip


@contextlib.contextmanager
def members_kept(kept: list):
    """``loop.train_population`` that appends each population's final weights to ``kept``."""
    train_population = loop.train_population

    def keeping(model, **kw):
        result = train_population(model, **kw)
        kept.append([W.detach().clone() for W in model.weights])
        return result

    loop.train_population = keeping
    try:
        yield
    finally:
        loop.train_population = train_population


def starts_of(reg, kept: list, grid, target) -> list[dict]:
    """Every start of the fit ``reg``: its stop, epochs, evidence and the grid ``R²`` of its weights
    (the population's members, ``kept``; a start after them, BR's second opinion, is the fit's own
    weights when it was chosen and ``None`` otherwise)."""
    r = reg.result_
    starts, out = r.restarts or [r], []
    chosen = [W.detach().clone() for W in reg.model_.weights]
    members = kept[-1] if kept else None
    for k, s in enumerate(starts):
        weights = None
        if members is not None and k < members[0].shape[0]:
            weights = [W[k] for W in members]
        elif k == r.start:
            weights = chosen
        r2 = None
        if weights is not None:
            with torch.no_grad():
                torch._foreach_copy_([W.detach() for W in reg.model_.weights], weights)
            r2 = bench_robust.r2(target, reg.predict(grid))
        out.append({"stop": s.stop_reason, "epochs": s.epochs, "evidence": s.evidence, "r2": r2})
    with torch.no_grad():
        torch._foreach_copy_([W.detach() for W in reg.model_.weights], chosen)
    return out


def defaults(variant: str, p, seeds: int) -> dict:
    """The default fit (3 starts) with ``variant``: per seed the epochs of all starts, the starts
    ended by ``max_epochs``, the grid ``R²``, the start chosen and every start's record."""
    fits, kept = [], []
    with patched(variant), members_kept(kept), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(seeds):
            X, y, grid, target = p.make(seed)
            kept.clear()
            reg = SigmoidMLPRegressor(seed=seed, device="cpu").fit(X, y)
            starts = reg.result_.restarts or [reg.result_]
            fits.append({"seed": seed, "epochs": sum(s.epochs for s in starts),
                         "maxed": sum(s.stop_reason == "max_epochs" for s in starts),
                         "r2": bench_robust.r2(target, reg.predict(grid)), "start": reg.result_.start,
                         "starts": starts_of(reg, kept, grid, target)})  # fmt: skip
    r2s = [f["r2"] for f in fits]
    return {"epochs": sum(f["epochs"] for f in fits), "maxed": sum(f["maxed"] for f in fits),
            "success": sum(r >= bench_robust.SUCCESS_R2 for r in r2s), "r2_worst": min(r2s),
            "r2_median": statistics.median(r2s), "fits": fits}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    # the step's and the initial weights' variants; the input range is asked for by name
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS[:-1]), choices=VARIANTS)
    parser.add_argument("--long", type=int, default=3000, help="epochs of the trajectory runs")
    parser.add_argument("--no-trajectory", action="store_true")
    parser.add_argument(
        "--defaults",
        nargs="*",
        default=None,
        choices=[v for v in VARIANTS if v in ("trainlm", "nielsen") or v.startswith(("init", "inputs"))],
        help="part 3 alone: default fits over the 1-D clean rows with these variants",
    )
    parser.add_argument("--only", default="", help="--defaults: the rows whose name holds this")
    parser.add_argument("--out", default="valley")
    args = parser.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    if args.defaults is not None:
        return main_defaults(args)
    every = max(1, args.long // 15)
    paths = [] if args.no_trajectory else [trajectory(s, args.long, every) for s in ("lm", "br")]
    for t in paths:
        print(json.dumps({k: v for k, v in t.items() if k != "log"}), flush=True)
    table = []
    for p in rows():
        row = {"problem": p.name}
        for v in args.variants:
            row[v] = run(v, p, args.seeds)
            print(json.dumps({"problem": p.name, "variant": v,
                              **{k: x for k, x in row[v].items() if k != "fits"}}), flush=True)  # fmt: skip
        table.append(row)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = f"{machine.summary()}; {now}; `python benchmarks/bench_valley.py {' '.join(sys.argv[1:])}`"
    lines = ["# The cubic valley: trajectory and step variants, `bench_valley.py`", "", head + ".", ""]
    for t in paths:
        lines += [f"## Trajectory, solver={t['solver']!r}, seed 0, T=30, start 0", "",
                  f"Stop {t['stop']} after {t['epochs']} epochs, grid R² {t['r2']:.5f}; input-layer "
                  f"weights at the end {np.round(t['input_layer'], 2).tolist()}.", "",
                  "| accepted step | E | ‖W¹‖, ‖W²‖, ‖W³‖ | μ after | ρ | α_l, γ (BR) |",
                  "| ---: | ---: | --- | ---: | ---: | --- |"]  # fmt: skip
        for e in t["log"]:
            br = ""
            if "alphas" in e:
                br = ("searching" if e["searching"] else
                      ", ".join(f"{a:.2e}" for a in e["alphas"]) + f"; γ {e['gamma']:.1f}")  # fmt: skip
            norms = ", ".join(f"{x:.2f}" for x in e["weights"])
            lines.append(f"| {e['epoch']} | {e['E']:.3e} | {norms} | {e['mu']:.0e} | {e['rho']:.2f} | {br} |")
        lines.append("")
    lines += ["## Variants of one start (restarts=1, BR otherwise the default), per cubic row", "",
              f"{args.seeds} seeds: epochs summed, starts ended by max_epochs, seeds at grid R² ≥ 0.999, "
              "worst / median grid R².", "",
              "| problem | " + " | ".join(args.variants) + " |",
              "| --- |" + " --- |" * len(args.variants)]  # fmt: skip
    for row in table:
        cells = [f"{s['epochs']} ep, {s['maxed']} maxed, {s['success']}/{args.seeds}, "
                 f"{s['r2_worst']:.4f} / {s['r2_median']:.5f}"
                 for s in (row[v] for v in args.variants)]  # fmt: skip
        lines.append(f"| {row['problem']} | " + " | ".join(cells) + " |")
    if "trainlm" in args.variants:
        lines += ["", "## Where the default's single starts end (trainlm), by how they stopped", "",
                  "Input layer: median over the starts of the least gap between two |w_i| and of the "
                  "median |w_i|; the largest weight above it.", "",
                  "| problem | stop | starts | grid R² (median) | least gap | median \\|w_i\\| "
                  "| largest outer weight |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for row in table:
            for stop in ("max_epochs", "converged"):
                maxed = stop == "max_epochs"
                fits = [f for f in row["trainlm"]["fits"] if (f["stop"] == "max_epochs") == maxed]
                if not fits:
                    continue
                med = statistics.median
                lines.append(f"| {row['problem']} | {stop if maxed else 'other'} | {len(fits)} | "
                             f"{med(f['r2'] for f in fits):.5f} | {med(f['input_gap'] for f in fits):.1e} | "
                             f"{med(med(f['input_abs']) for f in fits):.2f} | "
                             f"{med(f['outer_max'] for f in fits):.1f} |")  # fmt: skip
    bench_robust.RESULTS.mkdir(exist_ok=True)
    record = {"head": head, "trajectories": paths, "rows": table}
    (bench_robust.RESULTS / f"{args.out}.json").write_text(json.dumps(record, indent=1) + "\n")
    (bench_robust.RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main_defaults(args) -> None:
    table = []
    for p in [p for p in clean_rows() if args.only in p.name]:
        row = {"problem": p.name}
        for v in args.defaults:
            row[v] = defaults(v, p, args.seeds)
            print(json.dumps({"problem": p.name, "variant": v,
                              **{k: x for k, x in row[v].items() if k != "fits"}}), flush=True)  # fmt: skip
        table.append(row)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = f"{machine.summary()}; {now}; `python benchmarks/bench_valley.py {' '.join(sys.argv[1:])}`"
    lines = ["# Default fits (BR, 3 starts) of the 1-D clean rows per variant, `bench_valley.py --defaults`",
             "", head + ".", "", f"{args.seeds} seeds: epochs of all starts summed, starts ended by "
             "max_epochs, seeds at grid R² ≥ 0.999, worst / median grid R².", "",
             "| problem | " + " | ".join(args.defaults) + " |",
             "| --- |" + " --- |" * len(args.defaults)]  # fmt: skip
    for row in table:
        cells = [f"{s['epochs']} ep, {s['maxed']} maxed, {s['success']}/{args.seeds}, "
                 f"{s['r2_worst']:.4f} / {s['r2_median']:.5f}"
                 for s in (row[v] for v in args.defaults)]  # fmt: skip
        lines.append(f"| {row['problem']} | " + " | ".join(cells) + " |")
    totals = [sum(r[v]["epochs"] for r in table) for v in args.defaults]
    lines.append("| **all rows** | " + " | ".join(f"**{t} epochs**" for t in totals) + " |")
    lines += [
        "",
        "Seeds below grid R² 0.999, every start: stop, epochs, grid R², evidence (* the chosen).",
        "",
    ]
    for row in table:
        for v in args.defaults:
            for f in row[v]["fits"]:
                if f["r2"] >= bench_robust.SUCCESS_R2:
                    continue
                starts = "; ".join(
                    ("*" if k == f["start"] else "") + f"{s['stop']} {s['epochs']}, "
                    + ("—" if s["r2"] is None else f"{s['r2']:.4f}") + f", {s['evidence']:.1f}"
                    for k, s in enumerate(f["starts"])
                )  # fmt: skip
                lines.append(f"- {row['problem']}, {v}, seed {f['seed']}: R² {f['r2']:.4f} — {starts}")
    record = {"head": head, "rows": table}
    (bench_robust.RESULTS / f"{args.out}.json").write_text(json.dumps(record, indent=1) + "\n")
    (bench_robust.RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
