"""A uniform sample weight ``s_t = c`` fits at any scale: every solver takes epochs, raises nothing and
reaches the unweighted fit's training R² (the minimiser of ``c·E`` is that of ``E``).

The solvers' absolute constants (LM's ``μ``, Adam's ``eps``; L-BFGS minimises ``E_s/u``) are measured
in the weights' unit ``u`` (:func:`~torch_sigmoid_mlp.training.objective.weight_unit`): 1 for weights
of ordinary size, which stay repeated points exactly, and proportional to ``c`` beyond. Bayesian
regularisation sees ``c``-fold data (a weight is a repeated point): for ``c ≥ 1`` less weight decay,
so a training R² at least the unweighted one's; far below 1 the prior outweighs the data, which the
fit says with a :class:`ConvergenceWarning`.
"""

import warnings

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp import SigmoidMLP, SigmoidMLPRegressor, train
from torch_sigmoid_mlp.estimator.regressor import _warn_if_far
from torch_sigmoid_mlp.training.loop import ConvergenceWarning, TrainResult

SCALES = (1e-20, 1e-3, 1.0, 1e3, 1e20)
EPOCHS = {"sgd": 300, "adaptive": 300, "rprop": 100, "adam": 100, "lbfgs": 40, "lm": 20, "br": 20}

X = np.linspace(-1.0, 1.0, 30).reshape(-1, 1)
Y = np.sin(2.5 * X[:, 0]) + 0.5 * X[:, 0]


def _fit(solver: str, restarts: int, c: float | None, **params):
    est = SigmoidMLPRegressor(
        hidden=(4,), solver=solver, max_epochs=EPOCHS[solver], restarts=restarts, device="cpu", **params
    )
    weights = None if c is None else np.full(len(X), c)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        est.fit(X, Y, sample_weight=weights)
    return est, est.score(X, Y), [w for w in caught if issubclass(w.category, ConvergenceWarning)]


# restarts=2 runs the starts as one population where the solver is batched (all but "lbfgs")
@pytest.mark.parametrize("restarts", [1, 2], ids=["single", "population"])
@pytest.mark.parametrize("solver", ["sgd", "adaptive", "rprop", "adam", "lbfgs", "lm"])
def test_a_uniform_weight_of_any_scale_fits_as_no_weight(solver, restarts):
    _, unweighted, _ = _fit(solver, restarts, None)
    for c in SCALES:
        est, r2, _ = _fit(solver, restarts, c)
        assert est.result_.epochs > 0, (solver, c, est.result_.stop_reason)
        assert r2 >= unweighted - 0.01, (solver, c, r2, unweighted)


@pytest.mark.parametrize("restarts", [1, 2], ids=["single", "population"])
def test_bayesian_regularisation_sees_c_fold_data(restarts):
    _, unweighted, _ = _fit("br", restarts, None)
    for c in (1.0, 1e20):
        est, r2, _ = _fit("br", restarts, c)
        assert est.result_.epochs > 0, (c, est.result_.stop_reason)
        assert r2 >= unweighted - 0.01, (c, r2, unweighted)
    # 1e-20-fold data: the prior wins; the fit still takes epochs and says where it ends up
    est, r2, caught = _fit("br", restarts, 1e-20)
    assert est.result_.epochs > 0
    assert r2 >= 0.5 or caught, r2


@pytest.mark.parametrize("c", [None, 2.0**100])
def test_a_population_whose_members_all_stop_in_one_epoch_ends_cleanly(c):
    # both inputs 0 and the output layer 0: every member outputs σ(0) = 0.5, the mean of the targets
    # 0.25 and 0.75, where ∇E = 0 exactly (two opposite products, exact with a power-of-two weight, in
    # any order of summation); no LM step lowers E, and all stop together (μ_max) at epoch 0
    x = torch.zeros(2, 2, dtype=torch.float64)
    d = torch.tensor([0.25, 0.75], dtype=torch.float64)
    model = SigmoidMLP(2, (3,), population=4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.weights[-1].zero_()
    s = None if c is None else torch.full((2,), c, dtype=torch.float64)
    result = train(model, x, d, method="lm", max_epochs=50, tol=1e-3, sample_weight=s)
    assert [(m.stop_reason, m.epochs) for m in result.members] == [("mu_max", 0)] * 4


def test_a_fit_that_takes_no_step_warns():
    stuck = TrainResult(0, False, "mu_max", 0.1, 0.5, method="lm", r2=0.9)
    with pytest.warns(ConvergenceWarning, match="took no step"):
        _warn_if_far(stuck)
    asked = TrainResult(0, False, "max_epochs", 0.1, 0.5, method="lm", r2=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        _warn_if_far(asked)  # max_epochs=0 asked for no step: nothing to warn about
