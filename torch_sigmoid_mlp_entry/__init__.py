"""The ``torch-sigmoid-mlp`` command's entry point, outside the package so that it runs before torch loads.

Importing :mod:`torch_sigmoid_mlp` imports torch, which takes seconds; a Ctrl-C (or SIGTERM) then
would end the command with Python's traceback. Here the import happens under a handler that turns
it into the command line's one line and exit status, and once :func:`torch_sigmoid_mlp.cli.main`
has returned, a Ctrl-C during the interpreter's shutdown (joining threads) is ignored: the run and
its outputs are complete by then.
"""

import signal
import sys

PROG = "torch-sigmoid-mlp"


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def main() -> int:
    """Import the command line, run it on ``sys.argv[1:]``, return its exit status."""
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        try:
            from torch_sigmoid_mlp.cli import main as run
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except SystemExit as exc:
            print(f"{PROG}: terminated", file=sys.stderr)
            return int(exc.code)
        finally:
            signal.signal(signal.SIGTERM, previous)
        return run()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
