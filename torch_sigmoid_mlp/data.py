"""Reading test points from CSV files, and writing output files atomically.

A data file is a CSV table with a header row naming the columns and one test point per row;
every cell below the header is a finite number. :func:`read_csv` checks all of that and, when a
file breaks a rule, raises :class:`DataError` with a message that names the file, the line and
the column, so that the command line can print it as one line.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "DataError",
    "OutputError",
    "Table",
    "atomic_path",
    "check_output",
    "fingerprint",
    "read_csv",
    "write_csv",
]


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
        torch_sigmoid_mlp.data.DataError: .../points.csv: line 3, column 'y': 'nan' is not a finite number
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


#: When this process started, as far as data.py can tell: a temporary file of ours older than this was
#: left by an earlier process (see :func:`atomic_path`).
_STARTED = time.time()

#: ``tempfile.mkstemp``'s random part: 8 of these characters.
_RANDOM = "[a-z0-9_]{8}"


class OutputError(ValueError):
    """An output that must not or cannot be written; ``str()`` is one line naming the path and why."""


def _where(path: Path, option: str | None) -> str:
    return f"{option} {path}" if option else str(path)


def _resolved(path: str | os.PathLike, option: str | None) -> Path:
    """The regular file an output at ``path`` replaces, following symlinks; refuses anything else."""
    text = os.fspath(path)
    if text.endswith(os.sep) or (os.altsep and text.endswith(os.altsep)):
        raise OutputError(
            f"{_where(Path(text), option)}: ends in {os.sep!r}, which names a directory; give a file name"
        )
    path = Path(text)
    # A symlink is written through: its target is replaced and the link stays (latest.pt -> run3.pt).
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_dir():
        raise OutputError(f"{_where(path, option)}: is a directory, expected a file name")
    if target.exists() and not target.is_file():
        # a FIFO, a device node or a socket: replacing it by a regular file would destroy it
        raise OutputError(f"{_where(path, option)}: exists and is not a regular file; refusing to replace it")
    return target


def _probe(directory: Path, path: Path, option: str | None, make_dir: bool = False) -> None:
    """Create (and remove) a temporary file — or directory — in ``directory``: can outputs go there?"""
    if not directory.exists():
        raise OutputError(f"{_where(path, option)}: the directory {directory} does not exist")
    if not directory.is_dir():
        raise OutputError(f"{_where(path, option)}: {directory} is a file, not a directory")
    try:
        if make_dir:
            os.rmdir(tempfile.mkdtemp(dir=directory, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"))
        else:
            fd, probe = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"{_where(path, option)}: cannot create a file in {directory} ({exc.strerror or exc})"
        ) from None


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    option: str | None = None,
    directory: bool = False,
) -> Path:
    """Check, before any work is done, that an output can be written at ``path`` without loss.

    The rules, for the command line's outputs and :meth:`SigmoidMLPRegressor.save
    <torch_sigmoid_mlp.SigmoidMLPRegressor.save>` alike:

    - a path ending in ``/`` names a directory: refused for a file;
    - a symlink is written through: its target is replaced (atomically) and the link stays;
    - an existing path that is not a regular file (a directory, a FIFO, a device node, a socket) is
      refused, never replaced;
    - the same file as one of ``inputs`` (``os.path.samefile``, symlinks followed) is refused;
    - its directory must exist and accept a new file: a temporary file of :func:`atomic_path`'s
      naming is created there and removed (so a read-only directory or ``/proc`` fails here).

    With ``directory=True`` (a log directory) ``path`` must be a directory or not exist yet; then
    the nearest existing directory above it must accept a new directory.

    Args:
        path: the output.
        inputs: files the run reads, which the output must not overwrite.
        option: the command-line option, which the message names (``"--save"``).
        directory: the output is a directory.

    Returns:
        the file that will be written (``path``, or a symlink's target); for a directory, ``path``.

    Raises:
        OutputError: one line naming ``path`` and the rule it breaks.

    Example::

        >>> import pathlib, tempfile
        >>> here = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (here / "d.csv").write_text("x,y\\n1,2\\n")
        >>> check_output(here / "m.pt", inputs=[here / "d.csv"]) == here / "m.pt"
        True
        >>> check_output(here / "d.csv", inputs=[here / "d.csv"], option="--save")
        Traceback (most recent call last):
        ...
        torch_sigmoid_mlp.data.OutputError: --save .../d.csv: is also an input; refusing to overwrite it
    """
    if directory:
        path = Path(path)
        if path.exists():
            if not path.is_dir():
                raise OutputError(f"{_where(path, option)}: exists and is not a directory")
            _probe(path, path, option, make_dir=True)
            return path
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        _probe(ancestor, path, option, make_dir=True)
        return path
    target = _resolved(path, option)
    path = Path(path)
    for given in inputs:
        with contextlib.suppress(OSError):
            if target.exists() and os.path.samefile(target, given):
                raise OutputError(f"{_where(path, option)}: is also an input; refusing to overwrite it")
    _probe(target.parent, path, option)
    return target


def _stale_temporaries(target: Path) -> Iterator[Path]:
    """Temporary files of :func:`atomic_path` for ``target`` that a dead process left behind.

    Ours by their name (``.NAME.PID.XXXXXXXX.tmp``; ``.NAME.XXXXXXXX.tmp`` from before the PID was
    in it), regular files, older than this process, and — where the name has one — of a PID that
    no longer runs here. Anything else, a live writer's file included, is left alone.
    """
    name = re.escape(target.name)
    pattern = re.compile(rf"\.{name}\.(?:(\d+)\.)?{_RANDOM}\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = pattern.fullmatch(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime >= _STARTED:
                    continue
                if match[1] is not None and _alive(int(match[1])):
                    continue
                yield Path(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a number that is not a PID): not ours to judge
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` that becomes ``path`` only if the ``with`` block succeeds.

    The temporary file lies in the same directory so that ``os.replace`` is an atomic rename:
    a reader sees the old file or the complete new one, never a partial one, and a failure or
    an interrupt leaves no file behind. A ``kill -9`` cannot be cleaned up after, so the next write
    to the same path removes what such a process left: files of this naming
    (``.NAME.PID.XXXXXXXX.tmp``) older than this process whose PID no longer runs. ``path``
    follows :func:`check_output`'s rules: a symlink is written through, and a path that is not a
    regular file is refused. Failing to create, write or rename the file raises
    :class:`OutputError` naming ``path``.
    """
    shown = Path(path)
    target = _resolved(path, None)
    for stale in _stale_temporaries(target):
        with contextlib.suppress(OSError):
            stale.unlink(missing_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        if not target.parent.is_dir():
            raise OutputError(f"{shown}: the directory {target.parent} does not exist") from None
        raise OutputError(
            f"{shown}: cannot create a file in {target.parent} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        try:
            yield tmp
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"{shown}: cannot be written ({exc.strerror or exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write a header and rows of cells (strings) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
