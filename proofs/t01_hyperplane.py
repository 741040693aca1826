"""T1 hyperplane: every LayerNorm output lies on the affine hyperplane ⟨γ⁻¹, y − β⟩ = 0.

Statement. Let d ≥ 2, x ∈ ℝᵈ, ε ≥ 0, γ ∈ ℝᵈ with every γᵢ ≠ 0, β ∈ ℝᵈ, and
y = γ ⊙ (x − μ𝟙)/√(σ² + ε) + β. Then ⟨γ⁻¹, y − β⟩ = 0.

Proved for symbolic d (finite sums Σ_{i=1}^{d}, the normaliser an arbitrary positive scalar
s, which covers √(σ² + ε) for every ε ≥ 0 with σ² + ε > 0) and, as a cross-check, for every
concrete d = 2..12 with fully symbolic x, γ, β, ε.
Negative controls: RMSNorm in place of LayerNorm; the direction 𝟙 in place of γ⁻¹.
"""

from __future__ import annotations

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, ProofResult

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


def _symbolic_d(der: Derivation, variant: str) -> None:
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    s = sp.Symbol("s", positive=True)  # √(σ²+ε); any positive scalar
    mu = sp.Sum(x[j], (j, 1, d)) / d
    if variant == "rmsnorm":
        y = g[i] * x[i] / s + b[i]
    else:
        y = g[i] * (x[i] - mu) / s + b[i]
    w = 1 if variant == "ones" else 1 / g[i]
    if variant != "ones":
        der.equal(
            "termwise",
            "Each term of the pairing is the standardised coordinate: γᵢ⁻¹(yᵢ − βᵢ) = zᵢ.",
            w * (y - b[i]),
            (x[i] - mu) / s,
        )
    der.zero(
        "pairing, symbolic d",
        "Summing over i = 1..d: Σᵢ wᵢ (yᵢ − βᵢ) = (Σᵢ xᵢ − dμ)/s = 0 for symbolic d, where w is the "
        "claimed direction.",
        sp.Sum(w * (y - b[i]), (i, 1, d)),
        latex=rf"\sum_{{i=1}}^{{d}} {sp.latex(w)}\left(y_i - \beta_i\right) = "
        + sp.latex(sp.Sum(w * (y - b[i]), (i, 1, d)))
        + " = 0",
    )


def _concrete(der: Derivation, variant: str) -> None:
    eps = sp.Symbol("epsilon", nonnegative=True)

    def build(d: int) -> sp.Expr:
        x, g, b = S.vec("x", d), S.vec("gamma", d), S.vec("beta", d)
        y = S.rms_norm(x, g, eps) if variant == "rmsnorm" else S.layer_norm(x, g, b, eps)
        if variant == "rmsnorm":
            y = [yi + bi for yi, bi in zip(y, b, strict=True)]
        w = [sp.Integer(1)] * d if variant == "ones" else S.inverse(g)
        return S.dot(w, S.sub(y, b))

    der.family(
        "pairing, concrete d",
        f"For every d = {D_CONCRETE.start}..{D_CONCRETE.stop - 1}, with x, γ, β, ε all symbolic, the "
        "pairing ⟨w, y − β⟩ with the full LayerNorm expression simplifies exactly to 0.",
        r"\langle w, y(x) - \beta\rangle = 0,\quad w = "
        + (r"\mathbb{1}" if variant == "ones" else r"\gamma^{-1}"),
        [(f"d={d}", lambda d=d: build(d)) for d in D_CONCRETE],
    )


def _derive(variant: str) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "symbolic d; concrete d = 2..12 (x, γ, β, ε symbolic)",
        control=None if variant == "layernorm" else VARIANTS[variant],
    )
    _symbolic_d(der, variant)
    _concrete(der, variant)
    der.note(
        "The symbolic-d step treats the normaliser √(σ²+ε) as an arbitrary positive scalar s: the "
        "identity holds for every such s, hence for every ε ≥ 0. The concrete-d steps use the exact "
        "expression including ε."
    )
    return der.result()


def prove() -> ProofResult:
    """Derive T1 for LayerNorm."""
    return _derive("layernorm")


CONTROLS = {
    "rmsnorm": lambda: _derive("rmsnorm"),
    "ones-direction": lambda: _derive("ones"),
}
