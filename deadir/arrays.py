"""Conversion of user arrays (numpy, Python sequences, torch tensors) to float64 numpy.

Every measurement in deadir runs in float64 whatever dtype the caller's data has;
this module is the one place where that conversion, and its input checks, happen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from deadir.errors import InputShapeError

FloatArray = npt.NDArray[np.float64]


def is_torch_tensor(x: object) -> bool:
    """True when ``x`` is a torch.Tensor (without importing torch if it is not loaded)."""
    cls = type(x)
    return cls.__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "dtype")


def as_float64(x: Any, *, name: str) -> FloatArray:
    """Return ``x`` as a float64 numpy array (a copy only when needed).

    Accepts numpy arrays, nested Python sequences of real numbers, and torch tensors
    of any real dtype on any device (bfloat16 and float16 widen exactly).

    Raises:
        InputShapeError: ``x`` is complex, boolean, non-numeric or ragged.
    """
    if is_torch_tensor(x):
        import torch

        t = x.detach()
        if t.is_complex() or t.dtype == torch.bool:
            raise InputShapeError(f"{name}: expected a real floating tensor, got dtype {t.dtype}")
        if t.device.type == "meta":
            raise InputShapeError(f"{name}: is a meta tensor (no data; e.g. a weight offloaded to disk by "
                                  "accelerate): load that part of the model onto a real device")
        return np.asarray(t.to(device="cpu", dtype=torch.float64).numpy())
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        raise InputShapeError(f"{name}: cannot be read as an array ({exc})") from exc
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise InputShapeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def as_vector(x: Any, *, name: str) -> FloatArray:
    """Return ``x`` as a non-empty 1-D float64 array.

    Raises:
        InputShapeError: not 1-D, or empty, or not real numbers.
    """
    arr = as_float64(x, name=name)
    if arr.ndim != 1:
        raise InputShapeError(f"{name}: expected a 1-D vector, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise InputShapeError(f"{name}: expected a non-empty vector, got length 0")
    return arr


def as_rows(x: Any, *, name: str, d: int | None = None) -> FloatArray:
    """Return ``x`` of shape (..., d) as a 2-D float64 array of shape (n, d).

    Raises:
        InputShapeError: rank 0, last axis not of size ``d``, or non-finite entries.
    """
    arr = as_float64(x, name=name)
    if arr.ndim == 0:
        raise InputShapeError(f"{name}: expected shape (..., d), got a scalar")
    if d is not None and arr.shape[-1] != d:
        raise InputShapeError(f"{name}: expected last axis of size {d}, got shape {tuple(arr.shape)}")
    rows = arr.reshape(-1, arr.shape[-1])
    if not np.all(np.isfinite(rows)):
        bad = np.argwhere(~np.isfinite(rows))[:5].tolist()
        raise InputShapeError(f"{name}: contains NaN or infinite entries (first at (row, column) {bad})")
    return rows
