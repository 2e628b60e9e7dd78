"""The tape-free steepest-descent epoch through ``train``, or the estimator's default fit, this checkout
against an earlier revision.

``git archive REV torch_sigmoid_mlp`` is unpacked into a temporary folder and imported under another
name beside this checkout's package, so both run in one process on the same data: the contenders
alternate call by call (in a rotating order) and the medians of many calls are compared, which
keeps the machine's load drifting between runs out of the ratio. Timed is what ``bench_step.py``'s
(c) times: ``train(model, x, d, lr=η, max_epochs=k, tol=1e-30)`` divided by its ``k`` epochs,
float32, one thread.

    python benchmarks/bench_versions.py --against 9c26736
    python benchmarks/bench_versions.py --against 9c26736 --sizes 2x100 32x2000 --rounds 41

``--fits`` times instead ``SigmoidMLPRegressor(hidden=h, seed=k, device="cpu").fit(X, y)`` (the default
fit, plus the row's ``tol``) on bench_robust's rows, seed by seed, the two packages alternating fit
by fit; beside the medians it counts the fits whose epochs per start are the same in both, which is
what a change meant to leave every step as it was must show (``versions_fits.md``):

    python benchmarks/bench_versions.py --against b04c675 --fits --seeds 3
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import io
import json
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import machine
import torch

import torch_sigmoid_mlp

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def load_revision(rev: str, into: Path):
    """The package as it was at ``rev``, imported as ``tsm_<rev>``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "torch_sigmoid_mlp"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    name = f"tsm_{rev}"
    (into / "torch_sigmoid_mlp").rename(into / name)  # relative imports make it importable by any name
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def write_report(stem: str, report: dict, lines: list[str]) -> None:
    """``results/<stem>.json`` and ``.md`` (the command, date and machine above the table), printed too."""
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(
        f"`{report['command']}`, {report['date']}, {machine.summary(report['machine'])}\n\n{text}"
    )
    print(text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", required=True, help="the git revision to compare with")
    p.add_argument("--sizes", nargs="+", default=["2x100", "32x2000"], help="n x T")
    p.add_argument("--rounds", type=int, default=31)
    p.add_argument("--call-ms", type=float, default=100.0, help="about how long one timed call runs")
    p.add_argument("--fits", action="store_true", help="the estimator's default fits on bench_robust's rows")
    p.add_argument("--seeds", type=int, default=3, help="--fits: seeds per row")
    p.add_argument("--only", nargs="*", default=[], help="--fits: rows whose name contains one of these")
    p.add_argument("--solver", default=None, help="--fits: solver=S in both (default: the estimator's auto)")
    p.add_argument("--out", default=None, help="results file stem (default versions, or versions_fits)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.fits:
        return fits(args)
    with tempfile.TemporaryDirectory() as tmp:
        old = load_revision(args.against, Path(tmp))
        packages = {args.against: old, "this checkout": torch_sigmoid_mlp}
        report = {
            "command": shlex.join(["python", *sys.argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine.describe(),
            "rows": [],
        }
        for size in args.sizes:
            n, T = map(int, size.split("x"))
            g = torch.Generator().manual_seed(0)
            x = torch.rand(T, n, generator=g) * 2 - 1
            d = 0.1 + 0.8 * torch.rand(T, 1, generator=g)
            models = {
                k: pkg.SigmoidMLP(n, generator=torch.Generator().manual_seed(1))
                for k, pkg in packages.items()
            }
            # epochs per call, from a short probe of this checkout
            t0 = time.perf_counter()
            torch_sigmoid_mlp.train(models["this checkout"], x, d, lr=1e-3, max_epochs=50, tol=1e-30)
            k = max(10, int(args.call_ms / 1e3 / ((time.perf_counter() - t0) / 50)))
            times = {name: [] for name in packages}
            names = list(packages)
            for r in range(args.rounds + 2):
                for name in names[r % 2 :] + names[: r % 2]:
                    t0 = time.perf_counter()
                    packages[name].train(models[name], x, d, lr=1e-3, max_epochs=k, tol=1e-30)
                    if r >= 2:  # two warm-up rounds
                        times[name].append((time.perf_counter() - t0) / k)
            medians = {name: statistics.median(ts) for name, ts in times.items()}
            row = {"n": n, "T": T, "epochs_per_call": k, "median_s": medians}
            row["ratio"] = medians["this checkout"] / medians[args.against]
            report["rows"].append(row)
            print(
                f"(n={n}, T={T}): {args.against} {medians[args.against] * 1e6:.1f} µs, this checkout "
                f"{medians['this checkout'] * 1e6:.1f} µs per epoch, ratio {row['ratio']:.3f}",
                flush=True,
            )
    lines = [
        f"One tape-free epoch through `train` (float32, one thread): this checkout against {args.against}, "
        f"median of {args.rounds} interleaved calls each.",
        "",
        f"| (n, T) | {args.against} | this checkout | ratio |",
        "|---|---|---|---|",
    ]
    for row in report["rows"]:
        m = row["median_s"]
        before, after = m[args.against] * 1e6, m["this checkout"] * 1e6
        lines.append(f"| ({row['n']}, {row['T']}) | {before:.1f} µs | {after:.1f} µs | {row['ratio']:.3f} |")
    write_report(args.out or "versions", report, lines)


#: --fits' rows by default: bench_robust's one-input valleys and waves, a 2-D and a held-out row
FIT_ROWS = (
    "cos 3x, T=100", "sin 6x, T=30", "t³ − t, t = 1.5x, T=100", "exp(−4x²), T=400", "tanh 2x + x/3, T=30",
    "sin 2x₁·cos 1.5x₂, T=400", "Friedman 3", "teacher SigmoidMLP(3), T=200",
)  # fmt: skip


def fits(args) -> None:
    """The default fit per row and seed, this checkout against ``args.against``, interleaved."""
    import bench_robust
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    rows = [
        p for p in bench_robust.problems()
        if any(name in p.name for name in args.only) or (not args.only and p.name in FIT_ROWS)
    ]  # fmt: skip
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        packages = {args.against: load_revision(args.against, Path(tmp)), "this checkout": torch_sigmoid_mlp}
        names = list(packages)
        for p in rows:
            seconds = {name: [] for name in names}
            same = 0
            for seed in range(args.seeds):
                X, y, _, _ = p.make(seed)
                epochs = {}
                for name in names[seed % 2 :] + names[: seed % 2]:
                    kwargs = {"seed": seed, "device": "cpu", "tol": p.tol, **p.options}
                    if args.solver is not None:
                        kwargs["solver"] = args.solver
                    if p.hidden is not None:
                        kwargs["hidden"] = p.hidden
                    model = packages[name].SigmoidMLPRegressor(**kwargs)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t0 = time.perf_counter()
                        model.fit(X, y)
                        seconds[name].append(time.perf_counter() - t0)
                    result = model.result_
                    epochs[name] = [start.epochs for start in (result.restarts or [result])]
                same += epochs[names[0]] == epochs[names[1]]
            medians = {name: statistics.median(s) for name, s in seconds.items()}
            row = {"problem": p.name, "median_s": medians, "total_s": {n: sum(s) for n, s in seconds.items()}}
            row["ratio"] = medians["this checkout"] / medians[args.against]
            row["same_epochs"] = f"{same} of {args.seeds}"
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    totals = {name: sum(row["total_s"][name] for row in report["rows"]) for name in names}
    lines = [
        f"The default fit (`SigmoidMLPRegressor`{f', solver={args.solver!r}' if args.solver else ''}, one "
        f"thread), this checkout against {args.against}: median "
        f"wall time over {args.seeds} seeds, the two alternating fit by fit; the fits whose epochs per "
        "start are the same in both.",
        "",
        f"| problem | {args.against} | this checkout | ratio | same epochs |",
        "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        m = row["median_s"]
        lines.append(
            f"| {row['problem']} | {m[args.against] * 1e3:.0f} ms | {m['this checkout'] * 1e3:.0f} ms | "
            f"{row['ratio']:.2f} | {row['same_epochs']} |"
        )
    ratio = totals["this checkout"] / totals[args.against]
    lines.append(
        f"| **all fits** | **{totals[args.against]:.1f} s** | **{totals['this checkout']:.1f} s** | "
        f"**{ratio:.2f}** | |"
    )
    write_report(args.out or "versions_fits", report, lines)


if __name__ == "__main__":
    main()
