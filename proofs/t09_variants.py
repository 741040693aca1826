"""T9 variants: GroupNorm, scale-then-centre, Gemma-style (1 + w) scaling.

Statement.
(a) GroupNorm with G groups of n features (d = Gn), per-group centring and normalisation,
    per-feature γ: the G vectors γ⁻¹|_g (γ⁻¹ restricted to group g, 0 elsewhere) are kernel
    vectors of C, linearly independent, and for isotropic Gaussian input (ε = 0) they span
    ker C exactly (dim ker C = G).
(b) Scale-then-centre y = P(γ⊙x)·a(x) + β (any scalar normaliser a(x)) has kernel vector 𝟙,
    not γ⁻¹.
(c) A mean-centring norm scaled by (1 + w) (Gemma-style parametrisation) has kernel vector
    (1 + w)⁻¹: the effective γ is 1 + w. (Gemma's own norm is an RMSNorm and has no kernel:
    T5 with γ = 1 + w.)

Machine-checked: (a) ⟨γ⁻¹|_g, y_k − ȳ⟩ = 0 for (G, n) ∈ {(2,2),(2,3),(3,2),(2,4),(4,2),(3,3)},
m = 2; independence via a non-zero G×G minor; the block closed form has rank d − G via an explicit
minor; (b) for symbolic d and d = 2..8; (c) for d = 2..8.
Negative controls: the group-restricted vector for a LayerNorm with global centring; γ⁻¹
for scale-then-centre; the raw weight w⁻¹ (offset forgotten) for (1 + w) scaling.
"""

from __future__ import annotations

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, ProofResult
from proofs.t03_minimality import closed_form

THEOREM = "T9"
TITLE = "Variants: GroupNorm (dim G), scale-then-centre (𝟙), (1+w)"
STATEMENT = (
    "GroupNorm: ker C ⊇ span{γ⁻¹|_g}, dimension G (exactly, for isotropic input); scale-then-centre: "
    "kernel 𝟙; (1 + w) scaling: kernel (1 + w)⁻¹."
)
HYPOTHESES = [
    "every effective scale entry non-zero",
    "ε ≥ 0",
    "groups are contiguous blocks of equal size n ≥ 2",
]
GROUPS = [(2, 2), (2, 3), (3, 2), (2, 4), (4, 2), (3, 3)]


def group_norm(
    x: list[sp.Expr],
    gamma: list[sp.Expr],
    beta: list[sp.Expr],
    groups: int,
    scales: list[sp.Expr] | None = None,
    *,
    global_centring: bool = False,
) -> list[sp.Expr]:
    """GroupNorm (per-group centring; ``global_centring`` gives LayerNorm, for the control)."""
    n = len(x) // groups
    out: list[sp.Expr] = []
    if global_centring:
        return S.layer_norm(x, gamma, beta, sp.Integer(0), scales[0] if scales else None)
    for g in range(groups):
        sl = slice(g * n, (g + 1) * n)
        out += S.layer_norm(x[sl], gamma[sl], beta[sl], sp.Integer(0), scales[g] if scales else None)
    return out


def _group_steps(der: Derivation, global_centring: bool) -> None:
    def projections(groups: int, n: int) -> sp.Matrix:
        d = groups * n
        g, b = S.vec("gamma", d), S.vec("beta", d)
        ys = []
        for k in range(2):
            sc = [sp.Symbol(f"s_{k + 1}{h + 1}", positive=True) for h in range(groups)]
            ys.append(group_norm(S.vec(f"x{k + 1}", d), g, b, groups, sc, global_centring=global_centring))
        ybar = S.sample_mean(ys)
        out = []
        for h in range(groups):
            basis = [1 / g[i] if h * n <= i < (h + 1) * n else sp.Integer(0) for i in range(d)]
            out += [S.dot(basis, S.sub(y, ybar)) for y in ys]
        return sp.Matrix(out)

    der.family(
        "per-group kernel vectors",
        "⟨γ⁻¹|_g, y_k − ȳ⟩ = 0 for every group g and sample k (m = 2, per-group normalisers symbolic)"
        + (" — here with LayerNorm's global centring" if global_centring else "")
        + ".",
        r"\langle \gamma^{-1}|_g,\, y_k - \bar y\rangle = 0",
        [(f"G={G}, n={n}", lambda G=G, n=n: projections(G, n)) for G, n in GROUPS],
    )
    if global_centring:
        return

    def independence(groups: int, n: int) -> sp.Expr:
        d = groups * n
        g = S.vec("gamma", d)
        basis = sp.Matrix(groups, d, lambda h, i: 1 / g[i] if h * n <= i < (h + 1) * n else 0)
        minor = basis[:, [h * n for h in range(groups)]]
        return S.det(minor) - sp.prod([1 / g[h * n] for h in range(groups)])

    der.family(
        "independence",
        "The G×G minor on each group's first coordinate is Π 1/γ ≠ 0: dimension G.",
        r"\det\big[\gamma^{-1}|_g\big]_{g, \text{first}(h)} = \prod_h \gamma_{\text{first}(h)}^{-1}",
        [(f"G={G}, n={n}", lambda G=G, n=n: independence(G, n)) for G, n in GROUPS],
    )

    def closed_rank(groups: int, n: int) -> sp.Matrix:
        d = groups * n
        g = S.vec("gamma", d)
        blocks = [closed_form(n, g[h * n : (h + 1) * n]) for h in range(groups)]
        c = sp.diag(*blocks)
        keep = [i for i in range(d) if (i + 1) % n != 0]  # drop each group's last coordinate
        target = sp.Mul(
            *[
                sp.Rational(n, n - 1) ** (n - 1)
                * sp.prod([g[i] ** 2 for i in range(h * n, (h + 1) * n - 1)])
                / n
                for h in range(groups)
            ]
        )
        return sp.Matrix([sp.expand(S.det(c.extract(keep, keep)) - target)])

    der.family(
        "exact dimension for isotropic input",
        "The closed form is block diagonal with blocks "
        "n/(n−1)·diag(γ_g)P_n diag(γ_g) (T3 per group); the minor "
        "dropping each group's last coordinate is Π_g (n/(n−1))^{n−1}Πγᵢ²/n ≠ 0, so rank C = d − G.",
        r"\det C_{\text{keep}} = \prod_g "
        r"\Big(\tfrac{n}{n-1}\Big)^{n-1}\frac1n\prod_{i\in g,\, i\neq\text{last}}\gamma_i^2",
        [(f"G={G}, n={n}", lambda G=G, n=n: closed_rank(G, n)) for G, n in GROUPS],
    )


def _scale_then_centre_steps(der: Derivation, direction: str) -> None:
    d = sp.Symbol("d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    a = sp.Symbol("a", positive=True)
    y = (g[i] * x[i] - sp.Sum(g[j] * x[j], (j, 1, d)) / d) * a + b[i]
    w = sp.Integer(1) if direction == "ones" else 1 / g[i]
    der.zero(
        "scale-then-centre, symbolic d",
        "Σᵢ wᵢ(yᵢ − βᵢ) = a(Σγᵢxᵢ − d·mean(γ⊙x)) = 0 for w = " + ("𝟙." if direction == "ones" else "γ⁻¹."),
        sp.Sum(w * (y - b[i]), (i, 1, d)),
        latex=r"\sum_{i=1}^d w_i\,a\Big(\gamma_i x_i - \tfrac1d\sum_j\gamma_jx_j\Big) = 0,\quad w = "
        + (r"\mathbb 1" if direction == "ones" else r"\gamma^{-1}"),
    )

    def concrete(dd: int) -> sp.Expr:
        xs, gs, bs = S.vec("x", dd), S.vec("gamma", dd), S.vec("beta", dd)
        eps = sp.Symbol("epsilon", nonnegative=True)
        scaled = [gi * xi for gi, xi in zip(gs, xs, strict=True)]
        y = [zi + bi for zi, bi in zip(S.standardised(scaled, eps), bs, strict=True)]
        ws = [sp.Integer(1)] * dd if direction == "ones" else S.inverse(gs)
        return S.dot(ws, S.sub(y, bs))

    der.family(
        "scale-then-centre, concrete d",
        "Same pairing with the exact normaliser √(var(γ⊙x) + ε), d = 2..8.",
        r"\langle w, y - \beta\rangle = 0",
        [(f"d={dd}", lambda dd=dd: concrete(dd)) for dd in range(2, 9)],
    )


def _gemma_steps(der: Derivation, offset_forgotten: bool) -> None:
    def pairing(dd: int) -> sp.Expr:
        xs, w, b = S.vec("x", dd), S.vec("w", dd), S.vec("beta", dd)
        eps = sp.Symbol("epsilon", nonnegative=True)
        y = S.layer_norm(xs, [1 + wi for wi in w], b, eps)
        direction = [1 / wi for wi in w] if offset_forgotten else [1 / (1 + wi) for wi in w]
        return S.dot(direction, S.sub(y, b))

    der.family(
        "(1 + w) scaling",
        "⟨v, y − β⟩ = 0 with v = "
        + ("w⁻¹" if offset_forgotten else "(1 + w)⁻¹")
        + " for a mean-centring norm scaled by 1 + w, d = 2..8.",
        r"\langle (1+w)^{-1}, y - \beta\rangle = 0"
        if not offset_forgotten
        else r"\langle w^{-1}, y-\beta\rangle = 0",
        [(f"d={dd}", lambda dd=dd: pairing(dd)) for dd in range(2, 9)],
    )


def _derive(variant: str) -> ProofResult:
    controls = {
        "theorem": None,
        "global": "group-restricted γ⁻¹ for LayerNorm (global centring)",
        "stc-inverse": "γ⁻¹ claimed for scale-then-centre",
        "gemma-raw": "raw weight w⁻¹ for (1 + w) scaling (offset forgotten)",
    }
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "GroupNorm (G, n) up to d = 9; scale-then-centre symbolic d + d = 2..8; (1+w) d = 2..8",
        control=controls[variant],
    )
    if variant in ("theorem", "global"):
        _group_steps(der, global_centring=variant == "global")
    if variant in ("theorem", "stc-inverse"):
        _scale_then_centre_steps(der, "ones" if variant == "theorem" else "inverse")
    if variant in ("theorem", "gemma-raw"):
        _gemma_steps(der, offset_forgotten=variant == "gemma-raw")
    return der.result()


def prove() -> ProofResult:
    """Derive T9."""
    return _derive("theorem")


CONTROLS = {
    "groupnorm-basis-under-global-centring": lambda: _derive("global"),
    "scale-then-centre-inverse-scale": lambda: _derive("stc-inverse"),
    "gemma-offset-forgotten": lambda: _derive("gemma-raw"),
}
