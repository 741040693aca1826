"""Tolerances that hold for every correct implementation: the T10 bound from the norm's *own* normaliser.

The rounding model (written out in docs/conformance.md, "How verdicts are decided").
A mean-centring norm computes, per row (per group for GroupNorm), some positive scale r and
y = γ⊙r(x − μ𝟙) + β. T1 holds for *every* r: LayerNorm's 1/√(σ² + ε), the unbiased std,
std + ε, a fast variance E[x²] − μ². How far rounding moves ŷ off the hyperplane depends on
r only through two numbers, which this module measures from the output instead of
assuming a formula:

* s = r·σ, the size of the standardised row (‖ẑ‖₁ ≤ √d‖ẑ‖₂ = d·s); s = 1 for LayerNorm
  with ε = 0, less with ε > 0 or the unbiased std;
* ρ = r·|μ|, the amplification of the computed mean's rounding (catastrophic
  cancellation when |μ| ≫ σ).

:func:`effective_normaliser` fits r per row by least squares on the output,
r = Σγᵢ(yᵢ − βᵢ)(xᵢ − μ) / Σγᵢ²(xᵢ − μ)², weighted by γ so that near-dead channels carry no
weight. The first-order residual of :mod:`deadir.bound` has terms proportional to
1 (rounding of the standardised row, here bounded by max(1, s)), to ρ, and to S_β = Σ|βᵢ/γᵢ|:

    |⟨v, ŷ − β⟩| ≤ A·max(1, s) + B·ρ + C,

with A, B, C read off :func:`deadir.bound.kernel_error_bound` (its residual is affine in ρ
and in the β term, so three calls give every row's bound). C is the β term for a norm that
*folds* the bias, ŷ = x·fl(rγ) + fl(β − fl(rγμ)) (PyTorch's CPU GroupNorm, Keras on JAX): the
bias then rounds twice at the size of β, so C is the kernel_error_bound β term at 2β.
Underflow. The standard model holds in the normal range only: below the smallest normal
number λ a result is subnormal (absolute error ≤ u·λ) or, on hardware and compilers that
flush to zero (XLA on CPU, PyTorch with ``set_flush_denormal``), 0 (absolute error < λ).
Every product of the affine map can do so, so each output entry carries an absolute error
η_i ≤ λ_out + λ_c·(2 + |γᵢ| + |xᵢ − μ|) (:func:`underflow_term`) on top of the relative
rounding; it matters only for γᵢ within a few orders of λ, where y_i itself is near λ.
Nothing here reads an attribute name or an ε: only γ, β (as the norm holds them), the
input rows and the output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.bound import gamma_k, kernel_error_bound
from deadir.precision import unit_roundoff

__all__ = ["FOLDED_BIAS_FACTOR", "EffectiveNormaliser", "effective_normaliser", "folded_bias_term",
           "hyperplane_tolerance", "underflow_term"]

# The bias rounds at most twice at the size of β (once added, once when folded into β − rγμ).
FOLDED_BIAS_FACTOR = 2.0


@dataclasses.dataclass(frozen=True)
class EffectiveNormaliser:
    """The per-row (per-group) scale a norm applied, measured from its output.

    Attributes:
        scale: |r|, shape (n, groups) (units of 1/x).
        spread: s = |r|·σ, the size of the standardised row (1 for LayerNorm with ε = 0).
        mean_ratio: ρ = |r|·|μ|, how much the centring's rounding is amplified.
        z: the standardised rows r(x − μ) the norm effectively formed, shape (n, d).
        measurable: (n,) True where every group of the row varies; a constant row (group) shows
            no r at all (every correct norm outputs β there, up to a rounding of size u·r·|μ| whose r
            is unobservable), so no check decides it.
    """

    scale: FloatArray
    spread: FloatArray
    mean_ratio: FloatArray
    z: FloatArray
    measurable: Any = None

    def select(self, keep: Any) -> EffectiveNormaliser:
        """The rows where ``keep`` is True."""
        return EffectiveNormaliser(self.scale[keep], self.spread[keep], self.mean_ratio[keep], self.z[keep],
                                   None if self.measurable is None else self.measurable[keep])


def effective_normaliser(rows: FloatArray, y: FloatArray, gamma: FloatArray, beta: FloatArray, *,
                         groups: int = 1, dtype: Any = None, compute_dtype: Any = None) -> EffectiveNormaliser:
    """Fit the scale r of y = γ⊙r(x − μ) + β per row and group (float64; see the module docstring).

    ``rows`` and ``y`` have shape (n, d), ``gamma`` and ``beta`` shape (d,) or (n, d) (a
    conditioned norm's per-row affine). With ``dtype`` (the output format) the fit's own
    uncertainty from the rounding of y, u·(|y| + |β|) per entry, is added to |r|, so a row
    whose output barely moves off β (σ far below ε) never gets an underestimated r. A row
    whose fit is undefined (not finite) gets r = 1/σ; a constant row is marked not measurable.

    With ``compute_dtype`` the fit also allows for the norm's own mean error δ, |δ| ≤ δ_max =
    γ_{k+1}(u_c)(|μ| + σ) (the bound's model): the norm formed y = γ⊙r(x − μ − δ) + β, so the fit
    through the origin reads r(1 − δ·A) with A = Σγᵢ²(xᵢ − μ)/Σγᵢ²(xᵢ − μ)², and r ≤ fit/(1 − δ_max|A|).
    Where δ_max|A| ≥ 1 — a dominant-γ channel whose |xᵢ − μ| is within the mean's rounding, found
    by the nightly profile (a correct float32 LayerNorm read r 16× too small) — the output does not
    show r, and the row is marked not measurable.
    """
    n, d = rows.shape
    k = d // groups
    x = rows.reshape(n, groups, k)
    mu = x.mean(axis=2, keepdims=True)
    xc = x - mu
    g = np.broadcast_to(gamma, (n, d)).reshape(n, groups, k)
    b = np.broadcast_to(beta, (n, d)).reshape(n, groups, k)
    yy = y.reshape(n, groups, k)
    with np.errstate(all="ignore"):
        gmax = np.max(np.abs(g), axis=2, keepdims=True)
        xmax = np.max(np.abs(xc), axis=2, keepdims=True)
        gs = np.where(gmax > 0, g / np.where(gmax > 0, gmax, 1.0), 0.0)
        xs = np.where(xmax > 0, xc / np.where(xmax > 0, xmax, 1.0), 0.0)
        num = np.sum(gs * (yy - b) * xs, axis=2)
        weight_sq = np.sum(gs * gs * xs * xs, axis=2)
        den = weight_sq * gmax[..., 0] * xmax[..., 0]
        r = np.abs(num / den)
        if dtype is not None:
            noise = unit_roundoff(dtype) * (np.abs(yy) + np.abs(b)) * np.abs(gs) * np.abs(xs)
            r = r + 2.0 * np.sum(noise, axis=2) / den
        sigma = np.sqrt(np.mean(xc * xc, axis=2))
        shown = np.ones(r.shape, dtype=bool)
        if compute_dtype is not None:
            delta = gamma_k(k + 1, unit_roundoff(compute_dtype)) * (np.abs(mu[..., 0]) + sigma)
            bias = delta / xmax[..., 0] * np.abs(np.sum(gs * gs * xs, axis=2)) / weight_sq
            shown = np.isfinite(bias) & (bias < 1.0)
            r = np.where(shown, r / (1.0 - np.where(shown, bias, 0.0)), r)
        fallback = np.where(sigma > 0, 1.0 / sigma, 0.0)
        r = np.where(np.isfinite(r) & (den > 0), r, fallback)
        z = (r[..., None] * xc).reshape(n, d)
        spread = r * sigma
        rho = r * np.abs(mu[..., 0])
    return EffectiveNormaliser(r, np.nan_to_num(spread, nan=0.0), np.nan_to_num(rho, nan=0.0),
                               np.nan_to_num(z, nan=0.0), np.all((sigma > 0) & shown, axis=1))


def underflow_term(rows: FloatArray, gamma: FloatArray, *, groups: int = 1, dtype: Any,
                   compute_dtype: Any) -> FloatArray:
    """Absolute error per output entry that underflow may add, flush-to-zero allowed (units of y), shape (n, d).

    η_i = λ_out + λ_c·(2 + |γᵢ| + |xᵢ − μ|), λ the smallest normal number of the output and
    compute dtype: the final cast, and the products r(x − μ), γᵢ·zᵢ or (xᵢ − μ)·(rγᵢ), may each
    flush a result below λ to 0 (see the module docstring).
    """
    n, d = rows.shape
    x = rows.reshape(n, groups, d // groups)
    xc = np.abs(x - x.mean(axis=2, keepdims=True)).reshape(n, d)
    lam_out = float(np.finfo(_np_format(dtype)).smallest_normal)
    lam_c = float(np.finfo(_np_format(compute_dtype)).smallest_normal)
    return np.asarray(lam_out + lam_c * (2.0 + np.abs(gamma) + xc), dtype=np.float64)


def _np_format(dtype: Any) -> Any:
    """A NumPy dtype with the same exponent range (bfloat16's is float32's)."""
    from deadir.precision import dtype_name

    name = dtype_name(dtype)
    return np.float32 if name == "bfloat16" else np.dtype(name)


def hyperplane_tolerance(gamma: FloatArray, beta: FloatArray, normaliser: EffectiveNormaliser, *, dtype: Any,
                         compute_dtype: Any, groups: int = 1, underflow: FloatArray | None = None) -> FloatArray:
    """Per-row, per-group bound on |⟨v_g, ŷ_g − β_g⟩| (v_g = γ_g⁻¹/‖γ_g⁻¹‖, units of y), shape (n, groups).

    ``gamma`` and ``beta`` have shape (d,). ``dtype`` is the output format, ``compute_dtype``
    that of the statistics and affine map. Entries are inf where the first-order bound is
    void ((k+1)·u_c ≥ 1 for k channels per group). ``underflow`` (n, d), from
    :func:`underflow_term`, adds Σ|v_i|·η_i per row and group.

    Raises:
        DegenerateScaleError: some γᵢ is zero or not finite.
    """
    d = gamma.size
    k = d // groups
    out = np.empty(normaliser.spread.shape)
    for grp in range(groups):
        sl = slice(grp * k, (grp + 1) * k)
        g, b = gamma[sl], beta[sl]
        a = kernel_error_bound(g, dtype, compute_dtype=compute_dtype, mean_ratio=0.0).residual
        slope = kernel_error_bound(g, dtype, compute_dtype=compute_dtype, mean_ratio=1.0).residual - a
        c = kernel_error_bound(g, dtype, beta=FOLDED_BIAS_FACTOR * b, compute_dtype=compute_dtype,
                               mean_ratio=0.0).residual - a
        s, rho = normaliser.spread[:, grp], normaliser.mean_ratio[:, grp]
        with np.errstate(invalid="ignore", over="ignore"):
            out[:, grp] = a * np.maximum(1.0, s) + slope * rho + c
        if underflow is not None:
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                inv = 1.0 / g
                inv = inv / np.max(np.abs(inv))  # scaled first: γ near λ has 1/γ near overflow
                v = np.abs(inv) / np.linalg.norm(inv)
            out[:, grp] += underflow[:, sl] @ v
    return np.where(np.isnan(out), np.inf, out)


def folded_bias_term(gamma: FloatArray, beta: FloatArray, rho: FloatArray, *, compute_dtype: Any) -> FloatArray:
    """Extra per-entry forward error of a folded bias, u_c·(2|βᵢ| + 2|γᵢ|ρ) (units of y), shape (n, d).

    Folding computes fl(β − fl(rγ·μ)) and adds it to fl(x·rγ): two more roundings at the size
    of |β| + |γ|ρ than γẑ + β has (``forward_error_bound`` covers the rest).
    """
    uc = unit_roundoff(compute_dtype)
    r = np.asarray(rho, dtype=np.float64).reshape(-1, 1)
    return np.asarray(2.0 * uc * (np.abs(beta) + np.abs(gamma) * r), dtype=np.float64)
