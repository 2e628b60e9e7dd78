"""The seed's mathematics: the Function and its hand-written backward, the module, the tape-free step,
derivatives beyond the gradient, and the check against autograd.

Nothing here imports from the rest of the package: ``training``, ``estimator`` and ``cli`` build on it.
"""

from .derivatives import hvp, jacobian, local_gradients, per_sample_gradients
from .functional import SigmoidMLPFunction, sigmoid_mlp, sigmoid_mlp_autograd, sse_loss
from .gradient_check import GradientComparison, GradientReport, compare_gradients
from .module import SigmoidMLP
from .tape_free import TapeFreeStep

__all__ = [
    "GradientComparison",
    "GradientReport",
    "SigmoidMLP",
    "SigmoidMLPFunction",
    "TapeFreeStep",
    "compare_gradients",
    "hvp",
    "jacobian",
    "local_gradients",
    "per_sample_gradients",
    "sigmoid_mlp",
    "sigmoid_mlp_autograd",
    "sse_loss",
]
