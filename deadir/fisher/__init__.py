"""Parameter-space dead directions (docs/theory.md T7, T8) and the directional Fisher information.

* :mod:`deadir.fisher.directions`: the candidate families (read side, write side) a model's
  architecture plan (:mod:`deadir.arch.plans`) yields, each with its exactness verdict.
* :mod:`deadir.fisher.probe`: :class:`FisherProbe`, the exact directional Fisher information by
  forward-mode JVP on a float64 copy; :func:`dense_fisher` as the cross-check.
* :mod:`deadir.fisher.report`: :func:`fisher_report`, every family against random directions.
"""

from __future__ import annotations

from deadir.arch.plans import Plan, Read, UnsupportedArchitectureError, Write
from deadir.fisher.directions import (
    FAMILIES,
    DeadDirection,
    Family,
    candidate_parameter_directions,
    dead_parameter_directions,
    plan_for,
)
from deadir.fisher.probe import ChangeOf, Direction, FisherProbe, dense_fisher, directional_fisher, function_change
from deadir.fisher.report import FisherReport, FisherRow, fisher_report, with_lm_head

__all__ = [
    "FAMILIES",
    "ChangeOf",
    "DeadDirection",
    "Direction",
    "Family",
    "FisherProbe",
    "FisherReport",
    "FisherRow",
    "Plan",
    "Read",
    "UnsupportedArchitectureError",
    "Write",
    "candidate_parameter_directions",
    "dead_parameter_directions",
    "dense_fisher",
    "directional_fisher",
    "fisher_report",
    "function_change",
    "plan_for",
    "with_lm_head",
]
