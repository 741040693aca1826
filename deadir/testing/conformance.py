"""The conformance pack: check-norm over third-party norm implementations × dtypes → docs/conformance.md.

``python -m deadir.testing.conformance --out docs/conformance.md [--subset ci] [--max-examples N]``

Each implementation is a factory, the algebra it claims (``expect``), the reference formula
(or none when it computes another correct form), how to drive it (parameter names,
layout), the dtypes it supports, and the packages it needs (an implementation whose
package is not installed is listed as "not installed", never run). Keras runs in a child
process per backend (``KERAS_BACKEND`` is read once per process). For every FAIL the table
gives the shrunk counterexample and a diagnosis; a float64 FAIL is re-run with float32
declared as the compute dtype, and "computes float64 input in float32" is reported only
when that re-run passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.testing.adapters import DriveOptions, bind_norm
from deadir.testing.adapters.numpy import numpy_dtype
from deadir.testing.assertions import NormPropertyError
from deadir.testing.pack import PackReport, load_factory, run_pack

__all__ = ["IMPLEMENTATIONS", "Implementation", "main", "run_conformance", "statistics_cause"]

DTYPES = ("float64", "float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One row group of the table."""

    name: str
    factory: str  # "package.module:callable"
    expect: str = "mean-centring"
    reference: str = "none"
    dtypes: tuple[str, ...] = DTYPES
    requires: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    ci: bool = False
    keras_backend: str | None = None
    what: str = ""
    control: str | None = None  # a sibling row differing in one setting: a FAIL where it passes names that setting
    differs: str = ""  # what that setting does (the diagnosis when the control passes)
    source: tuple[tuple[str, str], ...] = ()  # (dtype, where in the library's source the cause was read)
    unavailable: str = ""  # why the library cannot be installed here (shown for "not installed" rows)


def _hf(cls: str) -> str:
    return f"deadir.testing.conformance:hf_{cls}"


_HF_MODULES = {"LlamaRMSNorm": "llama", "GemmaRMSNorm": "gemma", "Gemma3RMSNorm": "gemma3", "T5LayerNorm": "t5",
               "Qwen2RMSNorm": "qwen2", "Qwen3RMSNorm": "qwen3", "MistralRMSNorm": "mistral", "Phi3RMSNorm": "phi3",
               "CohereLayerNorm": "cohere", "OlmoLayerNorm": "olmo"}
_HF_F32 = ("transformers 5.23 modeling_{m}.py: {cls}.forward casts with {cast} before the statistics, so float64 is "
           "lowered")
_HF_CASTS = {"GemmaRMSNorm": "x.float()", "Gemma3RMSNorm": "x.float()",
             "T5LayerNorm": "hidden_states.to(torch.float32) for the variance",
             "OlmoLayerNorm": "hidden_states.to(dtype=torch.float32) into F.layer_norm"}
_FAST_VARIANCE = ("use_fast_variance=True (flax's default) computes the variance as E[x^2] - E[x]^2, which cancels "
                  "when the row's mean dwarfs its spread")
_KERAS_F32 = ("keras 3.15 keras/src/ops/nn.py: {op} computes in compute_dtype = backend.result_type(x.dtype, "
              "'float32'), and keras/src/backend/common/dtypes.py _lattice_result_type maps every 64-bit result to "
              "32 bits (BIT64_TO_BIT32_DTYPE, 'aligned with JAX's default'), so a float64 layer computes in float32 "
              "and casts back")
_TIMM = ("timm 1.0.31 installs (pip --no-deps) but `from timm.layers import LayerNorm` imports "
         "timm/layers/create_norm.py, which imports torchvision unconditionally (`from torchvision.ops.misc import "
         "FrozenBatchNorm2d`); torchvision 0.28.0, the release for torch 2.13, is on PyPI only as a CUDA build (its "
         "_C.so needs libc10_cuda.so) and fails to load against torch 2.13 CPU ('operator torchvision::nms does not "
         "exist'); 0.29 requires torch >= 2.14")
_TORCHTUNE = ("torchtune 0.6.1 installs (pip --no-deps) but `import torchtune` requires torchao; torchao 0.18.0 "
              "(the one PyPI release that installs next to torch 2.13 here) lacks torchao.dtypes.nf4tensor, which "
              "torchtune.modules imports, so torchtune.modules.RMSNorm / Fp32LayerNorm cannot be imported")

IMPLEMENTATIONS: tuple[Implementation, ...] = (
    Implementation("torch nn.LayerNorm", "deadir.testing.examples:layernorm", reference="auto", ci=True,
                   what="torch 2.13 eager"),
    Implementation("torch nn.LayerNorm(bias=False)", "deadir.testing.examples:layernorm_nobias", reference="auto"),
    Implementation("torch F.layer_norm (callable)", "deadir.testing.examples:functional_layernorm", ci=True),
    Implementation("torch nn.RMSNorm", "deadir.testing.examples:rmsnorm", "rms", "auto", ci=True),
    Implementation("torch F.rms_norm (callable)", "deadir.testing.examples:functional_rmsnorm", "rms"),
    Implementation("torch nn.GroupNorm(4, 24)", "deadir.testing.conformance:torch_groupnorm", "group-centring",
                   "auto", options=(("d", 24),), ci=True),
    Implementation("torch.compile(nn.LayerNorm) inductor", "deadir.testing.examples:layernorm", reference="auto",
                   dtypes=("float32", "bfloat16"), options=(("compile", True), ("d", 32))),
    Implementation("torch.compile(nn.RMSNorm) inductor", "deadir.testing.examples:rmsnorm", "rms", "auto",
                   dtypes=("float32", "bfloat16"), options=(("compile", True), ("d", 32))),
    Implementation("timm-style LayerNorm2d, channels-first (deadir example)", "deadir.testing.examples:layernorm_2d",
                   reference="layernorm", options=(("layout", "channels-first"),),
                   what="nn.LayerNorm over C of (N, C, H, W) by permuting, as timm's LayerNorm2d"),
    Implementation("DiT adaLN, conditioned (deadir example)", "deadir.testing.examples:adaptive_layernorm",
                   options=(("conditioned", True),), what="LayerNorm(x)(1 + scale(c)) + shift(c), T1/T8 row by row"),
    Implementation("Annotated Transformer LayerNorm", "deadir.testing.examples:annotated_layernorm", ci=True,
                   options=(("gamma_attr", "a_2"), ("beta_attr", "b_2"), ("eps_attr", "eps")),
                   what="a_2*(x-mean)/(std+eps)+b_2, unbiased std",
                   source=tuple((dt, "forward takes x.mean(-1) and x.std(-1) in the input dtype: torch rounds the "
                                     f"mean to {dt} before x - mean") for dt in ("bfloat16", "float16"))),
    *(Implementation(f"hf {cls}", _hf(cls), "rms", "rmsnorm", requires=("transformers",), ci=cls == "LlamaRMSNorm",
                     options=(("weight_offset", 1.0),) if cls.startswith("Gemma") else (),
                     source=(("float64", _HF_F32.format(m=_HF_MODULES[cls], cls=cls,
                                                        cast=_HF_CASTS.get(cls, "hidden_states.to(torch.float32)"))),))
      for cls in ("LlamaRMSNorm", "GemmaRMSNorm", "Gemma3RMSNorm", "T5LayerNorm", "Qwen2RMSNorm", "Qwen3RMSNorm",
                  "MistralRMSNorm", "Phi3RMSNorm")),
    *(Implementation(f"hf {cls}", _hf(cls), reference="layernorm" if cls == "CohereLayerNorm" else "none",
                     requires=("transformers",), ci=cls == "CohereLayerNorm",
                     what="" if cls == "CohereLayerNorm" else "non-parametric: gamma = 1, beta = 0",
                     source=(("float64", _HF_F32.format(m=_HF_MODULES[cls], cls=cls,
                                                        cast=_HF_CASTS.get(cls, "hidden_states.to(torch.float32)"))),))
      for cls in ("CohereLayerNorm", "OlmoLayerNorm")),
    Implementation("x-transformers LayerNorm", "deadir.testing.conformance:xt_layernorm", requires=("x_transformers",),
                   options=(("gamma_attr", "gamma"),)),
    Implementation("x-transformers RMSNorm", "deadir.testing.conformance:xt_rmsnorm", "rms",
                   requires=("x_transformers",), options=(("gamma_attr", "g"),)),
    Implementation("x-transformers ScaleNorm", "deadir.testing.conformance:xt_scalenorm", "rms",
                   requires=("x_transformers",), options=(("gamma_attr", "g"),), what="scalar gain"),
    Implementation("timm LayerNorm", "deadir.testing.conformance:timm_layernorm", reference="layernorm",
                   requires=("timm", "torchvision"), unavailable=_TIMM),
    Implementation("timm LayerNorm2d, channels-first", "deadir.testing.conformance:timm_layernorm2d",
                   reference="layernorm", requires=("timm", "torchvision"), unavailable=_TIMM,
                   options=(("layout", "channels-first"),)),
    Implementation("timm RmsNorm", "deadir.testing.conformance:timm_rmsnorm", "rms", "rmsnorm",
                   requires=("timm", "torchvision"), unavailable=_TIMM),
    Implementation("torchtune RMSNorm", "deadir.testing.conformance:torchtune_rmsnorm", "rms", "rmsnorm",
                   requires=("torchtune", "torchao"), unavailable=_TORCHTUNE, options=(("gamma_attr", "scale"),)),
    Implementation("torchtune Fp32LayerNorm", "deadir.testing.conformance:torchtune_fp32_layernorm",
                   reference="layernorm", requires=("torchtune", "torchao"), unavailable=_TORCHTUNE),
    Implementation("numpy NormSpec layernorm", "deadir.testing.conformance:numpy_spec_layernorm",
                   reference="layernorm", dtypes=("float64",), ci=True),
    Implementation("numpy NormSpec rmsnorm", "deadir.testing.conformance:numpy_spec_rmsnorm", "rms", "rmsnorm",
                   dtypes=("float64",)),
    Implementation("numpy two-pass LayerNorm (callable)", "deadir.testing.examples:numpy_layernorm",
                   reference="layernorm", options=(("framework", "numpy"),), ci=True,
                   what="deadir's own reference: float32 statistics for half inputs"),
    Implementation("onnxruntime LayerNormalization (opset 17)", "deadir.testing.examples:onnx_layernorm",
                   reference="auto", requires=("onnxruntime",), options=(("framework", "onnx"),), ci=True),
    Implementation("onnxruntime RMSNormalization (opset 23)", "deadir.testing.examples:onnx_rmsnorm", "rms", "auto",
                   requires=("onnxruntime",), options=(("framework", "onnx"),), ci=True),
    Implementation("flax nnx.LayerNorm", "deadir.testing.examples:flax_nnx_layernorm", reference="layernorm",
                   requires=("flax",), what="default use_fast_variance=True",
                   control="flax nnx.LayerNorm(use_fast_variance=False)", differs=_FAST_VARIANCE),
    Implementation("flax nnx.LayerNorm(use_fast_variance=False)",
                   "deadir.testing.examples:flax_nnx_layernorm_two_pass", reference="layernorm", requires=("flax",)),
    Implementation("flax nnx.RMSNorm", "deadir.testing.examples:flax_nnx_rmsnorm", "rms", "rmsnorm",
                   requires=("flax",)),
    Implementation("flax linen.LayerNorm", "deadir.testing.examples:flax_linen_layernorm", reference="layernorm",
                   requires=("flax",), what="default use_fast_variance=True",
                   control="flax linen.LayerNorm(use_fast_variance=False)", differs=_FAST_VARIANCE),
    Implementation("flax linen.LayerNorm(use_fast_variance=False)",
                   "deadir.testing.examples:flax_linen_layernorm_two_pass", reference="layernorm", requires=("flax",)),
    *(Implementation(f"keras[{be}] LayerNormalization", "deadir.testing.examples:keras_layernorm",
                     reference="layernorm", requires=("keras", be), keras_backend=be,
                     source=(("float64", _KERAS_F32.format(op="layer_normalization")),)) for be in ("jax", "torch")),
    *(Implementation(f"keras[{be}] RMSNormalization", "deadir.testing.examples:keras_rmsnorm", "rms", "rmsnorm",
                     requires=("keras", be), keras_backend=be,
                     options=(("gamma_attr", "scale"), ("eps_attr", "epsilon")),
                     source=(("float64", _KERAS_F32.format(op="rms_normalization")),))
      for be in ("jax", "torch")),
)


def _hf_factory(cls: str) -> Callable[[int], Any]:
    def make(d: int) -> Any:
        module = importlib.import_module(f"transformers.models.{_HF_MODULES[cls]}.modeling_{_HF_MODULES[cls]}")
        return getattr(module, cls)(d)

    make.__qualname__ = f"hf_{cls}"
    return make


for _cls in _HF_MODULES:
    globals()[f"hf_{_cls}"] = _hf_factory(_cls)


def torch_groupnorm(d: int) -> Any:
    """torch.nn.GroupNorm(4, d)."""
    import torch

    return torch.nn.GroupNorm(4, d)


def xt_layernorm(d: int) -> Any:
    """x_transformers.LayerNorm (bias-free, scale ``gamma``)."""
    from x_transformers.x_transformers import LayerNorm

    return LayerNorm(d)


def xt_rmsnorm(d: int) -> Any:
    """x_transformers.RMSNorm (F.normalize · √d · g)."""
    from x_transformers.x_transformers import RMSNorm

    return RMSNorm(d)


def xt_scalenorm(d: int) -> Any:
    """x_transformers.ScaleNorm (one scalar gain g)."""
    from x_transformers.x_transformers import ScaleNorm

    return ScaleNorm(d)


def timm_layernorm(d: int) -> Any:
    """timm.layers.LayerNorm(d)."""
    from timm.layers import LayerNorm

    return LayerNorm(d)


def timm_layernorm2d(d: int) -> Any:
    """timm.layers.LayerNorm2d(d): (N, C, H, W) normalised over C (channels-first)."""
    from timm.layers import LayerNorm2d

    return LayerNorm2d(d)


def timm_rmsnorm(d: int) -> Any:
    """timm.layers.RmsNorm(d)."""
    from timm.layers import RmsNorm

    return RmsNorm(d)


def torchtune_rmsnorm(d: int) -> Any:
    """torchtune.modules.RMSNorm(d) (scale ``scale``; computes in float32)."""
    from torchtune.modules import RMSNorm

    return RMSNorm(d)


def torchtune_fp32_layernorm(d: int) -> Any:
    """torchtune.modules.Fp32LayerNorm(d) (nn.LayerNorm run in float32, cast back)."""
    from torchtune.modules import Fp32LayerNorm

    return Fp32LayerNorm(d)


def numpy_spec_layernorm(d: int) -> Any:
    """deadir's own float64 LayerNorm reference (NormSpec.apply)."""
    import numpy as np

    from deadir.norms import NormSpec

    return NormSpec("layernorm", np.ones(d), np.zeros(d), 1e-5, source="numpy reference layernorm")


def numpy_spec_rmsnorm(d: int) -> Any:
    """deadir's own float64 RMSNorm reference (NormSpec.apply)."""
    import numpy as np

    from deadir.norms import NormSpec

    return NormSpec("rmsnorm", np.ones(d), None, 1e-6, source="numpy reference rmsnorm")


def _installed(impl: Implementation) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in impl.requires)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _rounded_statistics(x: FloatArray, eps: float, dtype: str) -> tuple[FloatArray, FloatArray]:
    """A row's variance (and variance + ε) as a two-pass norm computes them in ``dtype``: every operation rounded."""
    npdt = numpy_dtype(dtype)

    def fl(a: Any) -> FloatArray:
        with np.errstate(over="ignore"):  # an overflow to inf is what is being detected
            return np.asarray(np.asarray(a, dtype=np.float64).astype(npdt), dtype=np.float64)

    mu = fl(fl(x).mean(axis=-1, keepdims=True))
    xc = fl(fl(x) - mu)
    var = fl(fl(xc * xc).mean(axis=-1))
    return var, fl(var + fl(eps))


def statistics_cause(err: NormPropertyError, run: Callable[[FloatArray], FloatArray] | None = None) -> str | None:
    """Why a norm returned inf/NaN on finite rows, when a rounding model of its statistics explains it; else None.

    Two models are tried on the counterexample's rows: two-pass statistics kept in a half dtype
    (the squares (x − μ)² underflow or overflow) and a one-pass variance E[x²] − E[x]² in the
    compute dtype (it cancels to ≤ 0). When both reproduce the inf and ``run`` (the norm, rows →
    outputs) is given, the same row centred separates them — the one-pass variance no longer
    cancels there, the half-precision squares still underflow — and the model the norm's output
    refutes is dropped; without ``run`` the diagnosis names both.
    """
    causes = _statistics_causes(err.x, float(err.eps or 0.0), err.dtype)
    if len(causes) < 2:
        return causes[0][1] if causes else None
    if run is not None:
        kept = _separated(causes, err, run)
        if kept is not None:
            return kept
    return "consistent with either of two causes: " + "; or ".join(text for _, text in causes)


def _statistics_causes(x: FloatArray, eps: float, dtype: str) -> list[tuple[str, str]]:
    """(model, diagnosis) for every statistics model that makes 1/sqrt(var + eps) non-finite on some row of x."""
    causes = []
    half = _half_statistics_cause(x, eps, dtype) if dtype in ("float16", "bfloat16") else None
    if half is not None:
        causes.append(("half", half))
    fast = _fast_variance_cause(x, eps, dtype)
    if fast is not None:
        causes.append(("fast", fast))
    return causes


def _separated(causes: list[tuple[str, str]], err: NormPropertyError,
               run: Callable[[FloatArray], FloatArray]) -> str | None:
    """The one cause the norm's output on the centred row confirms, or None when that row does not separate them."""
    eps = float(err.eps or 0.0)
    npdt = numpy_dtype(err.dtype)
    if _finite_on(run, err.x) is not False:
        return None  # the inf does not reproduce (or the norm raised): nothing to attribute
    for row in err.x:
        centred = np.asarray((row - row.mean()).astype(npdt), dtype=np.float64)[None, :]
        if not np.any(centred):
            continue
        predicts = {model for model, _ in _statistics_causes(centred, eps, err.dtype)}
        if len(predicts) != 1:
            continue  # both or neither model fails on this centred row: it cannot tell them apart
        finite = _finite_on(run, centred)
        if finite is None:
            return None
        kept = [(m, t) for m, t in causes if (m in predicts) != finite]
        if len(kept) != 1:
            return None
        seen = "finite" if finite else "inf/NaN"
        return (f"{kept[0][1]} (confirmed: on the same row centred, where only "
                f"{_MODEL_NAMES[next(iter(predicts))]} would fail, the output is {seen})")
    return None


def _finite_on(run: Callable[[FloatArray], FloatArray], rows: FloatArray) -> bool | None:
    """Whether the norm's output on ``rows`` is finite; None when it raises (that tells nothing of its statistics)."""
    try:
        return bool(np.all(np.isfinite(run(rows))))
    except Exception:
        return None


_MODEL_NAMES = {"half": "half-precision statistics", "fast": "a one-pass variance"}


def _half_statistics_cause(x: FloatArray, eps: float, dtype: str) -> str | None:
    """Two-pass statistics kept in the half ``dtype`` under- or overflowing where float32 statistics do not."""
    var_half, denom_half = _rounded_statistics(x, eps, dtype)
    _, denom_32 = _rounded_statistics(x, eps, "float32")
    var64 = x.var(axis=-1)
    sound = np.isfinite(denom_32) & (denom_32 > 0)
    tiny = float(np.finfo(numpy_dtype(dtype)).smallest_subnormal)
    under = sound & (denom_half == 0) & (var64 > 0)
    if np.any(under):
        v = float(var64[under][0])
        return (f"variance underflow: the row's variance {v:.3g} is 0 when its squares (x - mean)^2 are formed in "
                f"{dtype} (below its smallest subnormal {tiny:.3g}) and eps = {eps:g} does not lift it, so "
                f"1/sqrt(var + eps) is inf; the statistics are kept in {dtype} (compute them in float32, as "
                "PyTorch does for half inputs)")
    over = sound & ~np.isfinite(var_half)
    if np.any(over):
        big = float(np.abs(x[over][0]).max())
        return (f"variance overflow: with |x| up to {big:.3g} the squares (x - mean)^2 exceed {dtype}'s largest "
                f"finite value {float(np.finfo(numpy_dtype(dtype)).max):.3g}; the statistics are kept in "
                f"{dtype} (compute them in float32, as PyTorch does for half inputs)")
    return None


def _fast_variance_cause(x: FloatArray, eps: float, dtype: str) -> str | None:
    """A one-pass variance E[x^2] - E[x]^2 cancelling to <= 0 in the compute dtype where the variance is not 0."""
    compute = "float64" if dtype == "float64" else "float32"
    npdt = numpy_dtype(compute)

    def fl(a: Any) -> FloatArray:
        return np.asarray(np.asarray(a, dtype=np.float64).astype(npdt), dtype=np.float64)

    xs = fl(x)
    mean = fl(xs.mean(axis=-1))
    fast = fl(fl(fl(xs * xs).mean(axis=-1)) - fl(mean * mean))
    two_pass = x.var(axis=-1)
    hit = (fl(np.maximum(fast, 0.0) + eps) == 0) & (two_pass > 0)
    if not np.any(hit):
        return None
    i = int(np.argmax(hit))
    return (f"one-pass (fast) variance cancels: for the row of mean {float(np.mean(x[i])):.6g} and variance "
            f"{float(two_pass[i]):.3g}, E[x^2] - E[x]^2 in {compute} is {float(fast[i]):.3g} (clamped to 0), and with "
            f"eps = {eps:g} 1/sqrt(var + eps) is inf")


def _diagnose(impl: Implementation, dtype: str, report: PackReport, max_examples: int) -> str:
    """A one-line diagnosis of a FAIL, confirmed by a re-run (or a recomputation) where it names a cause."""
    cause = _cause(impl, dtype, report, max_examples)
    source = dict(impl.source).get(dtype)
    return cause + (f". Source: {source}" if source else "")


def _cause(impl: Implementation, dtype: str, report: PackReport, max_examples: int) -> str:
    failed = report.caught_by
    texts = [c for o in report.outcomes for c in o.counterexamples]
    worst = max((o.max_ratio for o in report.outcomes if o.failures), default=0.0)
    finite = [e for o in report.outcomes for e in o.found if e.property == "finite output"]
    if finite or any(t.startswith("finite output") for t in texts):
        why = next((c for c in (statistics_cause(e, _norm_on_rows(impl, e)) for e in finite) if c is not None), None)
        return "returns NaN or inf on finite input rows: " + (why or "see the counterexample")
    control = next((i for i in IMPLEMENTATIONS if i.name == impl.control), None)
    if control is not None and _pack(control, dtype, max_examples).verdict == "PASS":
        return f"{impl.differs} ({control.name} passes in {dtype})"
    declared = "compute_dtype" in dict(impl.options)
    # float32 arithmetic errs ~2^29 times float64's unit roundoff: a float64 FAIL by a small factor is not it
    if dtype == "float64" and not declared and worst >= 1e3:
        again = _pack(impl, dtype, max_examples, extra={"compute_dtype": "float32"})
        if again.verdict == "PASS":
            return (f"silently computes float64 input in float32 (errors {worst:.2g}x float64's bound; passes when "
                    "float32 arithmetic is declared)")
    if dtype in ("bfloat16", "float16") and not declared:
        again = _pack(impl, dtype, max_examples, extra={"compute_dtype": dtype})
        if again.verdict == "PASS":
            return (f"computes its statistics in {dtype} (passes only at {dtype}'s own bound): the mean is kept in "
                    "the low precision and the centring loses accuracy")
    if failed == ["reference"]:
        return f"the algebra holds but the output differs from the float64 {impl.reference} formula: " + \
            _first_line(texts[0])
    return f"{', '.join(failed)} violated: " + _first_line(texts[0])


def _norm_on_rows(impl: Implementation, err: NormPropertyError) -> Callable[[FloatArray], FloatArray] | None:
    """The implementation bound to the counterexample's γ, β and ε, as rows → outputs (None: conditioned norms)."""
    opts = dict(impl.options)
    if opts.get("conditioned") or err.gamma is None:
        return None
    fields = {f.name for f in dataclasses.fields(DriveOptions)}
    options = DriveOptions(**{k: v for k, v in opts.items() if k in fields})
    gamma, d = err.gamma, err.d
    bound: list[Any] = []  # the bound norm, built at the first call: only a diagnosis that needs a probe pays

    def run(rows: FloatArray) -> FloatArray:
        if not bound:
            bound.append(bind_norm(load_factory(impl.factory)(d), d, weight=gamma - (options.weight_offset or 0.0),
                                   beta=err.beta, eps=err.eps, dtype=err.dtype, options=options))
        y: FloatArray = bound[0].run(rows)[0]
        return y

    return run


def _pack(impl: Implementation, dtype: str, max_examples: int, extra: dict[str, Any] | None = None) -> PackReport:
    opts = {**dict(impl.options), **(extra or {})}
    max_d = 32
    return run_pack(impl.factory, expect=impl.expect, dtype=dtype, reference=impl.reference,
                    max_examples=max_examples, max_d=max_d, **opts)


@dataclasses.dataclass
class Row:
    """One cell group of the table: implementation × dtype."""

    implementation: str
    dtype: str
    verdict: str
    diagnosis: str = ""
    counterexample: str = ""
    seconds: float = 0.0
    not_run: str = ""  # properties that did not run, with why (a PASS then covers only the others)


def _run_one(impl: Implementation, dtype: str, max_examples: int) -> Row:
    start = time.monotonic()
    try:
        report = _pack(impl, dtype, max_examples)
    except Exception as exc:  # a harness-level error of this cell: ERROR, the table goes on
        return Row(impl.name, dtype, "ERROR", f"{type(exc).__name__}: {exc}", "", time.monotonic() - start)
    verdict = report.verdict
    diagnosis, example = "", ""
    if verdict == "FAIL":
        diagnosis = _diagnose(impl, dtype, report, max_examples)
        example = next(c for o in report.outcomes for c in o.counterexamples)
    elif verdict == "ERROR":
        err = report.error or next((o.error for o in report.outcomes if o.error), "") or ""
        diagnosis = _first_line(err)
    not_run = "; ".join(f"{o.name}: {o.skipped}" for o in report.outcomes
                        if o.skipped not in (None, "not run after an ERROR", "--reference none"))
    return Row(impl.name, dtype, verdict, diagnosis, example, time.monotonic() - start, not_run)


def _keras_rows(impl: Implementation, dtypes: Sequence[str], max_examples: int) -> list[Row]:
    """Run a Keras implementation in a child process with its backend selected."""
    env = {**os.environ, "KERAS_BACKEND": impl.keras_backend or "jax"}
    cmd = [sys.executable, "-m", "deadir.testing.conformance", "--only", impl.name, "--emit-json",
           "--max-examples", str(max_examples), "--dtypes", ",".join(dtypes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        return [Row(impl.name, dt, "ERROR", f"child process failed: {_first_line(proc.stderr[-500:])}")
                for dt in dtypes]
    return [Row(**r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]


def run_conformance(*, subset: str = "all", max_examples: int = 30, only: str | None = None,
                    dtypes: Sequence[str] = DTYPES, progress: bool = True,
                    on_rows: Callable[[list[Row]], None] | None = None) -> list[Row]:
    """Run the pack over the implementations (``subset`` "ci" or "all") and every supported dtype.

    ``on_rows`` is called with the rows so far after each implementation (a long run leaves a partial table).
    """
    rows: list[Row] = []
    for impl in IMPLEMENTATIONS:
        if only is not None and impl.name != only:
            continue
        if subset == "ci" and not impl.ci:
            continue
        wanted = [dt for dt in impl.dtypes if dt in dtypes]
        if not _installed(impl):
            why = impl.unavailable or f"needs {', '.join(impl.requires)}"
            rows.extend(Row(impl.name, dt, "not installed", why) for dt in wanted)
            continue
        if impl.keras_backend is not None and os.environ.get("KERAS_BACKEND") != impl.keras_backend:
            rows.extend(_keras_rows(impl, wanted, max_examples))
        else:
            for dt in wanted:
                rows.append(_run_one(impl, dt, max_examples))
        if on_rows is not None:
            on_rows(rows)
        if progress:
            for r in rows[-len(wanted):]:
                print(f"{r.implementation:48s} {r.dtype:9s} {r.verdict:6s} {r.seconds:6.1f}s {r.diagnosis[:90]}",
                      file=sys.stderr, flush=True)
    return rows


def render_markdown(rows: Sequence[Row], *, subset: str, max_examples: int, seconds: float) -> str:
    """docs/conformance.md: how verdicts are decided, the table, and every FAIL's counterexample."""
    names = list(dict.fromkeys(r.implementation for r in rows))
    cell = {(r.implementation, r.dtype): r for r in rows}
    lines = [
        "# Conformance: deadir check-norm on real norm implementations",
        "",
        f"Generated by `python -m deadir.testing.conformance --out docs/conformance.md --subset {subset} "
        f"--max-examples {max_examples}` ({len(names)} implementations, {len(rows)} cells, {seconds:.0f} s). "
        "Verdicts: **PASS** (the algebra held within a tolerance that covers every correct implementation), "
        "**FAIL** (a shrunk counterexample of the algebra or of the declared reference formula, diagnosed below), "
        "**ERROR** (the harness could not run the norm in that dtype), *not installed*, or — (dtype not supported).",
        "",
        _HOW,
        "",
        "## Table",
        "",
        "| implementation | " + " | ".join(DTYPES) + " |",
        "| --- | " + " | ".join("---" for _ in DTYPES) + " |",
    ]
    for name in names:
        cells = []
        for dt in DTYPES:
            r = cell.get((name, dt))
            text = "—" if r is None else (f"**{r.verdict}**" if r.verdict in ("FAIL", "ERROR") else r.verdict)
            cells.append(text + ("†" if r is not None and r.not_run else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fails = [r for r in rows if r.verdict in ("FAIL", "ERROR")]
    if fails:
        lines += ["", "## Findings (every FAIL and ERROR)", ""]
        for r in fails:
            lines += [f"### {r.implementation}, {r.dtype}: {r.verdict}", "", f"Diagnosis: {r.diagnosis}", ""]
            if r.counterexample:
                lines += ["```", r.counterexample, "```", ""]
    partial = [r for r in rows if r.not_run]
    if partial:
        lines += ["", "## † Properties not run", ""]
        lines += [f"- {r.implementation}, {r.dtype}: {r.not_run}" for r in partial]
    missing = {r.implementation: r.diagnosis for r in rows if r.verdict == "not installed"}
    if missing:
        lines += ["", "## Not installed", ""]
        lines += [f"- {name}: {why}" for name, why in missing.items()]
    return "\n".join(lines) + "\n"


_HOW = """## How verdicts are decided

Properties (the algebra, DESIGN.md): T1 every output row lies on the hyperplane ⟨γ⁻¹, y − β⟩ = 0; T2 γ⁻¹
spans a kernel of the outputs' covariance; T8 y(x + t𝟙) = y(x); per group for GroupNorm (T9); T5 an RMS norm has
no such kernel. Separately, `reference` compares with a float64 formula (LayerNorm √(σ² + ε), RMSNorm) only where
the implementation claims that formula: a norm that divides by std + ε or uses the unbiased std is correct
algebra and is judged without it.

Rounding model. A mean-centring norm computes y = γ⊙r(x − μ𝟙) + β for some per-row scale r > 0 (LayerNorm's
1/√(σ² + ε), std + ε, the unbiased std, a fast variance all qualify). The tolerance is the first-order T10 bound of
`deadir.bound.kernel_error_bound` (standard model fl(a∘b) = (a∘b)(1 + δ), |δ| ≤ u; statistics and affine map in
the compute dtype u_c, a final cast in the output dtype u), evaluated with the implementation's *own* normaliser
measured per row from its output: r is fitted by least squares, r = Σγᵢ(yᵢ − βᵢ)(xᵢ − μ)/Σγᵢ²(xᵢ − μ)², plus the
fit's own rounding uncertainty; then s = r·σ (size of the standardised row) and ρ = r·|μ| (how much the
centring's rounding is amplified) enter the bound as

    |⟨v, ŷ − β⟩| ≤ A·max(1, s) + B·ρ + C,

A, B, C being kernel_error_bound's terms at ρ = 0, its slope in ρ, and its β term at 2β — the bias may be folded,
x·fl(rγ) + fl(β − fl(rγμ)) (PyTorch's CPU GroupNorm, Keras on JAX), which rounds twice at the size of β. T8 and the
determinism check use the per-entry forward error bound with the same measured z = r(x − μ) and ρ, plus the
folded-bias term u_c(2|β| + 2|γ|ρ). Underflow: below the smallest normal number λ the standard model does not
hold, and runtimes that flush subnormals to zero (XLA on CPU) return 0 there; every output entry may carry an
absolute error λ_out + λ_c(2 + |γᵢ| + |xᵢ − μ|), added to all bounds (it matters only for γᵢ near λ). Rows that no
implementation can resolve are left out, not failed: constant rows (their r is unobservable), rows whose
computed mean errs by as much as their spread (ρ·γ_{k+1}(u_c) ≥ 1), and rows whose output cannot show r
because the mean's own error δ (|δ| ≤ γ_{k+1}(u_c)(|μ| + σ)) could bias the fit by 100 % (the fit through the
origin reads r(1 − δ·A), A = Σγᵢ²(xᵢ − μ)/Σγᵢ²(xᵢ − μ)²; elsewhere r is taken as fit/(1 − δ_max|A|)). No
verdict reads an attribute name or an ε: only γ and β as the norm holds them, x and y.
For (1 + w) scales the pack draws w and a drawn w = −1 (γ = 0) is discarded, never counted against the norm.
The compute dtype defaults to float32 for float16/bfloat16 inputs and to the input dtype otherwise;
`--compute-dtype` declares another, and the report says so.

ERROR is reserved for the harness: a factory that raises, a norm that raises, hangs past `--timeout`, answers
the same input differently twice, or — with `--compile` — never ran compiled code (dynamo's counters and a
counting inductor backend); a runtime without a kernel for the dtype says so.

Diagnoses are confirmed, not guessed: "computes float64 input in float32" only when the float64 FAIL errs by
≥ 10³× float64's bound and a re-run with float32 declared as the compute dtype passes; "computes its statistics in
bfloat16/float16" only when a re-run at that dtype's own bound passes; a setting (flax's `use_fast_variance`) only
when the same layer with the other setting passes in that dtype; an inf/NaN is traced to a variance underflow or
overflow in half precision, or a one-pass variance E[x²] − E[x]² cancelling to 0, by recomputing the
counterexample's rows with every operation rounded; when both reproduce it, the norm is run on the same row
centred (where only the half-precision squares still fail) and its output decides, else both are named.
"Source" names the line of the library that causes it, read in the installed version. † marks a PASS where a
property did not run (the reason is listed).
"""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deadir.testing.conformance``; returns 0 when the table was written."""
    parser = argparse.ArgumentParser(prog="python -m deadir.testing.conformance", description=__doc__)
    parser.add_argument("--out", default="docs/conformance.md")
    parser.add_argument("--subset", choices=("ci", "all"), default="all")
    parser.add_argument("--max-examples", type=int, default=30)
    parser.add_argument("--only", default=None, help="one implementation, by name")
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--emit-json", action="store_true", help="print the rows as JSON (child processes)")
    args = parser.parse_args(argv)
    dtypes = tuple(d for d in args.dtypes.split(",") if d)
    start = time.monotonic()

    def write(rows: list[Row]) -> None:
        text = render_markdown(rows, subset=args.subset, max_examples=args.max_examples,
                               seconds=time.monotonic() - start)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")

    rows = run_conformance(subset=args.subset, max_examples=args.max_examples, only=args.only, dtypes=dtypes,
                           progress=not args.emit_json, on_rows=None if args.emit_json else write)
    if args.emit_json:
        print(json.dumps([dataclasses.asdict(r) for r in rows]))
        return 0
    write(rows)
    print(f"wrote {args.out}: {len(rows)} cells", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
