"""The shared checks on numbers and test points: what passes, and what each refusal says."""

import numpy as np
import pytest
import torch

from torch_sigmoid_mlp.core._checks import (
    ArgumentTypeError,
    check_integer,
    check_number,
    check_points,
    check_sample_weight,
)


@pytest.mark.parametrize(("value", "expected"), [(3, 3), (np.int64(3), 3), (None, None)])
def test_integers_pass_as_int(value, expected):
    result = check_integer(value, "k", optional=True)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (0, {}, ValueError, "k must be a positive integer, got 0"),
        (-1, {"low": 0}, ValueError, "k must be a non-negative integer, got -1"),
        (1, {"low": 2}, ValueError, "k must be an integer ≥ 2, got 1"),
        (11, {"low": 0, "high": 10}, ValueError, "k must be a non-negative integer of at most 10, got 11"),
        (0, {"optional": True}, ValueError, "k must be a positive integer or None, got 0"),
        (None, {}, ArgumentTypeError, "k must be a positive integer, got None"),
        (True, {}, ArgumentTypeError, "got True"),
        (2.0, {}, ArgumentTypeError, "got 2.0"),
        ("3", {}, ArgumentTypeError, "got '3'"),
    ],
)
def test_bad_integers_are_named(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_integer(value, "k", **kwargs)


def test_a_value_of_the_wrong_kind_is_a_type_error_and_a_value_error():
    with pytest.raises(TypeError):
        check_integer(2.5, "k")
    with pytest.raises(ValueError):
        check_integer(2.5, "k")
    with pytest.raises(ValueError) as info:
        check_integer(0, "k")
    assert not isinstance(info.value, TypeError), "a value out of range is no TypeError"


@pytest.mark.parametrize(("value", "expected"), [(0.5, 0.5), (2, 2.0), (np.float32(0.25), 0.25)])
def test_numbers_pass_as_float(value, expected):
    result = check_number(value, "lr")
    assert result == expected and type(result) is float


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (0.0, {}, ValueError, "lr must be a positive finite number, got 0.0"),
        (float("inf"), {}, ValueError, "got inf"),
        (
            float("nan"),
            {"optional": True},
            ValueError,
            "lr must be a positive finite number or None, got nan",
        ),
        (1.0, {"low": 0.0, "high": 1.0}, ValueError, r"lr must be a number in \[0.0, 1.0\), got 1.0"),
        (1.0, {"high": 1.0}, ValueError, r"lr must be a number in \(0, 1.0\), got 1.0"),
        (True, {}, ArgumentTypeError, "got True"),
        ("0.1", {}, ArgumentTypeError, "got '0.1'"),
    ],
)
def test_bad_numbers_are_named(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_number(value, "lr", **kwargs)


@pytest.mark.parametrize(
    ("x", "d", "match"),
    [
        (torch.zeros(3, 2), torch.zeros(2, 1), "X has 3 test points but y has 2"),
        (torch.full((3, 2), float("nan")), torch.zeros(3, 1), "X contains NaN or infinite values"),
        (torch.zeros(3, 2), torch.full((3, 1), float("-inf")), "y contains NaN or infinite values"),
    ],
)
def test_bad_points_are_named(x, d, match):
    check_points(torch.zeros(3, 2), torch.zeros(3, 1), ("X", "y"))
    with pytest.raises(ValueError, match=match):
        check_points(x, d, ("X", "y"))


@pytest.mark.parametrize(
    ("s", "match"),
    [
        (torch.ones(3), r"must have shape \(4,\), one weight per test point, got \(3,\)"),
        (torch.tensor([1.0, float("nan"), 1.0, 1.0]), "sample_weight contains NaN"),
        (torch.tensor([1.0, -2.0, 1.0, 1.0]), "sample_weight must be ≥ 0, got -2.0"),
        (torch.zeros(4), "sample_weight is zero for every test point"),
    ],
)
def test_bad_sample_weights_are_named(s, match):
    check_sample_weight(torch.tensor([0.0, 1.0, 2.0, 0.5]), 4)
    with pytest.raises(ValueError, match=match):
        check_sample_weight(s, 4)
