"""Conditioned norms (adaptive LayerNorm, DiT's adaLN): γ and β computed per row from a condition.

Protocol. The factory returns a norm called as ``norm(x, cond)`` (x of shape (n, d), cond of
shape (n, c), torch tensors) that also provides ``deadir_affine(cond) -> (gamma, beta)``, each
of shape (n, d): the effective scale and shift it applies to each row (for adaLN,
γ = 1 + scale(cond), β = shift(cond)), and ``deadir_cond_dim`` (c). The algebra then holds
row by row: T1 ⟨γ_k⁻¹, y_k − β_k⟩ = 0 for every row k with its own γ_k, β_k, and T8
(y(x + t𝟙, cond) = y(x, cond)). T2 needs one γ for all rows and does not apply.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.direction import inverse_scale_direction
from deadir.errors import InputShapeError
from deadir.precision import UNIT_ROUNDOFF, default_compute_dtype, dtype_name
from deadir.testing.assertions import (
    Measurement,
    NormPropertyError,
    UndefinedOutputError,
    _exact_shift_grid,
    forward_error_bound,
)
from deadir.testing.harness import NormCallError, call_with_timeout, format_exception
from deadir.testing.tolerance import effective_normaliser, folded_bias_term, hyperplane_tolerance, underflow_term

__all__ = ["CONDITIONED_PROPERTIES", "check_conditioned"]

CONDITIONED_PROPERTIES = ("T1 hyperplane", "T8 shift invariance")


def _call(norm: Any, x: FloatArray, cond: FloatArray, dtype: str, timeout: float | None
          ) -> tuple[FloatArray, FloatArray, FloatArray, str]:
    import torch

    tdt = getattr(torch, dtype)

    if isinstance(norm, torch.nn.Module):
        norm.to(tdt)  # the norm runs in the dtype under test, like an unconditioned module (idempotent)

    def work() -> tuple[Any, Any, Any]:
        with torch.no_grad():
            xt, ct = torch.from_numpy(x).to(tdt), torch.from_numpy(cond).to(tdt)
            y = norm(xt, ct)
            g, b = norm.deadir_affine(ct)
            return y, g, b

    try:
        y, g, b = call_with_timeout(work, timeout, what=f"conditioned norm {type(norm).__name__}")
    except InputShapeError:
        raise
    except Exception as exc:
        if isinstance(exc, NormCallError) or type(exc).__module__.startswith("deadir"):
            raise
        raise NormCallError(f"conditioned norm {type(norm).__name__} raised {type(exc).__name__}: {exc}",
                            details=format_exception(exc)) from exc
    as64 = [np.asarray(t.detach().to(torch.float64).numpy()) for t in (y, g, b)]
    for label, arr in zip(("output", "deadir_affine gamma", "deadir_affine beta"), as64, strict=True):
        if arr.shape != x.shape:
            raise InputShapeError(f"conditioned norm: {label} has shape {arr.shape}, expected {x.shape}")
    return as64[0], as64[1], as64[2], str(y.dtype).removeprefix("torch.")


def check_conditioned(prop: str, norm: Any, x: FloatArray, cond: FloatArray, t: FloatArray, *, dtype: Any,
                      compute_dtype: Any = None, timeout: float | None = None) -> Measurement:
    """Check ``prop`` (T1 or T8) of a conditioned norm row by row (see the module docstring).

    Raises:
        NormPropertyError: a row breaks the property beyond its tolerance.
        UndefinedOutputError: no row is decidable (constant rows, a zero γ).
        InputShapeError, NormCallError, NormTimeoutError: bad shapes, the norm raised or hung.
    """
    name = dtype_name(dtype)
    comp = dtype_name(compute_dtype) if compute_dtype is not None else default_compute_dtype(name)
    xs = x
    if prop == "T8 shift invariance":  # x and x + t both exact in the coarser dtype (assertions.check_shift)
        coarse = max(name, comp, key=UNIT_ROUNDOFF.__getitem__)
        x, ts = _exact_shift_grid(x, t.reshape(-1, 1), coarse)
        xs = x + ts
    y, g, b, out = _call(norm, x, cond, name, timeout)
    if not np.all(np.isfinite(y)):
        raise NormPropertyError("finite output", measured=math.inf, bound=math.nan, gamma=g[:1], beta=b[:1],
                                x=x[:1], eps=None, dtype=out, d=x.shape[1], detail="NaN or infinite output")
    keep = np.all(g != 0, axis=1) & np.all(np.isfinite(g), axis=1)
    norm_fit = effective_normaliser(x, y, g, b, dtype=out, compute_dtype=comp)
    keep &= norm_fit.measurable
    if not np.any(keep):
        raise UndefinedOutputError("x: no row with a non-zero γ(cond) and a varying input")
    rows = np.flatnonzero(keep)
    if prop == "T1 hyperplane":
        worst = (0.0, 1.0, -1)
        for i in rows.tolist():
            v = inverse_scale_direction(g[i])
            resid = abs(float((y[i] - b[i]) @ v))
            tol = float(hyperplane_tolerance(g[i], b[i], norm_fit.select(np.array([i])), dtype=out,
                                             compute_dtype=comp,
                                             underflow=underflow_term(x[i : i + 1], g[i], dtype=out,
                                                                      compute_dtype=comp))[0, 0])
            if resid / tol > worst[0] / worst[1] or worst[2] < 0:
                worst = (resid, tol, i)
        resid, tol, k = worst
        if not resid <= tol:
            raise NormPropertyError("T1 hyperplane", measured=resid, bound=tol, gamma=g[k], beta=b[k],
                                    x=x[k : k + 1], eps=None, dtype=out, d=x.shape[1],
                                    detail=f"row {k} with its own gamma(cond), beta(cond); cond = {cond[k][:8]}")
        return Measurement("T1 hyperplane", resid, tol, resid / tol, x.shape[1], rows.size, out)
    if prop != "T8 shift invariance":
        raise InputShapeError(f"properties: {prop!r} does not apply to a conditioned norm: {CONDITIONED_PROPERTIES}")
    y1, _, _, _ = _call(norm, xs, cond, name, timeout)
    fit1 = effective_normaliser(xs, y1, g, b, dtype=out, compute_dtype=comp)
    bound = np.zeros_like(y)
    for fit in (norm_fit, fit1):
        rho = fit.mean_ratio.max(axis=1)
        bound += (forward_error_bound(fit.z, g, b, rho, dtype=out, compute_dtype=comp)
                  + folded_bias_term(g, b, rho, compute_dtype=comp))
    bound += underflow_term(x, g, dtype=out, compute_dtype=comp) + underflow_term(xs, g, dtype=out, compute_dtype=comp)
    keep &= fit1.measurable
    diff = np.where(keep[:, None], np.abs(y1 - y), 0.0)
    ratio = diff / bound
    r, c = (int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
    if not ratio[r, c] <= 1.0:
        raise NormPropertyError("T8 shift invariance", measured=diff[r, c], bound=bound[r, c], gamma=g[r],
                                beta=b[r], x=x[r : r + 1], eps=None, dtype=out, d=x.shape[1],
                                detail=f"|y(x + t, cond) - y(x, cond)| at row {r}, channel {c}")
    return Measurement("T8 shift invariance", float(diff[r, c]), float(bound[r, c]), float(ratio[r, c]),
                       x.shape[1], int(keep.sum()), out)
