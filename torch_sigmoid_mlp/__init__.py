"""torch-sigmoid-mlp: bias-free sigmoid networks with backpropagation written out by hand.

See SPEC.md for the notation: ``W^(l)``, ``y^(l)``, ``e = d − y^(L)``, ``δ^(l)``, ``E``.
"""

from .chunking import accumulate_gradients, chunked_error
from .csv_data import DataError, read_csv
from .demo import sine_demo
from .derivatives import hvp, jacobian, local_gradients, per_sample_gradients
from .distributed import init_from_env, is_main_process, shard
from .estimator import SigmoidMLPRegressor
from .export import export_c, export_onnx
from .functional import SigmoidMLPFunction, sigmoid_mlp, sigmoid_mlp_autograd, sse_loss
from .gradient_check import GradientComparison, GradientReport, compare_gradients
from .lm import LM_MAX_PARAMS, LMResult, levenberg_marquardt
from .module import SigmoidMLP
from .normalization import MinMaxScaler
from .objective import Objective
from .solvers import METHODS, choose_method
from .tape_free import TapeFreeStep
from .training import ConvergenceWarning, TrainResult, train

__version__ = "0.1.0"

#: :class:`TapeFreeStep` under its first name. "Fused" meant one epoch without the autograd tape, not
#: one multi-tensor kernel as in ``torch.optim``'s ``fused=True``; both names stay importable.
FusedSGDStep = TapeFreeStep

__all__ = [
    "LM_MAX_PARAMS",
    "METHODS",
    "ConvergenceWarning",
    "DataError",
    "FusedSGDStep",
    "GradientComparison",
    "GradientReport",
    "LMResult",
    "MinMaxScaler",
    "Objective",
    "SigmoidMLP",
    "SigmoidMLPFunction",
    "SigmoidMLPRegressor",
    "TapeFreeStep",
    "TrainResult",
    "accumulate_gradients",
    "choose_method",
    "chunked_error",
    "compare_gradients",
    "export_c",
    "export_onnx",
    "hvp",
    "init_from_env",
    "is_main_process",
    "jacobian",
    "levenberg_marquardt",
    "local_gradients",
    "per_sample_gradients",
    "read_csv",
    "shard",
    "sigmoid_mlp",
    "sigmoid_mlp_autograd",
    "sine_demo",
    "sse_loss",
    "train",
]
