"""Outputs: checked before any work, written atomically, never over what is not ours."""

import os
import subprocess
import sys
import time

import pytest

from torch_sigmoid_mlp.cli.csv_data import write_csv
from torch_sigmoid_mlp.estimator.outputs import OutputError, atomic_path, check_output


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old", "a failed write replaced the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"], "a temporary file was left behind"


@pytest.fixture
def here(tmp_path):
    (tmp_path / "d.csv").write_text("x,y\n1,2\n")
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("d.csv", "is also an input"),
        ("fifo", "exists and is not a regular file"),
        ("sub", "is a directory, expected a file name"),
        ("sub/", "ends in '/', which names a directory"),
        ("nodir/m.pt", r"the directory .*nodir does not exist"),
        ("d.csv/m.pt", r"d\.csv is a file, not a directory"),
    ],
)
def test_check_output_refuses_what_it_must_not_replace(here, name, problem):
    before = sorted(p.name for p in here.iterdir())
    with pytest.raises(OutputError, match=problem):
        check_output(str(here) + os.sep + name, inputs=[here / "d.csv"])
    assert sorted(p.name for p in here.iterdir()) == before, "the check left something behind"


def test_check_output_refuses_a_device_node_and_a_directory_it_cannot_write_in():
    with pytest.raises(OutputError, match="exists and is not a regular file"):
        check_output("/dev/null")
    # /proc takes no new files, whoever asks (root included): the probe file fails there
    with pytest.raises(OutputError, match="cannot create a file in /proc"):
        check_output("/proc/m.pt")
    with pytest.raises(OutputError, match="cannot create a file in /proc"):
        check_output("/proc/runs/a", directory=True)


def test_a_symlink_to_an_input_is_that_input(here):
    (here / "link.csv").symlink_to("d.csv")
    with pytest.raises(OutputError, match="is also an input"):
        check_output(here / "link.csv", inputs=[here / "d.csv"])


def test_a_symlink_is_written_through_and_stays(here):
    (here / "latest.csv").symlink_to("run3.csv")  # dangling until the first write
    assert check_output(here / "latest.csv") == here / "run3.csv"
    write_csv(here / "latest.csv", ["x"], [["1"]])
    assert (here / "latest.csv").is_symlink() and (here / "run3.csv").read_text() == "x\n1\n"
    write_csv(here / "latest.csv", ["x"], [["2"]])
    assert (here / "latest.csv").is_symlink() and (here / "run3.csv").read_text() == "x\n2\n"


def test_a_log_directory_must_be_one_or_be_makeable(here):
    assert check_output(here / "runs" / "a", directory=True) == here / "runs" / "a"
    assert not (here / "runs").exists(), "the check made the directory"
    with pytest.raises(OutputError, match="exists and is not a directory"):
        check_output(here / "d.csv", directory=True)
    with pytest.raises(OutputError, match=r"d\.csv is a file, not a directory"):
        check_output(here / "d.csv" / "runs", directory=True)


def test_atomic_path_refuses_a_fifo_instead_of_replacing_it(here):
    with pytest.raises(OutputError, match="not a regular file"), atomic_path(here / "fifo"):
        pass
    assert (here / "fifo").exists() and not (here / "fifo").is_file()


def _dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(child.stdout)


def test_stale_temporaries_of_dead_writers_are_removed_and_nothing_else(tmp_path):
    old = time.time() - 3600
    dead = _dead_pid()
    stale = [f".m.pt.{dead}.abcd_123.tmp", ".m.pt.zyxw9876.tmp"]  # with a PID, and the older naming
    kept = [
        f".m.pt.{os.getpid()}.abcd_123.tmp",  # this process's own
        f".m.pt.{dead}.abc.tmp",  # not mkstemp's 8 random characters
        f".other.pt.{dead}.abcd_123.tmp",  # another output's
        "m.pt.abcd_123.tmp",  # not hidden: not our naming
        f".m.pt.{dead}.abcd_123.tmp.bak",
    ]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (old, old))
    fresh = f".m.pt.{dead + 1}.fresh123.tmp"  # newer than this process: maybe a live writer's
    (tmp_path / fresh).write_text("x")
    os.mkdir(tmp_path / f".m.pt.{dead}.dir12345.tmp")  # a directory is never ours
    os.utime(tmp_path / f".m.pt.{dead}.dir12345.tmp", (old, old))
    with atomic_path(tmp_path / "m.pt") as tmp:
        tmp.write_text("model")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"m.pt", fresh, f".m.pt.{dead}.dir12345.tmp", *kept}, left


def test_a_failed_rename_or_write_is_one_output_error(tmp_path):
    path = tmp_path / "m.pt"
    no_space = r"m\.pt: cannot be written \(No space left on device\)"
    with pytest.raises(OutputError, match=no_space), atomic_path(path):
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []
