"""The ONNX adapter: one norm node of an ONNX graph, run alone by onnxruntime (extra ``deadir[onnx]``).

The factory returns an ``onnx.ModelProto`` or the path of a ``.onnx`` file (read with
``onnx.load``: protobuf, nothing executes). The node is ``--node NAME`` or the graph's only
norm node (LayerNormalization, RMSNormalization, GroupNormalization,
SimplifiedLayerNormalization). It is cut out of the graph into a one-node model with the
same opset and attributes, its scale and bias become initializers holding the drawn γ and
β, and its ``epsilon`` attribute the drawn ε (ε is part of the op's definition, not a name
deadir guesses). The op type also names the reference formula for ``--reference auto``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import InputShapeError
from deadir.precision import default_compute_dtype, dtype_name
from deadir.testing.adapters import DriveOptions, Layout
from deadir.testing.adapters.numpy import numpy_dtype
from deadir.testing.assertions import PreparedNorm
from deadir.testing.harness import FactoryError

__all__ = ["NORM_OPS", "bind_onnx", "norm_node"]

NORM_OPS = {"LayerNormalization": "layernorm", "RMSNormalization": "rmsnorm", "GroupNormalization": "groupnorm",
            "SimplifiedLayerNormalization": "rmsnorm"}


def _load(norm: Any) -> Any:
    import onnx

    if isinstance(norm, (str, Path)):
        path = Path(norm)
        if not path.is_file():
            raise FactoryError(f"onnx: {path} is not a regular file")
        return onnx.load(str(path))
    if isinstance(norm, onnx.ModelProto):
        return norm
    raise FactoryError(f"factory: returned {type(norm).__name__}, expected an onnx.ModelProto or a .onnx path")


def norm_node(model: Any, name: str | None) -> Any:
    """The node to test: by name, else the only norm node.

    Raises:
        InputShapeError: no such node, or several norm nodes and no name.
    """
    nodes = list(model.graph.node)
    if name is not None:
        found = [n for n in nodes if n.name == name]
        if not found:
            raise InputShapeError(f"node: no node named {name!r}; nodes: {[n.name for n in nodes][:20]}")
        return found[0]
    norms = [n for n in nodes if n.op_type in NORM_OPS]
    if len(norms) != 1:
        raise InputShapeError(f"node: the graph has {len(norms)} norm nodes ({[n.name for n in norms][:10]}); "
                              "name one with --node")
    return norms[0]


def _elem_type(name: str) -> int:
    import onnx

    types: dict[str, int] = {"float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16,
                             "float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE}
    return types[name]


def _session_error(op: str, dtype: str, exc: Exception, version: str) -> str:
    """Why onnxruntime could not build a session: a missing CPU kernel is named as the runtime's limitation."""
    text = str(exc)
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    if "NOT_IMPLEMENTED" in text:
        missing = re.search(r"implementation for (\w+)\((\d+)\)", text)
        via = (f"{op} is expanded into its ONNX function body, whose {missing.group(1)}({missing.group(2)}) has no "
               f"{dtype} kernel" if missing and missing.group(1) != op else f"it has no {dtype} kernel for {op}")
        return (f"onnxruntime {version} cannot run {op} in {dtype} on its CPUExecutionProvider: {via} (a runtime "
                f"limitation, not deadir's adapter): {first}")
    return f"onnxruntime {version} cannot run {op} in {dtype}: {first}"


def bind_onnx(norm: Any, d: int, *, weight: FloatArray | None, beta: FloatArray | None, eps: float | None,
              dtype: str, options: DriveOptions) -> PreparedNorm:
    """Bind an ONNX norm node (see the module docstring).

    Raises:
        InputShapeError: no usable node, parameters of the wrong size.
        FactoryError: not an ONNX model; onnxruntime cannot build a session for the node in ``dtype``.
    """
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = _load(norm)
    node = norm_node(model, options.node)
    name = dtype_name(dtype)
    npdt = numpy_dtype(name)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    offset = float(options.weight_offset or 0.0)
    inputs = list(node.input)
    new_inits = []
    gamma, beta_now = np.ones(d), np.zeros(d)
    for pos, values in ((1, weight), (2, beta)):
        if len(inputs) <= pos or not inputs[pos]:
            continue
        current = inits.get(inputs[pos])
        if current is None:
            raise InputShapeError(f"node {node.name!r}: input {inputs[pos]!r} is not an initializer: cannot set it")
        if current.size != d:
            raise InputShapeError(f"node {node.name!r}: {inputs[pos]!r} has {current.size} entries, expected d={d}")
        arr = (values if values is not None else current.astype(np.float64).reshape(-1)).astype(npdt)
        stored = arr.astype(np.float64)
        if pos == 1:
            gamma = stored + offset
        else:
            beta_now = stored
        new_inits.append(numpy_helper.from_array(np.asarray(arr).reshape(current.shape), name=f"p{pos}"))
        inputs[pos] = f"p{pos}"
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if eps is not None:
        attrs["epsilon"] = float(eps)
    out_name = "Y"
    # NumPy has no bfloat16 ONNX Runtime accepts as an input (ml_dtypes' bfloat16 is "Numpy_type 256"): a
    # bfloat16 node is fed float32 holding exactly the bfloat16 values and Cast to bfloat16 in the graph, and its
    # bfloat16 output is Cast back to float32. Both casts are exact, so what is judged is the bfloat16 kernel.
    via_cast = name == "bfloat16"
    x_in, y_out = ("X_bf16", "Y_bf16") if via_cast else ("X", out_name)
    one = helper.make_node(node.op_type, [x_in, *inputs[1:]], [y_out] + [""] * (len(node.output) - 1),
                           domain=node.domain, **attrs)
    # ONNX float attributes are float32: the ε the op applies is the one read back, not the one drawn
    held = {a.name: helper.get_attribute_value(a) for a in one.attribute}
    module_eps = float(held.get("epsilon", np.float32(1e-5)))
    elem = _elem_type(name)
    nodes = [one]
    io_elem = elem
    if via_cast:
        io_elem = _elem_type("float32")
        nodes = [helper.make_node("Cast", ["X"], [x_in], to=elem), one,
                 helper.make_node("Cast", [y_out], [out_name], to=io_elem)]
    graph = helper.make_graph(nodes, "deadir_norm", [helper.make_tensor_value_info("X", io_elem, None)],
                              [helper.make_tensor_value_info(out_name, io_elem, None)], initializer=new_inits)
    single = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        session = ort.InferenceSession(single.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime has no kernel for this op/dtype: the harness cannot run it
        raise FactoryError(_session_error(node.op_type, name, exc, ort.__version__)) from exc
    feed_dtype = np.float32 if via_cast else npdt
    layout = Layout.of(options)
    compute = dtype_name(options.compute_dtype) if options.compute_dtype else default_compute_dtype(name)

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        n = x.shape[0]
        xs = layout.to_input(x.astype(npdt)).astype(feed_dtype)  # via float32: exact for bfloat16 values
        (out,) = session.run([out_name], {"X": np.ascontiguousarray(xs)})
        y = np.asarray(out).astype(np.float64)
        if y.shape != layout.input_shape(n, d):
            return y.reshape(1, -1), name
        return np.asarray(layout.to_rows(y, n, d)), name

    return PreparedNorm(run, d, name, compute, gamma, beta_now, module_eps, offset,
                        f"onnx {node.op_type} (opset {max(o.version for o in model.opset_import)})",
                        options.groups or int(attrs.get("num_groups", 1)), options.timeout, options.determinism,
                        (), NORM_OPS.get(node.op_type))
