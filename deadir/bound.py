"""A-priori floating-point bounds (T10): the kernel bound and the forward bound, side by side.

:func:`kernel_error_bound` bounds how far computed LayerNorm outputs leave the hyperplane
⟨γ⁻¹, y − β⟩ = 0; :func:`forward_error_bound` bounds each computed output entry |ŷᵢ − yᵢ|
(the T8 shift-invariance check compares two outputs within the sum of two such bounds).

Exact arithmetic puts every LayerNorm output on ⟨γ⁻¹, y − β⟩ = 0 (T1). A LayerNorm computed
in a format with unit roundoff u does not; this module bounds, before any measurement, the
residual |⟨v, ŷ − β⟩| of one computed output row ŷ (v = γ⁻¹/‖γ⁻¹‖) and the relative Rayleigh
quotient vᵀĈv/λmax of the empirical covariance Ĉ of computed outputs. Property tests use it
as their tolerance instead of a magic number.

Derivation (first order; proved step by step with SymPy in ``proofs.t10_float``).
Standard model: every floating-point operation returns fl(a∘b) = (a∘b)(1+δ), |δ| ≤ u, and
γ_k = k·u/(1 − k·u). Let u_c be the unit roundoff of the format the statistics and affine map
are computed in (``compute_dtype``) and u that of the output format (``dtype``). Write
μ̂ = μ + e for the computed mean, ρ for a bound on |μ|/σ of the input rows (``mean_ratio``)
and S_β = Σᵢ|βᵢ/γᵢ|. Modelling the computed standardised value ẑᵢ = (xᵢ − μ̂)(1+αᵢ)·r̂·(1+τᵢ)
and ŷᵢ = (γᵢẑᵢ(1+δ₁ᵢ) + βᵢ)(1+δ₂ᵢ)(1+δ₃ᵢ) (δ₃ the final cast, absent when the two formats
agree), to first order in the δ's

    ⟨γ⁻¹, ŷ − β⟩ = −d·e·r̂ + Σᵢ ẑᵢ(αᵢ + τᵢ + δ₁ᵢ + δ₂ᵢ + δ₃ᵢ) + Σᵢ (βᵢ/γᵢ)(δ₂ᵢ + δ₃ᵢ).

The first term is the rounding of the centring; the last brings in |βᵢ/γᵢ|, huge exactly
where γᵢ is tiny. With |e| ≤ γ_{d+1}(|μ| + σ) (any summation order, then the division),
r̂ ≤ 1/σ, Σᵢ|ẑᵢ| ≤ √d‖ẑ‖ ≤ d (‖z‖² ≤ d; each |zᵢ| ≤ √(d−1)), and allowing every elementwise
standardisation rounding the magnitude |zᵢ| + ρ (this also covers the fused form
ẑᵢ = xᵢ·r̂ − μ̂·r̂ used by PyTorch's CPU kernel, whose three roundings per element have
magnitudes ≤ |zᵢ| + ρ, ρ and |ẑᵢ|):

    |⟨γ⁻¹, ŷ − β⟩| ≤ d·γ_{d+1}(u_c)·(1 + ρ) + 3·u_c·d·(1 + ρ) + u_c·(2d + S_β) + [u·(d + S_β)]

and |⟨v, ŷ − β⟩| is that divided by ‖γ⁻¹‖ (``residual``, in the units of y). For N rows,
vᵀĈv = (1/N)Σ_k(⟨v, ŷ_k − β⟩ − mean)² ≤ max_k⟨v, ŷ_k − β⟩² ≤ residual², hence
vᵀĈv/λmax ≤ residual²/λmax (``rayleigh_rel``; multiply by N/(N−1) for the unbiased Ĉ).

A-priori Rayleigh quotient (no measurement). Hypothesis (stated as data, ``variance_floor`` η):
λmax(Ĉ) ≥ η·max_i γᵢ². For isotropic Gaussian inputs η = 1 exactly: by T3, C = d/(d−1)·diag(γ)P
diag(γ), whose diagonal entries are γᵢ², and λmax ≥ every diagonal entry (Rayleigh–Ritz); the
default η = 1/2 leaves room for sampling error and non-isotropic inputs. Then

    vᵀĈv/λmax ≤ residual²/(η·max γ²)                                  (``rayleigh_rel_apriori``)
              ≤ [R + (u_c + u)·d·b·κ]²/(η·d)                           (``rayleigh_rel_spread``)

with κ = max|γ|/min|γ| (``scale_spread``), b = max|β|/max|γ| (``beta_ratio``) and
R = d·γ_{d+1}(u_c)(1+ρ) + 3u_c·d(1+ρ) + 2d·u_c + [d·u], using ‖γ⁻¹‖ ≥ √d/max|γ| and
S_β ≤ d·b·κ. The second form depends only on d, u, u_c, ρ, κ, b and η. Both are for the biased
Ĉ (multiply by N/(N−1) for the unbiased one).

Limits. The bound is first order (terms O(u²) dropped) and void (``valid`` False,
``residual`` = inf) when (d+1)·u_c ≥ 1. No x-free bound exists without ρ: when |μ| ≫ σ the
computed mean's rounding is amplified by 1/σ (catastrophic cancellation), so ρ must bound
|mean(x)|/std(x) of the rows the bound is applied to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deadir.arrays import FloatArray, as_vector
from deadir.direction import effective_scale, real_offset
from deadir.errors import InputShapeError
from deadir.precision import SMALLEST_SUBNORMAL, UNIT_ROUNDOFF, dtype_name, unit_roundoff

__all__ = ["KernelErrorBound", "forward_error_bound", "gamma_k", "kernel_error_bound", "unit_roundoff"]



def gamma_k(k: int, u: float) -> float:
    """Higham's constant γ_k = k·u/(1 − k·u); inf when k·u ≥ 1 (the constant is undefined)."""
    ku = k * u
    return math.inf if ku >= 1.0 else ku / (1.0 - ku)


@dataclass(frozen=True)
class KernelErrorBound:
    """The a-priori bound of one LayerNorm configuration (see the module docstring).

    Attributes:
        d: feature dimension.
        dtype, compute_dtype: output format and the format of the statistics/affine map.
        unit_roundoff, compute_unit_roundoff: their unit roundoffs u and u_c.
        mean_ratio: ρ, the bound on |mean(x)|/std(x) of the rows the bound applies to.
        beta_over_gamma: S_β = Σ|βᵢ/γᵢ| (0 when no β was given).
        inverse_norm: ‖γ⁻¹‖.
        centring_term: d·γ_{d+1}(u_c)(1+ρ) + 3u_c·d(1+ρ), rounding of the standardisation.
        affine_term: u_c(2d + S_β), rounding of γẑ + β.
        cast_term: u(d + S_β) for the final cast to ``dtype`` (0 when the formats agree).
        residual_raw: bound on |⟨γ⁻¹, ŷ − β⟩| (units of y times units of γ⁻¹).
        residual: bound on |⟨v, ŷ − β⟩|, v = γ⁻¹/‖γ⁻¹‖ (units of y).
        valid: False when (d+1)·u_c ≥ 1 (then the residual is inf).
        scale_spread: κ = max|γ|/min|γ|.
        beta_ratio: b = max|β|/max|γ| (0 when no β was given).
        variance_floor: η, the hypothesis λmax(Ĉ) ≥ η·max γ² (η = 1 for isotropic Gaussian inputs, T3).
        rayleigh_rel_apriori: residual²/(η·max γ²), an a-priori bound on vᵀĈv/λmax (biased Ĉ).
        rayleigh_rel_spread: [R + (u_c + u)·d·b·κ]²/(η·d) ≥ rayleigh_rel_apriori, in d, u, ρ, κ, b, η only.
    """

    d: int
    dtype: str
    compute_dtype: str
    unit_roundoff: float
    compute_unit_roundoff: float
    mean_ratio: float
    beta_over_gamma: float
    inverse_norm: float
    centring_term: float
    affine_term: float
    cast_term: float
    residual_raw: float
    residual: float
    valid: bool
    scale_spread: float = math.nan
    beta_ratio: float = 0.0
    variance_floor: float = 0.5
    rayleigh_rel_apriori: float = math.inf
    rayleigh_rel_spread: float = math.inf

    def rayleigh_rel(self, lambda_max: float, *, n_samples: int | None = None) -> float:
        """Bound on vᵀĈv/λmax: residual²/λmax (× N/(N−1) when ``n_samples`` = N is given for the unbiased Ĉ).

        Raises:
            InputShapeError: lambda_max is not a positive finite number, or n_samples < 2.
        """
        if not (math.isfinite(lambda_max) and lambda_max > 0.0):
            raise InputShapeError(f"lambda_max: must be positive and finite, got {lambda_max!r}")
        factor = 1.0
        if n_samples is not None:
            if n_samples < 2:
                raise InputShapeError(
                    f"n_samples: need at least 2 rows for an unbiased covariance, got {n_samples}"
                )
            factor = n_samples / (n_samples - 1)
        return factor * self.residual**2 / lambda_max


def kernel_error_bound(
    gamma: Any,
    dtype: Any,
    d: int | None = None,
    *,
    beta: Any = None,
    offset: float = 0.0,
    compute_dtype: Any = None,
    mean_ratio: float = 1.0,
    variance_floor: float = 0.5,
) -> KernelErrorBound:
    """First-order a-priori bound on |⟨v, ŷ − β⟩| for one LayerNorm output row computed in ``dtype``.

    Args:
        gamma: the stored scale (numpy array, sequence or torch tensor); the effective scale is
            gamma + offset (offset 1.0 for Gemma-style (1 + w)). Pass the values as stored in
            ``dtype``: the bound is about the arithmetic, not the parameter rounding.
        dtype: output format (numpy/torch dtype or name).
        d: feature dimension, default len(gamma) (must equal it when given).
        beta: the shift β (same length); omitted means β = 0 (then S_β = 0).
        offset: added to gamma before inverting.
        compute_dtype: format of the statistics and affine map (default: ``dtype``); e.g.
            float32 for PyTorch's half-precision kernels, which accumulate in float32.
        mean_ratio: ρ ≥ 0, an upper bound on |mean(x)|/std(x) of the input rows.
        variance_floor: η > 0, the hypothesis λmax(Ĉ) ≥ η·max γ² behind the a-priori Rayleigh
            bounds (η = 1 holds exactly for isotropic Gaussian inputs, T3; default 1/2).

    Returns:
        KernelErrorBound; ``residual`` is in the units of y.

    Raises:
        InputShapeError: bad shapes, d ≠ len(gamma), d < 2, unknown dtype, negative/non-finite
            mean_ratio or offset, non-finite beta, variance_floor not positive and finite.
        DegenerateScaleError: some gamma + offset is zero or non-finite (indices named).
    """
    offset = real_offset(offset)
    if not (math.isfinite(mean_ratio) and mean_ratio >= 0.0):
        raise InputShapeError(f"mean_ratio: must be finite and >= 0, got {mean_ratio!r}")
    if not (math.isfinite(variance_floor) and variance_floor > 0.0):
        raise InputShapeError(f"variance_floor: must be positive and finite, got {variance_floor!r}")
    g = as_vector(gamma, name="gamma") + float(offset)
    if d is None:
        d = int(g.size)
    elif d != g.size:
        raise InputShapeError(f"d: {d} does not match len(gamma) = {g.size}")
    if d < 2:
        raise InputShapeError(f"d: LayerNorm needs d >= 2 features, got {d}")
    g = effective_scale(g)  # names zero / NaN / inf indices in a DegenerateScaleError
    # Every sum involving 1/γ is formed scaled by the smallest |γ| (amin): 1/γ itself overflows
    # when some |γᵢ| is near float64's smallest normal, and β/γ even sooner.
    amin = float(np.min(np.abs(g)))
    scaled_inv = amin / np.abs(g)  # in (0, 1]
    amax = float(np.max(np.abs(g)))
    if beta is None:
        s_beta_scaled = 0.0
        b_max = 0.0
    else:
        b = as_vector(beta, name="beta")
        if b.size != d:
            raise InputShapeError(f"beta: length {b.size} does not match len(gamma) = {d}")
        if not np.all(np.isfinite(b)):
            raise InputShapeError(
                f"beta: non-finite entries at {np.flatnonzero(~np.isfinite(b)).tolist()[:20]}"
            )
        s_beta_scaled = float(np.sum(np.abs(b) * scaled_inv))  # = amin · Σ|βᵢ/γᵢ|
        b_max = float(np.max(np.abs(b)))
    out_name = dtype_name(dtype)
    comp_name = out_name if compute_dtype is None else dtype_name(compute_dtype)
    u, uc = UNIT_ROUNDOFF[out_name], UNIT_ROUNDOFF[comp_name]
    scaled_norm = float(np.linalg.norm(scaled_inv))  # = amin · ‖γ⁻¹‖, in [1, √d]
    rho = float(mean_ratio)
    gk = gamma_k(d + 1, uc)
    centring = d * gk * (1.0 + rho) + 3.0 * uc * d * (1.0 + rho)
    u_cast = u if out_name != comp_name else 0.0
    # Python floats: a quotient past the float64 range is inf, not a warning.
    s_beta = s_beta_scaled / amin
    inv_norm = scaled_norm / amin
    affine = uc * (2.0 * d + s_beta)
    cast = u_cast * (d + s_beta) if u_cast else 0.0
    raw = centring + affine + cast
    # residual = raw / ‖γ⁻¹‖, formed from the scaled sums so that it stays finite when raw is not
    residual = ((centring + 2.0 * d * uc + u_cast * d) * amin + (uc + u_cast) * s_beta_scaled) / scaled_norm
    valid = math.isfinite(centring) and math.isfinite(residual)
    # A-priori Rayleigh bounds (module docstring); products, not **, so overflow gives inf.
    eta = float(variance_floor)
    kappa = amax / amin
    b_ratio = b_max / amax
    rel = residual / amax
    apriori = rel * rel / eta if valid else math.inf
    beta_term = (uc + u_cast) * d * b_ratio * kappa if b_max > 0.0 else 0.0  # 0·inf is not 0
    head = centring + 2.0 * d * uc + u_cast * d + beta_term
    spread = head * head / (eta * d) if valid else math.inf
    return KernelErrorBound(
        d=d,
        dtype=out_name,
        compute_dtype=comp_name,
        unit_roundoff=u,
        compute_unit_roundoff=uc,
        mean_ratio=rho,
        beta_over_gamma=s_beta,
        inverse_norm=inv_norm,
        centring_term=centring,
        affine_term=affine,
        cast_term=cast,
        residual_raw=raw,
        residual=residual if valid else math.inf,
        valid=valid,
        scale_spread=kappa,
        beta_ratio=b_ratio,
        variance_floor=eta,
        rayleigh_rel_apriori=apriori,
        rayleigh_rel_spread=spread,
    )


def forward_error_bound(z: FloatArray, gamma: FloatArray, beta: FloatArray, rho: FloatArray, *, dtype: Any,
                        compute_dtype: Any) -> FloatArray:
    """First-order bound on |ŷᵢ − yᵢ| of a LayerNorm row computed in floating point (units of y), per entry.

    Derivation (standard model fl(a∘b) = (a∘b)(1+δ), |δ| ≤ u; u_c of ``compute_dtype``,
    u of ``dtype``; z the exact standardised row, ρ = |μ|/√(σ²+ε) per row; Higham's γ_k):

    * the computed mean errs by |e| ≤ γ_{d+1}(u_c)(|μ| + σ), which shifts every ẑᵢ by
      |e|·r̂ ≤ γ_{d+1}(u_c)(1 + ρ) (r̂ = 1/√(σ̂² + ε));
    * the variance, accumulated two-pass or by Welford's update, has relative error
      ≤ γ_{2d+4}(u_c)(1 + ρ) (Welford: n·u·κ with κ = √(1+ρ²) ≤ 1 + ρ; two-pass: γ_{d+2},
      the mean error entering only at second order); the square root halves it and the
      reciprocal and division add 2u_c: η = γ_{2d+4}(u_c)(1+ρ) + 2u_c on r̂;
    * the elementwise standardisation, also in PyTorch's fused form xᵢr̂ − μ̂r̂, rounds
      three values of magnitude ≤ |zᵢ| + ρ: 3u_c(|zᵢ| + ρ);
    * γᵢẑᵢ + βᵢ rounds twice in the compute dtype, and up to twice more in the output
      dtype (a cast, plus the affine map done after the cast as in Llama-style modules):
      (2u_c + 2u)(|γᵢzᵢ| + |βᵢ|).

    Hence |ŷᵢ − yᵢ| ≤ |γᵢ|·(γ_{d+1}(1+ρ) + 3u_c(|zᵢ|+ρ) + η|zᵢ|) + (2u_c + 2u)(|γᵢzᵢ| + |βᵢ|),
    to first order in u, plus 2(s_c + s) for the four roundings of γᵢẑᵢ + βᵢ whose results may be
    subnormal (γ near the smallest normal), where the error is absolute, at most half the smallest
    subnormal s of the format. Shape of the result: that of ``z``.
    """
    u, uc = unit_roundoff(dtype), unit_roundoff(compute_dtype)
    d = z.shape[-1]
    r = np.asarray(rho, dtype=np.float64).reshape(-1, 1)
    eta = gamma_k(2 * d + 4, uc) * (1.0 + r) + 2.0 * uc
    az = np.abs(z)
    ag = np.abs(gamma)
    return np.asarray(
        ag * (gamma_k(d + 1, uc) * (1.0 + r) + 3.0 * uc * (az + r) + eta * az)
        + (2.0 * uc + 2.0 * u) * (ag * az + np.abs(beta))
        + 2.0 * (SMALLEST_SUBNORMAL[dtype_name(compute_dtype)] + SMALLEST_SUBNORMAL[dtype_name(dtype)]),
        dtype=np.float64,
    )
