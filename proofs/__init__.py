"""SymPy derivations of the deadir theorems T1–T10 (see docs/theory.md).

Each theorem is a module ``proofs.tNN_name`` exposing ``THEOREM``, ``TITLE``, ``prove()`` and
``CONTROLS`` (negative controls: false variants the same code must reject). Run everything
with ``python -m proofs``; certificates are written by :mod:`proofs.certificates`.
"""

from __future__ import annotations

from proofs.core import ProofResult, Step

__all__ = ["ProofResult", "Step"]
