"""Training: the objective over points (in chunks, across ranks), the loop, its solvers and handlers.

It builds on :mod:`torch_sigmoid_mlp.core` only.
"""

from . import matrix_free, matrix_free_br  # noqa: F401  (they add "lm_cg", "br_cg" to solvers.SECOND_ORDER)
from .chunking import accumulate_gradients, chunked_error
from .distributed import init_from_env, is_main_process, shard
from .lm import LM_MAX_PARAMS, LMResult, levenberg_marquardt
from .loop import STOP_REASONS, TrainResult, train
from .objective import Objective
from .settings import Distribution, Logging, Stop
from .solvers import METHODS, choose_method

__all__ = [
    "LM_MAX_PARAMS",
    "METHODS",
    "STOP_REASONS",
    "Distribution",
    "LMResult",
    "Logging",
    "Objective",
    "Stop",
    "TrainResult",
    "accumulate_gradients",
    "choose_method",
    "chunked_error",
    "init_from_env",
    "is_main_process",
    "levenberg_marquardt",
    "shard",
    "train",
]
