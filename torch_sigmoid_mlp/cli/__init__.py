"""The command line, ``torch-sigmoid-mlp``: its subcommands and the files they read and write.

Nothing in the library imports it; it builds on the estimator and everything below.
"""

from .commands import build_parser, main

__all__ = ["build_parser", "main"]
