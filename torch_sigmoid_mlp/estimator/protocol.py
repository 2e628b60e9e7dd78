"""scikit-learn's estimator protocol, without importing scikit-learn until it asks.

The regressor does not inherit scikit-learn's ``BaseEstimator`` and ``RegressorMixin``: importing
them costs the import of scikit-learn and scipy (about a second), on every command line call. It
implements their protocol itself (``get_params``, ``set_params``, ``__sklearn_tags__``,
``__sklearn_is_fitted__``, ``score``), and what the protocol needs of scikit-learn is made here, on
first use: :func:`regressor_tags` when scikit-learn asks for the tags, and :func:`not_fitted_error`,
which is scikit-learn's ``NotFittedError`` where scikit-learn is installed (so that
``except sklearn.exceptions.NotFittedError`` catches ours) and a class of the same name and bases
(``ValueError``, ``AttributeError``) where it is not.
"""

from __future__ import annotations

import functools

__all__ = ["not_fitted_error", "regressor_tags"]


@functools.cache
def not_fitted_error() -> type[Exception]:
    """scikit-learn's ``NotFittedError`` where it is installed, else ours of the same name and bases."""
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:  # scikit-learn is optional: without it the estimator is a plain class

        class NotFittedError(ValueError, AttributeError):
            """A method that needs a fitted estimator was called before ``fit`` (scikit-learn's name)."""

        NotFittedError.__module__ = "torch_sigmoid_mlp.estimator"
    return NotFittedError


def regressor_tags():
    """scikit-learn's tags of a regressor of one or several outputs, on dense finite data.

    What ``RegressorMixin`` and ``BaseEstimator`` would give, with ``multi_output`` set.
    """
    from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

    return Tags(
        estimator_type="regressor",
        target_tags=TargetTags(required=True, single_output=True, multi_output=True),
        regressor_tags=RegressorTags(),
        input_tags=InputTags(),
    )
