"""The checker itself: it proves identities, refutes non-identities with a witness, never guesses."""

from __future__ import annotations

import sympy as sp

from proofs.core import PROVED, REFUTED, UNDECIDED, Derivation, find_witness, simplify_to_zero


def test_identity_is_proved_and_falsehood_refuted():
    x, y = sp.symbols("x y", real=True)
    assert simplify_to_zero((x + y) ** 2 - x**2 - 2 * x * y - y**2)[0]
    ok, _ = simplify_to_zero((x + y) ** 2 - x**2 - y**2)
    assert not ok
    witness = find_witness((x + y) ** 2 - x**2 - y**2)
    assert witness is not None and witness[1] > 0


def test_symbolic_dimension_sums():
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    x = sp.IndexedBase("x")
    centred_sum = sp.Sum(x[i] - sp.Sum(x[j], (j, 1, d)) / d, (i, 1, d))
    assert simplify_to_zero(centred_sum)[0]
    assert not simplify_to_zero(sp.Sum(x[i], (i, 1, d)))[0]
    assert find_witness(sp.Sum(x[i], (i, 1, d))) is not None


def test_step_statuses_and_verdicts():
    x = sp.Symbol("x", real=True)
    der = Derivation("TX", "t", "s", [], "c")
    der.zero("true", "", sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)
    res = der.result()
    assert res.steps[0].status == PROVED and res.proved and res.verdict == "PROVED"
    ctl = Derivation("TX", "t", "s", [], "c", control="false variant")
    ctl.zero("false", "", sp.sin(x) - x)
    res = ctl.result()
    assert res.steps[0].status == REFUTED and res.verdict == "REJECTED" and res.ok


def test_undecided_is_not_proved():
    der = Derivation("TX", "t", "s", [], "c")
    der.fact("decided elsewhere", "", "", True, "m")
    der.steps[0].status = UNDECIDED
    assert not der.result().proved


def test_interchange_of_finite_sums_with_symbolic_bounds():
    d, m = sp.symbols("d m", integer=True, positive=True)
    i, k, l = sp.symbols("i k l", integer=True)
    y, g = sp.IndexedBase("y"), sp.IndexedBase("gamma")
    lhs = sp.Sum(sp.Sum(y[l, i], (l, 1, m)) / g[i], (i, 1, d))
    rhs = sp.Sum(sp.Sum(y[l, i] / g[i], (i, 1, d)), (l, 1, m))
    assert simplify_to_zero(lhs - rhs)[0]
    # a constant summand over l counts m times, not once
    assert simplify_to_zero(sp.Sum(g[i], (i, 1, d), (l, 1, m)) - m * sp.Sum(g[i], (i, 1, d)))[0]
    assert not simplify_to_zero(sp.Sum(g[i], (i, 1, d), (l, 1, m)) - sp.Sum(g[i], (i, 1, d)))[0]
    assert not simplify_to_zero(lhs - rhs + y[k, 1])[0]


def test_sum_of_zeros_innermost_first():
    # Σ_k w_k·Σ_j (x_kj − mean_k) = 0 because each inner sum is 0; Σ_k w_k·Σ_j x_kj is not 0.
    d, m = sp.symbols("d m", integer=True, positive=True)
    i, j, p, k = sp.symbols("i j p k", integer=True)
    w, x = sp.IndexedBase("w"), sp.IndexedBase("x")
    centred = sp.Sum(x[k, j] - sp.Sum(x[k, p], (p, 1, d)) / d, (j, 1, d))
    ok, method = simplify_to_zero(sp.Sum(w[k, i] * centred, (k, 1, m)))
    assert ok and "innermost" in method
    ok, _ = simplify_to_zero(sp.Sum(w[k, i] * sp.Sum(x[k, j], (j, 1, d)), (k, 1, m)))
    assert not ok


def test_multi_index_sums_are_renamed_canonically():
    d, m = sp.symbols("d m", integer=True, positive=True)
    j, l, p = sp.symbols("j l p", integer=True)
    x = sp.IndexedBase("x")
    same = sp.Sum(x[l, j], (j, 1, d), (l, 1, m)) - sp.Sum(x[l, p], (l, 1, m), (p, 1, d))
    assert simplify_to_zero(same)[0]
    # the ranges differ (x[l, j] with j ≤ m, l ≤ d): not the same sum
    swapped = sp.Sum(x[l, j], (j, 1, d), (l, 1, m)) - sp.Sum(x[j, l], (j, 1, d), (l, 1, m))
    assert not simplify_to_zero(swapped)[0]
    assert find_witness(swapped) is not None


def test_witness_sets_free_indices_to_one():
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    g = sp.IndexedBase("gamma")
    found = find_witness(g[i] * sp.Sum(g[j], (j, 1, d)) - g[i] ** 2)
    assert found is not None and "i = 1" in found[0] and "d = 3" in found[0]
    # at i = 1 this is γ₁(γ₂ + γ₃): the witness uses γ₁ from the sum, not a fresh γ_i
    assert find_witness(g[i] * sp.Sum(g[j], (j, 1, d)) - g[i] * sp.Sum(g[j], (j, 1, d))) is None
