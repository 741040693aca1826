"""Norm sites of an instantiated Hugging Face (or any torch) model.

* :class:`Site`: one norm in a model or checkpoint, with where it sits and what it is (shared
  by the two readers: :func:`find_norms` here and :func:`deadir.scan`, which reads a
  checkpoint's tensors without a model).
* :func:`find_norms` walks ``model.named_modules()`` and returns a :class:`Site` for every
  normalisation layer: classes in the NormSpec table (torch LayerNorm / RMSNorm / GroupNorm
  and the Hugging Face classes of :mod:`deadir.hf_norms`) are read from their parameters;
  unknown classes that look like norms are classified by probing them with
  :func:`deadir.classify_norm` and reported with ``probed=True``.
* :func:`final_norm` picks the site(s) whose output is the model's final hidden state, by the
  architecture record's final rules (:attr:`deadir.arch.Architecture.final_rules`).

Roles (:data:`deadir.arch.Role`): "block-input" for pre-LN norms (including Llama's
``post_attention_layernorm``, which normalises the MLP's *input*), "block-output" for the
record's post-LN pattern (BERT's ``LayerNorm`` after the residual add, Gemma 2/3 and OLMo 2's
``post_*_layernorm``, OPT-350m's ``do_layer_norm_before=False``), "attention-qk" for q/k norms,
"embedding" for norms of the embeddings, "final" from the record's final rules, "other" for
the rest (task heads). The paths and roles agree with :func:`deadir.scan` on a saved checkpoint
of every record (tests/test_arch.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

import deadir.hf_norms  # noqa: F401  (registers the Hugging Face norm classes)
from deadir import arch
from deadir.arch import Architecture, Role, Stack, block_of, stack_of_path
from deadir.arrays import FloatArray, as_float64
from deadir.classify import classify_norm
from deadir.errors import InputShapeError, UnknownNormError
from deadir.norms import NormSpec

__all__ = ["Site", "final_norm", "find_norms", "sites_table", "spec_from_probe"]


@dataclasses.dataclass(frozen=True, eq=False)
class Site:
    """One normalisation layer.

    Attributes:
        path: module path in the model ("model.layers.3.input_layernorm"), or for a
            checkpoint the tensor-name prefix of its weight ("blk.3.attn_norm").
        spec: the norm as data (kind, γ, β, ε, weight offset, groups).
        role: "final" (the last norm before the head), "block-input" (pre-LN norms and
            the first norm of a block), "block-output" (post-LN norms, post-attention /
            post-MLP norms), "attention-qk" (q/k norms), "embedding" (embedding norm), "other".
        stack: which tower it belongs to: "decoder", "encoder", "vision", "text", "audio" or "".
        block: the block index, or None outside blocks.
        class_name: the module class (or "checkpoint tensor").
        probed: True when the kind was found by probing (classify_norm), not from the table.
    """

    path: str
    spec: NormSpec
    role: Role
    stack: Stack = ""
    block: int | None = None
    class_name: str = ""
    probed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (without the weight vectors)."""
        return {
            "path": self.path,
            "kind": self.spec.kind,
            "d": self.spec.size,
            "eps": self.spec.eps,
            "weight_offset": self.spec.weight_offset,
            "has_bias": self.spec.bias is not None,
            "groups": self.spec.groups,
            "role": self.role,
            "stack": self.stack,
            "block": self.block,
            "class_name": self.class_name,
            "probed": self.probed,
        }


# --------------------------------------------------------------------------------------
# find_norms
# --------------------------------------------------------------------------------------

ProbeErrors = Literal["raise", "skip"]


def find_norms(model: Any, *, errors: ProbeErrors = "raise") -> list[Site]:
    """Every normalisation site of ``model`` (a torch module, typically a transformers model), in module order.

    Known classes are read from their parameters (``probed=False``). A leaf module whose
    class name contains "Norm" but is not in the table, or a leaf with a single 1-D
    ``weight`` whose forward turns out norm-like, is probed with :func:`deadir.classify_norm`
    and reported with ``probed=True``; its spec holds the *effective* scale and shift
    fitted from the probe (or the module's own weight when the probe shows it is exactly
    the scale, or 1 + weight). BatchNorm and InstanceNorm (torch ``_NormBase``) are not
    sites: they do not normalise each row over its last axis.

    Raises:
        UnknownNormError: ``model`` is not a torch module; or, with ``errors="raise"``, a
            module named like a norm can be neither read nor probed (the message names it;
            ``errors="skip"`` leaves such modules out).
        InputShapeError: a known norm class in a configuration deadir cannot represent
            (e.g. a LayerNorm over two axes), with its path.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UnknownNormError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    record = arch.by_model_type(_model_type(model))
    default_stack = _default_stack(model, record)
    post_ln = record.post_ln_pattern(getattr(model, "config", None)) if record is not None else None
    record_stack = record.stack if record is not None else None
    raw: list[tuple[str, NormSpec, bool, str]] = []
    for path, module in model.named_modules():
        if not path:
            continue
        spec, probed = _read_or_probe(path, module, errors)
        if spec is not None:
            raw.append((path, spec, probed, type(module).__name__))
    sites = []
    for path, spec, probed, class_name in raw:
        block, inner = block_of(path)
        stack = stack_of_path(path, default_stack, record_stack=record_stack)
        role = _role_of(path, inner, block, post_ln)
        sites.append(Site(path, spec, role, stack, block, class_name, probed))
    finals = {s.path for s in _select_final(sites, record)}
    return [dataclasses.replace(s, role="final") if s.path in finals else s for s in sites]


def final_norm(model_or_sites: Any, *, model_type: str | None = None) -> list[Site]:
    """The site(s) whose output is the final hidden state, by the architecture record's final rules.

    Accepts a model (its sites are found with :func:`find_norms`) or a list of sites
    from :func:`find_norms` together with ``model_type``. Encoder-decoders (Whisper, T5)
    and dual towers (CLIP) give one site per stack; post-LN encoders (BERT, RoBERTa,
    MPNet) give the last block's output LayerNorm.

    Raises:
        UnknownNormError: no rule of the architecture (or of the generic names) matches.
    """
    if isinstance(model_or_sites, list):
        sites = model_or_sites
        mt = model_type or ""
        return [s for s in sites if s.role == "final"] or _select_final(sites, arch.by_model_type(mt), strict=True)
    sites = find_norms(model_or_sites)
    found = [s for s in sites if s.role == "final"]
    if not found:
        mt = _model_type(model_or_sites)
        record = arch.by_model_type(mt)
        rules = [r.pattern for r in record.final_rules] if record is not None and record.final_rules else list(
            arch.GENERIC_FINAL_NAMES)
        raise UnknownNormError(
            f"model type {mt!r}: no final norm found (rules: {rules}); norm sites: {[s.path for s in sites][:20]}"
        )
    return found


def _select_final(sites: list[Site], record: Architecture | None, *, strict: bool = False) -> list[Site]:
    chosen: list[Site] = []
    if record is not None and record.final_rules:
        for rule in record.final_rules:
            if rule.last_block:
                if chosen:
                    continue  # a last-block rule is a fallback for the rules before it (OPT post-LN)
                hits = [s for s in sites if s.block is not None and re.search(rule.pattern, block_of(s.path)[1])]
                for stack in dict.fromkeys(s.stack for s in hits):
                    in_stack = [s for s in hits if s.stack == stack]
                    top = max(s.block for s in in_stack if s.block is not None)
                    chosen.extend(s for s in in_stack if s.block == top)
            else:
                chosen.extend(s for s in sites if s.block is None and re.search(rule.pattern, s.path))
    else:
        by_stack: dict[str, Site] = {}
        for s in sites:
            if s.block is None and s.path.rsplit(".", 1)[-1] in arch.GENERIC_FINAL_NAMES:
                by_stack[s.stack] = s  # the last such norm of each stack
        chosen = list(by_stack.values())
    if strict and not chosen:
        name = record.name if record is not None else "unknown"
        raise UnknownNormError(f"architecture {name!r}: no final norm among {[s.path for s in sites][:20]}")
    return list(dict.fromkeys(chosen))


def _model_type(model: Any) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "model_type", "") or "")


def _default_stack(model: Any, record: Architecture | None) -> Stack:
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return ""
    if record is not None:
        return record.stack
    return "decoder" if _model_type(model) else ""


def _role_of(path: str, inner: str, block: int | None, post_ln: str | None) -> Role:
    if block is None:
        if re.search(arch.EMBEDDING_NAMES, path):
            return "embedding"
        return "other"
    if re.search(arch.QK_NAMES, inner):
        return "attention-qk"
    if post_ln is not None and re.search(post_ln, inner):
        return "block-output"
    return "block-input"


# --------------------------------------------------------------------------------------
# reading or probing one module
# --------------------------------------------------------------------------------------

_NORM_NAME = re.compile(r"norm", re.IGNORECASE)
_EPS_ATTRS = ("eps", "variance_epsilon", "epsilon", "layer_norm_eps")


def _read_or_probe(path: str, module: Any, errors: ProbeErrors) -> tuple[NormSpec | None, bool]:
    try:
        return NormSpec.from_module(module), False
    except UnknownNormError:
        pass
    except InputShapeError as exc:
        raise InputShapeError(f"{path}: {exc}") from exc
    if any(True for _ in module.children()):
        return None, False  # containers are not norms; their leaves are visited on their own
    import torch

    if isinstance(module, torch.nn.modules.batchnorm._NormBase):
        # BatchNorm / InstanceNorm normalise over the batch or spatial axes, not each row's last
        # axis: in eval mode they are a per-channel affine map, outside the theory; not sites
        return None, False
    named = bool(_NORM_NAME.search(type(module).__name__))
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    one_d_weight = weight is not None and weight.ndim == 1 and all(p.ndim == 1 for p in params.values())
    if not named and not one_d_weight:
        return None, False
    d = _probe_size(module)
    if d is None or d < 2:
        if named and errors == "raise":
            raise UnknownNormError(
                f"{path} ({type(module).__name__}): looks like a norm but its normalised size is unknown "
                "(no 1-D weight, no normalized_shape); register it with deadir.register_norm_class, "
                "or pass errors='skip'"
            )
        return None, False
    try:
        spec = spec_from_probe(module, d)
    except Exception as exc:  # an arbitrary module's forward may reject a (n, d) probe in any way
        if named and errors == "raise":
            raise UnknownNormError(
                f"{path} ({type(module).__name__}): looks like a norm but could not be probed on (n, {d}) "
                f"inputs ({type(exc).__name__}: {exc}); register it with deadir.register_norm_class, "
                "or pass errors='skip'"
            ) from exc
        return None, False
    if spec is None:
        if named and errors == "raise":
            raise UnknownNormError(
                f"{path} ({type(module).__name__}): named like a norm but the probe is inconclusive "
                "(classify_norm kind 'other'); register it with deadir.register_norm_class, or pass errors='skip'"
            )
        return None, False
    if not named and spec.kind == "affine-only":
        return None, False  # a 1-D-weight module that does not normalise (a plain scale)
    return spec, True


def _probe_size(module: Any) -> int | None:
    weight = getattr(module, "weight", None)
    if weight is not None and getattr(weight, "ndim", 0) == 1:
        return int(weight.shape[0])
    shape = getattr(module, "normalized_shape", None)
    if shape is not None:
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(dims) == 1:
            return int(dims[0])
    return None


def spec_from_probe(module: Any, d: int, *, seed: int = 0) -> NormSpec | None:
    """Classify an unknown norm module by probing it and describe it as a NormSpec.

    The kind comes from :func:`deadir.classify_norm`. The effective scale γ and shift β
    are fitted per channel by least squares from a probe batch (y = γ·ẑ + β with ẑ the
    centred-and-normalised or RMS-normalised input, per the kind); when the module's own
    ``weight`` (or 1 + weight, Gemma style) agrees with the fit to 1e-3 relative, it is
    used exactly instead. Returns None when the probe is inconclusive (kind "other").

    Raises:
        whatever the module's forward raises on an (n, d) input of its dtype.
    """
    import torch

    result = classify_norm(module, d, seed=seed)
    params = list(module.parameters())
    dtype = params[0].dtype if params else torch.float32
    device = params[0].device if params else torch.device("cpu")
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((8 * d + 64, d)) * 3.0  # × 3: keeps ε (≲ 1e-5) negligible against the variance
    with torch.no_grad():
        y = as_float64(module(torch.from_numpy(x).to(device=device, dtype=dtype)), name="probe output")
    xq = as_float64(torch.from_numpy(x).to(dtype), name="probe input")  # the input the module really saw
    eps = next((float(getattr(module, a)) for a in _EPS_ATTRS if isinstance(getattr(module, a, None), float)), 0.0)
    name = f"{type(module).__name__} (probed)"
    stored = None if getattr(module, "weight", None) is None else as_float64(module.weight, name="weight")
    if result.kind == "mean-centring":
        if result.kernel_is_ones and not result.matches_inverse_scale and stored is not None:
            gamma, beta = _fit_affine(_normalise(xq * stored, "layernorm"), y)
            return NormSpec("scale-then-centre", stored, _nonzero(beta), eps, source=name)
        kind: Literal["layernorm", "groupnorm", "rmsnorm", "affine-only"] = "layernorm"
        gamma, beta = _fit_affine(_normalise(xq, "layernorm"), y)
    elif result.kind == "group-centring":
        groups = result.kernel_dim
        zg = _normalise(xq.reshape(-1, groups, d // groups), "layernorm").reshape(xq.shape)
        gamma, beta = _fit_affine(zg, y)
        weight, offset = _stored_or_fit(stored, gamma)
        return NormSpec("groupnorm", weight, _nonzero(beta), eps, weight_offset=offset, groups=groups, source=name)
    elif result.kind == "rms":
        kind = "rmsnorm"
        gamma, beta = _fit_affine(_normalise(xq, "rmsnorm"), y)
    elif result.kind == "none":  # the probe found no normalisation: an affine map
        kind = "affine-only"
        gamma, beta = _fit_affine(xq, y)
    else:
        return None
    weight, offset = _stored_or_fit(stored, gamma)
    return NormSpec(kind, weight, _nonzero(beta), eps, weight_offset=offset, d=d, source=name)


def _normalise(x: FloatArray, kind: str) -> FloatArray:
    if kind == "rmsnorm":
        return np.asarray(x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True)), dtype=np.float64)
    xc = x - x.mean(axis=-1, keepdims=True)
    return np.asarray(xc / np.sqrt(np.mean(xc * xc, axis=-1, keepdims=True)), dtype=np.float64)


def _fit_affine(z: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-channel least squares y_i ≈ γ_i z_i + β_i."""
    zc = z - z.mean(axis=0)
    gamma = np.sum(zc * (y - y.mean(axis=0)), axis=0) / np.sum(zc * zc, axis=0)
    beta = y.mean(axis=0) - gamma * z.mean(axis=0)
    return np.asarray(gamma, dtype=np.float64), np.asarray(beta, dtype=np.float64)


def _stored_or_fit(stored: FloatArray | None, gamma: FloatArray) -> tuple[FloatArray, float]:
    """The module's weight (offset 0 or 1) when it is the fitted scale to 1e-3, else the fit (offset 0).

    1e-3 relative: the fit's error is a few ulps of the module dtype (bfloat16: 4e-3 per
    entry, averaged over ≥ 8d + 64 samples) and a mismatch of kind is O(1).
    """
    scale = float(np.max(np.abs(gamma))) or 1.0
    if stored is not None and stored.shape == gamma.shape:
        for offset in (0.0, 1.0):
            if float(np.max(np.abs(stored + offset - gamma))) <= 1e-3 * scale:
                return stored, offset
    return gamma, 0.0


def _nonzero(beta: FloatArray) -> FloatArray | None:
    return None if float(np.max(np.abs(beta))) == 0.0 else beta


def sites_table(sites: Iterable[Site]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """(headers, rows) describing sites, for :func:`deadir.report.render_table`."""
    headers = ("path", "class", "kind", "d", "offset", "bias", "role", "stack", "block", "probed")
    rows = [
        (s.path, s.class_name, s.spec.kind, s.spec.size, s.spec.weight_offset, s.spec.bias is not None, s.role,
         s.stack or "-", s.block, s.probed)
        for s in sites
    ]
    return headers, rows

