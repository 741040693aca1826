"""`deadir scan model.onnx` and `deadir verify model.onnx` dispatch to the ONNX reader and onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deadir.cli import main  # noqa: E402

D, VOCAB = 16, 300


def _text_model(tmp_path: Path, kind: str) -> Path:
    rng = np.random.default_rng(0)
    gamma = rng.uniform(0.5, 2.0, D).astype(np.float32) * rng.choice([-1, 1], D).astype(np.float32)
    inits = [numpy_helper.from_array(rng.normal(size=(VOCAB, D)).astype(np.float32), "emb"),
             numpy_helper.from_array(gamma, "ln.weight"),
             numpy_helper.from_array(rng.normal(size=D).astype(np.float32), "ln.bias")]
    if kind == "layernorm":
        norm = helper.make_node("LayerNormalization", ["X", "ln.weight", "ln.bias"], ["Y"], epsilon=1e-5)
    else:
        norm = helper.make_node("RMSNormalization", ["X", "ln.weight"], ["Y"], epsilon=1e-5)
        inits = inits[:2]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["emb", "input_ids"], ["X"]), norm], "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    path = tmp_path / f"{kind}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("kind", "kernel"), [("layernorm", True), ("rmsnorm", False)])
def test_scan_onnx_from_the_cli(kind: str, kernel: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(_text_model(tmp_path, kind)), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "onnx"
    assert [(s["kind"], s["kernel_predicted"], s["d"]) for s in report["sites"]] == [(kind, kernel, D)]


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_verify_onnx_from_the_cli(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """LayerNorm sits at the float floor; RMSNorm (the planted negative) does not."""
    assert main(["verify", str(_text_model(tmp_path, kind)), "--tokens", "256", "--json"]) == 0
    (site,) = json.loads(capsys.readouterr().out)["sites"]
    assert site["at_floor"] is (kind == "layernorm")
    if kind == "rmsnorm":  # not a near miss: many orders above the rounding floor
        assert site["rayleigh_rel"] > 1e6 * site["floor_rel"]


def test_verify_onnx_refuses_torch_only_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(_text_model(tmp_path, "layernorm")), "--fisher"]) == 2
    assert "do not apply" in capsys.readouterr().err
