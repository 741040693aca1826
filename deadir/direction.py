"""The predicted dead direction v = γ⁻¹/‖γ⁻¹‖ of a mean-centring norm, and dead channels.

The direction is read from the scale vector alone: no forward pass, no covariance,
no eigensolve. It is computed without overflow or underflow for every |γᵢ| in the
float64 range by inverting a rescaled vector (see :func:`inverse_scale_direction`).

Dead channels (|γᵢ| negligible against the typical |γ|, as in MiniLM and MPNet
where some γᵢ ≈ 1e-33) are treated as follows: each such eᵢ is an exact (γᵢ = 0)
or numerically exact null direction of its own, because the channel's output is
β_i whatever the input. Since 1/γᵢ is then enormous, v is almost eᵢ and says
little about the live channels; reports therefore list dead channels separately
(:func:`dead_channels`) and give the share of v on the live channels
(:func:`live_fraction`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from deadir.arrays import FloatArray, as_vector
from deadir.errors import DegenerateScaleError, InputShapeError

IntArray = npt.NDArray[np.intp]


def real_offset(offset: Any) -> float:
    """``offset`` as a finite float (a real number: int, float, numpy scalar; not a string or a bool).

    Raises:
        InputShapeError: not a real number, not finite, or beyond float64 (e.g. a 401-digit integer).
    """
    if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, float, np.integer, np.floating)):
        raise InputShapeError(f"offset: expected a real number, got {type(offset).__name__} {offset!r}")
    try:
        value = float(offset)
    except OverflowError as exc:
        raise InputShapeError(f"offset: {str(offset)[:20]}... is beyond float64") from exc
    if not np.isfinite(value):
        raise InputShapeError(f"offset: must be finite, got {offset!r}")
    return value


def effective_scale(gamma: Any, *, offset: float = 0.0, name: str = "gamma") -> FloatArray:
    """Return γ + offset as float64 (offset 1.0 for Gemma-style (1 + w) scaling).

    Raises:
        InputShapeError: ``gamma`` is not a non-empty 1-D real vector, or ``offset`` is not finite.
        DegenerateScaleError: some γᵢ + offset is zero, NaN or infinite (indices named).
    """
    offset = real_offset(offset)
    g = as_vector(gamma, name=name) + offset
    kinds: dict[int, str] = {}
    for i in np.flatnonzero(np.isnan(g)):
        kinds[int(i)] = "nan"
    for i in np.flatnonzero(np.isinf(g)):
        kinds[int(i)] = "inf"
    for i in np.flatnonzero(g == 0.0):
        kinds[int(i)] = "zero"
    if kinds:
        idx = tuple(sorted(kinds))
        shown = ", ".join(f"{i} ({kinds[i]})" for i in idx[:20])
        more = f" and {len(idx) - 20} more" if len(idx) > 20 else ""
        raise DegenerateScaleError(
            f"{name}: effective scale (gamma + offset={offset}) is zero, NaN or infinite at "
            f"{len(idx)} of {g.size} indices: {shown}{more}; 1/gamma is undefined there "
            "(a zero scale makes e_i a null direction of its own: see deadir.dead_channels)",
            indices=idx,
            kinds=kinds,
        )
    return g


def inverse_scale_direction(gamma: Any, *, offset: float = 0.0) -> FloatArray:
    """Unit vector v ∝ 1/(γ + offset) in float64: the predicted kernel of a LayerNorm.

    ``gamma`` may be a numpy array, a Python sequence or a torch tensor of any real
    dtype on any device. The result is computed as m/(γ + offset) with m the smallest
    |γᵢ + offset| and then normalised, so no entry overflows and tiny scales (down to
    the smallest float64) are handled; entries that are negligible against 1 may
    round to zero, which is their correctly rounded value.

    Sign convention: v and -v span the same direction; deadir returns the one whose
    largest-magnitude entry (the first of them, if tied) is positive.

    Raises:
        InputShapeError: empty or non-1-D ``gamma``, or non-finite ``offset``.
        DegenerateScaleError: zero, NaN or infinite effective scales (indices named).
    """
    g = effective_scale(gamma, offset=offset)
    m = float(np.min(np.abs(g)))
    w = m / g  # |w| ≤ 1, max |w| = 1: no overflow, underflow only where negligible
    w = w / np.linalg.norm(w)
    k = int(np.argmax(np.abs(w)))
    if w[k] < 0:
        w = -w
    return np.asarray(w, dtype=np.float64)


def dead_channels(gamma: Any, *, rel_tol: float, offset: float = 0.0) -> IntArray:
    """Indices i with |γᵢ + offset| ≤ rel_tol · median(|γ + offset|), sorted ascending.

    Exact zeros are included. Such channels output β_i (up to γᵢ·zᵢ, negligible), so
    each eᵢ is a null direction of the output covariance of its own.

    Raises:
        InputShapeError: ``rel_tol`` not in (0, 1), or ``gamma`` not a non-empty 1-D vector.
        DegenerateScaleError: NaN or infinite entries (zeros are reported, not raised).
    """
    if not (np.isfinite(rel_tol) and 0.0 < rel_tol < 1.0):
        raise InputShapeError(f"rel_tol: must lie in (0, 1), got {rel_tol!r}")
    g = as_vector(gamma, name="gamma") + real_offset(offset)
    bad = np.flatnonzero(~np.isfinite(g))
    if bad.size:
        raise DegenerateScaleError(
            f"gamma: NaN or infinite effective scale at indices {bad[:20].tolist()}",
            indices=tuple(int(i) for i in bad),
            kinds={int(i): ("nan" if np.isnan(g[i]) else "inf") for i in bad},
        )
    a = np.abs(g)
    typical = float(np.median(a))
    return np.flatnonzero(a <= rel_tol * typical).astype(np.intp)


def live_fraction(gamma: Any, dead: IntArray, *, offset: float = 0.0) -> float:
    """‖v restricted to live channels‖ for v = γ⁻¹/‖γ⁻¹‖ (1.0 when no channel is dead).

    Near 0 means the predicted direction is essentially the dead-channel axes. When a
    dead channel is exactly zero (v undefined) the value is computed for the live part
    alone and is 0.0.
    """
    g = as_vector(gamma, name="gamma") + float(offset)
    if dead.size == 0:
        return 1.0
    if np.any(g[dead] == 0.0):
        return 0.0
    v = inverse_scale_direction(g)
    live = np.ones(g.size, dtype=bool)
    live[dead] = False
    return float(np.linalg.norm(v[live]))
