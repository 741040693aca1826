"""The ordered list of theorem modules."""

from __future__ import annotations

import importlib
from types import ModuleType

MODULE_NAMES = (
    "proofs.t01_hyperplane",
    "proofs.t02_kernel",
    "proofs.t03_minimality",
    "proofs.t04_uncentred",
    "proofs.t05_rms_absence",
    "proofs.t06_zero_scales",
    "proofs.t07_read_side",
    "proofs.t08_write_side",
    "proofs.t09_variants",
    "proofs.t10_float",
)


def theorem_modules() -> list[ModuleType]:
    """Import and return every theorem module, in order T1..T10."""
    return [importlib.import_module(name) for name in MODULE_NAMES]
