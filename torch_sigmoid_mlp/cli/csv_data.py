"""Reading test points from CSV files, and writing a table back.

A data file is a CSV table with a header row naming the columns and one test point per row;
every cell below the header is a finite number. :func:`read_csv` checks all of that and, when a
file breaks a rule, raises :class:`DataError` with a message that names the file, the line and
the column, so that the command line can print it as one line.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..estimator.outputs import atomic_path

__all__ = ["DataError", "Table", "fingerprint", "read_csv", "write_csv"]


class DataError(ValueError):
    """A data file that cannot be used; ``str()`` is one line naming the file and the problem."""


@dataclass(frozen=True)
class Table:
    """A CSV file read by :func:`read_csv`.

    Attributes:
        path: the file it was read from.
        columns: the header, one name per column.
        cells: the cells below the header as written in the file, one tuple per row.
        values: the same cells as numbers, ``(T, len(columns))``, float64.
    """

    path: Path
    columns: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]
    values: Tensor

    def column(self, name: str) -> int:
        """The index of the column called ``name``; a :class:`DataError` listing the columns if none is."""
        if name not in self.columns:
            raise DataError(f"{self.path}: no column named {name!r} (columns: {', '.join(self.columns)})")
        return self.columns.index(name)

    def check_ranges(self) -> None:
        """Refuse a column whose range ``max − min`` overflows float64 (values near ``±1.8e308``).

        The min–max scalers divide by that range; an infinite one would turn every value of the
        column into NaN. :class:`DataError` names the column and its extremes.
        """
        lo, hi = self.values.min(dim=0).values, self.values.max(dim=0).values  # (columns,)
        for name, a, b in zip(self.columns, lo.tolist(), hi.tolist()):
            if not math.isfinite(b - a):
                raise DataError(
                    f"{self.path}: column {name!r} spans {a:.4g} to {b:.4g}, a range (max - min) "
                    "beyond the largest float; rescale the column"
                )

    def split(self, target: str | None = None) -> tuple[Tensor, Tensor, tuple[str, ...], str]:
        """Inputs and target: ``(x, d, input_names, target_name)``.

        The target is the column ``target``, by default the last one; every other column is an
        input. ``x`` is ``(T, n)`` and ``d`` is ``(T,)``, both float64.
        """
        if len(self.columns) < 2:
            raise DataError(
                f"{self.path}: needs at least two columns, inputs and a target; found {len(self.columns)}"
            )
        j = len(self.columns) - 1 if target is None else self.column(target)
        inputs = [i for i in range(len(self.columns)) if i != j]
        self.check_ranges()
        names = tuple(self.columns[i] for i in inputs)
        return self.values[:, inputs], self.values[:, j], names, self.columns[j]


def fingerprint(x: Tensor, d: Tensor) -> str:
    """SHA-256 of test points and measurements as float64: their shapes, then their bytes.

    Two data sets have the same fingerprint exactly when they hold the same numbers in the same
    order; ``--resume`` compares it with the one the model was fitted on.

    Example::

        >>> x, d = torch.tensor([[0.0], [1.0]]), torch.tensor([1.0, 2.0])
        >>> fingerprint(x, d) == fingerprint(x.double(), d.double()), fingerprint(x, d) == fingerprint(x, -d)
        (True, False)
    """
    h = hashlib.sha256()
    for t in (x, d):
        t = t.detach().to(device="cpu", dtype=torch.float64).contiguous()
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _number(text: str, path: Path, line: int, column: str) -> float:
    where = f"{path}: line {line}, column {column!r}"
    if not text.strip():
        raise DataError(f"{where} is empty")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {text.strip()!r} is not a finite number")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: str | os.PathLike) -> Table:
    """Read a CSV file of test points, checking every cell.

    Args:
        path: a CSV file whose first row names the columns; every later row holds one finite
            number per column. Blank lines are skipped; a ``#`` does not start a comment.

    Returns:
        a :class:`Table`.

    Raises:
        DataError: the file is missing or unreadable, empty, has no header (its first row is all
            numbers), names a column twice or leaves a name blank, has no rows below the header, has
            a row with the wrong number of cells, or a cell that is empty, not a number, NaN or
            infinite. The message names the file, and the line and column where there is one.

    Example::

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "points.csv"
        >>> _ = path.write_text("x,y\\n0,1\\n0.5,2.5\\n")
        >>> table = read_csv(path)
        >>> table.columns, table.values.shape
        (('x', 'y'), torch.Size([2, 2]))
        >>> _ = path.write_text("x,y\\n0,1\\n0.5,nan\\n")
        >>> read_csv(path)
        Traceback (most recent call last):
        ...
        torch_sigmoid_mlp.cli.csv_data.DataError: ...: line 3, column 'y': 'nan' is not a finite number
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (it is not UTF-8)") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a valid CSV file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")

    line, header = rows[0]
    columns = tuple(name.strip() for name in header)
    if all(_is_number(name) for name in columns):
        raise DataError(
            f"{path}: line {line} holds numbers, not a header; the first row must name the columns"
        )
    for i, name in enumerate(columns):
        if not name:
            raise DataError(f"{path}: line {line}, column {i + 1} has no name")
        if name in columns[:i]:
            raise DataError(f"{path}: line {line}: the column name {name!r} appears twice")
    if len(rows) == 1:
        raise DataError(f"{path}: no data below the header")

    cells, values = [], []
    for line, row in rows[1:]:
        if len(row) != len(columns):
            raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {len(columns)}")
        values.append([_number(text, path, line, name) for text, name in zip(row, columns)])
        cells.append(tuple(row))
    return Table(path, columns, tuple(cells), torch.tensor(values, dtype=torch.float64))


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write a header and rows of cells (strings) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
