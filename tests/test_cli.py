from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deadir.cli import main


def test_classify_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "layernorm", "--d", "32"]) == 0
    out = capsys.readouterr().out
    assert "mean-centring" in out and "kernel = span(1/gamma)" in out


@pytest.mark.parametrize(
    "kind,expected",
    [("rmsnorm", "rms"), ("groupnorm", "group-centring"), ("scale-then-centre", "mean-centring"), ("tanh", "none"),
     ("identity", "none"), ("layernorm-nobias", "mean-centring")],
)
def test_classify_json(kind: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", kind, "--d", "16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == expected and data["norm"] == kind


def test_classify_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "rmsnorm", "--d", "1"]) == 2
    assert "--d: must be ≥ 2" in capsys.readouterr().err
    assert main(["classify", "rmsnorm", "--spread", "0.5"]) == 2
    capsys.readouterr()
    assert main(["classify", "groupnorm", "--d", "10", "--groups", "4"]) == 2
    assert "--groups: 4 groups do not divide d=10" in capsys.readouterr().err
    assert main(["classify", "groupnorm", "--d", "8", "--groups", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["classify", "batchnorm"])


def test_console_script_module_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "deadir.cli", "classify", "rmsnorm", "--d", "8", "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["kind"] == "rms"


def test_prove_runs_one_theorem_and_writes_its_certificate(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prove", "--only", "T8", "--out", str(tmp_path)]) == 0
    assert "T8" in capsys.readouterr().out
    assert (tmp_path / "index.md").exists()
    assert any(p.name.startswith("T8") or "t08" in p.name.lower() for p in tmp_path.iterdir())


def test_prove_unknown_theorem_exits_2(tmp_path) -> None:
    assert main(["prove", "--only", "T99", "--out", str(tmp_path)]) == 2
