"""Names every doctest in the package may use without importing them."""

import pytest
import torch

import torch_sigmoid_mlp


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    for name in torch_sigmoid_mlp.__all__:
        doctest_namespace[name] = getattr(torch_sigmoid_mlp, name)


def pytest_collection_modifyitems(items):
    """The docstrings' examples print what runs computed: they are ``floats`` tests too."""
    for item in items:
        if type(item).__name__ == "DoctestItem":
            item.add_marker(pytest.mark.floats)
