"""Mutant kill rate: the pack must catch every wrong LayerNorm and pass every correct one.

Each mutant runs the whole mean-centring pack (T1, T2, T8, reference) without shrinking
(attribution needs the first failing example, not the smallest); the properties that
caught it are recorded in build/fuzz/kills.json and in the fuzz summary.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings

from deadir.report import render_table, write_json_atomic
from deadir.testing import run_pack
from property_tests._fuzzlog import KILLS, record
from property_tests.conftest import OUT
from property_tests.mutants import CORRECT, LAYERNORM_FORMULA, MUTANTS

# The ci profile's per-test budget is small; a mutant must be found within a few times that
# per property (drops-ε needs a near-constant row with a non-negligible ε), capped for nightly.
EXAMPLES = min(10_000, max(60, 5 * settings.default.max_examples))
# reference="layernorm": the mutants are not classes deadir knows, so "auto" would not run the reference
PACK: dict[str, Any] = {"expect": "mean-centring", "dtype": "float32", "max_d": 32, "shrink": False,
                        "reference": "layernorm", "max_examples": EXAMPLES}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_is_caught(name: str) -> None:
    report = run_pack(MUTANTS[name], **PACK)
    for o in report.outcomes:
        record(f"kill: {o.name}", f"mutant {name}", "float32", examples=o.examples)
    KILLS.append({"mutant": name, "caught_by": report.caught_by,
                  "examples": {o.name: o.examples for o in report.outcomes},
                  "first_counterexample": next((o.counterexample for o in report.outcomes if o.failures), None)})
    assert report.caught_by, f"mutant {name!r} survived the pack:\n{report.render()}"


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_implementation_passes(name: str) -> None:
    reference = "layernorm" if name in LAYERNORM_FORMULA else "none"
    report = run_pack(CORRECT[name], **{**PACK, "reference": reference})
    for o in report.outcomes:
        record(o.name, f"correct {name}", "float32", o.max_ratio, examples=o.examples)
    assert report.passed, report.render()


def test_kill_rate_is_total() -> None:
    """Runs after the mutants (pytest keeps file order): 100 % kill rate, each kill attributed, table written."""
    if len(KILLS) != len(MUTANTS):
        pytest.fail(f"only {len(KILLS)} of {len(MUTANTS)} mutant tests ran before the kill-rate check")
    killed = [k for k in KILLS if k["caught_by"]]
    rows = [(k["mutant"], ", ".join(k["caught_by"]) or "SURVIVED") for k in KILLS]
    table = render_table(("mutant", "caught by"), rows, title=f"mutant kill rate {len(killed)}/{len(KILLS)}")
    write_json_atomic(OUT / "kills.json", {"kill_rate": len(killed) / len(KILLS), "kills": KILLS})
    (OUT / "kills.txt").write_text(table + "\n", encoding="utf-8")
    assert len(killed) == len(MUTANTS), table
