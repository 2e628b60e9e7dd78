"""Time the command line's start: ``torch-sigmoid-mlp --help`` and ``predict`` against ``import torch``.

Each command runs as a fresh process, the contenders interleaved round after round; reported are
the best and the median wall time of each, and the best's excess over ``python -c "import torch"``,
the floor a command that imports torch cannot go below. The issue's bound: the command line starts
within 0.25 s of importing torch (it did not import scikit-learn and scipy on every call, about a
second). ``predict`` reads a model fitted here once and a CSV file of 100 points.

    python benchmarks/bench_startup.py            # 15 rounds
    python benchmarks/bench_startup.py --quick    # 3 rounds
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def contenders(directory: Path) -> dict[str, list[str]]:
    """The commands to time, by name; the model and CSV file ``predict`` reads are made here."""
    from torch_sigmoid_mlp import SigmoidMLPRegressor

    X = np.linspace(0.0, 1.0, 100).reshape(-1, 1)
    model, data = directory / "model.pt", directory / "data.csv"
    SigmoidMLPRegressor(hidden=(4,), max_epochs=5, device="cpu").fit(X, X[:, 0] ** 2).save(model)
    data.write_text("x\n" + "\n".join(f"{v:.6f}" for v in X[:, 0]) + "\n")
    # what the installed torch-sigmoid-mlp script runs, whichever copy of it is on PATH
    command = [sys.executable, "-c", "import sys; from torch_sigmoid_mlp_entry import main; sys.exit(main())"]
    return {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "torch-sigmoid-mlp --help": [*command, "--help"],
        "torch-sigmoid-mlp predict MODEL CSV": [*command, "predict", str(model), str(data)],
    }


def run_once(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - began


def markdown(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| command | best | median | best − import torch |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| `{row['command']}` | {row['best_s']:.3f} s | {row['median_s']:.3f} s | "
            f"{row['excess_s']:+.3f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15)")
    parser.add_argument("--out", default="startup", help="results/<out>.{json,md}")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        commands = contenders(Path(tmp))
        for argv_ in commands.values():  # warm the file cache
            run_once(argv_)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, argv_ in commands.items():
                times[name].append(run_once(argv_))
    floor = min(times['python -c "import torch"'])
    rows = [
        {
            "command": name,
            "best_s": min(ts),
            "median_s": statistics.median(ts),
            "excess_s": min(ts) - floor,
            "times_s": ts,
        }
        for name, ts in times.items()
    ]
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "times_s"}), flush=True)
    command = sys.argv[1:] if argv is None else argv
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"## bench_startup ({now})\n\nMachine: {machine.summary()}. "
        f"Wall time of a fresh process, best and median of {rounds} interleaved rounds. "
        f"Command: `{' '.join(['python', f'benchmarks/{Path(__file__).name}', *command])}` "
        f"({time.perf_counter() - t_start:.0f} s)."
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"machine": machine.summary(), "date": now, "rounds": rounds, "rows": rows}, indent=1)
        + "\n"
    )
    text = markdown(rows, header)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
