"""Bayesian regularisation's rule on plain numbers (training/br_rule.py): the cases its docstrings
name, which one network's solver and a population's members both follow."""

from __future__ import annotations

import math

import pytest
import torch

from torch_sigmoid_mlp.training import br_rule
from torch_sigmoid_mlp.training.solvers import POTRI_PARAMS, inverse_diagonal


def test_gammas_stay_within_each_layer_s_weights():
    # γ_l = P_l − 2α_l·tr_l(H⁻¹): rounding may take it past 0 or P_l, and it is kept there
    assert br_rule.gammas([4, 16], [1.0, 2.0], [1.5, -1e-16]) == [1.0, 16.0]
    assert br_rule.gammas([4], [1.0], [2.0 + 1e-15]) == [0.0]


def test_update_keeps_alpha_where_a_sum_is_zero_and_beta_unless_positive():
    alphas, beta = br_rule.update([2.0, 0.0, 3.0], [0.5, 0.25, 0.125], 7.0, [4.0, 1.0, 0.0], 5.0, 100.0)
    assert alphas == [2.0 / 8.0, 0.25, 0.125]  # γ_2 = 0 and E_W^(3) = 0 keep their α
    assert beta == (100.0 - 5.0) / 20.0
    _, beta = br_rule.update([60.0, 50.0], [1.0, 1.0], 7.0, [1.0, 1.0], 5.0, 100.0)
    assert beta == 7.0  # N − γ < 0: β kept
    _, beta = br_rule.update([1.0], [1.0], 7.0, [1.0], 0.0, 100.0)
    assert beta == 7.0  # E_D = 0: β kept


def test_trainbr_start_and_a_search_s_end():
    assert br_rule.first_alphas([4, 16], [2.0, 0.0]) == [1.0, 8 / 1e-300]
    assert br_rule.first_beta(100.0, 20, 2.0) == 10.0
    assert br_rule.first_beta(10.0, 20, 2.0) == 1.0  # N ≤ P
    assert br_rule.settled_beta(100.0, 2.0) == 12.5


def test_a_trainbr_start_collapses_after_low_gamma_or_where_stuck():
    low, ended = 0, False
    for _ in range(br_rule.COLLAPSED_EPOCHS - 1):
        low, ended = br_rule.collapsed(low, 0.5, True, False)
        assert not ended
    assert br_rule.collapsed(low, 0.5, True, False) == (br_rule.COLLAPSED_EPOCHS, True)
    assert br_rule.collapsed(low, 0.5, False, False) == (br_rule.COLLAPSED_EPOCHS, False)  # "minimum"
    assert br_rule.collapsed(3, 2.0, True, True) == (0, False)  # γ recovered: a dip is no collapse
    assert br_rule.collapsed(0, 0.5, True, True) == (1, True)  # low where no step lowers F


def test_a_minimum_search_ends_at_a_small_step_where_the_fit_explains_half_the_variance():
    spread = 1.0
    assert br_rule.search_ends(0, 0.1, 0.0999, False, spread) == (1, True)
    assert br_rule.search_ends(0, 0.9, 0.8999, False, spread) == (1, False)  # a plateau above half
    assert br_rule.search_ends(br_rule.SEARCH_PATIENCE - 1, 0.9, 0.8999, False, spread)[1]
    assert br_rule.search_ends(2, 0.9, 0.5, False, spread) == (0, False)  # a large step
    assert br_rule.search_ends(0, 0.9, math.nan, True, spread) == (1, True)  # no step lowers E


def test_evidence_is_the_laplace_approximation_s_sum():
    value = br_rule.evidence(3.0, 2.0, [4, 16], [0.5, 2.0], 100.0, 4.0)
    prior = 2 * math.log(1.0) + 8 * math.log(4.0)  # Σ_l (P_l/2)·ln(2α_l)
    assert math.isclose(value, -3.0 - 2.0 / 2 + prior + 50 * math.log(4.0 / math.pi))


@pytest.mark.floats
@pytest.mark.parametrize("P", [12, POTRI_PARAMS + 5])
def test_the_diagonal_of_the_inverse_that_gamma_reads_both_ways_and_where_factorisation_fails(P):
    """``inverse_diagonal`` (a triangular solve below ``POTRI_PARAMS`` weights, ``cholesky_inverse``
    from there) against ``torch.linalg.inv``, one matrix and a batch; an indefinite matrix of a batch
    takes its pseudo-inverse's diagonal, and the others keep theirs."""
    g = torch.Generator().manual_seed(P)
    J = torch.randn(3, 2 * P, P, generator=g, dtype=torch.float64)
    H = J.mT @ J + 0.1 * torch.eye(P, dtype=torch.float64)
    want = torch.linalg.inv(H).diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(inverse_diagonal(H), want, rtol=1e-9, atol=0)
    torch.testing.assert_close(inverse_diagonal(H[1]), want[1], rtol=1e-9, atol=0)
    H[2] = -H[2]  # no Cholesky factor
    got = inverse_diagonal(H)
    torch.testing.assert_close(got[:2], want[:2], rtol=1e-9, atol=0)
    torch.testing.assert_close(got[2], -want[2], rtol=1e-7, atol=0)  # pinv(−H) = −H⁻¹
