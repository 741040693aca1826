"""``deadir.scan``: the γ-only read of a checkpoint's norms (a callable module).

* :mod:`deadir.scan.engine`: :func:`scan` (a checkpoint path or an instantiated model → :class:`ScanReport`),
  :func:`architecture_norm_kind`.
* :mod:`deadir.scan.naming`: which tensors are norm sites, by the architecture records of :mod:`deadir.arch`.
* :mod:`deadir.scan.report`: :class:`ScanSite`, :class:`ScanReport` (table, JSON), :func:`plot_scan`.
* :mod:`deadir.scan.baseline`: the ``--baseline`` gate, :func:`compare_to_baseline`.

The module itself is callable: ``deadir.scan(path)`` is :func:`deadir.scan.engine.scan`, so the
package is never shadowed by the function of the same name (``import deadir.scan``,
``from deadir.scan import scan`` and ``deadir.scan.architecture_norm_kind(...)`` all work).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from deadir.scan.baseline import (
    DEFAULT_MAX_ANGLE,
    BaselineError,
    Change,
    compare_to_baseline,
    load_baseline,
    site_angle,
)
from deadir.scan.engine import DEFAULT_DEAD_REL_TOL, ConfigMismatchError, architecture_norm_kind, scan
from deadir.scan.report import ScanReport, ScanSite, plot_scan

__all__ = [
    "DEFAULT_DEAD_REL_TOL",
    "DEFAULT_MAX_ANGLE",
    "BaselineError",
    "Change",
    "ConfigMismatchError",
    "ScanReport",
    "ScanSite",
    "architecture_norm_kind",
    "compare_to_baseline",
    "load_baseline",
    "plot_scan",
    "scan",
    "site_angle",
]


class _CallableModule(types.ModuleType):
    """The ``deadir.scan`` module, callable as :func:`deadir.scan.engine.scan`."""

    def __call__(self, path_or_model: Any, **kwargs: Any) -> ScanReport:
        return scan(path_or_model, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
