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
