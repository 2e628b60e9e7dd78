"""The estimator: :class:`SigmoidMLPRegressor` in the data's units, its scaling, its model file, export.

It builds on :mod:`torch_sigmoid_mlp.training` and :mod:`torch_sigmoid_mlp.core`.
"""

from .export import export_c, export_onnx
from .normalization import MinMaxScaler
from .regressor import (
    HISTORY_KEPT,
    LR_CONSTANT,
    MAX_EPOCHS,
    PATIENCE,
    SOLVERS,
    NotFittedError,
    SigmoidMLPRegressor,
)

__all__ = [
    "HISTORY_KEPT",
    "LR_CONSTANT",
    "MAX_EPOCHS",
    "PATIENCE",
    "SOLVERS",
    "MinMaxScaler",
    "NotFittedError",
    "SigmoidMLPRegressor",
    "export_c",
    "export_onnx",
]
