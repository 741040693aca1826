"""T4 centring matters: the uncentred second moment pairs γ⁻¹ with the mean, not with 0.

Statement. Under the hypotheses of T1, for every finite sample (hence every distribution),
M = (1/m)Σ_k y_k y_kᵀ satisfies M γ⁻¹ = ⟨γ⁻¹, β⟩·ȳ, i.e. E[yyᵀ]v = ⟨γ⁻¹,β⟩/‖γ⁻¹‖·E[y]. So
γ⁻¹ is a kernel vector of the uncentred moment only when ⟨γ⁻¹, β⟩ = 0 or E[y] = 0.

Machine-checked: ⟨y, γ⁻¹⟩ = ⟨γ⁻¹, β⟩ for symbolic d; the identity for d = 2..5, m = 2..3 with
symbolic entries; the corollary M γ⁻¹ = 0 when β is constrained to ⟨γ⁻¹, β⟩ = 0.
Negative control: the claim M γ⁻¹ = 0 for unconstrained β (refuted by a witness).
"""

from __future__ import annotations

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, ProofResult

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


def _derive(claim: str) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "symbolic d; d = 2..5 × m = 2..3 (entries symbolic)",
        control=None if claim == "identity" else "uncentred kernel claim M γ⁻¹ = 0 with ⟨γ⁻¹,β⟩ ≠ 0",
    )
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    s = sp.Symbol("s", positive=True)
    y = g[i] * (x[i] - sp.Sum(x[j], (j, 1, d)) / d) / s + b[i]
    der.zero(
        "pairing with γ⁻¹, symbolic d",
        "For every output, ⟨y, γ⁻¹⟩ = ⟨γ⁻¹, β⟩ (T1), so M γ⁻¹ = (1/m)Σ_k y_k⟨y_k, γ⁻¹⟩ = ⟨γ⁻¹,β⟩ȳ.",
        sp.Sum(y / g[i], (i, 1, d)) - sp.Sum(b[i] / g[i], (i, 1, d)),
        latex=r"\sum_{i=1}^d \frac{y_i}{\gamma_i} - \sum_{i=1}^d\frac{\beta_i}{\gamma_i} = 0",
    )

    def identity(dd: int, mm: int) -> sp.Matrix:
        mg, ybar, c = _moment_times_inverse(dd, mm, orthogonal_beta=False)
        return mg - (c * ybar if claim == "identity" else sp.zeros(dd, 1))

    der.family(
        "moment identity, concrete d" if claim == "identity" else "uncentred kernel, concrete d",
        "M γ⁻¹ − ⟨γ⁻¹, β⟩ ȳ = 0 for every listed (d, m)."
        if claim == "identity"
        else "Claim under test: M γ⁻¹ = 0 with β unconstrained.",
        r"M\gamma^{-1} - \langle\gamma^{-1},\beta\rangle\,\bar y = 0"
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
