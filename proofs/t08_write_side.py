"""T8 write side: LayerNorm ignores constant shifts, so writing along 𝟙 is dead.

Statement. LN(x + t𝟙) = LN(x) for every x ∈ ℝᵈ, t ∈ ℝ, ε ≥ 0. Hence a weight W_out writing
into a residual stream that is read only through LayerNorms has dead directions
δW_out = 𝟙wᵀ: (W_out + 𝟙wᵀ)a = W_out a + (wᵀa)𝟙, a per-token constant shift.

Machine-checked: the full LayerNorm output (one definition, exact normaliser) is shift invariant
for symbolic d;
LN(x + t𝟙) − LN(x) = 0 for d = 2..10 with x, γ, β, ε, t symbolic (exact normaliser); the
write-side factorisation for d = 2..6.
Negative control: RMSNorm(x + t𝟙) = RMSNorm(x) (refuted).
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, Mutant, ProofResult

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


Shift = Callable[[sp.Expr], sp.Expr]  # d -> c in the claim N(x + t𝟙)ᵢ = N(x)ᵢ + c·t (c = 0 in the theorem)


def _no_shift(d: sp.Expr) -> sp.Expr:
    return sp.Integer(0)


COVERAGE = (
    "proved for symbolic d (the full LayerNorm output with its exact normaliser √(σ²+ε)); d = 2..10 with x, γ, β, "
    "ε, t symbolic; write-side factorisation d = 2..6"
)


def _derive(norm: str, shift: Shift = _no_shift) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        COVERAGE,
        control=None if norm == "layer" else "RMSNorm in place of LayerNorm",
    )
    d = sp.Symbol("d", integer=True, positive=True)
    i = sp.Symbol("i", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    t = sp.Symbol("t", real=True)
    eps = sp.Symbol("epsilon", nonnegative=True)

    def out(entry: Callable[[sp.Expr], sp.Expr]) -> sp.Expr:
        """Component i of the norm under test, from the one definition of each norm, exact normaliser."""
        if norm == "layer":
            return S.layer_norm_d(entry, lambda q: g[q], lambda q: b[q], i, d, eps=eps)
        return S.rms_norm_d(entry, lambda q: g[q], i, d, eps=eps) + b[i]

    der.zero(
        "shift invariance, symbolic d",
        "N(x + t𝟙)ᵢ − N(x)ᵢ − c·t = 0 for symbolic d with the exact normaliser: the mean absorbs t, so the centred "
        "vector and the variance (hence √(σ² + ε)) are unchanged; claimed c = " + str(shift(d)) + ".",
        out(lambda q: x[q] + t) - out(lambda q: x[q]) - shift(d) * t,
        latex=r"\mathrm{N}(x + t\mathbb 1)_i - \mathrm{N}(x)_i - " + sp.latex(shift(d)) + r"\,t = 0",
    )

    def shifted(dd: int) -> sp.Matrix:
        xs, g, b = S.vec("x", dd), S.vec("gamma", dd), S.vec("beta", dd)
        eps = sp.Symbol("epsilon", nonnegative=True)
        xt = [xi + t for xi in xs]
        c = shift(sp.Integer(dd)) * t * sp.ones(dd, 1)
        if norm == "layer":
            return sp.Matrix(S.layer_norm(xt, g, b, eps)) - sp.Matrix(S.layer_norm(xs, g, b, eps)) - c
        return sp.Matrix(S.rms_norm(xt, g, eps)) - sp.Matrix(S.rms_norm(xs, g, eps)) - c

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

MUTANTS = [
    Mutant(
        "shift-passes-through",
        "wrong constant",
        "LN(x + t𝟙) = LN(x) + t𝟙 (the shift claimed to pass through)",
        lambda: _derive("layer", lambda d: sp.Integer(1)),
    ),
    Mutant(
        "false-above-d10",
        "false above the concrete range",
        "LN(x + t𝟙) = LN(x) + Π_{k=2}^{10}(d − k)·t𝟙 (right for d = 2..10 only)",
        lambda: _derive("layer", lambda d: S.vanishing_on(d, 2, 10)),
    ),
    Mutant(
        "centring-dropped",
        "dropped hypothesis",
        "N(x + t𝟙) = N(x) for N = RMSNorm (the centring hypothesis dropped)",
        lambda: _derive("rms"),
    ),
]
