"""The γ-only read: every normalisation site of a checkpoint from its norm tensors alone.

``scan(path)`` lists the tensors of a checkpoint from its headers, picks the norm
tensors by the architecture's naming (tables below), reads those and nothing else,
and reports per site the predicted dead direction v = γ⁻¹/‖γ⁻¹‖ (mean-centring kinds),
or "no kernel" (RMSNorm), the spread of |γ|, dead channels and degenerate (zero) scales.
No model is instantiated, and neither time nor memory depends on the size of the
matmul weights: only the norm tensors' bytes are read (``ScanReport.bytes_read``).

Naming tables
-------------
Hugging Face safetensors (the tensor name minus ``.weight`` is the module path; any
leading prefix such as ``model.``, ``transformer.``, ``bert.`` is accepted). ``N`` is the
block index. Roles follow :mod:`deadir.sites`: bi = block-input, bo = block-output,
qk = attention-qk, emb = embedding, fin = final.

========================  =======  ========  ==========================================================
model_type                kind     scale     sites
========================  =======  ========  ==========================================================
gpt2                      LN       γ         h.N.ln_1, h.N.ln_2, h.N.ln_cross_attn (bi); ln_f (fin)
opt                       LN       γ         layers.N.self_attn_layer_norm, layers.N.final_layer_norm (bi;
                                             bo when do_layer_norm_before is false); decoder.final_layer_norm (fin;
                                             without it, the last block's final_layer_norm)
gpt_neox                  LN       γ         layers.N.input_layernorm, layers.N.post_attention_layernorm (bi);
                                             final_layer_norm (fin)
bloom                     LN       γ         word_embeddings_layernorm (emb); h.N.input_layernorm,
                                             h.N.post_attention_layernorm (bi); ln_f (fin)
falcon                    LN       γ         h.N.input_layernorm, h.N.post_attention_layernorm, h.N.ln_attn,
                                             h.N.ln_mlp (bi); ln_f (fin)
phi                       LN       γ         layers.N.input_layernorm (bi); layers.N.self_attn.{q,k}_layernorm
                                             (qk); final_layernorm (fin)
bert, roberta             LN       γ         embeddings.LayerNorm (emb); encoder.layer.N.attention.output.LayerNorm,
                                             encoder.layer.N.output.LayerNorm (bo; the last block's is fin);
                                             cls.predictions.transform.LayerNorm, lm_head.layer_norm (other)
mpnet                     LN       γ         embeddings.LayerNorm (emb); encoder.layer.N.attention.LayerNorm,
                                             encoder.layer.N.output.LayerNorm (bo; the last block's is fin);
                                             lm_head.layer_norm (other)
vit                       LN       γ         {encoder.layer,layers}.N.layernorm_{before,after} (bi); layernorm (fin)
clip                      LN       γ         {text,vision}_model.encoder.layers.N.layer_norm{1,2} (bi);
                                             text_model.final_layer_norm, vision_model.post_layernorm (fin);
                                             vision_model.pre_layrnorm (emb)
whisper                   LN       γ         {encoder,decoder}.layers.N.{self_attn_layer_norm,encoder_attn_layer_norm,
                                             final_layer_norm} (bi); {encoder,decoder}.layer_norm (fin)
llama, mistral, qwen2     RMS      γ         layers.N.input_layernorm, layers.N.post_attention_layernorm (bi);
                                             norm (fin)
qwen3                     RMS      γ         as llama + layers.N.self_attn.{q,k}_norm (qk)
gemma                     RMS      1 + w     as llama
gemma2                    RMS      1 + w     layers.N.input_layernorm, .pre_feedforward_layernorm (bi);
                                             layers.N.post_attention_layernorm, .post_feedforward_layernorm (bo);
                                             norm (fin)
gemma3_text               RMS      1 + w     as gemma2 + layers.N.self_attn.{q,k}_norm (qk)
gemma3                    RMS/LN   1 + w/γ   gemma3_text for the language model; SigLIP vision tower
                                             vision_tower[.vision_model] (LN: encoder.layers.N.layer_norm{1,2} bi,
                                             post_layernorm fin, head.layernorm other);
                                             multi_modal_projector.mm_soft_emb_norm (RMS 1 + w, other)
t5 (mt5, umt5)            RMS      γ         {encoder,decoder}.block.N.layer.M.layer_norm (bi);
                                             {encoder,decoder}.final_layer_norm (fin)
olmo2                     RMS      γ         layers.N.post_attention_layernorm, .post_feedforward_layernorm (bo);
                                             layers.N.self_attn.{q,k}_norm (qk); norm (fin)
========================  =======  ========  ==========================================================

GGUF (llama.cpp naming; kind from ``general.architecture``): ``token_embd_norm`` (emb),
``output_norm`` (fin), ``blk.N.attn_norm``, ``blk.N.attn_norm_2``, ``blk.N.ffn_norm`` (bi),
``blk.N.post_attention_norm``, ``blk.N.post_ffw_norm``, ``blk.N.attn_output_norm``,
``blk.N.layer_output_norm`` (bo; the last block's is fin when there is no ``output_norm``),
``blk.N.attn_{q,k}_norm`` (qk), ``enc.blk.N.{attn,ffn}_norm``,
``dec.blk.N.{attn,cross_attn,ffn}_norm`` (bi), ``enc.output_norm``, ``dec.output_norm`` (fin).
GGUF files of the Gemma family store the *effective* scale 1 + w (llama.cpp's converter
adds 1 to every ``*norm.weight``), while Hugging Face safetensors store w. Sites read from
such a GGUF are given weight = stored − 1 and weight_offset = 1 (exact in float64 for float32
values), so their NormSpec equals the one the Hugging Face checkpoint gives.

CTranslate2 Whisper (``model.bin``): ``{encoder,decoder}/layer_N/self_attention/layer_norm``,
``decoder/layer_N/attention/layer_norm``, ``{encoder,decoder}/layer_N/ffn/layer_norm`` (bi),
``{encoder,decoder}/layer_norm`` (fin); scale ``gamma``, shift ``beta``; ε is not stored
(Whisper's 1e-5).

Roles and stacks agree with :func:`deadir.models.find_norms` on the same model (tested for
every Hugging Face family above on a saved random-init checkpoint). Stacks: "decoder" for
decoder-only models, "encoder" for BERT-likes, "encoder"/"decoder" by path for Whisper and
T5, "text"/"vision" for CLIP, "vision" for ViT and Gemma 3's SigLIP tower.

Anything else that looks like a norm (a name component containing "norm" or starting
with "ln", a 1-D scale of the hidden size, or any size for q/k norms) and is not in the
table is still reported, marked ``guessed`` with the evidence for its kind, never dropped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from deadir.arrays import FloatArray, as_float64
from deadir.direction import dead_channels, inverse_scale_direction, live_fraction
from deadir.errors import CheckpointError, DeadirError, DegenerateScaleError, InputShapeError
from deadir.io import Checkpoint, TensorInfo, open_checkpoint
from deadir.io.gguf import check_hidden_norm_lengths
from deadir.norms import NormKind, NormSpec
from deadir.report import dumps, render_table
from deadir.sites import Role, Site, Stack

__all__ = [
    "DEFAULT_DEAD_REL_TOL",
    "DEFAULT_MAX_ANGLE",
    "BaselineError",
    "Change",
    "ScanReport",
    "ScanSite",
    "compare_to_baseline",
    "load_baseline",
    "plot_scan",
    "scan",
    "site_angle",
]

DEFAULT_DEAD_REL_TOL = 1e-5
"""A channel is dead when |γᵢ| ≤ 1e-5 · median |γ|. Why this value: a normalised coordinate obeys
|zᵢ| ≤ √(d−1), so such a channel's output |γᵢzᵢ| stays below 1e-5·√(d−1) median gains, which is
under one float16 rounding unit (2⁻¹¹ ≈ 4.9e-4) of a median channel for every d ≤ 2400: in a
half-precision forward the channel outputs β_i and eᵢ is a null direction (T6). The real
checkpoints of shared/CHECKPOINTS.md separate cleanly at this threshold: MPNet's four dead
channels lie at ≤ 4.4e-6 of the median with the next at 0.38, MiniLM's three at ≤ 2.3e-9
with the next at 0.39, while the smallest live RMSNorm gains (SmolLM2, Qwen2.5, Gemma 3) lie
at ≥ 1.6e-4."""

DEFAULT_MAX_ANGLE = 1e-3
"""Baseline gate: a kernel direction that turned by more than 1e-3 rad (0.057°) has changed.
Why this value: the same γ gives angle 0 exactly (JSON round-trips float64). Perturbing every
γᵢ by a relative error ≤ δ turns v = γ⁻¹/‖γ⁻¹‖ by at most ≈ δ, so re-saving γ in float16
(δ = 2⁻¹¹ ≈ 4.9e-4) stays under the threshold while a bfloat16 cast (2⁻⁹ ≈ 2e-3) or any
real edit of γ is flagged."""


class BaselineError(DeadirError, ValueError):
    """A ``--baseline`` file is missing, not JSON, or not a scan report."""


Reader = Callable[[Sequence[str]], dict[str, FloatArray]]


# ----------------------------------------------------------------------------- naming tables


@dataclasses.dataclass(frozen=True)
class _Rule:
    """One naming rule: a regex fully matching a site prefix, and what the site is."""

    pattern: re.Pattern[str]
    role: Role
    stack: Stack | None = None  # None: "encoder" if the path has an encoder component, else "decoder"
    kind: NormKind | None = None  # None: the architecture's kind
    weight_offset: float | None = None
    eps_keys: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class _Arch:
    kind: NormKind
    weight_offset: float
    eps_keys: tuple[str, ...]
    eps_default: float
    rules: tuple[_Rule, ...]
    stack: Stack = "decoder"
    pre_ln_flag: str | None = None  # config flag that, when false, makes block norms post-LN
    # post-LN stacks end in a block: the highest block's site matching this is "final" when
    # the stack has no final norm of its own (as deadir.models.FINAL_NORMS does)
    last_block_final: str | None = None


_ANY = r"(?:.*\.)?"
_N = r"(?P<block>\d+)"


def _r(pattern: str, role: Role, stack: Stack | None = None, **kw: Any) -> _Rule:
    return _Rule(re.compile(_ANY + pattern), role, stack, **kw)


_LLAMA_RULES = (
    _r(rf"layers\.{_N}\.input_layernorm", "block-input"),
    _r(rf"layers\.{_N}\.post_attention_layernorm", "block-input"),
    _r(r"norm", "final"),
)
_QK_RULES = (_r(rf"layers\.{_N}\.self_attn\.(?:q|k)_norm", "attention-qk"),)
_GEMMA2_RULES = (
    _r(rf"layers\.{_N}\.input_layernorm", "block-input"),
    _r(rf"layers\.{_N}\.pre_feedforward_layernorm", "block-input"),
    _r(rf"layers\.{_N}\.post_attention_layernorm", "block-output"),
    _r(rf"layers\.{_N}\.post_feedforward_layernorm", "block-output"),
    _r(r"norm", "final"),
)
_BERT_RULES = (
    _r(r"embeddings\.LayerNorm", "embedding"),
    _r(rf"encoder\.layer\.{_N}\.attention\.output\.LayerNorm", "block-output"),
    _r(rf"encoder\.layer\.{_N}\.output\.LayerNorm", "block-output"),
    _r(r"cls\.predictions\.transform\.LayerNorm", "other"),
    _r(r"lm_head\.layer_norm", "other"),
)
_SIGLIP_EPS = ("vision_config.layer_norm_eps",)
_BERT_LAST = r"(?:.*\.)?encoder\.layer\.\d+\.output\.LayerNorm"
_GGUF_LAST = r"blk\.\d+\.layer_output_norm"

HF_ARCHS: dict[str, _Arch] = {
    "gpt2": _Arch("layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, (
        _r(rf"h\.{_N}\.ln_1", "block-input"), _r(rf"h\.{_N}\.ln_2", "block-input"),
        _r(rf"h\.{_N}\.ln_cross_attn", "block-input"), _r(r"ln_f", "final"),
    )),
    "opt": _Arch("layernorm", 0.0, (), 1e-5, (
        _r(rf"layers\.{_N}\.self_attn_layer_norm", "block-input"),
        _r(rf"layers\.{_N}\.final_layer_norm", "block-input"),
        _r(r"decoder\.final_layer_norm", "final"),
    ), pre_ln_flag="do_layer_norm_before", last_block_final=r"(?:.*\.)?layers\.\d+\.final_layer_norm"),
    "gpt_neox": _Arch("layernorm", 0.0, ("layer_norm_eps",), 1e-5, (
        _r(rf"layers\.{_N}\.input_layernorm", "block-input"),
        _r(rf"layers\.{_N}\.post_attention_layernorm", "block-input"),
        _r(r"final_layer_norm", "final"),
    )),
    "bloom": _Arch("layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, (
        _r(r"word_embeddings_layernorm", "embedding"),
        _r(rf"h\.{_N}\.input_layernorm", "block-input"), _r(rf"h\.{_N}\.post_attention_layernorm", "block-input"),
        _r(r"ln_f", "final"),
    )),
    "falcon": _Arch("layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, (
        _r(rf"h\.{_N}\.(?:input_layernorm|post_attention_layernorm|ln_attn|ln_mlp)", "block-input"),
        _r(r"ln_f", "final"),
    )),
    "phi": _Arch("layernorm", 0.0, ("layer_norm_eps",), 1e-5, (
        _r(rf"layers\.{_N}\.input_layernorm", "block-input"),
        _r(rf"layers\.{_N}\.self_attn\.(?:q|k)_layernorm", "attention-qk"),
        _r(r"final_layernorm", "final"),
    )),
    "bert": _Arch("layernorm", 0.0, ("layer_norm_eps",), 1e-12, _BERT_RULES, stack="encoder",
                  last_block_final=_BERT_LAST),
    "roberta": _Arch("layernorm", 0.0, ("layer_norm_eps",), 1e-12, _BERT_RULES, stack="encoder",
                     last_block_final=_BERT_LAST),
    "mpnet": _Arch("layernorm", 0.0, ("layer_norm_eps",), 1e-12, (
        _r(r"embeddings\.LayerNorm", "embedding"),
        _r(rf"encoder\.layer\.{_N}\.attention\.LayerNorm", "block-output"),
        _r(rf"encoder\.layer\.{_N}\.output\.LayerNorm", "block-output"),
        _r(r"lm_head\.layer_norm", "other"),
    ), stack="encoder", last_block_final=_BERT_LAST),
    "vit": _Arch("layernorm", 0.0, ("layer_norm_eps",), 1e-12, (
        _r(rf"(?:encoder\.layer|layers)\.{_N}\.layernorm_(?:before|after)", "block-input"),
        _r(r"layernorm", "final"),
    ), stack="vision"),
    "clip": _Arch("layernorm", 0.0, ("layer_norm_eps",), 1e-5, (
        _r(rf"text_model\.encoder\.layers\.{_N}\.layer_norm[12]", "block-input", "text",
           eps_keys=("text_config.layer_norm_eps",)),
        _r(r"text_model\.final_layer_norm", "final", "text", eps_keys=("text_config.layer_norm_eps",)),
        _r(r"vision_model\.pre_layrnorm", "embedding", "vision", eps_keys=("vision_config.layer_norm_eps",)),
        _r(rf"vision_model\.encoder\.layers\.{_N}\.layer_norm[12]", "block-input", "vision",
           eps_keys=("vision_config.layer_norm_eps",)),
        _r(r"vision_model\.post_layernorm", "final", "vision", eps_keys=("vision_config.layer_norm_eps",)),
    )),
    "whisper": _Arch("layernorm", 0.0, (), 1e-5, (
        _r(rf"(?:encoder|decoder)\.layers\.{_N}\.(?:self_attn_layer_norm|encoder_attn_layer_norm|final_layer_norm)",
           "block-input", None),
        _r(r"(?:encoder|decoder)\.layer_norm", "final", None),
    )),
    "llama": _Arch("rmsnorm", 0.0, ("rms_norm_eps",), 1e-6, _LLAMA_RULES),
    "mistral": _Arch("rmsnorm", 0.0, ("rms_norm_eps",), 1e-6, _LLAMA_RULES),
    "qwen2": _Arch("rmsnorm", 0.0, ("rms_norm_eps",), 1e-6, _LLAMA_RULES),
    "qwen3": _Arch("rmsnorm", 0.0, ("rms_norm_eps",), 1e-6, _LLAMA_RULES + _QK_RULES),
    "gemma": _Arch("rmsnorm", 1.0, ("rms_norm_eps",), 1e-6, _LLAMA_RULES),
    "gemma2": _Arch("rmsnorm", 1.0, ("rms_norm_eps",), 1e-6, _GEMMA2_RULES),
    "gemma3_text": _Arch("rmsnorm", 1.0, ("rms_norm_eps",), 1e-6, _GEMMA2_RULES + _QK_RULES),
    "gemma3": _Arch("rmsnorm", 1.0, ("text_config.rms_norm_eps", "rms_norm_eps"), 1e-6, (
        _r(rf"vision_tower\.(?:vision_model\.)?encoder\.layers\.{_N}\.layer_norm[12]", "block-input", "vision",
           kind="layernorm", weight_offset=0.0, eps_keys=_SIGLIP_EPS),
        _r(r"vision_tower\.(?:vision_model\.)?post_layernorm", "final", "vision", kind="layernorm",
           weight_offset=0.0, eps_keys=_SIGLIP_EPS),
        _r(r"vision_tower\.(?:vision_model\.)?head\.layernorm", "other", "vision", kind="layernorm",
           weight_offset=0.0, eps_keys=_SIGLIP_EPS),
        _r(r"multi_modal_projector\.mm_soft_emb_norm", "other", eps_keys=_SIGLIP_EPS),
        *_GEMMA2_RULES, *_QK_RULES,
    )),
    "t5": _Arch("rmsnorm", 0.0, ("layer_norm_epsilon",), 1e-6, (
        _r(rf"(?:encoder|decoder)\.block\.{_N}\.layer\.\d+\.layer_norm", "block-input", None),
        _r(r"(?:encoder|decoder)\.final_layer_norm", "final", None),
    )),
    "olmo2": _Arch("rmsnorm", 0.0, ("rms_norm_eps",), 1e-6, (
        _r(rf"layers\.{_N}\.post_attention_layernorm", "block-output"),
        _r(rf"layers\.{_N}\.post_feedforward_layernorm", "block-output"),
        *_QK_RULES,
        _r(r"norm", "final"),
    )),
}  # fmt: skip
_HF_ALIASES = {"mt5": "t5", "umt5": "t5", "xlm-roberta": "roberta", "camembert": "roberta"}

# GGUF: one naming for every architecture; the kind comes from general.architecture.
_GGUF_RULES = (
    _Rule(re.compile(r"token_embd_norm"), "embedding"),
    _Rule(re.compile(r"output_norm"), "final"),
    _Rule(re.compile(rf"blk\.{_N}\.(?:attn_norm|attn_norm_2|ffn_norm)"), "block-input"),
    _Rule(re.compile(rf"blk\.{_N}\.(?:post_attention_norm|post_ffw_norm|attn_output_norm|layer_output_norm)"),
          "block-output"),
    _Rule(re.compile(rf"blk\.{_N}\.attn_(?:q|k)_norm"), "attention-qk"),
    _Rule(re.compile(rf"enc\.blk\.{_N}\.(?:attn_norm|ffn_norm)"), "block-input", "encoder"),
    _Rule(re.compile(rf"dec\.blk\.{_N}\.(?:attn_norm|cross_attn_norm|ffn_norm)"), "block-input", "decoder"),
    _Rule(re.compile(r"enc\.output_norm"), "final", "encoder"),
    _Rule(re.compile(r"dec\.output_norm"), "final", "decoder"),
)  # fmt: skip
_GGUF_RMS = ("llama", "mistral", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "olmo2", "phi3", "t5", "t5encoder",
             "granite", "deepseek2", "command-r", "internlm2", "minicpm", "exaone")  # fmt: skip
_GGUF_GEMMA = ("gemma", "gemma2", "gemma3")  # store 1 + w
_GGUF_LN = ("gpt2", "gptneox", "bloom", "falcon", "phi2", "bert", "nomic-bert", "jina-bert-v2", "starcoder",
            "stablelm", "mpt", "gptj")  # fmt: skip
_GGUF_ENCODERS = ("bert", "nomic-bert", "jina-bert-v2")

_CT2_WHISPER_RULES = (
    _Rule(re.compile(rf"(?:encoder|decoder)/layer_{_N}/(?:self_attention|attention|ffn)/layer_norm"), "block-input"),
    _Rule(re.compile(r"(?:encoder|decoder)/layer_norm"), "final"),
)

_WEIGHT_LEAVES = (".weight", "/gamma", ".gamma", ".scale")
_BIAS_LEAVES = {".weight": ".bias", "/gamma": "/beta", ".gamma": ".beta", ".scale": ".bias"}
_HIDDEN_KEYS = ("hidden_size", "d_model", "n_embd", "dim", "embed_dim", "text_config.hidden_size")


def _split_leaf(name: str) -> tuple[str, str] | None:
    for leaf in _WEIGHT_LEAVES:
        if name.endswith(leaf):
            return name[: -len(leaf)], leaf
    return None


def _cfg_get(config: Mapping[str, Any], dotted: str) -> Any:
    """config[dotted] (GGUF keys contain dots), else the nested lookup a.b.c."""
    if dotted in config:
        return config[dotted]
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _looks_like_norm(prefix: str) -> bool:
    parts = re.split(r"[./]", prefix.lower())
    return any("norm" in p or re.fullmatch(r"ln(?:_?[a-z0-9]+)?", p) is not None for p in parts)


def _stack_from_path(path: str, default: Stack) -> Stack:
    parts = re.split(r"[./]", path)
    if "encoder" in parts or "enc" in parts:
        return "encoder"
    if "decoder" in parts or "dec" in parts:
        return "decoder"
    return default


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True, eq=False)
class ScanSite:
    """One norm site of a scanned checkpoint and what γ alone says about it.

    Attributes:
        site: the :class:`deadir.sites.Site` (path = tensor-name prefix of the weight).
        weight_name, bias_name: the tensors read (bias_name None when there is none).
        stored_dtype: dtype of the stored weight ("F32", "F16", "BF16", ...).
        guessed: True when the site was found by the generic name pattern, not the table.
        kind_source: why the kind is what it is ("table", or the evidence for a guess).
        eps_source: the config key ε came from, or "default".
        kernel: "inverse-scale" (v = γ⁻¹/‖γ⁻¹‖, LayerNorm), "ones" (scale-then-centre),
            "per-group" (GroupNorm), "zero-scale" (LayerNorm with γᵢ = 0: each such eᵢ is
            null, γ⁻¹ undefined) or "none" (RMSNorm and no-centring kinds: no kernel).
        direction: v (float64 unit vector) when kernel == "inverse-scale", else None.
        degenerate: indices with effective scale exactly 0 (DegenerateScaleError caught).
        dead: indices with |γᵢ| ≤ dead_rel_tol · median |γ| (zeros included).
        live_fraction: ‖v on live channels‖ for mean-centring kinds, else None.
        gamma_median, gamma_min, gamma_max: of |effective γ|; gamma_argmin: its channel.
        spread: max |γ| / min |γ| (inf when some γᵢ = 0).
    """

    site: Site
    weight_name: str
    bias_name: str | None
    stored_dtype: str
    guessed: bool
    kind_source: str
    eps_source: str
    kernel: str
    direction: FloatArray | None
    degenerate: tuple[int, ...]
    dead: tuple[int, ...]
    live_fraction: float | None
    gamma_median: float
    gamma_min: float
    gamma_max: float
    gamma_argmin: int
    spread: float

    @property
    def kernel_predicted(self) -> bool:
        """Whether the theory predicts a kernel of the output covariance here (mean-centring kinds)."""
        return self.kernel != "none"

    @property
    def gamma(self) -> FloatArray:
        """Effective scale γ (= stored w + weight_offset), float64."""
        return self.site.spec.gamma

    def to_dict(self, *, with_direction: bool = True) -> dict[str, Any]:
        """JSON-ready description; ``direction`` is the full vector (needed by the baseline gate)."""
        out = self.site.to_dict()
        out.update(
            weight_name=self.weight_name, bias_name=self.bias_name, stored_dtype=self.stored_dtype,
            guessed=self.guessed, kind_source=self.kind_source, eps_source=self.eps_source,
            kernel=self.kernel, kernel_predicted=self.kernel_predicted, degenerate=list(self.degenerate),
            dead=list(self.dead), live_fraction=self.live_fraction, gamma_median=self.gamma_median,
            gamma_min=self.gamma_min, gamma_max=self.gamma_max, gamma_argmin=self.gamma_argmin,
            spread=self.spread, min_over_median=self.gamma_min / self.gamma_median if self.gamma_median else None,
        )  # fmt: skip
        if with_direction:
            out["direction"] = None if self.direction is None else self.direction.tolist()
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class ScanReport:
    """Every norm site of a checkpoint, read from γ alone.

    Attributes:
        source: the path scanned (or the model's class name).
        format: "safetensors", "safetensors-sharded", "gguf", "ctranslate2" or "model".
        arch: the architecture key used (model_type / general.architecture / "whisper"), or
            the raw name when it is not in the tables (then every site is guessed).
        arch_known: whether the naming table had the architecture.
        sites: the sites in natural name order (block 2 before block 10).
        dead_rel_tol: the relative threshold used for dead channels.
        n_tensors, bytes_total: all tensors in the checkpoint and their stored bytes.
        tensors_read, bytes_read: the tensors actually read and their stored bytes.
        elapsed_s: wall time of the scan in seconds (informational).
        warnings: things the reader had to assume (missing ε keys, guessed sites, ...).
    """

    source: str
    format: str
    arch: str
    arch_known: bool
    sites: tuple[ScanSite, ...]
    dead_rel_tol: float
    n_tensors: int
    bytes_total: int
    tensors_read: tuple[str, ...]
    bytes_read: int
    elapsed_s: float
    warnings: tuple[str, ...] = ()

    def site(self, path: str) -> ScanSite:
        """The site with this path (KeyError naming it if absent)."""
        for s in self.sites:
            if s.site.path == path:
                return s
        raise KeyError(f"no site {path!r} in the scan of {self.source}")

    def to_dict(self, *, with_direction: bool = True) -> dict[str, Any]:
        """JSON-ready report (the format ``--baseline`` reads back)."""
        return {
            "deadir_scan": 1,
            "source": self.source, "format": self.format, "arch": self.arch, "arch_known": self.arch_known,
            "dead_rel_tol": self.dead_rel_tol, "n_sites": len(self.sites), "n_tensors": self.n_tensors,
            "bytes_total": self.bytes_total, "bytes_read": self.bytes_read, "tensors_read": list(self.tensors_read),
            "elapsed_s": self.elapsed_s, "warnings": list(self.warnings),
            "sites": [s.to_dict(with_direction=with_direction) for s in self.sites],
        }  # fmt: skip

    def to_json(self) -> str:
        """Strict JSON of :meth:`to_dict`."""
        return dumps(self.to_dict())

    def render(self) -> str:
        """The per-site table for people."""
        headers = ("site", "role", "stack", "kind", "kernel", "d", "|γ| median", "min/median", "max/min",
                   "dead", "live", "note")  # fmt: skip
        rows = []
        for s in self.sites:
            spec = s.site.spec
            kind = spec.kind + (" (1+w)" if spec.weight_offset == 1.0 else "")
            kernel = {"inverse-scale": "γ⁻¹", "ones": "𝟙", "per-group": f"γ⁻¹ × {spec.groups} groups",
                      "zero-scale": f"e_i ({len(s.degenerate)} zero γ)", "none": "no kernel"}[s.kernel]  # fmt: skip
            notes = []
            if s.guessed:
                notes.append(f"guessed ({s.kind_source})")
            if s.eps_source == "default":
                notes.append("eps default")
            if s.degenerate and s.kernel == "none":
                notes.append(f"{len(s.degenerate)} zero γ: e_i null")
            rows.append((
                s.site.path, s.site.role, s.site.stack, kind, kernel, spec.size, s.gamma_median,
                s.gamma_min / s.gamma_median if s.gamma_median else None, s.spread,
                len(s.dead) if s.dead else "-", s.live_fraction if s.dead else "-", "; ".join(notes),
            ))  # fmt: skip
        title = (
            f"{self.source} ({self.format}, arch {self.arch}{'' if self.arch_known else ' — not in the tables'}): "
            f"{len(self.sites)} norm sites; read {len(self.tensors_read)} of {self.n_tensors} tensors, "
            f"{_human_bytes(self.bytes_read)} of {_human_bytes(self.bytes_total)}, in {self.elapsed_s * 1e3:.0f} ms; "
            f"dead = |γ| ≤ {self.dead_rel_tol:g}·median"
        )
        text = render_table(headers, rows, title=title)
        if self.warnings:
            text += "\n" + "\n".join(f"warning: {w}" for w in self.warnings)
        return text


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024.0
        if value < 1024.0 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


# ----------------------------------------------------------------------------- building sites


@dataclasses.dataclass
class _Candidate:
    prefix: str
    leaf: str
    weight: str
    bias: str | None
    role: Role
    stack: Stack
    block: int | None
    kind: NormKind
    weight_offset: float
    eps: float
    eps_source: str
    guessed: bool
    kind_source: str


def _eps_from(config: Mapping[str, Any], keys: Sequence[str], default: float, where: str) -> tuple[float, str]:
    """(ε, source): the first key present, else the default ("default" when keys were expected,
    "fixed by architecture" when the format stores no ε, as for Whisper and OPT)."""
    if not keys:
        return default, "fixed by architecture"
    for key in keys:
        value = _cfg_get(config, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise CheckpointError(f"{where}: config key {key!r} = {value!r} is not a finite ε ≥ 0")
        return float(value), key
    return default, "default"


def _candidates(
    infos: Mapping[str, TensorInfo],
    fmt: str,
    arch: str,
    config: Mapping[str, Any],
    where: str,
) -> tuple[list[_Candidate], bool, list[str]]:
    """Norm sites from the tensor names: table matches first, then generic guesses."""
    warnings: list[str] = []
    rules: tuple[_Rule, ...]
    default_stack: Stack = "decoder"
    pre_ln = True
    gguf_stores_effective = False
    last_block_final: str | None = None
    eps_keys: tuple[str, ...]
    kind: NormKind
    if fmt == "gguf":
        rules = _GGUF_RULES
        default_stack = "encoder" if arch in _GGUF_ENCODERS else "decoder"
        last_block_final = _GGUF_LAST
        if arch in _GGUF_GEMMA:
            kind, offset, known, gguf_stores_effective = "rmsnorm", 1.0, True, True
        elif arch in _GGUF_RMS:
            kind, offset, known = "rmsnorm", 0.0, True
        elif arch in _GGUF_LN:
            kind, offset, known = "layernorm", 0.0, True
        else:
            kind, offset, known = "layernorm", 0.0, False
        eps_keys = (f"{arch}.attention.layer_norm_rms_epsilon",) if kind == "rmsnorm" else (
            f"{arch}.attention.layer_norm_epsilon",)
        eps_default = 1e-6 if kind == "rmsnorm" else 1e-5
    elif fmt == "ctranslate2":
        known = arch == "whisper"
        rules = _CT2_WHISPER_RULES if known else ()
        kind, offset, eps_keys, eps_default = "layernorm", 0.0, (), 1e-5
    else:
        table = HF_ARCHS.get(_HF_ALIASES.get(arch, arch))
        known = table is not None
        if table is not None:
            rules, kind, offset = table.rules, table.kind, table.weight_offset
            eps_keys, eps_default, default_stack = table.eps_keys, table.eps_default, table.stack
            last_block_final = table.last_block_final
            if table.pre_ln_flag is not None and config.get(table.pre_ln_flag) is False:
                pre_ln = False
        else:
            rules, kind, offset, eps_keys, eps_default = (), "layernorm", 0.0, (), 1e-5

    out: list[_Candidate] = []
    claimed: set[str] = set()
    for name in infos:
        split = _split_leaf(name)
        if split is None:
            continue
        prefix, leaf = split
        for rule in rules:
            m = rule.pattern.fullmatch(prefix)
            if m is None:
                continue
            block = m.groupdict().get("block")
            role: Role = rule.role
            if not pre_ln and role == "block-input":
                role = "block-output"
            r_kind = rule.kind or kind
            r_offset = offset if rule.weight_offset is None else rule.weight_offset
            eps, eps_src = _eps_from(config, rule.eps_keys or eps_keys, eps_default, where)
            bias = prefix + _BIAS_LEAVES[leaf]
            out.append(_Candidate(
                prefix, leaf, name, bias if bias in infos else None, role,
                rule.stack or _stack_from_path(prefix, default_stack), None if block is None else int(block),
                r_kind, r_offset, eps, eps_src, False, "table",
            ))  # fmt: skip
            claimed.add(name)
            break
    if last_block_final is not None:
        _mark_last_block_final(out, re.compile(last_block_final))
    for c in out:
        if gguf_stores_effective:
            c.kind_source = "table (GGUF stores 1 + w)"
    missing = sorted({c.prefix for c in out if c.eps_source == "default"})
    if missing:
        warnings.append(f"ε not in the config for {len(missing)} site(s) (looked for "
                        f"{', '.join(eps_keys) or 'rule keys'}); used the architecture's default")

    # Generic pass: everything that looks like a norm scale and is not claimed.
    hidden = _hidden_size(config, arch)
    looks = {
        n: i for n, i in infos.items()
        if n not in claimed and (s := _split_leaf(n)) is not None and _looks_like_norm(s[0]) and len(i.shape) == 1
        and i.shape[0] > 0
    }  # fmt: skip
    if hidden is None and looks:
        hidden = Counter(i.shape[0] for i in looks.values()).most_common(1)[0][0]
    for name, info in looks.items():
        prefix, leaf = cast(tuple[str, str], _split_leaf(name))
        qk = re.search(r"(?:^|[._/])(?:q|k|attn_q|attn_k)_(?:norm|layernorm)$", prefix) is not None
        if info.shape[0] != hidden and not qk:
            continue
        bias = prefix + _BIAS_LEAVES[leaf]
        has_bias = bias in infos
        g_kind, g_offset, evidence = _guess_kind(prefix, has_bias, fmt, arch, config)
        eps, eps_src = _eps_from(config, _generic_eps_keys(fmt, arch, g_kind), 1e-6 if g_kind == "rmsnorm" else 1e-5,
                                 where)
        block_m = re.search(r"(?:^|[._/])(?:layers?|h|blk|block)[._/](\d+)(?:[._/]|$)", prefix)
        g_role: Role = "attention-qk" if qk else (
            "final" if block_m is None and "final" in prefix.lower() else "other")
        out.append(_Candidate(
            prefix, leaf, name, bias if has_bias else None, g_role, _stack_from_path(prefix, default_stack),
            int(block_m.group(1)) if block_m else None, g_kind, g_offset, eps, eps_src, True, evidence,
        ))  # fmt: skip
    if any(c.guessed for c in out):
        n_guess = sum(c.guessed for c in out)
        what = "architecture not in the naming tables" if not known else "not in the table for this architecture"
        warnings.append(f"{n_guess} site(s) found by name pattern only ({what}); their kind is a guess")
    out.sort(key=lambda c: _natural_key(c.prefix))  # layer 2 before layer 10, the same for every format
    return out, known, warnings


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p)


def _mark_last_block_final(cands: list[_Candidate], pattern: re.Pattern[str]) -> None:
    """In each stack without a final norm, the highest block's site matching ``pattern`` becomes final."""
    for stack in dict.fromkeys(c.stack for c in cands):
        in_stack = [c for c in cands if c.stack == stack]
        if any(c.role == "final" for c in in_stack):
            continue
        hits = [c for c in in_stack if c.block is not None and pattern.fullmatch(c.prefix)]
        if hits:
            top = max(c.block for c in hits if c.block is not None)
            for c in hits:
                if c.block == top:
                    c.role = "final"


def _generic_eps_keys(fmt: str, arch: str, kind: str) -> tuple[str, ...]:
    if fmt == "gguf":
        suffix = "layer_norm_rms_epsilon" if kind == "rmsnorm" else "layer_norm_epsilon"
        return (f"{arch}.attention.{suffix}",)
    if kind == "rmsnorm":
        return ("rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps")
    return ("layer_norm_eps", "layer_norm_epsilon")


def _guess_kind(prefix: str, has_bias: bool, fmt: str, arch: str, config: Mapping[str, Any]) -> tuple[
        NormKind, float, str]:
    """Kind of an unlisted norm from the evidence at hand, with the evidence named."""
    offset = 1.0 if fmt != "gguf" and "gemma" in arch else 0.0
    if "rms" in prefix.lower():
        return "rmsnorm", offset, "name says rms"
    if fmt == "ctranslate2":
        # CTranslate2's LayerNormSpec stores beta for LayerNorm and only gamma for RMSNorm
        return ("layernorm", 0.0, "CTranslate2: beta present") if has_bias else (
            "rmsnorm", 0.0, "CTranslate2: no beta")
    if has_bias:
        return "layernorm", 0.0, "has a bias"
    if fmt == "gguf":
        if f"{arch}.attention.layer_norm_rms_epsilon" in config:
            return "rmsnorm", 0.0, "config: GGUF has layer_norm_rms_epsilon"
        if f"{arch}.attention.layer_norm_epsilon" in config:
            return "layernorm", 0.0, "config: GGUF has layer_norm_epsilon"
    else:
        if _cfg_get(config, "rms_norm_eps") is not None or _cfg_get(config, "text_config.rms_norm_eps") is not None:
            return "rmsnorm", offset, "config: has rms_norm_eps"
        if _cfg_get(config, "layer_norm_eps") is not None or _cfg_get(config, "layer_norm_epsilon") is not None:
            return "layernorm", 0.0, "config: has layer_norm_eps"
    return "layernorm", 0.0, "no evidence: assumed LayerNorm"


def _hidden_size(config: Mapping[str, Any], arch: str) -> int | None:
    for key in (*_HIDDEN_KEYS, f"{arch}.embedding_length"):
        value = _cfg_get(config, key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _build_site(
    c: _Candidate,
    values: Mapping[str, FloatArray],
    infos: Mapping[str, TensorInfo],
    *,
    gguf_stores_effective: bool,
    dead_rel_tol: float,
    where: str,
    eps_override: float | None = None,
) -> ScanSite:
    w = np.asarray(values[c.weight], dtype=np.float64).reshape(-1)
    if w.ndim != 1 or w.size == 0 or len(infos[c.weight].shape) != 1:
        raise CheckpointError(f"{where}: norm tensor {c.weight!r} has shape {infos[c.weight].shape}, expected 1-D")
    bad = np.flatnonzero(~np.isfinite(w))
    if bad.size:
        raise CheckpointError(f"{where}: norm tensor {c.weight!r} has NaN or infinite entries at {bad[:20].tolist()}")
    b = None
    if c.bias is not None:
        b = np.asarray(values[c.bias], dtype=np.float64).reshape(-1)
        if b.shape != w.shape:
            raise CheckpointError(f"{where}: bias {c.bias!r} has shape {b.shape}, its weight {c.weight!r} {w.shape}")
        if not np.all(np.isfinite(b)):
            raise CheckpointError(f"{where}: norm bias {c.bias!r} has NaN or infinite entries")
    if gguf_stores_effective and c.weight_offset == 1.0:
        # GGUF holds 1 + w; store w with offset 1 like the HF checkpoint. Exact: a float32
        # value minus 1 is a float64 without rounding, and adding 1 back restores it.
        w = w - 1.0
    spec = NormSpec(c.kind, w, b, c.eps if eps_override is None else eps_override, c.weight_offset,
                    dtype=infos[c.weight].dtype.lower(), source="checkpoint tensor")  # fmt: skip
    site = Site(c.prefix, spec, c.role, c.stack, c.block, "checkpoint tensor", False)
    return _measure(site, c.weight, c.bias, infos[c.weight].dtype, c.guessed, c.kind_source,
                    c.eps_source if eps_override is None else "module", dead_rel_tol)  # fmt: skip


def _measure(
    site: Site, weight_name: str, bias_name: str | None, stored_dtype: str, guessed: bool, kind_source: str,
    eps_source: str, dead_rel_tol: float,
) -> ScanSite:
    spec = site.spec
    gamma = spec.gamma
    absg = np.abs(gamma)
    degenerate = tuple(int(i) for i in np.flatnonzero(gamma == 0.0))
    dead = tuple(int(i) for i in dead_channels(gamma, rel_tol=dead_rel_tol))
    direction: FloatArray | None = None
    live: float | None = None
    if spec.kind == "layernorm" or (spec.kind == "groupnorm" and spec.groups == 1):
        try:
            direction = inverse_scale_direction(gamma)
            kernel = "inverse-scale"
        except DegenerateScaleError as exc:  # γᵢ = 0: eᵢ null, γ⁻¹ undefined (T6)
            degenerate = tuple(exc.indices)
            kernel = "zero-scale"
        live = live_fraction(gamma, np.asarray(dead, dtype=np.intp))
    elif spec.kind == "groupnorm":
        kernel = "zero-scale" if degenerate else "per-group"
        live = live_fraction(gamma, np.asarray(dead, dtype=np.intp)) if not degenerate else 0.0
    elif spec.kind == "scale-then-centre":
        kernel, direction = "ones", np.full(spec.size, 1.0 / math.sqrt(spec.size))
    else:
        kernel = "none"
    gmin = float(absg.min())
    return ScanSite(
        site, weight_name, bias_name, stored_dtype, guessed, kind_source, eps_source, kernel, direction,
        degenerate, dead, live, float(np.median(absg)), gmin, float(absg.max()), int(np.argmin(absg)),
        float(absg.max()) / gmin if gmin > 0 else math.inf,
    )  # fmt: skip


# ----------------------------------------------------------------------------- sources


@dataclasses.dataclass
class _Source:
    format: str
    infos: Mapping[str, TensorInfo]
    config: dict[str, Any]
    read: Reader
    config_warning: str | None = None


def _read_tensors(checkpoint: Checkpoint, names: Sequence[str],
                  infos: Mapping[str, TensorInfo] | None = None) -> dict[str, FloatArray]:
    """All tensor reads of a safetensors / CTranslate2 checkpoint go through here (tests count what is asked for)."""
    return checkpoint.read(names)


def _open_file(path: str | os.PathLike[str]) -> _Source:
    checkpoint = open_checkpoint(path)  # one header walk for names, metadata and offsets
    if checkpoint.format == "gguf":
        return _Source(checkpoint.format, checkpoint.tensors, checkpoint.config,
                       lambda names: _read_tensors_gguf(checkpoint, names))
    warning = None
    if checkpoint.config_file is None:
        warning = ("no config.json next to the weights: architecture unknown "
                   f"({checkpoint.path.parent / 'config.json'} does not exist)")
    return _Source(checkpoint.format, checkpoint.tensors, checkpoint.config,
                   lambda names: _read_tensors(checkpoint, names, checkpoint.tensors), warning)


def _read_tensors_gguf(checkpoint: Checkpoint, names: Sequence[str]) -> dict[str, FloatArray]:
    """GGUF reads by offset (one positioned read of each tensor's own bytes), residual norms checked
    against ``<arch>.embedding_length`` first."""
    check_hidden_norm_lengths(checkpoint, names)
    return checkpoint.read(names)


def _arch_of(source: _Source, names: Mapping[str, Any]) -> str:
    if source.format == "gguf":
        arch = source.config.get("general.architecture")
        return str(arch) if isinstance(arch, str) else ""
    if source.format == "ctranslate2":
        return "whisper" if "encoder/conv1/weight" in names and any(n.startswith("decoder/") for n in names) else (
            "ctranslate2")
    model_type = source.config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise CheckpointError(f"config.json: model_type is {model_type!r}, expected a string")
    return model_type or ""


# ----------------------------------------------------------------------------- public entry


def architecture_norm_kind(arch: str) -> str | None:
    """The norm kind ("layernorm" / "rmsnorm") scan's tables give an architecture, or None if unknown.

    ``arch`` is a Hugging Face ``model_type`` (aliases included) or a GGUF architecture name;
    the answer comes from the same tables that :func:`scan` reads checkpoints with.
    """
    table = HF_ARCHS.get(_HF_ALIASES.get(arch, arch))
    if table is not None:
        return str(table.kind)
    if arch in _GGUF_RMS or arch in _GGUF_GEMMA:
        return "rmsnorm"
    if arch in _GGUF_LN:
        return "layernorm"
    return None


def scan(
    path_or_model: str | os.PathLike[str] | Any,
    *,
    arch: str | None = None,
    dead_rel_tol: float = DEFAULT_DEAD_REL_TOL,
) -> ScanReport:
    """Read every normalisation site of a checkpoint from its norm tensors alone.

    Args:
        path_or_model: a folder (config.json + model.safetensors or a sharded
            model.safetensors.index.json), a single .safetensors file, a .gguf file, a
            CTranslate2 Whisper model.bin (or its folder) — or an instantiated torch
            model, whose norm parameters are read instead (through deadir.find_norms).
        arch: override the architecture (a model_type / GGUF architecture name), e.g.
            for a bare .safetensors file without config.json.
        dead_rel_tol: dead channels are |γᵢ| ≤ dead_rel_tol · median |γ| (see
            :data:`DEFAULT_DEAD_REL_TOL`).

    Returns:
        A :class:`ScanReport`; zero scales are reported per site (``degenerate``), never raised.

    Raises:
        CheckpointError: missing path, unknown/pickled/corrupt/truncated file, an index
            pointing at a missing shard, a config with an invalid ε or model_type, a norm
            tensor that is not 1-D or holds NaN/inf, or a checkpoint with no norm tensors.
        InputShapeError: dead_rel_tol outside (0, 1).
    """
    if not (math.isfinite(dead_rel_tol) and 0.0 < dead_rel_tol < 1.0):
        raise InputShapeError(f"dead_rel_tol: must lie in (0, 1), got {dead_rel_tol!r}")
    t0 = time.perf_counter()
    if hasattr(path_or_model, "named_parameters"):
        return _scan_model(path_or_model, arch=arch, dead_rel_tol=dead_rel_tol, t0=t0)
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise CheckpointError(
            f"scan: expected a checkpoint path or a torch model, got {type(path_or_model).__name__}"
        )
    where = str(path_or_model)
    source = _open_file(path_or_model)
    arch_name = arch if arch is not None else _arch_of(source, source.infos)
    cands, known, warnings = _candidates(source.infos, source.format, arch_name, source.config, where)
    if source.config_warning:
        warnings.insert(0, source.config_warning)
    if not cands:
        raise CheckpointError(
            f"{where}: no norm tensors found among {len(source.infos)} tensors "
            f"(format {source.format}, architecture {arch_name or 'unknown'}); nothing to scan"
        )
    names = list(dict.fromkeys(n for c in cands for n in (c.weight, c.bias) if n is not None))
    values = source.read(names)
    gguf_effective = source.format == "gguf" and arch_name in _GGUF_GEMMA
    sites = tuple(
        _build_site(c, values, source.infos, gguf_stores_effective=gguf_effective, dead_rel_tol=dead_rel_tol,
                    where=where)
        for c in cands
    )  # fmt: skip
    return ScanReport(
        source=where, format=source.format, arch=arch_name or "unknown", arch_known=known, sites=sites,
        dead_rel_tol=dead_rel_tol, n_tensors=len(source.infos),
        bytes_total=sum(i.nbytes for i in source.infos.values() if i.alias_of is None),
        tensors_read=tuple(names), bytes_read=sum(source.infos[n].nbytes for n in names),
        elapsed_s=time.perf_counter() - t0, warnings=tuple(warnings),
    )  # fmt: skip


def _scan_model(model: Any, *, arch: str | None, dead_rel_tol: float, t0: float) -> ScanReport:
    """scan() of an instantiated model: the norm modules' parameters are read, no forward pass.

    With ``deadir.models.find_norms`` available (and no ``arch`` override) its sites are used,
    so scan and verify agree on an instantiated model (find_norms reads known norm classes
    from their parameters and only probes unknown norm-like modules); otherwise the parameter
    names go through the same naming tables as a checkpoint, and ε is taken from the module
    (``variance_epsilon`` / ``eps``) when it has one.
    """
    where = type(model).__name__
    params = dict(model.named_parameters(remove_duplicate=False))
    config_obj = getattr(model, "config", None)
    to_dict = getattr(config_obj, "to_dict", None)
    config: dict[str, Any] = dict(to_dict()) if callable(to_dict) else {}
    arch_name = arch if arch is not None else str(config.get("model_type") or "")
    infos = {
        n: TensorInfo(n, tuple(int(s) for s in p.shape), str(p.dtype).removeprefix("torch.").upper(),
                     Path(where), int(p.numel() * p.element_size()), 0)
        for n, p in params.items()
    }  # fmt: skip
    find_norms = _find_norms() if arch is None else None
    sites: list[ScanSite] = []
    names: list[str] = []
    warnings: list[str] = []
    if find_norms is not None:
        known = True
        for site in find_norms(model):
            weight = f"{site.path}.weight" if f"{site.path}.weight" in infos else ""
            bias = f"{site.path}.bias" if f"{site.path}.bias" in infos else None
            names.extend(n for n in (weight, bias) if n)
            sites.append(_measure(site, weight, bias, infos[weight].dtype if weight else "-", site.probed,
                                  "find_norms (probed)" if site.probed else "find_norms", "module", dead_rel_tol))
    else:
        cands, known, warnings = _candidates(infos, "model", arch_name, config, where)
        for c in cands:
            module = _submodule(model, c.prefix)
            eps = getattr(module, "variance_epsilon", getattr(module, "eps", None)) if module is not None else None
            values = {n: as_float64(params[n], name=n) for n in (c.weight, c.bias) if n is not None}
            names.extend(values)
            sites.append(_build_site(
                c, values, infos, gguf_stores_effective=False, dead_rel_tol=dead_rel_tol, where=where,
                eps_override=float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else None,
            ))  # fmt: skip
    if not sites:
        raise CheckpointError(f"{where}: no norm parameters found among {len(params)} parameters")
    return ScanReport(
        source=where, format="model", arch=arch_name or "unknown", arch_known=known, sites=tuple(sites),
        dead_rel_tol=dead_rel_tol, n_tensors=len(infos), bytes_total=sum(i.nbytes for i in infos.values()),
        tensors_read=tuple(names), bytes_read=sum(infos[n].nbytes for n in names),
        elapsed_s=time.perf_counter() - t0, warnings=tuple(warnings),
    )  # fmt: skip


def _find_norms() -> Callable[[Any], Sequence[Site]] | None:
    """deadir.models.find_norms when that module is present (branch ``models``), else None."""
    try:
        from deadir import models  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    return cast(Callable[[Any], Sequence[Site]] | None, getattr(models, "find_norms", None))


def _submodule(model: Any, path: str) -> Any:
    try:
        return model.get_submodule(path)
    except (AttributeError, KeyError):
        return None


# ----------------------------------------------------------------------------- baseline gate


@dataclasses.dataclass(frozen=True)
class Change:
    """One difference between a scan and its baseline.

    ``what`` is "added", "removed", "kind", "kernel", "size", "degenerate" or "direction";
    ``angle`` is the angle in radians between the two directions (direction changes only).
    """

    path: str
    what: str
    detail: str
    angle: float | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.what}: {self.detail}"


def site_angle(u: Sequence[float] | FloatArray, v: Sequence[float] | FloatArray) -> float:
    """Angle in radians (in [0, π/2]) between the lines spanned by unit vectors u and v.

    Computed as 2·atan2(min(‖u−v‖, ‖u+v‖), max(...)), accurate also for tiny angles
    (arccos of a cosine near 1 loses half the digits).
    """
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    minus, plus = float(np.linalg.norm(a - b)), float(np.linalg.norm(a + b))
    return 2.0 * math.atan2(min(minus, plus), max(minus, plus))


def load_baseline(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a previous ``deadir scan --json`` output.

    Raises:
        BaselineError: the file is missing, not JSON, or not a scan report (names the problem).
    """
    import json

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BaselineError(f"{p}: baseline file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{p}: baseline is not valid JSON ({exc})") from exc
    _validate_report_dict(data, str(p))
    return cast(dict[str, Any], data)


def _validate_report_dict(data: Any, where: str) -> None:
    if not isinstance(data, dict) or data.get("deadir_scan") != 1 or not isinstance(data.get("sites"), list):
        raise BaselineError(f"{where}: not a deadir scan report (expected the output of `deadir scan --json`)")
    seen: set[str] = set()
    for i, s in enumerate(data["sites"]):
        if not isinstance(s, dict):
            raise BaselineError(f"{where}: sites[{i}] is not an object")
        for key, types in (("path", str), ("kind", str), ("kernel_predicted", bool), ("d", int),
                           ("weight_offset", (int, float))):  # fmt: skip
            if not isinstance(s.get(key), types):
                raise BaselineError(f"{where}: sites[{i}] lacks a valid {key!r}")
        direction = s.get("direction")
        if direction is not None and (
            not isinstance(direction, list) or len(direction) != s["d"]
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in direction)
            or not any(direction)
        ):  # fmt: skip
            raise BaselineError(f"{where}: sites[{i}] ({s['path']}) has a malformed direction")
        if s["path"] in seen:
            raise BaselineError(f"{where}: site {s['path']!r} appears twice")
        seen.add(s["path"])


def compare_to_baseline(
    current: ScanReport | Mapping[str, Any], baseline: Mapping[str, Any], *, max_angle: float = DEFAULT_MAX_ANGLE
) -> list[Change]:
    """Every site whose normalisation changed between ``baseline`` and ``current``.

    Flags sites added or removed, a changed kind (including Gemma's (1 + w) offset), a
    changed kernel presence, a β that appeared or vanished, a changed size, changed zero-scale indices, and a kernel
    direction that turned by more than ``max_angle`` radians. An empty list means no change.

    Raises:
        BaselineError: either side is not a scan report.
        InputShapeError: max_angle not in (0, π/2].
    """
    if not (math.isfinite(max_angle) and 0.0 < max_angle <= math.pi / 2):
        raise InputShapeError(f"max_angle: must lie in (0, π/2] radians, got {max_angle!r}")
    cur = current.to_dict() if isinstance(current, ScanReport) else dict(current)
    _validate_report_dict(cur, "current scan")
    _validate_report_dict(baseline, "baseline")
    old = {s["path"]: s for s in baseline["sites"]}
    new = {s["path"]: s for s in cur["sites"]}
    changes: list[Change] = []
    for path in old:
        if path not in new:
            changes.append(Change(path, "removed", f"{old[path]['kind']} site no longer present"))
    for path, s in new.items():
        if path not in old:
            changes.append(Change(path, "added", f"new {s['kind']} site"))
            continue
        o = old[path]
        if (o["kind"], float(o["weight_offset"])) != (s["kind"], float(s["weight_offset"])):
            changes.append(Change(path, "kind", f"{_kind_label(o)} -> {_kind_label(s)}"))
        if o["kernel_predicted"] != s["kernel_predicted"]:
            changes.append(Change(path, "kernel", "kernel predicted -> no kernel" if o["kernel_predicted"]
                                  else "no kernel -> kernel predicted"))  # fmt: skip
        if (o.get("bias_name") is None) != (s.get("bias_name") is None):
            # With the config unchanged the kind comes from the architecture table, so a LayerNorm
            # swapped for an RMSNorm in the model code shows in the tensors only as a vanished β.
            changes.append(Change(path, "bias", "β present -> absent (norm swapped for a bias-free one, "
                                  "e.g. RMSNorm?)" if o.get("bias_name") is not None else "β absent -> present"))
        if o["d"] != s["d"]:
            changes.append(Change(path, "size", f"d {o['d']} -> {s['d']}"))
            continue
        if sorted(o.get("degenerate") or []) != sorted(s.get("degenerate") or []):
            changes.append(Change(path, "degenerate", f"zero scales {o.get('degenerate')} -> {s.get('degenerate')}"))
        if o.get("direction") is not None and s.get("direction") is not None:
            angle = site_angle(o["direction"], s["direction"])
            if angle > max_angle:
                changes.append(Change(path, "direction", f"kernel direction turned by {angle:.3g} rad "
                                      f"(> {max_angle:g})", angle))  # fmt: skip
    return changes


def _kind_label(s: Mapping[str, Any]) -> str:
    return str(s["kind"]) + (f" (γ = w + {float(s['weight_offset']):g})" if float(s["weight_offset"]) else "")


# ----------------------------------------------------------------------------- plot


def plot_scan(report: ScanReport, path: str | os.PathLike[str]) -> Path:
    """Write a PNG: log10 |γ| per site and channel, log10 |vᵢ| of the kernel directions,
    and the per-site median / minimum |γ|. Written atomically (temporary file + rename).

    Raises:
        DeadirError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise DeadirError("--plot needs matplotlib (pip install 'deadir[plot]')") from exc
    import tempfile

    sites = report.sites
    width = max(s.site.spec.size for s in sites)
    gam = np.full((len(sites), width), np.nan)
    vec = np.full((len(sites), width), np.nan)
    for i, s in enumerate(sites):
        a = np.abs(s.gamma)
        with np.errstate(divide="ignore"):
            gam[i, : a.size] = np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)
            if s.direction is not None:
                d = np.abs(s.direction)
                vec[i, : d.size] = np.where(d > 0, np.log10(np.where(d > 0, d, 1.0)), np.nan)
    has_dir = bool(np.isfinite(vec).any())
    n_panels = 3 if has_dir else 2
    fig, axes = plt.subplots(n_panels, 1, figsize=(11, 3.2 * n_panels + 0.002 * len(sites) * n_panels))
    im = axes[0].imshow(gam, aspect="auto", interpolation="nearest", cmap="viridis")
    axes[0].set_title("log10 |γ| (effective scale) per site (rows) and channel (columns)")
    axes[0].set_ylabel("site index")
    fig.colorbar(im, ax=axes[0])
    k = 1
    if has_dir:
        im2 = axes[1].imshow(vec, aspect="auto", interpolation="nearest", cmap="magma")
        axes[1].set_title("log10 |v_i|, v = γ⁻¹/‖γ⁻¹‖ (sites with a predicted kernel; blank: no kernel)")
        axes[1].set_ylabel("site index")
        fig.colorbar(im2, ax=axes[1])
        k = 2
    idx = np.arange(len(sites))
    axes[k].semilogy(idx, [s.gamma_median for s in sites], "o-", ms=3, label="median |γ|")
    axes[k].semilogy(idx, [max(s.gamma_min, 1e-300) for s in sites], "v-", ms=3, label="min |γ|")
    axes[k].semilogy(idx, [s.gamma_max for s in sites], "^-", ms=3, label="max |γ|")
    axes[k].set_xlabel("site index (table order)")
    axes[k].set_title("|γ| spread per site")
    axes[k].legend(loc="best", fontsize=8)
    fig.suptitle(f"deadir scan: {Path(report.source).name} ({report.arch}, {len(sites)} sites)")
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return target
