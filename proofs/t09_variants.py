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

Machine-checked: (a) ⟨γ⁻¹|_g, y_k − ȳ⟩ = 0 for symbolic group size n, symbolic m, any group of
any G, and for (G, n) ∈ {(2,2),(2,3),(3,2),(2,4),(4,2),(3,3)}, m = 2 written out;
independence via a non-zero G×G minor; the block closed form has rank d − G via an explicit
minor; (b) for symbolic d and d = 2..8; (c) for d = 2..8.
Negative controls: the group-restricted vector for a LayerNorm with global centring; γ⁻¹
for scale-then-centre; the raw weight w⁻¹ (offset forgotten) for (1 + w) scaling.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, Mutant, ProofResult
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


def _group_norm(
    x: list[sp.Expr], gamma: list[sp.Expr], beta: list[sp.Expr], groups: int, scales: list[sp.Expr],
    *, global_centring: bool,
) -> list[sp.Expr]:
    """GroupNorm from symbolic.py; ``global_centring`` gives LayerNorm (one group), for the control."""
    if global_centring:
        return S.layer_norm(x, gamma, beta, sp.Integer(0), scales[0])
    return S.group_norm(x, gamma, beta, groups, scales)


def _group_symbolic(der: Derivation, global_centring: bool) -> None:
    """Per-group kernel vectors for symbolic group size n, symbolic m samples and any group h of G."""
    n, m, big_g = (sp.Symbol(c, integer=True, positive=True) for c in ("n", "m", "G"))
    h, k, l, q = sp.symbols("h k l q", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    s = sp.IndexedBase("s", positive=True)
    r_ = sp.Symbol("r_", integer=True)
    p_ = sp.Symbol("p_", integer=True)

    def y(kk: sp.Expr, qq: sp.Expr) -> sp.Expr:
        """Entry qq of group h of sample kk."""
        if global_centring:  # LayerNorm: the mean runs over all G·n features
            mu = sp.Sum(x[kk, r_, p_], (p_, 1, n), (r_, 1, big_g)) / (big_g * n)
            return g[h, qq] * (x[kk, h, qq] - mu) / s[kk] + b[h, qq]
        return S.layer_norm_d(lambda j: x[kk, h, j], lambda j: g[h, j], lambda j: b[h, j], qq, n, scale=s[kk, h])

    der.zero(
        "per-group kernel vectors, symbolic n and m",
        "For every group h (of any number G of groups), symbolic group size n and m samples: "
        "⟨γ⁻¹|_h, y_k − ȳ⟩ = Σ_{q=1}^{n}(y_{k,h,q} − ȳ_{h,q})/γ_{h,q} = 0, each group's output from the one "
        "LayerNorm definition applied to the group (per-group opaque scale s_{k,h})"
        + (" — here with LayerNorm's global centring (the control)" if global_centring else "")
        + ".",
        sp.Sum((y(k, q) - sp.Sum(y(l, q), (l, 1, m)) / m) / g[h, q], (q, 1, n)),
        latex=r"\sum_{q=1}^{n}\frac{y_{k,h,q} - \frac1m\sum_{l=1}^m y_{l,h,q}}{\gamma_{h,q}} = 0",
    )


def _group_steps(der: Derivation, global_centring: bool) -> None:
    _group_symbolic(der, global_centring)

    def projections(groups: int, n: int) -> sp.Matrix:
        d = groups * n
        g, b = S.vec("gamma", d), S.vec("beta", d)
        ys = []
        for k in range(2):
            sc = [sp.Symbol(f"s_{k + 1}{h + 1}", positive=True) for h in range(groups)]
            ys.append(_group_norm(S.vec(f"x{k + 1}", d), g, b, groups, sc, global_centring=global_centring))
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


Value = Callable[[sp.Expr, sp.Expr], sp.Expr]  # (d, normaliser) -> claimed ⟨w, y − β⟩ (0 in the theorem)


def _zero(d: sp.Expr, a: sp.Expr) -> sp.Expr:
    return sp.Integer(0)


def _scale_then_centre_steps(der: Derivation, direction: str, value: Value = _zero) -> None:
    d = sp.Symbol("d", integer=True, positive=True)
    i = sp.Symbol("i", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    a = sp.Symbol("a", positive=True)
    y = S.scale_then_centre_d(lambda q: x[q], lambda q: g[q], lambda q: b[q], i, d, a)
    w = sp.Integer(1) if direction == "ones" else 1 / g[i]
    der.zero(
        "scale-then-centre, symbolic d",
        "Σᵢ wᵢ(yᵢ − βᵢ) − claimed value = 0 for symbolic d (y from symbolic.scale_then_centre_d, opaque "
        "normaliser a), w = " + ("𝟙." if direction == "ones" else "γ⁻¹."),
        sp.Sum(w * (y - b[i]), (i, 1, d)) - value(d, a),
        latex=r"\sum_{i=1}^d w_i\,\Big(\gamma_i x_i - \tfrac1d\sum_j\gamma_jx_j\Big)/a - "
        + sp.latex(value(d, a))
        + r" = 0,\quad w = "
        + (r"\mathbb 1" if direction == "ones" else r"\gamma^{-1}"),
    )

    def concrete(dd: int) -> sp.Expr:
        xs, gs, bs = S.vec("x", dd), S.vec("gamma", dd), S.vec("beta", dd)
        eps = sp.Symbol("epsilon", nonnegative=True)
        y = S.scale_then_centre(xs, gs, bs, eps)
        ws = [sp.Integer(1)] * dd if direction == "ones" else S.inverse(gs)
        scaled = [gi * xi for gi, xi in zip(gs, xs, strict=True)]
        norm = sp.sqrt(S.mean([c**2 for c in S.centred(scaled)]) + eps)
        return S.dot(ws, S.sub(y, bs)) - value(sp.Integer(dd), norm)

    der.family(
        "scale-then-centre, concrete d",
        "Same pairing with the exact normaliser √(var(γ⊙x) + ε), d = 2..8.",
        r"\langle w, y - \beta\rangle = 0",
        [(f"d={dd}", lambda dd=dd: concrete(dd)) for dd in range(2, 9)],
    )


def _gemma_steps(der: Derivation, offset_forgotten: bool, claimed_offset: sp.Expr = sp.S.One) -> None:
    def pairing(dd: int) -> sp.Expr:
        xs, w, b = S.vec("x", dd), S.vec("w", dd), S.vec("beta", dd)
        eps = sp.Symbol("epsilon", nonnegative=True)
        y = S.layer_norm(xs, S.offset_scale(w), b, eps)
        offset = sp.Integer(0) if offset_forgotten else claimed_offset
        direction = S.inverse(S.offset_scale(w, offset))
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


COVERAGE = (
    "GroupNorm: per-group kernel vectors proved for symbolic group size n, m samples and any group; "
    "independence and exact dimension G for isotropic input for (G, n) in {(2,2),(2,3),(3,2),(2,4),(4,2),(3,3)}; "
    "scale-then-centre proved for symbolic d (opaque normaliser) and d = 2..8 exact; (1+w) d = 2..8"
)


def _derive(variant: str, value: Value = _zero, claimed_offset: sp.Expr = sp.S.One) -> ProofResult:
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
        COVERAGE,
        control=controls[variant],
    )
    if variant in ("theorem", "global"):
        _group_steps(der, global_centring=variant == "global")
    if variant in ("theorem", "stc-inverse"):
        _scale_then_centre_steps(der, "ones" if variant == "theorem" else "inverse", value)
    if variant in ("theorem", "gemma-raw"):
        _gemma_steps(der, offset_forgotten=variant == "gemma-raw", claimed_offset=claimed_offset)
    return der.result()


def prove() -> ProofResult:
    """Derive T9."""
    return _derive("theorem")


CONTROLS = {
    "groupnorm-basis-under-global-centring": lambda: _derive("global"),
    "scale-then-centre-inverse-scale": lambda: _derive("stc-inverse"),
    "gemma-offset-forgotten": lambda: _derive("gemma-raw"),
}

MUTANTS = [
    Mutant(
        "offset-two",
        "wrong constant",
        "a mean-centring norm scaled by 1 + w has kernel vector (2 + w)⁻¹",
        lambda: _derive("theorem", claimed_offset=sp.Integer(2)),
    ),
    Mutant(
        "false-above-d8",
        "false above the concrete range",
        "scale-then-centre: ⟨𝟙, y − β⟩ = Π_{k=2}^{8}(d − k)/a (zero for d = 2..8 only)",
        lambda: _derive("theorem", value=lambda d, a: S.vanishing_on(d, 2, 8) / a),
    ),
    Mutant(
        "per-group-centring-dropped",
        "dropped hypothesis",
        "the group-restricted γ⁻¹|_g are kernel vectors when the centring is global (per-group centring dropped)",
        lambda: _derive("global"),
    ),
]
