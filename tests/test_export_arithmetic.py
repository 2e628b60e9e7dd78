"""float32 and fixed-point C exports: the compiled files equal their Python models bit for bit, and the
bound B of ``check_export`` holds over the fitted box, sampled densely."""

import copy
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLP, SigmoidMLPRegressor, check_export, export_c
from torch_sigmoid_mlp.cli import commands
from torch_sigmoid_mlp.estimator.export import c_source
from torch_sigmoid_mlp.estimator.fixed_point import WORDS, sigma_table
from torch_sigmoid_mlp.estimator.floating import SIGMA_FLOAT32_ERROR, _sigma_float32
from torch_sigmoid_mlp.estimator.sigmoid_approx import sigma

CC = shutil.which("cc")
ENTRY_POINT = shutil.which("torch-sigmoid-mlp")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on this machine")
LOW = ("float32", "int32", "int16")

# Reads n numbers a line from stdin, calls the exported function, prints its m outputs exactly.
DRIVER = r"""
#include <stdio.h>
#include <stdint.h>

typedef TYPE word;
void NAME(const word *x, word *y);

int main(void)
{
    word x[N_IN], y[N_OUT];
    int i;
    for (;;) {
        for (i = 0; i < N_IN; ++i) {
            READ
        }
        NAME(x, y);
        for (i = 0; i < N_OUT; ++i) {
            WRITE
            putchar(i + 1 < N_OUT ? ' ' : '\n');
        }
    }
}
"""
READ = {
    "float": 'if (scanf("%f", &x[i]) != 1) return 0;',
    "int": 'long long v; if (scanf("%lld", &v) != 1) return 0; x[i] = (word)v;',
}
WRITE = {"float": 'printf("%.9g", (double)y[i]);', "int": 'printf("%lld", (long long)y[i]);'}
C_FLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def compile_export(c_file, arithmetic, n, m, tmp_path, name="tsm_predict"):
    kind = "float" if arithmetic == "float32" else "int"
    ctype = "float" if kind == "float" else WORDS[arithmetic][2]
    driver = DRIVER.replace("TYPE", ctype).replace("NAME", name).replace("N_IN", str(n))
    driver = driver.replace("N_OUT", str(m)).replace("READ", READ[kind]).replace("WRITE", WRITE[kind])
    (tmp_path / "driver.c").write_text(driver)
    exe = tmp_path / f"run_{arithmetic}"
    built = subprocess.run(
        [CC, *C_FLAGS, str(c_file), str(tmp_path / "driver.c"), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"the {arithmetic} C did not compile cleanly:\n{built.stderr}"
    return exe


def run_exe(exe, rows: np.ndarray, kind: str) -> np.ndarray:
    if kind == "float":
        text = "\n".join(" ".join(format(v, ".9g") for v in row) for row in rows.tolist())
    else:
        text = "\n".join(" ".join(map(str, row)) for row in rows.tolist())
    ran = subprocess.run([str(exe)], input=text + "\n", capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    dtype = np.float32 if kind == "float" else np.int64
    return np.array([line.split() for line in ran.stdout.splitlines()], dtype=np.float64).astype(dtype)


# --- the fits -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def readme():
    """README's "Fitting a function": 3 + 2 tanh(x) on 50 points of [0, 2], tol = 0.01."""
    X = np.linspace(0.0, 2.0, 50).reshape(-1, 1)
    y = 3 + 2 * np.tanh(X[:, 0])
    return SigmoidMLPRegressor(tol=0.01, device="cpu", seed=0).fit(X, y), X, y


@pytest.fixture(scope="module")
def teacher():
    """A 3-3-3-1 network fitted (LM, 60 epochs) to a 3-3-3-1 teacher's outputs on [−2, 3]³."""
    g = torch.Generator().manual_seed(3)
    net = SigmoidMLP(3, dtype=torch.float64, generator=g)
    with torch.no_grad():
        for W in net.weights:
            W.mul_(3.0)
    X = np.random.default_rng(3).uniform(-2.0, 3.0, (300, 3))
    with torch.no_grad():
        y = net(torch.from_numpy((X - 0.5) / 2.5)).numpy()[:, 0] * 40.0 - 7.0
    reg = SigmoidMLPRegressor(hidden=(3, 3), solver="lm", max_epochs=60, restarts=1, device="cpu", seed=0)
    reg.fit(X, y)
    reg.tol = float(np.abs(reg.predict(X) - y).max()) * 1.5  # a tol the fit meets, with room
    return reg, X, y


@pytest.fixture(scope="module")
def wide():
    """3 inputs (one constant), 2 outputs of very different scales and offsets; no tol."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(-3.0, 5.0, 40), np.full(40, 7.0), rng.uniform(1e3, 1e3 + 2, 40)])
    Y = np.column_stack([np.sin(X[:, 0]) * np.cos(X[:, 2] - 1e3), 1e4 + 50.0 * X[:, 0]])
    reg = SigmoidMLPRegressor(hidden=(6, 5), solver="lm", max_epochs=15, device="cpu", seed=0)
    return reg.fit(X, Y), X, Y


def box(reg):
    lo = reg.x_scaler_.data_min_.double().numpy().reshape(-1)
    hi = reg.x_scaler_.data_max_.double().numpy().reshape(-1)
    return lo, hi


def span(reg):
    return (reg.y_scaler_.data_max_ - reg.y_scaler_.data_min_).double().numpy().reshape(-1)


def box_points(reg, count, seed, *, outside=0.0):
    """``count`` points: the corners, points with some columns at their ends, and uniform ones."""
    lo, hi = box(reg)
    rng = np.random.default_rng(seed)
    width = hi - lo
    X = rng.uniform(lo - outside * width, hi + outside * width, (count, len(lo)))
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(len(lo), -1).T
    edge = rng.random(X.shape) < 0.15
    X[edge] = np.where(
        rng.random(edge.sum()) < 0.5, np.broadcast_to(lo, X.shape)[edge], np.broadcast_to(hi, X.shape)[edge]
    )
    return np.vstack([corners, X])


# --- bit for bit --------------------------------------------------------------------------------


@needs_cc
@pytest.mark.parametrize("arithmetic", LOW)
@pytest.mark.parametrize("fit", ["wide", "readme"])
def test_compiled_c_equals_the_python_model_bit_for_bit(fit, arithmetic, request, tmp_path):
    reg, _, _ = request.getfixturevalue(fit)
    n, m = reg.n_features_in_, reg.model_.out_features
    path = export_c(reg, tmp_path / "model.c", arithmetic=arithmetic)
    check = check_export(reg, arithmetic)
    exe = compile_export(path, arithmetic, n, m, tmp_path)
    # 10⁵ inputs inside the box and at its edges, and some outside (clamped by the integer files)
    count = 100_000 if fit == "readme" else 20_000  # ≥ 10⁵ for each word; the wide fit for its shapes
    X = np.vstack([box_points(reg, count - 10_000, seed=1), box_points(reg, 10_000, seed=2, outside=0.5)])
    if arithmetic == "float32":
        X32 = X.astype(np.float32)
        got = run_exe(exe, X32, "float")
        want = check.predict(X32.astype(np.float64)).reshape(len(X), -1).astype(np.float32)
    else:
        x_q = check.plan.quantize(X)
        top = 2 ** (WORDS[arithmetic][0] - 1)
        x_q = np.vstack([x_q, np.random.default_rng(4).integers(-top, top, (5000, n))])  # any word
        got = run_exe(exe, x_q, "int")
        want = check.plan.predict_words(x_q)
        y = check.predict(X).reshape(len(X), -1)
        np.testing.assert_array_equal(
            y, np.ldexp(want[: len(X)].astype(float), [-s for s in check.plan.outputs.shift])
        )
    assert got.shape == want.shape
    mismatches = int((got != want).any(axis=1).sum())
    assert mismatches == 0, f"{arithmetic}: {mismatches} of {len(got)} inputs differ between C and the model"


@needs_cc
def test_float32_file_is_within_its_target_of_predict(wide, tmp_path):
    # 2e-6 of each output's range, plus float32's rounding of |ŷ| (outputs near 1e4)
    reg, _, _ = wide
    path = export_c(reg, tmp_path / "model.c", arithmetic="float32")
    exe = compile_export(path, "float32", 3, 2, tmp_path)
    X_test = box_points(reg, 20_000, seed=5).astype(np.float32)
    got = run_exe(exe, X_test, "float").astype(np.float64)
    want = reg.predict(X_test.astype(np.float64))
    allowed = 2e-6 * span(reg) + 4 * 2.0**-24 * np.abs(want)
    assert (np.abs(got - want) <= allowed).all(), np.abs(got - want).max(axis=0) / span(reg)


# --- the bound ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arithmetic", LOW)
@pytest.mark.parametrize("fit", ["readme", "teacher", "wide"])
def test_dense_sampling_never_exceeds_the_bound(fit, arithmetic, request):
    reg, _, _ = request.getfixturevalue(fit)
    check = check_export(reg, arithmetic)
    X = box_points(reg, 1_000_000, seed=7)
    err = np.abs(check.predict(X) - reg.predict(X)).reshape(len(X), -1).max(axis=0)
    assert (err <= check.bound).all(), f"{arithmetic}: sampled error {err} above B = {check.bound}"
    assert (err > 0).all() or arithmetic == "float32", "the exported arithmetic should not be exact"


@pytest.mark.parametrize("fit", ["readme", "teacher"])
def test_int32_bound_is_below_1e_4_of_the_output_range(fit, request):
    reg, _, _ = request.getfixturevalue(fit)
    assert (check_export(reg, "int32").bound <= 1e-4 * span(reg)).all()


@pytest.mark.parametrize("fit", ["readme", "teacher"])
def test_int16_bound_is_below_1e_2_and_proves_tol_where_the_fit_leaves_room(fit, request):
    reg, X, y = request.getfixturevalue(fit)
    check = check_export(reg, "int16", X, y)
    assert (check.bound <= 1e-2 * span(reg)).all()
    assert check.proven == bool(np.all(check.fit_error + check.bound < reg.tol))
    # a looser tol leaves the fit room for B: proven, and true at every point in int16
    loose = copy.deepcopy(reg)
    loose.tol = float(check.fit_error.max() + check.bound.max()) * 1.01
    proven = check_export(loose, "int16", X, y)
    assert proven.proven and proven.holds
    assert (np.abs(proven.predict(X) - y) < loose.tol).all()
    assert proven.tol_needed == pytest.approx(loose.tol - proven.bound.max())


def test_fit_error_bounds_the_float_fit(readme, teacher):
    for reg, X, y in (readme, teacher):
        fit_error = check_export(reg, "int32").fit_error
        assert (np.abs(reg.predict(X) - y).max() <= fit_error).all()


@pytest.mark.parametrize("arithmetic", ["int16", "int32"])
def test_no_sum_can_overflow_its_accumulator(wide, arithmetic):
    # every layer's |sum| ≤ Σ_j |W_q| max|y_q| fits the accumulator, and sums of random words
    # computed with Python's unbounded integers reach neither that bound nor past int64
    reg, _, _ = wide
    plan = check_export(reg, arithmetic).plan
    bits, acc_bits = WORDS[arithmetic][:2]
    top = 2 ** (bits - 1)
    rng = np.random.default_rng(8)
    for l, layer in enumerate(plan.layers):
        assert layer.acc_max < 2 ** (acc_bits - 1)
        assert np.abs(layer.W_q).max() < top
        if l == 0:  # x' · 2^F_0, as far as the input stage can reach
            reach = np.array(plan.y0_max)
            y_q = rng.integers(-reach, reach + 1, (2000, len(reach)))
            y_q[:8] = np.array(np.meshgrid(*zip(-reach, reach))).reshape(len(reach), -1).T  # the corners
        else:
            y_q = rng.integers(1, top, (2000, layer.W_q.shape[1]))
        exact = y_q.astype(object) @ layer.W_q.T.astype(object)
        assert max(abs(v) for v in exact.ravel()) <= layer.acc_max
        np.testing.assert_array_equal((y_q @ layer.W_q.T).astype(object), exact)


# --- σ without libm -----------------------------------------------------------------------------


def test_sigma_tables_are_within_their_stated_error():
    rng = np.random.default_rng(0)
    for word in WORDS:
        table = sigma_table(word)
        u = rng.integers(-table.U, table.U + 1, 2_000_000)
        err = np.abs(table(u) / 2.0**table.F_y - sigma(u / 2.0**table.F_v)).max()
        assert err <= table.error < 3 * 2.0**-table.F_y + 2e-8, (word, err, table.error)
    # float32: random floats, and every float32 in ±[1, 2)
    v = rng.uniform(-40, 40, 2_000_000).astype(np.float32)
    every = np.arange(0x3F800000, 0x40000000, dtype=np.uint32).view(np.float32)  # [1, 2)
    every = np.concatenate([v, every, -every])
    err = np.abs(_sigma_float32(every).astype(np.float64) - sigma(every.astype(np.float64))).max()
    assert err <= SIGMA_FLOAT32_ERROR < 5e-7


# --- what the files are made of -----------------------------------------------------------------


@pytest.mark.parametrize("arithmetic", ["int16", "int32"])
def test_integer_file_is_integers_only(readme, arithmetic, tmp_path):
    reg, _, _ = readme
    source = export_c(reg, tmp_path / "m.c", arithmetic=arithmetic, name="sensor").read_text()
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    assert re.findall(r"#include\s*<[^>]+>", code) == ["#include <stdint.h>"]
    assert not re.search(r"\b(float|double)\b|\d\.\d|\bexp\b", code)
    assert f"typedef {WORDS[arithmetic][2]} sensor_WORD;" in code
    assert (
        "static const int sensor_X_SHIFT[1] = {" in code and "static const int sensor_Y_SHIFT[1] = {" in code
    )
    assert "void sensor(const sensor_WORD *x, sensor_WORD *y)" in code
    assert "clamped" in source and "B = " in source


def test_float32_file_needs_no_libm(readme, tmp_path):
    reg, _, _ = readme
    source = export_c(reg, tmp_path / "m.c", arithmetic="float32").read_text()
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    assert "#include" not in code and not re.search(r"\b(double|exp|expf)\b", code)
    assert "void tsm_predict(const float *x, float *y)" in code
    assert "-ffp-contract=off" in source


def test_float64_stays_todays_file(readme, tmp_path):
    reg, _, _ = readme
    assert export_c(reg, tmp_path / "a.c").read_text() == c_source(reg)
    assert export_c(reg, tmp_path / "b.c", arithmetic="float64").read_text() == c_source(reg)


def test_auto_takes_the_smallest_word_that_keeps_tol(readme, tmp_path):
    reg, X, y = readme
    check = check_export(reg, "auto", X, y)
    first = next(a for a in ("int16", "int32", "float32", "float64") if check_export(reg, a, X, y).holds)
    assert check.arithmetic == first and check.holds
    assert check.reason.startswith("int16") and f"{first}: max |error| on the points" in check.reason
    text = export_c(reg, tmp_path / "auto.c", arithmetic="auto", X=X, y=y).read_text()
    assert "chosen by auto" in text and f"network 1-8-8-1 in {first}" in text


# --- what is refused ----------------------------------------------------------------------------


def test_a_column_that_does_not_fit_the_word_is_refused(tmp_path):
    X = np.column_stack([np.linspace(0, 1, 30), 1000 + np.linspace(0, 1e-3, 30)])
    reg = SigmoidMLPRegressor(hidden=(3,), max_epochs=3, device="cpu").fit(X, X[:, 0])
    with pytest.raises(
        ValueError,
        match=r"input column 1: its range \[1000, 1000\.001\] is 0 step\(s\) of int16.*cannot resolve it",
    ):
        export_c(reg, tmp_path / "m.c", arithmetic="int16")
    assert list(tmp_path.iterdir()) == []
    assert check_export(reg, "int32").bound.shape == (1,)  # 32 bits resolve it


def test_an_output_that_does_not_fit_the_word_is_refused(tmp_path):
    X = np.linspace(0, 1, 30).reshape(-1, 1)
    reg = SigmoidMLPRegressor(hidden=(3,), max_epochs=3, device="cpu").fit(X, 5e4 + 1e-3 * X[:, 0])
    with pytest.raises(ValueError, match=r"output 0: its range .* int16 cannot resolve it"):
        export_c(reg, tmp_path / "m.c", arithmetic="int16")
    assert list(tmp_path.iterdir()) == []


def test_impossible_requests_are_refused(readme, tmp_path):
    reg, X, _ = readme
    strict = copy.deepcopy(reg)
    strict.tol = 1e-6
    with pytest.raises(ValueError, match=r"no arithmetic keeps tol: int16: .*; float64: "):
        export_c(strict, tmp_path / "m.c", arithmetic="auto")
    strict.tol = None
    with pytest.raises(ValueError, match="this model has no tol"):
        export_c(strict, tmp_path / "m.c", arithmetic="auto")
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        export_c(reg, tmp_path / "m.c", arithmetic="int8")
    with pytest.raises(ValueError, match="X and y go together"):
        check_export(reg, "int16", X=X)
    with pytest.raises(ValueError, match=r"X must have shape \(T, 1\)"):
        check_export(reg, "int16", X=np.ones((3, 2)), y=np.ones(3))
    assert list(tmp_path.iterdir()) == []


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(readme, tmp_path_factory):
    reg, X, y = readme
    where = tmp_path_factory.mktemp("saved")
    reg.save(where / "tanh.pt")
    (where / "tanh.csv").write_text(
        "x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in zip(X[:, 0].tolist(), y.tolist()))
    )
    return where


def run_cli(args, where, monkeypatch, capsys):
    monkeypatch.chdir(where)
    status = commands.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("arithmetic", ["int16", "int32", "float32", "auto"])
def test_cli_export_arithmetic_and_its_exit_status(saved, readme, arithmetic, tmp_path, monkeypatch, capsys):
    _, X, y = readme
    want = check_export(SigmoidMLPRegressor.load(saved / "tanh.pt"), arithmetic, X, y)
    args = ["export", saved / "tanh.pt", "out.c", "--arithmetic", arithmetic, "--check", saved / "tanh.csv"]
    status, out, err = run_cli(args, tmp_path, monkeypatch, capsys)
    assert status == (0 if want.holds else 1), err
    assert err == ""
    assert f"{want.arithmetic}: B = " in out and "max |error| on the points" in out and "tol 0.01" in out
    assert (tmp_path / "out.c").is_file()


def test_cli_entry_point_exits_1_where_tol_does_not_hold(saved, tmp_path):
    # the README's fit meets its tol = 0.01 (max |error| 9.5e-3, int16's B 1.8e-3): asked for half
    # of it, the int16 export misses
    assert ENTRY_POINT is not None, "torch-sigmoid-mlp is not on PATH: pip install -e . first"
    args = ["export", saved / "tanh.pt", "out.c", "--arithmetic", "int16", "--check", saved / "tanh.csv"]
    done = subprocess.run(
        [ENTRY_POINT, *map(str, args), "--tol", "0.005"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert ">= tol 0.005" in done.stdout and "not proven" in done.stdout


def test_cli_export_without_tol_exits_0(tmp_path, monkeypatch, capsys):
    X = np.linspace(0, 1, 30).reshape(-1, 1)
    SigmoidMLPRegressor(hidden=(3,), max_epochs=5, device="cpu").fit(X, X[:, 0] ** 2).save(tmp_path / "m.pt")
    status, out, err = run_cli(
        ["export", "m.pt", "out.c", "--arithmetic", "int16"], tmp_path, monkeypatch, capsys
    )
    assert status == 0, err
    assert "int16: B = " in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["out.onnx", "--arithmetic", "int16"], "--arithmetic is for a .c file"),
        (["out.onnx", "--check", "tanh.csv"], "--check is for a .c file"),
        (["out.c", "--target", "y"], "--target names --check's target column"),
        (["out.c", "--arithmetic", "int8"], "invalid choice"),
        (["out.c", "--check", "absent.csv"], "absent.csv"),
        (["out.c", "--check", "inputs.csv"], "--check needs the target"),
    ],
    ids=["onnx arithmetic", "onnx check", "target alone", "int8", "no csv", "no target"],
)
def test_cli_export_arithmetic_bad_input(saved, tmp_path, args, message, monkeypatch, capsys):
    shutil.copy(saved / "tanh.csv", tmp_path / "tanh.csv")
    (tmp_path / "inputs.csv").write_text("x\n0.5\n1.0\n")
    status, _, err = run_cli(["export", saved / "tanh.pt", *args], tmp_path, monkeypatch, capsys)
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs.csv", "tanh.csv"], "bad input wrote a file"
