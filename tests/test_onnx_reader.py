"""deadir.io.onnx on small ONNX graphs generated at test time (onnx.helper)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deadir.errors import CheckpointError  # noqa: E402
from deadir.io.onnx import (  # noqa: E402
    OnnxError,
    OnnxLimits,
    external_data_file,
    is_onnx_path,
    list_onnx_tensors,
    read_onnx_norms,
    read_onnx_tensors,
    scan_onnx,
)

D = 8
RNG = np.random.default_rng(0)
GAMMA = RNG.uniform(0.5, 2.0, D).astype(np.float32)
BETA = RNG.normal(size=D).astype(np.float32)


def _const(name: str, value: Any) -> Any:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32)))


def _model(nodes: list[Any], inits: list[Any], *, opset: int = 17, extra_opsets: tuple[tuple[str, int], ...] = (),
           out: str = "Y", functions: list[Any] | None = None) -> Any:  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3, D])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], initializer=inits,
    )  # fmt: skip
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10, functions=functions or [])


def _affine_inits() -> list[Any]:
    return [numpy_helper.from_array(GAMMA, "ln.weight"), numpy_helper.from_array(BETA, "ln.bias")]


def native_ln() -> Any:
    node = helper.make_node("LayerNormalization", ["X", "ln.weight", "ln.bias"], ["Y"], name="/ln/LN", axis=-1,
                            epsilon=1e-6)  # fmt: skip
    return _model([node], _affine_inits())


def native_rms() -> Any:
    node = helper.make_node("RMSNormalization", ["X", "ln.weight"], ["Y"], name="/ln/RMS", axis=-1, epsilon=1e-6)
    return _model([node], _affine_inits()[:1], opset=23)


def simplified_rms() -> Any:
    node = helper.make_node("SimplifiedLayerNormalization", ["X", "ln.weight"], ["Y"], name="/ln/SLN", axis=-1,
                            epsilon=1e-6, domain="com.microsoft")  # fmt: skip
    return _model([node], _affine_inits()[:1], extra_opsets=(("com.microsoft", 1),))


def decomposed(*, num_centred: bool = True, den_centred: bool = True, square: str = "pow", root: str = "div",
               axes: int = -1, opset: int = 17, affine: bool = True) -> Any:  # fmt: skip
    """LayerNorm / RMSNorm written out op by op, with switches that break the algebra."""

    def reduce(inp: str, out: str, name: str) -> list[Any]:
        if opset >= 18:
            return [
                helper.make_node("Constant", [], [out + "_axes"], value=numpy_helper.from_array(np.array([axes]))),
                helper.make_node("ReduceMean", [inp, out + "_axes"], [out], name=name),
            ]
        return [helper.make_node("ReduceMean", [inp], [out], name=name, axes=[axes])]

    nodes: list[Any] = [*reduce("X", "mu", "/ln/ReduceMean"),
                        helper.make_node("Sub", ["X", "mu"], ["xc"], name="/ln/Sub")]  # fmt: skip
    c = "xc" if den_centred else "X"
    if square == "pow":
        nodes += [_const("two", 2.0), helper.make_node("Pow", [c, "two"], ["sq"], name="/ln/Pow")]
    else:
        nodes += [helper.make_node("Mul", [c, c], ["sq"], name="/ln/Sq")]
    nodes += [*reduce("sq", "var", "/ln/ReduceMean_1"), _const("eps", 1e-5),
              helper.make_node("Add", ["var", "eps"], ["ve"], name="/ln/AddEps")]  # fmt: skip
    n = "xc" if num_centred else "X"
    if root == "div":
        nodes += [helper.make_node("Sqrt", ["ve"], ["r"], name="/ln/Sqrt"),
                  helper.make_node("Div", [n, "r"], ["z"], name="/ln/Div")]  # fmt: skip
    elif root == "reciprocal":
        nodes += [helper.make_node("Sqrt", ["ve"], ["r"], name="/ln/Sqrt"),
                  helper.make_node("Reciprocal", ["r"], ["ri"], name="/ln/Recip"),
                  helper.make_node("Mul", ["ri", n], ["z"], name="/ln/MulInv")]  # fmt: skip
    else:  # Pow(·, −0.5)
        nodes += [_const("mhalf", -0.5), helper.make_node("Pow", ["ve", "mhalf"], ["ri"], name="/ln/Rsqrt"),
                  helper.make_node("Mul", [n, "ri"], ["z"], name="/ln/MulInv")]  # fmt: skip
    if not affine:
        nodes.append(helper.make_node("Identity", ["z"], ["Y"], name="/out"))
        return _model(nodes, [], opset=opset)
    nodes += [helper.make_node("Mul", ["z", "ln.weight"], ["zg"], name="/ln/MulG"),
              helper.make_node("Add", ["zg", "ln.bias"], ["Y"], name="/ln/AddB")]  # fmt: skip
    return _model(nodes, _affine_inits(), opset=opset)


def decomposed_rms() -> Any:
    """RMSNorm without a mean anywhere: x · Reciprocal(Sqrt(mean(x·x) + ε)) · γ."""
    nodes = [
        helper.make_node("Mul", ["X", "X"], ["sq"], name="/rms/Sq"),
        helper.make_node("ReduceMean", ["sq"], ["ms"], name="/rms/ReduceMean", axes=[-1]),
        _const("eps", 1e-6),
        helper.make_node("Add", ["ms", "eps"], ["me"], name="/rms/Add"),
        helper.make_node("Sqrt", ["me"], ["r"], name="/rms/Sqrt"),
        helper.make_node("Reciprocal", ["r"], ["ri"], name="/rms/Recip"),
        helper.make_node("Mul", ["X", "ri"], ["z"], name="/rms/Mul"),
        helper.make_node("Mul", ["ln.weight", "z"], ["Y"], name="/rms/MulG"),
    ]
    return _model(nodes, _affine_inits()[:1])


def save(model: Any, folder: Path, name: str = "m.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


# ------------------------------------------------------------------------------ recognised


@pytest.mark.parametrize(
    ("build", "kind", "how", "has_bias"),
    [
        (native_ln, "layernorm", "LayerNormalization", True),
        (native_rms, "rmsnorm", "RMSNormalization", False),
        (simplified_rms, "rmsnorm", "SimplifiedLayerNormalization", False),
        (decomposed, "layernorm", "decomposed-layernorm", True),
        (decomposed_rms, "rmsnorm", "decomposed-rmsnorm", False),
    ],
)
def test_reads_each_norm_form(tmp_path: Path, build: Any, kind: str, how: str, has_bias: bool) -> None:
    norms = read_onnx_norms(save(build(), tmp_path))
    assert len(norms.sites) == 1, norms.unrecognised
    s = norms.sites[0]
    assert (s.kind, s.recognised_as, s.d, s.path, s.output_name) == (kind, how, D, "ln", "Y")
    assert s.weight is not None and s.weight.dtype == np.float64
    np.testing.assert_array_equal(s.weight, GAMMA.astype(np.float64))  # exact widening
    if has_bias:
        assert s.bias is not None
        np.testing.assert_array_equal(s.bias, BETA.astype(np.float64))
    else:
        assert s.bias is None
    assert s.eps > 0 and s.input_name == "X"
    assert not norms.unrecognised


@pytest.mark.parametrize(
    "kw",
    [dict(square="mul"), dict(root="reciprocal"), dict(root="rsqrt"), dict(opset=18), dict(axes=2)],
    ids=["mul-self", "reciprocal", "pow-minus-half", "axes-input", "axis-as-rank-minus-1"],
)
def test_decomposed_layernorm_variants(tmp_path: Path, kw: dict[str, Any]) -> None:
    norms = read_onnx_norms(save(decomposed(**kw), tmp_path))
    assert [s.recognised_as for s in norms.sites] == ["decomposed-layernorm"], norms.unrecognised
    s = norms.sites[0]
    assert s.path == "ln" and s.eps == pytest.approx(1e-5, rel=1e-6)
    np.testing.assert_array_equal(s.bias, BETA.astype(np.float64))


def test_decomposed_without_affine_has_unit_scale(tmp_path: Path) -> None:
    s = read_onnx_norms(save(decomposed(affine=False), tmp_path)).sites[0]
    assert s.weight is None and s.bias is None and s.output_name == "z"
    np.testing.assert_array_equal(s.gamma, np.ones(D))
    assert s.path == "/ln"  # from the nodes' shared name prefix


def test_eps_is_the_stored_float32(tmp_path: Path) -> None:
    s = read_onnx_norms(save(native_ln(), tmp_path)).sites[0]
    assert s.eps == float(np.float32(1e-6))


# ------------------------------------------------------------------------------ unrecognised


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        (dict(num_centred=True, den_centred=False), "raw second moment"),
        (dict(num_centred=False, den_centred=True), "raw numerator"),
        (dict(axes=1), "last axis only"),
    ],
    ids=["centred-over-raw-root", "raw-over-centred-root", "other-axis"],
)
def test_algebra_that_is_neither_norm_is_unrecognised(tmp_path: Path, kw: dict[str, Any], reason: str) -> None:
    norms = read_onnx_norms(save(decomposed(**kw), tmp_path))
    assert norms.sites == ()
    assert any(reason in u.reason for u in norms.unrecognised), norms.unrecognised


def test_root_not_used_as_divisor_is_unrecognised(tmp_path: Path) -> None:
    model = decomposed()
    for n in model.graph.node:
        if n.op_type == "Div":  # x·r instead of x/r: not a normalisation
            n.op_type = "Mul"
    norms = read_onnx_norms(save(model, tmp_path))
    assert norms.sites == () and any("divisor" in u.reason for u in norms.unrecognised)


def test_native_norm_over_two_axes_is_unrecognised(tmp_path: Path) -> None:
    model = native_ln()
    model.graph.node[0].attribute[0].i = 1  # axis=1 of a rank-3 input: normalises the last two axes
    norms = read_onnx_norms(save(model, tmp_path))
    assert norms.sites == () and "last axis only" in norms.unrecognised[0].reason


def test_pooling_mean_and_batchnorm_are_reported_not_guessed(tmp_path: Path) -> None:
    model = native_ln()
    model.graph.node.append(helper.make_node("ReduceMean", ["Y"], ["pooled"], name="/pool", axes=[1]))
    norms = read_onnx_norms(save(model, tmp_path))
    assert len(norms.sites) == 1
    assert [(u.node, u.op_type) for u in norms.unrecognised] == [("/pool", "ReduceMean")]


# ------------------------------------------------------------------------------ refusals


def test_missing_and_non_onnx_files(tmp_path: Path) -> None:
    with pytest.raises(OnnxError, match="no such file"):
        read_onnx_norms(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xfe not a protobuf \x00" * 10)
    with pytest.raises(OnnxError, match=r"not an ONNX model|no graph"):
        read_onnx_norms(bad)
    empty = save(helper.make_model(helper.make_graph([], "g", [], [])), tmp_path, "empty.onnx")
    with pytest.raises(OnnxError, match="no graph nodes"):
        read_onnx_norms(empty)
    (tmp_path / "two").mkdir()
    save(native_ln(), tmp_path / "two", "a.onnx")
    save(native_ln(), tmp_path / "two", "b.onnx")
    with pytest.raises(OnnxError, match="exactly one"):
        read_onnx_norms(tmp_path / "two")


def test_errors_are_typed() -> None:
    assert issubclass(OnnxError, CheckpointError) and issubclass(OnnxError, ValueError)


def test_limits_are_enforced(tmp_path: Path) -> None:
    path = save(decomposed(), tmp_path)
    with pytest.raises(OnnxError, match="over the limit"):
        read_onnx_norms(path, limits=OnnxLimits(max_nodes=3))
    with pytest.raises(OnnxError, match="over the limit"):
        read_onnx_norms(path, limits=OnnxLimits(max_file_bytes=10))


def test_nan_gamma_is_refused(tmp_path: Path) -> None:
    model = native_ln()
    bad = GAMMA.copy()
    bad[3] = np.nan
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(bad, "ln.weight"))
    with pytest.raises(OnnxError, match="NaN or infinite"):
        read_onnx_norms(save(model, tmp_path))


@pytest.mark.parametrize(
    ("domain", "op"), [("com.example", "MyNorm"), ("com.microsoft", "SkipLayerNormalization")]
)
def test_custom_op_domains_are_refused(tmp_path: Path, domain: str, op: str) -> None:
    model = native_ln()
    model.graph.node.append(helper.make_node(op, ["Y"], ["Z"], name="/custom", domain=domain))
    model.opset_import.append(helper.make_opsetid(domain, 1))
    with pytest.raises(OnnxError, match=f"custom domain '{domain}'"):
        read_onnx_norms(save(model, tmp_path))


def test_custom_op_inside_a_subgraph_is_refused(tmp_path: Path) -> None:
    body = helper.make_graph([helper.make_node("Evil", ["X"], ["o"], domain="com.example")], "body", [],
                             [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])  # fmt: skip
    model = native_ln()
    model.graph.node.append(helper.make_node("If", ["cond"], ["Z"], then_branch=body, else_branch=body))
    with pytest.raises(OnnxError, match=r"com\.example"):
        read_onnx_norms(save(model, tmp_path))


def test_model_local_functions_are_refused(tmp_path: Path) -> None:
    fn = helper.make_function("com.example", "Fn", ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])],
                              [helper.make_opsetid("", 17)])  # fmt: skip
    model = _model(native_ln().graph.node, _affine_inits(), functions=[fn])
    with pytest.raises(OnnxError, match="model-local functions"):
        read_onnx_norms(save(model, tmp_path))


# ------------------------------------------------------------------------------ external data


def _external(model: Any, location: str, *, offset: int = 0, length: int | None = None) -> Any:
    """Point ln.weight at ``location`` (the bytes are written by the caller)."""
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": str(offset), "length": str(length if length is not None else 4 * D)}
    for k, v in entries.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    return model


def test_external_data_inside_the_folder_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "data").mkdir()
    (folder / "data" / "w.bin").write_bytes(b"\x00" * 12 + GAMMA.tobytes())
    path = save(_external(native_ln(), "data/w.bin", offset=12), folder)
    s = read_onnx_norms(path).sites[0]
    np.testing.assert_array_equal(s.weight, GAMMA.astype(np.float64))
    assert list_onnx_tensors(path)["ln.weight"].external
    np.testing.assert_array_equal(read_onnx_tensors(path, ["ln.weight"])["ln.weight"], GAMMA.astype(np.float64))


@pytest.mark.parametrize("location", ["../outside.bin", "data/../../outside.bin", "OUTSIDE_ABS", "", "link.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, location: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(GAMMA.tobytes())
    if location == "OUTSIDE_ABS":
        location = str(outside)
    if location == "link.bin":
        os.symlink(outside, folder / "link.bin")  # a symlink inside the folder that escapes it
    path = save(_external(native_ln(), location), folder)
    with pytest.raises(OnnxError, match=r"outside|absolute|'\.\.'"):
        read_onnx_norms(path)
    with pytest.raises(OnnxError):
        list_onnx_tensors(path)


def test_external_byte_range_past_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(GAMMA.tobytes())
    path = save(_external(native_ln(), "w.bin", offset=8), tmp_path)
    with pytest.raises(OnnxError, match="outside"):
        read_onnx_norms(path)


def test_external_data_file_must_be_regular(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(OnnxError, match="not a regular file"):
        external_data_file(tmp_path, "sub", where="t")


# ------------------------------------------------------------------------------ views and scan rows

SCAN_SITE_KEYS = {
    "path", "kind", "d", "eps", "weight_offset", "has_bias", "groups", "role", "stack", "block", "class_name",
    "probed", "weight_name", "bias_name", "stored_dtype", "guessed", "kind_source", "eps_source", "kernel",
    "kernel_predicted", "degenerate", "dead", "live_fraction", "gamma_median", "gamma_min", "gamma_max",
    "gamma_argmin", "spread", "min_over_median", "direction",
}  # fmt: skip


def test_scan_rows_carry_scan_site_fields_and_the_direction(tmp_path: Path) -> None:
    rows = scan_onnx(save(native_ln(), tmp_path))
    assert len(rows) == 1 and SCAN_SITE_KEYS <= set(rows[0])
    r = rows[0]
    assert r["kernel"] == "inverse-scale" and r["kernel_predicted"] and not r["guessed"]
    v = 1.0 / GAMMA.astype(np.float64)
    np.testing.assert_allclose(r["direction"], v / np.linalg.norm(v), rtol=1e-15)
    assert scan_onnx(save(native_rms(), tmp_path / "rms"))[0]["kernel"] == "none"


def test_scan_rows_report_zero_scales(tmp_path: Path) -> None:
    model = native_ln()
    g = GAMMA.copy()
    g[2] = 0.0
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(g, "ln.weight"))
    r = scan_onnx(save(model, tmp_path))[0]
    assert r["kernel"] == "zero-scale" and r["degenerate"] == [2] and r["direction"] is None


def test_is_onnx_path(tmp_path: Path) -> None:
    p = save(native_ln(), tmp_path / "f")
    assert is_onnx_path(p) and is_onnx_path(tmp_path / "f")
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "model.safetensors").write_bytes(b"")
    save(native_ln(), tmp_path / "st")
    assert not is_onnx_path(tmp_path / "st") and not is_onnx_path(tmp_path / "nothing.onnx")


def test_scale_applied_before_the_division_is_unrecognised(tmp_path: Path) -> None:
    """(γ⊙(x−μ))/r is algebraically a LayerNorm, but the reader only accepts the numerator x−μ itself."""
    model = decomposed()
    nodes = list(model.graph.node)
    div = next(n for n in nodes if n.op_type == "Div")
    mulg = next(n for n in nodes if n.name == "/ln/MulG")
    mulg.input[:] = ["xc", "ln.weight"]
    mulg.output[:] = ["xg"]
    div.input[0] = "xg"
    div.output[0] = "zg"
    norms = read_onnx_norms(save(model, tmp_path))
    assert norms.sites == () and any("numerator" in u.reason for u in norms.unrecognised)


def test_non_constant_eps_is_unrecognised(tmp_path: Path) -> None:
    model = decomposed()
    for n in model.graph.node:
        if n.name == "/ln/AddEps":
            n.input[1] = "X"  # the moment plus a tensor: not an ε
    norms = read_onnx_norms(save(model, tmp_path))
    assert norms.sites == () and any("non-constant" in u.reason for u in norms.unrecognised)
