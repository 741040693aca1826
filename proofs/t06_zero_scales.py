"""T6 zero scales: a channel with γᵢ = 0 is a kernel direction eᵢ of its own; γ⁻¹ is undefined.

Statement. If γᵢ = 0 for i ∈ Z, then yᵢ = βᵢ for every input, so C eᵢ = 0 for i ∈ Z (for
LayerNorm and RMSNorm alike), 1/γᵢ does not exist, and for isotropic Gaussian input (ε = 0)
rank C = d − |Z| with ker C = span{eᵢ : i ∈ Z}: the γ⁻¹ direction is gone, not merely shifted.
The theorems T1–T3 state their hypothesis γᵢ ≠ 0 explicitly because of this case.

Machine-checked: C e₁ = 0 with γ₁ = 0 for symbolic d and m, and for d = 2..6, m = 2..3 (LayerNorm
and RMSNorm); γ⁻¹ undefined: the hypothesis makes the denominator γ₁ exactly 0 (a step that fails
for a near-zero γ₁); for the closed form with |Z| ∈ {1, 2} and
d = 3..8, C eᵢ = 0 for i ∈ Z and the minor on the other coordinates equals
(d/(d−1))ⁿ Πγᵢ² (1 − n/d) ≠ 0, n = d − |Z|.
Negative control: the "pseudo-inverse" γ⁺ (1/γᵢ off Z, 0 on Z) claimed as a kernel vector.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, Mutant, ProofResult
from proofs.t03_minimality import closed_form

THEOREM = "T6"
TITLE = "Zero scales: eᵢ ∈ ker C for γᵢ = 0"
STATEMENT = (
    "If γᵢ = 0 for i ∈ Z then eᵢ ∈ ker C for i ∈ Z, γ⁻¹ is undefined, and for isotropic input "
    "ker C = span{eᵢ : i ∈ Z} exactly."
)
HYPOTHESES = ["d ≥ 2", "γᵢ = 0 exactly for i ∈ Z ≠ ∅, γᵢ ≠ 0 otherwise", "ε ≥ 0"]


DEAD = sp.Integer(0)  # the hypothesis: γ₁ is exactly 0


def _samples(
    d: int, m: int, norm: str, zeros: int, dead: sp.Expr = DEAD
) -> tuple[list[list[sp.Expr]], list[sp.Expr]]:
    g = S.vec("gamma", d)
    g[:zeros] = [dead] * zeros
    b = S.vec("beta", d)
    ys = []
    for k in range(m):
        x, s = S.vec(f"x{k + 1}", d), sp.Symbol(f"s_{k + 1}", positive=True)
        ys.append(
            S.layer_norm(x, g, b, sp.Integer(0), s) if norm == "layer" else S.rms_norm(x, g, sp.Integer(0), s)
        )
    return ys, g


Value = Callable[[sp.Expr, sp.Expr], sp.Expr]  # (d, γ_i) -> claimed (C e₁)_i


def _zero_value(d: sp.Expr, g_i: sp.Expr) -> sp.Expr:
    return sp.Integer(0)


def _rank_factor(d: int, n: int) -> sp.Expr:
    """The statement's factor (1 − n/d) in the minor of the closed form."""
    return 1 - sp.Rational(n, d)


COVERAGE = (
    "C e₁ = 0 proved for symbolic d and m (LayerNorm; opaque per-sample scale) and d = 2..6 × m = 2..3 for "
    "LayerNorm and RMSNorm; γ⁻¹ undefined proved (the hypothesis makes its denominator exactly 0); closed-form "
    "rank d − |Z| for d = 3..8, |Z| = 1, 2"
)


def _derive(
    direction: str,
    value: Value = _zero_value,
    dead: sp.Expr = DEAD,
    rank_factor: Callable[[int, int], sp.Expr] = _rank_factor,
) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        COVERAGE,
        control=None if direction == "unit" else "pseudo-inverse γ⁺ (0 on Z) claimed as a kernel vector",
    )
    if direction == "unit":
        d, m = sp.Symbol("d", integer=True, positive=True), sp.Symbol("m", integer=True, positive=True)
        i, k, l = sp.symbols("i k l", integer=True)
        x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
        s = sp.IndexedBase("s", positive=True)

        def gamma(q: sp.Expr) -> sp.Expr:
            return dead if q == 1 else g[q]  # γ₁ as the hypothesis sets it

        def y(kk: sp.Expr, ii: sp.Expr) -> sp.Expr:
            return S.layer_norm_d(lambda q: x[kk, q], gamma, lambda q: b[q], ii, d, scale=s[kk])

        def dev(kk: sp.Expr, ii: sp.Expr) -> sp.Expr:
            return y(kk, ii) - sp.Sum(y(l, ii), (l, 1, m)) / m

        der.zero(
            "C e₁, symbolic d and m",
            "(C e₁)_i = (1/m)Σ_k (y_{k,i} − ȳᵢ)(y_{k,1} − ȳ₁) with γ₁ as the hypothesis sets it: y_{k,1} = β₁ for "
            "every k, so every term vanishes; minus the claimed value, 0 for symbolic d and m.",
            sp.Sum(dev(k, i) * dev(k, sp.Integer(1)), (k, 1, m)) / m - value(d, g[i]),
            latex=r"\frac1m\sum_{k=1}^m (y_{k,i}-\bar y_i)(y_{k,1}-\bar y_1) = 0,\quad \gamma_1 = "
            + sp.latex(dead),
        )
        der.zero(
            "γ⁻¹ undefined",
            "Entry 1 of γ⁻¹ is 1/γ₁; under the hypothesis its denominator γ₁ is exactly 0, so γ⁻¹ does not exist "
            "and the library must report the zero channel instead of dividing (a near-zero γ₁ fails this step).",
            dead,
            latex=r"\gamma_1 = " + sp.latex(dead) + " = 0",
        )

    def kernel(dd: int, mm: int, norm: str) -> sp.Matrix:
        ys, g = _samples(dd, mm, norm, 1, dead)
        c = S.empirical_cov(ys)
        if direction == "unit":
            w = [sp.Integer(1)] + [sp.Integer(0)] * (dd - 1)
            claimed = sp.Matrix([value(sp.Integer(dd), gi) for gi in g])
        else:
            w = [sp.Integer(0)] + [1 / gi for gi in g[1:]]
            claimed = sp.zeros(dd, 1)
        return c * sp.Matrix(w) - claimed

    for norm in ("layer", "rms"):
        label = "LayerNorm" if norm == "layer" else "RMSNorm"
        der.family(
            f"kernel vector, {label}",
            f"{label} with γ₁ = {dead}: C w = claimed value for w = "
            + ("e₁" if direction == "unit" else "γ⁺")
            + ", d = 2..6, m = 2..3.",
            r"C\,w = 0,\quad w = " + (r"e_1" if direction == "unit" else r"\gamma^{+}"),
            [
                (f"d={dd}, m={mm}", lambda dd=dd, mm=mm, norm=norm: kernel(dd, mm, norm))
                for dd in range(2 if direction == "unit" else 3, 7)
                for mm in (2, 3)
            ],
        )
        if direction != "unit":
            break
    if direction == "unit":

        def closed(dd: int, nz: int) -> sp.Matrix:
            g = S.vec("gamma", dd)
            g[:nz] = [dead] * nz
            c = closed_form(dd, g)
            n = dd - nz
            minor = S.det(c[nz:, nz:])
            target = sp.Rational(dd, dd - 1) ** n * sp.prod([gi**2 for gi in g[nz:]]) * rank_factor(dd, n)
            return sp.Matrix([sp.expand(minor - target), *[e for i in range(nz) for e in c[:, i]]])

        der.family(
            "rank d − |Z| of the closed form",
            "Closed form with γᵢ = 0 on Z: the columns eᵢ, i ∈ "
            "Z, vanish and the minor on the other n coordinates "
            "is (d/(d−1))ⁿ Πγᵢ² (1 − n/d) ≠ 0; so ker C = span{eᵢ : i ∈ Z}.",
            r"\det C_{\bar Z\bar Z} = \Big(\tfrac{d}{d-1}\Big)^n\Big(1-\tfrac "
            r"nd\Big)\prod_{i\notin Z}\gamma_i^2",
            [(f"d={dd}, |Z|={nz}", lambda dd=dd, nz=nz: closed(dd, nz)) for dd in range(3, 9) for nz in (1, 2)],
        )
    return der.result()


def prove() -> ProofResult:
    """Derive T6."""
    return _derive("unit")


CONTROLS = {"pseudo-inverse": lambda: _derive("pseudo")}

MUTANTS = [
    Mutant(
        "rank-constant",
        "wrong constant",
        "the minor of the closed form on the live coordinates is (d/(d−1))ⁿ Πγᵢ² (1 + n/d)",
        lambda: _derive("unit", rank_factor=lambda d, n: 1 + sp.Rational(n, d)),
    ),
    Mutant(
        "false-above-d6",
        "false above the concrete range",
        "(C e₁)_i = Π_{k=2}^{6}(d − k)·γᵢ (zero for d = 2..6 only)",
        lambda: _derive("unit", value=lambda d, g_i: S.vanishing_on(d, 2, 6) * g_i),
    ),
    Mutant(
        "exact-zero-dropped",
        "dropped hypothesis",
        "e₁ ∈ ker C and γ⁻¹ undefined for a near-dead channel γ₁ = 10⁻⁶ (the hypothesis γ₁ = 0 dropped)",
        lambda: _derive("unit", dead=sp.Rational(1, 10**6)),
    ),
]
