"""CSV reading: every malformed file is one DataError naming the file and the problem."""

import os
import subprocess
import sys
import time

import pytest
import torch

from torch_sigmoid_mlp.data import (
    DataError,
    OutputError,
    atomic_path,
    check_output,
    fingerprint,
    read_csv,
    write_csv,
)


def test_read_csv_values_columns_and_cells(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("x1, x2 ,d\n0,1,2\n\n0.5,-1e-3,3.25\n")
    table = read_csv(path)
    assert table.columns == ("x1", "x2", "d")
    assert table.cells == (("0", "1", "2"), ("0.5", "-1e-3", "3.25"))
    torch.testing.assert_close(
        table.values, torch.tensor([[0, 1, 2], [0.5, -1e-3, 3.25]], dtype=torch.float64), msg="values"
    )


def test_split_default_target_is_last_column(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n")
    x, d, inputs, target = read_csv(path).split()
    assert (inputs, target) == (("a", "b"), "c")
    assert x.tolist() == [[1, 2], [4, 5]] and d.tolist() == [3, 6]
    x, d, inputs, target = read_csv(path).split("a")
    assert (inputs, target) == (("b", "c"), "a")
    assert x.tolist() == [[2, 3], [5, 6]] and d.tolist() == [1, 4]


def test_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffx,d\n1,2\n".encode())
    assert read_csv(path).columns == ("x", "d")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        ("1,2\n3,4\n", "line 1 holds numbers, not a header"),
        ("x,d\n", "no data below the header"),
        ("x,d\n1,2\n3,abc\n", "line 3, column 'd': 'abc' is not a number"),
        ("x,d\n1,2\nnan,4\n", "line 3, column 'x': 'nan' is not a finite number"),
        ("x,d\n1,inf\n", "line 2, column 'd': 'inf' is not a finite number"),
        ("x,d\n1,\n", "line 2, column 'd' is empty"),
        ("x,d\n1,2,3\n", "line 2 has 3 cells, the header has 2"),
        ("x,x\n1,2\n", "the column name 'x' appears twice"),
        ("x,,d\n1,2,3\n", "line 1, column 2 has no name"),
    ],
)
def test_malformed_file_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert problem in message, message
    assert "\n" not in message


def test_missing_file_directory_and_binary(tmp_path):
    with pytest.raises(DataError, match=r"missing\.csv: no such file"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_csv(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04\xff\xfe\x00\x80")
    with pytest.raises(DataError, match=r"model\.pt: not a text file"):
        read_csv(tmp_path / "model.pt")


def test_unknown_target_lists_the_columns(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("x,d\n1,2\n")
    with pytest.raises(DataError, match=r"points.csv: no column named 'y' \(columns: x, d\)"):
        read_csv(path).split("y")


def test_one_column_has_no_inputs(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("d\n1\n")
    with pytest.raises(DataError, match="needs at least two columns"):
        read_csv(path).split()


def test_write_csv_round_trip_and_mode(tmp_path):
    path = tmp_path / "out.csv"
    write_csv(path, ["x", "y"], [["1", "2.5"], ["3", "-4"]])
    assert path.read_text() == "x,y\n1,2.5\n3,-4\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, "the file keeps mkstemp's private mode"


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old", "a failed write replaced the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"], "a temporary file was left behind"


def test_a_range_beyond_the_largest_float_is_named_not_blamed_on_nan(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("x,y\n1e308,1\n-1e308,2\n")
    with pytest.raises(DataError, match=r"column 'x' spans -1e\+308 to 1e\+308, a range \(max - min\)"):
        read_csv(path).split()


# -- outputs: check_output and atomic_path ---------------------------------------------------------


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


def test_fingerprint_is_of_the_values_and_their_shape():
    x = torch.arange(6.0).reshape(3, 2)
    d = torch.ones(3)
    assert fingerprint(x, d) == fingerprint(x.double(), d.double())
    assert fingerprint(x, d) != fingerprint(x.reshape(2, 3), d)
    assert fingerprint(x, d) != fingerprint(x.flip(0), d)
