"""Min–max normalisation of measurements into a range strictly inside ``(0, 1)``, and back."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["MinMaxScaler"]


class MinMaxScaler:
    r"""Map each column linearly from ``[min, max]`` of the fitted data onto ``feature_range = (a, b)``.

    .. code-block:: text

        x' = a + (x − min) · (b − a) / (max − min)        x = min + (x' − a) · (max − min) / (b − a)

    Every output of the network lies in ``(0, 1)`` and never reaches 0 or 1, so targets must be
    mapped into a range strictly inside it (the default ``(0.1, 0.9)`` leaves the sigmoid room on
    both sides and keeps ``σ' = y(1 − y)`` at least 0.09 at every target). A constant column
    (``max = min``) has no scale: it is mapped to the middle ``(a + b)/2`` and every value maps back
    to the constant, so nothing is divided by zero.

    Statistics are kept in the dtype and on the device of the data given to :meth:`fit`;
    :meth:`transform` and :meth:`inverse_transform` move them to their input's.

    Args:
        feature_range: ``(a, b)`` with ``a < b``, both finite.

    Shape:
        - Input: ``(T, F)`` (``F`` columns) or ``(T,)`` (one column)
        - Output: the same shape

    Attributes:
        feature_range: ``(a, b)`` as floats.
        data_min_, data_max_: per-column minimum and maximum of the fitted data, shape ``(F,)``
            (``()`` for 1-D data).

    Example::

        >>> scaler = MinMaxScaler()
        >>> scaler.fit_transform(torch.tensor([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]]))
        tensor([[0.1000, 0.5000],
                [0.5000, 0.5000],
                [0.9000, 0.5000]])
        >>> scaler.inverse_transform(torch.tensor([[0.3, 0.1]]))
        tensor([[1.0000, 5.0000]])
    """

    def __init__(self, feature_range: tuple[float, float] = (0.1, 0.9)) -> None:
        lo, hi = (float(v) for v in feature_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"feature_range must be (a, b) with finite a < b, got {feature_range!r}")
        self.feature_range = (lo, hi)
        self.data_min_: Tensor | None = None
        self.data_max_: Tensor | None = None

    def fit(self, X: Tensor) -> MinMaxScaler:
        """Record the per-column minimum and maximum of ``X``."""
        X = self._check(X, "X")
        if X.shape[0] == 0:
            raise ValueError("X holds no rows (T = 0): there is no range to fit")
        if not bool(torch.isfinite(X).all()):
            raise ValueError("X contains NaN or infinite values")
        data_min, data_max = X.amin(dim=0), X.amax(dim=0)
        if not bool(torch.isfinite(data_max - data_min).all()):
            j = int((~torch.isfinite(data_max - data_min)).nonzero()[0, 0]) if X.dim() == 2 else 0
            a, b = data_min.reshape(-1)[j].item(), data_max.reshape(-1)[j].item()
            raise ValueError(
                f"X: column {j} spans {a:.4g} to {b:.4g}, a range (max - min) beyond the largest float; "
                "rescale the column"
            )
        self.data_min_, self.data_max_ = data_min, data_max
        return self

    def transform(self, X: Tensor) -> Tensor:
        """``a + (X − min) · (b − a)/(max − min)``, constant columns at ``(a + b)/2``."""
        X = self._check(X, "X", fitted=True)
        lo, hi = self.feature_range
        data_min, span = self._stats(X)
        constant = span == 0
        scale = ((hi - lo) / span).masked_fill_(constant, 0.0)  # (F,)
        offset = torch.full_like(span, lo).masked_fill_(constant, (lo + hi) / 2)  # (F,)
        return offset + (X - data_min) * scale

    def inverse_transform(self, X: Tensor) -> Tensor:
        """``min + (X − a) · (max − min)/(b − a)``; a constant column gives back its constant."""
        X = self._check(X, "X", fitted=True)
        lo, hi = self.feature_range
        data_min, span = self._stats(X)
        return data_min + (X - lo) * (span / (hi - lo))

    def fit_transform(self, X: Tensor) -> Tensor:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def state_dict(self) -> dict:
        """Plain types and tensors only, so ``torch.load(..., weights_only=True)`` can read it back."""
        return {"feature_range": self.feature_range, "data_min": self.data_min_, "data_max": self.data_max_}

    def load_state_dict(self, state: dict) -> MinMaxScaler:
        """Restore what :meth:`state_dict` returned (onto its tensors' device); returns ``self``."""
        try:
            lo, hi = state["feature_range"]
            data_min, data_max = state["data_min"], state["data_max"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a MinMaxScaler state: {exc!r}") from exc
        self.__init__((lo, hi))
        if data_min is not None:
            if not (isinstance(data_min, Tensor) and isinstance(data_max, Tensor)):
                raise ValueError("MinMaxScaler state: data_min and data_max must be tensors")
            if data_min.shape != data_max.shape or not bool((data_min <= data_max).all()):
                raise ValueError("MinMaxScaler state: data_min and data_max do not describe a range")
            self.data_min_, self.data_max_ = data_min, data_max
        return self

    def __repr__(self) -> str:
        return f"MinMaxScaler(feature_range={self.feature_range})"

    def _stats(self, X: Tensor) -> tuple[Tensor, Tensor]:
        data_min = self.data_min_.to(device=X.device, dtype=X.dtype)
        return data_min, self.data_max_.to(device=X.device, dtype=X.dtype) - data_min

    def _check(self, X, name: str, fitted: bool = False) -> Tensor:
        if not isinstance(X, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
        if not X.is_floating_point():
            raise TypeError(f"{name} must have a floating dtype, got {X.dtype}")
        if X.dim() not in (1, 2):
            raise ValueError(f"{name} must have shape (T, F) or (T,), got {tuple(X.shape)}")
        if fitted:
            if self.data_min_ is None:
                raise ValueError("this MinMaxScaler is not fitted yet: call fit first")
            if X.shape[1:] != self.data_min_.shape:
                want = "(T,)" if self.data_min_.dim() == 0 else f"(T, {self.data_min_.shape[0]})"
                raise ValueError(f"{name} must have shape {want} like the fitted data, got {tuple(X.shape)}")
        return X
