"""Symbolic normalisation layers and helpers shared by the proof modules.

Everything here works on concrete dimension d with fully symbolic real entries; the
symbolic-d derivations build their own IndexedBase/Sum objects in each module.
"""

from __future__ import annotations

from collections.abc import Sequence

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
