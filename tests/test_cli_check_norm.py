from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deadir.cli import main

SMALL = ["--max-examples", "8", "--max-d", "8"]


def test_check_norm_layernorm_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-norm", "deadir.testing.examples:layernorm", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "T1 hyperplane" in out and "FAIL" not in out and "pass" in out


def test_check_norm_rmsnorm_expecting_mean_centring_fails_with_counterexample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["check-norm", "deadir.testing.examples:rmsnorm", "--expect", "mean-centring", *SMALL])
    out = capsys.readouterr().out
    assert code == 1
    assert "T1 hyperplane violated" in out and "counterexample (shrunk by Hypothesis)" in out
    assert "gamma = " in out and "beta  = " in out and "x (" in out and "> bound" in out


def test_check_norm_rmsnorm_expecting_rms_passes_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-norm", "deadir.testing.examples:rmsnorm", "--expect", "rms", "--json", *SMALL]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and [p["name"] for p in data["properties"]] == ["T5 no kernel", "reference"]


def test_check_norm_layernorm_expecting_rms_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-norm", "deadir.testing.examples:layernorm", "--expect", "rms", *SMALL]) == 1
    assert "T5 no kernel violated" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["nocolon", "deadir.testing.examples:nope", "no_such_module_xyz:f", "a:b:c"])
def test_check_norm_bad_factory_exit_2(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-norm", target, *SMALL]) == 2
    assert "factory" in capsys.readouterr().err


def test_check_norm_from_the_shell() -> None:
    proc = subprocess.run([sys.executable, "-m", "deadir.cli", "check-norm", "deadir.testing.examples:rmsnorm",
                           "--expect", "mean-centring", *SMALL], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "T1 hyperplane violated" in proc.stdout
