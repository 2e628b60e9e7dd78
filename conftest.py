"""Names every doctest in the package may use without importing them."""

import pytest
import torch

import torch_sigmoid_mlp


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    for name in torch_sigmoid_mlp.__all__:
        doctest_namespace[name] = getattr(torch_sigmoid_mlp, name)
