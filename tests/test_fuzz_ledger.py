"""The nightly ledger (property_tests/ledger.py): what counts as done, and the resume arguments it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from property_tests import ledger

MUTANT = "property_tests/test_fuzz_mutants.py::test_mutant_is_caught[drops eps]"
KILL_RATE = "property_tests/test_fuzz_mutants.py::test_kill_rate_is_total"
T1 = "property_tests/test_fuzz_norms.py::test_layernorm_output_on_inverse_scale_hyperplane[nn.LayerNorm-float16]"


def _line(nodeid: str, outcome: str = "passed", digest: str = "d1", profile: str = "nightly") -> dict[str, Any]:
    return {"nodeid": nodeid, "outcome": outcome, "digest": digest, "profile": profile, "examples": 10_000,
            "seconds": 60.0}


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_pass_counts_only_under_its_own_digest_and_profile() -> None:
    rows = [_line(T1, digest="old"), _line(MUTANT, profile="dev")]
    assert ledger.passed(rows, digest="d1", profile="nightly") == {}
    assert set(ledger.passed([*rows, _line(T1)], digest="d1", profile="nightly")) == {T1}


def test_a_failure_under_the_digest_is_never_covered_by_a_later_pass() -> None:
    rows = [_line(T1, "failed"), _line(T1)]  # a later run with other seeds passed: the counterexample stands
    assert ledger.passed(rows, digest="d1", profile="nightly") == {}
    assert ledger.failures(rows, digest="d1", profile="nightly") == [T1]


def test_the_mutants_and_the_kill_rate_check_count_only_together() -> None:
    assert ledger.passed([_line(MUTANT)], digest="d1", profile="nightly") == {}
    assert set(ledger.passed([_line(MUTANT), _line(KILL_RATE)], digest="d1", profile="nightly")) == {MUTANT, KILL_RATE}


def test_args_file_deselects_exactly_the_passed_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "ledger.jsonl", [_line(T1), _line(MUTANT), _line(T1, digest="old")])
    out = tmp_path / "resume.args"
    assert ledger.main(["--ledger", str(path), "--digest", "d1", "--args-file", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == f"--deselect={T1}\n"  # the mutant alone is not a unit
    assert "1 test(s) passed (10000 examples, 60 s); 0 failed" in capsys.readouterr().out


def test_a_corrupt_line_is_named_not_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(json.dumps(_line(T1)) + "\n{not json\n", encoding="utf-8")
    assert ledger.main(["--ledger", str(path), "--digest", "d1"]) == 2
    assert f"{path}:2: not JSON" in capsys.readouterr().err
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r":1: not a ledger entry"):
        ledger.read(path)


def test_the_digest_follows_the_code_under_test(tmp_path: Path) -> None:
    for top in ledger.SOURCES:
        (tmp_path / top).mkdir()
        (tmp_path / top / "a.py").write_text("x = 1\n", encoding="utf-8")
    before = ledger.source_digest(tmp_path)
    (tmp_path / "README.md").write_text("docs do not count\n", encoding="utf-8")
    assert ledger.source_digest(tmp_path) == before
    (tmp_path / "deadir" / "a.py").write_text("x = 2\n", encoding="utf-8")
    assert ledger.source_digest(tmp_path) != before
