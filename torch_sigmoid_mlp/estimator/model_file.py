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
from ..core.module import SigmoidMLP
from ..training.loop import TrainResult
from .normalization import MinMaxScaler
from .outputs import atomic_path, check_output
from .params import DTYPES, check_device

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
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
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
    return state


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
