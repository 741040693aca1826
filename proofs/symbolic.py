"""The one definition of each normalisation layer, shared by every proof module.

Two forms of each norm, built from the same formulas:

* concrete d with fully symbolic real entries (lists of SymPy expressions): :func:`layer_norm`,
  :func:`rms_norm`, :func:`group_norm`, :func:`scale_then_centre`, :func:`offset_scale`;
* symbolic d (component i of a vector given as a function ``x(j)`` of a summation index, sums
  Σ_{j=1}^{d} kept as SymPy ``Sum``): :func:`layer_norm_d`, :func:`rms_norm_d`,
  :func:`scale_then_centre_d`.

No theorem module writes a norm inline: changing a definition here changes every proof.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

Vec = list[sp.Expr]


def vec(name: str, d: int, **assumptions: bool) -> Vec:
    """d real symbols name_1..name_d (extra assumptions such as positive=True allowed)."""
    return list(sp.symbols(f"{name}_1:{d + 1}", real=True, **assumptions))


def mean(x: Sequence[sp.Expr]) -> sp.Expr:
    """Arithmetic mean of the entries."""
    return sp.Add(*x) / len(x)


def centred(x: Sequence[sp.Expr]) -> Vec:
    """x − mean(x)·𝟙."""
    mu = mean(x)
    return [xi - mu for xi in x]


def standardised(x: Sequence[sp.Expr], eps: sp.Expr, scale: sp.Expr | None = None) -> Vec:
    """z = (x − μ𝟙)/√(σ² + ε), σ² the biased variance (as in every LayerNorm).

    With ``scale`` given, z = (x − μ𝟙)/scale: an opaque positive symbol standing for the
    normaliser. An identity proved for an arbitrary scale holds in particular for √(σ² + ε)
    (a strictly stronger statement), and avoids expanding the radicand.
    """
    c = centred(x)
    if scale is not None:
        return [ci / scale for ci in c]
    var = mean([ci**2 for ci in c])
    return [ci / sp.sqrt(var + eps) for ci in c]


def layer_norm(
    x: Sequence[sp.Expr],
    gamma: Sequence[sp.Expr],
    beta: Sequence[sp.Expr],
    eps: sp.Expr,
    scale: sp.Expr | None = None,
) -> Vec:
    """LayerNorm y = γ ⊙ z + β (``scale``: see :func:`standardised`)."""
    z = standardised(x, eps, scale)
    return [g * zi + b for g, zi, b in zip(gamma, z, beta, strict=True)]


def rms_norm(
    x: Sequence[sp.Expr], gamma: Sequence[sp.Expr], eps: sp.Expr, scale: sp.Expr | None = None
) -> Vec:
    """RMSNorm y = γ ⊙ x / √(mean(x²) + ε) (``scale``: an opaque normaliser, see standardised)."""
    r = scale if scale is not None else sp.sqrt(mean([xi**2 for xi in x]) + eps)
    return [g * xi / r for g, xi in zip(gamma, x, strict=True)]


def dot(a: Sequence[sp.Expr], b: Sequence[sp.Expr]) -> sp.Expr:
    """Euclidean inner product."""
    return sp.Add(*[ai * bi for ai, bi in zip(a, b, strict=True)])


def sub(a: Sequence[sp.Expr], b: Sequence[sp.Expr]) -> Vec:
    """a − b entrywise."""
    return [ai - bi for ai, bi in zip(a, b, strict=True)]


def inverse(gamma: Sequence[sp.Expr]) -> Vec:
    """γ⁻¹ entrywise (hypothesis: every γᵢ ≠ 0)."""
    return [1 / g for g in gamma]


def sample_mean(ys: Sequence[Sequence[sp.Expr]]) -> Vec:
    """ȳ = (1/m) Σ_k y_k."""
    m = len(ys)
    return [sp.Add(*col) / m for col in zip(*ys, strict=True)]


def empirical_cov(ys: Sequence[Sequence[sp.Expr]]) -> sp.Matrix:
    """C = (1/m) Σ_k (y_k − ȳ)(y_k − ȳ)ᵀ as an explicit matrix."""
    ybar = sample_mean(ys)
    m = len(ys)
    devs = [sp.Matrix(sub(y, ybar)) for y in ys]
    out = sp.zeros(len(ybar), len(ybar))
    for dv in devs:
        out += dv * dv.T
    return out / m


def centring_projector(d: int) -> sp.Matrix:
    """P = I − 𝟙𝟙ᵀ/d."""
    return sp.eye(d) - sp.ones(d, d) / d


def det(m: sp.Matrix) -> sp.Expr:
    """Exact determinant over the polynomial/rational-function domain (fast for symbolic entries)."""
    from sympy.polys.matrices import DomainMatrix

    dm = DomainMatrix.from_Matrix(m)
    return sp.sympify(dm.domain.to_sympy(dm.det()))


def in_range(expr: sp.Expr, d: sp.Symbol, *indices: sp.Symbol) -> sp.Expr:
    """Resolve the Piecewise conditions 1 ≤ i ≤ d that Sum.doit leaves for free indices i."""
    truths = {sp.Ge(d, i): sp.true for i in indices}
    truths |= {sp.Le(i, d): sp.true for i in indices}
    return sp.piecewise_fold(expr.subs(truths))


# ---------------------------------------------------------------- symbolic d

Entry = Callable[[sp.Expr], sp.Expr]  # component j of a vector of symbolic length d
_J = sp.Symbol("j_", integer=True)  # the one summation index of the definitions below


def mean_d(x: Entry, d: sp.Expr) -> sp.Expr:
    """μ = (1/d) Σ_{j=1}^{d} x_j for symbolic d."""
    return sp.Sum(x(_J), (_J, 1, d)) / d


def variance_d(x: Entry, d: sp.Expr) -> sp.Expr:
    """σ² = (1/d) Σ_{j=1}^{d} (x_j − μ)² (the biased variance of every LayerNorm), symbolic d."""
    mu = mean_d(x, d)
    return sp.Sum((x(_J) - mu) ** 2, (_J, 1, d)) / d


def layer_norm_d(
    x: Entry, gamma: Entry, beta: Entry, i: sp.Expr, d: sp.Expr, *, eps: sp.Expr | None = None,
    scale: sp.Expr | None = None,
) -> sp.Expr:
    """Component i of LayerNorm γ⊙(x − μ𝟙)/√(σ² + ε) + β for symbolic d.

    ``scale`` replaces the normaliser √(σ² + ε) by an opaque positive symbol: an identity proved
    for every positive scale holds in particular for √(σ² + ε) with every ε ≥ 0.
    """
    norm = scale if scale is not None else sp.sqrt(variance_d(x, d) + (eps if eps is not None else 0))
    return gamma(i) * (x(i) - mean_d(x, d)) / norm + beta(i)


def rms_norm_d(
    x: Entry, gamma: Entry, i: sp.Expr, d: sp.Expr, *, eps: sp.Expr | None = None, scale: sp.Expr | None = None
) -> sp.Expr:
    """Component i of RMSNorm γ⊙x/√(mean(x²) + ε) for symbolic d (``scale``: see layer_norm_d)."""
    norm = scale if scale is not None else sp.sqrt(mean_d(lambda j: x(j) ** 2, d) + (eps if eps is not None else 0))
    return gamma(i) * x(i) / norm


def scale_then_centre_d(x: Entry, gamma: Entry, beta: Entry, i: sp.Expr, d: sp.Expr, scale: sp.Expr) -> sp.Expr:
    """Component i of scale-then-centre (γ⊙x − mean(γ⊙x)𝟙)/scale + β for symbolic d."""
    gx: Entry = lambda j: gamma(j) * x(j)  # noqa: E731
    return (gx(i) - mean_d(gx, d)) / scale + beta(i)


def vanishing_on(d: sp.Expr, lo: int, hi: int) -> sp.Expr:
    """Π_{k=lo}^{hi} (d − k): zero for every d = lo..hi, non-zero above (statement mutants)."""
    return sp.Mul(*[d - k for k in range(lo, hi + 1)])


# ---------------------------------------------------------------- variants (concrete d)


def scale_then_centre(x: Sequence[sp.Expr], gamma: Sequence[sp.Expr], beta: Sequence[sp.Expr], eps: sp.Expr) -> Vec:
    """Scale-then-centre: standardise γ⊙x (centre after scaling), then add β."""
    scaled = [g * xi for g, xi in zip(gamma, x, strict=True)]
    return [zi + b for zi, b in zip(standardised(scaled, eps), beta, strict=True)]


def offset_scale(weight: Sequence[sp.Expr], offset: sp.Expr = sp.S.One) -> Vec:
    """The effective scale γ = offset + weight of a (1 + w)-parameterised norm (Gemma: offset 1)."""
    return [offset + w for w in weight]


def group_norm(
    x: Sequence[sp.Expr],
    gamma: Sequence[sp.Expr],
    beta: Sequence[sp.Expr],
    groups: int,
    scales: Sequence[sp.Expr] | None = None,
    eps: sp.Expr = sp.S.Zero,
) -> Vec:
    """GroupNorm: LayerNorm (this module's) on each of ``groups`` contiguous equal blocks, per-feature γ, β."""
    n = len(x) // groups
    out: Vec = []
    for g in range(groups):
        sl = slice(g * n, (g + 1) * n)
        out += layer_norm(x[sl], gamma[sl], beta[sl], eps, scales[g] if scales else None)
    return out
