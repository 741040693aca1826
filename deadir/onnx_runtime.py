"""Verify an ONNX model: run it in onnxruntime with every norm output exposed, measure in float64.

The graph is copied in memory and each recognised site's output (y, after γ and β) and input
(x, for the T10 bound's |mean x|/std x) are added as extra graph outputs; nothing is written
next to the checkpoint. External-data initializers are read (after the folder check of
:mod:`deadir.io.onnx`) into the in-memory copy, so onnxruntime never opens a path named
by the file. Custom-op domains were refused by the reader, so only standard ONNX operators run.

Inputs are the model's own kind: token ids for a graph whose inputs are integer
``input_ids`` (plus ``attention_mask`` / ``token_type_ids``), from deadir's corpus through the
given tokenizer or, without one, through a stated vocabulary (:class:`deadir.corpus.ByteTokenizer`
over the embedding's row count); images for a graph with one float input of shape
(N, C, H, W), synthesised by :func:`deadir.inputs.synthetic_images` at the resolution read
from that shape. Each site's rows accumulate in a float64 :class:`deadir.CovarianceAccumulator`
and :func:`deadir.measure_kernel` measures v = γ⁻¹/‖γ⁻¹‖ against them (for RMS sites v is
the control: the theory predicts no kernel).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.bound import kernel_error_bound
from deadir.covariance import CovarianceAccumulator
from deadir.direction import dead_channels, inverse_scale_direction, live_fraction
from deadir.errors import DegenerateScaleError, InputShapeError
from deadir.io.onnx import (
    DEFAULT_LIMITS,
    MICROSOFT_ALLOWED_OPS,
    MICROSOFT_DOMAIN,
    OnnxError,
    OnnxLimits,
    OnnxNorms,
    OnnxNormSite,
    _read,
    load_onnx_model,
    read_tensor,
)
from deadir.kernel import KernelReport, eigensolver_floor_rel, measure_kernel

NEAR_NULL_TOLERANCES: tuple[float, ...] = (1e-10, 1e-6, 1e-3)
"""Relative eigenvalue thresholds for the near-null counts (the same as deadir.verify's)."""
DEAD_REL_TOL = 1e-6
"""Dead channels: |γᵢ| ≤ DEAD_REL_TOL · median |γ| (the same as deadir.verify's)."""
DEFAULT_TOKENS = 8192
DEFAULT_SEQ_LEN = 128
DEFAULT_IMAGES = 32
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
_TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclasses.dataclass(frozen=True, eq=False)
class OnnxSiteMeasurement:
    """The float64 measurement of one ONNX norm site (fields follow deadir.verify's SiteVerification).

    Attributes:
        site: the :class:`~deadir.io.onnx.OnnxNormSite` measured.
        predicted: "kernel" (layernorm without zero scales) or "control" (rmsnorm, zero scales).
        n, d: rows measured and dimension.
        distinct_rows: distinct output rows seen (counted up to d + 1).
        rank_limited: distinct_rows − 1 < d: the inputs alone leave null directions (near-null
            counts then say nothing about the norm).
        kernel: the :class:`~deadir.KernelReport` of v = γ⁻¹/‖γ⁻¹‖ (None when γ has zeros).
        rayleigh_rel, cos_bottom: vᵀCv/λmax and |⟨v, bottom eigenvector⟩| (None when undefined).
        floor_rel: T10 a-priori bound for an exact kernel vector in float32 (units of λmax).
        at_floor: rayleigh_rel ≤ floor_rel.
        mean_ratio: ρ = max |mean x|/std x over the site's input rows.
        near_null: {tol: eigenvalues ≤ tol·λmax}.
        dead: dead channels; live_fraction: ‖v on live channels‖.
        lambda_max: the largest eigenvalue (units of y²).
    """

    site: OnnxNormSite
    predicted: str
    n: int
    d: int
    distinct_rows: int
    rank_limited: bool
    kernel: KernelReport | None
    floor_rel: float | None
    at_floor: bool | None
    mean_ratio: float | None
    near_null: dict[float, int]
    dead: tuple[int, ...]
    live_fraction: float
    lambda_max: float

    @property
    def rayleigh_rel(self) -> float | None:
        return None if self.kernel is None else self.kernel.rayleigh_rel

    @property
    def cos_bottom(self) -> float | None:
        return None if self.kernel is None else self.kernel.cos_bottom

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        s = self.site
        return {
            "path": s.path, "kind": s.kind, "d": self.d, "eps": s.eps, "recognised_as": s.recognised_as,
            "predicted": self.predicted, "n": self.n, "distinct_rows": self.distinct_rows,
            "rank_limited": self.rank_limited, "rayleigh_rel": self.rayleigh_rel,
            "cos_bottom": self.cos_bottom, "floor_rel": self.floor_rel, "at_floor": self.at_floor,
            "mean_ratio": self.mean_ratio, "lambda_max": self.lambda_max,
            "near_null": {f"{t:g}": c for t, c in self.near_null.items()}, "dead": list(self.dead),
            "live_fraction": self.live_fraction,
        }  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class OnnxVerifyResult:
    """What :func:`verify_onnx` measured: per-site results plus how the model was run."""

    path: str
    inputs: str
    optimization: str
    forward_dtype: str
    sites: tuple[OnnxSiteMeasurement, ...]
    norms: OnnxNorms

    def site(self, path: str) -> OnnxSiteMeasurement:
        """The measurement of the site at ``path`` (KeyError naming it when absent)."""
        for s in self.sites:
            if s.site.path == path:
                return s
        raise KeyError(f"{path}: not a measured site of {self.path}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (measurement dtype float64)."""
        return {
            "source": self.path, "format": "onnx", "inputs": self.inputs, "optimization": self.optimization,
            "forward_dtype": self.forward_dtype, "measurement_dtype": "float64",
            "sites": [s.to_dict() for s in self.sites],
            "unrecognised": [dataclasses.asdict(u) for u in self.norms.unrecognised],
        }  # fmt: skip

    def render(self) -> str:
        """Per-site table plus the unrecognised nodes (plain text)."""
        from deadir.report import render_table

        tols = tuple(self.sites[0].near_null) if self.sites else ()
        headers = ("site", "kind", "how", "d", "n", "rank-limited", "rayleigh_rel", "floor", "at floor", "|cos|",
                   *(f"null@{t:g}" for t in tols), "dead")  # fmt: skip
        rows = [
            (s.site.path, s.site.kind, s.site.recognised_as, s.d, s.n, s.rank_limited, s.rayleigh_rel, s.floor_rel,
             s.at_floor, s.cos_bottom, *(s.near_null[t] for t in tols), len(s.dead))
            for s in self.sites
        ]  # fmt: skip
        out = render_table(headers, rows, title=(
            f"{self.path} (onnx), forward {self.forward_dtype} in onnxruntime (optimisation {self.optimization}), "
            f"measured in float64; inputs: {self.inputs}"
        ))  # fmt: skip
        if self.norms.unrecognised:
            out += "\n\nunrecognised (not measured):\n" + "\n".join(
                f"  {u.node} ({u.op_type}): {u.reason}" for u in self.norms.unrecognised
            )
        return out


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxError("verifying ONNX needs 'onnxruntime': pip install 'deadir[onnx]'") from exc
    return onnxruntime


def exposed_model(file: Path, model: Any, norms: OnnxNorms, *, limits: OnnxLimits = DEFAULT_LIMITS) -> bytes:
    """Serialised in-memory copy of ``model`` with each site's y and x as extra graph outputs.

    External-data initializers are inlined (read through the folder check). Raises OnnxError
    when the copy would exceed protobuf's 2 GiB.
    """
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            read_tensor(t, file.parent, where=str(file), limits=limits)  # folder, range and size checks
            raw = _raw_external(t, file, limits)
            del t.external_data[:]
            t.data_location = onnx.TensorProto.DEFAULT
            t.raw_data = raw
    for node in m.graph.node:
        if node.domain == MICROSOFT_DOMAIN and node.op_type in MICROSOFT_ALLOWED_OPS:
            # onnxruntime registers its SimplifiedLayerNormalization kernel in the default domain
            node.domain = ""
    existing = {o.name for o in m.graph.output}
    for name in dict.fromkeys(n for s in norms.sites for n in (s.output_name, s.input_name)):
        if name in existing:
            continue
        vi = onnx.ValueInfoProto()
        vi.name = name  # no type: onnxruntime takes it from the producing node
        m.graph.output.append(vi)
    if m.ByteSize() >= 2**31:
        raise OnnxError(f"{file}: the model with its external data inlined exceeds protobuf's 2 GiB")
    return bytes(m.SerializeToString())


def _raw_external(t: Any, file: Path, limits: OnnxLimits) -> bytes:
    from deadir.io.onnx import _external_fields, external_data_file

    f = _external_fields(t)
    ext = external_data_file(file.parent, f.get("location", ""), where=f"{file}: tensor {t.name!r}")
    offset = int(f.get("offset", "0"))
    length = int(f["length"]) if "length" in f else ext.stat().st_size - offset
    with ext.open("rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _vocab_size(model: Any, file: Path, limits: OnnxLimits) -> int | None:
    """Rows of the embedding table gathered by ``input_ids`` (a stated vocabulary), or None."""
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == "input_ids":
            t = inits.get(node.input[0])
            if t is not None and len(t.dims) == 2:
                return int(t.dims[0])
    return None


def _text_feeds(
    model: Any,
    norms: OnnxNorms,
    file: Path,
    *,
    tokens: int,
    seq_len: int,
    tokenizer: Any,
    seed: int,
    limits: OnnxLimits,
) -> tuple[list[dict[str, Any]], str, int]:
    from deadir.models.corpus import ByteTokenizer, token_sequences

    names = {n for n, _, _ in norms.inputs}
    vocab = _vocab_size(model, file, limits)
    if tokenizer is None:
        if vocab is None:
            raise OnnxError(f"{file}: no tokenizer given and no embedding table gathered by input_ids to state a "
                            "vocabulary")  # fmt: skip
        # skip BERT's [unused]/special ids where the vocabulary is large enough to keep 256 byte ids
        tokenizer = ByteTokenizer(vocab, offset=1000 if vocab >= 1256 else 0)
        how = f"corpus bytes folded into the stated vocabulary of {vocab} ids (ByteTokenizer offset {tokenizer.offset})"
    else:
        how = f"corpus tokenised by {type(tokenizer).__name__}"
    n_seq = max(2, math.ceil(tokens / seq_len))
    ids = np.asarray(token_sequences(tokenizer, n_seq, seq_len, seed=seed, vocab_size=vocab).numpy(), dtype=np.int64)
    feeds = []
    for start in range(0, n_seq, 8):
        chunk = ids[start : start + 8]
        feed: dict[str, Any] = {"input_ids": chunk}
        if "attention_mask" in names:
            feed["attention_mask"] = np.ones_like(chunk)
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(chunk)
        feeds.append(feed)
    return feeds, f"{n_seq}×{seq_len} token ids: {how}", n_seq * seq_len


def _image_feeds(norms: OnnxNorms, *, images: int, seed: int) -> tuple[list[dict[str, Any]], str, int]:
    from deadir.models.inputs import synthetic_images

    (name, _, shape) = norms.inputs[0]
    c, h, w = shape[1], shape[2], shape[3]
    if not all(isinstance(v, int) and v > 0 for v in (c, h, w)) or h != w:
        raise OnnxError(f"{norms.path}: image input {name!r} has shape {shape}; need static square C×H×W")
    rng = np.random.default_rng(seed)
    feeds = []
    for start in range(0, images, 4):
        k = min(4, images - start)
        feeds.append({name: synthetic_images(k, int(c), int(h), rng).numpy()})  # type: ignore[arg-type]
    return feeds, f"{images} synthesised images {c}×{h}×{w}", images


def _floor(gamma: FloatArray, beta: FloatArray, lambda_max: float, rho: float | None) -> float:
    """T10 bound (float32 forward and statistics) on vᵀĈv/λmax for an exact kernel vector."""
    if lambda_max <= 0:
        return math.inf
    bound = kernel_error_bound(gamma, "float32", beta=beta, compute_dtype="float32",
                               mean_ratio=1.0 if rho is None or not math.isfinite(rho) else rho)  # fmt: skip
    if not bound.valid:
        return math.inf
    return max(bound.rayleigh_rel(lambda_max), eigensolver_floor_rel(int(gamma.size)))


def verify_onnx(
    path: str | os.PathLike[str],
    *,
    tokens: int = DEFAULT_TOKENS,
    seq_len: int = DEFAULT_SEQ_LEN,
    images: int = DEFAULT_IMAGES,
    tokenizer: Any = None,
    seed: int = 0,
    optimization: str = "basic",
    threads: int = 0,
    limits: OnnxLimits = DEFAULT_LIMITS,
    tolerances: Sequence[float] = NEAR_NULL_TOLERANCES,
) -> OnnxVerifyResult:
    """Run an ONNX model on its own kind of input and measure every norm site in float64.

    Args:
        path: ``.onnx`` file (or a folder with exactly one).
        tokens, seq_len: text models: about ``tokens`` corpus tokens in sequences of ``seq_len``.
        images: vision models: number of synthesised images at the input's resolution.
        tokenizer: anything with ``encode(text, add_special_tokens=False)`` (e.g. a Hugging Face
            tokenizer); None → the corpus bytes folded into the embedding's vocabulary.
        optimization: onnxruntime graph optimisation ("disable", "basic", "extended", "all");
            "basic" (constant folding, no operator fusion) runs the graph's own arithmetic.
        threads: onnxruntime intra-op threads (0 = its default).

    Returns:
        :class:`OnnxVerifyResult`, one :class:`OnnxSiteMeasurement` per recognised site.

    Raises:
        OnnxError: everything :func:`deadir.io.onnx.read_onnx_norms` raises; no recognised
            site; inputs that are neither token ids nor one image tensor; onnxruntime failures.
        InputShapeError: non-positive sizes, unknown optimisation level.
    """
    if tokens < 2 or seq_len < 1 or images < 1:
        raise InputShapeError(f"tokens={tokens}, seq_len={seq_len}, images={images}: must be positive (tokens ≥ 2)")
    if optimization not in OPTIMIZATION_LEVELS:
        raise InputShapeError(f"optimization: {optimization!r} is not one of {OPTIMIZATION_LEVELS}")
    ort = _ort()
    file, model = load_onnx_model(path, limits=limits)
    norms = _read(file, model, limits)
    if not norms.sites:
        raise OnnxError(f"{file}: no LayerNorm/RMSNorm site recognised; nothing to verify")
    names = [n for n, _, _ in norms.inputs]
    if "input_ids" in names and set(names) <= set(_TEXT_INPUTS):
        feeds, desc, _ = _text_feeds(model, norms, file, tokens=tokens, seq_len=seq_len, tokenizer=tokenizer,
                                     seed=seed, limits=limits)  # fmt: skip
    elif len(norms.inputs) == 1 and norms.inputs[0][1] in ("FLOAT", "FLOAT16") and len(norms.inputs[0][2]) == 4:
        feeds, desc, _ = _image_feeds(norms, images=images, seed=seed)
        if norms.inputs[0][1] == "FLOAT16":
            feeds = [{k: v.astype(np.float16) for k, v in f.items()} for f in feeds]
    else:
        raise OnnxError(f"{file}: inputs {norms.inputs} are neither token ids (input_ids [+ attention_mask, "
                        "token_type_ids]) nor one N×C×H×W image tensor")  # fmt: skip
    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]  # fmt: skip
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(exposed_model(file, model, norms, limits=limits), sess_options=opts,
                                       providers=["CPUExecutionProvider"])  # fmt: skip
    except OnnxError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph classes
        raise OnnxError(f"{file}: onnxruntime could not load the graph: {exc}") from exc
    wanted = list(dict.fromkeys(n for s in norms.sites for n in (s.output_name, s.input_name)))
    accs = {s.path: CovarianceAccumulator(s.d) for s in norms.sites}
    rho: dict[str, float | None] = {s.path: None for s in norms.sites}
    distinct: dict[str, set[bytes]] = {s.path: set() for s in norms.sites}
    out_type = "float32"
    for feed in feeds:
        try:
            values = session.run(wanted, feed)
        except Exception as exc:
            raise OnnxError(f"{file}: onnxruntime failed on the inputs ({desc}): {exc}") from exc
        got = dict(zip(wanted, values, strict=True))
        for s in norms.sites:
            y = np.asarray(got[s.output_name])
            out_type = str(y.dtype)
            if y.shape[-1] != s.d:
                raise OnnxError(f"{file}: site {s.path}: output {s.output_name!r} has shape {y.shape}, not (…, {s.d})")
            rows = y.reshape(-1, s.d).astype(np.float64)
            accs[s.path].update(rows)
            seen = distinct[s.path]
            for row in rows:
                if len(seen) > s.d:
                    break  # enough to know the inputs do not limit the rank
                seen.add(row.tobytes())
            x = np.asarray(got[s.input_name]).reshape(-1, s.d).astype(np.float64)
            sd = x.std(axis=1)
            ok = sd > 0
            if ok.any():
                r = float((np.abs(x.mean(axis=1))[ok] / sd[ok]).max())
                prev = rho[s.path]
                rho[s.path] = r if prev is None else max(prev, r)
    results = []
    for s in norms.sites:
        acc = accs[s.path]
        gamma, beta = s.gamma, s.beta
        dead = dead_channels(gamma, rel_tol=DEAD_REL_TOL)
        live = live_fraction(gamma, dead)
        zero = bool(np.any(gamma == 0.0))
        predicted = "kernel" if s.kind == "layernorm" and not zero else "control"
        kernel: KernelReport | None = None
        floor: float | None = None
        at_floor: bool | None = None
        try:
            direction = inverse_scale_direction(gamma)
        except DegenerateScaleError:
            direction = None
        if direction is not None:
            kernel = measure_kernel(acc, direction)
            eig, lam = kernel.eigvals, kernel.lambda_max
            floor = _floor(gamma, beta, lam, rho[s.path])
            at_floor = bool(kernel.rayleigh_rel <= floor)
        else:
            eig = np.asarray(np.linalg.eigvalsh(acc.cov()), dtype=np.float64)
            lam = float(eig[-1])
        near = {t: int(np.count_nonzero(eig <= t * lam)) for t in tolerances}
        results.append(OnnxSiteMeasurement(
            site=s, predicted=predicted, n=acc.n, d=s.d, distinct_rows=len(distinct[s.path]),
            rank_limited=len(distinct[s.path]) - 1 < s.d, kernel=kernel, floor_rel=floor, at_floor=at_floor,
            mean_ratio=rho[s.path], near_null=near, dead=tuple(int(i) for i in dead), live_fraction=live,
            lambda_max=lam,
        ))  # fmt: skip
    return OnnxVerifyResult(path=str(file), inputs=desc, optimization=optimization, forward_dtype=out_type,
                            sites=tuple(results), norms=norms)  # fmt: skip


def load_tokenizer_file(path: str | os.PathLike[str]) -> Any:
    """A ``tokenizer.json`` (Hugging Face ``tokenizers`` format) as an object with ``encode(text) -> ids``.

    Raises OnnxError when the file is missing or does not parse.
    """
    p = Path(path)
    if not p.is_file():
        raise OnnxError(f"{p}: tokenizer file not found")
    try:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(p))
    except Exception as exc:
        raise OnnxError(f"{p}: not a tokenizers JSON file: {exc}") from exc
    return _TokenizersAdapter(tok)


class _TokenizersAdapter:
    """``tokenizers.Tokenizer`` behind the ``encode(text, add_special_tokens=False)`` interface."""

    def __init__(self, tok: Any) -> None:
        self._tok = tok

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)
