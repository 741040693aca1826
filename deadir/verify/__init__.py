"""Verify the predicted dead directions of a model with forward passes.

The package is callable: ``deadir.verify(model, inputs)`` runs :func:`deadir.verify.engine.verify`,
and ``deadir.verify.VerifyReport``, ``from deadir.verify import verify`` and
``import deadir.verify`` all work (nothing shadows the module).

- :mod:`~deadir.verify.engine`: the hooked forward pass (:func:`verify`) and the rounding floor;
- :mod:`~deadir.verify.report`: :class:`VerifyReport`, :class:`SiteVerification`, :class:`BlockStat`,
  tables and JSON;
- :mod:`~deadir.verify.twin`: the model against its random-init twin (:func:`verify_against_init`);
- :mod:`~deadir.verify.plot`: the spectrum plot (:func:`plot_spectrum`).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from deadir.verify.engine import rounding_floor_rel, verify
from deadir.verify.plot import plot_spectrum
from deadir.verify.report import DROP_RATIO, NEAR_NULL_TOLERANCES, BlockStat, SiteVerification, VerifyReport
from deadir.verify.twin import InitComparison, verify_against_init

__all__ = [
    "DROP_RATIO",
    "NEAR_NULL_TOLERANCES",
    "BlockStat",
    "InitComparison",
    "SiteVerification",
    "VerifyReport",
    "plot_spectrum",
    "rounding_floor_rel",
    "verify",
    "verify_against_init",
]


class _CallableModule(types.ModuleType):
    """``deadir.verify`` the module, callable as ``deadir.verify(model, inputs, ...)``."""

    def __call__(self, model: Any, inputs: Any, **kwargs: Any) -> VerifyReport:
        """:func:`deadir.verify.engine.verify` (see there for the arguments and errors)."""
        return verify(model, inputs, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
