"""SigmoidMLPRegressor as a scikit-learn estimator: its own estimator checks, and its tools."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from torch_sigmoid_mlp import SigmoidMLPRegressor  # noqa: E402


def check_instances():
    # few epochs: the checks fit hundreds of times; float64 so that sums over the points in
    # another order (shuffled, repeated) agree to scikit-learn's rtol of 1e-7
    return [
        SigmoidMLPRegressor(max_epochs=100, momentum=0.8, device="cpu", dtype="float64"),
    ]


@parametrize_with_checks(check_instances())
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
