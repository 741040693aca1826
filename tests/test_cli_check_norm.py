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
    assert "T1 hyperplane" in out and "FAIL" not in out and ": PASS" in out


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


def test_check_norm_error_exit_2_with_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """A factory that raises is ERROR (exit 2) with its traceback, not a FAIL (exit 1)."""
    code = main(["check-norm", "deadir.testing.examples:raising_factory", *SMALL])
    out = capsys.readouterr().out
    assert code == 2
    assert ": ERROR" in out and "the factory raised RuntimeError" in out and "Traceback" in out


def test_check_norm_hanging_norm_times_out_from_the_shell() -> None:
    """The CLI returns (exit 2) although the norm never does; the hung call is a daemon thread."""
    proc = subprocess.run([sys.executable, "-m", "deadir.cli", "check-norm", "deadir.testing.examples:hanging_norm",
                           "--timeout", "1", *SMALL], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "did not return within 1 s" in proc.stdout


def test_check_norm_new_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check-norm", "deadir.testing.examples:layernorm", "--properties", "T1 hyperplane,T2 kernel",
            "--reference", "none", "--compute-dtype", "float32", "--dtype", "float64", "--json", *SMALL]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "PASS" and [p["name"] for p in data["properties"]] == ["T1 hyperplane", "T2 kernel"]
    assert any("declared compute dtype float32" in n for n in data["notes"])
    assert main(["check-norm", "deadir.testing.examples:layernorm", "--properties", "T5 no kernel", *SMALL]) == 2
    assert "not properties of" in capsys.readouterr().err
    assert main(["check-norm", "deadir.testing.examples:layernorm_2d", "--layout", "channels-first", *SMALL]) == 0
    capsys.readouterr()
    assert main(["check-norm", "deadir.testing.examples:annotated_layernorm", *SMALL]) == 2  # .a_2: say so
    assert "--gamma-attr" in capsys.readouterr().out
    assert main(["check-norm", "deadir.testing.examples:annotated_layernorm", "--gamma-attr", "a_2",
                 "--beta-attr", "b_2", "--eps-attr", "eps", "--reference", "none", *SMALL]) == 0


# inductor imports torch.utils.mkldnn, which warns about torch.jit.script_method at import (torch 2.13's own)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_check_norm_compile_runs_compiled_code(capsys: pytest.CaptureFixture[str]) -> None:
    """--compile: one module, compiled once with dynamic shapes; the report counts the compiled calls."""
    code = main(["check-norm", "deadir.testing.examples:layernorm", "--compile", "--properties", "T1 hyperplane",
                 "--max-examples", "6", "--max-d", "8", "--reference", "none"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "torch.compile: compiled code ran in all" in out


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_check_norm_compile_fallback_is_an_error() -> None:
    """A compiled module whose every call falls back to eager (a graph break with nothing compiled) is ERROR."""
    from deadir.testing import run_pack
    from deadir.testing.examples import eager_only_layernorm

    report = run_pack(eager_only_layernorm, compile=True, properties=["T1 hyperplane"], max_examples=4, max_d=8,
                      reference="none", shrink=False)
    assert report.verdict == "ERROR" and "compiled code ran in only 0 of" in (report.error or ""), report.render()
