"""Nothing lost, no traceback: every bad input is one line and exit 2, and docs/reliability.md says so.

The table of bad inputs in docs/reliability.md is generated here: each case runs through the
installed entry point in a subprocess, and the test fails when the committed table differs from
what the command prints. ``UPDATE_DOCS=1 pytest tests/test_reliability.py`` rewrites the table.
"""

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.cli import commands as cli
from torch_sigmoid_mlp.estimator import model_file
from torch_sigmoid_mlp.estimator.outputs import OutputError

ENTRY_POINT = shutil.which("torch-sigmoid-mlp")
DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
BEGIN, END = "<!-- bad-input-table: begin -->", "<!-- bad-input-table: end -->"

POINTS = "x,y\n0,1\n1,2\n2,1.5\n3,0.5\n"
OTHER_POINTS = "x,y\n0,1\n1,2\n2,1.5\n3,0.75\n"  # targets within the range of POINTS


def run(*args, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    assert ENTRY_POINT is not None, "torch-sigmoid-mlp is not on PATH: pip install -e . first"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env or {})}  # "no GPU" even where there is one
    return subprocess.run(
        [ENTRY_POINT, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def flip_a_weight_byte(src: Path, dst: Path) -> None:
    """Copy a model file with one bit of its first weight matrix flipped (the zip stays readable)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = next(i for i in z.infolist() if "/data/0" in i.filename)
    # a zip entry's data follows its 30-byte local header, its name and its extra field
    header = info.header_offset
    name_length = int.from_bytes(data[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(data[header + 28 : header + 30], "little")
    data[header + 30 + name_length + extra_length + 1] ^= 0x10
    dst.write_bytes(data)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Inputs for every case: data files, a model fitted on ``d.csv`` by 20 sgd epochs, a damaged copy."""
    here = tmp_path_factory.mktemp("bad")
    (here / "d.csv").write_text(POINTS)
    (here / "other.csv").write_text(OTHER_POINTS)
    (here / "huge.csv").write_text("x,y\n1e308,1\n-1e308,2\n0,3\n")
    (here / "no_x.csv").write_text("a,y\n1,2\n")
    (here / "empty.csv").write_text("")
    (here / "afile").write_text("not a directory\n")
    (here / "sub").mkdir()
    os.mkfifo(here / "fifo")
    fit = run("fit", "d.csv", "--solver", "sgd", "--epochs", "20", "--quiet", "--save", "m.pt", cwd=here)
    assert fit.returncode == 0, fit.stdout + fit.stderr
    flip_a_weight_byte(here / "m.pt", here / "damaged.pt")
    return here


#: (what is wrong, the command line after ``torch-sigmoid-mlp``). Every case must exit 2 with one
#: line on stderr, print nothing on stdout, and leave no file behind.
BAD_INPUT = [
    ("data file missing", "fit missing.csv"),
    ("data file empty", "fit empty.csv"),
    ("a column's range overflows", "fit huge.csv"),
    ("no such target column", "fit d.csv --target z"),
    ("an unknown option", "fit d.csv --epocs 3"),
    ("learning rate not positive", "fit d.csv --lr 0"),
    ("learning rate overflows float32", "fit d.csv --lr 1e300"),
    ("seed out of range", "fit d.csv --seed 99999999999999999999999"),
    ("network too large for memory", "fit d.csv --hidden 1000000 1000000"),
    ("network too large for LM's dense system", "fit d.csv --solver lm --hidden 200 200"),
    ("gradcheck: network too large for memory", "gradcheck --in-features 100000 --points 2"),
    ("no CUDA", "fit d.csv --device cuda"),
    ("output is the input", "fit d.csv --save d.csv"),
    ("output is a FIFO", "fit d.csv --save fifo"),
    ("output is a device node", "fit d.csv --save /dev/null"),
    ("output is a directory", "fit d.csv --save sub"),
    ("output ends in /", "fit d.csv --save new/"),
    ("output's directory missing", "fit d.csv --save nodir/m.pt"),
    ("output's directory takes no files", "fit d.csv --save /proc/m.pt"),
    ("two outputs, one file", "fit d.csv --save m2.pt --plot m2.pt"),
    ("--logdir under /proc", "fit d.csv --logdir /proc/runs"),
    ("--logdir under a file", "fit d.csv --logdir afile/runs"),
    ("--logdir is a file", "fit d.csv --logdir afile"),
    ("checkpoints without --save", "fit d.csv --checkpoint-every 5"),
    ("--resume: not a model file", "fit d.csv --resume d.csv"),
    ("--resume: a damaged model file", "fit d.csv --resume damaged.pt --epochs 40"),
    ("--resume: other data", "fit other.csv --resume m.pt --epochs 40"),
    ("--resume: no epochs left", "fit d.csv --resume m.pt --epochs 10"),
    ("predict: a missing input column", "predict m.pt no_x.csv"),
    ("predict: output is the model", "predict m.pt d.csv -o m.pt"),
]


def bad_input_messages(workdir) -> list[tuple[str, str, str]]:
    rows = []
    for what, line in BAD_INPUT:
        before = sorted(p.name for p in workdir.iterdir())
        result = run(*line.split(), cwd=workdir)
        assert result.returncode == 2, f"{line}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        assert result.stderr.count("\n") == 1, f"{line}: not one line on stderr:\n{result.stderr}"
        assert result.stderr.startswith("torch-sigmoid-mlp: error: "), result.stderr
        assert result.stdout == "", f"{line}: bad input still printed {result.stdout!r}"
        assert sorted(p.name for p in workdir.iterdir()) == before, f"{line}: left a file behind"
        rows.append((what, line, result.stderr.strip()))
    return rows


#: Parts of a message that depend on the machine, shown as "…" in the table.
MACHINE = [
    (re.compile(r"and \S+ GiB are free"), "and … GiB are free"),  # the memory free now
    (re.compile(r"cannot create a file in (\S+) \([^)]*\)"), r"cannot create a file in \1 (…)"),  # strerror
]


def table(rows) -> str:
    lines = ["| bad input | command line | the one line on stderr (exit 2) |", "|---|---|---|"]
    for what, line, message in rows:
        for pattern, shown in MACHINE:
            message = pattern.sub(shown, message)
        message = message.replace("|", "\\|")
        lines.append(f"| {what} | `torch-sigmoid-mlp {line}` | `{message}` |")
    return "\n".join(lines)


def test_every_bad_input_is_one_line_exit_2_and_the_docs_list_it(workdir):
    generated = table(bad_input_messages(workdir))
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} has lost its table markers"
    head, rest = text.split(BEGIN)
    committed, tail = rest.split(END)
    if os.environ.get("UPDATE_DOCS"):
        DOC.write_text(f"{head}{BEGIN}\n{generated}\n{END}{tail}")
        return
    assert committed.strip() == generated, (
        f"{DOC}'s table of bad inputs is stale: rerun with UPDATE_DOCS=1 and commit it\n{generated}"
    )


# -- exit statuses -----------------------------------------------------------------------------------


def test_exit_status_table_in_the_docs_is_the_cli_s():
    text = DOC.read_text()
    statuses = {
        cli.EXIT_OK, cli.EXIT_NOT_CONVERGED, cli.EXIT_BAD_INPUT, cli.EXIT_INTERNAL_ERROR,
        cli.EXIT_INTERRUPTED, cli.EXIT_BROKEN_PIPE, cli.EXIT_TERMINATED,
    }  # fmt: skip
    documented = {int(n) for n in re.findall(r"^\| `(\d+)` \|", text, flags=re.MULTILINE)}
    assert documented == statuses, (documented, statuses)
    assert (cli.EXIT_INTERNAL_ERROR, cli.EXIT_TERMINATED, cli.EXIT_BROKEN_PIPE) == (70, 143, 141)


def test_an_internal_error_is_one_line_with_a_hint_and_its_own_status(monkeypatch, capsys):
    def bug(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "_gradcheck", bug)
    assert cli.main(["gradcheck"]) == cli.EXIT_INTERNAL_ERROR == 70
    err = capsys.readouterr().err
    assert err == (
        "torch-sigmoid-mlp: internal error: ZeroDivisionError: division by zero "
        "(a bug in torch-sigmoid-mlp; rerun with --debug for the traceback)\n"
    )
    assert cli.main(["gradcheck", "--debug"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "ZeroDivisionError" in err, err


def test_sigterm_during_a_fit_saves_and_exits_143(tmp_path):
    process = subprocess.Popen(
        [ENTRY_POINT, "fit", "--epochs", "100000", "--tol", "1e-9", "--quiet", "--save", "m.pt",
         "--checkpoint-every", "20"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "m.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stdout + stderr
    assert "Traceback" not in stderr and "interrupted after epoch" in stdout, stdout + stderr
    saved = SigmoidMLPRegressor.load(tmp_path / "m.pt", device="cpu")
    assert f"interrupted after epoch {saved.result_.epochs}" in stdout


def test_sigterm_and_ctrl_c_while_torch_loads_are_one_line(tmp_path):
    for sig, status, word in ((signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")):
        process = subprocess.Popen(
            [ENTRY_POINT, "fit", "--quiet"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(0.3)  # importing torch takes longer than this
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == status and stderr == f"torch-sigmoid-mlp: {word}\n", (stdout, stderr)


def test_a_closed_stdout_ends_predict_quietly_with_141(workdir, tmp_path):
    rows = "\n".join(f"{i / 1000!r},0" for i in range(20_000))  # far more than a pipe's buffer
    (tmp_path / "many.csv").write_text(f"x,y\n{rows}\n")
    process = subprocess.Popen(
        [ENTRY_POINT, "predict", str(workdir / "m.pt"), "many.csv"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout.readline() == b"x,y,y_prediction\n"
    process.stdout.close()  # what `| head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and stderr == "", stderr


# -- model files -------------------------------------------------------------------------------------


def fitted(**params) -> tuple[SigmoidMLPRegressor, np.ndarray, np.ndarray]:
    X = np.linspace(0.0, 2.0, 30).reshape(-1, 1)
    y = 3.0 + 2.0 * np.tanh(X[:, 0])
    return SigmoidMLPRegressor(hidden=(4,), solver="sgd", device="cpu", **params).fit(X, y), X, y


def test_save_follows_the_output_rules(tmp_path):
    reg, _, _ = fitted(max_epochs=5)
    with pytest.raises(OutputError, match=r"the directory .*nodir does not exist"):
        reg.save(tmp_path / "nodir" / "m.pt")
    with pytest.raises(OutputError, match="is a directory"):
        reg.save(tmp_path)
    with pytest.raises(OutputError, match="ends in '/'"):
        reg.save(f"{tmp_path}/new/")
    with pytest.raises(OutputError, match="not a regular file"):
        reg.save("/dev/null")
    assert list(tmp_path.iterdir()) == [], "a refused save left a file"


def test_a_flipped_byte_is_a_damaged_file(tmp_path):
    reg, _, _ = fitted(max_epochs=5)
    reg.save(tmp_path / "m.pt")
    flip_a_weight_byte(tmp_path / "m.pt", tmp_path / "flipped.pt")
    with pytest.raises(ValueError, match="damaged: its contents do not match the checksum"):
        SigmoidMLPRegressor.load(tmp_path / "flipped.pt")


def test_non_finite_weights_are_refused_on_save_and_on_load(tmp_path):
    reg, _, _ = fitted(max_epochs=5)
    reg.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    with torch.no_grad():
        reg.model_.weights[1][0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"W\^\(1\) holds NaN or infinite values"):
        reg.save(tmp_path / "nan.pt")
    assert not (tmp_path / "nan.pt").exists()
    # a file written by something else, its checksum right: load refuses it all the same
    state["weights"][0][0, 0] = float("inf")
    del state["sha256"]
    state["sha256"] = model_file.digest(state)
    torch.save(state, tmp_path / "inf.pt")
    with pytest.raises(ValueError, match=r"W\^\(0\) holds NaN or infinite values"):
        SigmoidMLPRegressor.load(tmp_path / "inf.pt")


def test_a_csv_is_not_a_model_file(tmp_path):
    (tmp_path / "d.csv").write_text(POINTS)
    with pytest.raises(ValueError, match="not a zip archive"):
        SigmoidMLPRegressor.load(tmp_path / "d.csv")


@pytest.mark.floats
def test_feature_names_and_fingerprint_survive_a_round_trip(tmp_path):
    reg, X, _ = fitted(max_epochs=5)
    reg.feature_names_in_ = np.asarray(["t"], dtype=object)
    reg.data_fingerprint_ = "ab" * 32
    reg.save(tmp_path / "m.pt")
    again = SigmoidMLPRegressor.load(tmp_path / "m.pt")
    assert list(again.feature_names_in_) == ["t"] and again.data_fingerprint_ == "ab" * 32
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))


@pytest.mark.floats
def test_a_format_2_file_still_loads(tmp_path):
    reg, X, _ = fitted(max_epochs=5, batch_size=8)
    reg.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    for key in ("sha256", "feature_names", "data_fingerprint"):
        del state[key]
    del state["result"]["history_length"]
    state["format"] = "torch-sigmoid-mlp/regressor/2"
    torch.save(state, tmp_path / "old.pt")
    old = SigmoidMLPRegressor.load(tmp_path / "old.pt")
    np.testing.assert_array_equal(old.predict(X), reg.predict(X))
    assert old.result_ == reg.result_ and old._generator is not None


def test_model_files_keep_a_bounded_history(tmp_path, monkeypatch):
    from torch_sigmoid_mlp.estimator import model_file as estimator

    monkeypatch.setattr(estimator, "HISTORY_KEPT", 10)
    reg, _, _ = fitted(max_epochs=30)
    reg.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert len(state["result"]["loss_history"]) == 10 and state["result"]["history_length"] == [31, 0]
    again = SigmoidMLPRegressor.load(tmp_path / "m.pt")
    history = again.result_.loss_history
    assert len(history) == 31 and all(np.isnan(history[:21]))
    assert history[21:] == reg.result_.loss_history[21:], "the kept entries are the last ones, in place"
    assert dataclasses.replace(again.result_, loss_history=[]) == dataclasses.replace(
        reg.result_, loss_history=[]
    )
    # what a checkpoint costs does not grow with the epochs run
    long, _, _ = fitted(max_epochs=300)
    long.save(tmp_path / "long.pt")
    assert (tmp_path / "long.pt").stat().st_size < (tmp_path / "m.pt").stat().st_size + 512


# -- the command line and model files ----------------------------------------------------------------


def test_predict_matches_columns_by_name_and_ignores_others(workdir, tmp_path):
    (tmp_path / "shuffled.csv").write_text("note,x\n7,0\n8,3\n")
    out = run("predict", workdir / "m.pt", "shuffled.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    direct = SigmoidMLPRegressor.load(workdir / "m.pt", device="cpu").predict(np.array([[0.0], [3.0]]))
    lines = out.stdout.splitlines()
    assert lines[0] == "note,x,note_prediction"
    assert [float(line.split(",")[-1]) for line in lines[1:]] == direct.tolist()


def test_force_resume_continues_on_other_data(workdir, tmp_path):
    shutil.copy(workdir / "m.pt", tmp_path / "m.pt")
    shutil.copy(workdir / "other.csv", tmp_path / "other.csv")
    out = run("fit", "other.csv", "--resume", "m.pt", "--epochs", "25", "--force-resume", "--quiet",
              "--save", "m.pt", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "25 (20 before --resume)" in out.stdout
    # the run now goes on with the points it was continued on
    again = run("fit", "other.csv", "--resume", "m.pt", "--epochs", "30", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


def test_fit_uses_one_thread_for_a_small_problem_and_leaves_torch_as_it_was(monkeypatch, capsys):
    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cli._threads_for(41, (1, 8, 8, 1), cpu) == 1
    assert cli._threads_for(10**6, (100, 100, 1), cpu) == torch.get_num_threads(), "large: torch's own"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cli._threads_for(41, (1, 8, 8, 1), cpu) == torch.get_num_threads(), "the user's choice stands"
    seen = []
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(cli, "_report", lambda *a: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    # the demo, 2 of the hundreds of epochs it needs: not converged
    assert cli.main(["fit", "--epochs", "2", "--quiet", "--device", "cpu"]) == cli.EXIT_NOT_CONVERGED
    assert seen == [1] and torch.get_num_threads() == before
