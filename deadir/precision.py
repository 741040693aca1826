"""Floating-point formats: unit roundoff, canonical dtype names, compute-dtype rules, dead-channel threshold.

The one home of these facts; every module that needs u, a dtype's name or "what does a
half-precision kernel accumulate in" asks here (docs/theory.md T10).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deadir.errors import InputShapeError

__all__ = [
    "DEAD_CHANNEL_REL_TOL",
    "HALF_PRECISION",
    "LARGEST_FINITE",
    "SIGNIFICAND_BITS",
    "SMALLEST_SUBNORMAL",
    "UNIT_ROUNDOFF",
    "default_compute_dtype",
    "dtype_name",
    "unit_roundoff",
]

# Unit roundoff u = 2^-p for round-to-nearest with p significand bits (implicit bit included).
UNIT_ROUNDOFF: dict[str, float] = {
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
}
HALF_PRECISION = frozenset({"float16", "bfloat16"})
# Significand bits p (implicit bit included): u = 2^-p.
SIGNIFICAND_BITS: dict[str, int] = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
# Largest finite value: a value beyond it rounds to ±inf when stored in the dtype.
LARGEST_FINITE: dict[str, float] = {
    "float16": 65504.0,
    "bfloat16": float.fromhex("0x1.fep127"),
    "float32": float.fromhex("0x1.fffffep127"),
    "float64": float.fromhex("0x1.fffffffffffffp1023"),
}
# Smallest positive subnormal (smallest normal × machine epsilon): the absolute error bound of a
# rounding whose result is subnormal.
SMALLEST_SUBNORMAL: dict[str, float] = {
    "float16": 2.0**-24,
    "bfloat16": 2.0**-133,
    "float32": 2.0**-149,
    "float64": 2.0**-1074,
}

_ALIASES = {
    "half": "float16",
    "f16": "float16",
    "fp16": "float16",
    "bf16": "bfloat16",
    "float": "float32",
    "single": "float32",
    "f32": "float32",
    "fp32": "float32",
    "double": "float64",
    "f64": "float64",
    "fp64": "float64",
}

# A channel is dead when |γᵢ| ≤ DEAD_CHANNEL_REL_TOL · median|γ|. Why 1e-6: such a channel's
# output is β up to |γᵢ·ẑᵢ| ≤ 1e-6·median|γ|·max|ẑ|, below float32's rounding of any live
# channel (u₃₂·median|γ| ≈ 6e-8·median|γ| times the O(1..10) ẑ of a live row is the same order),
# so eᵢ is a null direction at every floor deadir measures in float32 or coarser; and γ⁻¹ is then
# dominated (≥ 10⁶×) by that channel. On the real checkpoints: MiniLM's three dead gains sit at
# ≤ 2.3e-9·median (next 0.24); MPNet's final LayerNorm has three at ≤ 2.8e-7·median, then one at
# 4.4e-6·median (live here; it was dead under scan's former 1e-5), then 0.38; the smallest live
# RMSNorm gains (SmolLM2, Qwen2.5, Gemma 3) are ≥ 4e-5·median. scan, verify, fisher and the
# integration suite all use this one value.
DEAD_CHANNEL_REL_TOL = 1e-6


def dtype_name(dtype: Any) -> str:
    """Canonical name ("float16", "bfloat16", "float32", "float64") of a numpy/torch dtype or a name.

    Raises:
        InputShapeError: not a floating-point format deadir supports.
    """
    if isinstance(dtype, str):
        name = dtype.strip().lower().removeprefix("torch.").removeprefix("numpy.")
    elif type(dtype).__module__.startswith("torch"):
        name = str(dtype).removeprefix("torch.")  # torch.float16 -> "float16"
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError as exc:
            raise InputShapeError(f"dtype: {dtype!r} is not a floating-point dtype deadir knows") from exc
    name = _ALIASES.get(name, name)
    if name not in UNIT_ROUNDOFF:
        raise InputShapeError(
            f"dtype: {dtype!r} is not a supported floating-point format; expected one of "
            f"{sorted(UNIT_ROUNDOFF)} (numpy dtype, torch dtype or name)"
        )
    return name


def unit_roundoff(dtype: Any) -> float:
    """Unit roundoff u (half the machine epsilon) of a float format, round-to-nearest.

    Raises:
        InputShapeError: not a supported floating-point format.
    """
    return UNIT_ROUNDOFF[dtype_name(dtype)]


def default_compute_dtype(dtype: Any) -> str:
    """The dtype a norm kernel accumulates its statistics in, by default, for outputs in ``dtype``.

    PyTorch's (and Hugging Face's) half-precision norm kernels accumulate in float32; every
    other format accumulates in itself. A caller that knows better passes its own compute dtype.
    """
    name = dtype_name(dtype)
    return "float32" if name in HALF_PRECISION else name
