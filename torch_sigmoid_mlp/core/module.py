"""``SigmoidMLP``: the ``nn.Module`` face of the bias-free sigmoid network."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import check_integer
from .functional import sigmoid_mlp, sigmoid_mlp_autograd

__all__ = ["BACKENDS", "SigmoidMLP"]

#: ``"manual"``: the hand-written :class:`~torch_sigmoid_mlp.SigmoidMLPFunction`;
#: ``"autograd"``: the same maths as plain torch ops, differentiated by autograd.
BACKENDS = {"manual": sigmoid_mlp, "autograd": sigmoid_mlp_autograd}


class SigmoidMLP(nn.Module):
    r"""A feed-forward network without biases and with a sigmoid on every neuron.

    .. math::
        y^{(0)} = x, \qquad y^{(l+1)} = σ(W^{(l)} y^{(l)}), \qquad F(x; w) = y^{(L)}

    Layer sizes are ``sizes = (in_features, *hidden, out_features)``; ``weights[l]`` is
    ``W^(l)`` of shape ``(size_{l+1}, size_l)``, the convention of ``nn.Linear.weight``.

    Args:
        in_features: ``n``, the number of inputs.
        hidden: widths of the hidden layers. ``None`` (default) is SPEC.md's architecture, two
            hidden layers of ``in_features`` neurons; ``()`` means no hidden layer.
        out_features: number of outputs (default 1).
        backend: ``"manual"`` (default) runs the hand-written backpropagation,
            :class:`~torch_sigmoid_mlp.SigmoidMLPFunction`; ``"autograd"`` runs the same maths as
            plain torch ops differentiated by autograd. Can be switched on a live model.
        device, dtype: where and how the weights are stored.
        generator: a ``torch.Generator`` that makes the initialisation reproducible.
        population: ``K``, the number of networks trained as one computation (SPEC.md,
            "Populations"): each ``W^(l)`` is then ``(K, size_{l+1}, size_l)``, member ``k``'s
            matrix at index ``k``. ``None`` (default) is one network.

    Shape:
        - Input: ``(..., in_features)``; a population's ``(T, in_features)``, shared by its
          members, or ``(K, T, in_features)``
        - Output: ``(..., out_features)``, every entry in ``(0, 1)``; a population's
          ``(K, T, out_features)``

    Under ``torch.autocast`` it computes in the autocast dtype, as ``nn.Linear`` does, wherever it
    sits in a model; its gradients come back in the weights' dtype. Forward mode (``torch.func.jvp``,
    ``jacfwd``, ``hessian``, ``torch.autograd.forward_ad``) runs the hand-written tangents of
    :class:`~torch_sigmoid_mlp.SigmoidMLPFunction` as backward runs its deltas.

    Attributes:
        weights: ``nn.ParameterList`` of ``W^(0), …, W^(L−1)``.
        sizes: the tuple of layer sizes ``(size_0, …, size_L)``.

    Example::

        >>> model = SigmoidMLP(3, generator=torch.Generator().manual_seed(0))
        >>> model
        SigmoidMLP(sizes=(3, 3, 3, 1), backend='manual')
        >>> model(torch.rand(5, 3)).shape
        torch.Size([5, 1])

    A population of 16 networks, each evaluated at the same points::

        >>> population = SigmoidMLP(3, population=16, generator=torch.Generator().manual_seed(0))
        >>> population(torch.rand(5, 3)).shape
        torch.Size([16, 5, 1])
        >>> population.member(2)
        SigmoidMLP(sizes=(3, 3, 3, 1), backend='manual')
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] | None = None,
        out_features: int = 1,
        *,
        backend: str = "manual",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
        population: int | None = None,
    ) -> None:
        super().__init__()
        self.population = check_integer(population, "population", optional=True)
        lead = () if population is None else (self.population,)
        in_features = check_integer(in_features, "in_features")
        out_features = check_integer(out_features, "out_features")
        hidden = (in_features, in_features) if hidden is None else tuple(hidden)
        hidden = tuple(check_integer(width, f"hidden[{i}]") for i, width in enumerate(hidden))
        self.sizes: tuple[int, ...] = (in_features, *hidden, out_features)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(*lead, fan_out, fan_in, device=device, dtype=dtype))
            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:])
        )
        self.backend = backend
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        r"""Draw every ``w^(l)_ij`` from ``U(−a, a)`` with ``a = sqrt(12 / size_l)``.

        Without biases a neuron's input ``v = Σ_j w_ij y_j`` has mean zero when the weights do,
        whatever the (positive) signals ``y_j`` are, so no neuron starts on one side of the
        sigmoid. Its variance is ``size_l · a²/3 · E[y_j²]``; sigmoid outputs around 0.5 have
        ``E[y²] ≈ 1/4`` (inputs min–max scaled into ``[−1, 1]`` have ``E[x²] ≈ 1/3``, the
        estimator's one input, scaled into ``[−0.75, 1]``, 0.27), so ``a² = 12 / size_l`` makes
        ``Var(v) ≈ 1``: neurons start where ``σ'`` is large (not
        saturated) yet spread enough to differ from one another. Glorot's uniform rule, built for
        zero-mean tanh units, gives ``Var(v) ≈ 1/4`` here, which starts every sigmoid in its
        linear part and slows the first epochs.

        A population draws member after member, each as one network would: member ``k`` of a
        population drawn with a generator is the network that ``reset_parameters`` draws from that
        generator after members ``0..k−1`` (with a fresh ``torch.Generator().manual_seed(s)``,
        member 0 is ``SigmoidMLP(..., generator=that)``).

        Args:
            generator: makes the draw reproducible, on any device the weights live on (a CPU
                generator gives CUDA weights equal to the CPU ones); ``None`` uses torch's
                global generator.
        """
        members = [list(self.weights)] if self.population is None else [
            [W[k] for W in self.weights] for k in range(self.population)
        ]  # fmt: skip
        with torch.no_grad():
            for W in (W for member in members for W in member):
                a = math.sqrt(12.0 / W.shape[1])
                if generator is None or generator.device == W.device:
                    W.uniform_(-a, a, generator=generator)
                else:
                    # A generator draws only on its own device: draw there and copy, so that a
                    # seed gives the same weights whichever device the model lives on.
                    draw = torch.empty(W.shape, dtype=W.dtype, device=generator.device)
                    W.copy_(draw.uniform_(-a, a, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        """``F(x; w) = y^(L)`` for test points ``x`` of shape ``(..., in_features)``."""
        return self._forward(x, list(self.weights))

    @property
    def backend(self) -> str:
        """``"manual"`` or ``"autograd"``; assign to switch."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {value!r}")
        self._backend = value
        self._forward = BACKENDS[value]

    @property
    def in_features(self) -> int:
        """``n = size_0``, the number of inputs."""
        return self.sizes[0]

    @property
    def out_features(self) -> int:
        """``size_L``, the number of outputs."""
        return self.sizes[-1]

    @property
    def num_layers(self) -> int:
        """``L``, the number of weight matrices."""
        return len(self.sizes) - 1

    def extra_repr(self) -> str:
        """The layer sizes and the backend, e.g. ``sizes=(3, 3, 3, 1), backend='manual'``."""
        population = "" if self.population is None else f", population={self.population}"
        return f"sizes={self.sizes}, backend={self.backend!r}{population}"

    def member(self, k: int) -> SigmoidMLP:
        """Member ``k`` of a population as a network of its own, its weights copied (not shared)."""
        if self.population is None:
            raise ValueError("member() takes a member of a population; this SigmoidMLP is one network")
        if isinstance(k, bool) or not isinstance(k, int) or not -self.population <= k < self.population:
            raise ValueError(f"k must be an int in [0, {self.population}), got {k!r}")
        W0 = self.weights[0]
        single = type(self)(
            self.in_features, self.sizes[1:-1], self.out_features, backend=self.backend,
            device=W0.device, dtype=W0.dtype,
        )  # fmt: skip
        with torch.no_grad():
            for mine, W in zip(single.weights, self.weights):
                mine.copy_(W[k])
        return single

    @classmethod
    def stack(cls, models: Sequence[SigmoidMLP]) -> SigmoidMLP:
        """A population whose member ``k`` has ``models[k]``'s weights (copied): networks of one
        shape, dtype and device; the first one's backend."""
        models = list(models)
        if not models or not all(isinstance(m, SigmoidMLP) and m.population is None for m in models):
            raise TypeError("stack takes a non-empty sequence of single SigmoidMLP networks")
        first = models[0]
        W0 = first.weights[0]
        for i, m in enumerate(models):
            if m.sizes != first.sizes:
                raise ValueError(f"models[{i}] has sizes {m.sizes}, models[0] {first.sizes}")
            if m.weights[0].dtype != W0.dtype or m.weights[0].device != W0.device:
                raise ValueError(
                    f"models[{i}] is {m.weights[0].dtype} on {m.weights[0].device}, "
                    f"models[0] {W0.dtype} on {W0.device}"
                )
        population = cls(
            first.in_features, first.sizes[1:-1], first.out_features, backend=first.backend,
            device=W0.device, dtype=W0.dtype, population=len(models),
        )  # fmt: skip
        with torch.no_grad():
            for l, W in enumerate(population.weights):
                torch.stack([m.weights[l].detach() for m in models], out=W)
        return population

    def __repr__(self) -> str:
        # One line, like nn.Linear: the ParameterList child would only repeat ``sizes``.
        return f"{type(self).__name__}({self.extra_repr()})"

    @classmethod
    def from_sequential(cls, seq: nn.Sequential, *, backend: str = "manual") -> SigmoidMLP:
        """Build a ``SigmoidMLP`` from ``nn.Sequential(Linear(a, b, bias=False), Sigmoid(), …)``.

        The weights are copied; the new model gives the same outputs as ``seq``. Anything else
        (a bias, another activation, a missing final sigmoid, sizes that don't chain) is a
        ``ValueError`` naming the offending layer.
        """
        if not isinstance(seq, nn.Sequential):
            raise TypeError(f"expected nn.Sequential, got {type(seq).__name__}")
        layers = list(seq)
        if not layers or len(layers) % 2:
            raise ValueError(
                "expected Linear(bias=False), Sigmoid() pairs, got "
                f"{len(layers)} module(s): {[type(m).__name__ for m in layers]}"
            )
        mats = []
        for i in range(0, len(layers), 2):
            linear, act = layers[i], layers[i + 1]
            if not isinstance(linear, nn.Linear):
                raise ValueError(f"layer {i} must be nn.Linear, got {type(linear).__name__}")
            if linear.bias is not None:
                raise ValueError(f"layer {i} (nn.Linear) has a bias; SigmoidMLP has none")
            if not isinstance(act, nn.Sigmoid):
                raise ValueError(f"layer {i + 1} must be nn.Sigmoid, got {type(act).__name__}")
            if mats and linear.in_features != mats[-1].shape[0]:
                raise ValueError(
                    f"layer {i} takes {linear.in_features} features, "
                    f"the layer before gives {mats[-1].shape[0]}"
                )
            mats.append(linear.weight.detach())
        W0 = mats[0]
        model = cls(
            W0.shape[1],
            [W.shape[0] for W in mats[:-1]],
            mats[-1].shape[0],
            backend=backend,
            device=W0.device,
            dtype=W0.dtype,
        )
        with torch.no_grad():
            for mine, theirs in zip(model.weights, mats):
                mine.copy_(theirs)
        return model

    def to_sequential(self) -> nn.Sequential:
        """The same network as ``nn.Sequential(Linear(bias=False), Sigmoid(), …)``, weights copied."""
        if self.population is not None:
            raise ValueError("to_sequential takes one network: take a member first (model.member(k))")
        layers: list[nn.Module] = []
        for W in self.weights:
            linear = nn.Linear(W.shape[1], W.shape[0], bias=False, device=W.device, dtype=W.dtype)
            with torch.no_grad():
                linear.weight.copy_(W)
            layers += [linear, nn.Sigmoid()]
        return nn.Sequential(*layers)
