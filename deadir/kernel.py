"""Measuring a predicted kernel direction against activations.

Two checks of different cost:

* :func:`projection_std` — the O(N·d) check: project every activation onto the unit
  direction v and take the standard deviation of the projections. For an exact
  kernel direction it is at the rounding floor. No covariance, no eigensolve.
* :func:`measure_kernel` — the full comparison: float64 centred covariance C, its
  eigen-decomposition, the Rayleigh quotient vᵀCv/λmax and the alignment of v with
  the measured bottom eigenvector.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from deadir.arrays import FloatArray, as_rows, as_vector, is_torch_tensor
from deadir.covariance import CovarianceAccumulator
from deadir.errors import InputShapeError
from deadir.precision import UNIT_ROUNDOFF

FLOAT64_ROUNDOFF = UNIT_ROUNDOFF["float64"]


def unit_direction(direction: Any, d: int, *, name: str = "direction") -> FloatArray:
    """Validate ``direction`` (length d, finite, non-zero) and return it normalised, float64.

    Raises:
        InputShapeError: wrong length, non-finite entries, or the zero vector.
    """
    v = as_vector(direction, name=name)
    if v.size != d:
        raise InputShapeError(f"{name}: expected length {d}, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise InputShapeError(f"{name}: contains NaN or infinite entries")
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        raise InputShapeError(f"{name}: is the zero vector, which spans no direction")
    return np.asarray(v / norm, dtype=np.float64)


def projection_std(activations: Any, direction: Any) -> float:
    """Standard deviation (ddof = 0, units of the activations) of ⟨v, y⟩ over all rows y.

    ``activations`` has shape (..., d); ``direction`` is normalised first. Costs O(N·d)
    and needs no covariance. Torch inputs are projected on their own device in float64.

    Raises:
        InputShapeError: shape mismatch, non-finite values, or zero direction.
    """
    if is_torch_tensor(activations):
        import torch

        t = activations.detach()
        d = int(t.shape[-1]) if t.ndim else 0
        v = torch.as_tensor(unit_direction(direction, d), device=t.device)
        rows = t.reshape(-1, d).to(torch.float64)
        if rows.shape[0] == 0 or not bool(torch.isfinite(rows).all()):
            raise InputShapeError("activations: empty, or contains NaN or infinite entries")
        p = rows @ v
        return float(torch.sqrt(torch.mean((p - p.mean()) ** 2)).item())
    rows = as_rows(activations, name="activations")
    if rows.shape[0] == 0:
        raise InputShapeError("activations: no rows")
    p = rows @ unit_direction(direction, rows.shape[1])
    return float(np.std(p))


@dataclasses.dataclass(frozen=True)
class KernelReport:
    """How well a predicted direction v is a kernel vector of the measured covariance C.

    Attributes:
        d, n: dimension and number of samples.
        eigvals: eigenvalues of C, ascending (float64; rounding can make the smallest
            slightly negative, they are reported as computed).
        lambda_max: the largest eigenvalue (units of y²).
        rayleigh_rel: vᵀCv / λmax — 0 for an exact kernel, ≈ rounding floor in practice.
        projection_std: std of ⟨v, y⟩ over the samples (units of y) = √(vᵀCv).
        floor_rel: eigenvalues ≤ floor_rel·λmax are indistinguishable from 0 by the
            float64 eigensolver (backward error ≈ d·u·λmax).
        floor_dim: how many eigenvalues lie at or below that floor.
        cos_bottom: |⟨v, bottom eigenvector⟩|, or None when it is ill-defined: when
            several eigenvalues lie at the floor, the bottom eigenvector is an arbitrary
            member of that subspace and the cosine means nothing.
        floor_subspace_cos: ‖projection of v onto the span of the floor eigenvectors‖ —
            the well-defined replacement when floor_dim > 1 (0.0 when floor_dim = 0).
        spectral_gap_rel: (λ₂ − λ₁)/λmax, the gap above the smallest eigenvalue; it
            bounds how well the bottom eigenvector is determined (Davis–Kahan).
    """

    d: int
    n: int
    eigvals: FloatArray
    lambda_max: float
    rayleigh_rel: float
    projection_std: float
    floor_rel: float
    floor_dim: int
    cos_bottom: float | None
    floor_subspace_cos: float
    spectral_gap_rel: float

    @property
    def cos_bottom_defined(self) -> bool:
        """Whether cos_bottom is meaningful (at most one eigenvalue at the floor)."""
        return self.cos_bottom is not None

    def n_near_null(self, rel_tol: float) -> int:
        """Number of eigenvalues ≤ rel_tol · λmax.

        Raises:
            InputShapeError: rel_tol not finite and ≥ 0.
        """
        if not (np.isfinite(rel_tol) and rel_tol >= 0):
            raise InputShapeError(f"rel_tol: must be finite and ≥ 0, got {rel_tol!r}")
        return int(np.count_nonzero(self.eigvals <= rel_tol * self.lambda_max))

    def to_dict(self, *, max_eigvals: int = 16) -> dict[str, Any]:
        """JSON-ready summary (the smallest ``max_eigvals`` eigenvalues)."""
        return {
            "d": self.d,
            "n": self.n,
            "lambda_max": self.lambda_max,
            "rayleigh_rel": self.rayleigh_rel,
            "projection_std": self.projection_std,
            "cos_bottom": self.cos_bottom,
            "floor_rel": self.floor_rel,
            "floor_dim": self.floor_dim,
            "floor_subspace_cos": self.floor_subspace_cos,
            "spectral_gap_rel": self.spectral_gap_rel,
            "smallest_eigvals": self.eigvals[:max_eigvals].tolist(),
        }


def eigensolver_floor_rel(d: int) -> float:
    """Relative floor below which float64 eigenvalues of a d×d covariance are noise.

    A backward-stable symmetric eigensolver returns eigenvalues with absolute error
    ≲ p(d)·u·‖C‖₂; we take p(d) = 4d, generous for LAPACK's divide and conquer.
    """
    return 4.0 * d * FLOAT64_ROUNDOFF


def measure_kernel(activations_or_accumulator: Any, direction: Any) -> KernelReport:
    """Measure the unit direction v against the centred float64 covariance of activations.

    ``activations_or_accumulator`` is an array of shape (..., d) (numpy or torch, any
    dtype; converted to float64) or a :class:`CovarianceAccumulator`. Costs one d×d
    eigendecomposition; for the O(N·d) check alone use :func:`projection_std`.

    Raises:
        InputShapeError: bad shapes, fewer than 2 samples, zero-variance data, or a
            bad direction.
    """
    src = activations_or_accumulator
    # Overflow (activations near 1e154 and beyond square past float64) raises instead of warning,
    # and is reported as bad input: a covariance of inf/NaN has no kernel to measure.
    try:
        with np.errstate(over="raise", invalid="raise"):
            if isinstance(src, CovarianceAccumulator):
                acc = src
                pstd: float | None = None
            else:
                if is_torch_tensor(src):
                    if src.ndim == 0:
                        raise InputShapeError("activations: expected shape (..., d), got a 0-d tensor")
                    rows = src.detach().reshape(-1, src.shape[-1])
                else:
                    rows = as_rows(src, name="activations")
                acc = CovarianceAccumulator(int(rows.shape[-1])).update(rows)
                pstd = projection_std(rows, direction)
            if acc.n < 2:
                raise InputShapeError(f"activations: need at least 2 samples for a covariance, got {acc.n}")
            v = unit_direction(direction, acc.d)
            c = acc.cov()
            if not np.all(np.isfinite(c)):
                raise FloatingPointError("non-finite covariance")
            eigvals, eigvecs = np.linalg.eigh(c)
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        raise InputShapeError(
            f"activations: the float64 covariance overflows or cannot be diagonalised ({exc}); "
            "rescale the activations (entries near 1e154 or larger square past float64)"
        ) from exc
    lam_max = float(eigvals[-1])
    if lam_max <= 0.0:
        raise InputShapeError("activations: every sample is identical; the covariance is zero and has no kernel")
    quad = float(v @ c @ v)
    floor_rel = eigensolver_floor_rel(acc.d)
    at_floor = eigvals <= floor_rel * lam_max
    floor_dim = int(np.count_nonzero(at_floor))
    cos_bottom = None if floor_dim > 1 else float(abs(eigvecs[:, 0] @ v))
    sub_cos = float(np.linalg.norm(eigvecs[:, at_floor].T @ v)) if floor_dim else 0.0
    gap = float((eigvals[1] - eigvals[0]) / lam_max) if acc.d > 1 else 1.0
    return KernelReport(
        d=acc.d,
        n=acc.n,
        eigvals=eigvals,
        lambda_max=lam_max,
        rayleigh_rel=quad / lam_max,
        projection_std=pstd if pstd is not None else float(np.sqrt(max(quad, 0.0))),
        floor_rel=floor_rel,
        floor_dim=floor_dim,
        cos_bottom=cos_bottom,
        floor_subspace_cos=sub_cos,
        spectral_gap_rel=gap,
    )
