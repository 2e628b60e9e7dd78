"""Problems with known answers that several test files share: ``from problems import …``.

Pytest collects nothing here (the name has no ``test_`` prefix); the test files import it the way
pytest imports them, from this directory. Each problem is drawn from its own ``seed`` with a CPU
generator, so it is the same numbers on every device and in every process that asks for it.
"""

import torch

from torch_sigmoid_mlp import SigmoidMLP


def teacher_problem(T=64, *, seed, dtype=torch.float64, device="cpu", drawn_in=torch.float64):
    """``(x, d, teacher)``: a bias-free 3-3-3-1 teacher's outputs at ``T`` points ``x ∈ [−1, 1)³``.

    A zero-error minimum exists. The teacher's weights are twice the default initialisation, so
    that its outputs spread (over about (0.62, 0.93) at seed 8) instead of lying near one value that
    a single number would fit. Everything is drawn in ``drawn_in`` and then cast to ``dtype``: a
    problem asked for in another dtype is the same numbers, rounded.
    """
    g = torch.Generator().manual_seed(seed)
    teacher = SigmoidMLP(3, generator=g, dtype=drawn_in)
    with torch.no_grad():
        for W in teacher.weights:
            W.mul_(2.0)
        x = torch.rand(T, 3, generator=g, dtype=drawn_in) * 2 - 1  # (T, 3)
        d = teacher(x)  # (T, 1)
    return x.to(device, dtype), d.to(device, dtype), teacher.to(device, dtype)


def student(sizes=(3, 3, 3, 1), *, seed=0, dtype=torch.float64, device="cpu", drawn_in=None):
    """A freshly initialised network of ``sizes`` from ``seed``, drawn in ``drawn_in`` (default
    ``dtype``) and cast to ``dtype``: drawn in float64, a float32 student starts where the float64
    one does."""
    g = torch.Generator().manual_seed(seed)
    model = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], generator=g, dtype=drawn_in or dtype)
    return model.to(device, dtype)


def random_problem(sizes, T, *, seed=0, dtype=torch.float64, device="cpu", targets=(0.0, 1.0)):
    """``(model, x, d)``: a network of ``sizes``, ``T`` points ``x ∈ [0, 1)^n`` and targets drawn
    uniformly from ``targets``, all from one generator in that order."""
    g = torch.Generator().manual_seed(seed)
    model = SigmoidMLP(sizes[0], sizes[1:-1], sizes[-1], dtype=dtype, generator=g).to(device)
    x = torch.rand(T, sizes[0], generator=g, dtype=dtype).to(device)
    low, high = targets
    d = (low + (high - low) * torch.rand(T, sizes[-1], generator=g, dtype=dtype)).to(device)
    return model, x, d


def settled_br(model, x, d, epochs: int):
    """Dense BR after ``epochs`` epochs on ``(x, d)``, its search for a first minimum settled where it
    is (``α_l, β`` from ``w``), with ``(JᵀJ, w, E)`` there: a BR Hessian to compare ``γ``'s estimates
    against. Returns ``(step, A, w, E)``."""
    from torch_sigmoid_mlp.training.objective import Objective
    from torch_sigmoid_mlp.training.solvers import BayesianRegularization

    step = BayesianRegularization(Objective(model, x, d))
    for _ in range(epochs):
        step.evaluate()
        step.step()
    A, _, E, _ = step.objective.gauss_newton()
    w = step._flat()
    if step.searching:
        step._settle(A, w, E.item())
    return step, A, w, E
