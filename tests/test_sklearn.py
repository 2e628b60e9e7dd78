"""SigmoidMLPRegressor as a scikit-learn estimator: its own estimator checks, and its tools."""

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks

from torch_sigmoid_mlp import SigmoidMLPRegressor
from torch_sigmoid_mlp.estimator import expected_failed_checks


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the checks fit small networks hundreds of times; a product of a few hundred numbers costs
    # less than handing it to a second intra-op thread, the more so on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: The default estimator (float64; on the checks' data "auto" runs L-BFGS, with its weight decay, or
#: BR), and BR from several starts on a small network in float64 and float32 (the path a user's fit
#: takes). The sample-weight check is declared failed where rounding alone parts the weighted and the
#: repeated fit (:func:`expected_failed_checks` says why); it is not skipped, and not strict: the float64
#: BR instance passes it on one thread here, and the xfail mark lets it.
CHECKED = [
    SigmoidMLPRegressor(device="cpu"),
    SigmoidMLPRegressor(hidden=(4,), max_epochs=300, device="cpu", dtype="float64"),
    SigmoidMLPRegressor(hidden=(4,), max_epochs=300, device="cpu", dtype="float32"),
]


@pytest.mark.floats
@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.floats
def test_expected_failures_are_declared_with_a_reason_and_run():
    """The float32 instance's declared failure is a real one: its weighted and repeated fits differ
    beyond the check's rtol, by rounding alone (the float64 fit of the same setting passes at one thread)."""
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data as check

    declared = expected_failed_checks(CHECKED[2])
    assert list(declared) == ["check_sample_weight_equivalence_on_dense_data"]
    assert "rtol" in declared["check_sample_weight_equivalence_on_dense_data"]
    with pytest.raises(AssertionError, match="sample_weight"):
        check("SigmoidMLPRegressor", CHECKED[2])
    # the default on the check's 30 inputs: "auto"'s L-BFGS with its weight decay stops at a
    # regularised iterate, where the rounding has grown past rtol; L-BFGS by name (no decay) passes
    assert "L-BFGS" in expected_failed_checks(CHECKED[0])["check_sample_weight_equivalence_on_dense_data"]
    with pytest.raises(AssertionError, match="sample_weight"):
        check("SigmoidMLPRegressor", CHECKED[0])
    assert expected_failed_checks(SigmoidMLPRegressor(solver="lbfgs")) == {}
    check("SigmoidMLPRegressor", SigmoidMLPRegressor(solver="lbfgs", device="cpu"))
    # the same setting where the solver cannot interpolate the check's data: LM to a bound passes
    assert expected_failed_checks(SigmoidMLPRegressor(hidden=(4,), tol=0.01)) == {}
    check("SigmoidMLPRegressor", SigmoidMLPRegressor(hidden=(4,), tol=0.01, device="cpu"))


def data(T=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 2, (T, 2))
    return X, 3.0 + np.tanh(X[:, 0]) - X[:, 1] ** 2


def small(**params):
    return SigmoidMLPRegressor(hidden=(4,), max_epochs=30, device="cpu", **params)


@pytest.mark.floats
def test_its_tools_take_the_estimator():
    from sklearn.base import clone, is_regressor
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.validation import check_is_fitted

    X, y = data()
    assert is_regressor(SigmoidMLPRegressor())
    pipe = make_pipeline(StandardScaler(), small()).fit(X, y)
    np.testing.assert_allclose(pipe.predict(X), pipe[-1].predict(StandardScaler().fit_transform(X)))
    scores = cross_val_score(small(), X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(small(), {"hidden": [2, (4, 4)]}, cv=2).fit(X, y)
    assert search.best_params_["hidden"] in (2, (4, 4))
    wrapped = TransformedTargetRegressor(small(), func=np.arcsinh, inverse_func=np.sinh).fit(X, y)
    assert wrapped.predict(X).shape == (len(X),)
    check_is_fitted(wrapped.regressor_)
    copy = clone(small(random_state=3))
    assert copy.get_params() == small(random_state=3).get_params()


def test_not_fitted_error_is_scikit_learns():
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    X, _y = data()
    with pytest.raises(NotFittedError):
        check_is_fitted(SigmoidMLPRegressor())
    with pytest.raises(NotFittedError):
        SigmoidMLPRegressor().predict(X)


@pytest.mark.floats
def test_its_reseeding_reaches_the_weights():
    from sklearn.utils.estimator_checks import set_random_state

    X, y = data()
    reg = small()
    set_random_state(reg, random_state=5)
    assert reg.random_state == 5
    np.testing.assert_array_equal(reg.fit(X, y).predict(X), small(seed=5).fit(X, y).predict(X))


@pytest.mark.floats
def test_weighted_score_is_r2_score_with_sample_weight():
    from sklearn.metrics import r2_score

    X, y = data()
    reg = small().fit(X, y)
    s = np.random.default_rng(2).uniform(0, 3, len(X))
    assert reg.score(X, y, sample_weight=s) == pytest.approx(
        r2_score(y, reg.predict(X), sample_weight=s), rel=1e-12
    )
    assert reg.score(X, y) == pytest.approx(r2_score(y, reg.predict(X)), rel=1e-12)
    Y = np.stack([y, 2 * X[:, 0]], axis=1)
    reg2 = small().fit(X, Y)
    assert reg2.score(X, Y, sample_weight=s) == pytest.approx(
        r2_score(Y, reg2.predict(X), sample_weight=s), rel=1e-12
    )


@pytest.mark.parametrize(
    ("sample_weight", "match"),
    [
        (np.ones(39), r"sample_weight must have shape \(40,\)"),
        (np.ones((40, 2)), r"sample_weight must have shape \(40,\)"),
        (np.full(40, np.nan), "sample_weight contains NaN"),
        (-np.ones(40), "sample_weight must be ≥ 0"),
        (np.zeros(40), "sample_weight is zero for every test point"),
    ],
)
def test_bad_sample_weights_are_named(sample_weight, match):
    X, y = data()
    for call in (small().fit, small().partial_fit, small().fit(X, y).score):
        with pytest.raises(ValueError, match=match):
            call(X, y, sample_weight=sample_weight)
