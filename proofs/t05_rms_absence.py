"""T5 RMSNorm absence: no direction is dead for RMSNorm.

Statement. Let y = γ ⊙ x/√(mean(x²) + ε) with every γᵢ ≠ 0, ε ≥ 0. For every v ≠ 0 the
two-point input distribution x ∈ {γ⊙v, −γ⊙v} (probability ½ each) has vᵀCv > 0; explicitly
vᵀCv = S²/(S/d + ε) with S = Σᵢ γᵢ²vᵢ². For x ~ N(0, I_d) and ε = 0, C = diag(γ)², full rank.

Machine-checked: the two-point value for symbolic d, with the centred covariance of the two
outputs formed from the one RMSNorm definition (exact normaliser), and from the full covariance
matrix for d = 2..6 with symbolic γ, v, ε; its positivity from S = p + R (p > 0, R ≥ 0);
oddness of RMSNorm; the constant of the symmetry ansatz E[uuᵀ] = aI; det diag(γ)² = Πγᵢ² ≠ 0
for d = 2..12. Cited: the symmetry lemma (law of x invariant under every orthogonal Q) and the
splitting of S.
Negative control: the same symbolic-d two-point computation for LayerNorm along v = γ⁻¹ is
refuted (vᵀCv is identically 0 there).
:func:`numeric_counterexample` generates a float64 counterexample for property tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, Mutant, ProofResult

THEOREM = "T5"
TITLE = "RMSNorm absence: vᵀCv > 0 for every v ≠ 0"
STATEMENT = (
    "For RMSNorm and every v ≠ 0 the two-point distribution x ∈ {±γ⊙v} gives vᵀCv = S²/(S/d + ε) > 0, "
    "S = Σγᵢ²vᵢ²; for x ~ N(0, I), ε = 0, C = diag(γ)² (full rank)."
)
HYPOTHESES = ["d ≥ 2", "γᵢ ≠ 0 for every i", "ε ≥ 0", "v ≠ 0"]


Closed = Callable[[sp.Expr, sp.Expr, sp.Expr], sp.Expr]  # (d, S, ε) -> claimed vᵀCv


def _true_closed(d: sp.Expr, s: sp.Expr, eps: sp.Expr) -> sp.Expr:
    """The statement's two-point value S²/(S/d + ε)."""
    return s**2 / (s / d + eps)


def _norm_d(norm: str, x: Callable[[sp.Expr], sp.Expr], g: sp.IndexedBase, b: sp.IndexedBase, i: sp.Expr,
            d: sp.Expr, eps: sp.Expr) -> sp.Expr:
    """Component i of the norm under test (RMSNorm for the theorem, LayerNorm for the control)."""
    if norm == "rms":
        return S.rms_norm_d(x, lambda q: g[q], i, d, eps=eps)
    return S.layer_norm_d(x, lambda q: g[q], lambda q: b[q], i, d, eps=eps)


def _two_point_symbolic(der: Derivation, norm: str, closed: Closed) -> None:
    """vᵀCv for the two-point distribution, the centred covariance formed for symbolic d."""
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    g, b, vb = sp.IndexedBase("gamma"), sp.IndexedBase("beta"), sp.IndexedBase("v")
    eps = sp.Symbol("epsilon", nonnegative=True)
    # The theorem: any v. The control: v = γ⁻¹, the LayerNorm dead direction.
    v = (lambda q: vb[q]) if norm == "rms" else (lambda q: 1 / g[q])
    points = [lambda q: g[q] * v(q), lambda q: -g[q] * v(q)]  # x ∈ {γ⊙v, −γ⊙v}, probability ½ each
    y = [lambda q, x=x: _norm_d(norm, x, g, b, q, d, eps) for x in points]
    ybar = [lambda q: (y[0](q) + y[1](q)) / 2]
    cov = sp.Add(*[(yk(i) - ybar[0](i)) * (yk(j) - ybar[0](j)) for yk in y]) / 2  # C_ij, centred, 2 points
    quad = sp.Sum(v(i) * sp.Sum(cov * v(j), (j, 1, d)), (i, 1, d))
    ssum = sp.Sum(g[i] ** 2 * v(i) ** 2, (i, 1, d))
    claimed = closed(d, ssum, eps)
    der.zero(
        "two-point covariance, symbolic d",
        "Inputs x₁ = γ⊙v, x₂ = −γ⊙v (probability ½ each); outputs yₖ from the one RMSNorm definition with "
        "the exact normaliser √(mean(xₖ²) + ε); ȳ = (y₁ + y₂)/2; the centred covariance "
        "C_ij = ½Σₖ(y_{k,i} − ȳᵢ)(y_{k,j} − ȳⱼ); then vᵀCv = Σᵢ Σⱼ vᵢC_ij vⱼ minus the claimed value "
        "simplifies to 0 for symbolic d (S = Σᵢγᵢ²vᵢ²)"
        + ("." if norm == "rms" else " — here LayerNorm along v = γ⁻¹ (the control)."),
        quad - claimed,
        latex=r"\sum_{i=1}^d\sum_{j=1}^d v_i\,\tfrac12\sum_{k=1}^2 (y_{k,i}-\bar y_i)(y_{k,j}-\bar y_j)\,v_j - "
        + sp.latex(claimed)
        + " = 0",
    )


def _two_point_concrete(d: int, closed: Closed) -> sp.Expr:
    """vᵀCv − claimed value from the full 2-sample covariance matrix; all entries symbolic."""
    eps = sp.Symbol("epsilon", nonnegative=True)
    g, v = S.vec("gamma", d), S.vec("v", d)
    x1 = [gi * vi for gi, vi in zip(g, v, strict=True)]
    ys = [S.rms_norm(x1, g, eps), S.rms_norm([-a for a in x1], g, eps)]
    s = sp.Add(*[(gi * vi) ** 2 for gi, vi in zip(g, v, strict=True)])
    c = S.empirical_cov(ys)
    vm = sp.Matrix(v)
    return (vm.T * c * vm)[0, 0] - closed(sp.Integer(d), s, eps)


COVERAGE = (
    "two-point value proved for symbolic d (centred covariance formed, exact normaliser) and checked from the "
    "full matrix for d = 2..6; positivity proved; C = diag(γ)² for Gaussian input rests on a cited symmetry "
    "lemma (constant proved), full rank d = 2..12"
)


def _derive(norm: str, closed: Closed = _true_closed, v_nonzero: bool = True) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        COVERAGE,
        control=None if norm == "rms" else "LayerNorm along v = γ⁻¹ claimed to have vᵀCv = S²/(S/d + ε) > 0",
    )
    _two_point_symbolic(der, norm, closed)
    der.family(
        "two-point covariance, concrete d",
        "From the full 2-sample covariance matrix: vᵀCv = claimed value for d = 2..6 (γ, v, ε symbolic).",
        r"v^\top C v = \frac{S^2}{S/d + \varepsilon},\quad S = \sum_i \gamma_i^2 v_i^2",
        [(f"d={dd}", lambda dd=dd: _two_point_concrete(dd, closed)) for dd in range(2, 7)],
    )
    d = sp.Symbol("d", integer=True, positive=True)
    eps = sp.Symbol("epsilon", nonnegative=True)
    # S = (γ_j v_j)² + Σ_{i≠j}(γᵢvᵢ)² for an index j with v_j ≠ 0: the first term is > 0 (γ_j ≠ 0, v_j ≠ 0),
    # the rest a sum of squares ≥ 0. Without v ≠ 0 the first term is only ≥ 0.
    p = sp.Symbol("p", positive=True) if v_nonzero else sp.Symbol("p", nonnegative=True)
    rest = sp.Symbol("R", nonnegative=True)
    der.cite(
        "splitting S",
        "S = Σᵢ(γᵢvᵢ)² = p + R with p = (γ_jv_j)² for an index j where v_j ≠ 0 (p > 0 since γ_j ≠ 0; "
        "p ≥ 0 only, if v ≠ 0 is dropped) and R = Σ_{i≠j}(γᵢvᵢ)² ≥ 0 (a sum of squares).",
        r"S = p + R,\ p > 0,\ R \ge 0",
    )
    der.positive(
        "positivity",
        "The claimed value at S = p + R with p > 0, R ≥ 0, ε ≥ 0, d ≥ 1 is positive (SymPy decides the sign from "
        "the symbols' assumptions).",
        closed(d, p + rest, eps),
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
        "equivariant, so E[(x/rms)(x/rms)ᵀ] = aI (Schur's lemma). Not machine-checked.",
        r"\mathbb{E}\big[\tfrac{xx^\top}{\|x\|^2/d}\big] = aI",
    )
    der.zero(
        "constant",
        "Trace: ‖x‖²/(‖x‖²/d) = d = a·d; the claimed a = 1 satisfies it for symbolic d (and it is the only "
        "solution since d ≠ 0), so C = diag(γ)·I·diag(γ) = diag(γ)².",
        1 * d - d,
        latex=r"a\,d - d = 0,\quad a = 1",
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
    return der.result()


def prove() -> ProofResult:
    """Derive T5."""
    return _derive("rms")


CONTROLS = {"layernorm-along-inverse-scale": lambda: _derive("layer")}

MUTANTS = [
    Mutant(
        "constant-doubled",
        "wrong constant",
        "vᵀCv = 2S²/(S/d + ε)",
        lambda: _derive("rms", lambda d, s, e: 2 * s**2 / (s / d + e)),
    ),
    Mutant(
        "false-above-d6",
        "false above the concrete range",
        "vᵀCv = S²/(S/d + ε) + Π_{k=2}^{6}(d − k)·S (right for d = 2..6, wrong for every d ≥ 7)",
        lambda: _derive("rms", lambda d, s, e: s**2 / (s / d + e) + S.vanishing_on(d, 2, 6) * s),
    ),
    Mutant(
        "v-nonzero-dropped",
        "dropped hypothesis",
        "vᵀCv > 0 for every v (the hypothesis v ≠ 0 dropped)",
        lambda: _derive("rms", v_nonzero=False),
    ),
]


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
