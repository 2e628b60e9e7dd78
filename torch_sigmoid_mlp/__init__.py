"""torch-sigmoid-mlp: bias-free sigmoid networks with backpropagation written out by hand.

See SPEC.md for the notation: ``W^(l)``, ``y^(l)``, ``e = d − y^(L)``, ``δ^(l)``, ``E``.
"""

from .functional import SigmoidMLPFunction, sigmoid_mlp, sigmoid_mlp_autograd, sse_loss
from .gradients import GradientComparison, GradientReport, compare_gradients, local_gradients
from .module import SigmoidMLP

__version__ = "0.1.0"

__all__ = [
    "GradientComparison",
    "GradientReport",
    "SigmoidMLP",
    "SigmoidMLPFunction",
    "compare_gradients",
    "local_gradients",
    "sigmoid_mlp",
    "sigmoid_mlp_autograd",
    "sse_loss",
]
