"""Hypothesis strategies for the domains of the deadir theorems: sizes, scales, shifts, ε and inputs.

Arrays are generated from a drawn *family* and a drawn seed with numpy's generator rather
than element by element: a 4096-wide row drawn entry by entry would cost Hypothesis
thousands of choices and make shrinking useless. Shrinking then acts on the family, the
size, the seed and the scale parameters, which is what a reader of a counterexample
wants to see minimised ("d = 2, constant γ, Gaussian rows").

Every strategy takes the ``dtype`` the norm under test computes in and returns float64
arrays whose values are exactly representable in that dtype (round-tripped through it),
so the float64 measurements see exactly what the norm saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from deadir import precision
from deadir.arrays import FloatArray
from deadir.errors import InputShapeError

__all__ = [
    "ACTIVATION_FAMILIES",
    "BETA_FAMILIES",
    "GAMMA_FAMILIES",
    "activations",
    "betas",
    "dims",
    "dtype_name",
    "epsilons",
    "gammas",
    "round_to_dtype",
]

MAX_DIM = 4096
GAMMA_FAMILIES = ("ones", "constant", "positive", "negative", "mixed", "near-constant", "log-spread", "tiny")
BETA_FAMILIES = ("zeros", "small", "normal", "offset", "integer")
ACTIVATION_FAMILIES = ("gaussian", "student-t", "low-rank", "near-constant", "offset", "integer", "mixture")
_SPECIAL_DIMS = (1, 2, 3, 5, 7, 8, 31, 63, 64, 127, 255, 257, 511, 768, 1023, 1025, 2047, 4095, 4096)


def dtype_name(dtype: Any) -> str:
    """Canonical float dtype name ("float16", "bfloat16", "float32", "float64") of a name, numpy or torch dtype.

    Raises:
        InputShapeError: not one of those four formats.
    """
    return precision.dtype_name(dtype)


def _torch_dtype(dtype: str) -> Any:
    import torch

    return getattr(torch, dtype)


def round_to_dtype(values: Any, dtype: Any) -> FloatArray:
    """``values`` rounded to ``dtype`` (round to nearest, as torch casts) and returned as float64.

    Raises:
        InputShapeError: unknown dtype.
    """
    name = dtype_name(dtype)
    arr = np.asarray(values, dtype=np.float64)
    if name == "float64":
        return arr.copy()
    import torch

    return np.asarray(torch.from_numpy(arr).to(_torch_dtype(name)).to(torch.float64).numpy())


def _finfo(dtype: str) -> tuple[float, float]:
    """(smallest positive normal, largest finite) of ``dtype``."""
    import torch

    fi = torch.finfo(_torch_dtype(dtype))
    return float(fi.tiny), float(fi.max)


def _check_dim(d: Any, name: str = "d") -> int:
    if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or not 1 <= d <= MAX_DIM:
        raise InputShapeError(f"{name}: must be an integer in [1, {MAX_DIM}], got {d!r}")
    return int(d)


def dims(*, min_value: int = 1, max_value: int = MAX_DIM) -> st.SearchStrategy[int]:
    """Normalised sizes d in [min_value, max_value], mostly small, with odd sizes and the usual widths.

    Raises:
        InputShapeError: bounds outside [1, 4096] or min_value > max_value.
    """
    lo, hi = _check_dim(min_value, "min_value"), _check_dim(max_value, "max_value")
    if lo > hi:
        raise InputShapeError(f"dims: min_value {lo} exceeds max_value {hi}")
    parts: list[st.SearchStrategy[int]] = [st.integers(lo, min(hi, max(lo, 16)))]
    if hi > 16:
        parts.append(st.integers(max(lo, 17), hi))
    special = [v for v in _SPECIAL_DIMS if lo <= v <= hi]
    if special:
        parts.append(st.sampled_from(special))
    return st.one_of(parts)


def gammas(d: int, *, dtype: Any = "float64", allow_zero: bool = False) -> st.SearchStrategy[FloatArray]:
    """Scale vectors γ of length d, representable in ``dtype``.

    Families: all ones, one constant (either sign), positive, negative, mixed signs,
    near-constant (c·(1 + 1e-3·noise)), log-spread magnitudes up to 10^±6 (capped by the
    dtype's range) with mixed signs, and vectors with entries near the dtype's smallest
    normal. With ``allow_zero`` some examples carry exact zeros (T6); without it, entries
    that round to zero in ``dtype`` are replaced by the smallest positive normal.

    Raises:
        InputShapeError: bad d or dtype.
    """
    d = _check_dim(d)
    name = dtype_name(dtype)
    tiny, big = _finfo(name)
    # |y| ≤ |γ|·√d + |β|: keep the product finite in the dtype
    cap = min(1e6, big / (8.0 * np.sqrt(MAX_DIM) + 1.0))

    return _draw_gamma(d, name, tiny, cap, allow_zero)


@st.composite
def _draw_gamma(draw: Any, d: int, name: str, tiny: float, cap: float, allow_zero: bool) -> FloatArray:
    family = draw(st.sampled_from(GAMMA_FAMILIES), label="gamma family")
    seed = draw(st.integers(0, 2**32 - 1), label="gamma seed")
    rng = np.random.default_rng(seed)
    if family == "ones":
        g = np.ones(d)
    elif family == "constant":
        g = np.full(d, draw(st.sampled_from([0.5, 2.0, -1.0, 3.7, -0.01, 100.0]), label="constant"))
    elif family == "positive":
        g = np.exp(rng.normal(0.0, 1.0, d))
    elif family == "negative":
        g = -np.exp(rng.normal(0.0, 1.0, d))
    elif family == "mixed":
        g = np.exp(rng.normal(0.0, 1.0, d)) * rng.choice([-1.0, 1.0], d)
    elif family == "near-constant":
        g = 1.5 * (1.0 + 1e-3 * rng.standard_normal(d))
    elif family == "log-spread":
        decades = draw(st.integers(1, 6), label="decades")
        lo = max(np.log10(tiny) + 1, -decades)
        hi = min(np.log10(cap), decades)
        g = 10.0 ** rng.uniform(lo, hi, d) * rng.choice([-1.0, 1.0], d)
    else:  # "tiny": some entries within a factor 16 of the smallest normal, the rest O(1)
        g = np.exp(rng.normal(0.0, 0.5, d)) * rng.choice([-1.0, 1.0], d)
        k = max(1, d // 4)
        idx = rng.choice(d, size=k, replace=False)
        # within a factor 16 of the smallest normal in every dtype: the T10 bound forms its sums
        # with 1/γ scaled by min|γ|, so Σ|βᵢ/γᵢ| ~ 1e308 must not overflow anywhere
        g[idx] = tiny * rng.uniform(1.0, 16.0, k) * rng.choice([-1.0, 1.0], k)
    g = np.clip(g, -cap, cap)
    g = round_to_dtype(g, name)
    zero = g == 0.0
    g[zero] = tiny  # underflow on rounding: keep the entry non-zero and normal
    if allow_zero and draw(st.booleans(), label="zeros"):
        k = draw(st.integers(1, d), label="n zeros")
        g[rng.choice(d, size=k, replace=False)] = 0.0
    return g


def betas(d: int, *, dtype: Any = "float64") -> st.SearchStrategy[FloatArray]:
    """Shift vectors β of length d, representable in ``dtype``: zeros, small, unit normal, a common offset, integers.

    Raises:
        InputShapeError: bad d or dtype.
    """
    d = _check_dim(d)
    name = dtype_name(dtype)

    return _draw_beta(d, name)


@st.composite
def _draw_beta(draw: Any, d: int, name: str) -> FloatArray:
    family = draw(st.sampled_from(BETA_FAMILIES), label="beta family")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="beta seed"))
    if family == "zeros":
        b = np.zeros(d)
    elif family == "small":
        b = 0.1 * rng.standard_normal(d)
    elif family == "normal":
        b = rng.standard_normal(d)
    elif family == "offset":
        b = draw(st.sampled_from([-30.0, 5.0, 100.0]), label="offset") + rng.standard_normal(d)
    else:
        b = np.round(4.0 * rng.standard_normal(d))
    return round_to_dtype(b, name)


def epsilons(*, min_value: float = 0.0, max_value: float = 1.0) -> st.SearchStrategy[float]:
    """ε values in [min_value, max_value]: 0, the usual 1e-12 … 1e-5, large ones, and arbitrary floats.

    Raises:
        InputShapeError: bounds not finite, negative, or min_value > max_value.
    """
    if not (np.isfinite(min_value) and np.isfinite(max_value) and 0.0 <= min_value <= max_value):
        raise InputShapeError(f"epsilons: need 0 ≤ min_value ≤ max_value finite, got {min_value!r}, {max_value!r}")
    usual = [e for e in (0.0, 1e-12, 1e-6, 1e-5, 1e-3, 0.1, 1.0) if min_value <= e <= max_value]
    floats = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)
    return st.one_of(st.sampled_from(usual), floats) if usual else floats


def activations(
    d: int,
    *,
    dtype: Any = "float64",
    min_rows: int = 1,
    max_rows: int | None = None,
    max_elements: int = 2**16,
) -> st.SearchStrategy[FloatArray]:
    """Input rows x of shape (n, d), representable and finite in ``dtype``.

    Families: Gaussian; heavy-tailed Student-t (1 to 5 degrees of freedom); low-rank;
    near-constant rows (σ² ≈ 1e-8, far below the usual ε); rows with a huge common
    offset (up to 1e6, capped by the dtype's range); integer-valued; and mixtures of
    those, row by row. The number of rows n covers tiny batches (n < d) and large ones
    (n > d), limited to ``max_rows`` and to n·d ≤ ``max_elements``.

    Raises:
        InputShapeError: bad d, dtype or row limits.
    """
    d = _check_dim(d)
    name = dtype_name(dtype)
    _, big = _finfo(name)
    cap = big / 64.0
    if max_rows is None:
        max_rows = 2 * d + 8
    if not (isinstance(min_rows, int) and isinstance(max_rows, int) and 1 <= min_rows <= max_rows):
        raise InputShapeError(f"activations: need 1 ≤ min_rows ≤ max_rows, got {min_rows!r}, {max_rows!r}")
    hi_rows = max(min_rows, min(max_rows, max_elements // d))
    return _draw_x(d, name, min_rows, hi_rows, cap)


def _family_rows(family: str, n: int, d: int, cap: float, rng: np.random.Generator, draw: Any) -> FloatArray:
    if family == "gaussian":
        return np.asarray(rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-2, 2))
    if family == "student-t":
        return rng.standard_t(draw(st.sampled_from([1, 2, 3, 5]), label="df"), (n, d))
    if family == "low-rank":
        r = int(rng.integers(1, max(2, min(d, 8))))
        return rng.standard_normal((n, r)) @ rng.standard_normal((r, d))
    if family == "near-constant":  # σ² ≈ 1e-8 per row, far below the usual ε
        return rng.standard_normal((n, 1)) * 3.0 + 1e-4 * rng.standard_normal((n, d))
    if family == "offset":
        scale = min(10.0 ** rng.uniform(2, 6), cap / 16.0)
        return np.asarray(rng.choice([-1.0, 1.0]) * scale + rng.standard_normal((n, d)))
    return np.round(8.0 * rng.standard_normal((n, d)))  # integer-valued


@st.composite
def _draw_x(draw: Any, d: int, name: str, min_rows: int, hi_rows: int, cap: float) -> FloatArray:
    family = draw(st.sampled_from(ACTIVATION_FAMILIES), label="x family")
    n = draw(st.one_of(st.integers(min_rows, hi_rows), st.sampled_from(sorted({min_rows, hi_rows}))), label="rows")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="x seed"))
    if family == "mixture":
        kinds = [f for f in ACTIVATION_FAMILIES if f != "mixture"]
        picks = rng.integers(0, len(kinds), n)
        x = np.empty((n, d))
        for i, f in enumerate(kinds):
            rows = np.flatnonzero(picks == i)
            if rows.size:
                x[rows] = _family_rows(f, rows.size, d, cap, rng, draw)
    else:
        x = _family_rows(family, n, d, cap, rng, draw)
    return round_to_dtype(np.clip(x, -cap, cap), name)
