"""Mutated inputs through the command line: byte flips, truncations and crafted fields never make an
internal error, and a damaged model never predicts something else.

From one CSV file and the model ``fit`` saved from it, a fixed seed draws several hundred mutations:

- model files with bytes flipped or cut short, read by ``predict`` (and a few by ``export``): each
  gives exit 0 with the intact model's predictions, to the bit, or exit 2 with one line;
- model files whose fields are crafted (a wrong type, size, shape, range, a forged format) and whose
  checksum is recomputed: each loads only where every field is sane, and otherwise gives exit 2 with
  one line naming the field;
- CSV files with bytes flipped, cut short, or cells replaced, read by ``predict`` and ``fit``: exit 0
  with the model's predictions of the values the file holds (exit 1 for a fit that misses its
  ``--tol``), or exit 2 with one line.

No case may exit 70 (an internal error) or print a traceback. The cases run in-process through
:func:`torch_sigmoid_mlp.cli.main`; a few run as real processes, which cost ~1.6 s each to start.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.cli import commands as cli
from torch_sigmoid_mlp.estimator import model_file

SEED = 20261207


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: its status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def assert_clean(status: int, err: str, case: str, allowed=(0, 2)) -> None:
    """The status is one of ``allowed``; a refusal is one line; nothing is a traceback or a bug."""
    assert status in allowed, f"{case}: exit {status}\n{err}"
    assert "Traceback" not in err and "internal error" not in err, f"{case}: {err}"
    if status == 2:
        assert err.count("\n") == 1 and err.startswith("torch-sigmoid-mlp: error: "), f"{case}: {err!r}"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A data file, the model fitted to it, and the model's predictions of it."""
    here = tmp_path_factory.mktemp("fuzz")
    x = np.linspace(-1.0, 1.0, 16).tolist()
    rows = "".join(f"{a!r},{b * b!r},{a * b * b + b!r}\n" for a, b in zip(x, x[::-1]))
    (here / "d.csv").write_text("a,b,y\n" + rows)
    status, _, err = run(["fit", here / "d.csv", "--solver", "lm", "--hidden", "3", "--epochs", "5",
                          "--quiet", "--save", here / "m.pt"])  # fmt: skip
    assert status == 0, err
    status, reference, err = run(["predict", here / "m.pt", here / "d.csv"])
    assert status == 0, err
    return here, reference


# -- model files: bytes flipped or cut -------------------------------------------------------------------


def _byte_mutations(data: bytes, rng: random.Random, flips: int, cuts: int):
    for i in range(flips):
        mutated = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            mutated[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        yield f"flip {i}", bytes(mutated)
    for i in range(cuts):
        yield f"cut {i}", data[: rng.randrange(len(data))]


def test_a_flipped_or_truncated_model_predicts_as_the_intact_one_or_is_refused(work):
    here, reference = work
    data = (here / "m.pt").read_bytes()
    rng = random.Random(SEED)
    refused = 0
    for case, mutated in _byte_mutations(data, rng, flips=120, cuts=40):
        path = here / "mutated.pt"
        path.write_bytes(mutated)
        status, out, err = run(["predict", path, here / "d.csv"])
        assert_clean(status, err, case)
        if status == 0:
            assert out == reference, f"{case}: a changed model file predicted something else"
        refused += status == 2
    assert refused >= 120, refused  # nearly every change is seen: the checksum covers every byte that counts


# -- model files: crafted fields with a valid checksum ----------------------------------------------------


def _set(path: tuple, value):
    def mutate(state: dict) -> None:
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _older(version: int, *, keep_checksum: bool):
    def mutate(state: dict) -> None:
        state["format"] = f"torch-sigmoid-mlp/regressor/{version}"
        if not keep_checksum:
            del state["sha256"]  # what /1 and /2 wrote: no checksum
        del state["feature_names"], state["data_fingerprint"]
        state["result"].pop("history_length")
        if version == 1:
            del state["params"]["warm_start"], state["generator"]

    return mutate


def _negate_weight(state: dict) -> None:
    state["weights"][0][0, 0] *= -1


#: (what, mutation, whether the file is still sane): a sane file loads (and predicts as its weights say).
CRAFTED = [
    ("sizes=[]", _set(("sizes",), []), False),
    ("sizes of another network", _set(("sizes",), [2, 20000, 20000, 1]), False),
    ("sizes not ints", _set(("sizes",), [2.0, 3.0, 1.0]), False),
    ("a size of 0", _set(("sizes",), [2, 0, 1]), False),
    ("a size True", _set(("sizes",), [2, 3, True]), False),
    ("weights missing a matrix", lambda s: s["weights"].pop(), False),
    ("a weight transposed", lambda s: s["weights"].__setitem__(0, s["weights"][0].T.contiguous()), False),
    ("a weight NaN", lambda s: s["weights"][1].__setitem__((0, 0), math.nan), False),
    ("a weight of ints", lambda s: s["weights"].__setitem__(0, s["weights"][0].long()), False),
    ("feature_names a string", _set(("feature_names",), "ab"), False),
    ("feature_names repeated", _set(("feature_names",), ["a", "a"]), False),
    ("feature_names too few", _set(("feature_names",), ["a"]), False),
    ("feature_names not strings", _set(("feature_names",), [1, 2]), False),
    ("history_length huge", _set(("result", "history_length"), [10**10, 0]), False),
    ("history_length negative", _set(("result", "history_length"), [-1, 0]), False),
    ("epochs huge", _set(("result", "epochs"), 10**12), False),
    ("epochs negative", _set(("result", "epochs"), -3), False),
    ("stop reason unknown", _set(("result", "stop_reason"), "gone"), False),
    ("a result's field unknown", _set(("result", "surprise"), 1), False),
    ("solver state of a wrong shape", _set(("result", "solver_state"), {"mu": torch.zeros(7, 7)}), False),
    ("restarts not results", _set(("result", "restarts"), [1, 2]), False),
    ("x_scaler of 3 columns", _set(("x_scaler", "data_min"), torch.zeros(3, dtype=torch.float64)), False),
    ("y_scaler range reversed", _set(("y_scaler", "feature_range"), [0.9, 0.1]), False),
    ("y_scaler range infinite", _set(("y_scaler", "data_max"), torch.tensor([math.inf])), False),
    ("y_1d not a bool", _set(("y_1d",), 3), False),
    ("dtype unknown", _set(("params", "dtype"), "int8"), False),
    ("hidden another network", _set(("params", "hidden"), [10**9]), False),
    ("a parameter unknown", _set(("params", "surprise"), 1), False),
    ("a parameter out of range", _set(("params", "target_range"), [0.0, 2.0]), False),
    ("generator not a state", _set(("generator",), torch.zeros(3, dtype=torch.uint8)), False),
    ("a field unknown", _set(("surprise",), 1), False),
    ("format /2 with a checksum", _older(2, keep_checksum=True), False),
    ("format /2, honestly", _older(2, keep_checksum=False), True),
    ("format /1, honestly", _older(1, keep_checksum=False), True),
    ("a weight negated", _negate_weight, True),
    ("seconds changed", _set(("result", "seconds"), 12.5), True),
    ("no fingerprint", _set(("data_fingerprint",), None), True),
]

#: Values that replace one field at a time in :func:`test_every_field_replaced_by_a_wrong_value`.
WRONG = [
    None,
    -1,
    0,
    10**12,
    1.5,
    math.nan,
    True,
    "x",
    [],
    {},
    [None],
    torch.zeros(0),
    torch.full((3,), math.nan),
]


def _save(state: dict, path) -> None:
    """``state`` written as a model file, its checksum recomputed where its format has one."""
    state = dict(state)
    if state.get("format") == model_file.FORMAT:
        state.pop("sha256", None)
        state["sha256"] = model_file.digest(state)
    torch.save(state, path)


@pytest.mark.parametrize("what, mutate, sane", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_a_crafted_file_loads_only_where_every_field_is_sane(work, what, mutate, sane):
    here, reference = work
    state = torch.load(here / "m.pt", weights_only=True)
    mutate(state)
    _save(state, here / "crafted.pt")
    status, out, err = run(["predict", here / "crafted.pt", here / "d.csv"])
    assert_clean(status, err, what)
    assert (status == 0) == sane, f"{what}: exit {status}: {err}"
    if sane and what != "a weight negated":
        assert out == reference, what
    if not sane:
        with pytest.raises(ValueError):
            SigmoidMLPRegressor.load(here / "crafted.pt")


def _fields(state: dict) -> list[tuple]:
    """Every field and every field of ``result``, ``params`` and the scalers, as key paths."""
    paths = [(key,) for key in state if key != "sha256"]
    for group in ("result", "params", "x_scaler", "y_scaler"):
        paths += [(group, key) for key in state[group]]
    return paths


def test_every_field_replaced_by_a_wrong_value(work):
    here, reference = work
    intact = torch.load(here / "m.pt", weights_only=True)
    cases = 0
    for path in _fields(intact):
        for value in WRONG:
            state = copy.deepcopy(intact)
            _set(path, value)(state)
            _save(state, here / "wrong.pt")
            status, out, err = run(["predict", here / "wrong.pt", here / "d.csv"])
            case = f"{'.'.join(path)} = {value!r}"
            assert_clean(status, err, case)
            if status == 0:
                # a value that is sane for the field (no fingerprint, another number of seconds …)
                # leaves the prediction alone: the weights and scalers are not among those
                assert out == reference, case
            cases += 1
    assert cases >= 200


def test_a_mutated_model_exports_or_is_refused(work):
    here, _ = work
    data = (here / "m.pt").read_bytes()
    rng = random.Random(SEED + 1)
    for case, mutated in _byte_mutations(data, rng, flips=15, cuts=5):
        (here / "export.pt").write_bytes(mutated)
        status, _, err = run(["export", here / "export.pt", here / "out.c"])
        assert_clean(status, err, case)
        (here / "out.c").unlink(missing_ok=True)


# -- CSV files ----------------------------------------------------------------------------------------------

CELLS = [
    "",
    " ",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "-1e308",
    "5e-324",
    "x",
    "1,5",
    '"',
    "0x10",
    "1e-300",
    "-0.0",
]


def _csv_mutations(text: str, rng: random.Random, n: int):
    data = text.encode()
    lines = text.splitlines()
    for i in range(n):
        kind = i % 4
        if kind == 0:
            mutated = bytearray(data)
            mutated[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            yield f"csv flip {i}", bytes(mutated)
        elif kind == 1:
            yield f"csv cut {i}", data[: rng.randrange(len(data))]
        else:
            rows = [line.split(",") for line in lines]
            r, c = rng.randrange(len(rows)), rng.randrange(3)
            if c < len(rows[r]):
                rows[r][c] = rng.choice(CELLS)
            if kind == 3:
                rows[rng.randrange(len(rows))].append("7")
            yield f"csv cell {i}", ("\n".join(",".join(row) for row in rows) + "\n").encode()


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_a_mutated_csv_predicts_what_its_values_say_or_is_refused(work):
    here, _ = work
    est = SigmoidMLPRegressor.load(here / "m.pt")
    rng = random.Random(SEED + 2)
    for case, mutated in _csv_mutations((here / "d.csv").read_text(), rng, 80):
        (here / "p.csv").write_bytes(mutated)
        status, out, err = run(["predict", here / "m.pt", here / "p.csv"])
        assert_clean(status, err, case)
        if status == 0:
            rows = list(csv.reader(io.StringIO(out)))
            header, body = rows[0], rows[1:]
            a, b = header.index("a"), header.index("b")
            X = np.array([[float(row[a]), float(row[b])] for row in body])
            predicted = np.array([float(row[-1]) for row in body])
            np.testing.assert_array_equal(predicted, est.predict(X), err_msg=case)


def test_fitting_a_mutated_csv_fits_or_is_refused(work):
    here, _ = work
    rng = random.Random(SEED + 3)
    for case, mutated in _csv_mutations((here / "d.csv").read_text(), rng, 24):
        (here / "f.csv").write_bytes(mutated)
        status, _, err = run(
            ["fit", here / "f.csv", "--hidden", "2", "--epochs", "2", "--quiet", "--tol", "1e-9"]
        )
        assert_clean(status, err, case, allowed=(0, 1, 2))


# -- a few as real processes ------------------------------------------------------------------------------


def test_mutated_inputs_in_real_processes(work):
    here, reference = work
    state = torch.load(here / "m.pt", weights_only=True)
    state["sizes"] = []
    _save(state, here / "sizes.pt")
    data = bytearray((here / "m.pt").read_bytes())
    data[len(data) // 2] ^= 0x10
    (here / "flipped.pt").write_bytes(bytes(data))
    (here / "huge.csv").write_text("a,b,y\n1e308,0,1\n-1e308,1,2\n0,0.5,3\n")
    for argv in (["predict", "sizes.pt", "d.csv"], ["predict", "flipped.pt", "d.csv"], ["fit", "huge.csv"]):
        done = subprocess.run(
            [sys.executable, "-m", "torch_sigmoid_mlp", *argv], cwd=here, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert_clean(done.returncode, done.stderr, " ".join(argv))
        if done.returncode == 0:
            # another process: the same predictions, to the rounding of its own kernels
            ours, theirs = (
                np.loadtxt(io.StringIO(t), delimiter=",", skiprows=1) for t in (reference, done.stdout)
            )
            np.testing.assert_allclose(theirs, ours, rtol=1e-12, atol=0, err_msg=" ".join(argv))
