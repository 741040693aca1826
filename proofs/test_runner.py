"""``python -m proofs``: table, JSON, --only, certificates, exit status."""

from __future__ import annotations

import json

from proofs.runner import main


def test_runner_writes_certificates_and_json(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--only", "T1,T8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and [t["theorem"] for t in out["theorems"]] == ["T1", "T8"]
    cert = (tmp_path / "T1.md").read_text(encoding="utf-8")
    assert "## Statement" in cert and "$$" in cert and "SymPy" in cert and "REJECTED" in cert
    assert "[T8](T8.md)" in (tmp_path / "index.md").read_text(encoding="utf-8")


def test_runner_table_and_unknown_theorem(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--only", "T6"]) == 0
    assert "T6" in capsys.readouterr().out
    assert main(["--out", str(tmp_path), "--only", "T99"]) == 2


def test_runner_fails_when_a_control_is_accepted_or_a_proof_fails(tmp_path, monkeypatch, capsys):
    import types

    import sympy as sp

    from proofs import runner
    from proofs.core import Derivation

    x = sp.Symbol("x", real=True)

    def derive(expr, control=None):
        der = Derivation("T1", "fake", "s", [], "c", control=control)
        der.zero("step", "", expr)
        return der.result()

    fake = types.SimpleNamespace(
        THEOREM="T1",
        prove=lambda: derive((x + 1) ** 2 - x**2 - 2 * x - 1),
        CONTROLS={"true-variant": lambda: derive(x - x, control="a variant that is in fact true")},
    )
    monkeypatch.setattr(runner, "theorem_modules", lambda: [fake])
    assert runner.main(["--out", str(tmp_path)]) == 1
    assert "ACCEPTED (defect)" in capsys.readouterr().out
    fake.prove = lambda: derive(x**2 - x)
    fake.CONTROLS = {}
    assert runner.main(["--out", str(tmp_path), "--json"]) == 1
    assert '"result": "NOT PROVED"' in capsys.readouterr().out
