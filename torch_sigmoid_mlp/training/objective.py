r"""The objective over the test points: ``E_s``, its gradient and Gauss–Newton sums, however the points lie.

.. code-block:: text

    E_s(w)  = 1/2 · Σ_t s_t · ‖d_t − y^(L)(t)‖²          (s_t = 1 without sample weights)
    ∇E_s    = −Σ_t δ^(l+1)(t) · y^(l)(t)ᵀ,   δ^(L)(t) = s_t · e(t) ⊙ y^(L)(t) ⊙ (1 − y^(L)(t))
    JᵀSJ    = Σ_t s_t · J_tᵀ J_t,            JᵀSe = Σ_t s_t · J_tᵀ e_t

Every quantity a solver needs is a sum over test points (or, for the uniform bound, a maximum), so
an :class:`Objective` computes it a chunk of points at a time and sums over the ranks of a
``torch.distributed`` group. The solvers and the training loop see one set of points and never
ask how it is stored.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.distributed as dist
from torch import Tensor

from ..core._checks import check_integer
from ..core._flat import num_weights
from ..core.derivatives import jacobian, jacobian_and_output
from ..core.functional import sse_loss
from .ranks import FlatGradients, all_reduce_max, is_distributed

__all__ = ["Objective", "spread"]

#: :meth:`Objective.gauss_newton` forms the Jacobian of at most this many numbers at once (32 MB in
#: float64): enough rows per chunk that the products run at full speed, and a memory bound that does
#: not grow with ``T``.
JACOBIAN_BLOCK = 1 << 22

#: From this many weights ``JᵀSJ`` is summed as the upper blocks of ``GRAM_BLOCKS`` column blocks and
#: mirrored (:func:`add_gram`): 5/8 of the multiply-adds. AMD EPYC, one thread, ``N × P``: 1500 × 784
#: 31 against 44 ms, 2000 × 1072 72 against 107 ms, 1000 × 500 9.7 against 12.6 ms; at P ≤ 302
#: within the noise.
GRAM_COLUMNS, GRAM_BLOCKS = 400, 4


def _gram_edges(P: int) -> list[int]:
    return [round(i * P / GRAM_BLOCKS) for i in range(GRAM_BLOCKS + 1)]


def add_gram(A: Tensor, J: Tensor, SJ: Tensor) -> Tensor:
    """``A += JᵀSJ`` with ``SJ = S·J`` (the rows of ``J`` scaled by ``s_t``, or ``J`` itself), ``(P, P)``.

    From :data:`GRAM_COLUMNS` weights only the blocks on and above the diagonal are summed; call
    :func:`mirror_gram` once the sum is complete.
    """
    P = J.shape[1]
    if P < GRAM_COLUMNS:
        return A.addmm_(J.T, SJ)
    edges = _gram_edges(P)
    for lo, hi in itertools.pairwise(edges):
        A[lo:hi, lo:].addmm_(J[:, lo:hi].T, SJ[:, lo:])  # the row of blocks from the diagonal on
    return A


def gram(J: Tensor, SJ: Tensor) -> Tensor:
    """``JᵀSJ`` of one block of rows, ``(P, P)``: one product below :data:`GRAM_COLUMNS` weights, else
    :func:`add_gram`'s upper blocks, mirrored."""
    P = J.shape[1]
    if P < GRAM_COLUMNS:
        return J.T @ SJ
    return mirror_gram(add_gram(J.new_zeros(P, P), J, SJ))


def mirror_gram(A: Tensor) -> Tensor:
    """The blocks below the diagonal of a sum of :func:`add_gram`, from those above it."""
    P = A.shape[-1]
    if P >= GRAM_COLUMNS:
        edges = _gram_edges(P)
        for lo, hi in itertools.pairwise(edges):
            A[hi:, lo:hi] = A[lo:hi, hi:].T
    return A


def spread(d: Tensor, s: Tensor | None, *, reduce=None) -> float:
    r"""``½·Σ_t s_t ‖d_t − d̄‖²`` with ``d̄ = Σ_t s_t d_t / Σ_t s_t``: ``E_s`` of the best constant output,
    in float64, for targets ``d`` ``(T, m)`` and sample weights ``s`` ``(T,)`` or ``(T, 1)`` (or ``None``).

    ``reduce`` sums the ``(1 + 2m,)`` moments over the processes that share the points, where they do.
    """
    d = d.double()
    s = torch.ones(d.shape[0], 1, dtype=torch.float64, device=d.device) if s is None else s
    s = s.double().reshape(-1, 1)  # (T, 1)
    sums = torch.cat([s.sum().reshape(1), (s * d).sum(0), (s * d.square()).sum(0)])  # (1 + 2m,)
    if reduce is not None:
        sums = reduce(sums)
    S0, S1, S2 = sums[0], sums[1 : 1 + d.shape[1]], sums[1 + d.shape[1] :]
    return 0.5 * (S2 - S1.square() / S0).clamp_min(0).sum().item() if S0 > 0 else 0.0


#: Sample weights whose mean ``s̄`` lies within ``[1/ORDINARY_WEIGHT, ORDINARY_WEIGHT]`` leave the
#: solvers' constants as they are (see :func:`weight_unit`).
ORDINARY_WEIGHT = 1e3


def weight_unit(mean: float) -> float:
    r"""The unit the solvers' absolute constants are measured in, for sample weights of mean ``s̄``:

    .. code-block:: text

        u = s̄ / clamp(s̄, 1/B, B),   B = ORDINARY_WEIGHT         (u = 1 for 1/B ≤ s̄ ≤ B)

    ``E_s``, ``∇E_s``, ``JᵀSJ`` and ``JᵀSe`` scale with a uniform weight ``s_t = c``, and so would the
    constants compared with them (LM's ``μ``, Adam's ``eps``, L-BFGS's thresholds) if a fit is to go
    the same way at every ``c``. Within the band they stay as they are, so that integer weights take
    exactly the steps of the repeated points (a weight is a repeated point, whose ``s̄`` is 1); beyond it
    they scale with ``s̄``, so that ``c = 10²⁰`` steps as ``c = B`` does and ``c = 10⁻²⁰`` as ``c = 1/B``.
    Continuous in ``s̄``.

    Example::

        >>> from torch_sigmoid_mlp.training.objective import weight_unit
        >>> weight_unit(1.0), weight_unit(7.5), weight_unit(1e20), weight_unit(4e-3)
        (1.0, 1.0, 1e+17, 1.0)
    """
    return mean / min(max(mean, 1 / ORDINARY_WEIGHT), ORDINARY_WEIGHT)


def sample_weight_unit(s: Tensor | None) -> float:
    """:func:`weight_unit` of the sample weights ``s`` of one process's points: ``1`` without them."""
    return 1.0 if s is None else weight_unit(s.double().mean().item())


class Objective:
    r"""``E_s``, ``max_t |e(t)|``, ``∇E_s`` and ``JᵀSJ``, ``JᵀSe`` over the test points of every rank.

    Args:
        model: the :class:`~torch_sigmoid_mlp.SigmoidMLP` whose weights ``w`` the quantities are at.
        x: this process's test points, ``(T_r, n)``; in a process group, this rank's shard.
        d: their measurements, ``(T_r, m)``.
        sample_weight: ``s_t ≥ 0`` per point, ``(T_r,)``, or ``None`` for ``s_t = 1``. Points with
            ``s_t = 0`` count neither in ``E_s`` nor in the uniform bound ``max_t |e(t)|``.
        chunk_size: points per forward (and backward) pass; ``None`` is all of them at once.
        distributed: sum over the ranks of the default process group (one ``all_reduce`` per sum).

    Attributes:
        T: the number of test points over all ranks.
        N: ``T·m``, the number of errors ``e_ti``.
        P: the number of weights.
    """

    def __init__(
        self,
        model,
        x: Tensor,
        d: Tensor,
        *,
        sample_weight: Tensor | None = None,
        chunk_size: int | None = None,
        distributed: bool = False,
    ) -> None:
        self.model = model
        self.x, self.d, self.s = x, d, sample_weight
        self.chunk_size = check_integer(chunk_size, "chunk_size", optional=True)
        self.distributed = distributed
        self.weights = list(model.weights)
        self.P = num_weights(self.weights)
        self.T = x.shape[0]
        if distributed and is_distributed():
            T = torch.tensor(float(self.T), dtype=torch.float64, device=self.weights[0].device)
            dist.all_reduce(T)
            self.T = int(T.item())
        self.N = self.T * d.shape[1]
        self._grads: FlatGradients | None = None
        # all the points in one block on the model's device, one process: the epoch's sums need no
        # accumulation over chunks or ranks, and the solvers of small networks run on this path
        on_device = all(t is None or t.device == self.weights[0].device for t in (x, d, sample_weight))
        self._whole = None
        if on_device and not (distributed and is_distributed()) and (chunk_size or math.inf) >= x.shape[0]:
            self._whole = (x, d, None if sample_weight is None else sample_weight[:, None])

    # -- the pieces ---------------------------------------------------------------------------------

    def _chunks(self, size: int | None = None):
        """``(x_c, d_c, s_c)`` for consecutive chunks on the model's device (``s_c`` may be ``None``)."""
        device = self.weights[0].device
        T = self.x.shape[0]
        K = size or self.chunk_size or max(T, 1)
        for start in range(0, T, K):
            part = slice(start, start + K)
            s = None if self.s is None else self.s[part].to(device, non_blocking=True)[:, None]  # (K, 1)
            yield self.x[part].to(device, non_blocking=True), self.d[part].to(device, non_blocking=True), s

    @staticmethod
    def _terms(y: Tensor, d: Tensor, s: Tensor | None) -> tuple[Tensor, Tensor]:
        """This chunk's ``E_s`` and largest ``|e|`` over points that count (``s_t > 0``)."""
        if s is None:
            return sse_loss(y, d), (d.detach() - y.detach()).abs().amax()
        e = d - y  # e = d − y^(L), (K, m)
        return 0.5 * (s * e.square()).sum(), torch.where(s > 0, e.detach().abs(), 0).amax()

    def _sum(self, E: Tensor, max_error: Tensor) -> tuple[Tensor, Tensor]:
        if self.distributed and is_distributed():
            dist.all_reduce(E)
            max_error = all_reduce_max(max_error)
        return E, max_error

    def _zeros(self) -> tuple[Tensor, Tensor]:
        W0 = self.weights[0]
        zero = torch.zeros((), dtype=W0.dtype, device=W0.device)
        return zero, zero.clone()

    # -- what solvers ask for -----------------------------------------------------------------------

    def error(self, rows: int | None = None, weights: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``(E_s, max_t |e(t)|)`` at the current weights, or at ``weights`` (``W^(0..L−1)``, shaped as
        the model's: a trial step's, the model's own left as they are), 0-d tensors, no gradients.

        ``rows`` points per forward pass (default ``chunk_size``, or all at once). The output comes
        from the model's backend either way (its forward at those weights), to the last bit.
        """
        forward = self.model._forward
        weights = list(self.weights) if weights is None else weights
        if self._whole is not None and (rows or math.inf) >= self.T:
            x, d, s = self._whole
            with torch.no_grad():
                return self._terms(forward(x, weights), d, s)  # y^(L) = F(x; w), (T, m)
        E, max_error = self._zeros()
        with torch.no_grad():
            for x, d, s in self._chunks(rows):
                E_c, max_c = self._terms(forward(x, weights), d, s)  # y^(L) = F(x; w), (K, m)
                E += E_c
                max_error = torch.maximum(max_error, max_c)
        return self._sum(E, max_error)

    def spread(self) -> float:
        r"""``½·Σ_t s_t ‖d_t − d̄‖²`` with ``d̄ = Σ_t s_t d_t / Σ_t s_t``: ``E_s`` of the best constant output.

        The scale a convergence test measures ``E_s``'s progress in (``1 − E_s / spread`` is the
        training ``R²``); summed over ranks, in float64.
        """
        reduce = None
        if self.distributed and is_distributed():

            def reduce(sums: Tensor) -> Tensor:
                sums = sums.to(self.weights[0].device)
                dist.all_reduce(sums)
                return sums

        return spread(self.d, self.s, reduce=reduce)

    def weight_unit(self) -> float:
        """:func:`weight_unit` of this objective's weights (over every rank): ``1`` without them."""
        if self.s is None:
            return 1.0
        total = self.s.double().sum()
        if self.distributed and is_distributed():
            total = total.to(self.weights[0].device)
            dist.all_reduce(total)
        return weight_unit(total.item() / self.T)

    def accumulate_gradients(self, E: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Add this process's ``∂E_s/∂W^(l)`` into each ``W^(l).grad``, a chunk at a time, and return
        its ``(E_s, max_t |e(t)|)``; nothing is summed over ranks.

        Gradients are *added* to whatever ``.grad`` holds, as ``Tensor.backward`` does; a ``.grad``
        that is ``None`` stays so when there are no points. ``E_s`` is added into ``E`` in place when
        it is given (the flat buffer's entry), else into a new 0-d tensor.
        """
        E, max_error = self._zeros() if E is None else (E, self._zeros()[1])
        for x, d, s in self._chunks():
            E_c, max_c = self._terms(self.model(x), d, s)  # y^(L) = F(x; w), (K, m)
            E_c.backward()  # adds ∂E_c/∂W^(l) into W^(l).grad, by the model's backend
            with torch.no_grad():
                E += E_c
                max_error = torch.maximum(max_error, max_c)
        return E, max_error

    def gradient(self) -> tuple[Tensor, Tensor]:
        r"""``(E_s, max_t |e(t)|)`` at the current weights, with ``∂E_s/∂W^(l)`` left in ``W^(l).grad``.

        The gradient comes from the model's backend (``"manual"``: the explicit deltas), a chunk at a
        time (:meth:`accumulate_gradients`), into one flat buffer that a single ``all_reduce`` sums over ranks
        together with ``E_s``.
        """
        if self._grads is None:
            self._grads = FlatGradients(self.weights)
        grads = self._grads
        grads.zero_()
        # each W^(l).grad is a view of the flat buffer, and E_s goes into its last entry
        _, max_error = self.accumulate_gradients(grads.loss)
        if self.distributed and is_distributed():
            grads.all_reduce_()
            max_error = all_reduce_max(max_error)
        return grads.loss[0].clone(), max_error

    def gradients(self) -> list[Tensor]:
        """The ``∂E_s/∂W^(l)`` the last :meth:`gradient` left, shaped like the weights."""
        return self._grads.views

    def release(self) -> None:
        """Drop the gradient buffer (and each ``W.grad`` that views it)."""
        if self._grads is not None:
            for W in self.weights:
                W.grad = None
            self._grads = None

    def _gauss_newton_whole(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`gauss_newton` with every point in one block: ``y^(L)`` from the Jacobian's own
        forward pass (the ``"manual"`` backend's), no sums over chunks."""
        x, d, s = self._whole
        with torch.no_grad():
            J, y = jacobian_and_output(self.model, x)  # (T·m, P), y^(L) (T, m)
            if self.model.backend != "manual":
                y = self.model(x)  # the backend's own forward, to the last bit
            E, max_error = self._terms(y, d, s)
            J = J.double()
            e = (d - y).double().reshape(-1)  # (T·m,)
            SJ, Se = J, e
            if s is not None:
                rows = s.double().expand(-1, d.shape[1]).reshape(-1)  # s_t for each row (t, i), (T·m,)
                SJ, Se = J * rows[:, None], rows * e
            return gram(J, SJ), J.T @ Se, E, max_error

    def jacobian_rows(self) -> int:
        """Points per block of :meth:`gauss_newton`: ``chunk_size``, or as many as keep a block of ``J``
        within :data:`JACOBIAN_BLOCK` numbers."""
        rows = JACOBIAN_BLOCK // max(self.P * self.d.shape[1], 1)
        return int(max(1, min(self.chunk_size or math.inf, rows)))

    def gauss_newton(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""``(JᵀSJ, JᵀSe, E_s, max_t |e(t)|)`` at the current weights, the first two in float64.

        ``J = ∂y^(L)/∂w`` comes from the explicit deltas (:func:`~torch_sigmoid_mlp.jacobian`) for
        a block of points at a time, so memory is ``O(P²)`` whatever ``T`` is: the ``T·m × P``
        Jacobian is never formed. The columns follow ``torch.cat([W.reshape(-1) for W in weights])``.
        """
        P = self.P
        W0 = self.weights[0]
        if self._whole is not None and self.jacobian_rows() >= self.T:
            return self._gauss_newton_whole()
        A = torch.zeros(P, P, dtype=torch.float64, device=W0.device)  # JᵀSJ, (P, P)
        g = torch.zeros(P, dtype=torch.float64, device=W0.device)  # JᵀSe, (P,)
        E, max_error = self._zeros()
        m = self.d.shape[1]
        with torch.no_grad():
            for x, d, s in self._chunks(self.jacobian_rows()):
                J = jacobian(self.model, x).double()  # ∂y^(L)/∂w, (K·m, P), rows t·m + i
                y = self.model(x)  # y^(L), (K, m)
                E_c, max_c = self._terms(y, d, s)
                E += E_c
                max_error = torch.maximum(max_error, max_c)
                e = (d - y).double().reshape(-1)  # (K·m,)
                if s is not None:
                    rows = s.double().expand(-1, m).reshape(-1)  # s_t for each row (t, i), (K·m,)
                    add_gram(A, J, J * rows[:, None])
                    g.addmv_(J.T, rows * e)
                else:
                    add_gram(A, J, J)
                    g.addmv_(J.T, e)
        mirror_gram(A)
        if self.distributed and is_distributed():
            flat = torch.cat([A.reshape(-1), g])
            dist.all_reduce(flat)
            A, g = flat[: P * P].view(P, P), flat[P * P :]
        E, max_error = self._sum(E, max_error)
        return A, g, E, max_error
