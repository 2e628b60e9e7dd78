"""End-to-end tests of the installed command line, run in subprocesses as a user would run it."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.cli.csv_data import read_csv
from torch_sigmoid_mlp.cli.demo import sine_demo
from torch_sigmoid_mlp.training.solvers import choose_restarts

ENTRY_POINT = shutil.which("torch-sigmoid-mlp")
COMMANDS = {"entry point": [ENTRY_POINT], "python -m": [sys.executable, "-m", "torch_sigmoid_mlp"]}


def cli(*args, cwd, command="entry point", env=None) -> subprocess.CompletedProcess:
    assert ENTRY_POINT is not None, "torch-sigmoid-mlp is not on PATH: pip install -e . first"
    return subprocess.run(
        [*COMMANDS[command], *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def start(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [ENTRY_POINT, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def points_csv(tmp_path):
    """25 points of a smooth function of two inputs; the target ``y`` sits between the inputs."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 25, generator=g, dtype=torch.float64)
    y = torch.exp(-a) * (1 + b**2)
    path = tmp_path / "points.csv"
    lines = ["a,y,b"] + [f"{ai!r},{yi!r},{bi!r}" for ai, yi, bi in zip(a.tolist(), y.tolist(), b.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nothing_follows_the_results_of_the_readme_command(tmp_path):
    run = cli("fit", "--plot", "fit.png", "--logdir", "runs/demo", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == "", f"a progress bar (or more) went to a log that is no terminal: {run.stderr!r}"
    last = run.stdout.splitlines()[-1]
    assert last == "TensorBoard   runs/demo  (tensorboard --logdir runs/demo)", run.stdout


def test_demo_converges_with_model_plot_and_tensorboard(tmp_path):
    run = cli("fit", "--save", "model.pt", "--plot", "fit.png", "--logdir", "runs", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "converged: |F(x_t) - d_t| < 0.04 at every test point" in run.stdout, run.stdout
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "--plot did not write a PNG"
    events = EventAccumulator(str(tmp_path / "runs"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert "fit" in events.Tags()["images"], "the figure did not go to TensorBoard"
    assert "train/sse" in events.Tags()["scalars"], "the loss did not go to TensorBoard"
    for label in ("model         model.pt", "plot          fit.png", "TensorBoard   runs"):
        assert label in run.stdout, f"the table does not say where the outputs went:\n{run.stdout}"
    demo = sine_demo()
    reg = SigmoidMLPRegressor.load(tmp_path / "model.pt", device="cpu")
    error = np.abs(reg.predict(demo.x.numpy()) - demo.d.numpy()).max()
    assert error < demo.tol, f"the saved model's max |error| {error} is not below the demo's tol {demo.tol}"


@pytest.mark.floats
def test_fit_then_predict_gives_the_estimators_predictions(tmp_path, points_csv):
    fit = cli("fit", points_csv, "--target", "y", "--hidden", "4", "4", "--solver", "sgd", "--epochs", "200",
              "--save", "m.pt",
              "--quiet", cwd=tmp_path)  # fmt: skip
    assert fit.returncode == 0, f"no --tol asked for: exit 0 expected\n{fit.stdout}{fit.stderr}"
    assert fit.stderr == "", f"--quiet still wrote to stderr: {fit.stderr!r}"
    assert "2-4-4-1" in fit.stdout and "epochs        200" in fit.stdout, fit.stdout

    table = read_csv(points_csv)
    X = table.values[:, [0, 2]].numpy()  # (T, 2): the inputs a, b
    expected = SigmoidMLPRegressor.load(tmp_path / "m.pt", device="cpu").predict(X)  # (T,)

    # a file with the target column: -o writes it, the target is ignored, predictions appended
    predict = cli("predict", "m.pt", points_csv, "--target", "y", "-o", "out.csv", cwd=tmp_path)
    assert predict.returncode == 0 and predict.stdout == "", predict.stdout + predict.stderr
    out = read_csv(tmp_path / "out.csv")
    assert out.columns == ("a", "y", "b", "y_prediction")
    assert out.cells[0][:3] == table.cells[0], "the input cells were not copied as they were"
    np.testing.assert_array_equal(
        out.values[:, 3].numpy(), expected, err_msg="predict -o differs from the estimator"
    )

    # a file with the inputs only, to stdout, through python -m
    inputs = tmp_path / "inputs.csv"
    inputs.write_text("a,b\n" + "".join(f"{r[0]},{r[2]}\n" for r in table.cells))
    predict = cli("predict", "m.pt", inputs, cwd=tmp_path, command="python -m")
    assert predict.returncode == 0, predict.stderr
    lines = predict.stdout.splitlines()
    assert lines[0] == "a,b,prediction"
    stdout_values = np.array([float(line.split(",")[-1]) for line in lines[1:]])
    np.testing.assert_array_equal(
        stdout_values, expected, err_msg="predict to stdout differs from the estimator"
    )


@pytest.mark.floats
def test_fit_takes_the_same_steps_as_the_estimator(tmp_path, points_csv):
    # the command line fits in two calls (0 epochs, then warm_start) with its callback: still one fit
    run = cli("fit", points_csv, "--hidden", "3", "--batch-size", "7", "--epochs", "30", "--tol", "0.01",
              "--device", "cpu", "--save", "m.pt", "--quiet", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 1, f"--tol not reached: exit 1 expected\n{run.stdout}{run.stderr}"
    assert "not converged: max |error| is" in run.stdout and "after 30 epochs" in run.stdout, run.stdout
    x, y, _, _ = read_csv(points_csv).split()
    # fit trains a problem this small on one thread (cli.SMALL_PROBLEM): so does the reference, so that
    # both take the same operations in the same order and must agree to the bit
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reg = SigmoidMLPRegressor(hidden=(3,), batch_size=7, max_epochs=30, tol=0.01, device="cpu").fit(x, y)
    finally:
        torch.set_num_threads(threads)
    saved = SigmoidMLPRegressor.load(tmp_path / "m.pt", device="cpu")
    for l, (W, W_ref) in enumerate(zip(saved.model_.weights, reg.model_.weights)):
        torch.testing.assert_close(
            W, W_ref, rtol=0, atol=0, msg=f"W^({l}) differs from SigmoidMLPRegressor.fit"
        )
    assert saved.result_.loss_history == reg.result_.loss_history, "E per epoch differs from the estimator's"


@pytest.mark.parametrize("solver", ["br", "lm"])
def test_a_cosine_is_fitted_to_its_bound_by_br_and_lm_with_checkpoints(tmp_path, solver):
    """30 points of a cosine, hidden 6-6: br once shrank this network to a constant (exit 1)."""
    x = np.linspace(-2.0, 2.0, 30)
    lines = ["x,y"] + [f"{a!r},{b!r}" for a, b in zip(x.tolist(), np.cos(1.5 * x).tolist())]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    run = cli("fit", "c.csv", "--solver", solver, "--hidden", "6", "6", "--tol", "0.02", "--save", "m.pt",
              "--checkpoint-every", "5", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "converged: |F(x_t) - d_t| < 0.02 at every test point" in run.stdout, run.stdout


def test_a_fit_without_tol_says_it_stopped_once_epochs_no_longer_paid(tmp_path, points_csv):
    run = cli("fit", points_csv, "--device", "cpu", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "done: further epochs no longer lowered the loss" in run.stdout, run.stdout
    starts = choose_restarts("br", 2 * 8 + 8 * 8 + 8, 25, tol=False)  # 25 points, 2-8-8-1
    assert f"starts        {starts}, the best is start" in run.stdout, run.stdout


def test_the_command_line_prints_a_convergence_warning_as_one_line(tmp_path, points_csv):
    run = cli("fit", points_csv, "--solver", "sgd", "--lr", "1e-9", "--epochs", "2", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stderr.splitlines()
    assert any(line.startswith("torch-sigmoid-mlp: warning: the fit explains only") for line in lines), lines


# -- interrupting and resuming ------------------------------------------------------------------------

# Mini-batches, so that resuming must also restore the order in which the points are drawn.
EPOCHS = 1000
RUN = ("fit", "--batch-size", "10", "--epochs", EPOCHS, "--tol", "1e-9", "--quiet")
EVERY = 50


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = tmp_path_factory.mktemp("straight")
    run = cli(*RUN, "--save", "straight.pt", cwd=path)
    assert run.returncode == 1, run.stdout + run.stderr
    return torch.load(path / "straight.pt", weights_only=True)


@pytest.mark.floats
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_resume_after_an_interrupt_reaches_the_uninterrupted_weights(tmp_path, uninterrupted, stop):
    checkpoint = tmp_path / "run.pt"
    process = start(*RUN, "--save", checkpoint, "--checkpoint-every", EVERY, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=120)
    saved = torch.load(checkpoint, weights_only=True)["result"]["epochs"]
    assert 0 < saved < EPOCHS, f"the run was not stopped midway (saved at epoch {saved})"
    if stop == signal.SIGINT:
        assert process.returncode == 130, stdout + stderr
        assert f"interrupted after epoch {saved}" in stdout, (
            f"Ctrl-C did not save where it stopped:\n{stdout}"
        )
    else:
        assert saved % EVERY == 0, f"a checkpoint at epoch {saved}, not a multiple of {EVERY}"

    resumed = cli(
        *RUN, "--save", checkpoint, "--checkpoint-every", EVERY, "--resume", checkpoint, cwd=tmp_path
    )
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert f"{EPOCHS} ({saved} before --resume)" in resumed.stdout, resumed.stdout
    final = torch.load(checkpoint, weights_only=True)
    for l, (W, W_ref) in enumerate(zip(final["weights"], uninterrupted["weights"])):
        torch.testing.assert_close(W, W_ref, rtol=0, atol=0, msg=f"W^({l}) after resuming differs")
    assert final["result"]["loss_history"] == uninterrupted["result"]["loss_history"], "E per epoch differs"


# -- bad input: one line, exit 2, nothing written -----------------------------------------------------

BAD_FILES = {
    "missing.csv": None,
    "no_header.csv": "1,2\n3,4\n",
    "not_numeric.csv": "x,y\n1,2\n3,abc\n",
    "nan.csv": "x,y\n1,2\nNaN,3\n",
    "empty.csv": "",
    "good.csv": "x,y\n1,2\n3,4\n",
    "not_a_model.pt": "x,y\n1,2\n",
}


BAD_INPUT = {
    "missing": (["fit", "missing.csv"], "missing.csv: no such file"),
    "no-header": (["fit", "no_header.csv"], "no_header.csv: line 1 holds numbers, not a header"),
    "not-numeric": (["fit", "not_numeric.csv"], "not_numeric.csv: line 3, column 'y': 'abc' is not a number"),
    "nan": (["fit", "nan.csv"], "nan.csv: line 3, column 'x': 'NaN' is not a finite number"),
    "empty": (["fit", "empty.csv"], "empty.csv: the file is empty"),
    "unknown-target": (["fit", "good.csv", "--target", "z"], "good.csv: no column named 'z' (columns: x, y)"),
    "not-a-model": (
        ["predict", "not_a_model.pt", "good.csv", "-o", "out.csv"],
        "not_a_model.pt: not a torch-",
    ),
    "resume-not-a-model": (["fit", "good.csv", "--resume", "not_a_model.pt"], "not_a_model.pt: not a torch-"),
    "no-cuda": (["fit", "good.csv", "--device", "cuda"], "--device cuda: CUDA is not available"),
    "bad-epochs": (
        ["fit", "good.csv", "--epochs", "-3"],
        "--epochs: expected a non-negative integer, got '-3'",
    ),
    "bad-lr": (["fit", "good.csv", "--lr", "0"], "argument --lr: expected a positive number, got '0'"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, case):
    args, message = BAD_INPUT[case]
    for name, content in BAD_FILES.items():
        if content is not None:
            (tmp_path / name).write_text(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    outputs = ["--save", "out.pt", "--plot", "out.png", "--logdir", "runs"] if args[0] == "fit" else []
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # "no GPU" even on a machine that has one
    run = cli(*args, *outputs, cwd=tmp_path, env=env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1, f"expected exactly one line on stderr, got:\n{run.stderr}"
    assert run.stderr.startswith("torch-sigmoid-mlp: error: ") and message in run.stderr, run.stderr
    assert run.stdout == "", f"bad input still printed: {run.stdout!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "bad input left a file behind"


def test_plot_without_matplotlib_is_a_clear_error(tmp_path):
    # a stand-in package that fails to import, as matplotlib does where it is not installed
    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]),
    }
    run = cli("fit", "--plot", "fit.png", cwd=tmp_path, env=env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr == (
        "torch-sigmoid-mlp: error: plotting needs matplotlib, which is not installed: "
        "pip install 'torch-sigmoid-mlp[plot]'\n"
    )
    assert not (tmp_path / "fit.png").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_gradcheck_agrees(tmp_path, command):
    run = cli(
        "gradcheck", "--in-features", "2", "--hidden", "3", "--points", "8", cwd=tmp_path, command=command
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SigmoidMLP(sizes=(2, 3, 1)" in run.stdout and "agree (float64" in run.stdout, run.stdout
