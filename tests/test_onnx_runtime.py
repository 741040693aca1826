"""deadir.onnx_runtime: onnxruntime with the norm outputs exposed, measured in float64 (small generated graphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deadir.errors import InputShapeError  # noqa: E402
from deadir.io.onnx import OnnxError, read_onnx_norms  # noqa: E402
from deadir.onnx_runtime import exposed_model, verify_onnx  # noqa: E402

D = 16
VOCAB = 300
RNG = np.random.default_rng(1)
GAMMA = RNG.uniform(0.3, 3.0, D).astype(np.float32)
BETA = RNG.normal(size=D).astype(np.float32)
EMB = RNG.normal(size=(VOCAB, D)).astype(np.float32) * 2 + 0.5


def _norm_nodes(kind: str, x: str, y: str) -> tuple[list[Any], list[Any], list[Any]]:
    """(nodes, initializers, extra opsets) of one norm from x to y."""
    inits = [numpy_helper.from_array(GAMMA, "n.weight"), numpy_helper.from_array(BETA, "n.bias")]
    if kind == "ln":
        return [helper.make_node("LayerNormalization", [x, "n.weight", "n.bias"], [y], epsilon=1e-5)], inits, []
    if kind == "rms":
        return [helper.make_node("RMSNormalization", [x, "n.weight"], [y], epsilon=1e-5)], inits[:1], []
    if kind == "simplified":
        node = helper.make_node("SimplifiedLayerNormalization", [x, "n.weight"], [y], epsilon=1e-5,
                                domain="com.microsoft")  # fmt: skip
        return [node], inits[:1], [helper.make_opsetid("com.microsoft", 1)]
    two = helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.float32(2.0)))
    eps = helper.make_node("Constant", [], ["eps"], value=numpy_helper.from_array(np.float32(1e-5)))
    nodes = [
        helper.make_node("ReduceMean", [x], ["mu"], axes=[-1]), helper.make_node("Sub", [x, "mu"], ["xc"]), two,
        helper.make_node("Pow", ["xc", "two"], ["sq"]), helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
        eps, helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["r"]),
        helper.make_node("Div", ["xc", "r"], ["z"]), helper.make_node("Mul", ["z", "n.weight"], ["zg"]),
        helper.make_node("Add", ["zg", "n.bias"], [y]),
    ]  # fmt: skip
    return nodes, inits, []


def text_model(kind: str) -> Any:
    nodes, inits, extra = _norm_nodes(kind, "X", "Y")
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["X"]), *nodes]
    inits = [numpy_helper.from_array(EMB, "emb"), *inits]
    graph = helper.make_graph(
        nodes, "text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, None)], initializer=inits,
    )  # fmt: skip
    opset = 23 if kind == "rms" else 17
    if opset < 18:  # Y is then an intermediate tensor, exposed by verify; ReduceMean takes axes as an input from 18
        graph.node.append(helper.make_node("ReduceMean", ["Y"], ["pooled"], axes=[1], keepdims=0))
    else:
        graph.output[0].name = "Y"
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra], ir_version=10)


def image_model() -> Any:
    """(N, 1, 4, 4) image → reshape to (N, 1, 16) → decomposed LayerNorm over the 16 pixels."""
    nodes, inits, _ = _norm_nodes("decomposed", "X", "Y")
    shape = helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([0, 1, D])))
    nodes = [shape, helper.make_node("Reshape", ["img", "shape"], ["X"]), *nodes]
    graph = helper.make_graph(
        nodes, "vision", [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["n", 1, 4, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def save(model: Any, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.onnx").write_bytes(model.SerializeToString())
    return folder / "m.onnx"


@pytest.mark.parametrize("kind", ["ln", "decomposed"])
def test_layernorm_kernel_at_the_float_floor(tmp_path: Path, kind: str) -> None:
    res = verify_onnx(save(text_model(kind), tmp_path), tokens=1024, seq_len=16)
    (s,) = res.sites
    assert s.predicted == "kernel" and s.n == 1024 and s.d == D
    assert s.rayleigh_rel is not None and s.floor_rel is not None
    assert s.at_floor and s.rayleigh_rel <= s.floor_rel
    assert s.cos_bottom is not None and s.cos_bottom > 0.999999
    assert s.near_null[1e-10] == 1
    assert res.forward_dtype == "float32" and "stated vocabulary of 300" in res.inputs


@pytest.mark.parametrize("kind", ["rms", "simplified"])
def test_rmsnorm_control_is_far_above_the_floor(tmp_path: Path, kind: str) -> None:
    # negative control: the same measurement on an RMSNorm must not reach the LayerNorm floor
    (s,) = verify_onnx(save(text_model(kind), tmp_path), tokens=1024, seq_len=16).sites
    assert s.predicted == "control" and s.at_floor is False
    assert s.rayleigh_rel is not None and s.floor_rel is not None and s.rayleigh_rel > 1e3 * s.floor_rel
    assert s.near_null[1e-6] == 0


def test_exposed_outputs_are_the_norm_input_and_output(tmp_path: Path) -> None:
    """What verify measures is y itself (and x): compare with a float64 reference LayerNorm."""
    import onnxruntime as ort

    path = save(text_model("ln"), tmp_path)
    model = onnx.load(str(path))
    sess = ort.InferenceSession(exposed_model(path, model, read_onnx_norms(path)), providers=["CPUExecutionProvider"])
    ids = np.arange(12, dtype=np.int64).reshape(2, 6)
    y, x = sess.run(["Y", "X"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    ref_x = EMB[ids].astype(np.float64)
    z = (ref_x - ref_x.mean(-1, keepdims=True)) / np.sqrt(ref_x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_array_equal(x, EMB[ids])
    np.testing.assert_allclose(y, z * GAMMA + BETA, rtol=1e-5, atol=1e-5)


def test_vision_input_is_synthesised_at_the_model_resolution(tmp_path: Path) -> None:
    res = verify_onnx(save(image_model(), tmp_path), images=40)
    (s,) = res.sites
    assert "40 synthesised images 1×4×4" in res.inputs and s.n == 40 and s.at_floor


def test_nothing_is_written_next_to_the_model(tmp_path: Path) -> None:
    path = save(text_model("ln"), tmp_path / "m")
    before = sorted(p.name for p in path.parent.iterdir())
    verify_onnx(path, tokens=64, seq_len=16)
    assert sorted(p.name for p in path.parent.iterdir()) == before


def test_external_data_is_inlined_in_memory(tmp_path: Path) -> None:
    model = text_model("ln")
    t = model.graph.initializer[1]  # n.weight
    (tmp_path / "w.bin").write_bytes(GAMMA.tobytes())
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in {"location": "w.bin", "offset": "0", "length": str(4 * D)}.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    path = save(model, tmp_path)
    (s,) = verify_onnx(path, tokens=256, seq_len=16).sites
    assert s.at_floor
    # the in-memory copy holds the bytes and every site's y and x as graph outputs
    copy = onnx.ModelProto.FromString(exposed_model(path, model, read_onnx_norms(path)))
    assert {"Y", "X"} <= {o.name for o in copy.graph.output}
    assert all(i.data_location != TensorProto.EXTERNAL for i in copy.graph.initializer)


def test_bad_arguments_and_inputs(tmp_path: Path) -> None:
    path = save(text_model("ln"), tmp_path)
    with pytest.raises(InputShapeError):
        verify_onnx(path, tokens=0)
    with pytest.raises(InputShapeError):
        verify_onnx(path, optimization="max")
    odd = text_model("ln")
    odd.graph.input.append(helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 80, 3000]))
    with pytest.raises(OnnxError, match="neither token ids"):
        verify_onnx(save(odd, tmp_path / "odd"), tokens=64, seq_len=16)


def test_graph_without_norms_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Gather", ["emb", "input_ids"], ["Y"])], "g",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(EMB, "emb")])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    with pytest.raises(OnnxError, match="no LayerNorm/RMSNorm site"):
        verify_onnx(save(model, tmp_path), tokens=64, seq_len=16)


def test_report_renders_and_serialises(tmp_path: Path) -> None:
    import json

    res = verify_onnx(save(text_model("decomposed"), tmp_path), tokens=256, seq_len=16)
    text = res.render()
    assert res.sites[0].site.path == "n" and "decomposed-layernorm" in text and "float64" in text
    data = json.loads(json.dumps(res.to_dict()))
    assert data["format"] == "onnx" and data["sites"][0]["at_floor"] is True
    assert res.site("n").n == 256
    with pytest.raises(KeyError, match="not a measured site"):
        res.site("absent")


def test_rank_limited_inputs_are_flagged(tmp_path: Path) -> None:
    """Fewer distinct rows than d + 1 leave null directions that come from the inputs, not the norm."""
    path = save(text_model("ln"), tmp_path)
    few = verify_onnx(path, tokens=8, seq_len=1)  # 8 rows for d = 16
    assert few.sites[0].rank_limited and few.sites[0].distinct_rows <= 8
    many = verify_onnx(path, tokens=512, seq_len=16)
    assert not many.sites[0].rank_limited and many.sites[0].distinct_rows == D + 1
