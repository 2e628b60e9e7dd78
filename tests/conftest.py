"""Fixtures shared by the test files.

The problems several files share (a teacher with known answers, a student, random points) are plain
functions in ``problems.py``: the multi-process tests build them inside their spawned workers, where
fixtures do not reach.
"""

import pytest
import torch


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> torch.device:
    """Run a test on the CPU and on CUDA; the CUDA run is skipped where there is no GPU.

    A ``torch.device`` without an index: compare with ``tensor.device.type == device.type``,
    since ``torch.device("cuda") != torch.device("cuda:0")``.
    """
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    return torch.device(request.param)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: takes tens of seconds; it runs by default (deselect: -m 'not slow')"
    )
