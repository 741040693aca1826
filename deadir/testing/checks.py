"""The registry from property name to check: what each name in ``--properties`` runs.

A check takes the bound norm, one drawn example and the reference spec (None when no
reference is set) and returns a Measurement or raises NormPropertyError. Adding a property
is one entry here and one in :data:`deadir.testing.pack.PROPERTIES`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from deadir.arrays import FloatArray
from deadir.norms import NormSpec
from deadir.testing.assertions import (
    Measurement,
    PreparedNorm,
    check_hyperplane,
    check_kernel,
    check_no_kernel,
    check_reference,
    check_shift,
)

__all__ = ["CHECKS", "Example"]


@dataclasses.dataclass(frozen=True)
class Example:
    """One drawn input: rows x (n, d) and one shift per row t (n,) for T8."""

    x: FloatArray
    t: FloatArray


def _reference(prep: PreparedNorm, ex: Example, spec: NormSpec | None) -> Measurement:
    assert spec is not None  # the pack runs "reference" only with a spec
    return check_reference(prep, spec, ex.x)


Check = Callable[[PreparedNorm, Example, NormSpec | None], Measurement]
CHECKS: dict[str, Check] = {
    "T1 hyperplane": lambda prep, ex, _: check_hyperplane(prep, ex.x),
    "T2 kernel": lambda prep, ex, _: check_kernel(prep, ex.x),
    "T8 shift invariance": lambda prep, ex, _: check_shift(prep, ex.x, ex.t),
    "T5 no kernel": lambda prep, ex, _: check_no_kernel(prep),
    "reference": _reference,
}


def shifts(x: FloatArray, t: float) -> FloatArray:
    """One shift per row, t in units of max(1, max|x|) (so a shift is felt at every scale)."""
    return np.full(x.shape[0], t * max(1.0, float(np.max(np.abs(x)))))
