""":func:`~torch_sigmoid_mlp.train`'s settings of the run around the step, in three groups.

The step takes ``method``, ``lr``, ``momentum``, ``batch_size``, ``shuffle``, ``generator``,
``options`` and ``sample_weight``, keywords of ``train`` itself. What the run around it takes comes in
groups, each a small frozen dataclass:

- :class:`Stop`: when the run ends (``max_epochs``, ``tol``, ``ftol``/``window``, early stopping
  on ``validation`` with ``patience``, ``until`` for a population);
- :class:`Logging`: what watches the run (TensorBoard, the progress bar, a callback, handlers);
- :class:`Distribution`: where the points are (across ranks, in chunks).

Each field is also a keyword of ``train`` of the same name, as it always was:
``train(model, x, d, tol=0.01, logdir="runs")`` and
``train(model, x, d, stop=Stop(tol=0.01), logging=Logging(logdir="runs"))`` are the same run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["Distribution", "Logging", "Stop"]


@dataclasses.dataclass(frozen=True)
class Stop:
    """When a run of :func:`~torch_sigmoid_mlp.train` ends (its docstring lists the stop reasons).

    Attributes:
        max_epochs: the most epochs (steps) to run.
        tol: the uniform bound ``ε``: stop once ``max_t |y^(L)(t) − d_t| < tol``; ``None`` never.
        ftol, window: stop as ``"converged"`` once the objective fell by at most ``ftol · E_0`` over
            ``window`` epochs; ``ftol=None`` never.
        validation: ``(x_val, d_val)``, whose SSE early stopping watches.
        patience: with ``validation``, stop after this many epochs without a new best.
        until: a population's ``"all"`` (every member stops), ``"first"`` (the first to reach ``tol``)
            or ``"best"`` (every member stops or is ``"outranked"``: its evidence cannot reach the best's).

    Example::

        >>> Stop(tol=0.01)
        Stop(max_epochs=10000, tol=0.01, ftol=None, window=10, validation=None, patience=None, until='all')
    """

    max_epochs: int = 10_000
    tol: float | None = None
    ftol: float | None = None
    window: int = 10
    validation: Any = None
    patience: int | None = None
    until: str = "all"


@dataclasses.dataclass(frozen=True)
class Logging:
    """What watches a run of :func:`~torch_sigmoid_mlp.train`; none of it changes the steps.

    Attributes:
        writer: a ``SummaryWriter`` to log to (left open); or
        logdir: a directory for one that ``train`` opens and closes.
        log_every: epochs between TensorBoard records.
        check_every: every this many epochs, log the manual gradient against autograd's.
        callback: ``callback(k, result)`` at each epoch; returning ``False`` stops the run.
        progress: show a ``tqdm`` progress bar.
        handlers: further :class:`~torch_sigmoid_mlp.handlers.Handler`\\ s.
    """

    writer: Any = None
    logdir: str | None = None
    log_every: int = 1
    check_every: int | None = None
    callback: Callable | None = None
    progress: bool = False
    handlers: list | None = None


@dataclasses.dataclass(frozen=True)
class Distribution:
    """Where the points of a run of :func:`~torch_sigmoid_mlp.train` are.

    Attributes:
        distributed: sum over the ranks of the default process group; ``None`` does where there is one.
        chunk_size: evaluate ``chunk_size`` points at a time (memory grows with the chunk, not ``T``).
    """

    distributed: bool | None = None
    chunk_size: int | None = None


GROUPS = {"stop": Stop, "logging": Logging, "distribution": Distribution}


def merged(groups: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    """The groups' fields and the flat keywords as one mapping of ``train``'s keyword names.

    A group left ``None`` gives its defaults; a field given both ways, or a keyword no group has, is
    a ``TypeError``, as Python's own for a call's keywords.
    """
    settings: dict[str, Any] = {}
    for name, cls in GROUPS.items():
        group = groups[name]
        if group is None:
            group = cls()
        elif not isinstance(group, cls):
            raise TypeError(f"{name} must be a {cls.__name__}, got {type(group).__name__}")
        fields = {field.name for field in dataclasses.fields(cls)}
        given = groups[name] is not None
        for field in fields:
            if field in flat and given and getattr(group, field) != getattr(cls(), field):
                raise TypeError(f"train() got {field}= twice: as a keyword and in {name}={cls.__name__}(...)")
            settings[field] = flat.pop(field) if field in flat else getattr(group, field)
    if flat:
        raise TypeError(f"train() got an unexpected keyword argument {next(iter(flat))!r}")
    return settings
