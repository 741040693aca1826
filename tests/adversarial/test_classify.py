"""Misbehaving norms and bad arguments for classify_norm and ``deadir classify`` (issue 13).

Every case asserts the exception type (a DeadirError that also refines the matching built-in)
or, for the CLI, exit code 2 and no traceback. Each guard's negative control is a well-behaved
input that still classifies.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest
import torch

from deadir import DeadirError, InputShapeError, NormSpec, classify_norm
from deadir.classify import NondeterministicNormError, NormCallError, NormTimeoutError, ProbeTooLargeError


def _layernorm(x: np.ndarray) -> np.ndarray:
    return np.asarray(NormSpec("layernorm", np.linspace(0.5, 1.5, x.shape[1]), np.zeros(x.shape[1])).apply(x))


def _rmsnorm(x: np.ndarray) -> np.ndarray:
    return np.asarray(NormSpec("rmsnorm", np.linspace(0.5, 1.5, x.shape[1]), np.zeros(x.shape[1])).apply(x))


def test_module_of_another_width_is_a_typed_error_not_a_torch_runtime_error() -> None:
    with pytest.raises(InputShapeError, match="normalises 8 channels but d=16"):
        classify_norm(torch.nn.LayerNorm(8), 16)
    with pytest.raises(InputShapeError, match="normalises 8 channels"):
        classify_norm(torch.nn.RMSNorm(8), 4)
    assert classify_norm(torch.nn.LayerNorm(8), 8).kind == "mean-centring"  # control


def test_a_norm_that_raises_is_wrapped() -> None:
    def broken(x: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("boom")

    with pytest.raises(NormCallError, match=r"raised ZeroDivisionError.*boom") as info:
        classify_norm(broken, 4)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, DeadirError)

    def torch_mismatch(x: torch.Tensor) -> torch.Tensor:
        return x @ torch.ones(3, 3)  # a torch RuntimeError (shape mismatch) from inside the norm

    with pytest.raises(NormCallError, match="RuntimeError"):
        classify_norm(torch_mismatch, 4, dtype=torch.float32)


def test_a_norm_that_runs_out_of_memory_is_wrapped() -> None:
    def greedy(x: np.ndarray) -> np.ndarray:
        raise MemoryError

    with pytest.raises(NormCallError, match="MemoryError"):
        classify_norm(greedy, 4)


def test_a_norm_that_never_returns_times_out() -> None:
    never = threading.Event()

    def hung(x: np.ndarray) -> np.ndarray:
        never.wait()  # a daemon thread abandoned by the timeout; set below so it ends
        return x

    try:
        with pytest.raises(NormTimeoutError, match=r"did not return within 0\.3 s") as info:
            classify_norm(hung, 4, timeout=0.3)
        assert isinstance(info.value, TimeoutError)
    finally:
        never.set()
    assert classify_norm(_layernorm, 4, timeout=30.0).kind == "mean-centring"  # control: a timeout that is met


def test_a_norm_that_hangs_only_on_a_later_call_times_out() -> None:
    calls = itertools.count()
    release = threading.Event()

    def late(x: np.ndarray) -> np.ndarray:
        if next(calls) >= 2:  # the determinism re-run
            release.wait()
        return _layernorm(x)

    try:
        with pytest.raises(NormTimeoutError):
            classify_norm(late, 6, timeout=0.3)
    finally:
        release.set()


def test_alternating_layernorm_and_rmsnorm_is_not_deterministic() -> None:
    calls = itertools.count()

    def alternating(x: np.ndarray) -> np.ndarray:
        return _layernorm(x) if next(calls) % 2 == 0 else _rmsnorm(x)

    with pytest.raises(NondeterministicNormError, match="not deterministic") as info:
        classify_norm(alternating, 16)
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("noise", [1e-3, 1e-5])
def test_layernorm_with_fresh_output_noise_is_not_deterministic(noise: float) -> None:
    gen = torch.Generator().manual_seed(0)
    module = torch.nn.LayerNorm(16)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = module(x)
        return y + noise * torch.randn(y.shape, generator=gen)

    with pytest.raises(NondeterministicNormError):
        classify_norm(noisy, 16, dtype=torch.float32)


def test_layernorm_with_repeatable_noise_is_not_called_rms() -> None:
    # The same input always gets the same noise (a function of the input), so it is deterministic;
    # norm(2x) ≠ norm(x) by ~1e-3, beyond rounding and below 1 %: "other", never "rms".
    def repeatable(x: np.ndarray) -> np.ndarray:
        y = _layernorm(x)
        return y + 1e-3 * np.sin(1e3 * x)

    result = classify_norm(repeatable, 16)
    assert result.kind == "other", result.note
    assert result.kind != "rms"


@pytest.mark.parametrize("seed", [-1, True, 1.5, "3"])
def test_bad_seed(seed: Any) -> None:
    with pytest.raises(InputShapeError, match="seed"):
        classify_norm(_layernorm, 4, seed=seed)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_bad_timeout(timeout: Any) -> None:
    with pytest.raises(InputShapeError, match="timeout"):
        classify_norm(_layernorm, 4, timeout=timeout)


@pytest.mark.parametrize("d", [1, 0, -5, True, 2.0, "8", None])
def test_bad_d(d: Any) -> None:
    with pytest.raises(InputShapeError, match="d: must be an integer"):
        classify_norm(_layernorm, d)


def test_d_above_the_limit_is_refused_before_allocating() -> None:
    with pytest.raises(ProbeTooLargeError, match="exceeds the classifier's limit max_d=8192") as info:
        classify_norm(_layernorm, 10**9)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ProbeTooLargeError, match="max_d=16"):
        classify_norm(_layernorm, 17, max_d=16)
    with pytest.raises(InputShapeError, match="max_d"):
        classify_norm(_layernorm, 4, max_d=0)
    assert classify_norm(_layernorm, 16, max_d=16).kind == "mean-centring"  # control: at the limit


def test_bad_method() -> None:
    with pytest.raises(InputShapeError, match="method"):
        classify_norm(_layernorm, 4, method="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("out", [None, "text", 3.0])
def test_norm_returning_a_non_array(out: Any) -> None:
    with pytest.raises(InputShapeError, match="expected an array"):
        classify_norm(lambda x: out, 4)


def test_norm_returning_nan_or_wrong_shape() -> None:
    with pytest.raises(InputShapeError, match="NaN or infinite"):
        classify_norm(lambda x: np.where(x > 2.0, np.nan, x), 4)
    with pytest.raises(InputShapeError, match="returned shape"):
        classify_norm(lambda x: x.T, 4)


def test_normspec_of_another_width() -> None:
    with pytest.raises(InputShapeError, match="NormSpec has 4 channels but d=6"):
        classify_norm(NormSpec("layernorm", np.ones(4), np.zeros(4)), 6)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deadir.cli", "classify", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args", [
    ["layernorm", "--spread", "nan"], ["layernorm", "--spread", "inf"], ["layernorm", "--spread", "0.5"],
    ["layernorm", "--seed", "-1"], ["layernorm", "--beta-scale", "nan"], ["layernorm", "--beta-scale", "-1"],
    ["layernorm", "--d", "1"], ["layernorm", "--d", "1000000000"], ["layernorm", "--d", "20000", "--max-d", "16"],
    ["groupnorm", "--d", "10", "--groups", "3"], ["groupnorm", "--groups", "0"],
    ["layernorm", "--timeout", "0"], ["layernorm", "--timeout", "nan"],
])
def test_cli_bad_options_exit_2_without_traceback(args: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr


def test_cli_control_runs() -> None:
    proc = _cli("layernorm", "--d", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"mean-centring"' in proc.stdout
