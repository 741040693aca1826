"""ONNX checkpoints: every LayerNorm / RMSNorm site of a graph, read without running anything.

A site is recognised in one of two ways:

* a native normalisation node: ``LayerNormalization`` (opset 17), ``RMSNormalization``
  (opset 23), or ``SimplifiedLayerNormalization`` (RMS; onnxruntime's contrib op, the only
  node allowed from the ``com.microsoft`` domain);
* a *decomposed* subgraph, recognised from the graph's own arithmetic by following the
  dataflow: a root ``r = Sqrt(ReduceMean(q) [+ ε])`` (or ``Pow(·, 0.5)``; ``Pow(·, −0.5)``
  gives 1/r directly) of a second moment ``q = Pow(c, 2)`` or ``Mul(c, c)``, where
  ``c = Sub(x, ReduceMean(x))`` (centred) or ``c = x`` (raw); the normalised output is
  ``Div(n, r)`` or ``Mul(n, Reciprocal(r))``, then optionally ``Mul γ`` and ``Add β``.
  Numerator and denominator centred over the same x → LayerNorm; both raw → RMSNorm.
  A centred numerator over a raw-moment root, a raw numerator over a centred root,
  reductions over another axis, a numerator that is not the same x, and every other
  ``ReduceMean`` or normalisation op are reported as *unrecognised*, with the reason —
  never guessed.

γ and β are read from initializers (or ``Constant`` nodes) as float64; nothing in the graph
is executed. Initializers stored as external data are read from the byte range they
name, and only after checking that the file lies inside the model's folder (no absolute
paths, no ``..``, no symlink escaping it, regular files only). Nodes from any domain other
than the default ONNX domains are refused (a custom op is code deadir would have to trust).

Errors: :class:`OnnxError` (a :class:`deadir.errors.CheckpointError`, so a ``ValueError``)
names the file and the problem.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import CheckpointError

ONNX_SUFFIX = ".onnx"
STANDARD_DOMAINS: frozenset[str] = frozenset({"", "ai.onnx", "ai.onnx.ml"})
"""Domains of the ONNX standard operator sets; nodes from these run no custom code."""
MICROSOFT_DOMAIN = "com.microsoft"
MICROSOFT_ALLOWED_OPS: frozenset[str] = frozenset({"SimplifiedLayerNormalization"})
"""The only ``com.microsoft`` op accepted: a known RMS norm (its semantics are fixed)."""
NATIVE_DEFAULT_EPS = 1e-5
"""ε of LayerNormalization / RMSNormalization / SimplifiedLayerNormalization when the attribute is absent."""

_NORMLIKE_NATIVE = frozenset(
    {"BatchNormalization", "InstanceNormalization", "GroupNormalization", "MeanVarianceNormalization",
     "LpNormalization"}
)  # fmt: skip


class OnnxError(CheckpointError):
    """An ONNX file is missing, malformed, too large, uses a custom-op domain, or points outside its folder."""


@dataclasses.dataclass(frozen=True)
class OnnxLimits:
    """Documented parser limits (exceeding one raises :class:`OnnxError`).

    Attributes:
        max_file_bytes: the ``.onnx`` protobuf itself (protobuf caps a message at 2 GiB).
        max_nodes: nodes in the main graph.
        max_external_bytes: bytes read from one external-data range.
    """

    max_file_bytes: int = 2 * 1024**3
    max_nodes: int = 1_000_000
    max_external_bytes: int = 1024**3


DEFAULT_LIMITS = OnnxLimits()


@dataclasses.dataclass(frozen=True, eq=False)
class OnnxNormSite:
    """One norm site of an ONNX graph.

    Attributes:
        path: site name: the γ initializer's name without ``.weight``/``.gamma``/``.scale``, else
            the common prefix of the subgraph's node names, else the output tensor's name.
        kind: "layernorm" or "rmsnorm".
        d: normalised size (the last axis).
        weight: γ as float64 (None: no scale, γ = 1); bias: β (None: no shift).
        eps: ε (float64 of the stored float32 attribute or constant).
        axis: the normalised axis as written in the graph (always the last one: -1 or rank-1).
        recognised_as: "LayerNormalization", "RMSNormalization", "SimplifiedLayerNormalization",
            "decomposed-layernorm" or "decomposed-rmsnorm".
        input_name: the tensor normalised (x); output_name: the tensor holding y (after γ, β).
        weight_name, bias_name: the initializers / constants read (None when absent).
        stored_dtype: dtype of the stored γ ("F32", "F16", ...), or "none".
        nodes: names of the graph nodes forming the site.
        order: index of the site's first node in the graph's node list (graph order).
    """

    path: str
    kind: str
    d: int
    weight: FloatArray | None
    bias: FloatArray | None
    eps: float
    axis: int
    recognised_as: str
    input_name: str
    output_name: str
    weight_name: str | None
    bias_name: str | None
    stored_dtype: str
    nodes: tuple[str, ...]
    order: int

    @property
    def gamma(self) -> FloatArray:
        """Effective scale γ (ones when the site has no scale), float64."""
        return np.ones(self.d) if self.weight is None else self.weight

    @property
    def beta(self) -> FloatArray:
        """β (zeros when the site has no shift), float64."""
        return np.zeros(self.d) if self.bias is None else self.bias


@dataclasses.dataclass(frozen=True)
class Unrecognised:
    """A normalisation-like node the reader did not turn into a site, and why."""

    node: str
    op_type: str
    reason: str


@dataclasses.dataclass(frozen=True, eq=False)
class OnnxNorms:
    """Everything :func:`read_onnx_norms` found.

    Attributes:
        path: the ``.onnx`` file.
        opset: default-domain opset version; ir_version: the model's IR version.
        producer: producer_name (informational).
        inputs: graph inputs (not initializers) as (name, elem type name, shape with None/str for
            symbolic dims).
        sites: recognised sites in graph order; unrecognised: the rest, with reasons.
        n_initializers, bytes_initializers: all initializers and their stored bytes.
        tensors_read: the initializers / constants read for γ, β; bytes_read: their stored bytes.
    """

    path: str
    opset: int
    ir_version: int
    producer: str
    inputs: tuple[tuple[str, str, tuple[int | str | None, ...]], ...]
    sites: tuple[OnnxNormSite, ...]
    unrecognised: tuple[Unrecognised, ...]
    n_initializers: int
    bytes_initializers: int
    tensors_read: tuple[str, ...]
    bytes_read: int = 0


# ------------------------------------------------------------------------------- loading


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # optional extra
        raise OnnxError("reading ONNX needs the 'onnx' package: pip install 'deadir[onnx]'") from exc
    return onnx


def _resolve_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.suffix == ONNX_SUFFIX and q.is_file())
        if len(found) != 1:
            raise OnnxError(f"{p}: expected exactly one {ONNX_SUFFIX} file in the folder, found {len(found)}")
        p = found[0]
    if not p.exists():
        raise OnnxError(f"{p}: no such file")
    if not p.is_file():
        raise OnnxError(f"{p}: not a regular file")
    return p


def load_onnx_model(path: str | os.PathLike[str], *, limits: OnnxLimits = DEFAULT_LIMITS) -> tuple[Path, Any]:
    """Parse an ``.onnx`` file (protobuf only; external data is NOT loaded) and refuse custom ops.

    Returns (resolved file, ``onnx.ModelProto``). Raises OnnxError: missing or non-regular
    file, over ``limits``, not a valid ONNX protobuf, no graph, or a node (also inside
    subgraphs and model-local functions) from a custom domain.
    """
    onnx = _onnx()
    file = _resolve_file(path)
    size = file.stat().st_size
    if size > limits.max_file_bytes:
        raise OnnxError(f"{file}: {size} bytes, over the limit of {limits.max_file_bytes}")
    data = file.read_bytes()
    try:
        model = onnx.ModelProto.FromString(data)
    except Exception as exc:  # protobuf's DecodeError is not a public stable class across versions
        raise OnnxError(f"{file}: not an ONNX model (protobuf parse failed: {exc})") from exc
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise OnnxError(f"{file}: the ONNX model has no graph nodes")
    if len(model.graph.node) > limits.max_nodes:
        raise OnnxError(f"{file}: {len(model.graph.node)} nodes, over the limit of {limits.max_nodes}")
    check_domains(model, where=str(file))
    return file, model


def _all_nodes(graph: Any) -> Iterator[Any]:
    """Nodes of ``graph`` and of every subgraph attribute (If/Loop/Scan bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)


def check_domains(model: Any, *, where: str) -> None:
    """Refuse nodes from custom-op domains (OnnxError naming node, op and domain).

    Allowed: the standard domains ("", "ai.onnx", "ai.onnx.ml") and ``com.microsoft`` for
    SimplifiedLayerNormalization only. Model-local functions are refused outright: a call to
    one is a node of a non-standard domain whose body deadir would have to trust.
    """
    if len(model.functions):
        names = [f"{f.domain}:{f.name}" for f in model.functions][:5]
        raise OnnxError(f"{where}: model-local functions are not supported (custom ops {names})")
    for node in _all_nodes(model.graph):
        domain = node.domain
        if domain in STANDARD_DOMAINS:
            continue
        if domain == MICROSOFT_DOMAIN and node.op_type in MICROSOFT_ALLOWED_OPS:
            continue
        raise OnnxError(
            f"{where}: node {node.name or node.op_type!r} uses op {node.op_type!r} from custom domain "
            f"{domain!r}; only the standard ONNX domains (and com.microsoft SimplifiedLayerNormalization) are read"
        )


# ------------------------------------------------------------------------------- tensors


def _dtype_name(onnx: Any, data_type: int) -> str:
    names = {1: "F32", 10: "F16", 16: "BF16", 11: "F64"}
    return names.get(data_type) or str(onnx.TensorProto.DataType.Name(data_type))


def external_data_file(model_dir: Path, location: str, *, where: str) -> Path:
    """Resolve an external-data ``location`` inside ``model_dir``; OnnxError if it leaves it.

    Refused: empty or absolute locations, any ``..`` component, a resolved path (symlinks
    followed) outside the folder, and anything that is not an existing regular file.
    """
    if not location or os.path.isabs(location) or Path(location).is_absolute() or location.startswith(("/", "\\")):
        raise OnnxError(f"{where}: external data location {location!r} is absolute or empty; must be in {model_dir}")
    parts = re.split(r"[\\/]", location)
    if ".." in parts:
        raise OnnxError(f"{where}: external data location {location!r} contains '..'; must stay inside {model_dir}")
    root = model_dir.resolve()
    target = (model_dir / location).resolve()
    if not target.is_relative_to(root):
        raise OnnxError(f"{where}: external data location {location!r} resolves to {target}, outside {root}")
    if not target.is_file():
        raise OnnxError(f"{where}: external data file {target} is missing or not a regular file")
    return target


def _external_fields(tensor: Any) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def read_tensor(tensor: Any, model_dir: Path, *, where: str, limits: OnnxLimits = DEFAULT_LIMITS) -> FloatArray:
    """A TensorProto (inline or external data) as a float64 array; nothing is executed.

    Raises OnnxError for an out-of-folder or missing external file, a byte range outside the
    file or over ``limits.max_external_bytes``, or data that does not match the tensor's shape.
    """
    onnx = _onnx()
    from onnx import numpy_helper

    name = tensor.name or "<unnamed>"
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        fields = _external_fields(tensor)
        file = external_data_file(model_dir, fields.get("location", ""), where=f"{where}: tensor {name!r}")
        try:
            offset = int(fields.get("offset", "0"))
            length = int(fields["length"]) if "length" in fields else file.stat().st_size - offset
        except ValueError as exc:
            raise OnnxError(f"{where}: tensor {name!r}: bad external offset/length {fields}") from exc
        if offset < 0 or length < 0 or offset + length > file.stat().st_size:
            raise OnnxError(
                f"{where}: tensor {name!r}: bytes [{offset}, {offset + length}) lie outside {file} "
                f"({file.stat().st_size} bytes)"
            )
        if length > limits.max_external_bytes:
            raise OnnxError(f"{where}: tensor {name!r}: {length} external bytes, over {limits.max_external_bytes}")
        with file.open("rb") as fh:
            fh.seek(offset)
            raw = fh.read(length)
        inline = onnx.TensorProto()
        inline.CopyFrom(tensor)
        del inline.external_data[:]
        inline.data_location = onnx.TensorProto.DEFAULT
        inline.raw_data = raw
        tensor = inline
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as exc:  # onnx raises ValueError/TypeError for size or dtype mismatches
        raise OnnxError(f"{where}: tensor {name!r} cannot be decoded: {exc}") from exc
    if arr.dtype.kind not in "fiub":
        raise OnnxError(f"{where}: tensor {name!r} has non-numeric dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float64)


# ------------------------------------------------------------------------------- the graph


class _Graph:
    """Producer / consumer / constant maps of the main graph (read-only)."""

    def __init__(self, model: Any, file: Path, limits: OnnxLimits) -> None:
        self.model = model
        self.file = file
        self.where = str(file)
        self.limits = limits
        g = model.graph
        self.nodes = list(g.node)
        self.index = {id(n): i for i, n in enumerate(self.nodes)}
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for o in n.output:
                if o:
                    self.producer[o] = n
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.initializers = {t.name: t for t in g.initializer}
        self.constants = {n.output[0]: n for n in self.nodes if n.op_type == "Constant" and n.output}
        self.graph_outputs = {o.name for o in g.output}
        self.read: list[str] = []
        self.claimed: set[int] = set()
        self._cache: dict[str, FloatArray | None] = {}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.rank, self.last_dim = _ranks(model)

    def const(self, name: str) -> FloatArray | None:
        """The value of a constant tensor (initializer, Constant node, Identity of one), else None."""
        if name in self._cache:
            return self._cache[name]
        value: FloatArray | None = None
        if name in self.initializers:
            value = read_tensor(self.initializers[name], self.file.parent, where=self.where, limits=self.limits)
        elif name in self.constants:
            node = self.constants[name]
            attr = {a.name: a for a in node.attribute}
            if "value" in attr:
                value = read_tensor(attr["value"].t, self.file.parent, where=self.where, limits=self.limits)
            elif "value_float" in attr:
                value = np.asarray(attr["value_float"].f, dtype=np.float64)
            elif "value_floats" in attr:
                value = np.asarray(list(attr["value_floats"].floats), dtype=np.float64)
            elif "value_int" in attr:
                value = np.asarray(attr["value_int"].i, dtype=np.float64)
            elif "value_ints" in attr:
                value = np.asarray(list(attr["value_ints"].ints), dtype=np.float64)
        elif name in self.producer and self.producer[name].op_type == "Identity":
            value = self.const(self.producer[name].input[0])
        self._cache[name] = value
        return value

    def stored_dtype(self, name: str) -> str:
        onnx = _onnx()
        if name in self.initializers:
            return _dtype_name(onnx, self.initializers[name].data_type)
        if name in self.constants:
            for a in self.constants[name].attribute:
                if a.name == "value":
                    return _dtype_name(onnx, a.t.data_type)
            return "F32"
        if name in self.producer and self.producer[name].op_type == "Identity":
            return self.stored_dtype(self.producer[name].input[0])
        return "?"

    def scalar(self, name: str) -> float | None:
        v = self.const(name)
        if v is None or v.size != 1:
            return None
        return float(v.reshape(-1)[0])

    def op(self, name: str, *ops: str) -> Any | None:
        """The node producing ``name`` if its op_type is one of ``ops``."""
        n = self.producer.get(name)
        return n if n is not None and n.op_type in ops and n.domain in ("", "ai.onnx") else None

    def sole_consumer(self, name: str) -> Any | None:
        """The only consumer of ``name`` when it has exactly one and is not also a graph output."""
        cons = self.consumers.get(name, [])
        if len(cons) != 1 or name in self.graph_outputs:
            return None
        return cons[0]


_INFER_KEEP_BYTES = 4096


def _ranks(model: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Tensor ranks and static last dimensions from the graph's type annotations plus static shape
    inference (which runs no op)."""
    onnx = _onnx()
    # Inference needs shapes, not weights: a copy without the large initializers' bytes infers in a
    # fraction of the time (small ones stay: Reshape targets and axes are read by value).
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.graph.CopyFrom(model.graph)
    for t in light.graph.initializer:
        if len(t.raw_data) > _INFER_KEEP_BYTES or len(t.float_data) > _INFER_KEEP_BYTES // 4:
            t.ClearField("raw_data")
            t.ClearField("float_data")
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False)
        infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    except Exception:  # inference is a convenience: a graph it cannot type keeps only its own annotations
        infos = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    ranks: dict[str, int] = {}
    last: dict[str, int] = {}
    for vi in infos:
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            ranks[vi.name] = len(tt.shape.dim)
            if len(tt.shape.dim) and tt.shape.dim[-1].HasField("dim_value"):
                last[vi.name] = int(tt.shape.dim[-1].dim_value)
    return ranks, last


def _attr(node: Any, name: str, default: Any) -> Any:
    onnx = _onnx()
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _is_last_axis(axis: int, rank: int | None) -> bool:
    return axis == -1 or (rank is not None and axis == rank - 1)


def _reduce_last_axis(g: _Graph, node: Any) -> tuple[bool, str]:
    """Whether a ReduceMean node averages over exactly the last axis, keeping it (else why not)."""
    if int(_attr(node, "keepdims", 1)) != 1:
        return False, "ReduceMean drops the reduced axis (keepdims=0)"
    axes: Any = _attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        v = g.const(node.input[1])
        if v is None:
            return False, "ReduceMean axes are computed at run time"
        axes = [int(a) for a in v.reshape(-1)]
    if axes is None:
        return False, "ReduceMean over all axes"
    axes = list(axes)
    rank = g.rank.get(node.input[0])
    if len(axes) != 1 or not _is_last_axis(int(axes[0]), rank):
        return False, f"ReduceMean over axes {axes} (rank {rank}); deadir's sites normalise the last axis only"
    return True, ""


@dataclasses.dataclass(frozen=True)
class _Moment:
    centred: bool
    x: str
    nodes: tuple[Any, ...]


def _centred_source(g: _Graph, name: str) -> _Moment | None:
    """``name = Sub(x, ReduceMean_last(x))`` → centred x, else None."""
    sub = g.op(name, "Sub")
    if sub is None or len(sub.input) != 2:
        return None
    mean = g.op(sub.input[1], "ReduceMean")
    if mean is None or mean.input[0] != sub.input[0] or not _reduce_last_axis(g, mean)[0]:
        return None
    return _Moment(True, sub.input[0], (mean, sub))


def _moment_of(g: _Graph, name: str) -> _Moment:
    """Classify a tensor as centred (x − mean x over the last axis) or raw (itself)."""
    c = _centred_source(g, name)
    return c if c is not None else _Moment(False, name, ())


def _second_moment(g: _Graph, q_name: str) -> tuple[str, Any] | None:
    """``q = Pow(c, 2)`` or ``Mul(c, c)`` → (c, node), else None."""
    pw = g.op(q_name, "Pow")
    if pw is not None and len(pw.input) == 2 and g.scalar(pw.input[1]) == 2.0:
        return pw.input[0], pw
    mul = g.op(q_name, "Mul")
    if mul is not None and len(mul.input) == 2 and mul.input[0] == mul.input[1]:
        return mul.input[0], mul
    return None


def _vector(g: _Graph, name: str, d: int | None) -> FloatArray | None:
    """A constant broadcastable as a vector over the last axis (all leading dims 1), else None."""
    v = g.const(name)
    if v is None or v.ndim == 0 or any(s != 1 for s in v.shape[:-1]) or v.shape[-1] < 2:
        return None
    if d is not None and v.shape[-1] != d:
        return None
    return v.reshape(-1)


def _other(node: Any, name: str) -> str | None:
    """The other input of a binary node that has ``name`` as one input."""
    if len(node.input) != 2:
        return None
    if node.input[0] == name:
        return str(node.input[1])
    if node.input[1] == name:
        return str(node.input[0])
    return None


def _affine(g: _Graph, z: str, d: int | None) -> tuple[str, str | None, str | None, list[Any]]:
    """Follow ``z → Mul γ → Add β`` while each step is z's only consumer; returns (output, γ, β, nodes)."""
    out, weight, bias, nodes = z, None, None, []
    nxt = g.sole_consumer(out)
    if nxt is not None and nxt.op_type == "Mul" and nxt.domain in ("", "ai.onnx"):
        other = _other(nxt, out)
        if other is not None and _vector(g, other, d) is not None:
            weight, out = other, nxt.output[0]
            nodes.append(nxt)
            d = int(g.const(other).size)  # type: ignore[union-attr]
            nxt = g.sole_consumer(out)
    if nxt is not None and nxt.op_type == "Add" and nxt.domain in ("", "ai.onnx"):
        other = _other(nxt, out)
        if other is not None and _vector(g, other, d) is not None:
            bias, out = other, nxt.output[0]
            nodes.append(nxt)
    return out, weight, bias, nodes


_SUFFIXES = (".weight", ".gamma", ".scale", "_weight", "_gamma", "_scale")


def _site_path(weight: str | None, nodes: Sequence[Any], output: str) -> str:
    if weight is not None:
        for s in _SUFFIXES:
            if weight.endswith(s) and len(weight) > len(s):
                return weight[: -len(s)]
    names = [n.name for n in nodes if n.name]
    if names:
        # node names are "/a/b/Op" paths: keep the components every node shares
        split = [n.split("/") for n in names]
        common: list[str] = []
        for parts in zip(*split, strict=False):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        if len(common) == min(len(p) for p in split):
            common = common[:-1]  # one node: drop its own op name
        prefix = "/".join(common)
        if prefix.strip("/"):
            return prefix
    return output


def _build(
    g: _Graph,
    *,
    kind: str,
    recognised_as: str,
    x: str,
    out: str,
    weight: str | None,
    bias: str | None,
    eps: float,
    axis: int,
    nodes: Sequence[Any],
    d_hint: int | None,
) -> OnnxNormSite:
    w = None if weight is None else g.const(weight)
    b = None if bias is None else g.const(bias)
    w = None if w is None else np.ascontiguousarray(w.reshape(-1))
    b = None if b is None else np.ascontiguousarray(b.reshape(-1))
    sizes = {s.size for s in (w, b) if s is not None}
    if d_hint is not None:
        sizes.add(d_hint)
    where = f"{g.where}: norm at {nodes[0].name or out!r}"
    if len(sizes) > 1:
        raise OnnxError(f"{where}: γ/β sizes disagree: {sorted(sizes)}")
    if not sizes:
        raise OnnxError(f"{where}: no γ, β or static shape gives the normalised size")
    for arr, nm in ((w, weight), (b, bias)):
        if arr is not None and not np.all(np.isfinite(arr)):
            raise OnnxError(f"{where}: tensor {nm!r} has NaN or infinite entries")
    if not (math.isfinite(eps) and eps >= 0):
        raise OnnxError(f"{where}: ε = {eps!r} is not a finite non-negative number")
    g.read.extend(n for n in (weight, bias) if n is not None)
    g.claimed.update(id(n) for n in nodes)
    ordered = sorted(nodes, key=lambda n: g.index[id(n)])
    return OnnxNormSite(
        path=_site_path(weight, ordered, out), kind=kind, d=int(next(iter(sizes))), weight=w, bias=b, eps=eps,
        axis=axis, recognised_as=recognised_as, input_name=x, output_name=out, weight_name=weight,
        bias_name=bias, stored_dtype="none" if weight is None else g.stored_dtype(weight),
        nodes=tuple(n.name for n in ordered), order=g.index[id(ordered[0])],
    )  # fmt: skip


def _native(g: _Graph, node: Any) -> OnnxNormSite | Unrecognised:
    op = node.op_type
    axis = int(_attr(node, "axis", -1))
    rank = g.rank.get(node.input[0]) if node.input else None
    label = node.name or op
    if not _is_last_axis(axis, rank):
        return Unrecognised(
            label, op, f"normalises from axis {axis} (rank {rank}); deadir's sites normalise the last axis only"
        )
    if len(node.input) < 2 or not node.input[1]:
        return Unrecognised(label, op, "no scale input")
    weight = node.input[1]
    if _vector(g, weight, None) is None:
        return Unrecognised(label, op, f"scale {weight!r} is not a constant vector over the last axis")
    bias = node.input[2] if op == "LayerNormalization" and len(node.input) > 2 and node.input[2] else None
    if bias is not None and _vector(g, bias, None) is None:
        return Unrecognised(label, op, f"bias {bias!r} is not a constant vector over the last axis")
    kind = "layernorm" if op == "LayerNormalization" else "rmsnorm"
    eps = float(_attr(node, "epsilon", NATIVE_DEFAULT_EPS))
    return _build(g, kind=kind, recognised_as=op, x=node.input[0], out=node.output[0], weight=weight, bias=bias,
                  eps=eps, axis=axis, nodes=[node], d_hint=None)  # fmt: skip


def _decomposed(g: _Graph, red2: Any) -> OnnxNormSite | Unrecognised | None:
    """Try to read a decomposed norm whose second-moment ReduceMean is ``red2``.

    Returns None when ``red2`` is not a second-moment reduction at all (it may be the mean of a
    centring, judged from its own root), a site, or Unrecognised with the reason.
    """
    label = red2.name or red2.output[0]
    sm = _second_moment(g, red2.input[0])
    if sm is None:
        return None
    c_name, sq_node = sm
    ok, why = _reduce_last_axis(g, red2)
    if not ok:
        return Unrecognised(label, "ReduceMean", f"second moment: {why}")
    den = _moment_of(g, c_name)
    nodes: list[Any] = [*den.nodes, sq_node, red2]
    # ε: an Add of a scalar constant (optional)
    m_out = red2.output[0]
    eps = 0.0
    nxt = g.sole_consumer(m_out)
    if nxt is not None and nxt.op_type == "Add":
        other = _other(nxt, m_out)
        e = None if other is None else g.scalar(other)
        if e is None:
            return Unrecognised(label, "ReduceMean", "the second moment is added to a non-constant")
        eps, m_out = e, nxt.output[0]
        nodes.append(nxt)
        nxt = g.sole_consumer(m_out)
    if nxt is None:
        return Unrecognised(label, "ReduceMean", "the second moment (+ ε) feeds several nodes or a graph output")
    # the root: r = Sqrt(.) or Pow(., 0.5) (divide) / Pow(., -0.5) (multiply)
    inv: str | None = None
    root: str | None = None
    if nxt.op_type == "Sqrt":
        root = nxt.output[0]
    elif nxt.op_type == "Pow" and g.scalar(nxt.input[1]) == 0.5:
        root = nxt.output[0]
    elif nxt.op_type == "Pow" and g.scalar(nxt.input[1]) == -0.5:
        inv = nxt.output[0]
    else:
        return Unrecognised(label, "ReduceMean", f"the second moment (+ ε) feeds {nxt.op_type}, not a square root")
    nodes.append(nxt)
    if root is not None:
        use = g.sole_consumer(root)
        if use is not None and use.op_type == "Reciprocal":
            inv = use.output[0]
            nodes.append(use)
        elif use is not None and use.op_type == "Div" and len(use.input) == 2 and use.input[1] == root:
            num_name, z = use.input[0], use.output[0]
            nodes.append(use)
        else:
            return Unrecognised(label, "ReduceMean", "the root is not used as a divisor (Div, Reciprocal)")
    if inv is not None:
        use = g.sole_consumer(inv)
        other = None if use is None or use.op_type != "Mul" else _other(use, inv)
        if use is None or other is None:
            return Unrecognised(label, "ReduceMean", "the inverse root is not multiplied into a numerator")
        num_name, z = other, use.output[0]
        nodes.append(use)
    num = _moment_of(g, num_name)
    if num.x != den.x:
        return Unrecognised(
            label, "ReduceMean", f"the numerator ({num_name!r}) is not the tensor whose moment is taken ({den.x!r})"
        )
    if num.centred != den.centred:
        detail = (
            "mean-subtracted numerator over the root of the raw second moment (⟨γ⁻¹, y − β⟩ = 0 still holds, "
            "but this is neither LayerNorm nor RMSNorm)"
            if num.centred
            else "raw numerator over the root of the centred second moment (not scale-invariant about the mean)"
        )
        return Unrecognised(label, "ReduceMean", detail)
    nodes.extend(n for n in num.nodes if n not in nodes)
    d_hint = g.last_dim.get(den.x)
    out, weight, bias, aff = _affine(g, z, d_hint)
    nodes.extend(aff)
    if weight is None and bias is None and d_hint is None:
        return Unrecognised(label, "ReduceMean", "a norm without γ or β over an axis of no static size")
    kind = "layernorm" if den.centred else "rmsnorm"
    rank = g.rank.get(den.x)
    return _build(g, kind=kind, recognised_as=f"decomposed-{kind}", x=den.x, out=out, weight=weight, bias=bias,
                  eps=eps, axis=-1 if rank is None else rank - 1, nodes=nodes, d_hint=d_hint)  # fmt: skip


def read_onnx_norms(path: str | os.PathLike[str], *, limits: OnnxLimits = DEFAULT_LIMITS) -> OnnxNorms:
    """Every LayerNorm / RMSNorm site of an ONNX model, with γ, β (float64) and ε, without running it.

    Args:
        path: an ``.onnx`` file, or a folder holding exactly one.
        limits: parser limits (:class:`OnnxLimits`).

    Returns:
        :class:`OnnxNorms`: the recognised sites in graph order, and every other
        normalisation-like node (native BatchNormalization etc., ReduceMeans that are not part
        of a recognised site) as :class:`Unrecognised` with the reason.

    Raises:
        OnnxError: missing/invalid file, over a limit, a custom-op domain, external data
            outside the model's folder or out of range, γ/β with NaN/inf or inconsistent sizes.
    """
    file, model = load_onnx_model(path, limits=limits)
    return _read(file, model, limits)


def _read(file: Path, model: Any, limits: OnnxLimits) -> OnnxNorms:
    onnx = _onnx()
    g = _Graph(model, file, limits)
    sites: list[OnnxNormSite] = []
    unrecognised: list[Unrecognised] = []
    used: set[int] = set()
    for node in g.nodes:
        if node.op_type in ("LayerNormalization", "RMSNormalization", "SimplifiedLayerNormalization"):
            res = _native(g, node)
            if isinstance(res, OnnxNormSite):
                sites.append(res)
            else:
                unrecognised.append(res)
            used.add(id(node))
    for node in g.nodes:
        if node.op_type != "ReduceMean" or id(node) in used:
            continue
        res2 = _decomposed(g, node)
        if isinstance(res2, OnnxNormSite):
            sites.append(res2)
        elif isinstance(res2, Unrecognised):
            unrecognised.append(res2)
            used.add(id(node))
    used |= g.claimed
    for node in g.nodes:
        if id(node) in used:
            continue
        if node.op_type == "ReduceMean":
            # a mean that no recognised site consumed (a centring whose root failed is reported by its root)
            if not any(u.node == (node.name or node.output[0]) for u in unrecognised):
                unrecognised.append(
                    Unrecognised(
                        node.name or node.output[0],
                        "ReduceMean",
                        "a mean over an axis that is not part of a recognised norm "
                        "(pooling, or a normalisation written another way)",
                    )
                )
        elif node.op_type in _NORMLIKE_NATIVE:
            unrecognised.append(
                Unrecognised(
                    node.name or node.output[0],
                    node.op_type,
                    f"native {node.op_type}: not a LayerNorm/RMSNorm over the last axis "
                    "(not read by deadir's ONNX reader)",
                )
            )
    sites.sort(key=lambda s: s.order)
    inputs = []
    init_names = set(g.initializers)
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        dims: tuple[int | str | None, ...] = tuple(
            (d.dim_value if d.HasField("dim_value") else (d.dim_param or None)) for d in tt.shape.dim
        )
        inputs.append((vi.name, onnx.TensorProto.DataType.Name(tt.elem_type), dims))
    nbytes = sum(_stored_bytes(t) for t in model.graph.initializer)
    return OnnxNorms(
        path=str(file), opset=g.opset, ir_version=int(model.ir_version), producer=model.producer_name,
        inputs=tuple(inputs), sites=tuple(sites), unrecognised=tuple(unrecognised),
        n_initializers=len(model.graph.initializer), bytes_initializers=nbytes,
        tensors_read=tuple(dict.fromkeys(g.read)),
        bytes_read=sum(_stored_bytes(g.initializers[n]) if n in g.initializers else 4 * _size(g.const(n))
                       for n in dict.fromkeys(g.read)),
    )  # fmt: skip


def _size(v: FloatArray | None) -> int:
    return 0 if v is None else int(v.size)


def _stored_bytes(t: Any) -> int:
    if len(t.external_data):
        f = _external_fields(t)
        try:
            return int(f.get("length", "0"))
        except ValueError:
            return 0
    if t.raw_data:
        return len(t.raw_data)
    return int(np.prod(t.dims)) * 4 if len(t.dims) else 4


# ------------------------------------------------------------------------------- views


@dataclasses.dataclass(frozen=True, eq=False)
class OnnxTensorInfo:
    """An initializer's name, shape, stored dtype and whether its bytes live in an external file."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    external: bool


def list_onnx_tensors(
    path: str | os.PathLike[str], *, limits: OnnxLimits = DEFAULT_LIMITS
) -> dict[str, OnnxTensorInfo]:
    """The initializers of an ONNX model (config-free checkpoint view, architecture "onnx").

    Raises OnnxError like :func:`load_onnx_model`, and for an initializer whose external
    data points outside the model's folder.
    """
    onnx = _onnx()
    file, model = load_onnx_model(path, limits=limits)
    out: dict[str, OnnxTensorInfo] = {}
    for t in model.graph.initializer:
        ext = t.data_location == onnx.TensorProto.EXTERNAL
        if ext:
            external_data_file(file.parent, _external_fields(t).get("location", ""), where=f"{file}: {t.name!r}")
        out[t.name] = OnnxTensorInfo(t.name, tuple(int(d) for d in t.dims), _dtype_name(onnx, t.data_type), ext)
    return out


def read_onnx_tensors(
    path: str | os.PathLike[str], names: Iterable[str], *, limits: OnnxLimits = DEFAULT_LIMITS
) -> dict[str, FloatArray]:
    """The named initializers as float64 arrays (external data read from their byte ranges only).

    Raises OnnxError naming every absent name, plus everything :func:`read_tensor` raises.
    """
    file, model = load_onnx_model(path, limits=limits)
    inits = {t.name: t for t in model.graph.initializer}
    wanted = list(dict.fromkeys(names))
    missing = [n for n in wanted if n not in inits]
    if missing:
        raise OnnxError(f"{file}: no initializer named {missing[:20]}")
    return {n: read_tensor(inits[n], file.parent, where=str(file), limits=limits) for n in wanted}


# ------------------------------------------------------------------------------- scan rows

_BLOCK = re.compile(r"(?:^|[./_])(?:layer|layers|blocks?|h|encoder\.layer)[./_](\d+)(?=[./_])")


def _block_of(path: str) -> int | None:
    m = _BLOCK.search(path)
    return int(m.group(1)) if m else None


def site_roles(norms: OnnxNorms) -> list[tuple[str, str, int | None]]:
    """(role, stack, block) per site from its name and graph position (a convenience until arch records exist).

    In a block: "block-output" when the name says the norm sits on a sublayer's output
    (``output``/``post`` — BERT's post-LN), else "block-input". Outside blocks: "embedding"
    before the first block (or when the name says embed), "final" after the last one.
    """
    vision = any(dt.startswith("FLOAT") and len(shape) == 4 for _, dt, shape in norms.inputs)
    stack = "vision" if vision else "text"
    blocks = [_block_of(s.path) for s in norms.sites]
    first = min((s.order for s, b in zip(norms.sites, blocks, strict=True) if b is not None), default=None)
    last = max((s.order for s, b in zip(norms.sites, blocks, strict=True) if b is not None), default=None)
    out: list[tuple[str, str, int | None]] = []
    for s, b in zip(norms.sites, blocks, strict=True):
        low = s.path.lower()
        if b is not None:
            role = "block-output" if ("output" in low or "post" in low) else "block-input"
        elif "embed" in low or (first is not None and s.order < first):
            role = "embedding"
        elif last is not None and s.order > last:
            role = "final"
        else:
            role = "other"
        out.append((role, stack, b))
    if out and not any(r == "final" for r, _, _ in out) and out[-1][0] == "block-output":
        # post-LN: the last block's output norm is the last norm before the head
        out[-1] = ("final", out[-1][1], out[-1][2])
    return out


def scan_onnx(
    path: str | os.PathLike[str], *, dead_rel_tol: float = 1e-3, limits: OnnxLimits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """γ-only scan rows of every site of an ONNX model, with the fields of ``ScanSite.to_dict()``.

    Each row has the Site fields (path, kind, d, eps, weight_offset, has_bias, groups, role,
    stack, block, class_name, probed), the ScanSite fields (weight_name, bias_name,
    stored_dtype, guessed, kind_source, eps_source, kernel, kernel_predicted, degenerate, dead,
    live_fraction, gamma_median/min/max, gamma_argmin, spread, min_over_median, direction),
    plus ``recognised_as``, ``output_name`` and ``axis``. ``kind_source`` says how the site was
    recognised; ``guessed`` is always False (nothing is guessed). Unrecognised nodes are not
    rows: read them from :func:`read_onnx_norms`.

    Raises:
        OnnxError: see :func:`read_onnx_norms`.
    """
    from deadir.direction import dead_channels, inverse_scale_direction, live_fraction
    from deadir.errors import DegenerateScaleError

    norms = read_onnx_norms(path, limits=limits)
    rows: list[dict[str, Any]] = []
    for s, (role, stack, block) in zip(norms.sites, site_roles(norms), strict=True):
        gamma = s.gamma
        absg = np.abs(gamma)
        degenerate = [int(i) for i in np.flatnonzero(gamma == 0.0)]
        dead = [int(i) for i in dead_channels(gamma, rel_tol=dead_rel_tol)]
        direction: FloatArray | None = None
        live: float | None = None
        if s.kind == "layernorm":
            try:
                direction = inverse_scale_direction(gamma)
                kernel = "inverse-scale"
            except DegenerateScaleError as exc:
                degenerate, kernel = list(exc.indices), "zero-scale"
            live = live_fraction(gamma, np.asarray(dead, dtype=np.intp))
        else:
            kernel = "none"
        gmin, gmed = float(absg.min()), float(np.median(absg))
        rows.append({
            "path": s.path, "kind": s.kind, "d": s.d, "eps": s.eps, "weight_offset": 0.0,
            "has_bias": s.bias is not None, "groups": 1, "role": role, "stack": stack, "block": block,
            "class_name": f"onnx {s.recognised_as}", "probed": False,
            "weight_name": s.weight_name, "bias_name": s.bias_name, "stored_dtype": s.stored_dtype,
            "guessed": False, "kind_source": f"onnx graph: {s.recognised_as}", "eps_source": "onnx graph",
            "kernel": kernel, "kernel_predicted": kernel != "none", "degenerate": degenerate, "dead": dead,
            "live_fraction": live, "gamma_median": gmed, "gamma_min": gmin, "gamma_max": float(absg.max()),
            "gamma_argmin": int(np.argmin(absg)), "spread": float(absg.max()) / gmin if gmin > 0 else math.inf,
            "min_over_median": gmin / gmed if gmed else None,
            "direction": None if direction is None else direction.tolist(),
            "recognised_as": s.recognised_as, "output_name": s.output_name, "axis": s.axis,
        })  # fmt: skip
    return rows


def is_onnx_path(path: str | os.PathLike[str]) -> bool:
    """True for a ``.onnx`` file, or a folder holding exactly one (what scan/verify dispatch on)."""
    p = Path(path)
    if p.is_file():
        return p.suffix.lower() == ONNX_SUFFIX
    if p.is_dir():
        return len([q for q in p.iterdir() if q.suffix == ONNX_SUFFIX and q.is_file()]) == 1 and not any(
            (p / n).exists() for n in ("model.safetensors", "model.safetensors.index.json", "model.bin")
        )
    return False


def site_map(norms: OnnxNorms) -> Mapping[str, OnnxNormSite]:
    """Sites by path (paths are unique within a graph; OnnxError if two sites share one)."""
    out: dict[str, OnnxNormSite] = {}
    for s in norms.sites:
        if s.path in out:
            raise OnnxError(f"{norms.path}: two norm sites share the path {s.path!r}")
        out[s.path] = s
    return out
