"""The command line: ``torch-sigmoid-mlp fit | predict | gradcheck`` (also ``python -m torch_sigmoid_mlp``).

Exit status, so that scripts can rely on it (docs/reliability.md has the table and every bad input):

- ``0``: the fit reached ``--tol`` (or no tolerance was asked for); ``gradcheck``: the gradients agree;
- ``1``: the fit ran to the end (or diverged) without reaching ``--tol``; ``gradcheck``: they disagree;
- ``2``: bad input (a file, a column, an option, an output, a device, a network too large for memory
  or for LM's dense system: the estimator's own refusals); one line on stderr names the problem,
  found before any training where it can be;
- ``70``: an internal error, a bug (``EX_SOFTWARE``); one line, and ``--debug`` shows the traceback;
- ``130``: interrupted with Ctrl-C (after saving what there was, when ``--save`` was given);
- ``141``: stdout was closed early (``predict … | head``): a quiet stop;
- ``143``: terminated by SIGTERM, which ``fit`` handles as Ctrl-C.

Outputs (``--save``, ``--plot``, ``-o``, ``--logdir``) are checked before any work by
:func:`~torch_sigmoid_mlp.outputs.check_output`: an input, a FIFO, a device node or a directory is never
replaced, a symlink is written through, and the directory must take new files.

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

``predict`` finds the model's inputs in DATA.csv by name when the model knows their names (a model
that ``fit`` saved from a CSV file): other columns are copied and ignored, a missing one is bad input.
A model without names (saved from arrays) reads the inputs by position: a file with one column more
than the model's inputs has the target in it (the last column, or ``--target COL``), which is ignored.
The prediction column is named ``<target>_prediction`` when there is one such column, else
``prediction``. ``fit`` uses one intra-op thread for a small problem (:data:`SMALL_PROBLEM`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..core._flat import num_weights, weights_of_sizes
from ..core.gradient_check import compare_gradients
from ..core.memory import check_memory
from ..core.module import SigmoidMLP
from ..estimator.export import check_c_name, export_onnx, write_c
from ..estimator.model_file import is_zip
from ..estimator.outputs import OutputError, atomic_path, check_output
from ..estimator.params import default_max_epochs
from ..estimator.regressor import SigmoidMLPRegressor
from ..training.distributed import (
    default_device,
    end_process_group,
    init_from_env,
    is_distributed,
    is_main_process,
)
from ..training.loop import ConvergenceWarning, TrainResult
from . import options
from .csv_data import DataError, fingerprint, read_csv, write_csv
from .demo import sine_demo
from .options import PROG, UsageError
from .plotting import MissingDependencyError, fit_figure, require_matplotlib

__all__ = ["main"]

EXIT_OK, EXIT_NOT_CONVERGED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE of sysexits.h: a bug, not the user's input
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`
EXIT_TERMINATED = 143  # 128 + SIGTERM


def _device(name: str) -> torch.device:
    """``auto`` is CUDA where there is a GPU, else the CPU; ``cuda`` without one is bad input."""
    if name == "auto":
        return default_device()  # under torchrun, this rank's GPU
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is False)"
        )
    return torch.device(name)


def _same_file(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _check_memory(
    sizes: Sequence[int], T: int, device: torch.device, option: str, dtype: torch.dtype = torch.float32
) -> None:
    """Refuse, before allocating, a network that cannot fit in the memory that is free
    (:func:`~torch_sigmoid_mlp.core.memory.check_memory`, the estimate the estimator makes too)."""
    try:
        check_memory(sizes, T, device, dtype)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


# -- fit ---------------------------------------------------------------------------------------------------


class _StopRequest:
    """Ctrl-C (or SIGTERM) asks the run to stop after the current epoch; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def asked(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame) -> None:
        self.signal = signum
        # the next Ctrl-C is the impatient one: let it raise KeyboardInterrupt as usual
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> _StopRequest:
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class _Terminated(BaseException):
    """SIGTERM outside the training loop: stop at once (a ``BaseException``, as ``KeyboardInterrupt``)."""


def _terminate(signum, frame) -> None:
    raise _Terminated


def _load_model(path: Path, device: str) -> SigmoidMLPRegressor:
    """A saved model, or a one-line ``UsageError`` naming the file."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        zipped = is_zip(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not zipped:
        # torch.save writes a zip archive; anything else would only get torch's long unpickling story
        raise UsageError(f"{path}: not a torch-sigmoid-mlp model file (not written by torch.save)")
    try:
        return SigmoidMLPRegressor.load(path, device=device)
    except ValueError as exc:
        if exc.__cause__ is None:
            # load's own finding about a model file (damaged, non-finite weights): it names the file
            raise UsageError(f"{path}: {_one_line(exc).removeprefix(str(path)).lstrip(' :')}") from None
        reason = _one_line(exc.__cause__)
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
    """Refuse, before any training, outputs that could not be written at the end or would overwrite
    what is not theirs (:func:`~torch_sigmoid_mlp.outputs.check_output`'s rules)."""
    if args.checkpoint_every is not None and args.save is None:
        raise UsageError("--checkpoint-every writes the model to --save MODEL.pt: give --save as well")
    data = [args.data] if args.data is not None else []
    if args.save is not None:
        # --save may be --resume: the run's file is replaced by its continuation
        check_output(args.save, inputs=data, option="--save")
    if args.plot is not None:
        resume = [args.resume] if args.resume is not None else []
        check_output(args.plot, inputs=data + resume, option="--plot")
        if args.save is not None and _same_file(args.plot, args.save):
            raise UsageError(f"--plot {args.plot}: the same file as --save {args.save}")
        require_matplotlib()
        from matplotlib.backend_bases import FigureCanvasBase

        kinds = FigureCanvasBase.get_supported_filetypes()
        if args.plot.suffix.lstrip(".").lower() not in kinds:
            raise UsageError(
                f"--plot {args.plot}: unknown image type; use one of .{', .'.join(sorted(kinds))}"
            )
    if args.logdir is not None:
        check_output(args.logdir, option="--logdir", directory=True)


def _estimator(
    args: argparse.Namespace, X, y, input_names, what: str, demo, device: torch.device
) -> SigmoidMLPRegressor:
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
            restarts=1,
        )
        try:
            est.fit(X, y)
        except ValueError as exc:
            # the estimator's refusals of these settings (a dense solver's size limit, memory that
            # cannot be had) are found before its work starts: bad input, like the options' own
            raise UsageError(_one_line(exc)) from None
        # the fit itself is a fresh one from these weights, with the starts asked for
        return est.set_params(max_epochs=args.epochs, restarts=args.restarts)
    est = _load_model(args.resume, str(device))
    n, sizes = X.shape[1], est.model_.sizes
    if est.n_features_in_ != n:
        raise UsageError(
            f"--resume {args.resume}: the model takes {est.n_features_in_} inputs, {what} has {n}"
        )
    names = getattr(est, "feature_names_in_", None)
    if names is not None and tuple(names) != tuple(input_names) and not args.force_resume:
        raise UsageError(
            f"--resume {args.resume}: the model's inputs are {', '.join(names)}; {what} has "
            f"{', '.join(input_names)} (--force-resume continues all the same, by position)"
        )
    saved = getattr(est, "data_fingerprint_", None)
    if saved is not None and saved != fingerprint(X, y) and not args.force_resume:
        raise UsageError(
            f"--resume {args.resume}: the run was fitted on other points than those of {what} "
            "(--force-resume continues it on these all the same)"
        )
    est.feature_names_in_ = np.asarray(input_names, dtype=object)
    est.data_fingerprint_ = fingerprint(X, y)
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
    done = est.result_.epochs
    if est.max_epochs <= done:
        asked = f"--epochs {args.epochs}" if args.epochs is not None else f"its --epochs {est.max_epochs}"
        raise UsageError(
            f"--resume {args.resume}: the run has taken {done} epochs, {asked} asks for no more; "
            f"give --epochs above {done} to continue it"
        )
    return est.set_params(warm_start=True)


#: ``fit`` trains with one intra-op thread when ``T·P`` (points times weights: the multiply-adds of one
#: pass) is at most this and the user set no ``OMP_NUM_THREADS``: below it a second thread costs more in
#: start-up and synchronisation than it saves (docs/reliability.md has the measurements).
SMALL_PROBLEM = 10**8


def _threads_for(T: int, sizes: Sequence[int], device: torch.device) -> int:
    """Intra-op threads for fitting ``sizes`` on ``T`` points: 1 for a small problem on the CPU, else
    torch's setting as it is."""
    P = weights_of_sizes(sizes)
    if device.type == "cpu" and T * P <= SMALL_PROBLEM and "OMP_NUM_THREADS" not in os.environ:
        # a small product is split into pieces that cost more to hand out than to compute
        return 1
    return torch.get_num_threads()


def _fit(args: argparse.Namespace) -> int:
    device = _device(args.device)
    _check_outputs(args)
    if args.lr is not None and args.lr > torch.finfo(torch.float32).max:
        # the weights are float32: a step size they cannot hold overflows in the first update
        raise UsageError(
            f"--lr {args.lr:g}: larger than the largest float32 ({torch.finfo(torch.float32).max:.3g}), "
            "the weights' precision"
        )
    X, y, input_names, target_name, what, demo = _fit_data(args)
    T = X.shape[0]
    if args.resume is None:
        n = X.shape[1]
        hidden = args.hidden if args.hidden is not None else demo.hidden if demo is not None else (n, n)
        _check_memory((n, *hidden, 1), T, device, f"--hidden {' '.join(map(str, hidden))}")
    threads = torch.get_num_threads()
    try:
        return _fit_run(args, device, X, y, input_names, target_name, what, demo)
    finally:
        # main() may be called in a process that goes on (a test, a notebook): leave torch as it was
        torch.set_num_threads(threads)


def _naming(est: SigmoidMLPRegressor, input_names, X, y):
    """A function that gives ``est`` what ``predict`` matches a CSV's columns by and what ``--resume``
    checks the points with (a fresh ``fit`` clears the names; the fingerprint is taken once)."""
    names, print_ = np.asarray(input_names, dtype=object), fingerprint(X, y)

    def name() -> None:
        est.feature_names_in_, est.data_fingerprint_ = names, print_

    return name


def _fit_run(args, device, X, y, input_names, target_name, what, demo) -> int:
    """``fit`` once the data is read and the outputs are checked."""
    T = X.shape[0]
    try:
        est = _estimator(args, X, y, input_names, what, demo, device)
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as exc:
        # the estimate above is a lower bound: the allocation itself may still fail
        if isinstance(exc, RuntimeError) and "allocate" not in str(exc):
            raise
        raise UsageError(f"not enough memory for this network on {device}: {_one_line(exc)}") from None
    done = est.result_.epochs
    sizes = est.model_.sizes
    name_inputs = _naming(est, input_names, X, y)
    torch.set_num_threads(_threads_for(T, sizes, device))
    unit = _target_unit(est)

    if not args.quiet:
        formula = f" ({demo.formula})" if demo is not None else ""
        method, lr = est.result_.method, est.effective_lr(T)
        rate = f", lr {lr:.4g}" if lr is not None else ""
        settings = f"{_architecture(sizes)}, solver {method}{rate}, tol {_fmt_tol(est.tol)}"
        print(f"fitting {what}{formula}: {T} points, {settings}")
    P, N = num_weights(est.model_.weights), T * est.model_.sizes[-1]
    total = est.max_epochs if est.max_epochs is not None else default_max_epochs(est.result_.method, P, N)
    bar = None if args.quiet else _progress_bar(total=total, initial=done)
    # the run logs itself (each start beyond the first in a folder of its own); the figure follows
    est.set_params(logdir=None if args.logdir is None else str(args.logdir))

    def callback(epoch: int, result: TrainResult) -> bool:
        # epoch counts from the start of the run, and result is the run so far
        if bar is not None:
            bar.set_postfix(
                E=f"{result.final_loss:.3e}", max_err=f"{result.max_abs_error * unit:.3g}", refresh=False
            )
            if epoch < bar.n:  # the next start
                bar.reset(total=bar.total)
            bar.update(epoch - bar.n)
        if args.checkpoint_every is not None and epoch > done and epoch % args.checkpoint_every == 0:
            # est.result_ is now the record of a run stopped here (of the start that is running):
            # the same file as a Ctrl-C there
            name_inputs()
            est.save(args.save)
        return not stop.asked

    try:
        with _StopRequest() as stop:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    est.fit(X, y, callback=callback)
                name_inputs()
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
        figure_note = _figure(args, est, result, X, y, input_names, target_name, max_error)
    finally:
        if bar is not None:
            bar.close()
    interrupted = result.stop_reason == "callback"

    outputs = {"model": args.save, "plot": args.plot, "TensorBoard": args.logdir}
    _report(result, est, T, input_names, target_name, device, done, max_error, outputs, figure_note)
    if not args.quiet:
        for warning in caught:
            if issubclass(warning.category, ConvergenceWarning):
                print(f"{PROG}: warning: {warning.message}", file=sys.stderr)

    if interrupted:
        # SIGINT or SIGTERM here; another rank's stop (under torchrun) counts as a Ctrl-C
        return 128 + (stop.signal or signal.SIGINT)
    if result.stop_reason == "diverged" or (est.tol is not None and not result.converged):
        return EXIT_NOT_CONVERGED
    return EXIT_OK


def _figure(args, est, result, X, y, input_names, target_name, max_error) -> str:
    """The fit's figure to ``--plot`` and to TensorBoard (``--logdir``); a note when there is none."""
    if args.plot is None and args.logdir is None:
        return ""
    try:
        require_matplotlib()
    except MissingDependencyError:
        return " (no figure: matplotlib is not installed)"
    title = f"{_architecture(est.model_.sizes)}, {result.epochs} epochs, max |error| {max_error:.3g}"
    figure = fit_figure(
        X, y, est.predict, result.loss_history, tol=est.tol, input_names=input_names,
        target_name=target_name, title=title,
    )  # fmt: skip
    if args.plot is not None:
        with atomic_path(args.plot) as tmp:
            figure.savefig(tmp, format=args.plot.suffix.lstrip(".").lower(), dpi=100)
    if args.logdir is not None:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(args.logdir)) as writer:
            writer.add_figure("fit", figure, global_step=result.epochs)
    return ""


def _report(result, est, T, input_names, target_name, device, done, max_error, outputs, figure_note) -> None:
    """The table at the end of ``fit``: what was fitted, how well, and where the outputs went."""
    n = len(input_names)
    rows = [
        ("points", f"{T} ({n} input{'s' if n > 1 else ''}: {', '.join(input_names)}; target: {target_name})"),
        ("architecture", f"{_architecture(est.model_.sizes)} on {device}"),
        ("epochs", f"{result.epochs}" + (f" ({done} before --resume)" if done else "")),
        *_starts(result),
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


def _starts(result: TrainResult) -> list[tuple[str, str]]:
    """The report's line on the starts, when there were several."""
    if len(result.restarts) <= 1:
        return []
    stops = ", ".join(r.stop_reason for r in result.restarts)
    return [("starts", f"{len(result.restarts)}, the best is start {result.start} (stops: {stops})")]


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
    if result.stop_reason == "converged":
        reached = "" if tol is None else f"; max |error| {max_error / tol:.3g} x tol"
        return f"done: further epochs no longer lowered the loss (after {result.epochs}){reached}"
    if tol is None:
        return f"done: ran {result.epochs} epochs (no --tol asked for)"
    return f"not converged: max |error| is {max_error / tol:.3g} x tol after {result.epochs} epochs"


def _progress_bar(total: int, initial: int):
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"{PROG}: no progress bar: tqdm is not installed (pip install tqdm)", file=sys.stderr)
        return None
    # drawn on a terminal only (disable=None): written to a file or a pipe, its carriage returns do not
    # erase it, and the bar would stand in the log beside, or after, the results
    return tqdm(
        total=total, initial=initial, unit="epoch", desc="fit", leave=False, dynamic_ncols=True, disable=None
    )


# -- predict -----------------------------------------------------------------------------------------------


def _predict_columns(
    args: argparse.Namespace, est: SigmoidMLPRegressor, table
) -> tuple[list[int], int | None]:
    """The columns of ``table`` that are the model's inputs, in its order, and the target's (or None).

    By name when the model knows its inputs' names (a CSV fitted by ``fit``): other columns are
    copied and ignored. By position for a model without names: the inputs, and optionally the target.
    """
    n, columns = est.n_features_in_, table.columns
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        missing = [name for name in names if name not in columns]
        if missing:
            raise DataError(
                f"{table.path}: no column named {missing[0]!r}, an input of the model {args.model} "
                f"(its inputs: {', '.join(names)})"
            )
        inputs = [columns.index(name) for name in names]
        if args.target is not None:
            return inputs, table.column(args.target)
        others = [i for i in range(len(columns)) if i not in inputs]
        return inputs, others[0] if len(others) == 1 else None
    if len(columns) == n:
        return list(range(n)), None
    if len(columns) == n + 1:
        target = table.column(args.target) if args.target is not None else n
        return [i for i in range(n + 1) if i != target], target
    raise DataError(
        f"{table.path}: has {len(columns)} columns; the model {args.model} takes {n} input"
        f"{'s' if n > 1 else ''}, plus optionally the target column"
    )


def _predict(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, inputs=[args.model, args.data], option="-o")
    est = _load_model(args.model, "cpu")
    table = read_csv(args.data)
    columns = table.columns
    inputs, target = _predict_columns(args, est, table)
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
    n = args.in_features
    hidden = tuple(args.hidden) if args.hidden is not None else (n, n)
    # the model is drawn on the CPU and moved: both hold it once, and autograd's pass a second time
    for where in {torch.device("cpu"), device}:
        _check_memory((n, *hidden, 1), args.points, where, "gradcheck", dtype)
    g = torch.Generator().manual_seed(args.seed)
    model = SigmoidMLP(n, hidden, dtype=dtype, generator=g).to(device)
    # random test points, and targets inside (0.1, 0.9) where the scaler puts real ones
    x = (0.1 + 0.8 * torch.rand(args.points, args.in_features, generator=g, dtype=dtype)).to(device)
    d = (0.1 + 0.8 * torch.rand(args.points, 1, generator=g, dtype=dtype)).to(device)
    report = compare_gradients(model, x, d)
    print(f"{model}, T = {args.points} random points, {args.dtype} on {device}")
    print(report)
    return EXIT_OK if report.agree else EXIT_NOT_CONVERGED


# -- export -----------------------------------------------------------------------------------------------


def _export_usage(args: argparse.Namespace, out: Path) -> None:
    """What ``export``'s options say about each other, checked before anything is read."""
    suffix = out.suffix.lower()
    if suffix not in (".onnx", ".c"):
        got = f"{out.suffix!r}" if out.suffix else "none"
        raise UsageError(f"export {out}: the suffix of OUT chooses the format, .onnx or .c; got {got}")
    if suffix == ".onnx":
        if args.name is not None:
            raise UsageError(f"export: --name names the C function, for a .c file; {out} is ONNX")
        for option, value in (("--check", args.check), ("--target", args.target), ("--tol", args.tol)):
            if value is not None:
                raise UsageError(f"export: {option} is for a .c file; {out} is ONNX")
        if args.arithmetic != "float64":
            raise UsageError(f"export: --arithmetic is for a .c file; {out} is ONNX")
    if args.target is not None and args.check is None:
        raise UsageError("export: --target names --check's target column; give --check DATA.csv")
    if args.name is not None:
        try:
            check_c_name(args.name)
        except ValueError as exc:
            raise UsageError(f"export --name: {exc}") from None


def _check_points(args: argparse.Namespace, est: SigmoidMLPRegressor):
    """``(X, y)`` from ``--check``: the model's inputs and its target column(s)."""
    table = read_csv(args.check)
    n, m = est.n_features_in_, est.model_.out_features
    if m == 1:
        inputs, target = _predict_columns(args, est, table)
        if target is None:
            raise DataError(
                f"{table.path}: --check needs the target beside the model's {n} input"
                f"{'s' if n > 1 else ''} (--target names it)"
            )
        targets = [target]
    elif len(table.columns) == n + m:
        inputs, targets = list(range(n)), list(range(n, n + m))
    else:
        raise DataError(
            f"{table.path}: has {len(table.columns)} columns; --check of a model with {m} outputs takes "
            f"its {n} inputs, then its {m} targets"
        )
    return table.values[:, inputs], table.values[:, targets]


def _export(args: argparse.Namespace) -> int:
    out = args.output
    _export_usage(args, out)
    inputs = [args.model] if args.check is None else [args.model, args.check]
    check_output(out, inputs=inputs, option="export OUT")
    est = _load_model(args.model, "cpu")
    X, y = _check_points(args, est) if args.check is not None else (None, None)
    name = args.name or "tsm_predict"
    check = None
    try:
        if out.suffix.lower() == ".onnx":
            export_onnx(est, out)
        else:
            check = write_c(est, out, name=name, arithmetic=args.arithmetic, X=X, y=y, tol=args.tol)
    except ValueError as exc:
        raise UsageError(f"export {args.model}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"export {out}: cannot be written ({exc.strerror or exc})") from None
    n, m = est.n_features_in_, est.model_.out_features
    if out.suffix.lower() == ".onnx":
        y_shape = "(N,)" if est._y_1d else f"(N, {m})"
        print(f"wrote {out}: ONNX, input x (N, {n}), output y {y_shape}, in the data's units")
        return EXIT_OK
    arithmetic = "float64" if check is None else check.arithmetic
    if arithmetic == "float64":
        print(f"wrote {out}: C99, void {name}(const double *x, double *y), x[{n}] in, y[{m}] out")
    elif arithmetic == "float32":
        print(f"wrote {out}: C99 float32, no libm, x[{n}] in, y[{m}] out")
        print(f"  void {name}(const float *x, float *y)")
    else:
        print(f"wrote {out}: C99 {arithmetic} fixed point, x[{n}] in, y[{m}] out")
        print(f"  void {name}(const {name}_WORD *x, {name}_WORD *y)")
        print(f"  X_SHIFT {check.plan.inputs.shift}, Y_SHIFT {check.plan.outputs.shift}")
    if check is not None:
        print(check.summary())
    return EXIT_NOT_CONVERGED if check is not None and check.holds is False else EXIT_OK


# -- the parser -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``fit``, ``predict``, ``gradcheck`` and ``export`` (:mod:`.options`), each
    subcommand set to run its function here; a bad option raises :class:`UsageError`."""
    return options.build_parser(fit=_fit, predict=_predict, gradcheck=_gradcheck, export=_export)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Every status is in the table of the module's docstring; nothing but ``--debug`` shows a traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return _main(argv)
    except (UsageError, DataError, OutputError, MissingDependencyError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # the reader of stdout went away (``| head``): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if debug:
            traceback.print_exc()
        else:
            print(
                f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
                "(a bug in torch-sigmoid-mlp; rerun with --debug for the traceback)",
                file=sys.stderr,
            )
        return EXIT_INTERNAL_ERROR
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
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
    except BaseException:
        # the other ranks may be inside a collective: no barrier to wait for them at
        end_process_group(wait=False)
        raise
    # torchrun stops every rank once one exits with a status other than 0 (1: not converged):
    # end_process_group's barrier keeps the others until rank 0 has written everything
    end_process_group()
    return status
