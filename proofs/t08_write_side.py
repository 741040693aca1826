"""T8 write side: LayerNorm ignores constant shifts, so writing along 𝟙 is dead.

Statement. LN(x + t𝟙) = LN(x) for every x ∈ ℝᵈ, t ∈ ℝ, ε ≥ 0. Hence a weight W_out writing
into a residual stream that is read only through LayerNorms has dead directions
δW_out = 𝟙wᵀ: (W_out + 𝟙wᵀ)a = W_out a + (wᵀa)𝟙, a per-token constant shift.

Machine-checked: the centred vector and the variance are shift invariant for symbolic d;
LN(x + t𝟙) − LN(x) = 0 for d = 2..10 with x, γ, β, ε, t symbolic (exact normaliser); the
write-side factorisation for d = 2..6.
Negative control: RMSNorm(x + t𝟙) = RMSNorm(x) (refuted).
"""

from __future__ import annotations

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, ProofResult

THEOREM = "T8"
TITLE = "Write side: LN(x + t𝟙) = LN(x)"
STATEMENT = (
    "LN(x + t𝟙) = LN(x) for every t; so δW_out = 𝟙wᵀ is dead for a stream read only through LayerNorms."
)
HYPOTHESES = [
    "d ≥ 2",
    "ε ≥ 0 and σ² + ε > 0",
    "the residual stream is read only through LayerNorms (write side)",
]


def _derive(norm: str) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "symbolic d; d = 2..10 (x, γ, β, ε, t symbolic)",
        control=None if norm == "layer" else "RMSNorm in place of LayerNorm",
    )
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    x = sp.IndexedBase("x")
    t = sp.Symbol("t", real=True)
    if norm == "layer":
        mu = sp.Sum(x[j], (j, 1, d)) / d
        mu_t = sp.Sum(x[j] + t, (j, 1, d)) / d
        der.zero(
            "centred vector, symbolic d",
            "(xᵢ + t) − mean(x + t𝟙) = xᵢ − μ.",
            (x[i] + t - mu_t) - (x[i] - mu),
            latex=r"(x_i + t) - \tfrac1d\sum_j (x_j + t) - \big(x_i - \tfrac1d\sum_j x_j\big) = 0",
        )
        der.zero(
            "variance, symbolic d",
            "σ²(x + t𝟙) = σ²(x), hence z(x + t𝟙) = z(x) for every ε.",
            sp.Sum((x[j] + t - mu_t) ** 2, (j, 1, d)) / d - sp.Sum((x[j] - mu) ** 2, (j, 1, d)) / d,
            latex=r"\tfrac1d\sum_j (x_j + t - \mu - t)^2 - \tfrac1d\sum_j (x_j-\mu)^2 = 0",
        )
    else:
        der.zero(
            "mean square, symbolic d",
            "Claim under test: mean((x + t𝟙)²) = mean(x²).",
            sp.Sum((x[j] + t) ** 2, (j, 1, d)) / d - sp.Sum(x[j] ** 2, (j, 1, d)) / d,
            latex=r"\tfrac1d\sum_j (x_j+t)^2 - \tfrac1d\sum_j x_j^2 = 0",
        )

    def shifted(dd: int) -> sp.Matrix:
        xs, g, b = S.vec("x", dd), S.vec("gamma", dd), S.vec("beta", dd)
        eps = sp.Symbol("epsilon", nonnegative=True)
        xt = [xi + t for xi in xs]
        if norm == "layer":
            return sp.Matrix(S.layer_norm(xt, g, b, eps)) - sp.Matrix(S.layer_norm(xs, g, b, eps))
        return sp.Matrix(S.rms_norm(xt, g, eps)) - sp.Matrix(S.rms_norm(xs, g, eps))

    der.family(
        "shift invariance, concrete d",
        "N(x + t𝟙) − N(x) = 0 for d = 2..10 with every entry symbolic and the exact normaliser.",
        r"\mathrm{N}(x + t\mathbb 1) - \mathrm{N}(x) = 0",
        [(f"d={dd}", lambda dd=dd: shifted(dd)) for dd in range(2, 11)],
    )
    if norm == "layer":

        def write(dd: int) -> sp.Matrix:
            k = 3
            w_out = sp.Matrix(dd, k, lambda r, q: sp.Symbol(f"W_{r + 1}{q + 1}", real=True))
            w = sp.Matrix(sp.symbols(f"w_1:{k + 1}", real=True))
            a = sp.Matrix(sp.symbols(f"a_1:{k + 1}", real=True))
            return (w_out + sp.ones(dd, 1) * w.T) * a - w_out * a - (w.T * a)[0, 0] * sp.ones(dd, 1)

        der.family(
            "write-side factorisation",
            "(W_out + 𝟙wᵀ)a = W_out a + (wᵀa)𝟙: a shift by t = wᵀa.",
            r"(W_{\rm out} + \mathbb 1 w^\top)a - W_{\rm out}a - (w^\top a)\mathbb 1 = 0",
            [(f"d={dd}", lambda dd=dd: write(dd)) for dd in range(2, 7)],
        )
    return der.result()


def prove() -> ProofResult:
    """Derive T8."""
    return _derive("layer")


CONTROLS = {"rmsnorm": lambda: _derive("rms")}
