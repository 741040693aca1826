"""Norm sites of an instantiated Hugging Face (or any torch) model, and its random-init twin.

* :func:`find_norms` walks ``model.named_modules()`` and returns a :class:`~deadir.sites.Site`
  for every normalisation layer: classes in the NormSpec table (torch LayerNorm / RMSNorm /
  GroupNorm and the Hugging Face classes of :mod:`deadir.hf_norms`) are read from their
  parameters; unknown classes that look like norms are classified by probing them with
  :func:`deadir.classify_norm` and reported with ``probed=True``.
* :func:`final_norm` picks the site(s) whose output is the model's final hidden state, from
  the table :data:`FINAL_NORMS` (one rule per architecture; see there).
* :func:`random_init_like` builds the same architecture at initialisation, no download.
* :func:`tiny_config` gives a tiny random-init configuration per family (tests, demos,
  ``deadir verify random:<model_type>``).

Roles (see :class:`~deadir.sites.Site`): "block-input" for pre-LN norms (including Llama's
``post_attention_layernorm``, which normalises the MLP's *input*), "block-output" for
post-LN norms (BERT/RoBERTa/MPNet's ``LayerNorm`` after the residual add, Gemma 2/3 and
OLMo 2's ``post_*_layernorm`` applied to a sublayer's output, OPT-350m style
``do_layer_norm_before=False``), "attention-qk" for q/k norms, "embedding" for norms of
the embeddings, "final" from :data:`FINAL_NORMS`, "other" for the rest (task heads).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

import deadir.hf_norms  # noqa: F401  (registers the Hugging Face norm classes)
from deadir.arrays import FloatArray, as_float64
from deadir.classify import classify_norm
from deadir.errors import InputShapeError, UnknownNormError
from deadir.norms import NormSpec
from deadir.sites import Role, Site, Stack

# --------------------------------------------------------------------------------------
# Architecture tables
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FinalRule:
    """Where the final norm of one stack sits.

    ``pattern`` is a regular expression matched (``re.search``) against the module path.
    With ``last_block=False`` it must match a norm outside the blocks (paths may carry a
    prefix such as ``model.`` or ``transformer.``). With ``last_block=True`` it is matched
    against the path *inside* a block (after the block index) and the site of the highest
    block index is taken — the post-LN encoders, whose last block ends in a LayerNorm. A
    last-block rule is a fallback: it applies only when the rules before it found nothing
    (OPT: ``decoder.final_layer_norm``, or with ``do_layer_norm_before=False`` the last block's).
    """

    pattern: str
    last_block: bool = False


_OUTSIDE = r"(^|\.)"

FINAL_NORMS: dict[str, tuple[FinalRule, ...]] = {
    # pre-LN decoders: a final norm after the last block
    "gpt2": (FinalRule(_OUTSIDE + r"ln_f$"),),
    "bloom": (FinalRule(_OUTSIDE + r"ln_f$"),),
    "falcon": (FinalRule(_OUTSIDE + r"ln_f$"),),
    "opt": (FinalRule(_OUTSIDE + r"decoder\.final_layer_norm$"), FinalRule(r"^final_layer_norm$", last_block=True)),
    "gpt_neox": (FinalRule(_OUTSIDE + r"final_layer_norm$"),),
    "phi": (FinalRule(_OUTSIDE + r"final_layernorm$"),),
    **{
        t: (FinalRule(_OUTSIDE + r"norm$"),)
        for t in ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
                  "gemma3_text", "olmo", "olmo2", "phi3")
    },
    # post-LN encoders: the last block's output LayerNorm
    "bert": (FinalRule(r"^output\.LayerNorm$", last_block=True),),
    "roberta": (FinalRule(r"^output\.LayerNorm$", last_block=True),),
    "mpnet": (FinalRule(r"^output\.LayerNorm$", last_block=True),),
    # vision
    "vit": (FinalRule(_OUTSIDE + r"layernorm$"),),
    "clip": (
        FinalRule(_OUTSIDE + r"text_model\.final_layer_norm$"),
        FinalRule(_OUTSIDE + r"vision_model\.post_layernorm$"),
    ),
    "clip_text_model": (FinalRule(_OUTSIDE + r"text_model\.final_layer_norm$"),),
    "clip_vision_model": (FinalRule(_OUTSIDE + r"vision_model\.post_layernorm$"),),
    # encoder-decoders: both stacks
    "whisper": (FinalRule(_OUTSIDE + r"encoder\.layer_norm$"), FinalRule(_OUTSIDE + r"decoder\.layer_norm$")),
    "t5": (FinalRule(_OUTSIDE + r"encoder\.final_layer_norm$"), FinalRule(_OUTSIDE + r"decoder\.final_layer_norm$")),
    # transformers 5 names the SigLIP tower vision_tower(.vision_model)?; 4.x named it vision_model
    "gemma3": (FinalRule(_OUTSIDE + r"language_model\.norm$"),
               FinalRule(r"(vision_tower\.(vision_model\.)?|vision_model\.)post_layernorm$")),
}
"""Final-norm rules per ``config.model_type``; other types use :data:`GENERIC_FINAL_NAMES`."""

GENERIC_FINAL_NAMES = ("ln_f", "norm", "final_layer_norm", "final_layernorm", "layer_norm", "layernorm",
                       "post_layernorm", "norm_f", "ln_final", "final_norm")
"""Leaf names of a norm outside the blocks that, for an unlisted architecture, is taken as final."""

POST_LN_BLOCK_NORMS: dict[str, str] = {
    "bert": r"LayerNorm$",
    "roberta": r"LayerNorm$",
    "mpnet": r"LayerNorm$",
    "gemma2": r"^post_(attention|feedforward)_layernorm$",
    "gemma3_text": r"^post_(attention|feedforward)_layernorm$",
    "gemma3": r"^post_(attention|feedforward)_layernorm$",
    "olmo2": r"^post_(attention|feedforward)_layernorm$",
}
"""In-block names of norms applied to a block's / sublayer's *output* (post-LN), per model type."""

_QK_NAMES = r"(^|\.)(q_norm|k_norm|q_layernorm|k_layernorm|query_norm|key_norm|q_ln|k_ln)$"
_EMBEDDING_NAMES = r"(^|\.)(embeddings?\.LayerNorm|word_embeddings_layernorm|emb_ln|embed_layer_norm|pre_layrnorm|" \
                   r"pre_layernorm|embedding_norm|ln_embed)$"

VISION_TYPES = frozenset({"vit", "deit", "beit", "dinov2", "clip_vision_model", "siglip_vision_model", "swin"})
ENCODER_TYPES = frozenset({"bert", "roberta", "mpnet", "electra", "distilbert", "deberta", "deberta-v2",
                           "xlm-roberta", "albert", "camembert"})

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
    model_type = _model_type(model)
    default_stack = _default_stack(model)
    post_ln = _post_ln_pattern(model, model_type)
    raw: list[tuple[str, NormSpec, bool, str]] = []
    for path, module in model.named_modules():
        if not path:
            continue
        spec, probed = _read_or_probe(path, module, errors)
        if spec is not None:
            raw.append((path, spec, probed, type(module).__name__))
    sites = []
    for path, spec, probed, class_name in raw:
        block, inner = _block_of(path)
        stack = _stack_of(path, model_type, default_stack)
        role = _role_of(path, inner, block, post_ln)
        sites.append(Site(path, spec, role, stack, block, class_name, probed))
    finals = {s.path for s in _select_final(sites, model_type)}
    return [dataclasses.replace(s, role="final") if s.path in finals else s for s in sites]


def final_norm(model_or_sites: Any, *, model_type: str | None = None) -> list[Site]:
    """The site(s) whose output is the final hidden state, per :data:`FINAL_NORMS`.

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
        return [s for s in sites if s.role == "final"] or _select_final(sites, mt, strict=True)
    sites = find_norms(model_or_sites)
    found = [s for s in sites if s.role == "final"]
    if not found:
        mt = _model_type(model_or_sites)
        raise UnknownNormError(
            f"model type {mt!r}: no final norm found (rules: "
            f"{[r.pattern for r in FINAL_NORMS.get(mt, ())] or list(GENERIC_FINAL_NAMES)}); "
            f"norm sites: {[s.path for s in sites][:20]}"
        )
    return found


def _select_final(sites: list[Site], model_type: str, *, strict: bool = False) -> list[Site]:
    rules = FINAL_NORMS.get(model_type)
    chosen: list[Site] = []
    if rules is not None:
        for rule in rules:
            if rule.last_block:
                if chosen:
                    continue  # a last-block rule is a fallback for the rules before it (OPT post-LN)
                hits = [s for s in sites if s.block is not None and re.search(rule.pattern, _block_of(s.path)[1])]
                for stack in dict.fromkeys(s.stack for s in hits):
                    in_stack = [s for s in hits if s.stack == stack]
                    top = max(s.block for s in in_stack if s.block is not None)
                    chosen.extend(s for s in in_stack if s.block == top)
            else:
                hits = [s for s in sites if s.block is None and re.search(rule.pattern, s.path)]
                chosen.extend(hits)
    else:
        by_stack: dict[str, Site] = {}
        for s in sites:
            if s.block is None and s.path.rsplit(".", 1)[-1] in GENERIC_FINAL_NAMES:
                by_stack[s.stack] = s  # the last such norm of each stack
        chosen = list(by_stack.values())
    if strict and not chosen:
        raise UnknownNormError(f"model type {model_type!r}: no final norm among {[s.path for s in sites][:20]}")
    return list(dict.fromkeys(chosen))


def _model_type(model: Any) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "model_type", "") or "")


def _default_stack(model: Any) -> Stack:
    config = getattr(model, "config", None)
    mt = _model_type(model)
    if getattr(config, "is_encoder_decoder", False):
        return ""
    if mt in VISION_TYPES:
        return "vision"
    if mt in ENCODER_TYPES:
        return "encoder"
    return "decoder" if mt else ""


def _post_ln_pattern(model: Any, model_type: str) -> str | None:
    if model_type == "opt" and not getattr(getattr(model, "config", None), "do_layer_norm_before", True):
        return r".*"  # OPT-350m: every block norm follows its residual add
    return POST_LN_BLOCK_NORMS.get(model_type)


def _block_of(path: str) -> tuple[int | None, str]:
    """(index of the first numeric path component, the path after it)."""
    parts = path.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return int(p), ".".join(parts[i + 1 :])
    return None, path


def _stack_of(path: str, model_type: str, default: Stack) -> Stack:
    parts = path.split(".")
    for p in parts:
        low = p.lower()
        if "vision" in low or low in ("visual", "vit"):
            return "vision"
        if low in ("text_model", "text_encoder"):
            return "text"
        if "audio" in low:
            return "audio"
    if model_type in VISION_TYPES:
        return "vision"
    for p in parts:
        if p == "encoder":
            return "encoder"
        if p in ("decoder", "language_model"):
            return "decoder"
    return default


def _role_of(path: str, inner: str, block: int | None, post_ln: str | None) -> Role:
    if block is None:
        if re.search(_EMBEDDING_NAMES, path):
            return "embedding"
        return "other"
    if re.search(_QK_NAMES, inner):
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
    if not named and spec.kind == "none":
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
        kind: Literal["layernorm", "groupnorm", "rmsnorm", "none"] = "layernorm"
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
    elif result.kind == "none":
        kind = "none"
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


# --------------------------------------------------------------------------------------
# random init and tiny configs
# --------------------------------------------------------------------------------------

_L = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
      "vocab_size": 128, "max_position_embeddings": 64}
_TOK = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}
_GQA = {**_L, "num_key_value_heads": 2, "head_dim": 8, **_TOK}

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 128, "n_positions": 64, **_TOK},
    "opt": {**_L, "ffn_dim": 64, "word_embed_proj_dim": 32, **_TOK},
    "gpt_neox": {**_L, **_TOK},
    "bloom": {"hidden_size": 32, "n_layer": 2, "n_head": 4, "vocab_size": 128, **_TOK},
    "falcon": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 128, **_TOK},
    "phi": {**_L, **_TOK},
    "bert": {**_L, "pad_token_id": 0},
    "roberta": {**_L, "max_position_embeddings": 72, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2},
    "mpnet": {**_L, "max_position_embeddings": 72, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2},
    "vit": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
            "image_size": 16, "patch_size": 4},
    "clip": {
        "text_config": {**_L, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2},
        "vision_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                          "intermediate_size": 64, "image_size": 16, "patch_size": 4},
        "projection_dim": 16,
    },
    "whisper": {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
                "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "vocab_size": 128,
                "num_mel_bins": 80, "max_source_positions": 50, "max_target_positions": 64,
                "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1},
    "llama": _GQA,
    "mistral": _GQA,
    "qwen2": _GQA,
    "qwen3": _GQA,
    "gemma": _GQA,
    "gemma2": _GQA,
    "gemma3_text": _GQA,
    "olmo2": _GQA,
    "olmo": _GQA,
    "t5": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 128,
           "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0},
}
"""Tiny random-init configurations (hidden 32, 2 layers, vocabulary 128) per ``model_type``."""


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def tiny_config(model_type: str, **overrides: Any) -> Any:
    """A tiny ``transformers`` config of ``model_type`` (see :data:`TINY_CONFIGS`), with overrides.

    Raises:
        UnknownNormError: ``model_type`` has no tiny configuration here.
    """
    if model_type not in TINY_CONFIGS:
        raise UnknownNormError(f"model type {model_type!r}: no tiny config; known: {sorted(TINY_CONFIGS)}")
    _offline()
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **{**TINY_CONFIGS[model_type], **overrides})


def random_init_like(model_or_config: Any, *, seed: int = 0) -> Any:
    """The same architecture at initialisation (no download), in eval mode.

    A model gives its own class, built from its config, in its parameters' dtype and on
    its device; a config gives ``AutoModel.from_config(config)`` (float32, CPU). The
    global torch RNG is left as it was: the seed only drives this initialisation.

    Raises:
        UnknownNormError: neither a transformers model (with ``.config``) nor a config.
    """
    import torch

    _offline()
    from transformers import AutoModel, PretrainedConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model_or_config, PretrainedConfig):
            model = AutoModel.from_config(model_or_config)  # type: ignore[no-untyped-call]
        elif isinstance(model_or_config, torch.nn.Module) and isinstance(
            getattr(model_or_config, "config", None), PretrainedConfig
        ):
            src: Any = model_or_config
            cls: Any = type(src)
            model = cls._from_config(src.config) if hasattr(cls, "_from_config") else cls(src.config)
            p = next(iter(src.parameters()), None)
            if p is not None:
                model = model.to(device=p.device, dtype=p.dtype)
        else:
            raise UnknownNormError(
                f"model_or_config: expected a transformers model or config, got {type(model_or_config).__name__}"
            )
    return model.eval()


def random_model(model_type: str, *, seed: int = 0, **overrides: Any) -> Any:
    """A tiny random-init model of ``model_type`` (base model class, eval mode, float32)."""
    return random_init_like(tiny_config(model_type, **overrides), seed=seed)


def sites_table(sites: Iterable[Site]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """(headers, rows) describing sites, for :func:`deadir.report.render_table`."""
    headers = ("path", "class", "kind", "d", "offset", "bias", "role", "stack", "block", "probed")
    rows = [
        (s.path, s.class_name, s.spec.kind, s.spec.size, s.spec.weight_offset, s.spec.bias is not None, s.role,
         s.stack or "-", s.block, s.probed)
        for s in sites
    ]
    return headers, rows


__all__ = [
    "FINAL_NORMS",
    "TINY_CONFIGS",
    "FinalRule",
    "LoadedModel",
    "final_norm",
    "find_norms",
    "load_model",
    "random_init_like",
    "random_model",
    "sites_table",
    "spec_from_probe",
    "tiny_config",
]


# --------------------------------------------------------------------------------------
# loading a local checkpoint
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model loaded by :func:`load_model`, its tokenizer (or None) and where it came from."""

    model: Any
    tokenizer: Any
    source: str


def load_model(path: str, *, dtype: Any = None, device: str = "cpu", seed: int = 0) -> LoadedModel:
    """Load a model for verification, offline.

    ``path`` is ``random:<model_type>`` (a tiny random-init model, :data:`TINY_CONFIGS`), a
    local folder with config.json and safetensors (``AutoModel.from_pretrained(folder,
    local_files_only=True)``), or a ``.gguf`` file (``AutoModelForCausalLM.from_pretrained(folder,
    gguf_file=name)``, of which the base model is returned), or a CTranslate2 Whisper
    ``model.bin`` or its folder (:func:`deadir.whisper_ct2.load_ctranslate2_whisper`). Pickled
    weights are refused, never loaded. The tokenizer is loaded from the same place when it is
    there (else None). ``dtype`` is a torch dtype or its name.
    ``device`` is a torch device, or ``"auto"``: accelerate places the layers over every
    GPU and then the host (``device_map="auto"``), for models larger than one device; the
    forward's hooks move activations between devices and deadir's accumulators follow.

    Raises:
        CheckpointError: the path does not exist, is not a checkpoint, or fails to load (named).
        UnknownNormError: ``random:`` with a model type that has no tiny config.
    """
    import torch

    from deadir.errors import CheckpointError

    _offline()
    tdtype = None
    if dtype is not None:
        tdtype = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype), None)
        if not isinstance(tdtype, torch.dtype):
            raise CheckpointError(f"dtype: {dtype!r} is not a torch dtype")
    if path.startswith("random:"):
        model = random_model(path.removeprefix("random:"), seed=seed)
        if tdtype is not None:
            model = model.to(dtype=tdtype)
        model = _dispatch_auto(model) if device == "auto" else model.to(device)
        return LoadedModel(model, None, f"{path} (tiny random-init config, seed {seed})")
    from pathlib import Path

    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    kwargs: dict[str, Any] = {"local_files_only": True}
    if tdtype is not None:
        kwargs["dtype"] = tdtype
    if device == "auto":
        kwargs["device_map"] = "auto"
    from deadir.io import detect_format
    from deadir.whisper_ct2 import ctranslate2_whisper_tokenizer, load_ctranslate2_whisper

    # refuses pickled weights and unknown files before transformers sees them
    if detect_format(p) == "ctranslate2":  # Whisper's model.bin (or its folder): a flat binary, not pickle
        whisper: Any = load_ctranslate2_whisper(p)
        model = whisper.to(tdtype) if tdtype is not None else whisper
        folder = p.parent if p.is_file() else p
        tokenizer = ctranslate2_whisper_tokenizer(folder) if (folder / "tokenizer.json").is_file() else None
        model = _dispatch_auto(model) if device == "auto" else model.to(device)
        return LoadedModel(model.eval(), tokenizer, str(p))
    try:
        if p.is_file() and p.suffix == ".gguf":
            full = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, **kwargs)
            model = getattr(full, "base_model", full)
            tok_kwargs: dict[str, Any] = {"gguf_file": p.name}
            folder = p.parent
        elif p.is_dir():
            if not (p / "config.json").is_file():
                raise CheckpointError(f"{path}: folder has no config.json")
            # safetensors only: a folder with nothing but a pickled pytorch_model.bin is refused, never unpickled
            model = AutoModel.from_pretrained(str(p), use_safetensors=True, **kwargs)
            tok_kwargs, folder = {}, p
        else:
            raise CheckpointError(f"{path}: expected a folder with config.json and safetensors, or a .gguf file")
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        raise CheckpointError(f"{path}: could not be loaded ({type(exc).__name__}: {exc})") from exc
    tokenizer = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **tok_kwargs)
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        tokenizer = None  # no offline tokenizer: make_inputs falls back to its synthetic distribution
    if device != "auto":  # an accelerate-dispatched model is already placed
        model = model.to(device)
    return LoadedModel(model.eval(), tokenizer, str(p))


def _dispatch_auto(model: Any) -> Any:
    """Place ``model`` with accelerate's automatic device map (GPUs first, then the host)."""
    from accelerate import dispatch_model, infer_auto_device_map

    return dispatch_model(model, device_map=infer_auto_device_map(model))
