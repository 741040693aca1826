"""Hypothesis profiles and the fuzz summary for property_tests/.

Profiles (choose with DEADIR_HYPOTHESIS_PROFILE or pytest's --hypothesis-profile):

* ``ci`` (default): derandomized, so every run draws the same examples and a failure
  replays without a database; few examples per test so `nox -s fuzz` stays under
  5 minutes on 2 cores. deadline=None: speed is never a property, and a shared CI
  machine's timing noise would turn into flaky failures.
* ``nightly``: ≥ 10,000 examples per property, random seeds, failures saved in the
  example database under .hypothesis/ (gitignored) so the next run replays them first.
* ``dev``: 200 random examples with the database, for local work.

Outside ``ci`` every finished test is appended to the ledger (property_tests/ledger.py), so a
nightly run cut off by a time limit can be resumed and its completeness checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from deadir.report import write_json_atomic
from property_tests import _fuzzlog, ledger

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "fuzz"
_DB = DirectoryBasedExampleDatabase(str(ROOT / ".hypothesis" / "examples"))
_COMMON: dict[str, Any] = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("ci", max_examples=12, derandomize=True, database=None, **_COMMON)
settings.register_profile("nightly", max_examples=10_000, derandomize=False, database=_DB, **_COMMON)
settings.register_profile("dev", max_examples=200, derandomize=False, database=_DB, **_COMMON)
PROFILE = os.environ.get("DEADIR_HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
_DIGEST = ""  # the ledger's source digest, computed at the first finished test of a non-ci run


def pytest_report_header(config: pytest.Config) -> str:
    return f"deadir Hypothesis profile: {PROFILE} ({settings.default.max_examples} examples per test)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and not _fuzzlog.mark_failed(item.nodeid):
        _fuzzlog.RESULTS[(item.name, "-", "-")] = {"examples": 0, "failures": 1, "max_ratio": None, "nodeids": set()}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    profile = settings.get_current_profile_name()  # --hypothesis-profile may have replaced PROFILE's
    if profile == "ci" or report.when != "call":
        return
    global _DIGEST
    _DIGEST = _DIGEST or ledger.source_digest()
    ledger.append({"nodeid": report.nodeid, "outcome": report.outcome, "seconds": round(report.duration, 3),
                   "examples": _fuzzlog.EXAMPLES.get(report.nodeid, 0), "profile": profile, "digest": _DIGEST,
                   "max_examples": settings.default.max_examples})


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    # a nightly run takes hours and may be cut off: what finished is on disk after every test
    write_results()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    write_results()


def write_results() -> None:
    """Write build/fuzz/results.json from the rows recorded so far (nothing when no property test ran)."""
    if not _fuzzlog.RESULTS:
        return
    rows = [
        {"property": p, "backend": b, "dtype": dt, "examples": r["examples"], "failures": r["failures"],
         "max_ratio": r["max_ratio"]}
        for (p, b, dt), r in sorted(_fuzzlog.RESULTS.items())
    ]
    write_json_atomic(OUT / "results.json", {"profile": PROFILE, "rows": rows, "kills": _fuzzlog.KILLS})
