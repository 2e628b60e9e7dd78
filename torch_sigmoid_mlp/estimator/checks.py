"""The regressor's input checks: ``X``, ``y`` and ``sample_weight`` as float64 CPU tensors, or a clear error.

Arrays, tensors, lists and ``DataFrame``\\ s are welcome; sparse matrices, complex numbers, strings,
NaN and infinity are refused with scikit-learn's wording (its estimator checks match on it).
A fitted estimator's own checks (:func:`check_X`, :func:`check_more_data`) also compare the data
with what it was fitted on: the number of columns, their names, the targets' range.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from ..core._checks import check_points, check_sample_weight
from .protocol import not_fitted_error

__all__ = [
    "as_2d",
    "as_tensor",
    "check_X",
    "check_fitted",
    "check_more_data",
    "check_weights",
    "check_xy",
    "check_y",
    "feature_names",
]


def check_fitted(est) -> None:
    """Raise scikit-learn's ``NotFittedError`` (or ours without it) before ``fit`` has run."""
    if not hasattr(est, "model_"):
        raise not_fitted_error()(
            f"This {type(est).__name__} instance is not fitted yet: call fit with appropriate "
            "arguments before using this estimator"
        )


def as_tensor(value, name: str) -> Tensor:
    """``value`` as a contiguous float64 CPU tensor (the scalers' precision: data may be large).

    A numpy array is copied first, so that any strides (negative ones too) and read-only
    memory work and the tensor never shares the caller's memory.
    """
    if value is None:
        raise ValueError(f"{name} is None; expected array-like (array or non-string sequence)")
    if isinstance(value, Tensor):
        if value.layout != torch.strided:
            raise TypeError(f"{name} is a sparse tensor ({value.layout}); pass {name}.to_dense()")
        if value.is_complex():
            raise ValueError(f"Complex data not supported: {name} has dtype {value.dtype}")
        return value.detach().to(device="cpu", dtype=torch.float64).contiguous()
    if _is_sparse(value):
        raise TypeError(
            f"{name} is a sparse matrix ({type(value).__name__}) and sparse input is not "
            f"supported: pass dense data, {name}.toarray()"
        )
    try:
        array = np.asarray(value)
        if np.iscomplexobj(array):
            raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}")
        array = np.array(array, dtype=np.float64, order="C")
    except TypeError as exc:  # an element that is no number: scikit-learn calls this a TypeError
        raise TypeError(f"{name} must be numeric: {exc}") from exc
    except ValueError as exc:
        if str(exc).startswith("Complex"):
            raise
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    return torch.from_numpy(array)


def check_X(est, X) -> Tensor:
    """``X`` for a fitted estimator: its column names (if it had some) and number of columns."""
    names = feature_names(X)
    X_t = as_2d(X)
    cls = type(est).__name__
    fitted = getattr(est, "feature_names_in_", None)
    # a tensor never carries column names: it is read by position, as the command line reads a CSV
    if fitted is not None and names is None and not isinstance(X, Tensor):
        warnings.warn(
            f"X does not have valid feature names, but {cls} was fitted with feature names",
            UserWarning,
            stacklevel=3,
        )
    elif fitted is None and names is not None:
        warnings.warn(
            f"X has feature names, but {cls} was fitted without feature names", UserWarning, stacklevel=3
        )
    elif fitted is not None and names is not None and (len(names) != len(fitted) or (names != fitted).any()):
        unseen = [n for n in names if n not in set(fitted)]
        missing = [n for n in fitted if n not in set(names)]
        parts = [f"unseen at fit time: {unseen}"] if unseen else []
        parts += [f"seen at fit time, yet now missing: {missing}"] if missing else []
        if not parts:
            parts = [f"in another order than in fit, {list(fitted)}: got {list(names)}"]
        raise ValueError(
            f"The feature names should match those that were passed during fit; feature names "
            f"{'; '.join(parts)}"
        )
    if X_t.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X_t.shape[1]} features, but {cls} is expecting {est.n_features_in_} features as input"
        )
    if not bool(torch.isfinite(X_t).all()):
        raise ValueError("X contains NaN or infinite values")
    return X_t


def as_2d(X) -> Tensor:
    """``X`` as a ``(T, n)`` float64 tensor; a 1-D ``X`` is refused with scikit-learn's advice."""
    X = as_tensor(X, "X")
    if X.dim() != 2:
        raise ValueError(
            f"X must have shape (T, n), got {tuple(X.shape)}: Reshape your data with "
            "X.reshape(-1, 1) if it has a single feature, or X.reshape(1, -1) if it is a single "
            "test point"
        )
    return X


def check_y(est, y, X: Tensor) -> tuple[Tensor, bool]:
    """``y`` as ``(T, m)`` for the ``T`` test points of ``X``, and whether it was 1-D."""
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None")
    Y = as_tensor(y, "y")
    y_1d = Y.dim() == 1
    if y_1d:
        Y = Y.unsqueeze(1)
    if Y.dim() != 2:
        raise ValueError(f"y must have shape (T,) or (T, m), got {tuple(Y.shape)}")
    check_points(X, Y, ("X", "y"))
    return Y, y_1d


def check_weights(sample_weight, T: int) -> Tensor | None:
    """``sample_weight`` as ``(T,)`` float64: finite, ``≥ 0`` and not all zero (``None`` stays)."""
    if sample_weight is None:
        return None
    s = as_tensor(sample_weight, "sample_weight")
    if s.dim() == 0:  # one number for every point, as scikit-learn allows
        s = s.expand(T).contiguous()
    check_sample_weight(s, T)
    return s


def check_xy(est, X, y, sample_weight) -> tuple[Tensor, Tensor, Tensor | None, np.ndarray | None, bool]:
    """``X``, ``Y`` and ``s`` for a fresh fit, without the points of zero weight; X's column
    names; whether ``y`` was 1-D."""
    names = feature_names(X)
    X = as_2d(X)
    if X.shape[1] == 0:
        raise ValueError(
            f"X holds no features: 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required."
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"X holds no test points (T = 0): 0 sample(s) (shape={tuple(X.shape)}) while a "
            "minimum of 1 is required."
        )
    Y, y_1d = check_y(est, y, X)
    X, Y, s = _without_zero_weights(X, Y, check_weights(sample_weight, X.shape[0]))
    check_span(X, "X")
    check_span(Y, "y")
    return X, Y, s, names, y_1d


def check_span(A: Tensor, name: str) -> None:
    """Every column of ``A`` (``(T, F)``, finite) has a finite range ``max − min``, which the scaling
    divides by; ``1e308`` and ``−1e308`` in one column do not."""
    lo, hi = A.amin(dim=0), A.amax(dim=0)
    for j, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        if not math.isfinite(b - a):
            raise ValueError(
                f"{name}: column {j} spans {a:.4g} to {b:.4g}, a range (max - min) beyond the largest "
                "float; rescale the column"
            )


def check_more_data(est, X, y, sample_weight) -> tuple[Tensor, Tensor, Tensor | None]:
    """``X``, ``Y``, ``s`` for training the fitted network on: its columns, inside its scalers' range."""
    X = check_X(est, X)
    Y, _ = check_y(est, y, X)
    X, Y, s = _without_zero_weights(X, Y, check_weights(sample_weight, X.shape[0]))
    if Y.shape[1] != est.model_.out_features:
        raise ValueError(f"y has {Y.shape[1]} outputs, the model was fitted with {est.model_.out_features}")
    ymin, ymax = est.y_scaler_.data_min_, est.y_scaler_.data_max_
    if bool((ymin > Y).any() or (ymax < Y).any()):
        raise ValueError(
            "y has values outside the range the first fit scaled to "
            f"[{ymin.tolist()}, {ymax.tolist()}]; they would map outside (0, 1): fit again instead"
        )
    return X, Y, s


def _without_zero_weights(X: Tensor, Y: Tensor, s: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Drop the points of weight 0, which ``E_s`` does not see; all weights 1 become ``None``."""
    if s is None:
        return X, Y, None
    keep = s > 0
    if not bool(keep.all()):
        X, Y, s = X[keep], Y[keep], s[keep]
    # unweighted, the loop keeps its fastest path (and the same steps, bit for bit)
    return X, Y, None if bool((s == 1).all()) else s


def _is_sparse(value) -> bool:
    """A scipy.sparse matrix or array, told without importing scipy."""
    return type(value).__module__.startswith("scipy.sparse")


def feature_names(X) -> np.ndarray | None:
    """A ``DataFrame``'s column names when they are all strings, else ``None`` (scikit-learn's rule)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, (np.ndarray, Tensor)):
        return None
    names = np.asarray(list(columns), dtype=object)
    strings = [isinstance(n, str) for n in names]
    if names.size and all(strings):
        return names
    if any(strings):
        kinds = sorted({type(n).__name__ for n in names})
        raise TypeError(
            f"X's column names must all be strings to be used as feature names, got types {kinds}: "
            "convert them with X.columns = X.columns.astype(str)"
        )
    return None
