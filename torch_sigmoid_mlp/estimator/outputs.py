"""Output files: checked before any work, written atomically, never over what is not ours.

:func:`check_output` refuses, before a run starts, an output that could not be written at its end
or would replace an input, a directory, a FIFO or a device node; :func:`atomic_path` writes a file
so that a reader sees the old one or the complete new one, never a partial one. A writer whose
optional dependency is missing says how to install it (:class:`MissingDependencyError`).

The model file, the exports and the command line's CSV files and plots all write through here.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["MissingDependencyError", "OutputError", "atomic_path", "check_output"]

#: When this process started, as far as this module can tell: a temporary file of ours older than this was
#: left by an earlier process (see :func:`atomic_path`).
_STARTED = time.time()

#: ``tempfile.mkstemp``'s random part: 8 of these characters.
_RANDOM = "[a-z0-9_]{8}"


class MissingDependencyError(ImportError):
    """An optional dependency of an output (matplotlib for a plot, onnx for an export) is not
    installed; ``str()`` says how to install it."""


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
        torch_sigmoid_mlp.estimator.outputs.OutputError: --save ...: is also an input; refusing to...
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
