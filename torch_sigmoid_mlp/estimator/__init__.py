"""The estimator: :class:`SigmoidMLPRegressor` in the data's units, and what it is made of.

- ``regressor.py``: the class: fit, continue, predict, score, save and load;
- ``params.py``: its parameters' constants and constraints, checked in one place;
- ``checks.py``: its input checks (``X``, ``y``, ``sample_weight``);
- ``protocol.py``: scikit-learn's estimator protocol, without importing scikit-learn;
- ``model_file.py``: the versioned model file;
- ``normalization.py``: :class:`MinMaxScaler`; ``export.py``: ONNX and C; ``outputs.py``: writing files;
- ``verification.py``: :func:`check_export`, the bound of a float32 or fixed-point export, on
  ``network_box.py`` (the bound's propagation), ``fixed_point.py``, ``floating.py`` and
  ``sigmoid_approx.py`` (σ without libm).

It builds on :mod:`torch_sigmoid_mlp.training` and :mod:`torch_sigmoid_mlp.core`.
``NotFittedError`` is scikit-learn's where it is installed (made on first use, PEP 562).
"""

from .export import export_c, export_onnx
from .model_file import HISTORY_KEPT
from .normalization import MinMaxScaler
from .params import LR_CONSTANT, MAX_EPOCHS, PATIENCE, SOLVERS
from .protocol import expected_failed_checks, not_fitted_error
from .regressor import SigmoidMLPRegressor
from .verification import ExportCheck, check_export

__all__ = [
    "HISTORY_KEPT",
    "LR_CONSTANT",
    "MAX_EPOCHS",
    "PATIENCE",
    "SOLVERS",
    "ExportCheck",
    "MinMaxScaler",
    "NotFittedError",
    "SigmoidMLPRegressor",
    "check_export",
    "expected_failed_checks",
    "export_c",
    "export_onnx",
]


def __getattr__(name: str):
    if name == "NotFittedError":
        return not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
