"""Full-batch steepest descent off the autograd tape: preallocated signals, explicit deltas, in-place update.

Backpropagation written out by hand knows what autograd cannot: ``y^(l)`` is dead once
``W^(l)`` is updated, the gradient is only ever added to ``W^(l)``, and ``σ'`` is formed from
``y`` inside the delta. So one epoch here is the ``L`` forward products, the ``L − 1`` products
``W^(l)ᵀ δ^(l+1)``, the ``L`` products ``G^(l) = δ^(l+1)ᵀ y^(l)`` and ``L`` in-place adds
``W^(l) += η · G^(l)``, plus a few elementwise kernels, all writing into buffers allocated once.

Above :data:`ONE_ADD_ROWS` points the product and the add are kept apart on purpose.
``W.addmm_(δᵀ, y, alpha=η)`` is one kernel fewer, but a matrix product with ``beta = 1`` adds its
partial sums over blocks of test points into ``W`` one block at a time, each add rounded to the
precision of ``W``'s entries (about 1) rather than to that of the step (about ``η·|G|``): in float32
at ``T = 10⁶`` that puts an error of about 1 % into the step. Summing ``G^(l)`` first rounds each
partial sum against ``G^(l)``'s own size and rounds into ``W`` once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._checks import check_integer
from .functional import check_inputs

__all__ = ["TapeFreeStep"]

# δ = e ⊙ y ⊙ (1 − y) in one kernel, written into a given buffer.
_sigmoid_backward_out = torch.ops.aten.sigmoid_backward.grad_input
_INF = float("inf")

#: Above this many test points :meth:`TapeFreeStep.update` sums each step ``G^(l)`` in its own buffer
#: and adds it to ``W^(l)`` once. At or below it one ``addmm_`` does both: a matrix product splits
#: its sum over the points into blocks of a few hundred and adds each block's partial sum to ``W``,
#: so up to this size ``W`` takes a handful of roundings, the order of the one it takes anyway, and
#: the kernel saved is a fifth of a small epoch's time.
ONE_ADD_ROWS = 2048


class TapeFreeStep:
    r"""One epoch of full-batch steepest descent on ``E``, split into a forward and an update.

    :meth:`forward` evaluates the network at the current weights and returns ``E`` and the
    largest error; :meth:`update` then takes the step ``w ← w − η ∇E(w)`` from what the forward
    left in the buffers::

        y^(l+1) = σ(W^(l) y^(l))                              l = 0..L−1, y^(0) = x
        e       = d − y^(L),   E = 1/2 · Σ_t ‖e(t)‖²
        δ^(L)   = e ⊙ y^(L) ⊙ (1 − y^(L))
        δ^(l)   = y^(l) ⊙ (1 − y^(l)) ⊙ (W^(l)ᵀ δ^(l+1))     l = L−1..1, with W^(l) before its update
        G^(l)   = Σ_t δ^(l+1)(t) · y^(l)(t)ᵀ = −∂E/∂W^(l)
        W^(l)  ← W^(l) + η · G^(l)                             l = L−1..0

    With sample weights ``s_t`` (:meth:`forward`'s ``sample_weight``), ``E`` is SPEC.md's ``E_s`` and
    ``δ^(L)(t) = s_t · e(t) ⊙ y^(L)(t) ⊙ (1 − y^(L)(t))``; points with ``s_t = 0`` are left out of
    the largest error.

    ``δ^(l)`` overwrites ``y^(l)`` in its buffer (once ``W^(l)`` has been updated, ``y^(l)`` is
    not needed again), so the buffers are ``y^(1..L)``, ``e``, one product buffer per hidden
    layer and ``G^(l)`` per layer: about ``T · (2·Σ hidden sizes + 2·size_L) + P`` numbers, nothing
    saved for an autograd graph and no ``.grad``. After :meth:`update`, :attr:`gradients` holds
    the ``G^(l) = −∂E/∂W^(l)`` the step took (above :data:`ONE_ADD_ROWS` points, or when asked).
    The weights are updated in place (through detached aliases of the same storage), so a
    :class:`~torch_sigmoid_mlp.SigmoidMLP` whose ``weights`` were passed in
    sees every step; ``W.grad`` is left alone.

    Nothing here waits for the device: ``E`` and ``max_t |e(t)|`` come back as 0-d tensors, and
    the caller decides when to read them (one ``.item()`` per epoch for a stopping test).

    Args:
        weights: ``W^(0), …, W^(L−1)``, ``W^(l)`` of shape ``(size_{l+1}, size_l)``, one dtype
            and device (e.g. ``model.weights``). The step keeps aliases of their storage: build a
            new one after moving or replacing the weights (``load_state_dict`` copies in place
            and is fine).
        rows: ``T``, the most test points a forward pass will see; buffers hold this many rows.
            A forward pass with fewer rows (a mini-batch) uses the leading part of them.

    Shape:
        - ``x``: ``(T', size_0)`` with ``T' ≤ rows``, the weights' dtype and device
        - ``d``: ``(T', size_L)``, likewise

    Example::

        >>> model = SigmoidMLP(2, generator=torch.Generator().manual_seed(0))
        >>> x = torch.tensor([[0.1, 0.9], [0.9, 0.1]])
        >>> d = torch.tensor([[0.2], [0.8]])
        >>> step = TapeFreeStep(model.weights, rows=2)
        >>> E, max_error = step.forward(x, d)
        >>> step.update(lr=0.5)
        >>> E, step.forward(x, d)[0] < E
        (tensor(0.0959), tensor(True))
        >>> step.run(x, d, lr=0.5, epochs=5000, tol=0.05)
        (2173, True, tensor(0.0022), tensor(0.0500))
    """

    def __init__(self, weights: Sequence[Tensor], rows: int) -> None:
        weights = list(weights)
        rows = check_integer(rows, "rows")
        if not weights:
            raise ValueError("weights must hold at least one matrix W^(0)")
        W0 = weights[0]
        check_inputs(torch.empty(0, W0.shape[-1], dtype=W0.dtype, device=W0.device), weights)
        # Aliases of the weights' storage without autograd history: in-place updates reach the
        # caller's tensors, and out= products never meet a tensor that requires grad.
        self.weights = [W.detach() for W in weights]
        self.sizes = (W0.shape[1], *(W.shape[0] for W in weights))
        self.rows = rows
        options = {"dtype": W0.dtype, "device": W0.device}
        # y^(l) for l = 1..L; later δ^(l) in the same place.
        self._ys = [torch.empty(rows, size, **options) for size in self.sizes[1:]]
        self._e = torch.empty(rows, self.sizes[-1], **options)  # e = d − y^(L)
        # W^(l)ᵀ δ^(l+1) for l = 1..L−1, (T, size_l).
        self._products = [torch.empty(rows, size, **options) for size in self.sizes[1:-1]]
        # G^(l) = δ^(l+1)ᵀ y^(l), shaped like W^(l)
        self.gradients = [torch.empty_like(W) for W in self.weights]
        self._half = torch.tensor(0.5, **options)
        self._dtype = W0.dtype
        self._s: Tensor | None = None  # the last forward's sample weights, (T, 1)
        self._views_for(rows)

    def _views_for(self, rows: int) -> None:
        """Lay out the forward and update plans over the first ``rows`` rows of every buffer."""
        self._x_shape = torch.Size((rows, self.sizes[0]))
        part = (lambda t: t) if rows == self.rows else (lambda t: t[:rows])
        ys = [part(t) for t in self._ys]  # y^(1..L), later δ^(1..L)
        products = [part(t) for t in self._products]
        self._err = part(self._e)
        self._flat_err = self._err.view(-1)
        self._y_out = ys[-1]
        # Forward: (W^(l)ᵀ, buffer of y^(l+1)) for l = 0..L−1.
        self._forward_plan = list(zip((W.t() for W in self.weights), ys))
        # Update, l = L−1..1: (W^(l), G^(l), δ^(l+1), δ^(l+1)ᵀ, y^(l), buffer of W^(l)ᵀ δ^(l+1));
        # δ^(l+1) sits in ys[l].
        self._update_plan = [
            (self.weights[l], self.gradients[l], ys[l], ys[l].t(), ys[l - 1], products[l - 1])
            for l in range(len(self.weights) - 1, 0, -1)
        ]
        self._delta1_t = ys[0].t()  # δ^(1)ᵀ, for the update of W^(0)
        self._one_add = rows > ONE_ADD_ROWS

    def forward(self, x: Tensor, d: Tensor, sample_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run ``x`` through the network into the buffers; return ``E`` and ``max_t |e(t)|``.

        Both are 0-d tensors on the weights' device; reading them is the caller's choice.
        ``sample_weight`` (``(T,)``, ``s_t ≥ 0``) makes ``E`` SPEC.md's ``E_s`` and weights the
        deltas of the following :meth:`update`.
        """
        sum_of_squares, max_error = self.forward_sum_of_squares(x, d, sample_weight)
        return sum_of_squares.mul_(self._half), max_error  # E = 1/2 Σ_t s_t ‖e(t)‖²

    def forward_sum_of_squares(
        self, x: Tensor, d: Tensor, sample_weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`forward` with ``2E = Σ_t s_t ‖e(t)‖²`` in place of ``E``: one kernel fewer, for a
        caller that reads the value on the host anyway (:func:`~torch_sigmoid_mlp.train` halves it there).
        """
        dtype = self._dtype
        if x.shape != self._x_shape or d.shape != self._err.shape or x.dtype != dtype or d.dtype != dtype:
            self._prepare(x, d)
        # out= products refuse inputs that require grad; x and d are data here.
        if x.requires_grad:
            x = x.detach()
        if d.requires_grad:
            d = d.detach()
        y = x
        for Wt, out in self._forward_plan:
            y = torch.mm(y, Wt, out=out).sigmoid_()  # y^(l+1) = σ(W^(l) y^(l)), (T, size_{l+1})
        self._x = x
        e = torch.sub(d, y, out=self._err)  # e = d − y^(L), (T, size_L)
        if sample_weight is None:
            self._s = None
            # Σ_t ‖e(t)‖² and max_t |e(t)|
            return torch.dot(self._flat_err, self._flat_err), torch.linalg.vector_norm(e, _INF)
        s = self._s = sample_weight.reshape(-1, 1)  # s_t, (T, 1)
        # Σ_t s_t ‖e(t)‖² and the largest |e(t)| among the points that count (s_t > 0)
        return (s * e.square()).sum(), torch.where(s > 0, e.abs(), 0).amax()

    def _prepare(self, x: Tensor, d: Tensor) -> None:
        """Check a batch whose shape or dtype differs from the last one, and fit the views to it."""
        for name, t in (("x", x), ("d", d)):
            if t.dtype != self._dtype or t.device != self.weights[0].device:
                raise TypeError(
                    f"{name} must be {self._dtype} on {self.weights[0].device} like the weights, "
                    f"got {t.dtype} on {t.device}"
                )
        T = x.shape[0] if x.dim() == 2 else 0
        if x.dim() != 2 or x.shape[1] != self.sizes[0] or not 0 < T <= self.rows:
            raise ValueError(
                f"x must have shape (T, {self.sizes[0]}) with 1 ≤ T ≤ {self.rows}, got {tuple(x.shape)}"
            )
        if d.shape != (T, self.sizes[-1]):
            raise ValueError(f"d must have shape {(T, self.sizes[-1])}, got {tuple(d.shape)}")
        if self._x_shape[0] != T:
            self._views_for(T)

    def update(self, lr: float, *, keep_gradients: bool = False) -> None:
        """Backpropagate from the last :meth:`forward` and take the step with learning rate ``lr``.

        Call it once per :meth:`forward`: it consumes the signals (each ``y^(l)`` becomes
        ``δ^(l)`` in place). With ``keep_gradients`` (or above :data:`ONE_ADD_ROWS` test points,
        where the step is summed apart anyway) :attr:`gradients` holds this step's ``G^(l)``.
        """
        y_out = self._y_out
        _sigmoid_backward_out(self._err, y_out, grad_input=y_out)  # δ^(L) = e ⊙ y^(L) ⊙ (1 − y^(L))
        if self._s is not None:
            y_out.mul_(self._s)  # δ^(L)(t) = s_t · e(t) ⊙ y^(L)(t) ⊙ (1 − y^(L)(t))
        apart = self._one_add
        form = apart or keep_gradients
        for W, G, delta, delta_t, y, back in self._update_plan:
            torch.mm(delta, W, out=back)  # W^(l)ᵀ δ^(l+1) with the old W^(l), (T, size_l)
            if form:
                torch.mm(delta_t, y, out=G)  # G^(l) = Σ_t δ^(l+1)(t) y^(l)(t)ᵀ, (size_{l+1}, size_l)
            if apart:
                W.add_(G, alpha=lr)  # W^(l) += η G^(l), rounded into W once
            else:
                W.addmm_(delta_t, y, alpha=lr)  # the same, in one kernel: few partial sums
            _sigmoid_backward_out(back, y, grad_input=y)  # δ^(l) = y^(l) ⊙ (1 − y^(l)) ⊙ W^(l)ᵀ δ^(l+1)
        W0, x_t, delta1_t = self.weights[0], self._x, self._delta1_t
        if form:
            torch.mm(delta1_t, x_t, out=self.gradients[0])  # G^(0) = Σ_t δ^(1)(t) x(t)ᵀ
        if apart:
            W0.add_(self.gradients[0], alpha=lr)  # W^(0) += η G^(0)
        else:
            W0.addmm_(delta1_t, x_t, alpha=lr)

    def run(
        self, x: Tensor, d: Tensor, *, lr: float, epochs: int, tol: float | None = None
    ) -> tuple[int, bool, Tensor, Tensor]:
        """Up to ``epochs`` epochs of :meth:`forward` then :meth:`update`, stopping *before* the
        update of the first epoch whose ``max_t |e(t)| < tol``.

        Returns:
            ``(epochs_run, converged, E, max_error)``: the number of forward passes taken, whether
            the bound was met, and ``E`` and ``max_t |e(t)|`` of the last forward pass (at the
            weights now held when converged, at the weights before the last update otherwise).
        """
        epochs = check_integer(epochs, "epochs")
        forward, update = self.forward, self.update
        for epoch in range(1, epochs + 1):
            E, max_error = forward(x, d)
            if tol is not None and max_error.item() < tol:
                return epoch, True, E, max_error
            update(lr)
        return epochs, False, E, max_error
