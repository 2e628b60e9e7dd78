"""torch-sigmoid-mlp: bias-free sigmoid networks with backpropagation written out by hand.

See SPEC.md for the notation: ``W^(l)``, ``y^(l)``, ``e = d − y^(L)``, ``δ^(l)``, ``E``.
"""

import sys

from .cli.csv_data import DataError, read_csv
from .cli.demo import sine_demo
from .core import derivatives, functional, module
from .core.derivatives import hvp, jacobian, local_gradients, per_sample_gradients
from .core.functional import SigmoidMLPFunction, sigmoid_mlp, sigmoid_mlp_autograd, sse_loss
from .core.gradient_check import GradientComparison, GradientReport, compare_gradients
from .core.module import SigmoidMLP
from .core.tape_free import TapeFreeStep
from .estimator import export
from .estimator.export import export_c, export_onnx
from .estimator.normalization import MinMaxScaler
from .estimator.regressor import SigmoidMLPRegressor
from .estimator.verification import ExportCheck, check_export
from .training import distributed, objective, solvers
from .training.chunking import accumulate_gradients, chunked_error
from .training.distributed import init_from_env, is_main_process, shard
from .training.lm import LM_MAX_PARAMS, LMResult, levenberg_marquardt
from .training.loop import ConvergenceWarning, TrainResult, train
from .training.objective import Objective
from .training.settings import Distribution, Logging, Stop
from .training.solvers import METHODS, choose_method

__version__ = "0.1.0"

# The modules users import by their paths before the package had rooms: the same module objects
# under the old names, so that `import torch_sigmoid_mlp.solvers` (or monkeypatching it) reaches them.
for _module in (derivatives, distributed, export, functional, module, objective, solvers):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module

#: :class:`TapeFreeStep` under its first name. "Fused" meant one epoch without the autograd tape, not
#: one multi-tensor kernel as in ``torch.optim``'s ``fused=True``; both names stay importable.
FusedSGDStep = TapeFreeStep

__all__ = [
    "LM_MAX_PARAMS",
    "METHODS",
    "ConvergenceWarning",
    "DataError",
    "Distribution",
    "ExportCheck",
    "FusedSGDStep",
    "GradientComparison",
    "GradientReport",
    "LMResult",
    "Logging",
    "MinMaxScaler",
    "Objective",
    "SigmoidMLP",
    "SigmoidMLPFunction",
    "SigmoidMLPRegressor",
    "Stop",
    "TapeFreeStep",
    "TrainResult",
    "accumulate_gradients",
    "check_export",
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
