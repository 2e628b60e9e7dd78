"""The model file of :meth:`SigmoidMLPRegressor.save <torch_sigmoid_mlp.SigmoidMLPRegressor.save>`:
its versioned schema, written atomically, read without running code from it.

A model file is ``torch.save``'s zip archive of one dict of tensors and plain Python values, which
:func:`read` loads with ``torch.load(weights_only=True)``::

    format            "torch-sigmoid-mlp/regressor/3" (FORMAT)
    params            the constructor's arguments as plain values
    sizes, weights    the network: (n, hidden..., m) and W^(0), …, W^(L−1)
    x_scaler,         the fitted MinMaxScalers' state_dicts
    y_scaler
    y_1d              whether fit got a 1-D y
    result            the run's TrainResult as a dict, its histories bounded (HISTORY_KEPT)
    generator         the state of the generator that draws the batch orders (uint8), or None
    feature_names     the DataFrame's column names, or None
    data_fingerprint  the command line's fingerprint of the training data, or None
    sha256            a SHA-256 of all the above (digest)

Versions: ``/2`` added ``warm_start`` and the generator's state; ``/3`` the SHA-256,
``feature_names``, ``data_fingerprint`` and the bounded histories. ``/1`` and ``/2`` files still
load (``/1`` ones resume on full batches only: they draw no order).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core._checks import check_integer
from ..core._flat import weights_of_sizes
from ..core.module import SigmoidMLP
from ..training.loop import STOP_REASONS, TrainResult
from .normalization import MinMaxScaler
from .outputs import atomic_path, check_output
from .params import DEFAULT_WIDTH, DTYPES, check_device, hidden_candidates

__all__ = ["FORMAT", "HISTORY_KEPT", "READABLE", "digest", "is_zip", "read", "write"]

#: The format :func:`write` writes.
FORMAT = "torch-sigmoid-mlp/regressor/3"
#: The formats :func:`read` reads, oldest first.
READABLE = ("torch-sigmoid-mlp/regressor/1", "torch-sigmoid-mlp/regressor/2", FORMAT)

#: A model file keeps ``E`` (and the validation SSE) of at most this many of the run's last epochs:
#: 80 kB as float64, so that a checkpoint of a long run costs what one of a short run does. The
#: run's :class:`~torch_sigmoid_mlp.TrainResult` in memory keeps all of them.
HISTORY_KEPT = 10_000


def write(est, path) -> None:
    """Write a fitted estimator to ``path`` atomically (see :meth:`SigmoidMLPRegressor.save`)."""
    for l, W in enumerate(est.model_.weights):
        if not bool(torch.isfinite(W).all()):
            raise ValueError(f"W^({l}) holds NaN or infinite values: refusing to save a broken model")
    check_output(path)
    generator = getattr(est, "_generator", None)
    names = getattr(est, "feature_names_in_", None)
    state = {
        "format": FORMAT,
        "params": plain_params(est.get_params(), est._settings()),
        "sizes": list(est.model_.sizes),
        "weights": [W.detach().cpu() for W in est.model_.weights],
        "x_scaler": _cpu_state(est.x_scaler_),
        "y_scaler": _cpu_state(est.y_scaler_),
        "y_1d": est._y_1d,
        "result": bounded(dataclasses.asdict(est.result_)),
        # a uint8 tensor, which torch.load(weights_only=True) reads; None after loading a /1 file
        "generator": None if generator is None else generator.get_state(),
        "feature_names": None if names is None else [str(name) for name in names],
        "data_fingerprint": getattr(est, "data_fingerprint_", None),
    }
    state["sha256"] = digest(state)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        # on disk before the rename, so that a power cut cannot leave `path` naming an empty file
        os.fsync(f.fileno())


def read(cls, path, device=None):
    """The estimator of class ``cls`` that ``path`` holds (see :meth:`SigmoidMLPRegressor.load`)."""
    if device is not None:
        check_device(device)  # a device this machine lacks is named as such, not as a bad file
    path = Path(path)
    state = read_state(path)
    try:
        return _estimator(cls, state, device)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError, OverflowError) as exc:
        raise ValueError(f"{path} is not a compatible SigmoidMLPRegressor file: {exc}") from exc


def read_state(path: Path) -> dict:
    """The dict a model file holds, its format one of :data:`READABLE` and its checksum (``/3``) right."""
    if not path.is_file():
        raise ValueError(f"no model file at {path}")
    try:
        zipped = is_zip(path)
    except OSError as exc:
        raise ValueError(f"{path} is not a readable model file ({exc.strerror or exc})") from exc
    if not zipped:
        # save() writes torch.save's zip archive; anything else would only get unpickling's story
        raise ValueError(f"{path} is not a readable model file (not a zip archive, which save() writes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable model file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") not in READABLE:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not a compatible SigmoidMLPRegressor file: format {found!r}, expected {FORMAT!r}"
        )
    if state["format"] == FORMAT:
        saved = state.pop("sha256", None)
        if saved != digest(state):
            raise ValueError(f"{path} is damaged: its contents do not match the checksum it was saved with")
    elif "sha256" in state:
        # /1 and /2 wrote no checksum: a file that has one is a /3 file whose format string changed
        raise ValueError(
            f"{path} is damaged: it claims the format {state['format']!r}, which has no checksum, "
            "yet holds one"
        )
    try:
        check_state(state)
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid model file: {exc}") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # a value of a type no check foresaw: still the file's fault, named as such
        raise ValueError(f"{path} is not a valid model file ({type(exc).__name__}: {exc})") from None
    return state


#: A saved run's history is put back at its full length (NaN where not kept): a file may claim at most
#: this many epochs (a list of 80 MB), far beyond any solver's default ``max_epochs``.
MAX_EPOCHS_IN_FILE = 10**7

#: The fields of each format, oldest first: a file holds exactly these.
FIELDS = {
    READABLE[0]: {"format", "params", "sizes", "weights", "x_scaler", "y_scaler", "y_1d", "result"},
}
FIELDS[READABLE[1]] = FIELDS[READABLE[0]] | {"generator"}
FIELDS[FORMAT] = FIELDS[READABLE[1]] | {"feature_names", "data_fingerprint"}


def check_state(state: dict) -> None:
    """Every field of a file's state checked for type, shape and sanity, before anything is built from it.

    The sizes must be those of the weights' own tensors (so nothing is allocated beyond what the file
    holds), a history no longer than the run's epochs, which are bounded by :data:`MAX_EPOCHS_IN_FILE`;
    names distinct strings, scalers of the network's inputs and outputs. Raises ``ValueError`` naming
    the field. A file of format ``/1`` or ``/2`` has no checksum and passes every other check.
    """
    fields = FIELDS[state["format"]]
    unknown, missing = set(state) - fields - {"sha256"}, fields - set(state)
    if unknown or missing:
        what = (
            f"unknown fields {sorted(map(str, unknown))}" if unknown else f"no field {sorted(missing)[0]!r}"
        )
        raise ValueError(f"{what} for the format {state['format']!r}")
    sizes = _check_sizes(state["sizes"], state["weights"])
    if not isinstance(state["params"], dict) or not all(isinstance(k, str) for k in state["params"]):
        raise ValueError("params: not a dict of named settings")
    dtype = state["params"].get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"params: dtype must be one of {sorted(DTYPES)}, got {_short(dtype)}")
    _check_hidden(state["params"].get("hidden"), sizes)
    _check_scaler(state["x_scaler"], "x_scaler", sizes[0])
    _check_scaler(state["y_scaler"], "y_scaler", sizes[-1])
    if not isinstance(state["y_1d"], bool) or (state["y_1d"] and sizes[-1] != 1):
        raise ValueError(
            f"y_1d: must be True or False, and False for {sizes[-1]} outputs; got {state['y_1d']!r}"
        )
    P = weights_of_sizes(sizes)
    _check_result(state["result"], "result", [W.shape for W in state["weights"]], P, depth=0)
    generator = state.get("generator")
    if generator is not None and not (
        isinstance(generator, Tensor)
        and generator.dtype == torch.uint8
        and generator.shape == _GENERATOR_SHAPE
    ):
        raise ValueError(f"generator: not the state of a torch.Generator (uint8, {tuple(_GENERATOR_SHAPE)})")
    names = state.get("feature_names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != sizes[0]
        or not all(isinstance(n, str) for n in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(f"feature_names: must be a list of {sizes[0]} distinct strings, got {_short(names)}")
    fingerprint = state.get("data_fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, str) and len(fingerprint) <= 256):
        raise ValueError(f"data_fingerprint: must be a string, got {_short(fingerprint)}")


_GENERATOR_SHAPE = torch.Generator().get_state().shape


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_sizes(sizes, weights) -> tuple[int, ...]:
    """``sizes`` as a tuple, checked against the weights' own shapes: ``W^(l)`` is
    ``(size_{l+1}, size_l)``."""
    if (
        not isinstance(sizes, list)
        or not len(sizes) >= 2
        or not all(type(n) is int and n >= 1 for n in sizes)
    ):
        raise ValueError(f"sizes: must be a list of at least 2 positive integers, got {_short(sizes)}")
    if not isinstance(weights, list) or len(weights) != len(sizes) - 1:
        raise ValueError(f"weights: must be a list of {len(sizes) - 1} matrices for sizes {_short(sizes)}")
    for l, W in enumerate(weights):
        if not isinstance(W, Tensor) or not W.is_floating_point():
            raise ValueError(f"weights: W^({l}) is not a floating-point tensor")
        if W.shape != (sizes[l + 1], sizes[l]):
            raise ValueError(
                f"weights: W^({l}) has the shape {tuple(W.shape)}, sizes say {(sizes[l + 1], sizes[l])}"
            )
        if not bool(torch.isfinite(W).all()):
            raise ValueError(f"weights: W^({l}) holds NaN or infinite values")
    return tuple(sizes)


def _check_hidden(hidden, sizes: tuple[int, ...]) -> None:
    """``params["hidden"]`` names the hidden layers the weights have (``"auto"``: one of its candidates)."""
    n, layers = sizes[0], sizes[1:-1]
    if hidden is None:
        expected = [(max(DEFAULT_WIDTH, n),) * 2]
    elif isinstance(hidden, str) and hidden == "auto":
        expected = hidden_candidates(n)
    elif type(hidden) is int:
        expected = [(hidden,)]
    else:
        expected = [tuple(hidden)] if isinstance(hidden, (list, tuple)) else []
    if layers not in expected:
        raise ValueError(f"params: hidden={_short(hidden)} is not the hidden layers {list(layers)}")


def _check_scaler(state, name: str, columns: int) -> None:
    """A fitted :class:`MinMaxScaler`'s state for ``columns`` columns: a range ``(a, b)``, finite minima
    and maxima of shape ``(columns,)`` whose spans are finite."""
    if not isinstance(state, dict) or set(state) != {"feature_range", "data_min", "data_max"}:
        raise ValueError(f"{name}: not a MinMaxScaler's state")
    lo_hi = state["feature_range"]
    if not (
        isinstance(lo_hi, (list, tuple))
        and len(lo_hi) == 2
        and all(isinstance(v, float) and math.isfinite(v) for v in lo_hi)
        and lo_hi[0] < lo_hi[1]
    ):
        raise ValueError(f"{name}: feature_range must be two finite floats a < b, got {_short(lo_hi)}")
    lo, hi = state["data_min"], state["data_max"]
    for part, value in (("data_min", lo), ("data_max", hi)):
        if not isinstance(value, Tensor) or not value.is_floating_point() or value.shape != (columns,):
            raise ValueError(f"{name}: {part} must be a float tensor of shape ({columns},)")
    span = hi.double() - lo.double()
    if not bool(torch.isfinite(span).all() and (span >= 0).all()):
        raise ValueError(f"{name}: data_min and data_max do not describe a finite range")


#: A saved result's fields and their types (``float`` admits an ``int``; ``None`` where optional).
_RESULT_TYPES = {
    "epochs": int, "converged": bool, "stop_reason": str, "final_loss": float, "max_abs_error": float,
    "loss_history": list, "val_history": list, "seconds": float, "restarts": list, "start": int,
    "method": str, "solver_state": dict, "r2": (float, None), "evidence": (float, None), "merits": list,
    "members": list, "history_length": list,
}  # fmt: skip


def _is(value, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is None and value is None:
            return True
        if k is float and type(value) in (float, int):
            return True
        if k is int and type(value) is int:
            return True
        if k not in (None, float, int) and isinstance(value, k):
            return True
    return False


def _check_result(saved, name: str, shapes: list, P: int, depth: int) -> None:
    """A saved :class:`TrainResult`: its fields' types, its epochs and history lengths bounded, the
    tensors of its solver state shaped like the weights (or ``(P,)``, or scalars)."""
    if not isinstance(saved, dict):
        raise ValueError(f"{name}: not a saved TrainResult")
    unknown = set(saved) - set(_RESULT_TYPES)
    missing = {"epochs", "converged", "stop_reason", "final_loss", "max_abs_error"} - set(saved)
    if unknown or missing:
        raise ValueError(
            f"{name}: unknown fields {sorted(map(str, unknown))}" if unknown else f"{name}: no {min(missing)}"
        )
    for key, value in saved.items():
        if not _is(value, _RESULT_TYPES[key]):
            raise ValueError(f"{name}.{key}: has the wrong type ({type(value).__name__})")
    epochs = saved["epochs"]
    if not 0 <= epochs <= MAX_EPOCHS_IN_FILE:
        raise ValueError(f"{name}.epochs: must lie in [0, {MAX_EPOCHS_IN_FILE}], got {epochs}")
    if saved["stop_reason"] not in STOP_REASONS:
        raise ValueError(f"{name}.stop_reason: {_short(saved['stop_reason'])} is not a stop reason")
    for key in ("loss_history", "val_history"):
        if len(saved.get(key, ())) > epochs + 1 or not all(_is(v, float) for v in saved.get(key, ())):
            raise ValueError(f"{name}.{key}: must be at most {epochs + 1} numbers (epochs + 1)")
    lengths = saved.get("history_length")
    if lengths is not None:
        kept = [len(saved.get(key, ())) for key in ("loss_history", "val_history")]
        if len(lengths) != 2 or not all(
            type(n) is int and k <= n <= epochs + 1 for n, k in zip(lengths, kept)
        ):
            raise ValueError(
                f"{name}.history_length: must be 2 lengths between those kept {kept} and epochs + 1 = "
                f"{epochs + 1}, got {_short(lengths)}"
            )
    if not all(
        _is(m, list) and len(m) == 2 and all(_is(v, float) for v in m) for m in saved.get("merits", [])
    ):
        raise ValueError(f"{name}.merits: must be pairs [epoch, value]")
    _check_solver_state(saved.get("solver_state", {}), f"{name}.solver_state", shapes, P)
    for key in ("restarts", "members"):
        parts = saved.get(key, [])
        if parts and depth > 0:
            raise ValueError(f"{name}.{key}: a start's result holds no {key} of its own")
        for i, part in enumerate(parts):
            _check_result(part, f"{name}.{key}[{i}]", shapes, P, depth + 1)


def _check_solver_state(value, name: str, shapes: list, P: int) -> None:
    """Plain values, strings and tensors, nested in lists and dicts; every tensor a scalar, ``(P,)``, a
    weight's shape or a generator's state, finite where it is floating-point."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise ValueError(f"{name}: a key of type {type(key).__name__}")
            _check_solver_state(item, f"{name}.{key}", shapes, P)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_solver_state(item, f"{name}[{i}]", shapes, P)
    elif isinstance(value, Tensor):
        if value.shape not in ((), (P,), *shapes):
            raise ValueError(f"{name}: a tensor of shape {tuple(value.shape)}, not one the solver keeps")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}: holds NaN or infinite values")
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise ValueError(f"{name}: a value of type {type(value).__name__}")


def is_zip(path: Path) -> bool:
    """Whether ``path`` opens as ``torch.save``'s zip archive does; ``OSError`` where it cannot be read."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _estimator(cls, state: dict, device):
    """The estimator a file's state describes; a ``ValueError`` (or another error) where it does not fit."""
    params = dict(state["params"])
    dtype = DTYPES[params["dtype"]]
    params["target_range"] = tuple(params["target_range"])
    if isinstance(params["hidden"], list):
        params["hidden"] = tuple(params["hidden"])
    if device is not None:
        params["device"] = device
    reg = cls(**params)
    sizes, weights = tuple(state["sizes"]), state["weights"]
    reg.model_ = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], device=reg._settings().device, dtype=dtype)
    if len(weights) != len(reg.model_.weights):
        raise ValueError(f"{len(weights)} weight matrices for sizes {sizes}")
    with torch.no_grad():
        for l, (mine, saved) in enumerate(zip(reg.model_.weights, weights)):
            if not isinstance(saved, Tensor) or saved.shape != mine.shape:
                raise ValueError(f"a weight matrix does not have the shape {tuple(mine.shape)}")
            if not bool(torch.isfinite(saved).all()):
                raise ValueError(f"W^({l}) holds NaN or infinite values")
            mine.copy_(saved)
    reg.x_scaler_ = MinMaxScaler().load_state_dict(state["x_scaler"])
    reg.y_scaler_ = MinMaxScaler().load_state_dict(state["y_scaler"])
    if reg.x_scaler_.data_min_ is None or reg.x_scaler_.data_min_.shape != (sizes[0],):
        raise ValueError("the input scaler does not match the network's inputs")
    reg.n_features_in_ = sizes[0]
    reg._y_1d = bool(state["y_1d"])
    reg.result_ = result(state["result"])
    reg._generator = None
    saved = state["generator"] if state["format"] != READABLE[0] else None
    if saved is not None:
        if not isinstance(saved, Tensor) or saved.dtype != torch.uint8:
            raise ValueError("the generator state is not a uint8 tensor")
        reg._generator = torch.Generator()
        reg._generator.set_state(saved)
    names = state.get("feature_names")
    if names is not None:
        if len(names) != sizes[0] or not all(isinstance(n, str) for n in names):
            raise ValueError(f"feature_names must be {sizes[0]} strings, got {names!r}")
        reg.feature_names_in_ = np.asarray(names, dtype=object)
    if state.get("data_fingerprint") is not None:
        reg.data_fingerprint_ = str(state["data_fingerprint"])
    return reg


def plain_params(params: dict, s) -> dict:
    """The parameters as plain Python values (what ``torch.load(weights_only=True)`` reads back).

    ``params`` are those the constructor stored, ``s`` the same checked (``_settings()``).
    """
    raw, params = params, dict(params)
    for name in ("lr", "tol", "max_epochs", "batch_size", "n_iter_no_change", "restarts", "momentum"):
        params[name] = getattr(s, name)
    params["validation_fraction"] = s.validation_fraction
    params["target_range"] = list(s.target_range)
    # an int stays an int, so that a loaded estimator's parameters are those it was saved with
    one = isinstance(raw["hidden"], numbers.Integral)
    params["hidden"] = s.hidden if s.hidden in (None, "auto") else s.hidden[0] if one else list(s.hidden)
    params["dtype"] = str(s.dtype).removeprefix("torch.")
    params["device"] = str(raw["device"])
    params["seed"] = check_integer(raw["seed"], "seed", low=0)
    params["random_state"] = check_integer(raw["random_state"], "random_state", low=0, optional=True)
    params["warm_start"] = bool(raw["warm_start"])
    params["progress"] = bool(raw["progress"])
    params["logdir"] = None if raw["logdir"] is None else str(raw["logdir"])
    return params


def _cpu_state(scaler: MinMaxScaler) -> dict:
    state = scaler.state_dict()
    state["feature_range"] = list(state["feature_range"])
    return {k: v.cpu() if isinstance(v, Tensor) else v for k, v in state.items()}


def bounded(result: dict) -> dict:
    """A result (``asdict``) whose histories keep their last :data:`HISTORY_KEPT` entries.

    ``history_length`` records how many there were, so that :func:`result` can put each kept
    entry back at its epoch.
    """
    out = dict(result)
    out["history_length"] = [len(result["loss_history"]), len(result["val_history"])]
    out["loss_history"] = list(result["loss_history"][-HISTORY_KEPT:])
    out["val_history"] = list(result["val_history"][-HISTORY_KEPT:])
    out["restarts"] = [bounded(r) for r in result.get("restarts", [])]
    return out


def result(saved: dict) -> TrainResult:
    """The :class:`TrainResult` of a saved result: ``loss_history[k]`` is NaN where not kept."""
    saved = dict(saved)
    lengths = saved.pop("history_length", None)
    if lengths is not None:
        for key, length in zip(("loss_history", "val_history"), lengths):
            kept = list(saved[key])
            saved[key] = [math.nan] * (length - len(kept)) + kept
    saved["restarts"] = [result(r) for r in saved.get("restarts", [])]
    return TrainResult(**saved)


def digest(value) -> str:
    """SHA-256 of a saved state's contents: every tensor's dtype, shape and bytes, every plain value.

    Dicts are read in sorted key order, so the digest does not depend on how the file stored them.
    """
    h = hashlib.sha256()

    def feed(v) -> None:
        if isinstance(v, Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            h.update(f"D{len(v)}".encode())
            for k in sorted(v, key=str):
                feed(str(k))
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(f"L{len(v)}".encode())
            for item in v:
                feed(item)
        else:
            # repr keeps every bit of a float (and tells 1 from 1.0 from True)
            h.update(f"V{v!r};".encode())

    feed(value)
    return h.hexdigest()
