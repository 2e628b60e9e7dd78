r"""How one epoch moves the weights: steepest descent and the solvers beyond it, each a step of one loop.

:func:`~torch_sigmoid_mlp.train` runs the same epoch for every solver — evaluate at ``w_k``, test
the stop rules, step — and what varies is a :class:`Step`, chosen once before the loop
(:func:`make_step`). A step sees the test points only through an
:class:`~torch_sigmoid_mlp.objective.Objective`, so chunking and data parallelism are the
objective's business, not the solver's.

=============  ==========================================================================================
``method``     the step ``w_k → w_{k+1}`` (SPEC.md's notation; ``g = ∇E_s(w_k)``)
=============  ==========================================================================================
``"sgd"``      ``w ← w − η·g`` (tape-free where it can be); with ``momentum=β`` ``torch.optim.SGD``
``"adaptive"`` ``w ← w − η·g`` with the bold driver: ``η ← 1.05·η`` after a lower ``E``; after ``E``
               rose by more than 4 % the step is taken back and ``η ← 0.7·η`` (MATLAB's ``traingda``)
``"rprop"``    ``w ← w − sign(g)·Δ``, ``Δ`` per weight grown ×1.2 while the sign holds, halved when
               it flips (``torch.optim.Rprop``; FANN's default)
``"adam"``     ``torch.optim.Adam``
``"lbfgs"``    one L-BFGS iteration with a strong-Wolfe line search (``torch.optim.LBFGS``)
``"lm"``       Levenberg–Marquardt: ``(JᵀJ + μI) Δw = Jᵀe``, ``μ`` adapted until ``E`` falls
``"br"``       Bayesian-regularised LM: ``(JᵀJ + (α/β + μ) I) Δw = Jᵀe − (α/β)·w``, then ``γ, α, β``
``"lm_cg"``    LM's step and ``μ`` with ``(JᵀJ + μI) Δw = Jᵀe`` solved by conjugate gradients on products
               ``Jv``, ``Jᵀu`` (:mod:`~torch_sigmoid_mlp.training.matrix_free`): no ``J``, no ``P×P`` matrix
``"br_cg"``    BR's rule with ``"lm_cg"``'s solve, ``γ_l`` and the evidence estimated from products
               (:mod:`~torch_sigmoid_mlp.training.matrix_free_br`)
=============  ==========================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..core._checks import check_number
from ..core._flat import as_weights, flatten
from ..core.tape_free import TapeFreeStep
from . import br_rule
from .objective import Objective
from .ranks import is_distributed

__all__ = [
    "AUTO_DENSE_WORK",
    "AUTO_LBFGS_PARAMS",
    "AUTO_WEIGHT_DECAY",
    "DATA_SPACE_ROWS",
    "LM_MAX_PARAMS",
    "METHODS",
    "SECOND_OPINION_R2",
    "SECOND_ORDER",
    "AdaptiveDescent",
    "BayesianRegularization",
    "LevenbergMarquardt",
    "MiniBatches",
    "OptimizerStep",
    "SteepestDescent",
    "Step",
    "check_dense_size",
    "choose_method",
    "choose_restarts",
    "data_space",
    "make_step",
    "wants_second_opinion",
]

#: The solvers of :func:`~torch_sigmoid_mlp.train` (``method=``).
METHODS = ("sgd", "adaptive", "rprop", "adam", "lbfgs", "lm", "lm_cg", "br", "br_cg")

#: The most weights ``P`` Levenberg–Marquardt and Bayesian regularisation accept: each epoch
#: factorises a dense ``P×P`` matrix in float64, ``8·P²`` bytes and ``P³/3`` flops.
LM_MAX_PARAMS = 4000


def check_dense_size(method: str, P: int) -> None:
    """Refuse ``"lm"``/``"br"`` for a network of more than :data:`LM_MAX_PARAMS` weights, before its
    ``P×P`` system is allocated (the estimator asks before it builds the network)."""
    if method in ("lm", "br") and P > LM_MAX_PARAMS:
        raise ValueError(
            f"method={method!r} solves a dense P×P system each epoch, and this network has "
            f"P = {P} weights, more than LM_MAX_PARAMS = {LM_MAX_PARAMS} (memory grows as P², "
            f"time as P³); use method='sgd' or 'lbfgs' for a network this large"
        )


#: ``"auto"`` takes a dense ``P×P`` solver up to this many weights (see :func:`choose_method`).
AUTO_DENSE_PARAMS = 1500
#: ``"auto"`` without a ``tol``, where ``N ≥ P``, takes ``"lbfgs"`` (with :data:`AUTO_WEIGHT_DECAY`)
#: rather than dense ``"br"`` past both of these: ``AUTO_DENSE_WORK`` flops a dense epoch
#: (``N·P² + P³``) and ``AUTO_LBFGS_PARAMS`` weights (:func:`choose_method`). The estimator's cap
#: (``DENSE_WORK / MIN_DENSE_EPOCHS = 2·10⁹`` flops an epoch) already holds such a fit to 50 epochs,
#: and past ``4·10⁹`` those cost more than 10 s. L-BFGS's epoch costs ``O(N·P)`` against BR's
#: ``O(N·P² + P³)``, so what it saves grows with ``P``. Measured (``benchmarks/bench_wide.py``,
#: 5 seeds, median test MSE over the better of FANN's RPROP and scikit-learn's L-BFGS, and seconds;
#: AMD EPYC, one thread) on the six problems with ``N ≥ P`` past ``4·10⁹`` flops, L-BFGS with the
#: decay against dense BR:
#:
#: - ``P > 1000`` (``results/wide_dense_work_large.md``): ``teacher n=30 m=3 σ`` 0.79 in 11.6 s
#:   against 0.60 in 34.6 s (FANN: 5.3 s), ``sincos n=24 σ`` 1.00 in 21.4 s against 0.90 in 26.9 s
#:   (13.9 s), ``teacher n=30 m=1`` 1.13 in 12.8 s against 1.34 in 28.6 s (15.3 s).
#: - ``P ≤ 1000`` (``results/wide_dense_work_small.md``; ``sincos``: ``results/wide_dense_work.md``,
#:   dense BR ``results/wide_dense_work_sincos.md``):
#:   ``friedman n=20 m=2 σ`` 1.13 in 28.7 s against 0.99 in 17.1 s (12.1 s), ``teacher n=16 m=2``
#:   3.08 in 11.8 s against 1.95 in 17.1 s (13.2 s), ``sincos n=20 m=3 σ`` 0.94 in 18.9 s (7.0 s)
#:   against 0.90 in 34.2 s (two starts; another run): BR stays there, the better fit on all three.
AUTO_DENSE_WORK = 4e9
#: With :data:`AUTO_DENSE_WORK`: ``"auto"``'s dense BR gives way to L-BFGS only in networks of more
#: weights than this (the measurements there).
AUTO_LBFGS_PARAMS = 1000

#: The estimator's convergence stop per solver, ``(ftol, window)`` of :func:`~torch_sigmoid_mlp.train`:
#: ``"converged"`` once the training ``R²`` rose by at most ``ftol`` over ``window`` epochs
#: (``benchmarks/results/robust.md`` has the measurements behind them). LM and BR (and their
#: matrix-free forms, which follow the same rule) stop at ``3·10⁻⁶``: over all 30 rows of
#: ``benchmarks/bench_robust.py``, 10 seeds, the default fits took 0.82× the epochs of ``10⁻⁶``
#: (0.56–0.94× on the 1-D rows: one BR start on ``cos 2t``, 30 points, reached grid ``R²`` 0.99994 by
#: epoch 20 and took 130 more to 0.999995) with every success count the same and every worst ``R²``
#: the same or within 10⁻⁴ (``results/robust_ftol3e-6.md`` against ``results/robust_ftol1e-6.md``).
#: ``10⁻⁵`` stopped too early: ``sin 6x`` from 30 points, 30 seeds, 8 → 4 fits at grid
#: ``R² ≥ 0.999``, where ``3·10⁻⁶`` gave 9 (``results/robust_t30_*.md``).
CONVERGENCE = {
    "lm": (3e-6, 10),
    "br": (3e-6, 10),
    "lm_cg": (3e-6, 10),
    "br_cg": (3e-6, 10),
    "lbfgs": (1e-6, 50),
    "rprop": (1e-6, 200),
    "adam": (1e-6, 200),
    # steepest descent crosses plateaus of thousands of epochs: with a window of 1000, "adaptive"
    # stopped on one at test R² 0.72 on Friedman 1, where "sgd" went on to 0.98 (benchmarks/results/fit.md)
    "sgd": (1e-6, 5000),
    "adaptive": (1e-6, 5000),
}


#: ``"br_cg"``'s ``trace_space="auto"`` takes the data space up to this many rows ``R = T·m`` (and
#: below ``P``): its ``R×R`` matrices are 32 MB each in float64 there, and one estimate took 0.55 s
#: on one core (AMD EPYC, 50-40-40-1, P = 3640; 0.06 s at R = 1000); the probes' cost does not grow
#: with ``R³``. :func:`data_space` and :class:`~torch_sigmoid_mlp.training.matrix_free_br.MatrixFreeBR`
#: read it here.
DATA_SPACE_ROWS = 2000


def choose_method(
    P: int,
    N: int,
    *,
    tol: bool,
    validation: bool,
    batch_size: int | None = None,
    distributed: bool = False,
    rows: int | None = None,
) -> str:
    r"""The solver ``"auto"`` runs, from the size of the problem and what the fit asks for.

    .. code-block:: text

        batch_size given                  →  "sgd"   (mini-batches are steepest descent's)
        P ≤ AUTO_DENSE_PARAMS, a tol      →  "lm"    (reaches a uniform bound in few epochs)
        P ≤ AUTO_DENSE_PARAMS, no tol     →  "br"    (chooses its own weight decay), or where
            data_space (N, R < P, one process), no validation and N·P² + P³ > CHEAP_START
                                          →  "br_cg" (BR by CG, γ and the evidence exact from R×R)
            otherwise N·P² + P³ > AUTO_DENSE_WORK and P > AUTO_LBFGS_PARAMS
                                          →  "lbfgs" (a dense epoch dearer than a fit can spend)
        larger networks                   →  "lbfgs" (needs only gradients, O(P) memory; the
                                             estimator adds AUTO_WEIGHT_DECAY)

    ``P`` is the number of weights and ``N = T·m`` the number of errors (``Σ_t s_t·m`` with sample
    weights); ``R`` is ``rows``, the ``T·m`` rows of the data (``N`` when not given: they differ only
    with sample weights). ``distributed``: the points are spread over the ranks of a process group.
    An LM or BR epoch costs
    ``O(N·P² + P³)`` against steepest descent's ``O(N·P)``, and needs tens to hundreds of epochs
    where steepest descent needs thousands to hundreds of thousands. Without a bound, minimising
    ``E`` alone fits the noise; Bayesian regularisation stops short of that by itself, with more
    errors than weights or fewer (its ``γ ≤ min(N, P)``), and held-out points (``validation=``)
    then choose among its starts. Measured over 10 seeds of clean, noisy, teacher and held-out
    problems beside scikit-learn and FANN: ``benchmarks/results/robust.md``
    (``python benchmarks/bench_robust.py``).

    The matrix-free ``"lm_cg"`` (``O(N·P)`` a CG iteration) does not take over where the dense epoch
    is dear: on the 9 problems of ``benchmarks/bench_wide.py`` with ``N·P² + P³ > 2·10⁹`` or
    ``P > 1500`` (3 seeds, ``benchmarks/results/wide_lm_cg.md`` beside ``wide.md``), its test MSE
    was within 1.05× of the better of FANN's RPROP and scikit-learn's L-BFGS on one
    (``sincos n=20 m=3 σ``, in about twice the dense fit's seconds), 1.3–36× above it on the
    others, where this rule's ``"br"``/``"lbfgs"`` came within 0.45–2.7× (lower than ``"lm_cg"``'s
    on all but ``teacher n=10 m=3``: 1.6× against BR's 2.2×, in 4× FANN's time); it ended by its
    convergence test on 6 of the 9 (median 30–383 epochs), by its epoch cap on the others. Its
    stop is not what costs it: unregularised, it fits the noise and, with ``P ≥ N``, interpolates
    (``friedman n=40``, seed 0: training MSE ``4·10⁻¹³``, test ``4.3·10⁻³``, and the same test MSE
    with the convergence stop off, run on to ``mu_max``). Its CG started every epoch from the last
    step then; from zero where ``R < P`` (:class:`~torch_sigmoid_mlp.training.matrix_free.MatrixFreeLM`,
    ``cg_warm_epochs``) the three such rows of the nine gave median test MSE 4.12e-3, 2.10e-3, 2.14e-2
    against 7.28e-3, 5.35e-3, 3.09e-2 (``teacher n=40``, ``friedman n=40``, ``sincos n=50 σ``; 3 seeds,
    one run, ``results/wide_lm_cg_warm.md``), ``friedman n=40`` still 14× L-BFGS's 5-seed median.

    ``"br_cg"`` with ``R ≥ P`` estimates ``γ`` from probes, 10–19× dense BR's time
    (``benchmarks/results/br_cg_gamma.md``). With ``R < P`` (and ``R ≤ DATA_SPACE_ROWS``, which
    ``P ≤ AUTO_DENSE_PARAMS`` implies) on one process it takes ``γ`` and the evidence exactly from the
    ``R×R`` data space, and there it replaces dense ``"br"`` where a dense epoch is not cheap
    (:data:`CHEAP_START`; below it both cost milliseconds, and ``"br"`` gets 3 starts). Measured on
    the six problems of ``bench_wide.py`` with ``N < P ≤ 1500`` (5 seeds, one run,
    ``benchmarks/results/wide_cg_eta.md``; median test MSE, ``br_cg`` with ``cg_eta = 0.1`` against
    ``"br"``): ``teacher n=40`` (``P = 1220``, ``N = 300``) 3.42e-3 against 3.71e-3, ``friedman n=50 σ``
    (1072, 500) 1.06e-2 against 2.58e-2, ``teacher n=30`` (1020, 150) 3.76e-3 against 6.68e-3,
    ``friedman n=20 σ`` (1080, 150) 1.61e-2 against 1.62e-2, ``sincos n=30 m=2`` (1040, 300) 2.45e-2
    against 2.53e-2, and ``sinsq n=20`` (820, 100: ``sin(z₁ + z₂/2) + 0.3·z₃²``, 17 inputs
    irrelevant) 9.89e-3 against 3.29e-3; within 1.05× of the better of FANN and scikit-learn's
    L-BFGS on 5 of the 6 (``"br"`` 4), in 0.2–1.6 s a fit against ``"br"``'s 1.2–17 s (all fits
    29.6 s against 173 s). ``cg_eta`` stays at ``0.1``: ``10⁻²`` gave 4.35e-3, 1.21e-2, 3.88e-3,
    1.40e-2, 2.53e-2, 9.29e-3 (the MSE ratio's geometric mean over the six 0.92, against 0.88 at
    ``0.1``) in 74 s, ``10⁻³`` 3.93e-3, 2.02e-2, 7.54e-3, 1.96e-2, 2.53e-2, 8.13e-3 (1.13) in 123 s;
    on ``sinsq`` neither came near ``"br"`` (per seed ``10⁻³`` gave 1.0e-3 to 2.2e-2; on the same
    function's points of an earlier, ad hoc measurement it had reached test ``R²`` 0.957–0.970 over
    4 seeds against dense BR's 0.93–0.94, which bench_wide's points and seeds do not repeat). The starts'
    spread is ``br_cg``'s weakness (``teacher n=30`` worst seed 2.1e-2 against ``"br"``'s 8.2e-3):
    :func:`choose_restarts` gives it 3 starts, ranked by the exact evidence. The rule whole, in one
    run beside ``"br"`` (5 seeds, ``benchmarks/results/wide_auto.md``): median test MSE 3.45e-3,
    1.05e-2, 6.65e-3, 3.76e-3, 1.61e-2, 2.53e-2 in the order above against ``"br"``'s 3.71e-3, 2.58e-2,
    3.29e-3, 6.68e-3, 1.62e-2, 2.53e-2, lower on 20 of the 30 fits; within 1.05× of the better of FANN
    and L-BFGS on 5 of the 6 (``"br"`` 4), every median fit within 10 s (``"br"``: 12.3 s on
    ``teacher n=40``), all fits 71 s against 149 s. ``sinsq`` was what was left: 1.74× the better of
    FANN and L-BFGS (``"br"`` 0.86×), its worst seed 1.5e-2 against ``"br"``'s 4.1e-3. There BR's
    ``"trainbr"`` start collapses on every seed, in both, and the search that follows takes plain LM
    steps to an interpolant (``γ = P``); ``br_cg``'s CG, started every epoch from the last step,
    carried that step's part in the null space of ``JᵀSJ`` (rank ``≤ R = 100`` of ``P = 820``) into
    the next, and the weights drifted (``E_W`` 2.3·10³–2.3·10⁷ against ``"br"``'s 240–330; one start,
    median test MSE 9.89e-3 against 3.29e-3: ``benchmarks/results/br_cg_trace_sinsq.md``; CG solved
    to ``10⁻¹⁰`` from the same warm starts mostly ran to ``cg_max_iter`` and gave 3.03e-3, one seed
    of five near a constant). With CG started from zero there
    (:class:`~torch_sigmoid_mlp.training.matrix_free.MatrixFreeLM`, ``cg_warm_epochs``) one start
    gives 2.35e-3, and the rule, in one run
    (``results/wide_brcg_warm.md``), 3.45e-3, 1.05e-2, 2.21e-3, 3.98e-3, 1.21e-2, 2.53e-2 in the order
    above: within 1.05× of the better of FANN and L-BFGS on all six (``sinsq`` 0.58×, worst seed
    4.3e-3). ``teacher n=30``'s median rose from 3.76e-3 to 3.98e-3 by one seed of five (3.76e-3 to
    4.10e-3; another fell from 5.58e-3 to 5.34e-3, the other three unchanged).
    Above ``AUTO_DENSE_PARAMS`` it fitted better than ``"lbfgs"`` but 8–19× slower (5 seeds, one
    start, before CG started from zero; ``results/wide_data_space.md``: ``friedman n=40``,
    ``P = 2336``, ``N = 2000``: 3.5e-5 in 159 s against 1.8e-4 in 19 s; ``sincos n=50 σ``: 8.7e-3 in
    72 s against 1.9e-2 in 3.7 s), and is not chosen there. With CG from zero and the 3 starts of
    :func:`choose_restarts`, ``friedman n=40`` (5 seeds, one run,
    ``results/wide_data_space_fix_friedman.md``) gave 2.4e-5 (0.16× scikit-learn's L-BFGS; 183–428
    epochs, 4 stopped by convergence, 1 by the epoch cap) in 416 s a fit, 53× FANN's 7.9 s in that
    run, against ``"lbfgs"``'s 1.8e-4 in 18 s: far past issue 30's time bar (``max(10 s, 3×`` FANN's
    seconds)), even at one start's share (about 140 s); ``sincos n=50 σ`` (2 seeds only, one run,
    ``results/wide_data_space_fix_sincos.md``): 9.3e-3 in 252 s, 35× FANN's 7.2 s, against 2.0e-2
    in 5.5 s.
    With held-out points (unmeasured for ``br_cg``) and on several processes (the probes then: 10–19×
    dense BR's time) ``"br"`` stays.

    Where ``N ≥ P`` a dense BR epoch past ``2·10⁹`` flops is held to ``MIN_DENSE_EPOCHS = 50`` by the
    estimator's work cap (``DENSE_WORK``), and past :data:`AUTO_DENSE_WORK` those 50 cost more than
    10 s. There, in networks of more than :data:`AUTO_LBFGS_PARAMS` weights, ``"lbfgs"`` with
    :data:`AUTO_WEIGHT_DECAY` runs instead: 1.3–3.0× faster than dense BR on ``bench_wide.py``'s
    three such problems, within 1.05× of the better of FANN and scikit-learn's L-BFGS on two (BR:
    two, one of them past 3× FANN's time). Below it BR stays, the better fit on all three
    (the measurements: :data:`AUTO_DENSE_WORK`).

    Example::

        >>> from torch_sigmoid_mlp.training.solvers import choose_method
        >>> choose_method(97, 60, tol=True, validation=False)
        'lm'
        >>> choose_method(97, 60, tol=False, validation=False)
        'br'
        >>> choose_method(820, 100, tol=False, validation=False)  # 20-20-20-1 on 100 points
        'br_cg'
        >>> choose_method(820, 100, tol=False, validation=False, distributed=True)
        'br'
        >>> choose_method(40_000, 10**6, tol=True, validation=False)
        'lbfgs'
    """
    if batch_size is not None:
        return "sgd"
    if P > AUTO_DENSE_PARAMS:
        return "lbfgs"
    if tol:
        return "lm"
    work = N * P**2 + P**3  # flops of a dense epoch
    if work > CHEAP_START and not validation and data_space(P, N, rows=rows, distributed=distributed):
        return "br_cg"
    return "lbfgs" if work > AUTO_DENSE_WORK and P > AUTO_LBFGS_PARAMS else "br"


def data_space(P: int, N: int, *, rows: int | None = None, distributed: bool = False) -> bool:
    """Whether ``"br_cg"`` (``trace_space="auto"``) takes ``γ`` and the evidence exactly from the data
    space: ``R = rows`` (``N`` when not given) fewer than the ``P`` weights, at most
    :data:`DATA_SPACE_ROWS`, on one process; and ``N < P``
    too, so that integer sample weights decide as the repeated points (``N ≥ R`` there) do."""
    rows = N if rows is None else rows
    return N < P and rows < P and rows <= DATA_SPACE_ROWS and not distributed


def choose_restarts(
    method: str, P: int, N: int, *, tol: bool, distributed: bool = False, rows: int | None = None
) -> int:
    r"""How many starts ``restarts="auto"`` makes, from the solver and the cost of one start.

    .. code-block:: text

        "lm"/"br", N·P² + P³ ≤ C, a tol    →  MAX_STARTS_TOL  (the first start that reaches it ends the fit)
        "lm"/"br", N·P² + P³ ≤ C, no tol   →  3               (the best by held-out error or evidence kept)
        "lm"/"br", a larger epoch, a tol   →  3
        "br_cg" in the data space, no tol  →  3               (data_space: N, R < P on one process)
        otherwise                          →  1

    ``C = CHEAP_START`` flops per epoch: below it a start of tens to hundreds of epochs costs
    milliseconds to a second. A start of the first-order solvers costs thousands of epochs, and
    one is all ``"auto"`` spends on it. Eight starts rather than three where an epoch is tiny
    (``N·P² + P³ ≤ 2·10⁶``) were tried over ``bench_robust.py``'s 10 seeds and not kept: ``sin 6x``
    from 30 points reached grid ``R² ≥ 0.999`` on one seed more (4 of 10), no other row improved,
    and those fits took about 1.6 times as long.

    ``"br_cg"`` in the data space (:func:`data_space`: ``N, R < P``) has its evidence exact and a start
    of about a second on ``bench_wide.py``'s problems with ``N < P ≤ 1500``, whose one-start fits
    spread from seed to seed (``benchmarks/results/wide_cg_eta.md``). With 3 starts
    (``results/wide_auto.md``, 5 seeds): ``teacher n=30`` median test MSE 3.76e-3 either way, worst
    seed 5.6e-3 against 2.1e-2; ``sinsq n=20`` median 6.65e-3 against 9.89e-3 (2.21e-3 against 2.35e-3
    since CG's warm start is dropped where ``R < P``: ``results/wide_brcg_warm.md``,
    ``results/br_cg_trace_sinsq.md``); the other four within 4 % of one start's median, in 0.9–5.6 s a
    fit (one start: 0.2–1.6 s, another run).

    Example::

        >>> choose_restarts("br", 97, 100, tol=False), choose_restarts("lm", 97, 100, tol=True)
        (3, 10)
        >>> choose_restarts("br_cg", 820, 100, tol=False), choose_restarts("br_cg", 97, 300, tol=False)
        (3, 1)
    """
    if method == "br_cg":
        return 3 if not tol and data_space(P, N, rows=rows, distributed=distributed) else 1
    if method not in ("lm", "br"):
        return 1
    cheap = N * P**2 + P**3 <= CHEAP_START
    if tol:
        return MAX_STARTS_TOL if cheap else 3
    return 3 if cheap else 1


def wants_second_opinion(result, *, tol: bool, P: int | None = None, N: float | None = None) -> bool:
    r"""Whether ``restarts="auto"`` adds one start from the minimum of ``E`` to a ``"br"`` fit.

    BR's ``"trainbr"`` start sets ``α, β`` from ``w_0``, and every start can settle together in an
    over-regularised optimum: a few well-determined parameters, the rest of the variance taken for
    noise (``tanh 2x + x/3`` from 30 points, seed 2: three starts at ``γ ≈ 2.5``, training ``R²``
    0.65, grid ``R²`` 0.48). The evidence cannot see a better fit no start reached. So where the
    best start explains less than :data:`SECOND_OPINION_R2` of the targets' variance (training
    ``R²``), without a ``tol``, one more start begins as ``start="minimum"`` and the evidence (or the
    held-out error) chooses among them all.

    The new start is kept only where its evidence is the higher too: with ``validation_fraction``
    the held-out error of some 50 diabetes points alone took it on 2 of 10 seeds, at test ``R²``
    0.420 → 0.396 and 0.465 → 0.435, where its evidence was the lower by 100 or more.

    Over ``bench_robust.py``'s rows and 10 seeds it ran on that ``tanh`` seed (grid ``R²`` 0.48 →
    1.0) and on diabetes (training ``R²`` 0.41–0.62), where a ``"trainbr"`` start was kept on every
    seed. The other fits, clean and noisy, end at training ``R²`` 0.96 or more and never pay for it.

    Given the weights ``P`` and errors ``N``, it is not made where a start is dear (``N·P² + P³ >``
    :data:`CHEAP_START`) and there are fewer than :data:`SECOND_OPINION_POINTS` errors a weight: there
    the minimum of ``E`` fits the noise (``γ ≈ P``) and its evidence is far below the ``"trainbr"``
    start's. On ``bench_wide.py``'s rows that ask for one, 6 seeds each, it was kept on none of the 16
    fits that made one: ``like 48-in 3-out`` (N/P = 1.05; evidence −676 to −387 against 468 to 532; the
    fit 1.7–3.9× as long on three seeds: 2.3 → 8.9 s), ``friedman n=50 σ`` (0.47) and ``sincos n=30 m=2
    T=150`` (0.29). Where ``N ≥ 2P`` it won on every seed of ``sincos n=20 m=3 σ`` (N/P = 7; test MSE
    5.8e-3 → 5.3e-3, 6.2e-3 → 5.2e-3, 7.6e-3 → 5.1e-3) and on one of two of ``like 32-in 1-out`` (2.6;
    training ``R²`` 0.17 → 0.94); where a start is cheap it is made whatever ``N/P`` (the ``tanh`` fit
    above has N/P = 0.375).

    Example::

        >>> from types import SimpleNamespace
        >>> fit = SimpleNamespace(method="br", r2=0.02, stop_reason="converged")
        >>> [wants_second_opinion(fit, tol=False, P=P, N=N) for P, N in [(80, 30), (1072, 1122), (860, 6000)]]
        [True, False, True]
    """
    if P is not None and N is not None and N * P**2 + P**3 > CHEAP_START and N < SECOND_OPINION_POINTS * P:
        return False
    return (
        result.method in ("br", "br_cg")
        and not tol
        and result.r2 is not None
        and result.r2 < SECOND_OPINION_R2
        and result.stop_reason not in ("callback", "diverged")
    )


#: ``"auto"``'s L-BFGS (above :data:`AUTO_DENSE_PARAMS` weights, or past :data:`AUTO_DENSE_WORK`) minimises
#: ``E_s + (α/2)·Σ w²`` with this ``α`` (``weight_decay`` of :func:`make_step`); ``solver="lbfgs"`` given by
#: name has none. Without it L-BFGS fits the noise of wide networks, and runs longer fit it worse
#: (``sincos n=30``, P = 1652, seed 0: test MSE 1.66e-3 after 5000 epochs, 2.14e-3 after 10000). Measured on
#: ``benchmarks/bench_wide.py``'s four problems above 1500 weights, 2 seeds each, test MSE at α = 0, 10⁻⁵,
#: 10⁻⁴, 10⁻³, 3·10⁻³, 10⁻²: ``sincos n=30`` 1.66e-3/2.53e-3, …, 1.17e-3/8.77e-4, 1.21e-3/1.04e-3,
#: 1.39e-3/1.35e-3; ``friedman n=40`` 4.13e-4/2.78e-4, …, 2.90e-4/2.14e-4, 2.04e-4/1.70e-4, 2.17e-4/3.16e-4;
#: ``teacher n=50 m=3`` 6.65e-3/6.22e-3, …, 2.70e-3/2.92e-3, 1.34e-3/1.47e-3, 9.75e-4/9.26e-4;
#: ``sincos n=50 σ`` 1.94e-2/2.14e-2, …, 2.29e-2/2.08e-2, 2.02e-2/1.72e-2, 1.37e-2/1.27e-2
#: (``benchmarks/results/wide_lbfgs_decay.md`` the whole rule against scikit-learn and FANN). ``3·10⁻³`` is
#: the lowest or within 1.3× of it on every seed of the first three; ``10⁻²`` lowers the last two further but
#: raises ``friedman n=40`` to 1.9×.
AUTO_WEIGHT_DECAY = 3e-3
#: :func:`wants_second_opinion`: a BR fit below this training ``R²`` gets a start from the minimum.
SECOND_OPINION_R2 = 0.9
#: :func:`wants_second_opinion`: a dear start gets one only with at least this many errors a weight.
SECOND_OPINION_POINTS = 2
#: ``restarts="auto"`` with a ``tol``: at most this many starts, the first to reach it ending the fit.
MAX_STARTS_TOL = 10
#: An LM/BR epoch of at most this many flops (``N·P² + P³``) makes a start cheap enough to repeat.
CHEAP_START = 5e7


#: ``damping=`` of :class:`LevenbergMarquardt`: how ``μ`` follows each trial step, and the defaults
#: ``(mu_increase, mu_decrease)`` of each rule.
DAMPING = {"nielsen": (2.0, 1 / 3), "trainlm": (10.0, 0.1)}


def check_damping(mu, mu_increase, mu_decrease, mu_max, damping: str) -> tuple[float, float, float, float]:
    """Levenberg–Marquardt's damping settings checked, with ``None`` factors given the rule's defaults."""
    if damping not in DAMPING:
        raise ValueError(f"damping must be one of {tuple(DAMPING)}, got {damping!r}")
    increase, decrease = DAMPING[damping]
    mu_increase = increase if mu_increase is None else mu_increase
    mu_decrease = decrease if mu_decrease is None else mu_decrease
    check_number(mu, "mu")
    if not mu_increase > 1:
        raise ValueError(f"mu_increase must be > 1, got {mu_increase!r}")
    check_number(mu_decrease, "mu_decrease", high=1.0)
    if not mu_max > mu:
        raise ValueError(f"mu_max must exceed mu ({mu!r}), got {mu_max!r}")
    return float(mu), float(mu_increase), float(mu_decrease), float(mu_max)


def accept(rule, rho: float, mu: float | None = None, nu: float | None = None) -> tuple[float, float]:
    """``(μ, ν)`` after an accepted step whose actual decrease is ``ρ`` times the predicted one.

    ``rule`` holds ``damping``, ``mu_increase``, ``mu_decrease`` (and ``mu``, ``nu`` unless given).
    """
    mu = rule.mu if mu is None else mu
    if rule.damping == "trainlm":
        return mu * rule.mu_decrease, rule.mu_increase
    rho = min(rho, 1.0)  # ρ ≥ 1 all take the largest cut (and a large ρ's cube would overflow)
    factor = 1 - (2 * rho - 1) ** 3
    if factor <= rule.mu_decrease:
        return mu * rule.mu_decrease, rule.mu_increase
    # in steps of 2^(1/4): ρ is a difference of nearly equal sums, and its last digits are rounding,
    # which a factor that follows them exactly would carry into every later step
    return mu * max(rule.mu_decrease, 2 ** (round(4 * math.log2(factor)) / 4)), rule.mu_increase


def reject(rule, mu: float | None = None, nu: float | None = None) -> tuple[float, float]:
    """``(μ, ν)`` after a rejected step (or a failed factorisation)."""
    mu, nu = (rule.mu if mu is None else mu), (rule.nu if nu is None else nu)
    if rule.damping == "trainlm":
        return mu * rule.mu_increase, nu
    return mu * nu, 2 * nu


#: From this many weights :func:`inverse_diagonal` takes ``diag(H⁻¹)`` from ``cholesky_inverse``
#: (LAPACK's ``potri``: ``2P³/3`` flops) rather than from the triangular solve against ``I`` (``P³``):
#: at P = 300–1500 it took 0.51–0.85× the time (AMD EPYC, one thread; P = 784: 12.7 against 17.4–20.0
#: ms); at P = 80–200, one matrix or a batch, neither was faster by more than the noise.
POTRI_PARAMS = 300


def inverse_diagonal(H: Tensor) -> Tensor:
    r"""``diag(H⁻¹)`` of a symmetric ``H`` (or of each of a batch), from its Cholesky factor.

    .. code-block:: text

        H = UᵀU (Cholesky),   H⁻¹ = U⁻¹U⁻ᵀ,   (H⁻¹)_ii = Σ_j (U⁻¹)_ij²

    One triangular solve against ``I`` (``P³`` flops) below :data:`POTRI_PARAMS` weights, where it
    is as fast as any; from there ``H⁻¹`` by ``cholesky_inverse`` (``2P³/3``). A matrix whose
    factorisation fails takes the diagonal of its pseudo-inverse instead.

    Shape:
        ``H``: ``(P, P)`` or ``(K, P, P)``; returns ``(P,)`` or ``(K, P)``.
    """
    U, info = torch.linalg.cholesky_ex(H, upper=True)  # H = UᵀU
    failed = (info.reshape(-1) != 0).nonzero()[:, 0].tolist()
    if H.shape[-1] >= POTRI_PARAMS and not failed:
        return torch.cholesky_inverse(U, upper=True).diagonal(dim1=-2, dim2=-1).clone()  # diag(H⁻¹)
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device).expand_as(H)
    diagonal = torch.linalg.solve_triangular(U, eye, upper=True).square().sum(-1)  # diag(H⁻¹)
    if failed:
        flat_H, flat_diagonal = H.reshape(-1, *H.shape[-2:]), diagonal.view(-1, H.shape[-1])
        for j in failed:
            flat_diagonal[j] = torch.linalg.pinv(flat_H[j], hermitian=True).diagonal()
    return diagonal


class Step:
    """One solver's epoch, as :func:`~torch_sigmoid_mlp.train` drives it.

    ``evaluate()`` returns ``(c·E_s(w_k), max_t |e(t)|)`` as 0-d tensors (``c = 1/loss_scale``), and
    may keep what it computed for ``step()``, which moves the weights to ``w_{k+1}``. A step that finds
    no way down sets :attr:`stop_reason` instead of moving them. :meth:`metrics` are the scalars worth
    logging (``lr``, ``mu``, …); :meth:`state_dict` is what a resumed run needs to take the same steps.
    """

    method: str = ""
    #: ``E = loss_scale · (what evaluate returns)``: the tape-free step hands back ``2E``.
    loss_scale: float = 1.0
    stop_reason: str | None = None
    #: set by a watcher for the epochs whose gradient norms it records: a step that forms no full
    #: gradient of its own then forms one for :meth:`gradients` (the tape-free step's ``G^(l)``, the
    #: sum of mini-batches' gradients); the update itself is the same either way
    keep_gradients: bool = False

    def evaluate(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def gradients(self) -> list[Tensor] | None:
        """``∂E/∂W^(l)`` (or ``−∂E/∂W^(l)``: norms are what it is read for) of the last step, if formed."""
        return None

    def metrics(self) -> dict[str, float]:
        return {}

    def merit(self, E: float) -> float | None:
        """What the step minimises, at ``w_k`` with ``E_s(w_k) = E``, in the units of ``E``: ``E``.

        ``None`` says the objective has just changed its form: the convergence test looks no further
        back than this epoch.
        """
        return E

    def evidence(self) -> float | None:
        """``ln p(D | α, β)`` at the current weights where the solver has one (``"br"``), else ``None``."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"method={self.method!r} keeps no state, got {sorted(state)}")


class SteepestDescent(Step):
    r"""``w_{k+1} = w_k − η·∇E_s(w_k)``, the seed's update.

    Tape-free (:class:`~torch_sigmoid_mlp.TapeFreeStep`: no autograd graph, no ``.grad``) when the
    points sit in one tensor on the model's device and the backend is ``"manual"``; otherwise through
    :meth:`Objective.gradient` (chunks, ranks, or the autograd backend). Either way the same update.
    """

    method = "sgd"

    def __init__(self, objective: Objective, lr: float) -> None:
        self.objective, self.lr = objective, float(lr)
        o = objective
        W0 = o.weights[0]
        tape_free = (
            o.model.backend == "manual"
            and o.chunk_size is None
            and not o.distributed
            and o.x.device == W0.device
        )
        self.tape_free = TapeFreeStep(o.weights, rows=o.x.shape[0]) if tape_free else None
        self.loss_scale = 0.5 if tape_free else 1.0
        self._plain = [W.detach() for W in o.weights]
        self._points = (o.x, o.d, o.s)

    def evaluate(self) -> tuple[Tensor, Tensor]:
        if self.tape_free is not None:
            # forward at w_k into the step's buffers: 2E_s (halved once read) and max_t |e(t)|
            return self.tape_free.forward_sum_of_squares(*self._points)
        return self.objective.gradient()  # forward and backward at w_k, E_s and ∇E_s

    def step(self) -> None:
        if self.tape_free is not None:
            # W^(l) += η Σ_t δ^(l+1)(t) y^(l)(t)ᵀ from the forward's buffers
            self.tape_free.update(self.lr, keep_gradients=self.keep_gradients)
        else:
            with torch.no_grad():  # one foreach call: an interrupt never lands inside an update
                torch._foreach_add_(self._plain, self.objective.gradients(), alpha=-self.lr)

    def gradients(self) -> list[Tensor]:
        return self.tape_free.gradients if self.tape_free is not None else self.objective.gradients()

    def metrics(self) -> dict[str, float]:
        return {"lr": self.lr}


class AdaptiveDescent(SteepestDescent):
    r"""Steepest descent with the learning rate adapted from ``E`` (MATLAB's ``traingda``, the bold driver).

    .. code-block:: text

        E(w_k) < E(w_{k−1})                 →  η ← lr_increase · η                    (1.05)
        E(w_k) > max_increase · E(w_{k−1})  →  w_k ← w_{k−1},  η ← lr_decrease · η    (1.04, 0.7)
        then                                    w_{k+1} = w_k − η·∇E(w_k)

    The direction stays the seed's ``−∇E``; only ``η`` is not hand-tuned. A step taken back costs the
    epoch that evaluated it (its ``E`` stays in the history). ``lr`` is the first ``η``.
    """

    method = "adaptive"

    def __init__(
        self,
        objective: Objective,
        lr: float,
        *,
        lr_increase: float = 1.05,
        lr_decrease: float = 0.7,
        max_increase: float = 1.04,
    ) -> None:
        super().__init__(objective, lr)
        self.lr_increase, self.lr_decrease, self.max_increase = lr_increase, lr_decrease, max_increase
        self._previous = [W.clone() for W in self._plain]  # w_{k−1}
        self._E_previous = math.inf

    def evaluate(self) -> tuple[Tensor, Tensor]:
        self._E, max_error = super().evaluate()
        return self._E, max_error

    def step(self) -> None:
        E_k = self._E.item() * self.loss_scale
        if E_k > self.max_increase * self._E_previous:
            with torch.no_grad():
                torch._foreach_copy_(self._plain, self._previous)  # take the step to w_k back
            self.lr *= self.lr_decrease
            super().evaluate()  # at w_{k−1} again, for the shorter step from there
        else:
            if E_k < self._E_previous:
                self.lr *= self.lr_increase
            self._E_previous = E_k
            with torch.no_grad():
                torch._foreach_copy_(self._previous, self._plain)
        super().step()

    def state_dict(self) -> dict:
        return {
            "lr": self.lr,
            "E_previous": self._E_previous,
            "previous": [W.clone() for W in self._previous],
        }

    def load_state_dict(self, state: dict) -> None:
        self.lr, self._E_previous = float(state["lr"]), float(state["E_previous"])
        with torch.no_grad():
            torch._foreach_copy_(self._previous, [p.to(W) for p, W in zip(state["previous"], self._previous)])


class OptimizerStep(Step):
    r"""A ``torch.optim`` optimizer stepping along the full-batch gradient ``∇E_s``.

    ``evaluate()`` leaves ``∂E_s/∂W^(l)`` in each ``W^(l).grad`` (:meth:`Objective.gradient`), and
    ``step()`` calls ``optimizer.step(closure)``; the closure re-evaluates ``E_s`` and its gradient
    for optimizers that search along a line (L-BFGS), and hands back the epoch's own evaluation the
    first time it is asked at ``w_k``. The optimizer's ``state_dict`` is the step's.

    A line search ends where it last evaluated, as a rule (the first trial that meets the Wolfe
    conditions): ``E_s``, ``max_t |e(t)|`` and the gradient at ``w_{k+1}`` are then already at hand,
    and the next ``evaluate()`` takes them rather than making the same pass again (its weights
    compared number by number with those of the closure's last pass; on one process). The values are
    those the pass would give, so the run is the same run, with one pass over the points fewer an
    epoch.

    With ``weight_decay = α > 0`` (L-BFGS's, see :func:`make_step`) the optimizer minimises
    ``E_s/u + (α/2)·Σ w²`` (``u``: the weights' unit): SPEC's ``F/(2β) = E_s + α·E_W/(2β)`` with
    ``β = 1`` and ``α`` fixed, not estimated. ``evaluate()`` still reports ``E_s`` itself, which the
    loop's records and stop rules read; the gradient the closure leaves in ``W^(l).grad``, and
    :meth:`gradients` reports, is the penalised objective's.
    """

    def __init__(
        self,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        method: str,
        *,
        unit: float = 1.0,
        weight_decay: float = 0.0,
    ) -> None:
        self.objective, self.optimizer, self.method = objective, optimizer, method
        self._fresh: Tensor | None = None
        # the optimizer sees E_s/unit and its gradient (L-BFGS: the weights' unit, objective.weight_unit)
        self._unit = unit
        self.weight_decay = weight_decay
        self._penalised = False  # whether the gradient buffer holds α·w already
        # the closure's last pass: (w there, E_s, max_t |e(t)|), its gradient still in the buffer
        self._last: tuple[Tensor, Tensor, Tensor] | None = None
        self._reuse = not (objective.distributed and is_distributed())

    def evaluate(self) -> tuple[Tensor, Tensor]:
        last, self._last = self._last, None
        if last is not None and torch.equal(last[0], flatten(self.objective.weights)):
            E, max_error = last[1:]  # the line search's last pass was at these weights
        else:
            E, max_error = self._gradient()
        self._fresh = E
        return E, max_error

    def _gradient(self) -> tuple[Tensor, Tensor]:
        E, max_error = self.objective.gradient()
        if self._unit != 1.0:
            torch._foreach_div_(self.objective.gradients(), self._unit)
        self._penalised = False
        return E, max_error

    def _closure(self) -> Tensor:
        if self._fresh is not None:  # E_s and ∇E_s at w_k are in place already
            E, self._fresh = self._fresh, None
        else:
            E, max_error = self._gradient()
            if self._reuse:
                self._last = (flatten(self.objective.weights), E, max_error)
        E = E if self._unit == 1.0 else E / self._unit
        if not self.weight_decay:
            return E
        weights = [W.detach() for W in self.objective.weights]
        if not self._penalised:  # + α·w, once for the pass in the buffer
            torch._foreach_add_(self.objective.gradients(), weights, alpha=self.weight_decay)
            self._penalised = True
        return E + self.weight_decay / 2 * torch.stack([W.square().sum() for W in weights]).sum()

    def step(self) -> None:
        self.optimizer.step(self._closure)
        self._fresh = None

    def gradients(self) -> list[Tensor]:
        grads = self.objective.gradients()
        return grads if self._unit == 1.0 else torch._foreach_mul(grads, self._unit)

    def metrics(self) -> dict[str, float]:
        return {"lr": float(self.optimizer.param_groups[0]["lr"])}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class MiniBatches(OptimizerStep):
    r"""An epoch of mini-batch steps: one pass over the points in a (shuffled) order, a step per batch.

    .. code-block:: text

        for each batch B:   w ← optimizer step along ∇E_B(w),   E_B = 1/2 · Σ_{t ∈ B} s_t ‖e(t)‖²

    ``evaluate()`` is ``E_s`` over all points at ``w_k`` (no gradient); the batch order is drawn from
    ``generator`` each epoch when ``shuffle``. ``batch_size=1`` is online learning.
    """

    def __init__(
        self,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        method: str,
        *,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None,
    ) -> None:
        super().__init__(objective, optimizer, method)  # its metrics and state are the optimizer's
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        self._summed: list[Tensor] | None = None

    def evaluate(self) -> tuple[Tensor, Tensor]:
        return self.objective.error()

    def step(self) -> None:
        o = self.objective
        T = o.x.shape[0]
        if self.shuffle:
            device = torch.device("cpu") if self.generator is None else self.generator.device
            order = torch.randperm(T, generator=self.generator, device=device).to(o.x.device)  # (T,)
        else:
            order = torch.arange(T, device=o.x.device)  # (T,)
        weights = o.weights
        self._summed = None
        for batch in order.split(self.batch_size):
            y = o.model(o.x[batch])  # y^(L) on the batch, (B, m)
            s = None if o.s is None else o.s[batch][:, None]
            E_B, _ = o._terms(y, o.d[batch], s)
            grads = torch.autograd.grad(E_B, weights)  # ∂E_B/∂W^(l), by the model's backend
            for W, g in zip(weights, grads):
                W.grad = g
            self.optimizer.step()
            if self.keep_gradients:
                self._summed = (
                    list(grads) if self._summed is None else torch._foreach_add(self._summed, grads)
                )
        for W in weights:
            W.grad = None

    def gradients(self) -> list[Tensor] | None:
        return self._summed


class LevenbergMarquardt(Step):
    r"""Levenberg–Marquardt (MATLAB's ``trainlm``): Gauss–Newton steps damped by ``μ``.

    .. code-block:: text

        (JᵀSJ + μI) Δw = JᵀSe                  by Cholesky, in float64
        E_s(w + Δw) < E_s(w)   →  w ← w + Δw,  μ ← μ · mu_decrease       (accept)
        otherwise              →  μ ← μ · mu_increase, solve again, until μ > mu_max

    with MATLAB's factors ``10`` and ``0.1`` (``damping="trainlm"``, the default). ``damping="nielsen"``
    is Nielsen's rule (1999) instead: after an accepted step ``μ ← μ · max(mu_decrease, 1 − (2ρ − 1)³)``
    and ``ν ← mu_increase``, after a rejected one ``μ ← μ · ν, ν ← 2ν`` (``2`` and ``1/3``), where
    ``ρ = (E_s(w) − E_s(w + Δw)) / (½·Δwᵀ(μΔw + JᵀSe))`` is the decrease a step achieved over the one its
    quadratic model predicted. MATLAB's rule alternates an accepted and a rejected step along a curved
    valley, each rejection one more factorisation and trial pass; Nielsen's keeps ``μ`` where steps are
    accepted. Over the 1-D rows of ``benchmarks/bench_robust.py`` (10 seeds each, the default BR fits;
    ``benchmarks/results/damping.md``) Nielsen's took 0.82× the epochs in all, 28 starts ended by
    ``max_epochs`` against 42, and 156 fits of 170 reached grid ``R² ≥ 0.999`` against 152, but
    ``sin 6x`` from 30 points fell from 4 to 3 (worst ``R²`` 0.915 → 0.738). Over the whole of
    ``bench_robust`` (30 rows, 10 seeds, ``results/robust_nielsen.md``) it took 0.75× the epochs and
    gained 5 successes on the cubic and ``exp(−4x²)`` rows, but the worst ``R²`` fell on five rows
    (``sin 6x`` from 30 points as above; the noisy ``cos 3x`` 0.991 → 0.987, the noisy
    ``exp(−2|x|²)`` by 3·10⁻⁴; Friedman 1, whose test
    ``R²`` fell on 8 seeds of 10, median 0.929 → 0.923; diabetes 0.361 → 0.350), and over 30 seeds
    of ``sin 6x`` from 30 points 7 fits reached ``R² ≥ 0.999`` against 8, three ended below 0.95
    against two (``results/robust_t30_nielsen.md``): it stays an option. Its factor goes in steps of
    ``2^(1/4)``: ``ρ`` is a difference of nearly equal sums whose last digits are rounding, and a
    factor that followed them exactly would carry them into every later step (the population's
    batched products and one network's would then part ways).

    Where starts crawl to ``max_epochs`` (the cubic ``t³ − t`` of ``benchmarks/bench_valley.py``,
    ``benchmarks/results/valley.md``) it is the landscape, not the step. With one input and no biases
    unit ``i`` of the input layer is ``σ(w_i x)``, and ``σ(−wx) = 1 − σ(wx)``: such starts gather the
    units into clusters of equal ``|w_i|`` (least gap 5·10⁻⁵–1.4·10⁻⁴, median over the starts) in
    the sigmoid's near-linear range (``|w_i| ≈ 0.3–0.4``, against 1.2–6 where a start converges),
    and the layers above take differences of them with weights that keep growing: features such as
    ``(σ(wx) − σ(w′x))/(w − w′) → x·σ′(wx)``, reached only in the limit, so ``E`` has no minimum at
    finite weights along that valley (``solver="lm"``, seed 0, ``T = 30``: ``‖W²‖`` 24 → 48 over
    epochs 200–3000 while ``E`` falls 4.2·10⁻³ → 2.7·10⁻³). Each step there is sound — ``ρ ≈ 0.9``
    at the ``μ`` accepted; ten times smaller ``μ`` is refused — and BR's ``α_l = γ_l/(2E_W^(l))``
    shrinks as the layer grows, which leaves its penalty ``α_l·E_W^(l)`` constant and no brake on
    the growth. Over 10 seeds of single starts of the three cubic rows (15 of 30 ending by
    ``max_epochs`` with this rule) Nielsen's rule ended 10 so, Marquardt–Moré's scaling ``μ·max_k
    diag(M_k)`` for ``μI`` 14, Transtrum's geodesic acceleration 14, and ``α, β`` updated only once an
    LM step lowered ``F`` by less than 10⁻³ of it 12, each with fewer successes on one row at least.
    The initial weights do not cure it either. Over today's default fits of the three cubic rows (10
    seeds, 17 starts of 90 at ``max_epochs``; ``benchmarks/results/valley_screen_cubic.md``) the
    input layer's drawn 1.5, 2 or 3 times as large (:meth:`~torch_sigmoid_mlp.SigmoidMLP.reset_parameters`)
    ends 8, 3, 3 starts so, but the cubic from 30 points falls to a worst ``R²`` of 0.812 (×2) and
    0.754 (×3) from 0.948: the evidence chose a start whose grid ``R²`` another start beat (×2, seed 8:
    0.812 at evidence 84.6 over 0.989 and 0.980); drawn stratified (one ``|w_i|`` in the middle of each
    eighth of ``[0, a]``, no two closer than ``a/16``) 14, on ``[0, 2a]`` 8 and a worst ``R²`` of
    0.682. What removes the valley is moving the units' common centre ``x = 0`` off the data's: the
    estimator scales one input into ``[−0.75, 1]``
    (:data:`~torch_sigmoid_mlp.estimator.params.ONE_INPUT_RANGE`), and none of those 90 starts, nor of
    the 510 of all 17 one-input rows, ends by ``max_epochs``; the cubic reaches grid ``R² ≥ 0.999`` on
    6, 10, 10 seeds of 10 from 30, 100, 400 points (3, 8, 8 from ``[−1, 1]``) in 0.6× the epochs
    (``valley_defaults_range.md``). From 30 points the rest is extrapolation, not a valley: the four
    seeds below 0.999 converge, and their largest grid error lies at ``x = ±1``, beyond the points
    (seed 3: none below ``x = −0.83``, error 0.93 at ``x = −1``, ``R²`` 0.9996 over the points' range,
    every converged start of every variant at grid ``R²`` 0.945–0.948).

    ``JᵀSJ`` and ``JᵀSe`` are sums over points (:meth:`Objective.gauss_newton`), accumulated a block of
    points at a time: memory ``O(P²)`` whatever ``T`` is. Small ``μ`` is a Gauss–Newton step, large
    ``μ`` a short steepest-descent step ``JᵀSe/μ``. When no ``μ ≤ mu_max`` lowers ``E_s``, the weights
    stay at ``w_k`` and :attr:`stop_reason` is ``"mu_max"``: a minimum, to rounding. The system is
    solved in float64 whatever the model's dtype: ``JᵀJ`` squares the condition number of ``J``.
    """

    method = "lm"

    def __init__(
        self,
        objective: Objective,
        *,
        mu: float = 1e-3,
        mu_increase: float | None = None,
        mu_decrease: float | None = None,
        mu_max: float = 1e10,
        damping: str = "trainlm",
    ) -> None:
        check_dense_size(self.method, objective.P)
        mu, mu_increase, mu_decrease, mu_max = check_damping(mu, mu_increase, mu_decrease, mu_max, damping)
        self.objective, self.damping = objective, damping
        self.mu, self.mu_increase, self.mu_decrease, self.mu_max = mu, mu_increase, mu_decrease, mu_max
        self.nu = mu_increase  # Nielsen's ν: the next rejection's factor
        # μ in the weights' unit u (Objective.weight_unit): (JᵀSJ + μ·u I) steps alike at any scale
        self._unit = objective.weight_unit()
        self._plain = [W.detach() for W in objective.weights]
        self._numels = [W.numel() for W in self._plain]  # each W^(l)'s share of w
        self._known: tuple[Tensor, Tensor] | None = None  # E_s and max |e| at the accepted w_{k+1}
        # the trial evaluations go a block of points at a time too, so that no pass holds all T
        self._rows = objective.jacobian_rows()

    def evaluate(self) -> tuple[Tensor, Tensor]:
        known, self._known = self._known, None
        return known if known is not None else self.objective.error(self._rows)

    def _flat(self) -> Tensor:
        return flatten(self._plain).double()  # w, (P,)

    def _load(self, flat_w: Tensor) -> None:
        with torch.no_grad():
            for W, part in zip(self._plain, as_weights(flat_w, self._plain)):
                W.copy_(part)  # rounded to the model's dtype

    def _system(self, A: Tensor, g: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """The matrix without ``μI`` and the right-hand side of this solver's step."""
        return A, g

    def _objective_value(self, E: float, w: Tensor) -> float:
        """What a step must lower: ``E_s`` here."""
        return E

    def _model_scale(self) -> float:
        """What a step must lower over the quadratic model's ``E``-like units: ``1`` here."""
        return 1.0

    def _accepted(self, A: Tensor, w: Tensor, E: float) -> None:
        """Called after each accepted step (at the new ``w`` and its ``E_s``)."""

    def _before_step(self, A: Tensor, w: Tensor, E: float) -> None:
        """Called at the start of each step, at ``w_k`` and its ``E_s``."""

    def _gauss_newton(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(JᵀSJ, JᵀSe, E_s, max_t |e(t)|)`` at ``w_k`` (:meth:`Objective.gauss_newton`)."""
        return self.objective.gauss_newton()

    def _workspace(self, M: Tensor) -> Tensor:
        """What :meth:`_solve` writes ``M + μI`` into, once per step."""
        return torch.empty_like(M)

    def _solve(self, M: Tensor, rhs: Tensor, damped: Tensor) -> Tensor | None:
        """``Δw`` from ``(M + μ·u·I) Δw = rhs`` by Cholesky, or ``None`` where the factorisation fails
        (``μ`` too small for rounding), which counts as a rejected step."""
        damped.copy_(M).diagonal().add_(self.mu * self._unit)
        factor, info = torch.linalg.cholesky_ex(damped)
        if info.item() != 0:
            return None
        return torch.cholesky_solve(rhs[:, None], factor)[:, 0]  # Δw, (P,)

    def _predicted(self, dw: Tensor, rhs: Tensor) -> float:
        """The quadratic model's decrease ``rhsᵀΔw − ½ΔwᵀMΔw = ½·Δwᵀ(μ·u·Δw + rhs)`` (``Δw`` exact)."""
        return 0.5 * torch.dot(dw, self.mu * self._unit * dw + rhs).item()

    def _trial_error(self, trial: Tensor) -> tuple[Tensor, Tensor]:
        """``(E_s, max_t |e(t)|)`` at the trial weights ``trial`` (flat, in the model's dtype), evaluated
        at views of it: the model keeps ``w_k`` until a trial is accepted."""
        return self.objective.error(self._rows, as_weights(trial, self._plain))

    def step(self) -> None:
        A, g, E, _ = self._gauss_newton()  # JᵀSJ, JᵀSe and E_s at w_k
        w = self._flat()
        self._before_step(A, w, E.item())
        M, rhs = self._system(A, g, w)
        F_k = self._objective_value(E.item(), w)
        damped = self._workspace(M)  # M + μI, written in place for each μ tried
        while True:
            dw = self._solve(M, rhs, damped)  # Δw, (P,); None: a failed factorisation, a rejected step
            if dw is not None:
                trial = (w + dw).to(self._plain[0].dtype)  # w + Δw as the model stores it
                E_new, max_new = self._trial_error(trial)
                w_new = trial.double()
                F_new = self._objective_value(E_new.item(), w_new)
                if F_new < F_k:
                    self._load(trial)
                    predicted = self._model_scale() * self._predicted(dw, rhs)
                    self.mu, self.nu = accept(self, (F_k - F_new) / predicted if predicted > 0 else 1.0)
                    self._known = (E_new, max_new)
                    self._accepted(A, w_new, E_new.item())
                    return
            self.mu, self.nu = reject(self)
            if self.mu > self.mu_max:
                self._load(w)  # w_k, where a trial that loads itself (the matrix-free step's) left its own
                self.stop_reason = "mu_max"
                return

    def metrics(self) -> dict[str, float]:
        return {"mu": self.mu}

    def state_dict(self) -> dict:
        return {"mu": self.mu, "nu": self.nu}

    def load_state_dict(self, state: dict) -> None:
        self.mu = float(state["mu"])
        self.nu = float(state.get("nu", self.mu_increase))  # states saved before ν was kept: a fresh ν


class BayesianRegularization(LevenbergMarquardt):
    r"""Bayesian-regularised Levenberg–Marquardt (MacKay; Foresee and Hagan; MATLAB's ``trainbr``).

    Minimises ``F(w) = β·E_D + Σ_l α_l·E_W^(l)`` with ``E_D = Σ_t s_t ‖e_t‖²`` (``2E_s``) and
    ``E_W^(l) = Σ (w^(l)_ij)²``, one weight decay ``α_l`` per layer ``W^(l)``:

    .. code-block:: text

        (JᵀSJ + (D_α/β + μ I)) Δw = JᵀSe − (D_α/β)·w          D_α = diag(α_l of each weight)
        H = 2β·JᵀSJ + 2·D_α,   γ_l = P_l − 2α_l·tr_l(H⁻¹)      after each accepted step
        α_l ← γ_l / (2·E_W^(l)),   β ← (N − Σ_l γ_l) / (2·E_D)

    ``γ = Σ_l γ_l`` is the effective number of parameters (``tr_l`` sums the diagonal of layer
    ``l``'s block, ``P_l`` its weights): the weight decay is chosen from the data, which is what keeps
    small noisy data from being over-fitted. ``N`` is the number of errors ``T·m`` (with sample
    weights, ``Σ_t s_t · m``). With one layer this is SPEC.md's update exactly. ``0 ≤ γ_l ≤ P_l``
    holds exactly (``H⁻¹ ≼ (2D_α)⁻¹``) and is kept so under rounding; ``H⁻¹`` comes from its Cholesky
    factor, in float64.

    Where the ``α_l, β`` come from at first (``start``):

    - ``"trainbr"`` (default): MATLAB's start at ``w_0``, ``γ_l = P_l``, ``α_l = P_l /
      (2·E_W^(l)(w_0))``, ``β = (N − P) / (2·E_D(w_0))`` (``1`` where that is not positive), and the
      update above after every accepted step from there. It suits noisy data. On clean data it
      can *collapse*: far from a minimum ``E_D`` is large, so ``β`` is small and the decay ``α/β``
      large; the weights shrink towards ``w = 0``, where a bias-free network outputs the constant
      ``σ(0)`` — near the mean of the scaled targets — and ``J`` of every layer below the output
      vanishes, so ``γ → 0`` and ``α = γ/(2E_W)`` stays large: a fixed point. When ``γ`` stays
      below 1 (not one well-determined parameter left) for 5 epochs, or while it is below 1 no step
      lowers ``F`` any more (``μ > μ_max``), the start begins again from ``w_0`` as ``"minimum"``
      does.
    - ``"minimum"``: ``α = 0`` (plain LM steps) until ``w`` is near a minimum of ``E``: no step
      lowers ``E`` any more, or an accepted step lowers it by less than :attr:`SEARCH_TOL` of it
      where the fit explains at least half the targets' variance (training ``R² ≥ COLLAPSED_R2``),
      or :attr:`SEARCH_PATIENCE` such steps come in a row wherever it is. Then
      ``α_l = P_l/(2E_W^(l))``, ``β = N/(2E_D)`` there, one update through ``γ_l``, and the update
      after every step from there. The evidence approximation assumes ``w`` near a minimum, which
      this start respects; it never collapses, and on noisy data it can keep part of the noise it
      fitted first. (The ``R²`` condition is there because LM from small weights crosses plateaus
      of an epoch or two — on ``cos 3x`` from 30 points, at ``E`` above the best constant's — and a
      search that ended on one began BR there, which shrank the network to a constant.)

    Where the first collapses, the two end alike; where it does not, the second keeps part of the
    noise (diabetes, three splits: test ``R²`` 0.35–0.47 from ``"trainbr"``, −1.08 to −0.09 from
    ``"minimum"``, whose evidence is lower by 170 or more). Among several starts
    :func:`~torch_sigmoid_mlp.train` keeps the one of highest :meth:`evidence`.

    Where it departs from SPEC.md, and why:

    - one ``α`` per layer (MacKay's "multiple regularisers"), not one for all weights. A single
      ``α`` ties the input layer's decay to the output layer's and collapses more often.
    - the start above rather than ``α = 0``, ``β = 1`` at ``w_0``: with ``α = 0`` the first update
      reads ``γ = P`` off the formula whatever ``JᵀJ`` is, which leaves ``β ≤ 0`` when ``N < P``.
    """

    method = "br"
    #: the rule's constants (:mod:`~torch_sigmoid_mlp.training.br_rule`, where the rule itself lives)
    SEARCH_TOL, SEARCH_PATIENCE = br_rule.SEARCH_TOL, br_rule.SEARCH_PATIENCE
    COLLAPSED_GAMMA, COLLAPSED_EPOCHS = br_rule.COLLAPSED_GAMMA, br_rule.COLLAPSED_EPOCHS
    STARTS = ("trainbr", "minimum")

    def __init__(self, objective: Objective, *, start: str = "trainbr", **options) -> None:
        super().__init__(objective, **options)
        if start not in self.STARTS:
            raise ValueError(f"start must be one of {self.STARTS}, got {start!r}")
        self.start = start
        self.alphas, self.gammas, self.beta = br_rule.unestimated(self._numels)  # α_l = 0 until estimated
        self._decay_key, self._decay_vector = None, None  # D_α and the α_l it was built from (_decay)
        self._mu0 = self.mu
        self._w0 = self._flat()  # where a collapsed start begins again
        self._searching = start == "minimum"
        self._new_stage = False  # the objective changed: merit() starts a new record
        self._low = 0  # epochs in a row with γ < COLLAPSED_GAMMA
        self._plateau = 0  # searching: accepted steps in a row that lowered E by < SEARCH_TOL of it
        self._spread = objective.spread()  # E_s of the best constant output
        s = objective.s
        if s is None:
            self.N = float(objective.N)
        else:
            total = s.double().sum()
            if objective.distributed:
                total = objective._sum(total, total.clone())[0]
            self.N = total.item() * objective.d.shape[1]

    @property
    def alpha(self) -> float:
        """``Σ_l α_l·P_l / P``: the weight decay averaged over the weights, for the record."""
        return br_rule.mean_alpha(self._numels, self.alphas)

    @property
    def gamma(self) -> float:
        """``γ = Σ_l γ_l``."""
        return sum(self.gammas)

    @property
    def searching(self) -> bool:
        """Whether the first minimum of ``E`` is still sought (``α = 0``: plain LM steps)."""
        return self._searching

    def _decay(self, w: Tensor) -> Tensor:
        """``D_α`` as a vector: each weight's ``α_l``, ``(P,)``; built again only when an ``α_l`` changed
        (an epoch reads it several times)."""
        key = (tuple(self.alphas), w.dtype, w.device)
        if self._decay_key != key:
            self._decay_key = key
            self._decay_vector = torch.cat([w.new_full((n,), a) for a, n in zip(self.alphas, self._numels)])
        return self._decay_vector

    def _first_alphas(self, w: Tensor) -> list[float]:
        """trainbr's first ``α_l = P_l / (2·E_W^(l))`` at ``w`` (``E_W^(l)`` kept above 0)."""
        return br_rule.first_alphas(self._numels, self._layer_squares(w))

    def _layer_squares(self, w: Tensor) -> list[float]:
        """``E_W^(l) = Σ (w^(l)_ij)²`` of each layer."""
        return [part.square().sum().item() for part in w.split(self._numels)]

    def evaluate(self) -> tuple[Tensor, Tensor]:
        self._E_k, max_error = super().evaluate()  # E_s(w_k), which the step reads too
        return self._E_k, max_error

    def step(self) -> None:
        E_k = self._E_k.item()
        if not self._searching and self.alphas[0] == 0.0:  # "trainbr": its start at w_0
            self.alphas = self._first_alphas(self._flat())
            self.beta = br_rule.first_beta(self.N, sum(self._numels), E_k)
        if not self._searching:
            super().step()
            stuck = self.stop_reason == "mu_max"
            self._low, collapsed = br_rule.collapsed(self._low, self.gamma, self.start == "trainbr", stuck)
            if collapsed:
                self._load(self._w0)  # collapsed: begin again from w_0, as start="minimum"
                self._begin_search()
                self.stop_reason = None  # a μ_max of the collapsed objective does not end the new search
            return
        super().step()
        stuck = self.stop_reason == "mu_max"
        E_new = E_k if stuck else self._known[0].item()
        self._plateau, ended = br_rule.search_ends(self._plateau, E_k, E_new, stuck, self._spread)
        if ended:
            # at (near) a minimum of E: the evidence's Gauss–Newton approximation holds from here
            self.stop_reason = None
            A, _, E, _ = self._gauss_newton()
            self._searching = False
            self._settle(A, self._flat(), E.item())
            self._restart_damping()

    def _begin_search(self) -> None:
        self.alphas, self.gammas, self.beta = br_rule.unestimated(self._numels)
        self._searching, self.start = True, "minimum"
        self._plateau = 0
        self._restart_damping()

    def _restart_damping(self) -> None:
        self.mu, self.nu, self._known, self._new_stage = self._mu0, self.mu_increase, None, True

    def _model_scale(self) -> float:
        # the step's system is F/(2β)'s quadratic model, and F is what a step must lower
        return 2 * self.beta

    def _update(self, gammas: list[float], w: Tensor, E: float) -> None:
        """``α_l ← γ_l / (2·E_W^(l))``, ``β ← (N − γ) / (2·E_D)``.

        Each is kept where its sum is 0, or where ``β`` would not be positive.
        """
        self.gammas = gammas
        E_W = self._layer_squares(w)
        self.alphas, self.beta = br_rule.update(gammas, self.alphas, self.beta, E_W, E, self.N)

    def _system(self, A: Tensor, g: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        ratio = self._decay(w) / self.beta  # D_α / β, (P,)
        M = A.clone()
        M.diagonal().add_(ratio)  # A + diag(ratio), without a second P×P matrix
        return M, g - ratio * w

    def _objective_value(self, E: float, w: Tensor) -> float:
        # F = β·E_D + Σ_l α_l·E_W^(l)
        return self.beta * 2 * E + (self._decay(w) * w.square()).sum().item()

    def _hessian(self, A: Tensor, w: Tensor) -> Tensor:
        """``H = 2β·JᵀSJ + 2·D_α`` (positive definite once every ``α_l > 0``)."""
        H = A * (2 * self.beta)
        H.diagonal().add_(2 * self._decay(w))
        return H

    def _accepted(self, A: Tensor, w: Tensor, E: float) -> None:
        if not self._searching:
            self._estimate(A, w, E)

    def _estimate(self, A: Tensor, w: Tensor, E: float) -> None:
        """``γ_l`` from ``H`` at ``w``, then ``α_l, β``."""
        H = self._hessian(A, w)
        traces = [part.sum().item() for part in inverse_diagonal(H).split(self._numels)]  # tr_l(H⁻¹)
        self._update(br_rule.gammas(self._numels, self.alphas, traces), w, E)

    def merit(self, E: float) -> float | None:
        """``F/(2β) = E_s + Σ_l α_l·E_W^(l) / (2β)`` at ``w_k``, in ``E``'s units (``E_s`` while
        searching); ``None`` on the first epoch after the objective changed its form."""
        if self._new_stage:
            self._new_stage = False
            return None
        if self._searching:
            return E
        return self._objective_value(E, self._flat()) / (2 * self.beta)

    def evidence(self) -> float | None:
        r"""``ln p(D | α, β) ≈ −F(w) − ½·ln det H + Σ_l (P_l/2)·ln(2α_l) + (N/2)·ln(β/π)`` at ``w``.

        MacKay's evidence by the Laplace approximation (SPEC.md, "Several starts"), with one ``α_l``
        per layer; ``None`` before the first step of ``"trainbr"``.

        A ``"minimum"`` start that ends still searching (clean data: ``E`` kept falling by more than
        :attr:`SEARCH_TOL` an epoch until the run converged) has ``w`` at a minimum of ``E`` but no
        ``α_l, β`` yet: they are estimated there as the search's end would (one update through
        ``γ_l``) for the evidence alone, and the run's own state is left as it was. Without that a
        start that fitted the points exactly would have no evidence to be compared by.
        """
        if not self._searching and self.alphas[0] == 0.0:
            return None
        A, _, E, _ = self._gauss_newton()
        w = self._flat()
        if not self._searching:
            return self._evidence_at(A, w, E)
        kept = self.alphas, self.gammas, self.beta
        self._settle(A, w, E.item())
        try:
            return self._evidence_at(A, w, E)
        finally:
            self.alphas, self.gammas, self.beta = kept

    def _settle(self, A: Tensor, w: Tensor, E: float) -> None:
        """The search's end at ``w``: ``α_l = P_l/(2E_W^(l))``, ``β = N/(2E_D)``, one update."""
        self.alphas = self._first_alphas(w)
        self.beta = br_rule.settled_beta(self.N, E)
        self._estimate(A, w, E)

    def _evidence_at(self, A: Tensor, w: Tensor, E: Tensor) -> float | None:
        factor, info = torch.linalg.cholesky_ex(self._hessian(A, w))
        if info.item() != 0:
            return None
        log_det = 2 * factor.diagonal().log().sum().item()
        F = self._objective_value(E.item(), w)
        return br_rule.evidence(F, log_det, self._numels, self.alphas, self.N, self.beta)

    def metrics(self) -> dict[str, float]:
        return {"mu": self.mu, "gamma": self.gamma, "alpha": self.alpha, "beta": self.beta}

    def state_dict(self) -> dict:
        return {
            **self.metrics(),
            "nu": self.nu,
            "alphas": list(self.alphas),
            "gammas": list(self.gammas),
            "searching": self._searching,
            "start": self.start,
            "w0": self._w0.clone(),
            "low": self._low,
            "plateau": self._plateau,
        }

    def load_state_dict(self, state: dict) -> None:
        self.mu, self.beta = float(state["mu"]), float(state["beta"])
        self.nu = float(state.get("nu", self.mu_increase))
        self.alphas = [float(a) for a in state["alphas"]]
        self.gammas = [float(g) for g in state["gammas"]]
        # states saved before the two starts existed were trainbr's, estimated from the first step
        self._searching = bool(state.get("searching", False))
        self.start = state.get("start", "trainbr")
        if "w0" in state:
            self._w0 = state["w0"].to(self._w0)
        self._low, self._plateau = int(state.get("low", 0)), int(state.get("plateau", 0))


#: The second-order solvers' classes by method name, for :func:`make_step`. The matrix-free ones build on
#: the classes here and live in their own modules (``matrix_free.py``: ``"lm_cg"``, ``matrix_free_br.py``:
#: ``"br_cg"``), which add themselves when imported; ``torch_sigmoid_mlp.training`` imports them, so
#: every import of the package has all four.
SECOND_ORDER: dict[str, type[LevenbergMarquardt]] = {"lm": LevenbergMarquardt, "br": BayesianRegularization}


#: ``lr=None`` defaults of the optimizers ``train`` builds: Rprop's is its first step ``Δ_0`` (FANN's
#: ``rprop_delta_zero``), L-BFGS's the line search's first trial step.
_DEFAULT_LR = {"rprop": 0.1, "adam": 0.01, "lbfgs": 1.0}
#: torch's default of Adam's ``eps``: it is added to ``√v``, which scales with ``∇E_s`` and so with the
#: weights; :func:`make_step` multiplies it by :meth:`Objective.weight_unit`
ADAM_EPS = 1e-8


def make_step(
    method: str | Callable,
    objective: Objective,
    *,
    lr: float | None,
    momentum: float = 0.0,
    batch_size: int | None = None,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    options: dict | None = None,
) -> Step:
    """The :class:`Step` for ``method``, built once before the loop.

    ``method`` is a name in :data:`METHODS` or a factory ``params -> torch.optim.Optimizer``
    (``functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)``, say). ``options`` go to the
    solver (``mu``, ``mu_max`` … for ``"lm"``/``"br"``/``"lm_cg"``, and ``cg_eta``, ``cg_max_iter``,
    ``cg_rtol``, ``cg_warm``, ``cg_forcing``, ``cg_warm_epochs`` for ``"lm_cg"``/``"br_cg"``, ``probes``,
    ``trace_rtol``, ``trace_seed``, ``trace_space``, ``trace_recycle``, ``trace_interval`` for
    ``"br_cg"``; ``lr_increase`` … for ``"adaptive"``; ``weight_decay`` ``α ≥ 0`` for ``"lbfgs"``, which
    then minimises ``E_s + (α/2)·Σ w²`` (:class:`OptimizerStep`; default 0); keyword arguments of the
    ``torch.optim`` class otherwise).
    """
    options = dict(options or {})
    params = objective.weights
    if callable(method):
        optimizer = method(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"method= called with the weights must give a torch.optim.Optimizer, got {optimizer!r}"
            )
        name = type(optimizer).__name__
    elif method in SECOND_ORDER:
        if batch_size is not None:
            raise ValueError(f"method={method!r} takes whole full-batch steps: batch_size must be None")
        return SECOND_ORDER[method](objective, **options)
    elif method in ("sgd", "adaptive") and not momentum and batch_size is None:
        if lr is None:
            raise ValueError(f"lr is required with method={method!r} (steepest descent)")
        return (SteepestDescent if method == "sgd" else AdaptiveDescent)(objective, lr, **options)
    elif method == "adaptive":
        raise ValueError(
            "method='adaptive' adapts η over full-batch epochs: it takes no momentum or batch_size"
        )
    elif method == "sgd":
        if lr is None:
            raise ValueError("lr is required with method='sgd' (steepest descent)")
        optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, **options)
        name = "sgd"
    else:
        lr = _DEFAULT_LR[method] if lr is None else lr
        # torch's absolute thresholds, in the weights' unit (1 for weights of ordinary size)
        unit = objective.weight_unit()
        if method == "rprop":
            optimizer = torch.optim.Rprop(params, lr=lr, **{"step_sizes": (1e-6, 50.0), **options})
        elif method == "adam":
            optimizer = torch.optim.Adam(params, lr=lr, **{"eps": ADAM_EPS * unit, **options})
        else:
            if batch_size is not None:
                raise ValueError("method='lbfgs' takes full-batch steps: batch_size must be None")
            decay = check_number(options.pop("weight_decay", 0.0), "weight_decay", low=0.0, high=math.inf)
            # one iteration per epoch, so that the loop's stop rules see every iterate
            options = {
                "max_iter": 1,
                "max_eval": 25,
                "history_size": 20,
                "line_search_fn": "strong_wolfe",
                **options,
            }
            optimizer = torch.optim.LBFGS(params, lr=lr, **options)
            # L-BFGS's own constants are absolute (its first step 1/‖g‖₁, a curvature pair kept only
            # where sᵀy > 1e-10): it minimises E_s/unit, whose scale the weights do not change
            return OptimizerStep(objective, optimizer, method, unit=unit, weight_decay=decay)
        name = method
    if batch_size is not None:
        return MiniBatches(
            objective, optimizer, name, batch_size=batch_size, shuffle=shuffle, generator=generator
        )
    return OptimizerStep(objective, optimizer, name)
