"""T2 kernel: γ⁻¹ is an exact kernel vector of the centred covariance of LayerNorm outputs.

Statement. Under the hypotheses of T1, for every finite sample x₁..x_m (and hence, by
linearity of expectation, for every input distribution with finite second moments) the
centred covariance C = (1/m) Σ_k (y_k − ȳ)(y_k − ȳ)ᵀ satisfies C γ⁻¹ = 0, so C v = 0 for
v = γ⁻¹/‖γ⁻¹‖.

What is machine-checked. (a) For symbolic d: ⟨γ⁻¹, y_k − β⟩ = 0 for each sample (T1), and for
symbolic d and m: ⟨γ⁻¹, y_k − ȳ⟩ = a_k − (1/m)Σ_l a_l, so ⟨γ⁻¹, y_k − ȳ⟩ = 0.
(b) For every concrete d = 2..12 and m = 2..4 with
all entries symbolic: ⟨γ⁻¹, y_k − ȳ⟩ simplifies to 0 for every k (the normaliser of
each sample an independent positive symbol, which covers every ε). (c) The factorisation
C γ⁻¹ = (1/m) Σ_k (y_k − ȳ)·⟨y_k − ȳ, γ⁻¹⟩ for generic vectors (d, m concrete), which turns
(b) into C γ⁻¹ = 0. (d) For d ≤ 4, m = 2..3 the full product C γ⁻¹ is expanded directly.
Negative controls: RMSNorm; the uncentred second moment (1/m)Σ y_k y_kᵀ with ⟨γ⁻¹, β⟩ ≠ 0.
"""

from __future__ import annotations

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, ProofResult

THEOREM = "T2"
TITLE = "Kernel: C γ⁻¹ = 0"
STATEMENT = (
    "For every finite sample (hence every input distribution) the centred covariance C of "
    "LayerNorm outputs satisfies C γ⁻¹ = 0."
)
HYPOTHESES = ["d ≥ 2", "γᵢ ≠ 0 for every i", "ε ≥ 0", "C is the centred covariance (1/m)Σ(y_k−ȳ)(y_k−ȳ)ᵀ"]
D_CONCRETE = range(2, 13)
M_CONCRETE = range(2, 5)
VARIANTS = {
    "layernorm": None,
    "rmsnorm": "RMSNorm in place of LayerNorm",
    "uncentred": "uncentred moment (1/m)Σ y yᵀ in place of C, with ⟨γ⁻¹, β⟩ ≠ 0",
}


def _outputs(
    variant: str, d: int, m: int, *, opaque: bool = False
) -> tuple[list[list[sp.Expr]], list[sp.Expr]]:
    """m symbolic samples through the norm; ``opaque`` replaces each normaliser by a symbol s_k."""
    eps = sp.Symbol("epsilon", nonnegative=True)
    g, b = S.vec("gamma", d), S.vec("beta", d)
    ys = []
    for k in range(m):
        x = S.vec(f"x{k + 1}", d)
        scale = sp.Symbol(f"s_{k + 1}", positive=True) if opaque else None
        if variant == "rmsnorm":
            ys.append(S.rms_norm(x, g, eps, scale))
        else:
            ys.append(S.layer_norm(x, g, b, eps, scale))
    return ys, g


def _centre(variant: str, ys: list[list[sp.Expr]]) -> list[list[sp.Expr]]:
    """The vectors whose outer products make the claimed matrix (centred, or not for the control)."""
    if variant == "uncentred":
        return ys
    ybar = S.sample_mean(ys)
    return [S.sub(y, ybar) for y in ys]


def _derive(variant: str) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "symbolic d; concrete d = 2..12 × m = 2..4 samples (all entries symbolic)",
        control=VARIANTS[variant],
    )
    # (a) symbolic d, one sample and the sample mean.
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    s = sp.Symbol("s", positive=True)
    mu = sp.Sum(x[j], (j, 1, d)) / d
    y = g[i] * x[i] / s if variant == "rmsnorm" else g[i] * (x[i] - mu) / s + b[i]
    shift = 0 if variant == "uncentred" else b[i]  # centring removes β; the control keeps it
    der.zero(
        "one sample, symbolic d",
        "a_k := ⟨γ⁻¹, y_k − c⟩ = 0 for every sample, with c = β (the centred case; for the uncentred "
        "control c = 0).",
        sp.Sum((y - shift) / g[i], (i, 1, d)),
        latex=r"a_k = \sum_{i=1}^{d}\frac{y_{k,i} - c_i}{\gamma_i} = 0",
    )
    # The sample mean, for symbolic d AND symbolic m, with generic outputs y_{l,i}.
    m = sp.Symbol("m", integer=True, positive=True)
    k, l = sp.symbols("k l", integer=True)
    ys = sp.IndexedBase("y")
    centre = 0 if variant == "uncentred" else b[i]

    def a(kk: sp.Expr) -> sp.Expr:
        return sp.Sum((ys[kk, i] - centre) / g[i], (i, 1, d))

    ybar = sp.Sum(ys[l, i], (l, 1, m)) / m
    paired = sp.Sum((ys[k, i] - (0 if variant == "uncentred" else ybar)) / g[i], (i, 1, d))
    der.equal(
        "mean of samples, symbolic d and m",
        "For any vectors y_1..y_m: ⟨γ⁻¹, y_k − ȳ⟩ = a_k − (1/m)Σ_l a_l (linearity and interchange of the "
        "finite sums over i and l); with every a_l = 0 (previous step) it is 0.",
        paired,
        a(k) - (0 if variant == "uncentred" else sp.Sum(a(l), (l, 1, m)) / m),
    )

    # (b) concrete d, m: every projection of a centred sample vanishes.
    def projections(dd: int, mm: int) -> sp.Matrix:
        ys, gg = _outputs(variant, dd, mm, opaque=True)
        return sp.Matrix([S.dot(S.inverse(gg), c) for c in _centre(variant, ys)])

    der.family(
        "projections, concrete d and m",
        "For every d = 2..12 and m = 2..4 with symbolic x_k, γ, β: ⟨γ⁻¹, y_k − ȳ⟩ = 0 for every k, "
        "with each sample's normaliser √(σ_k²+ε) an independent positive symbol s_k (so the identity "
        "holds for every ε and is stronger than needed).",
        r"\langle \gamma^{-1}, y_k - \bar y \rangle = 0,\quad k = 1..m",
        [
            (f"d={dd}, m={mm}", lambda dd=dd, mm=mm: projections(dd, mm))
            for dd in D_CONCRETE
            for mm in M_CONCRETE
        ],
    )

    # (c) the factorisation of C γ⁻¹ through those projections, for generic vectors.
    def factorisation(dd: int, mm: int) -> sp.Matrix:
        vs = [S.vec(f"w{k + 1}", dd) for k in range(mm)]
        gg = S.vec("gamma", dd)
        ginv = sp.Matrix(S.inverse(gg))
        c = sp.zeros(dd, dd)
        rhs = sp.zeros(dd, 1)
        for w in vs:
            c += sp.Matrix(w) * sp.Matrix(w).T / mm
            rhs += sp.Matrix(w) * S.dot(w, S.inverse(gg)) / mm
        return c * ginv - rhs

    der.family(
        "factorisation",
        "For generic vectors w_k (here w_k = y_k − ȳ): ((1/m)Σ w_k w_kᵀ) γ⁻¹ = (1/m)Σ w_k ⟨w_k, γ⁻¹⟩; "
        "with every ⟨w_k, γ⁻¹⟩ = 0 this is 0.",
        r"\Big(\tfrac1m\sum_k w_k w_k^\top\Big)\gamma^{-1} "
        r"= \tfrac1m\sum_k w_k\langle w_k,\gamma^{-1}\rangle",
        [
            (f"d={dd}, m={mm}", lambda dd=dd, mm=mm: factorisation(dd, mm))
            for dd in range(2, 7)
            for mm in M_CONCRETE
        ],
    )

    # (d) direct expansion of C γ⁻¹ for small sizes, as an independent cross-check.
    def direct(dd: int, mm: int) -> sp.Matrix:
        ys, gg = _outputs(variant, dd, mm)
        vs = _centre(variant, ys)
        c = sp.zeros(dd, dd)
        for w in vs:
            c += sp.Matrix(w) * sp.Matrix(w).T / mm
        return c * sp.Matrix(S.inverse(gg))

    der.family(
        "direct product",
        "Independent check: the full matrix product C γ⁻¹ with the exact normalisers √(σ_k²+ε), "
        "expanded, is the zero vector for (d, m) ∈ {(2,2), (2,3), (3,2)}.",
        r"C\,\gamma^{-1} = 0",
        [(f"d={dd}, m={mm}", lambda dd=dd, mm=mm: direct(dd, mm)) for dd, mm in ((2, 2), (2, 3), (3, 2))],
    )
    der.note(
        "For an arbitrary input distribution, C = E[(y−Ey)(y−Ey)ᵀ] and ⟨γ⁻¹, y − Ey⟩ = 0 almost surely "
        "by T1 and linearity of expectation, so Cγ⁻¹ = E[(y−Ey)⟨y−Ey, γ⁻¹⟩] = 0; the finite-sample "
        "statement is the empirical-distribution case of the same computation."
    )
    return der.result()


def prove() -> ProofResult:
    """Derive T2 for LayerNorm."""
    return _derive("layernorm")


CONTROLS = {
    "rmsnorm": lambda: _derive("rmsnorm"),
    "uncentred-moment": lambda: _derive("uncentred"),
}
