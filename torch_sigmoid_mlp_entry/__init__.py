"""The ``torch-sigmoid-mlp`` command's entry point, outside the package so that it runs before torch loads.

Importing :mod:`torch_sigmoid_mlp` imports torch, which takes seconds. A Ctrl-C (or SIGTERM) that
landed inside that import would end the command with Python's traceback, or leave a module (numpy)
half-initialised. So the two signals are blocked while the package is imported: one that arrives
meanwhile waits, and once the import is complete it becomes the command line's one line and exit
status (130, 143) without running anything. Once :func:`torch_sigmoid_mlp.cli.main` has returned, a
Ctrl-C during the interpreter's shutdown (joining threads) is ignored: the run and its outputs are
complete by then.
"""

import signal
import sys

PROG = "torch-sigmoid-mlp"
_STOPS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


def _import_cli():
    """``torch_sigmoid_mlp.cli.main``, or ``None`` when Ctrl-C or SIGTERM came during the import."""
    if not hasattr(signal, "pthread_sigmask"):  # no signal masks (Windows): catch what comes
        try:
            from torch_sigmoid_mlp.cli import main as run
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        return run
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        from torch_sigmoid_mlp.cli import main as run
    finally:
        pending = [signum for signum in _STOPS if signum in signal.sigpending()]
        for signum in pending:
            signal.signal(signum, signal.SIG_IGN)  # delivered on unblocking, and dropped
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
    if pending:
        status, word = _STOPS[pending[0]]
        print(f"{PROG}: {word}", file=sys.stderr)
        raise SystemExit(status)
    return run


def main() -> int:
    """Import the command line, run it on ``sys.argv[1:]``, return its exit status."""
    try:
        try:
            run = _import_cli()
        except SystemExit as exc:
            return int(exc.code)
        return run()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
