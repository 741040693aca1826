"""Per-example bookkeeping for the fuzz summary table (property, backend, dtype, examples, failures, worst ratio).

Each property test calls :func:`record` once per Hypothesis example; the conftest marks
failures from pytest's reports and writes build/fuzz/results.json at the end of the session.
"""

from __future__ import annotations

import math
import os
from typing import Any

RESULTS: dict[tuple[str, str, str], dict[str, Any]] = {}
KILLS: list[dict[str, Any]] = []
EXAMPLES: dict[str, int] = {}  # node id -> examples it recorded (the nightly ledger's count)


def current_nodeid() -> str:
    """The node id of the running test (pytest sets PYTEST_CURRENT_TEST to 'nodeid (phase)')."""
    return os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]


def record(prop: str, backend: str, dtype: str, ratio: float | None = None, *, examples: int = 1) -> None:
    """Count ``examples`` example(s) of (prop, backend, dtype) and fold in ``ratio`` (measured/bound) if given.

    Call it with ``examples=0`` to add only the ratio of an example already counted.
    """
    row = RESULTS.setdefault((prop, backend, dtype), {"examples": 0, "failures": 0, "max_ratio": None,
                                                      "nodeids": set()})
    row["examples"] += examples
    nodeid = current_nodeid()
    row["nodeids"].add(nodeid)
    EXAMPLES[nodeid] = EXAMPLES.get(nodeid, 0) + examples
    if ratio is not None and math.isfinite(ratio):
        row["max_ratio"] = ratio if row["max_ratio"] is None else max(row["max_ratio"], ratio)


def mark_failed(nodeid: str) -> bool:
    """Count a failure for every (prop, backend, dtype) the failed test recorded; False when it recorded none."""
    hit = False
    for row in RESULTS.values():
        if nodeid in row["nodeids"]:
            row["failures"] += 1
            hit = True
    return hit
