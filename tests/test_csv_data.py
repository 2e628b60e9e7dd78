"""CSV reading: every malformed file is one DataError naming the file and the problem."""

import os

import pytest
import torch

from torch_sigmoid_mlp.cli.csv_data import DataError, fingerprint, read_csv, write_csv


@pytest.mark.floats
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


def test_a_range_beyond_the_largest_float_is_named_not_blamed_on_nan(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("x,y\n1e308,1\n-1e308,2\n")
    with pytest.raises(DataError, match=r"column 'x' spans -1e\+308 to 1e\+308, a range \(max - min\)"):
        read_csv(path).split()


def test_fingerprint_is_of_the_values_and_their_shape():
    x = torch.arange(6.0).reshape(3, 2)
    d = torch.ones(3)
    assert fingerprint(x, d) == fingerprint(x.double(), d.double())
    assert fingerprint(x, d) != fingerprint(x.reshape(2, 3), d)
    assert fingerprint(x, d) != fingerprint(x.flip(0), d)
