"""pytest plugin (``-p benchmarks.fuzz_plugin``): count Hypothesis test cases and call time per test.

Loaded into a separate ``pytest`` process by :mod:`benchmarks.bench_verification`; writes
``{"cases": {property: {status: count}}, "seconds": {nodeid: s}, "outcomes": {nodeid: outcome}}``
as JSON to the file named by ``DEADIR_BENCH_FUZZ_OUT`` when the session ends.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

_cases: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_seconds: dict[str, float] = defaultdict(float)
_outcomes: dict[str, str] = {}


def _observe(observation: Any) -> None:
    if getattr(observation, "type", None) == "test_case":
        _cases[observation.property][observation.status] += 1


def pytest_configure(config: Any) -> None:
    from hypothesis.internal import observability

    # HYPOTHESIS_EXPERIMENTAL_OBSERVABILITY_NOCOVER (set by the caller on Python < 3.12, where
    # per-line coverage tracing slows the suites ~15×) also turns on writing every observation
    # to .hypothesis/observed/; we only count, so that writer is removed again.
    writer = getattr(observability, "_deliver_to_file", None)
    if writer is not None:
        observability.remove_observability_callback(writer)
    observability.add_observability_callback(_observe)


def pytest_runtest_logreport(report: Any) -> None:
    if report.when == "call":
        _seconds[report.nodeid] += report.duration
        _outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    out = os.environ.get("DEADIR_BENCH_FUZZ_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump({"cases": _cases, "seconds": _seconds, "outcomes": _outcomes, "exit": int(exitstatus)}, fh)
