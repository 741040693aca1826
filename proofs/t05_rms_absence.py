"""T5 RMSNorm absence: no direction is dead for RMSNorm.

Statement. Let y = γ ⊙ x/√(mean(x²) + ε) with every γᵢ ≠ 0, ε ≥ 0. For every v ≠ 0 the
two-point input distribution x ∈ {γ⊙v, −γ⊙v} (probability ½ each) has vᵀCv > 0; explicitly
vᵀCv = S²/(S/d + ε) with S = Σᵢ γᵢ²vᵢ². For x ~ N(0, I_d) and ε = 0, C = diag(γ)², full rank.

Machine-checked: the two-point value for symbolic d and, from the full covariance matrix, for
d = 2..6 with symbolic γ, v, ε; its positivity; oddness of RMSNorm; ‖x‖²/(‖x‖²/d) = d and the
constant of the symmetry ansatz E[uuᵀ] = aI; det diag(γ)² = Πγᵢ² ≠ 0 for d = 2..12.
Cited: the symmetry lemma (law of x invariant under every orthogonal Q).
Negative control: the same two-point computation for LayerNorm along v = γ⁻¹ (generic points)
claims vᵀCv > 0, and is refuted (it is identically 0).
:func:`numeric_counterexample` generates a float64 counterexample for property tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, ProofResult

THEOREM = "T5"
TITLE = "RMSNorm absence: vᵀCv > 0 for every v ≠ 0"
STATEMENT = (
    "For RMSNorm and every v ≠ 0 the two-point distribution x ∈ {±γ⊙v} gives vᵀCv = S²/(S/d + ε) > 0, "
    "S = Σγᵢ²vᵢ²; for x ~ N(0, I), ε = 0, C = diag(γ)² (full rank)."
)
HYPOTHESES = ["d ≥ 2", "γᵢ ≠ 0 for every i", "ε ≥ 0", "v ≠ 0"]


def _two_point_quadratic(d: int, norm: str) -> tuple[sp.Expr, sp.Expr]:
    """(vᵀCv, the claimed closed form) for the two-point distribution; all entries symbolic."""
    eps = sp.Symbol("epsilon", nonnegative=True)
    g = S.vec("gamma", d)
    if norm == "rms":
        v = S.vec("v", d)
        x1 = [gi * vi for gi, vi in zip(g, v, strict=True)]
        ys = [S.rms_norm(x1, g, eps), S.rms_norm([-a for a in x1], g, eps)]
        s = sp.Add(*[(gi * vi) ** 2 for gi, vi in zip(g, v, strict=True)])
        closed = s**2 / (s / d + eps)
    else:  # LayerNorm along v = γ⁻¹ with two generic points (the negative control)
        v = S.inverse(g)
        b = S.vec("beta", d)
        ys = [S.layer_norm(S.vec(f"x{k}", d), g, b, eps, sp.Symbol(f"s_{k}", positive=True)) for k in (1, 2)]
        closed = sp.Integer(0)
    c = S.empirical_cov(ys)
    vm = sp.Matrix(v)
    return (vm.T * c * vm)[0, 0], closed


def _derive(norm: str) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "two-point value: symbolic d + d = 2..6; closed form d = 2..12",
        control=None if norm == "rms" else "LayerNorm along γ⁻¹ claimed to have vᵀCv > 0",
    )
    if norm == "rms":
        d = sp.Symbol("d", integer=True, positive=True)
        i = sp.Symbol("i", integer=True)
        g, v = sp.IndexedBase("gamma"), sp.IndexedBase("v")
        r = sp.Symbol("r", positive=True)  # √(S/d + ε)
        ssym = sp.Symbol("S", positive=True)
        der.zero(
            "projection of one point, symbolic d",
            "With x₁ = γ⊙v: ⟨v, y(x₁)⟩ = Σᵢ vᵢγᵢ(γᵢvᵢ)/r = S/r, r = √(mean(x₁²) + ε) = √(S/d + ε); "
            "y(−x₁) = −y(x₁), so ⟨v, y₁ − y₂⟩ = 2S/r and vᵀCv = ¼⟨v, y₁ − y₂⟩² = S²/r².",
            sp.Sum(v[i] * g[i] * (g[i] * v[i]) / r, (i, 1, d)) - sp.Sum(g[i] ** 2 * v[i] ** 2, (i, 1, d)) / r,
            latex=r"\sum_{i=1}^d v_i\frac{\gamma_i(\gamma_i v_i)}{r} - "
            r"\frac{1}{r}\sum_{i=1}^d\gamma_i^2v_i^2 = 0",
        )

        def two_point(dd: int) -> sp.Expr:
            q, closed = _two_point_quadratic(dd, "rms")
            return q - closed

        der.family(
            "two-point covariance, concrete d",
            "From the full 2-sample covariance matrix: vᵀCv = S²/(S/d + ε) for d = 2..6 (γ, v, ε symbolic).",
            r"v^\top C v = \frac{S^2}{S/d + \varepsilon},\quad S = \sum_i \gamma_i^2 v_i^2",
            [(f"d={dd}", lambda dd=dd: two_point(dd)) for dd in range(2, 7)],
        )
        eps = sp.Symbol("epsilon", nonnegative=True)
        der.positive(
            "positivity",
            "S = Σ(γᵢvᵢ)² > 0 because v ≠ 0 and every γᵢ ≠ 0; with d > 0, ε ≥ 0 the value is positive.",
            ssym**2 / (ssym / d + eps),
        )

        def odd(dd: int) -> sp.Matrix:
            x, g2 = S.vec("x", dd), S.vec("gamma", dd)
            e = sp.Symbol("epsilon", nonnegative=True)
            return sp.Matrix(S.rms_norm(x, g2, e)) + sp.Matrix(S.rms_norm([-a for a in x], g2, e))

        der.family(
            "RMSNorm is odd",
            "y(−x) = −y(x), so E y = 0 for symmetric input.",
            r"y(-x) + y(x) = 0",
            [(f"d={dd}", lambda dd=dd: odd(dd)) for dd in range(2, 7)],
        )
        der.cite(
            "symmetry lemma",
            "For x ~ N(0, I) the law of x is invariant under every orthogonal Q and y/γ = x/‖x‖·√d is "
            "equivariant, so E[(x/rms)(x/rms)ᵀ] = aI.",
            r"\mathbb{E}\big[\tfrac{xx^\top}{\|x\|^2/d}\big] = aI",
        )
        a = sp.Symbol("a")
        sol = sp.solve(sp.Eq(a * d, d), a)
        der.fact(
            "constant",
            "Trace: ‖x‖²/(‖x‖²/d) = d = a·d, so a = 1 and C = diag(γ)·I·diag(γ) = diag(γ)².",
            r"a\,d = d \Rightarrow a = 1",
            sol == [1],
            "solve (unique solution)",
        )

        def full_rank(dd: int) -> sp.Expr:
            g2 = S.vec("gamma", dd)
            return S.det(sp.diag(*[gi**2 for gi in g2])) - sp.prod([gi**2 for gi in g2])

        der.family(
            "full rank",
            "det diag(γ)² = Πγᵢ² ≠ 0 for d = 2..12: no kernel at all.",
            r"\det\mathrm{diag}(\gamma)^2 = \prod_i\gamma_i^2",
            [(f"d={dd}", lambda dd=dd: full_rank(dd)) for dd in range(2, 13)],
        )
    else:
        q, _ = _two_point_quadratic(3, "layer")
        der.positive("two-point value", "The same two-point quadratic form for LayerNorm along v = γ⁻¹.", q)
    return der.result()


def prove() -> ProofResult:
    """Derive T5."""
    return _derive("rms")


CONTROLS = {"layernorm-along-inverse-scale": lambda: _derive("layer")}


@dataclass(frozen=True)
class RmsCounterexample:
    """Two RMSNorm inputs whose covariance is positive along ``v``.

    ``points`` (2, d) are the inputs (each with probability ½), ``outputs`` their RMSNorm
    outputs (float64), ``v_c_v`` = vᵀCv of the population covariance (1/2 normalisation) and
    ``closed_form`` = S²/(S/d + ε), equal to it up to float64 rounding.
    """

    gamma: np.ndarray
    v: np.ndarray
    eps: float
    points: np.ndarray
    outputs: np.ndarray
    v_c_v: float
    closed_form: float


def numeric_counterexample(
    d: int, seed: int = 0, *, v: np.ndarray | None = None, eps: float = 0.0
) -> RmsCounterexample:
    """A float64 counterexample to "v is dead for RMSNorm" (default v = γ⁻¹/‖γ⁻¹‖, the LayerNorm direction).

    γ is drawn from N(1, 0.25) (redrawn entries with |γᵢ| < 0.05) by ``numpy.random.default_rng(seed)``.

    Raises:
        ValueError: d < 2, eps < 0, or v has the wrong shape or is 0.
    """
    if d < 2:
        raise ValueError(f"d: need d >= 2, got {d}")
    if eps < 0:
        raise ValueError(f"eps: must be >= 0, got {eps}")
    rng = np.random.default_rng(seed)
    gamma = rng.normal(1.0, 0.5, size=d)
    while np.any(np.abs(gamma) < 0.05):
        small = np.abs(gamma) < 0.05
        gamma[small] = rng.normal(1.0, 0.5, size=int(small.sum()))
    if v is None:
        v = (1.0 / gamma) / np.linalg.norm(1.0 / gamma)
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (d,) or not np.any(v):
        raise ValueError(f"v: need a non-zero vector of shape ({d},), got shape {v.shape}")
    x1 = gamma * v
    points = np.stack([x1, -x1])
    outputs = gamma * points / np.sqrt(np.mean(points**2, axis=1, keepdims=True) + eps)
    centred = outputs - outputs.mean(axis=0)
    cov = centred.T @ centred / 2.0
    s = float(np.sum((gamma * v) ** 2))
    return RmsCounterexample(gamma, v, eps, points, outputs, float(v @ cov @ v), s**2 / (s / d + eps))
