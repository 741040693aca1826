"""``python -m proofs``: table, summary.json, certificates (layout, hashes, mode), Coq/Gappa reporting, exit status."""

from __future__ import annotations

import json
import os
import stat
import types

import pytest
import sympy as sp

from proofs import evidence, runner
from proofs.certificates import write_file
from proofs.core import Derivation
from proofs.evidence import CoqEvidence, VariantRecord


def _no_kernel(monkeypatch, reason="coqc not found on PATH"):
    """Pretend coqc/gappa are absent (the SymPy part still runs); CI's DEADIR_REQUIRE_COQ=1 unset here."""
    monkeypatch.delenv("DEADIR_REQUIRE_COQ", raising=False)
    monkeypatch.setattr(runner, "run_coq", lambda tid, **kw: CoqEvidence(
        "not run", file=f"proofs/coq/{tid}.v", main_theorem="m", reason=f"{reason} — install: x"))
    monkeypatch.setattr(runner, "run_gappa", lambda **kw: evidence.GappaEvidence("not run", reason=reason))


def test_runner_writes_certificates_and_summary(tmp_path, capsys, monkeypatch):
    _no_kernel(monkeypatch)
    assert main_ok(["--out", str(tmp_path), "--only", "T1,T8", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and list(out["theorems"]) == ["T1", "T8"]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    t1 = summary["theorems"]["T1"]
    assert set(t1) == {"sympy", "coq", "gappa", "mutants"}
    assert t1["sympy"]["status"] == "proved" and "symbolic d" in t1["sympy"]["generality"]
    assert t1["coq"]["status"] == "not run" and "install" in t1["coq"]["reason"]
    assert t1["mutants"] == {"rejected": 3, "total": 3}
    assert {"status", "file", "assumptions"} <= set(t1["coq"]) and {"dtypes", "d_max"} <= set(t1["gappa"])
    page = (tmp_path / "T1" / "index.md").read_text(encoding="utf-8")
    assert "[sympy.md](sympy.md)" in page and "[coq.md](coq.md)" in page
    assert "proofs/t01_hyperplane.py" in page and "SHA-256" in page and "python -m proofs" in page
    cert = (tmp_path / "T1" / "sympy.md").read_text(encoding="utf-8")
    assert "## Statement" in cert and "$$" in cert and "REJECTED" in cert and "## Statement mutants" in cert
    assert "not shown" not in cert and "…$" not in cert  # nothing elided
    instances = (tmp_path / "T1" / "instances.md").read_text(encoding="utf-8")
    assert "`d=12`" in instances and "x_12/12" in instances
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "[T8](T8/index.md)" in index and "Statement mutants rejected: 6/6" in index


def main_ok(argv):
    return runner.main(argv) == 0


def test_table_says_kernel_part_did_not_run_and_how_to_install(tmp_path, capsys, monkeypatch):
    _no_kernel(monkeypatch)
    assert main_ok(["--out", str(tmp_path), "--only", "T8"])
    text = capsys.readouterr().out
    assert "KERNEL-CHECKED PART NOT RUN for T8" in text and "apt-get install -y coq" in text
    assert "statement mutants rejected: 3/3" in text


def test_required_kernel_checks_fail_when_missing(tmp_path, capsys, monkeypatch):
    _no_kernel(monkeypatch)
    monkeypatch.setenv("DEADIR_REQUIRE_COQ", "1")
    assert runner.main(["--out", str(tmp_path), "--only", "T8", "--no-mutants"]) == 1
    assert "NOT RUN but DEADIR_REQUIRE_COQ=1" in capsys.readouterr().out


def test_real_coq_not_found_is_reported(tmp_path, monkeypatch):
    """With coqc off PATH the real Coq check reports "not run" with the install command (never a pass)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    ev = evidence.run_coq("T1")
    assert ev.status == "not run" and "apt-get install" in ev.reason and ev.file == "proofs/coq/t01_hyperplane.v"
    assert evidence.run_gappa().status == "not run"


def test_coq_mutants_count_and_failures(tmp_path, capsys, monkeypatch):
    rejected = VariantRecord("wrong-constant", True, "failed inside a proof")
    accepted = VariantRecord("too-weak", False, "ACCEPTED by coqc (a false variant checked!)")
    monkeypatch.delenv("DEADIR_REQUIRE_COQ", raising=False)
    monkeypatch.setattr(runner, "run_coq", lambda tid, **kw: CoqEvidence(
        "proved", file="proofs/coq/x.v", main_theorem="m", mutants=[rejected, rejected]))
    assert main_ok(["--out", str(tmp_path), "--only", "T8"])
    assert "statement mutants rejected: 5/5" in capsys.readouterr().out
    monkeypatch.setattr(runner, "run_coq", lambda tid, **kw: CoqEvidence(
        "failed", file="proofs/coq/x.v", main_theorem="m", reason="false variants not rejected", mutants=[accepted]))
    assert runner.main(["--out", str(tmp_path), "--only", "T8"]) == 1
    text = capsys.readouterr().out
    assert "statement mutants rejected: 3/4" in text and "Coq: T8 failed" in text


def test_runner_unknown_theorem(tmp_path):
    assert runner.main(["--out", str(tmp_path), "--only", "T99"]) == 2


def test_runner_fails_when_a_control_is_accepted_or_a_proof_fails(tmp_path, monkeypatch, capsys):
    _no_kernel(monkeypatch)
    x = sp.Symbol("x", real=True)

    def derive(expr, control=None):
        der = Derivation("T1", "fake", "s", [], "c", control=control)
        der.zero("step", "", expr)
        return der.result()

    fake = types.SimpleNamespace(
        THEOREM="T1",
        __file__=runner.__file__,
        prove=lambda: derive((x + 1) ** 2 - x**2 - 2 * x - 1),
        CONTROLS={"true-variant": lambda: derive(x - x, control="a variant that is in fact true")},
        MUTANTS=[],
    )
    monkeypatch.setattr(runner, "theorem_modules", lambda: [fake])
    assert runner.main(["--out", str(tmp_path)]) == 1
    assert "ACCEPTED (defect)" in capsys.readouterr().out
    fake.prove = lambda: derive(x**2 - x)
    fake.CONTROLS = {}
    assert runner.main(["--out", str(tmp_path), "--json"]) == 1
    assert '"status": "failed"' in capsys.readouterr().out


def test_numerical_step_is_never_proof():
    der = Derivation("TX", "t", "s", [], "c")
    der.numeric("numbers", "", "", True, "numeric comparison")
    res = der.result()
    assert res.status == "checked" and not res.proved and res.verdict == "NOT PROVED"
    der.zero("identity", "", sp.Integer(0))
    assert der.result().status == "proved"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_files_are_written_with_mode_respecting_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = tmp_path / "x.md"
        write_file(path, "text")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_text() == "text"
    assert [p.name for p in tmp_path.iterdir()] == ["x.md"]  # no temporary file left


def test_witness_lists_every_substitution():
    from proofs.core import find_witness

    xs = sp.symbols("x1:21", real=True)
    found = find_witness(sp.Add(*[v**2 for v in xs]) + 1)
    assert found is not None and "…" not in found[0] and all(f"x_{{{k}}}" in found[0] for k in range(1, 21))
