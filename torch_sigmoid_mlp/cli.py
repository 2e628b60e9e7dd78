"""The command line: ``torch-sigmoid-mlp fit | predict | gradcheck`` (also ``python -m torch_sigmoid_mlp``).

Exit status, so that scripts can rely on it:

- ``0``: the fit reached ``--tol`` (or no tolerance was asked for); ``gradcheck``: the gradients agree;
- ``1``: the fit ran to the end (or diverged) without reaching ``--tol``; ``gradcheck``: they disagree;
- ``2``: bad input (a file, a column, an option, a device); one line on stderr names the problem;
- ``130``: interrupted with Ctrl-C (after saving what there was, when ``--save`` was given).

``fit`` runs :meth:`SigmoidMLPRegressor.fit <torch_sigmoid_mlp.SigmoidMLPRegressor.fit>` with
``warm_start``, on an estimator fitted for 0 epochs (scalers and initial weights) or loaded by
``--resume``, and a callback of its own: it drives the progress bar, writes a checkpoint to ``--save``
every ``--checkpoint-every`` K epochs, and stops the run after the current epoch on Ctrl-C or SIGTERM.
A saved model holds the whole run's :class:`~torch_sigmoid_mlp.TrainResult` (epochs counted from the
start, resumed parts included) and its mini-batch order, so ``--resume`` knows where it stands:
``--epochs`` counts from the start of the run, and a resumed run takes the same steps as one that was
never interrupted.

``torchrun --nproc-per-node N -m torch_sigmoid_mlp fit …`` trains data-parallel: every rank reads the
whole data file and trains on its own shard of the points (``gloo`` on CPUs, ``nccl`` with one GPU per
rank, which ``--device auto`` picks), with the same steps as one process; rank 0 alone prints and
writes files.

``predict`` reads the inputs by position: the model file keeps the scalers and the number of inputs,
not the names of the columns. A file with one column more than the model's inputs has the target in
it (the last column, or ``--target COL``), which is ignored; the prediction column is then named
``<target>_prediction``, else ``prediction``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from .data import DataError, atomic_path, read_csv, write_csv
from .demo import sine_demo
from .distributed import default_device, init_from_env, is_distributed, is_main_process
from .estimator import MAX_EPOCHS, SOLVERS, SigmoidMLPRegressor
from .gradients import compare_gradients
from .module import SigmoidMLP
from .plotting import MissingDependencyError, fit_figure, require_matplotlib
from .training import TrainResult

__all__ = ["main"]

PROG = "torch-sigmoid-mlp"
EXIT_OK, EXIT_NOT_CONVERGED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`


class UsageError(ValueError):
    """Bad input at the command line; ``str()`` is the one line that is printed."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage and exits on a bad option; the rule here is one line and exit 2.
    def error(self, message: str):
        command = self.prog.removeprefix(PROG).strip()
        raise UsageError(f"{command}: {message}" if command else message)


def _integer(minimum: int):
    """An argparse ``type`` for integers of at least ``minimum`` (0 or 1)."""
    kind = "a positive integer" if minimum == 1 else "a non-negative integer"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        return value

    return parse


_positive_int, _non_negative_int = _integer(1), _integer(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _device(name: str) -> torch.device:
    """``auto`` is CUDA where there is a GPU, else the CPU; ``cuda`` without one is bad input."""
    if name == "auto":
        return default_device()  # under torchrun, this rank's GPU
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is False)"
        )
    return torch.device(name)


def _writable(path: Path, option: str) -> Path:
    """Check before any work is done that an output file can be created where it is asked for."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, expected a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {path.parent} does not exist")
    return path


# -- fit ---------------------------------------------------------------------------------------------------


class _StopRequest:
    """Ctrl-C (or SIGTERM) asks the run to stop after the current epoch; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.asked = False

    def _handle(self, signum, frame) -> None:
        self.asked = True
        # the next Ctrl-C is the impatient one: let it raise KeyboardInterrupt as usual
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> _StopRequest:
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _load_model(path: Path, device: str) -> SigmoidMLPRegressor:
    """A saved model, or a one-line ``UsageError`` naming the file."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if not is_zip:
        # torch.save writes a zip archive; anything else would only get torch's long unpickling story
        raise UsageError(f"{path}: not a torch-sigmoid-mlp model file (not written by torch.save)")
    try:
        return SigmoidMLPRegressor.load(path, device=device)
    except ValueError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        reason = " ".join(str(cause).split()) or type(cause).__name__
        if len(reason) > 120:
            reason = reason[:117] + "..."
        raise UsageError(f"{path}: not a torch-sigmoid-mlp model file ({reason})") from None


def _fit_data(args: argparse.Namespace):
    """``(X, y, input_names, target_name, what, demo)`` from DATA.csv (``demo`` None) or from the demo."""
    if args.data is None:
        if args.target is not None:
            raise UsageError("--target names a column of DATA.csv; the demo has only its own")
        demo = sine_demo()
        return demo.x, demo.d, demo.input_names, demo.target_name, f"the demo {demo.name!r}", demo
    table = read_csv(args.data)
    X, y, inputs, target = table.split(args.target)
    return X, y, inputs, target, str(args.data), None


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any training, outputs that could not be written at the end."""
    if args.checkpoint_every is not None and args.save is None:
        raise UsageError("--checkpoint-every writes the model to --save MODEL.pt: give --save as well")
    if args.save is not None:
        _writable(args.save, "--save")
    if args.plot is not None:
        _writable(args.plot, "--plot")
        require_matplotlib()
        from matplotlib.backend_bases import FigureCanvasBase

        kinds = FigureCanvasBase.get_supported_filetypes()
        if args.plot.suffix.lstrip(".").lower() not in kinds:
            raise UsageError(
                f"--plot {args.plot}: unknown image type; use one of .{', .'.join(sorted(kinds))}"
            )
    if args.logdir is not None and args.logdir.exists() and not args.logdir.is_dir():
        raise UsageError(f"--logdir {args.logdir}: is a file, expected a directory")


def _estimator(args: argparse.Namespace, X, y, what: str, demo, device: torch.device) -> SigmoidMLPRegressor:
    """An estimator whose ``fit`` runs the epochs that are left: a fresh one with scalers and initial
    weights (no epoch yet), or the one ``--resume`` saved."""
    if args.resume is None:
        hidden = args.hidden if args.hidden is not None else demo.hidden if demo is not None else None
        tol = args.tol if args.tol is not None else demo.tol if demo is not None else None
        est = SigmoidMLPRegressor(
            hidden,
            lr=args.lr,
            max_epochs=0,
            tol=tol,
            batch_size=args.batch_size,
            solver=args.solver,
            device=str(device),
            seed=0 if args.seed is None else args.seed,
        )
        est.fit(X, y)
        return est.set_params(max_epochs=args.epochs, warm_start=True)
    est = _load_model(args.resume, str(device))
    n, sizes = X.shape[1], est.model_.sizes
    if est.n_features_in_ != n:
        raise UsageError(
            f"--resume {args.resume}: the model takes {est.n_features_in_} inputs, {what} has {n}"
        )
    if args.hidden is not None and tuple(args.hidden) != sizes[1:-1]:
        raise UsageError(
            f"--hidden {' '.join(map(str, args.hidden))}: the resumed model {args.resume} "
            f"has hidden layers {' '.join(map(str, sizes[1:-1]))}"
        )
    if args.seed is not None and args.seed != est.seed:
        raise UsageError(
            f"--seed {args.seed}: the resumed model {args.resume} was started with seed {est.seed}"
        )
    # the settings of the run go on unless an option changes them
    if args.solver != "auto" and args.solver != est.result_.method:
        raise UsageError(
            f"--solver {args.solver}: the resumed model {args.resume} was trained with {est.result_.method}"
        )
    for option in ("lr", "tol", "batch_size"):
        if getattr(args, option) is not None:
            setattr(est, option, getattr(args, option))
    if args.epochs is not None:
        est.max_epochs = args.epochs
    return est.set_params(warm_start=True)


def _fit(args: argparse.Namespace) -> int:
    device = _device(args.device)
    _check_outputs(args)
    X, y, input_names, target_name, what, demo = _fit_data(args)
    T = X.shape[0]
    est = _estimator(args, X, y, what, demo, device)
    done = est.result_.epochs
    sizes = est.model_.sizes
    unit = _target_unit(est)

    if not args.quiet:
        formula = f" ({demo.formula})" if demo is not None else ""
        method, lr = est.result_.method, est.effective_lr(T)
        rate = f", lr {lr:.4g}" if lr is not None else ""
        settings = f"{_architecture(sizes)}, solver {method}{rate}, tol {_fmt_tol(est.tol)}"
        print(f"fitting {what}{formula}: {T} points, {settings}")
    total = est.max_epochs if est.max_epochs is not None else MAX_EPOCHS[est.result_.method]
    bar = None if args.quiet else _progress_bar(total=total, initial=done)
    writer = None
    if args.logdir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(args.logdir))

    def callback(epoch: int, result: TrainResult) -> bool:
        # epoch counts from the start of the run, and result is the run so far
        if bar is not None:
            bar.set_postfix(
                E=f"{result.final_loss:.3e}", max_err=f"{result.max_abs_error * unit:.3g}", refresh=False
            )
            bar.update(epoch - bar.n)
        if args.checkpoint_every is not None and epoch > done and epoch % args.checkpoint_every == 0:
            # est.result_ is now the record of a run stopped here: the same file as a Ctrl-C there
            est.save(args.save)
        return not stop.asked

    try:
        with _StopRequest() as stop:
            try:
                est.fit(X, y, callback=callback, writer=writer)
            except ValueError as exc:
                if args.resume is None:
                    raise
                # the estimator names what does not fit the saved run (targets outside its scale, say)
                raise UsageError(f"--resume {args.resume}: {exc}") from None
        result = est.result_

        # -- outputs ---------------------------------------------------------------------------------
        if args.save is not None:
            est.save(args.save)
        prediction = est.predict(X)  # (T,), in the target's units
        max_error = (prediction - y).abs().max().item()
        figure_note = ""
        if args.plot is not None or writer is not None:
            try:
                require_matplotlib()
            except MissingDependencyError:
                figure_note = " (no figure: matplotlib is not installed)"
            else:
                title = f"{_architecture(sizes)}, {result.epochs} epochs, max |error| {max_error:.3g}"
                figure = fit_figure(
                    X, y, est.predict, result.loss_history, tol=est.tol, input_names=input_names,
                    target_name=target_name, title=title,
                )  # fmt: skip
                if args.plot is not None:
                    with atomic_path(args.plot) as tmp:
                        figure.savefig(tmp, format=args.plot.suffix.lstrip(".").lower(), dpi=100)
                if writer is not None:
                    writer.add_figure("fit", figure, global_step=result.epochs)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    interrupted = result.stop_reason == "callback"

    outputs = {"model": args.save, "plot": args.plot, "TensorBoard": args.logdir}
    _report(result, est, T, input_names, target_name, device, done, max_error, outputs, figure_note)

    if interrupted:
        return EXIT_INTERRUPTED
    if result.stop_reason == "diverged" or (est.tol is not None and not result.converged):
        return EXIT_NOT_CONVERGED
    return EXIT_OK


def _report(result, est, T, input_names, target_name, device, done, max_error, outputs, figure_note) -> None:
    """The table at the end of ``fit``: what was fitted, how well, and where the outputs went."""
    n = len(input_names)
    rows = [
        ("points", f"{T} ({n} input{'s' if n > 1 else ''}: {', '.join(input_names)}; target: {target_name})"),
        ("architecture", f"{_architecture(est.model_.sizes)} on {device}"),
        ("epochs", f"{result.epochs}" + (f" ({done} before --resume)" if done else "")),
        ("E", f"{result.final_loss:.4e} (scaled targets)"),
        ("max |error|", f"{max_error:.4g}" + ("" if est.tol is None else f" (tol {est.tol:g})")),
        ("result", _verdict(result, est.tol, max_error)),
        ("seconds", f"{result.seconds:.1f}"),
    ]
    for label, path in outputs.items():
        if path is None:
            continue
        value = f"{path}  (tensorboard --logdir {path})" if label == "TensorBoard" else str(path)
        rows.append((label, value + (figure_note if label != "model" else "")))
    for label, value in rows:
        print(f"{label:<13} {value}")


def _target_unit(est: SigmoidMLPRegressor) -> float:
    """The target's units per unit of the scaled target (for the progress bar's max error)."""
    lo, hi = est.target_range
    span = (est.y_scaler_.data_max_ - est.y_scaler_.data_min_).double().max().item()
    return span / (hi - lo)


def _architecture(sizes: Sequence[int]) -> str:
    return "-".join(map(str, sizes)) + " bias-free sigmoid"


def _fmt_tol(tol: float | None) -> str:
    return "none" if tol is None else f"{tol:g}"


def _verdict(result: TrainResult, tol: float | None, max_error: float) -> str:
    if result.stop_reason == "tol":
        return f"converged: |F(x_t) - d_t| < {tol:g} at every test point"
    if result.stop_reason == "callback":
        return f"interrupted after epoch {result.epochs}"
    if result.stop_reason == "diverged":
        return "diverged: the loss became infinite or NaN; kept the last finite weights (try a smaller --lr)"
    if result.stop_reason == "mu_max":
        reached = "" if tol is None else f", max |error| {max_error / tol:.3g} x tol"
        return f"stopped: no step of {result.method} lowers the loss (a minimum){reached}"
    if tol is None:
        return f"done: ran {result.epochs} epochs (no --tol asked for)"
    return f"not converged: max |error| is {max_error / tol:.3g} x tol after {result.epochs} epochs"


def _progress_bar(total: int, initial: int):
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"{PROG}: no progress bar: tqdm is not installed (pip install tqdm)", file=sys.stderr)
        return None
    return tqdm(total=total, initial=initial, unit="epoch", desc="fit", leave=False, dynamic_ncols=True)


# -- predict -----------------------------------------------------------------------------------------------


def _predict(args: argparse.Namespace) -> int:
    if args.output is not None:
        _writable(args.output, "-o")
    est = _load_model(args.model, "cpu")
    table = read_csv(args.data)
    n, columns = est.n_features_in_, table.columns
    if len(columns) == n:
        inputs, target = list(range(n)), None
    elif len(columns) == n + 1:
        target = table.column(args.target) if args.target is not None else n
        inputs = [i for i in range(n + 1) if i != target]
    else:
        raise DataError(
            f"{table.path}: has {len(columns)} columns; the model {args.model} takes {n} input"
            f"{'s' if n > 1 else ''}, plus optionally the target column"
        )
    T = len(table.cells)
    prediction = est.predict(table.values[:, inputs]).reshape(T, -1)  # (T, m) float64, the target's units
    base = "prediction" if target is None else f"{columns[target]}_prediction"
    names = [base] if prediction.shape[1] == 1 else [f"{base}_{j}" for j in range(prediction.shape[1])]
    names = [name + "_" * (name in columns) for name in names]
    # repr() is the shortest text that reads back as the same float64
    rows = [(*cells, *map(repr, values)) for cells, values in zip(table.cells, prediction.tolist())]
    if args.output is None:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow((*columns, *names))
        out.writerows(rows)
    else:
        write_csv(args.output, (*columns, *names), rows)
    return EXIT_OK


# -- gradcheck --------------------------------------------------------------------------------------------


def _gradcheck(args: argparse.Namespace) -> int:
    device = _device(args.device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    g = torch.Generator().manual_seed(args.seed)
    model = SigmoidMLP(args.in_features, args.hidden, dtype=dtype, generator=g).to(device)
    # inputs and targets inside (0.1, 0.9), where the scalers put real data
    x = (0.1 + 0.8 * torch.rand(args.points, args.in_features, generator=g, dtype=dtype)).to(device)
    d = (0.1 + 0.8 * torch.rand(args.points, 1, generator=g, dtype=dtype)).to(device)
    report = compare_gradients(model, x, d)
    print(f"{model}, T = {args.points} random points, {args.dtype} on {device}")
    print(report)
    return EXIT_OK if report.agree else EXIT_NOT_CONVERGED


# -- the parser -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``fit``, ``predict`` and ``gradcheck``; a bad option raises :class:`UsageError`."""
    parser = _Parser(
        prog=PROG,
        description="Fit bias-free sigmoid networks until the error is below a bound "
        "at every test point; predict with them; check the hand-written gradients against autograd.",
        epilog="Exit status: 0 converged (or no --tol asked for), 1 not converged, 2 bad input, "
        "130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "Bayesian-regularised LM without one, L-BFGS for large networks)",
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
        "(default: the solver's, 1000 for lm and br, 100000 for sgd)",
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
        type=_non_negative_int,
        metavar="S",
        help="seed of the initial weights and the batch order (default 0)",
    )
    fit.add_argument("--logdir", type=Path, metavar="DIR", help="write a TensorBoard run here")
    fit.add_argument("--save", type=Path, metavar="MODEL.pt", help="save the fitted model here")
    fit.add_argument("--plot", type=Path, metavar="FIT.png", help="draw the fit and the loss curve here")
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
    fit.set_defaults(run=_fit)

    predict = commands.add_parser(
        "predict",
        help="predict with a saved model",
        description="Append the model's predictions, in the target's units, as a last column to the rows "
        "of DATA.csv. DATA.csv holds the model's inputs in the order they had when it was fitted; it may "
        "also hold the target column (the last one, or --target COL), which is ignored.",
    )
    predict.add_argument("model", type=Path, metavar="MODEL.pt")
    predict.add_argument("data", type=Path, metavar="DATA.csv")
    predict.add_argument(
        "--target",
        metavar="COL",
        help="the column of DATA.csv to ignore when it has one more than the inputs (default: the last)",
    )
    predict.add_argument("-o", "--output", type=Path, metavar="OUT.csv", help="write here (default: stdout)")
    predict.set_defaults(run=_predict)

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
    gradcheck.add_argument("--seed", type=_non_negative_int, default=0, metavar="S", help="(default 0)")
    gradcheck.set_defaults(run=_gradcheck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        # Under torchrun, fit joins the process group its environment names (gloo on CPUs, nccl on GPUs).
        started = args.command == "fit" and not is_distributed() and init_from_env()
        if not started:
            return args.run(args)
        try:
            if is_main_process():
                status = args.run(args)
                sys.stdout.flush()
            else:
                # rank 0 alone prints and writes files; the other ranks train their shards in silence
                args.save = args.logdir = args.plot = args.checkpoint_every = None
                args.quiet = True
                with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                    status = args.run(args)
            # torchrun stops every rank once one exits with a status other than 0 (1: not converged):
            # the others wait here until rank 0 has written everything
            torch.distributed.barrier()
            return status
        finally:
            torch.distributed.destroy_process_group()
    except (UsageError, DataError, MissingDependencyError) as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of stdout went away (``| head``): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
