"""check-norm on other frameworks: NumPy (always), ONNX Runtime, JAX/Flax and Keras 3 (marker ``frameworks``).

The framework tests need the extras ``deadir[onnx,jax,keras]``; without them they skip with
the missing package named. Each framework has its planted wrong input: a norm of that
framework that breaks the algebra (or the declared reference) must not PASS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from deadir.testing import run_pack
from deadir.testing.adapters import DriveOptions, detect_framework

FAST: dict[str, Any] = {"max_examples": 12, "max_d": 12, "shrink": False}


def test_numpy_callable_passes_and_a_broken_one_fails() -> None:
    ok = run_pack("deadir.testing.examples:numpy_layernorm", framework="numpy", reference="layernorm", **FAST)
    assert ok.verdict == "PASS", ok.render()

    class NoCentring:
        deadir_parameters = {"gamma": "gamma", "beta": None, "eps": None}  # noqa: RUF012 - the protocol

        def __init__(self, d: int) -> None:
            self.gamma = np.ones(d, dtype=np.float32)

        def __call__(self, x: Any) -> Any:
            return x / np.sqrt((x * x).mean(-1, keepdims=True)) * self.gamma

    bad = run_pack(NoCentring, framework="numpy", reference="none", properties=["T1 hyperplane"], **FAST)
    assert bad.verdict == "FAIL"


def test_numpy_float16_is_judged_at_its_declared_compute_dtype() -> None:
    """A NumPy norm keeping float16 arithmetic: FAIL at the default (float32) bound, PASS when declared."""
    hidden = run_pack("deadir.testing.examples:numpy_layernorm_half_statistics", framework="numpy", dtype="float16",
                      reference="none", properties=["T1 hyperplane"], **FAST)
    declared = run_pack("deadir.testing.examples:numpy_layernorm_half_statistics", framework="numpy", dtype="float16",
                        compute_dtype="float16", reference="none", properties=["T1 hyperplane"], **FAST)
    assert hidden.verdict == "FAIL" and declared.verdict == "PASS", declared.render()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_numpy_reference_layernorm_is_correct_in_half_precision(dtype: str) -> None:
    """deadir's own NumPy reference computes half inputs with float32 statistics: PASS, reference included."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="bfloat16 NumPy arrays need ml_dtypes")
    ok = run_pack("deadir.testing.examples:numpy_layernorm", framework="numpy", dtype=dtype, reference="layernorm",
                  max_examples=30, max_d=32, shrink=False)
    assert ok.verdict == "PASS", ok.render()


def test_detection() -> None:
    import torch

    from deadir.norms import NormSpec

    assert detect_framework(torch.nn.LayerNorm(3)) == "torch"
    assert detect_framework(NormSpec("layernorm", d=3)) == "numpy"
    assert detect_framework(lambda x: x) == "torch"
    with pytest.raises(ValueError, match="framework"):
        DriveOptions(framework="tensorflow")


@pytest.mark.frameworks
def test_onnxruntime_layernorm_and_rmsnorm() -> None:
    pytest.importorskip("onnxruntime", reason="extra deadir[onnx] not installed")
    ln = run_pack("deadir.testing.examples:onnx_layernorm", framework="onnx", reference="auto", **FAST)
    assert ln.verdict == "PASS", ln.render()
    rms = run_pack("deadir.testing.examples:onnx_rmsnorm", framework="onnx", expect="rms", reference="auto", **FAST)
    assert rms.verdict == "PASS", rms.render()
    wrong = run_pack("deadir.testing.examples:onnx_rmsnorm", framework="onnx", expect="mean-centring",
                     reference="none", properties=["T1 hyperplane"], **FAST)
    assert wrong.verdict == "FAIL"


@pytest.mark.frameworks
def test_onnxruntime_bfloat16_runs_the_bfloat16_kernel_and_names_missing_kernels() -> None:
    """bfloat16 goes in and out through exact Casts (ORT takes no NumPy bfloat16); the kernel itself is judged."""
    pytest.importorskip("onnxruntime", reason="extra deadir[onnx] not installed")
    ln = run_pack("deadir.testing.examples:onnx_layernorm", framework="onnx", dtype="bfloat16", reference="auto",
                  **FAST)
    assert ln.verdict == "PASS", ln.render()
    # planted wrong expectation: the bfloat16 LayerNorm has a kernel, so "rms" (T5) must fail — the node ran
    wrong = run_pack("deadir.testing.examples:onnx_layernorm", framework="onnx", dtype="bfloat16", expect="rms",
                     reference="none", **FAST)
    assert wrong.verdict == "FAIL", wrong.render()
    # RMSNormalization (opset 23) has no bfloat16 CPU kernel in onnxruntime (its Mul(14) expansion): ERROR naming it
    rms = run_pack("deadir.testing.examples:onnx_rmsnorm", framework="onnx", dtype="bfloat16", expect="rms",
                   reference="auto", **FAST)
    assert rms.verdict == "ERROR"
    assert "runtime limitation, not deadir's adapter" in rms.render() and "NOT_IMPLEMENTED" in rms.render()


@pytest.mark.frameworks
def test_onnx_node_by_name_in_a_larger_graph(tmp_path: Any) -> None:
    onnx = pytest.importorskip("onnx", reason="extra deadir[onnx] not installed")
    pytest.importorskip("onnxruntime", reason="extra deadir[onnx] not installed")
    from onnx import TensorProto, helper, numpy_helper

    d = 6
    inits = [numpy_helper.from_array(np.ones(d, dtype=np.float32), name="s"),
             numpy_helper.from_array(np.zeros(d, dtype=np.float32), name="b")]
    nodes = [helper.make_node("Relu", ["X"], ["h"], name="relu"),
             helper.make_node("LayerNormalization", ["h", "s", "b"], ["Y"], name="ln", axis=-1, epsilon=1e-5)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    report = run_pack(lambda _d: str(path), framework="onnx", node="ln", d=d, reference="auto", **FAST)
    assert report.verdict == "PASS", report.render()
    missing = run_pack(lambda _d: str(path), framework="onnx", node="nope", d=d, **FAST)
    assert missing.verdict == "ERROR" and "no node named 'nope'" in missing.render()


@pytest.mark.frameworks
def test_flax_nnx_and_linen() -> None:
    pytest.importorskip("flax", reason="extra deadir[jax] not installed")
    two_pass = run_pack("deadir.testing.examples:flax_linen_layernorm_two_pass", reference="layernorm", **FAST)
    assert two_pass.verdict == "PASS", two_pass.render()
    rms = run_pack("deadir.testing.examples:flax_nnx_rmsnorm", expect="rms", reference="rmsnorm", **FAST)
    assert rms.verdict == "PASS", rms.render()
    # Flax's default fast variance E[x²] − μ² cancels when the mean dwarfs the spread: a real defect, caught
    fast = run_pack("deadir.testing.examples:flax_nnx_layernorm", reference="layernorm",
                    **{**FAST, "max_examples": 30})
    assert fast.verdict == "FAIL"


@pytest.mark.frameworks
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_layernorm_on_two_backends(backend: str) -> None:
    import importlib.util

    for package in ("keras", backend):  # importing keras itself needs a backend chosen: look it up only
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"extra deadir[keras] not installed ({package} missing)")
    env = {**os.environ, "KERAS_BACKEND": backend}
    base = [sys.executable, "-m", "deadir.cli", "check-norm", "--max-examples", "8", "--max-d", "8"]
    ok = subprocess.run([*base, "deadir.testing.examples:keras_layernorm", "--reference", "layernorm"],
                        capture_output=True, text=True, env=env, timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    # Keras computes a float64 layer in float32: a real defect, caught at float64's bound
    f64 = subprocess.run([*base, "deadir.testing.examples:keras_layernorm", "--reference", "layernorm", "--dtype",
                          "float64"], capture_output=True, text=True, env=env, timeout=600)
    assert f64.returncode == 1, f64.stdout[-3000:]
