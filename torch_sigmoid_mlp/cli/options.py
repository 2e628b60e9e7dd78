"""The command line's options, declared subcommand by subcommand; a bad one is a one-line :class:`UsageError`.

The functions that run the subcommands (:mod:`.commands`) are handed in by :func:`build_parser`'s caller,
so that this module holds the declarations alone.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..core._checks import check_integer, check_number, integer_words
from ..estimator.params import SOLVERS

__all__ = ["MAX_SEED", "PROG", "UsageError", "build_parser"]

PROG = "torch-sigmoid-mlp"

#: The largest seed: torch.Generator.manual_seed takes 64-bit unsigned integers.
MAX_SEED = 2**64 - 1


class UsageError(ValueError):
    """Bad input at the command line; ``str()`` is the one line that is printed."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage and exits on a bad option; the rule here is one line and exit 2.
    def error(self, message: str):
        command = self.prog.removeprefix(PROG).strip()
        raise UsageError(f"{command}: {message}" if command else message)


def _restarts(text: str):
    """``auto`` or a positive number of starts."""
    return text if text == "auto" else _positive_int(text)


def _integer(low: int, high: int | None = None):
    """An argparse ``type`` for the integers :func:`~torch_sigmoid_mlp._checks.check_integer` takes."""

    def parse(text: str) -> int:
        try:
            return check_integer(int(text), "", low=low, high=high)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {integer_words(low, high)}, got {text!r}") from None

    return parse


_positive_int, _non_negative_int, _seed = _integer(1), _integer(0), _integer(0, MAX_SEED)


def _positive_float(text: str) -> float:
    """An argparse ``type`` for a number ``> 0``; ``inf`` and ``nan`` are not one."""
    try:
        return check_number(float(text), "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None


def _output_file(text: str) -> Path:
    """An argparse ``type`` for an output file: ``Path`` drops a trailing ``/``, which names a directory."""
    if text.endswith(os.sep) or (os.altsep and text.endswith(os.altsep)):
        raise argparse.ArgumentTypeError(
            f"{text!r} ends in {os.sep!r}, which names a directory; give a file name"
        )
    return Path(text)


def build_parser(*, fit, predict, gradcheck, export) -> argparse.ArgumentParser:
    """The parser of the subcommands, each set to call its ``run`` (``args.run(args)``); a bad option
    raises :class:`UsageError`."""
    parser = _Parser(
        prog=PROG,
        description="Fit bias-free sigmoid networks until the error is below a bound "
        "at every test point; predict with them; check the hand-written gradients against autograd.",
        epilog="Exit status: 0 converged (or no --tol asked for), 1 not converged, 2 bad input, "
        "70 internal error (a bug; --debug shows its traceback), 130 interrupted (Ctrl-C), "
        "141 stdout closed early (| head), 143 terminated (SIGTERM).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _fit_options(commands, fit)
    _predict_options(commands, predict)
    _gradcheck_options(commands, gradcheck)
    _export_options(commands, export)
    return parser


def _fit_options(commands, run) -> None:
    """The ``fit`` subcommand and its options."""
    fit = commands.add_parser(
        "fit",
        help="fit a network to a CSV file (or to the built-in demo)",
        description="Fit a network to the test points of a CSV file: a header row, then one point per row; "
        "the target is --target (default: the last column), every other column is an input. "
        "Without DATA.csv, fit the built-in demo function.",
    )
    fit.add_argument("data", nargs="?", metavar="DATA.csv", type=Path, help="test points (default: the demo)")
    fit.add_argument("--target", metavar="COL", help="the column to fit (default: the last one)")
    fit.add_argument(
        "--hidden",
        nargs="+",
        type=_positive_int,
        metavar="W",
        help="widths of the hidden layers (default: two of max(8, n), n the number of inputs)",
    )
    fit.add_argument(
        "--solver",
        choices=SOLVERS,
        default="auto",
        help="how the weights are found (default: auto, chosen from the problem: LM to a --tol, "
        "Bayesian-regularised LM without one, by CG for wide networks on few points, "
        "L-BFGS for large networks)",
    )
    fit.add_argument(
        "--restarts",
        type=_restarts,
        default="auto",
        metavar="K",
        help="starts to fit from, or auto (default): up to 10 with a --tol, the first to reach it "
        "ending the fit; else 3 for a small network (the best kept; one more from the minimum of "
        "the error where the best explains under 90 %% of the variance), 1 for a large one",
    )
    fit.add_argument(
        "--lr",
        type=_positive_float,
        metavar="η",
        help="learning rate of sgd/adaptive (default ∝ 1/T) or the optimizer's of rprop/adam/lbfgs",
    )
    fit.add_argument(
        "--epochs",
        type=_non_negative_int,
        metavar="N",
        help="the most epochs, counted from the start of the run, a resumed one too "
        "(default: the solver's, 100000 for sgd; 1000 for lm and br, fewer where an epoch is costly)",
    )
    fit.add_argument(
        "--tol",
        type=_positive_float,
        metavar="ε",
        help="stop when |F(x_t) − d_t| < ε at every test point, in the target's units "
        "(default: none for a CSV file; the demo: its own)",
    )
    fit.add_argument(
        "--batch-size", type=_positive_int, metavar="B", help="points per step (default: all, full batch)"
    )
    fit.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: auto)")
    fit.add_argument(
        "--seed",
        type=_seed,
        metavar="S",
        help="seed of the initial weights and the batch order (default 0)",
    )
    _fit_outputs_and_run_options(fit)
    fit.set_defaults(run=run)


def _predict_options(commands, run) -> None:
    """The ``predict`` subcommand and its options."""
    predict = commands.add_parser(
        "predict",
        help="predict with a saved model",
        description="Append the model's predictions, in the target's units, as a last column to the rows "
        "of DATA.csv. A model fitted by `fit` on a CSV file finds its inputs by their column names, and "
        "other columns are ignored; a model without names takes them by position, in the order they had "
        "when it was fitted, and the file may also hold the target column (the last one, or --target "
        "COL), which is ignored.",
    )
    predict.add_argument("model", type=Path, metavar="MODEL.pt")
    predict.add_argument("data", type=Path, metavar="DATA.csv")
    predict.add_argument(
        "--target",
        metavar="COL",
        help="the column of DATA.csv to ignore when it has one more than the inputs (default: the last)",
    )
    predict.add_argument(
        "-o", "--output", type=_output_file, metavar="OUT.csv", help="write here (default: stdout)"
    )
    predict.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    predict.set_defaults(run=run)


def _gradcheck_options(commands, run) -> None:
    """The ``gradcheck`` subcommand and its options."""
    gradcheck = commands.add_parser(
        "gradcheck",
        help="compare the hand-written gradients with autograd's",
        description="Build a random network and compare the gradients of E computed by the hand-written "
        "backpropagation and by autograd. Exit 0 when they agree, 1 when they do not.",
    )
    gradcheck.add_argument("--in-features", type=_positive_int, default=3, metavar="N", help="(default 3)")
    gradcheck.add_argument(
        "--hidden", nargs="+", type=_positive_int, metavar="W", help="(default: two layers of N)"
    )
    gradcheck.add_argument("--points", type=_positive_int, default=16, metavar="T", help="(default 16)")
    gradcheck.add_argument(
        "--dtype", choices=("float32", "float64"), default="float64", help="(default float64)"
    )
    gradcheck.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: auto)"
    )
    gradcheck.add_argument("--seed", type=_seed, default=0, metavar="S", help="(default 0)")
    gradcheck.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    gradcheck.set_defaults(run=run)


def _export_options(commands, run) -> None:
    """The ``export`` subcommand and its options."""
    export = commands.add_parser(
        "export",
        help="write a saved model as an ONNX graph or as C source",
        description="Write what MODEL.pt predicts (the network with the min-max scaling of its inputs and "
        "outputs, in the data's units) to OUT, whose suffix chooses the format: .onnx, an ONNX graph with "
        "input x (N, n) and output y; .c, one dependency-free C99 file defining "
        "void NAME(const double *x, double *y), or in float32 or fixed point with --arithmetic. "
        "Exit status: 0 written (and tol holds, or the model has none), 1 written but tol does not hold "
        "in the exported arithmetic, 2 bad input (nothing written).",
    )
    export.add_argument("model", type=Path, metavar="MODEL.pt")
    export.add_argument("output", type=Path, metavar="OUT", help="OUT.onnx or OUT.c")
    export.add_argument("--name", metavar="NAME", help="the C function's name (default tsm_predict); .c only")
    export.add_argument(
        "--arithmetic",
        choices=("float64", "float32", "int32", "int16", "auto"),
        default="float64",
        help="of the C file (default float64, with libm): float32 without libm, int32 or int16 fixed point "
        "(integers only), or auto, the smallest word that keeps the model's tol; each but float64 states "
        "its proven bound B over the fitted box. .c only",
    )
    export.add_argument(
        "--check",
        type=Path,
        metavar="DATA.csv",
        help="compute max |error| in the exported arithmetic on these points (the model's inputs and "
        "its target column) and print it beside tol; exit 1 where tol does not hold",
    )
    export.add_argument("--target", metavar="COL", help="--check's target column (default: the one left)")
    export.add_argument(
        "--tol",
        type=_positive_float,
        metavar="EPS",
        help="the bound to check the export against, in y's units (default: the model's tol)",
    )
    export.set_defaults(run=run)


def _fit_outputs_and_run_options(fit) -> None:
    """``fit``'s outputs (model, plot, TensorBoard, checkpoints) and how the run goes (resume, quiet)."""
    fit.add_argument("--logdir", type=Path, metavar="DIR", help="write a TensorBoard run here")
    fit.add_argument("--save", type=_output_file, metavar="MODEL.pt", help="save the fitted model here")
    fit.add_argument(
        "--plot", type=_output_file, metavar="FIT.png", help="draw the fit and the loss curve here"
    )
    fit.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="K",
        help="also write the model to --save every K epochs, so an interrupted run loses at most K",
    )
    fit.add_argument(
        "--resume",
        type=Path,
        metavar="MODEL.pt",
        help="continue the run saved in MODEL.pt (on the same data)",
    )
    fit.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no opening line (the table is still printed)",
    )
    fit.add_argument(
        "--force-resume",
        action="store_true",
        help="with --resume: continue even if DATA.csv holds other points than the run was fitted on",
    )
    fit.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
