"""T6 zero scales: a channel with γᵢ = 0 is a kernel direction eᵢ of its own; γ⁻¹ is undefined.

Statement. If γᵢ = 0 for i ∈ Z, then yᵢ = βᵢ for every input, so C eᵢ = 0 for i ∈ Z (for
LayerNorm and RMSNorm alike), 1/γᵢ does not exist, and for isotropic Gaussian input (ε = 0)
rank C = d − |Z| with ker C = span{eᵢ : i ∈ Z}: the γ⁻¹ direction is gone, not merely shifted.
The theorems T1–T3 state their hypothesis γᵢ ≠ 0 explicitly because of this case.

Machine-checked: C e₁ = 0 with γ₁ = 0 (d = 2..6, m = 2..3, LayerNorm and RMSNorm); 1/γ at
γ = 0 is SymPy's complex infinity (undefined); for the closed form with |Z| ∈ {1, 2} and
d = 3..8, C eᵢ = 0 for i ∈ Z and the minor on the other coordinates equals
(d/(d−1))ⁿ Πγᵢ² (1 − n/d) ≠ 0, n = d − |Z|.
Negative control: the "pseudo-inverse" γ⁺ (1/γᵢ off Z, 0 on Z) claimed as a kernel vector.
"""

from __future__ import annotations

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, ProofResult
from proofs.t03_minimality import closed_form

THEOREM = "T6"
TITLE = "Zero scales: eᵢ ∈ ker C for γᵢ = 0"
STATEMENT = (
    "If γᵢ = 0 for i ∈ Z then eᵢ ∈ ker C for i ∈ Z, γ⁻¹ is undefined, and for isotropic input "
    "ker C = span{eᵢ : i ∈ Z} exactly."
)
HYPOTHESES = ["d ≥ 2", "γᵢ = 0 exactly for i ∈ Z ≠ ∅, γᵢ ≠ 0 otherwise", "ε ≥ 0"]


def _samples(d: int, m: int, norm: str, zeros: int) -> tuple[list[list[sp.Expr]], list[sp.Expr]]:
    g = S.vec("gamma", d)
    g[:zeros] = [sp.Integer(0)] * zeros
    b = S.vec("beta", d)
    ys = []
    for k in range(m):
        x, s = S.vec(f"x{k + 1}", d), sp.Symbol(f"s_{k + 1}", positive=True)
        ys.append(
            S.layer_norm(x, g, b, sp.Integer(0), s) if norm == "layer" else S.rms_norm(x, g, sp.Integer(0), s)
        )
    return ys, g


def _derive(direction: str) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "d = 2..6 × m = 2..3 samples; closed form d = 3..8, |Z| = 1, 2",
        control=None if direction == "unit" else "pseudo-inverse γ⁺ (0 on Z) claimed as a kernel vector",
    )

    def kernel(d: int, m: int, norm: str) -> sp.Matrix:
        ys, g = _samples(d, m, norm, 1)
        c = S.empirical_cov(ys)
        if direction == "unit":
            w = [sp.Integer(1)] + [sp.Integer(0)] * (d - 1)
        else:
            w = [sp.Integer(0)] + [1 / gi for gi in g[1:]]
        return c * sp.Matrix(w)

    for norm in ("layer", "rms"):
        label = "LayerNorm" if norm == "layer" else "RMSNorm"
        der.family(
            f"kernel vector, {label}",
            f"{label} with γ₁ = 0: C w = 0 for w = "
            + ("e₁" if direction == "unit" else "γ⁺")
            + ", d = 2..6, m = 2..3.",
            r"C\,w = 0,\quad w = " + (r"e_1" if direction == "unit" else r"\gamma^{+}"),
            [
                (f"d={d}, m={m}", lambda d=d, m=m, norm=norm: kernel(d, m, norm))
                for d in range(2 if direction == "unit" else 3, 7)
                for m in (2, 3)
            ],
        )
        if direction != "unit":
            break
    if direction == "unit":
        gsym = sp.Symbol("gamma_1", real=True)
        inv = (1 / gsym).subs(gsym, 0)
        der.fact(
            "γ⁻¹ undefined",
            "Substituting γ₁ = 0 into 1/γ₁ gives SymPy's complex infinity: no direction γ⁻¹.",
            r"\left.\gamma_1^{-1}\right|_{\gamma_1=0} = \tilde\infty",
            inv is sp.zoo,
            "subs",
        )

        def closed(d: int, nz: int) -> sp.Matrix:
            g = S.vec("gamma", d)
            g[:nz] = [sp.Integer(0)] * nz
            c = closed_form(d, g)
            n = d - nz
            minor = S.det(c[nz:, nz:])
            target = sp.Rational(d, d - 1) ** n * sp.prod([gi**2 for gi in g[nz:]]) * (1 - sp.Rational(n, d))
            return sp.Matrix([sp.expand(minor - target), *[e for i in range(nz) for e in c[:, i]]])

        der.family(
            "rank d − |Z| of the closed form",
            "Closed form with γᵢ = 0 on Z: the columns eᵢ, i ∈ "
            "Z, vanish and the minor on the other n coordinates "
            "is (d/(d−1))ⁿ Πγᵢ² (1 − n/d) ≠ 0; so ker C = span{eᵢ : i ∈ Z}.",
            r"\det C_{\bar Z\bar Z} = \Big(\tfrac{d}{d-1}\Big)^n\Big(1-\tfrac "
            r"nd\Big)\prod_{i\notin Z}\gamma_i^2",
            [(f"d={d}, |Z|={nz}", lambda d=d, nz=nz: closed(d, nz)) for d in range(3, 9) for nz in (1, 2)],
        )
    return der.result()


def prove() -> ProofResult:
    """Derive T6."""
    return _derive("unit")


CONTROLS = {"pseudo-inverse": lambda: _derive("pseudo")}
