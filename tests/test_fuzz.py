"""Fuzzing the installed command line: whatever the CSV and the options, no traceback, nothing left behind.

Hypothesis draws a CSV file (names, cells that are numbers, huge numbers, text, NaN, blanks, rows of
the wrong length) and a command line (``fit`` with options drawn from valid and invalid values,
or ``predict`` with a model fitted once). Each example runs the entry point in a subprocess, in a
directory of its own, and must exit 0, 1, 2 or 130 with no traceback on stderr; a run that fails
(2) must leave the directory as it found it. Each example pays for importing torch, so there are
few of them.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ENTRY_POINT = shutil.which("torch-sigmoid-mlp")
STATUSES = {0, 1, 2, 130}

NAMES = st.sampled_from(["x", "y", "a b", "x", "", "1", "é", "target"])
CELLS = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "-1e308", "5e-324", "", " ", "abc", "nan", "1,5", '"2"', "0x10"]),
)


@st.composite
def csv_files(draw) -> str:
    names = draw(st.lists(NAMES, min_size=1, max_size=4))
    width = len(names)
    rows = draw(
        st.lists(
            st.lists(CELLS, min_size=max(width - 1, 0), max_size=width + 1 if draw(st.booleans()) else width),
            max_size=8,
        )
    )
    lines = [",".join(names)] + [",".join(row) for row in rows]
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


def flat(options) -> list[str]:
    return [word for pair in options for word in pair]


def option(name: str, values: list[str]):
    return st.one_of(st.just([]), st.sampled_from(values).map(lambda v: [name, v]))


FIT_OPTIONS = st.tuples(
    option("--epochs", ["0", "1", "5", "-1", "x"]),
    option("--hidden", ["1", "3", "0"]),
    option("--lr", ["0.5", "1e300", "0", "-2", "inf", "nan"]),
    option("--batch-size", ["1", "2", "0"]),
    option("--tol", ["0.1", "1e-9", "0"]),
    option("--seed", ["0", "7", "99999999999999999999999", "-1"]),
    option("--target", ["x", "y", "zz"]),
    option("--save", ["out.pt", "data.csv", "sub/", "nodir/m.pt", "sub", "fifo", "/dev/null"]),
    option("--logdir", ["runs", "data.csv", "data.csv/runs"]),
    option("--checkpoint-every", ["1", "0"]),
    option("--resume", ["model.pt", "data.csv", "absent.pt"]),
)
PREDICT_OPTIONS = st.tuples(
    option("-o", ["out.csv", "data.csv", "model.pt", "sub/", "fifo"]),
    option("--target", ["x", "y", "zz"]),
)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A model of ``y`` from ``x``, fitted once for every ``predict`` and ``--resume`` example."""
    here = tmp_path_factory.mktemp("model")
    (here / "d.csv").write_text("x,y\n0,1\n1,2\n2,1.5\n")
    run = subprocess.run(
        [ENTRY_POINT, "fit", "d.csv", "--epochs", "3", "--quiet", "--save", "model.pt"],
        cwd=here, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return here / "model.pt"


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    content=csv_files(),
    command=st.one_of(
        FIT_OPTIONS.map(lambda opts: ["fit", "data.csv", *flat(opts)]),
        PREDICT_OPTIONS.map(lambda opts: ["predict", "model.pt", "data.csv", *flat(opts)]),
    ),
)
def test_any_csv_and_command_line_ends_cleanly(model, content, command):
    assert ENTRY_POINT is not None, "torch-sigmoid-mlp is not on PATH: pip install -e . first"
    with tempfile.TemporaryDirectory() as here:
        here = Path(here)
        (here / "data.csv").write_text(content, encoding="utf-8")
        shutil.copy(model, here / "model.pt")
        (here / "sub").mkdir()
        os.mkfifo(here / "fifo")
        before = {p.name: p.stat().st_mtime_ns for p in here.iterdir()}
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
        run = subprocess.run(
            [ENTRY_POINT, *command, "--quiet"] if command[0] == "fit" else [ENTRY_POINT, *command],
            cwd=here, capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        shown = f"{command}\n--- data.csv ---\n{content}\n--- stderr ---\n{run.stderr}"
        assert run.returncode in STATUSES, shown
        assert "Traceback" not in run.stderr, shown
        if run.returncode == 2:
            after = {p.name: p.stat().st_mtime_ns for p in here.iterdir()}
            assert after == before, f"a failed run left or changed files: {sorted(after)}\n{shown}"
            assert run.stderr.count("\n") == 1, shown
