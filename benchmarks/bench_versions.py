"""The tape-free steepest-descent epoch through ``train``, this checkout against an earlier revision.

``git archive REV torch_sigmoid_mlp`` is unpacked into a temporary folder and imported under another
name beside this checkout's package, so both run in one process on the same data: the contenders
alternate call by call (in a rotating order) and the medians of many calls are compared, which
keeps the machine's load drifting between runs out of the ratio. Timed is what ``bench_step.py``'s
(c) times: ``train(model, x, d, lr=η, max_epochs=k, tol=1e-30)`` divided by its ``k`` epochs,
float32, one thread.

    python benchmarks/bench_versions.py --against 9c26736
    python benchmarks/bench_versions.py --against 9c26736 --sizes 2x100 32x2000 --rounds 41
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", required=True, help="the git revision to compare with")
    p.add_argument("--sizes", nargs="+", default=["2x100", "32x2000"], help="n x T")
    p.add_argument("--rounds", type=int, default=31)
    p.add_argument("--call-ms", type=float, default=100.0, help="about how long one timed call runs")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
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
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "versions.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "versions.md").write_text(
        f"`{report['command']}`, {report['date']}, {machine.summary(report['machine'])}\n\n{text}"
    )
    print(text)


if __name__ == "__main__":
    main()
