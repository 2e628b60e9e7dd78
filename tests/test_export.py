"""Exported models run in their own runtimes (onnxruntime, the C compiler) and predict as ``predict``."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLPRegressor, export_c, export_onnx
from torch_sigmoid_mlp.estimator.export import c_source, check_c_name
from torch_sigmoid_mlp.estimator.outputs import MissingDependencyError

CC = shutil.which("cc")
ENTRY_POINT = shutil.which("torch-sigmoid-mlp")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on this machine")

# A driver that reads test points (n numbers a line) from stdin, calls the exported function and
# prints its m outputs with %.17g, which reads back as the same double.
DRIVER = r"""
#include <stdio.h>

void NAME(const double *x, double *y);

int main(void)
{
    double x[N_IN], y[N_OUT];
    int i;
    for (;;) {
        for (i = 0; i < N_IN; ++i) {
            if (scanf("%lf", &x[i]) != 1) {
                return 0;
            }
        }
        NAME(x, y);
        for (i = 0; i < N_OUT; ++i) {
            printf(i + 1 < N_OUT ? "%.17g " : "%.17g\n", y[i]);
        }
    }
}
"""
C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def fitted(n_outputs, *, dtype=torch.float64, one_d=False, seed=0):
    """A regressor fitted on 3 inputs (one of them constant) with outputs of very different scales.

    Levenberg–Marquardt for a few epochs: weights far from their initial draw, in seconds.
    """
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(-3.0, 5.0, 40), np.full(40, 7.0), rng.uniform(1e3, 1e3 + 2, 40)])
    Y = np.column_stack([np.sin(X[:, 0]) * np.cos(X[:, 2] - 1e3), 1e4 + 50.0 * X[:, 0]])[:, :n_outputs]
    y = Y[:, 0] if one_d else Y
    reg = SigmoidMLPRegressor(hidden=(6, 5), solver="lm", max_epochs=15, device="cpu", dtype=dtype, seed=seed)
    return reg.fit(X, y), X


def points(X, seed=1):
    """The training points, points between them, and points outside their range (extrapolation)."""
    rng = np.random.default_rng(seed)
    lo, hi = X.min(axis=0), X.max(axis=0)
    inside = rng.uniform(lo, hi, (25, X.shape[1]))
    outside = rng.uniform(lo - (hi - lo + 1), hi + (hi - lo + 1), (25, X.shape[1]))
    return np.vstack([X, inside, outside])


def output_span(reg):
    """max − min of each output column of the training data, ``(m,)``: the scale of the errors."""
    span = (reg.y_scaler_.data_max_ - reg.y_scaler_.data_min_).double().reshape(-1).numpy()
    return np.maximum(span, 1e-300)


def assert_predicts_as(got, reg, X, *, rel, what):
    """``got`` equals ``reg.predict(X)`` to ``rel`` of each output column's span (and of its size)."""
    want = reg.predict(X)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, predict gives {want.shape}"
    err = np.abs(got - want).reshape(len(X), -1)
    bound = rel * (output_span(reg) + np.abs(want).reshape(len(X), -1))
    worst = (err / bound).max()
    assert worst <= 1, f"{what}: off by {worst:.3g} times the bound {rel:g} · (span + |ŷ|)"


# --- C ------------------------------------------------------------------------------------------


def compile_and_run(c_file, reg, X, *, name="tsm_predict", tmp_path):
    n, m = reg.n_features_in_, reg.model_.out_features
    driver = tmp_path / "driver.c"
    driver.write_text(DRIVER.replace("NAME", name).replace("N_IN", str(n)).replace("N_OUT", str(m)))
    exe = tmp_path / "predict"
    built = subprocess.run(
        [CC, *C_FLAGS, str(c_file), str(driver), "-o", str(exe), "-lm"], capture_output=True, text=True
    )
    assert built.returncode == 0, f"the exported C did not compile cleanly:\n{built.stderr}"
    stdin = "\n".join(" ".join(format(v, ".17g") for v in row) for row in X) + "\n"
    ran = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    y = np.array([[float(v) for v in line.split()] for line in ran.stdout.splitlines()])
    return y[:, 0] if reg._y_1d else y


@pytest.mark.floats
@needs_cc
@pytest.mark.parametrize(
    "n_outputs, one_d", [(1, True), (1, False), (2, False)], ids=["1-D y", "(T, 1)", "(T, 2)"]
)
def test_c_export_predicts_as_predict(tmp_path, n_outputs, one_d):
    reg, X = fitted(n_outputs, one_d=one_d)
    path = export_c(reg, tmp_path / "model.c")
    X_test = points(X)
    got = compile_and_run(path, reg, X_test, tmp_path=tmp_path)
    # The same double operations as predict, in the same order, but for libm's exp against torch's
    # (each within about an ulp) and the summation order inside the matrix products.
    assert_predicts_as(got, reg, X_test, rel=1e-12, what="C export, float64 model")


@pytest.mark.floats
@needs_cc
def test_c_export_of_a_float32_model(tmp_path):
    # predict runs a float32 model in float32; the C file runs its float32 weights in double.
    # float32 keeps 24 bits (6e-8 relative); the roundings of the layers add up to a few of those.
    reg, X = fitted(2, dtype=torch.float32)
    X_test = points(X)
    got = compile_and_run(export_c(reg, tmp_path / "model.c"), reg, X_test, tmp_path=tmp_path)
    assert_predicts_as(got, reg, X_test, rel=2e-6, what="C export, float32 model")


@needs_cc
def test_c_name_renames_the_function_and_its_constants(tmp_path):
    reg, X = fitted(1, one_d=True)
    path = export_c(reg, tmp_path / "sensor.c", name="sensor_model")
    source = path.read_text()
    assert "void sensor_model(const double *x, double *y)" in source
    assert "tsm_predict" not in source
    got = compile_and_run(path, reg, X, name="sensor_model", tmp_path=tmp_path)
    assert_predicts_as(got, reg, X, rel=1e-12, what="renamed C export")


@needs_cc
def test_c_names_the_input_columns_safely(tmp_path):
    # column names land in a comment: one that would end it, a trigraph, a non-ASCII letter
    reg, X = fitted(1, one_d=True)
    reg.feature_names_in_ = np.array(["flow */ int x;", "p??/", "température"], dtype=object)
    source = export_c(reg, tmp_path / "model.c").read_text()
    assert "x[0..2]: flow * / int x;, p? ?/, temp?rature" in source
    got = compile_and_run(tmp_path / "model.c", reg, X, tmp_path=tmp_path)
    assert_predicts_as(got, reg, X, rel=1e-12, what="C export with odd column names")


@pytest.mark.floats
def test_c_weights_round_trip_through_the_text():
    # %.17g: every constant in the file reads back as the weight it was printed from.
    reg, _ = fitted(2)
    source = c_source(reg)
    for l, W in enumerate(reg.model_.weights):
        block = source.split(f"tsm_predict_W{l}[")[1].split("};")[0].split("= {", 1)[1]
        values = [float(v) for v in block.replace("{", " ").replace("}", " ").replace(",", " ").split()]
        assert values == W.detach().double().flatten().tolist(), f"W^({l}) does not round-trip"


@pytest.mark.parametrize(
    "name, match",
    [
        ("2x", "must be an identifier"),
        ("my-model", "must be an identifier"),
        ("", "must be an identifier"),
        ("model predict", "must be an identifier"),
        ("int", "is a C keyword"),
        ("__model", "reserved"),
        ("_Model", "reserved"),
        ("main", "taken"),
        ("exp", "taken"),
    ],
)
def test_bad_c_names_are_refused(name, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        check_c_name(name)
    reg, _ = fitted(1, one_d=True)
    with pytest.raises(ValueError, match=match):
        export_c(reg, tmp_path / "model.c", name=name)
    assert list(tmp_path.iterdir()) == [], "a refused export wrote something"


def test_good_c_names_pass():
    for name in ("tsm_predict", "_model", "M2", "predict_v2_0"):
        assert check_c_name(name) == name


# --- ONNX ---------------------------------------------------------------------------------------


def run_onnx(path, X, dtype):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("x", "y")
    return session.run(None, {"x": X.astype(dtype)})[0], inp.shape, out.shape


@pytest.mark.floats
@pytest.mark.parametrize(
    "n_outputs, one_d", [(1, True), (1, False), (2, False)], ids=["1-D y", "(T, 1)", "(T, 2)"]
)
def test_onnx_export_predicts_as_predict(tmp_path, n_outputs, one_d):
    pytest.importorskip("onnx")
    reg, X = fitted(n_outputs, one_d=one_d)
    path = export_onnx(reg, tmp_path / "model.onnx")
    X_test = points(X)
    got, in_shape, out_shape = run_onnx(path, X_test, np.float64)
    assert got.dtype == np.float64
    assert in_shape == ["N", 3] and out_shape == (["N"] if one_d else ["N", n_outputs])
    # double arithmetic throughout, as predict's; onnxruntime's kernels sum the products and
    # evaluate the sigmoid in their own order, each within a few ulps.
    assert_predicts_as(got, reg, X_test, rel=1e-12, what="ONNX export, float64 model")
    one, _, _ = run_onnx(path, X_test[:1], np.float64)  # N is free
    assert one.shape == got[:1].shape


@pytest.mark.floats
def test_onnx_export_of_a_float32_model(tmp_path):
    # A float32 model gives a float32 graph, which scales in float32 where predict scales in
    # float64: the inputs near 1e3 lose bits before the subtraction (6e-5 ulp at 1e3, against a
    # span of 2), and the outputs near 1e4 after the addition. 24-bit arithmetic, so bounds of
    # 1e-4 of the input span in x' and of a few float32 ulps of |ŷ|.
    pytest.importorskip("onnx")
    reg, X = fitted(2, dtype=torch.float32)
    path = export_onnx(reg, tmp_path / "model.onnx")
    X_test = points(X)
    got, _, _ = run_onnx(path, X_test, np.float32)
    assert got.dtype == np.float32
    assert_predicts_as(got.astype(np.float64), reg, X_test, rel=1e-4, what="ONNX export, float32 model")
    # and in float64 on request: the float32 weights in double arithmetic
    path64 = export_onnx(reg, tmp_path / "model64.onnx", dtype=torch.float64)
    got64, _, _ = run_onnx(path64, X_test, np.float64)
    assert_predicts_as(got64, reg, X_test, rel=2e-6, what="ONNX export in float64 of a float32 model")


def test_onnx_graph_is_valid_and_plain():
    onnx = pytest.importorskip("onnx")
    import tempfile

    reg, _ = fitted(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load(export_onnx(reg, os.path.join(tmp, "model.onnx")))
    onnx.checker.check_model(model, full_check=True)
    assert {node.op_type for node in model.graph.node} == {"Sub", "Mul", "Add", "MatMul", "Sigmoid"}
    assert [node.op_type for node in model.graph.node].count("Sigmoid") == reg.model_.num_layers


def test_onnx_without_onnx_installed_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    reg, _ = fitted(1, one_d=True)
    with pytest.raises(MissingDependencyError, match="pip install onnx"):
        export_onnx(reg, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_dtype_must_be_float32_or_float64(tmp_path):
    reg, _ = fitted(1, one_d=True)
    with pytest.raises(ValueError, match=r"dtype must be torch\.float32 or torch\.float64"):
        export_onnx(reg, tmp_path / "model.onnx", dtype=torch.float16)


# --- what both refuse, and how they write -------------------------------------------------------


@pytest.mark.parametrize("export", [export_c, export_onnx], ids=["c", "onnx"])
def test_refuses_what_is_not_a_fitted_regressor(export, tmp_path):
    with pytest.raises(ValueError, match="not fitted yet"):
        export(SigmoidMLPRegressor(), tmp_path / "model")
    with pytest.raises(TypeError, match="expected a fitted SigmoidMLPRegressor, got SigmoidMLP"):
        export(fitted(1)[0].model_, tmp_path / "model")
    reg, _ = fitted(1)
    with torch.no_grad():
        reg.model_.weights[1][0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"W\^\(1\) holds NaN"):
        export(reg, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("export, suffix", [(export_c, ".c"), (export_onnx, ".onnx")], ids=["c", "onnx"])
def test_writes_atomically(export, suffix, tmp_path):
    if suffix == ".onnx":
        pytest.importorskip("onnx")
    path = tmp_path / f"model{suffix}"
    path.write_text("the previous model")
    reg, _ = fitted(1, one_d=True)
    unfitted = SigmoidMLPRegressor()
    with pytest.raises(ValueError):
        export(unfitted, path)
    assert path.read_text() == "the previous model", "a failed export touched the file"
    assert export(reg, path) == path
    assert path.read_bytes() != b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "a temporary file was left behind"


# --- the command line ---------------------------------------------------------------------------


def cli(*args, cwd) -> subprocess.CompletedProcess:
    assert ENTRY_POINT is not None, "torch-sigmoid-mlp is not on PATH: pip install -e . first"
    return subprocess.run(
        [ENTRY_POINT, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A fitted regressor, saved as the CLI reads it, and its training inputs."""
    reg, X = fitted(2)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    reg.save(path)
    return path, reg, X


@needs_cc
def test_cli_export_c(saved_model, tmp_path):
    model, reg, X = saved_model
    done = cli("export", model, "out.c", "--name", "fitted_model", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "void fitted_model(const double *x, double *y)" in done.stdout
    got = compile_and_run(tmp_path / "out.c", reg, points(X), name="fitted_model", tmp_path=tmp_path)
    assert_predicts_as(got, reg, points(X), rel=1e-12, what="CLI C export")


def test_cli_export_onnx(saved_model, tmp_path):
    pytest.importorskip("onnx")
    model, reg, X = saved_model
    done = cli("export", model, "out.onnx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ONNX, input x (N, 3), output y (N, 2)" in done.stdout
    got, _, _ = run_onnx(tmp_path / "out.onnx", points(X), np.float64)
    assert_predicts_as(got, reg, points(X), rel=1e-12, what="CLI ONNX export")


@pytest.mark.parametrize(
    "args, message",
    [
        (["out.txt"], "the suffix of OUT chooses the format, .onnx or .c; got '.txt'"),
        (["out"], "the suffix of OUT chooses the format, .onnx or .c; got none"),
        (["out.onnx", "--name", "f"], "--name names the C function, for a .c file"),
        (["out.c", "--name", "2f"], "--name: the C function name must be an identifier"),
        (["out.c", "--name", "static"], "'static' is a C keyword"),
        (["missing/out.c"], "the directory missing does not exist"),
    ],
    ids=["suffix", "no suffix", "name for onnx", "bad name", "keyword", "no directory"],
)
def test_cli_export_bad_input(saved_model, tmp_path, args, message):
    model, _, _ = saved_model
    done = cli("export", model, *args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr
    assert list(tmp_path.iterdir()) == [], "bad input wrote a file"


def test_cli_export_of_a_file_that_is_no_model(tmp_path):
    (tmp_path / "notes.pt").write_text("not a model")
    done = cli("export", "notes.pt", "out.c", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "not a torch-sigmoid-mlp model file" in done.stderr
    done = cli("export", "absent.pt", "out.c", cwd=tmp_path)
    assert done.returncode == 2 and "absent.pt: no such file" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]
