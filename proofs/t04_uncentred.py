"""T4 centring matters: the uncentred second moment pairs γ⁻¹ with the mean, not with 0.

Statement. Under the hypotheses of T1, for every finite sample (hence every distribution),
M = (1/m)Σ_k y_k y_kᵀ satisfies M γ⁻¹ = ⟨γ⁻¹, β⟩·ȳ, i.e. E[yyᵀ]v = ⟨γ⁻¹,β⟩/‖γ⁻¹‖·E[y]. So
γ⁻¹ is a kernel vector of the uncentred moment only when ⟨γ⁻¹, β⟩ = 0 or E[y] = 0.

Machine-checked: ⟨y, γ⁻¹⟩ = ⟨γ⁻¹, β⟩ for symbolic d; the identity componentwise for symbolic d
and m; the identity for d = 2..5, m = 2..3 with symbolic entries; the corollary M γ⁻¹ = 0 when β
is constrained to ⟨γ⁻¹, β⟩ = 0.
Negative control: the claim M γ⁻¹ = 0 for unconstrained β (refuted by a witness).
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, Mutant, ProofResult

THEOREM = "T4"
TITLE = "Uncentred moment: E[yyᵀ]γ⁻¹ = ⟨γ⁻¹,β⟩E[y]"
STATEMENT = (
    "The uncentred moment M = E[yyᵀ] of LayerNorm outputs satisfies M γ⁻¹ = ⟨γ⁻¹, β⟩·E[y]; it "
    "vanishes only when ⟨γ⁻¹, β⟩ = 0 or E[y] = 0."
)
HYPOTHESES = ["d ≥ 2", "γᵢ ≠ 0 for every i", "ε ≥ 0"]
SIZES = [(d, m) for d in range(2, 6) for m in (2, 3)]


def _moment_times_inverse(d: int, m: int, *, orthogonal_beta: bool) -> tuple[sp.Matrix, sp.Matrix, sp.Expr]:
    """(M γ⁻¹, ȳ, ⟨γ⁻¹, β⟩) for m symbolic samples (normalisers opaque symbols s_k)."""
    g, b = S.vec("gamma", d), S.vec("beta", d)
    if orthogonal_beta:  # impose ⟨γ⁻¹, β⟩ = 0 by solving for β_d
        b[-1] = -g[-1] * sp.Add(*[bi / gi for bi, gi in zip(b[:-1], g[:-1], strict=True)])
    ys = [
        S.layer_norm(S.vec(f"x{k + 1}", d), g, b, sp.Integer(0), sp.Symbol(f"s_{k + 1}", positive=True))
        for k in range(m)
    ]
    mom = sp.zeros(d, d)
    for y in ys:
        mom += sp.Matrix(y) * sp.Matrix(y).T / m
    return mom * sp.Matrix(S.inverse(g)), sp.Matrix(S.sample_mean(ys)), S.dot(S.inverse(g), b)


Factor = Callable[[sp.Expr], sp.Expr]  # d -> κ in the claim M γ⁻¹ = κ·⟨γ⁻¹, β⟩·ȳ (κ = 1 in the theorem)


def _one(d: sp.Expr) -> sp.Expr:
    return sp.Integer(1)


COVERAGE = (
    "proved for symbolic d and m (opaque positive per-sample scale); d = 2..5 × m = 2..3 with all entries "
    "symbolic; vanishing when ⟨γ⁻¹, β⟩ = 0 for the same sizes"
)


def _derive(claim: str, factor: Factor = _one) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        COVERAGE,
        control=None if claim == "identity" else "uncentred kernel claim M γ⁻¹ = 0 with ⟨γ⁻¹,β⟩ ≠ 0",
    )
    kappa = factor if claim == "identity" else (lambda d: sp.Integer(0))
    d = sp.Symbol("d", integer=True, positive=True)
    m = sp.Symbol("m", integer=True, positive=True)
    i, j, k = sp.symbols("i j k", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    s = sp.IndexedBase("s", positive=True)

    def y(kk: sp.Expr, ii: sp.Expr) -> sp.Expr:
        return S.layer_norm_d(lambda q: x[kk, q], lambda q: g[q], lambda q: b[q], ii, d, scale=s[kk])

    der.zero(
        "pairing with γ⁻¹, symbolic d",
        "For every output, ⟨y, γ⁻¹⟩ − ⟨γ⁻¹, β⟩ = 0 (T1; y from the one LayerNorm definition).",
        sp.Sum(y(k, i) / g[i], (i, 1, d)) - sp.Sum(b[i] / g[i], (i, 1, d)),
        latex=r"\sum_{i=1}^d \frac{y_i}{\gamma_i} - \sum_{i=1}^d\frac{\beta_i}{\gamma_i} = 0",
    )
    c = sp.Sum(b[j] / g[j], (j, 1, d))
    component = (
        sp.Sum(y(k, i) * sp.Sum(y(k, j) / g[j], (j, 1, d)), (k, 1, m)) / m
        - kappa(d) * c * sp.Sum(y(k, i), (k, 1, m)) / m
    )
    der.zero(
        "moment identity, symbolic d and m",
        "Component i of M γ⁻¹ − κ⟨γ⁻¹, β⟩ȳ with M = (1/m)Σ_k y_k y_kᵀ and every output written out "
        "(per-sample opaque scale s_k, which covers √(σ_k² + ε) for every ε ≥ 0): "
        "(1/m)Σ_k y_{k,i}⟨y_k, γ⁻¹⟩ − κ⟨γ⁻¹, β⟩(1/m)Σ_k y_{k,i} = 0 for symbolic d and m, claimed κ = "
        f"{kappa(d)}.",
        component,
        latex=r"\frac1m\sum_{k=1}^m y_{k,i}\sum_{j=1}^d\frac{y_{k,j}}{\gamma_j} - "
        + sp.latex(kappa(d))
        + r"\,\langle\gamma^{-1},\beta\rangle\,\frac1m\sum_{k=1}^m y_{k,i} = 0",
    )

    def identity(dd: int, mm: int) -> sp.Matrix:
        mg, ybar, cc = _moment_times_inverse(dd, mm, orthogonal_beta=False)
        return mg - kappa(sp.Integer(dd)) * cc * ybar

    der.family(
        "moment identity, concrete d" if claim == "identity" else "uncentred kernel, concrete d",
        "M γ⁻¹ − κ⟨γ⁻¹, β⟩ ȳ = 0 for every listed (d, m) (all entries symbolic)."
        if claim == "identity"
        else "Claim under test: M γ⁻¹ = 0 with β unconstrained.",
        r"M\gamma^{-1} - \kappa\langle\gamma^{-1},\beta\rangle\,\bar y = 0"
        if claim == "identity"
        else r"M\gamma^{-1} = 0",
        [(f"d={dd}, m={mm}", lambda dd=dd, mm=mm: identity(dd, mm)) for dd, mm in SIZES],
    )
    if claim == "identity":
        der.family(
            "vanishing when ⟨γ⁻¹,β⟩ = 0",
            "With β_d := −γ_d Σ_{i<d} βᵢ/γᵢ (so ⟨γ⁻¹, β⟩ = 0), M γ⁻¹ = 0.",
            r"\langle\gamma^{-1},\beta\rangle = 0 \Rightarrow M\gamma^{-1} = 0",
            [
                (
                    f"d={dd}, m={mm}",
                    lambda dd=dd, mm=mm: _moment_times_inverse(dd, mm, orthogonal_beta=True)[0],
                )
                for dd, mm in SIZES[:6]
            ],
        )
        der.note("c·ȳ = 0 for a scalar c and vector ȳ iff c = 0 or ȳ = 0: the 'only when' clause.")
    return der.result()


def prove() -> ProofResult:
    """Derive T4."""
    return _derive("identity")


CONTROLS = {"uncentred-kernel": lambda: _derive("kernel")}

MUTANTS = [
    Mutant(
        "constant-doubled",
        "wrong constant",
        "M γ⁻¹ = 2⟨γ⁻¹, β⟩·ȳ",
        lambda: _derive("identity", lambda d: sp.Integer(2)),
    ),
    Mutant(
        "false-above-d5",
        "false above the concrete range",
        "M γ⁻¹ = (1 + Π_{k=2}^{5}(d − k))·⟨γ⁻¹, β⟩·ȳ (true for d = 2..5 only, wrong for every d ≥ 6)",
        lambda: _derive("identity", lambda d: 1 + S.vanishing_on(d, 2, 5)),
    ),
    Mutant(
        "orthogonality-dropped",
        "dropped hypothesis",
        "M γ⁻¹ = 0 without the hypothesis ⟨γ⁻¹, β⟩ = 0",
        lambda: _derive("identity", lambda d: sp.Integer(0)),
    ),
]
