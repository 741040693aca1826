"""T1 hyperplane: every LayerNorm output lies on the affine hyperplane ⟨γ⁻¹, y − β⟩ = 0.

Statement. Let d ≥ 2, x ∈ ℝᵈ, ε ≥ 0, γ ∈ ℝᵈ with every γᵢ ≠ 0, β ∈ ℝᵈ, and
y = γ ⊙ (x − μ𝟙)/√(σ² + ε) + β. Then ⟨γ⁻¹, y − β⟩ = 0.

Proved for symbolic d (finite sums Σ_{i=1}^{d}, the normaliser an arbitrary positive scalar
s, which covers √(σ² + ε) for every ε ≥ 0 with σ² + ε > 0) and, as a cross-check, for every
concrete d = 2..12 with fully symbolic x, γ, β, ε.
Negative controls: RMSNorm in place of LayerNorm; the direction 𝟙 in place of γ⁻¹.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, Mutant, ProofResult

THEOREM = "T1"
TITLE = "Hyperplane: ⟨γ⁻¹, y − β⟩ = 0"
STATEMENT = (
    "For every x ∈ ℝᵈ and every ε ≥ 0 the LayerNorm output y = γ⊙(x − μ𝟙)/√(σ²+ε) + β "
    "satisfies ⟨γ⁻¹, y − β⟩ = 0."
)
HYPOTHESES = ["d ≥ 2", "γᵢ ≠ 0 for every i (so γ⁻¹ exists)", "ε ≥ 0 and σ² + ε > 0"]
D_CONCRETE = range(2, 13)

# Variants: the theorem, and the false variants its negative controls run through the same code.
VARIANTS = {
    "layernorm": "LayerNorm, direction γ⁻¹",
    "rmsnorm": "RMSNorm (no centring), direction γ⁻¹",
    "ones": "LayerNorm with non-constant γ, direction 𝟙 instead of γ⁻¹",
}


def _zero_rhs(d: sp.Expr, beta_over_gamma: sp.Expr) -> sp.Expr:
    """The statement's right-hand side: ⟨γ⁻¹, y − β⟩ = 0."""
    return sp.Integer(0)


Rhs = Callable[[sp.Expr, sp.Expr], sp.Expr]  # (d, ⟨γ⁻¹, β⟩) -> claimed value of ⟨w, y − β⟩


def _symbolic_d(der: Derivation, variant: str, rhs: Rhs) -> None:
    d = sp.Symbol("d", integer=True, positive=True)
    i = sp.Symbol("i", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    s = sp.Symbol("s", positive=True)  # √(σ²+ε); any positive scalar
    if variant == "rmsnorm":
        y = S.rms_norm_d(lambda j: x[j], lambda j: g[j], i, d, scale=s) + b[i]
    else:
        y = S.layer_norm_d(lambda j: x[j], lambda j: g[j], lambda j: b[j], i, d, scale=s)
    w = 1 if variant == "ones" else 1 / g[i]
    claimed = rhs(d, sp.Sum(b[i] / g[i], (i, 1, d)))
    der.zero(
        "pairing, symbolic d",
        "With y written out from the one LayerNorm definition (symbolic.layer_norm_d), Σᵢ wᵢ (yᵢ − βᵢ) minus the "
        "claimed value simplifies to 0 for symbolic d (w the claimed direction): the γᵢ cancel and Σᵢ(xᵢ − μ) = 0.",
        sp.Sum(w * (y - b[i]), (i, 1, d)) - claimed,
        latex=rf"\sum_{{i=1}}^{{d}} {sp.latex(w)}\left(y_i - \beta_i\right) - ({sp.latex(claimed)}) = "
        + sp.latex(sp.Sum(w * (y - b[i]), (i, 1, d)) - claimed)
        + " = 0",
    )


def _concrete(der: Derivation, variant: str, rhs: Rhs) -> None:
    eps = sp.Symbol("epsilon", nonnegative=True)

    def build(d: int) -> sp.Expr:
        x, g, b = S.vec("x", d), S.vec("gamma", d), S.vec("beta", d)
        if variant == "rmsnorm":
            y = [yi + bi for yi, bi in zip(S.rms_norm(x, g, eps), b, strict=True)]
        else:
            y = S.layer_norm(x, g, b, eps)
        w = [sp.Integer(1)] * d if variant == "ones" else S.inverse(g)
        return S.dot(w, S.sub(y, b)) - rhs(sp.Integer(d), S.dot(S.inverse(g), b))

    der.family(
        "pairing, concrete d",
        f"For every d = {D_CONCRETE.start}..{D_CONCRETE.stop - 1}, with x, γ, β, ε all symbolic, the "
        "pairing ⟨w, y − β⟩ with the full LayerNorm expression (exact normaliser) minus the claimed value "
        "simplifies exactly to 0.",
        r"\langle w, y(x) - \beta\rangle = \text{claimed value},\quad w = "
        + (r"\mathbb{1}" if variant == "ones" else r"\gamma^{-1}"),
        [(f"d={d}", lambda d=d: build(d)) for d in D_CONCRETE],
    )


def _derive(variant: str, rhs: Rhs = _zero_rhs) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        COVERAGE,
        control=None if variant == "layernorm" else VARIANTS[variant],
    )
    _symbolic_d(der, variant, rhs)
    _concrete(der, variant, rhs)
    der.note(
        "The symbolic-d step treats the normaliser √(σ²+ε) as an arbitrary positive scalar s: the "
        "identity holds for every such s, hence for every ε ≥ 0. The concrete-d steps use the exact "
        "expression including ε."
    )
    return der.result()


COVERAGE = "proved for symbolic d (opaque positive normaliser); concrete d = 2..12 with x, γ, β, ε symbolic"


def prove() -> ProofResult:
    """Derive T1 for LayerNorm."""
    return _derive("layernorm")


CONTROLS = {
    "rmsnorm": lambda: _derive("rmsnorm"),
    "ones-direction": lambda: _derive("ones"),
}

MUTANTS = [
    Mutant(
        "wrong-constant",
        "wrong constant",
        "⟨γ⁻¹, y − β⟩ = ⟨γ⁻¹, β⟩ (i.e. ⟨γ⁻¹, y⟩ = 2⟨γ⁻¹, β⟩)",
        lambda: _derive("layernorm", lambda d, c: c),
    ),
    Mutant(
        "false-above-d12",
        "false above the concrete range",
        "⟨γ⁻¹, y − β⟩ = Π_{k=2}^{12}(d − k)·⟨γ⁻¹, β⟩ (true for d = 2..12 only)",
        lambda: _derive("layernorm", lambda d, c: S.vanishing_on(d, 2, 12) * c),
    ),
    Mutant(
        "centring-dropped",
        "dropped hypothesis",
        "⟨γ⁻¹, y − β⟩ = 0 for y = γ⊙x/√(mean x² + ε) + β (the centring hypothesis dropped)",
        lambda: _derive("rmsnorm"),
    ),
]
