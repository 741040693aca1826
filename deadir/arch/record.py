"""The Architecture record: everything deadir knows about one model family, as data.

A record says where a family's norms sit and what they compute, for both readers: the
tensor-name rules :func:`deadir.scan` applies to a checkpoint's names (no model), and
the post-LN pattern and final-norm rule :func:`deadir.find_norms` applies to an
instantiated model's module paths. It also carries the tiny configuration the tests and
``random:<model_type>`` build, and the Fisher consumer/writer plan (who reads which norm).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args

from deadir.norms import NormKind

if TYPE_CHECKING:
    from deadir.arch.plans import Plan

Role = Literal["final", "block-input", "block-output", "attention-qk", "embedding", "other"]
"""Where a norm sits: "final" (the last norm before the head), "block-input" (pre-LN norms),
"block-output" (post-LN norms, post-attention / post-MLP norms), "attention-qk" (q/k norms),
"embedding" (a norm of the embeddings), "other" (task heads, projectors)."""
Stack = Literal["decoder", "encoder", "vision", "text", "audio", ""]
"""Which tower a norm belongs to."""
ROLES: tuple[str, ...] = get_args(Role)
STACKS: tuple[str, ...] = get_args(Stack)

PlanBuilder = Callable[[Mapping[str, Any], Any], "Plan"]
"""Fisher plan builder: (module path → module, config) → :class:`deadir.arch.plans.Plan`."""

_ANY_PREFIX = r"(?:.*\.)?"  # a checkpoint may prefix every name (model., transformer., bert., ...)


@dataclasses.dataclass(frozen=True)
class NamingRule:
    """One tensor-naming rule: which checkpoint tensors are a norm site, and what the site is.

    Attributes:
        pattern: regular expression fully matching the site's tensor-name prefix (the weight's
            name minus ``.weight``); ``{N}`` stands for the block index. Any leading prefix
            (``model.``, ``bert.``) is accepted unless ``anchored``.
        role: the site's role.
        stack: the site's stack; None: from the path (:func:`stack_of_path`).
        kind: the norm kind when it differs from the architecture's (a LayerNorm vision tower
            inside an RMSNorm model); None: the architecture's.
        weight_offset: the weight offset when it differs from the architecture's; None: the architecture's.
        eps_keys: config keys of ε for this site when they differ from the architecture's.
        eps_fixed: ε fixed in the model code for this site (no config key), overriding the keys.
        anchored: match from the start of the name (GGUF and CTranslate2 names carry no prefix).
    """

    pattern: str
    role: Role
    stack: Stack | None = None
    kind: NormKind | None = None
    weight_offset: float | None = None
    eps_keys: tuple[str, ...] | None = None
    eps_fixed: float | None = None
    anchored: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern (``{N}`` becomes the named group ``block``)."""
        return _compile(self.pattern, self.anchored)


_CACHE: dict[tuple[str, bool], re.Pattern[str]] = {}


def _compile(pattern: str, anchored: bool) -> re.Pattern[str]:
    key = (pattern, anchored)
    if key not in _CACHE:
        body = pattern.replace("{N}", r"(?P<block>\d+)")
        _CACHE[key] = re.compile(body if anchored else _ANY_PREFIX + body)
    return _CACHE[key]


@dataclasses.dataclass(frozen=True)
class FinalRule:
    """Where the final norm of one stack sits (for module paths and tensor prefixes alike).

    ``pattern`` is a regular expression matched (``re.search``) against the path. With
    ``last_block=False`` it must match a norm outside the blocks. With ``last_block=True`` it
    is matched against the path *inside* a block (after the block index) and the site of the
    highest block index of each stack is taken — the post-LN stacks, whose last block ends in a
    norm. A last-block rule is a fallback: it applies only when the rules before it found
    nothing (OPT: ``decoder.final_layer_norm``, or with ``do_layer_norm_before=False`` the last
    block's).
    """

    pattern: str
    last_block: bool = False


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One model family.

    Attributes:
        name: the family's key (its canonical ``model_type``, or its GGUF name for a GGUF-only record).
        model_types: every ``config.model_type`` that selects this record (aliases included).
        norm_kind: the kind of the family's norms ("layernorm", "rmsnorm", "affine-only", ...);
            a rule may override it for a tower of another kind.
        weight_offset: γ = weight + weight_offset (1.0 for Gemma's (1 + w) RMSNorm, else 0.0).
        eps_keys: config keys holding ε, in order of preference (dotted for nested configs);
            empty when ε is fixed in the model code.
        eps_default: ε when no key is present (or the fixed value).
        rules: tensor-naming rules for Hugging Face safetensors.
        final_rules: where the final norm(s) sit; empty: the generic names
            (:data:`deadir.arch.naming.GENERIC_FINAL_NAMES`).
        post_ln: regular expression on the in-block path of norms applied to a block's or a
            sublayer's *output* (post-LN); None when every block norm is pre-LN.
        pre_ln_flag: config flag that, when false, makes every block norm post-LN (OPT-350m).
        stack: the stack of sites whose path names none ("decoder", "encoder", "vision", "" for
            encoder-decoders, where the path says which).
        gguf_names: llama.cpp ``general.architecture`` values of this family.
        gguf_stores_effective: GGUF files store the effective scale 1 + w (llama.cpp's Gemma converter).
        nonparametric: the norm has no learned parameters (OLMo's LayerNorm: γ = 1, β = 0); the
            sites come from ``nonparametric_sites`` and the checkpoint's block count.
        nonparametric_sites: site templates (``{N}`` = block index) of a non-parametric family,
            for safetensors names; ``gguf_nonparametric_sites`` the same for GGUF names.
        tiny_config: keyword arguments of a tiny ``transformers`` config (hidden 32, 2 layers),
            or None for a GGUF-only record (then ``no_tiny_reason`` says why).
        fisher_plan: the Fisher consumer/writer plan builder, or None when deadir has none for it.
        position_offset: position ids the embeddings reserve before the first token (RoBERTa-style
            models count positions from padding_idx + 1: 2), so a sequence is that much shorter
            than ``max_position_embeddings``.
        ctranslate2_rules: naming rules of the family's CTranslate2 conversion, if deadir reads it.
        note: what is special about the family (shown in docs and the record test's ids).
    """

    name: str
    model_types: tuple[str, ...]
    norm_kind: NormKind
    weight_offset: float = 0.0
    eps_keys: tuple[str, ...] = ()
    eps_default: float = 1e-5
    rules: tuple[NamingRule, ...] = ()
    final_rules: tuple[FinalRule, ...] = ()
    post_ln: str | None = None
    pre_ln_flag: str | None = None
    stack: Stack = "decoder"
    gguf_names: tuple[str, ...] = ()
    gguf_stores_effective: bool = False
    nonparametric: bool = False
    nonparametric_sites: tuple[str, ...] = ()
    gguf_nonparametric_sites: tuple[str, ...] = ()
    tiny_config: Mapping[str, Any] | None = None
    no_tiny_reason: str = ""
    fisher_plan: PlanBuilder | None = None
    position_offset: int = 0
    ctranslate2_rules: tuple[NamingRule, ...] = ()
    note: str = ""

    @property
    def model_type(self) -> str:
        """The canonical ``model_type`` (the first), or "" for a GGUF-only record."""
        return self.model_types[0] if self.model_types else ""

    @property
    def has_mean_centring(self) -> bool:
        """Whether the family's own norm kind centres (so the theory predicts a kernel)."""
        return self.norm_kind in ("layernorm", "groupnorm", "scale-then-centre")

    def post_ln_pattern(self, config: Any) -> str | None:
        """The post-LN in-block pattern for a model with this ``config`` (object or mapping)."""
        if self.pre_ln_flag is not None:
            value = config.get(self.pre_ln_flag) if isinstance(config, Mapping) else getattr(
                config, self.pre_ln_flag, None)
            if value is False:
                return r".*"  # every block norm follows its residual add
        return self.post_ln


def stack_of_path(path: str, default: Stack, *, record_stack: Stack | None = None) -> Stack:
    """The stack a site belongs to, from its path: the one rule both readers use.

    A component naming a tower wins ("vision", "visual", "vit" → vision; "text_model",
    "text_encoder" → text; "audio" → audio); then a vision family's own stack; then an
    "encoder"/"enc" or "decoder"/"dec"/"language_model" component; else ``default``.
    """
    parts = re.split(r"[./]", path)
    for p in parts:
        low = p.lower()
        if "vision" in low or low in ("visual", "vit"):
            return "vision"
        if low in ("text_model", "text_encoder"):
            return "text"
        if "audio" in low:
            return "audio"
    if record_stack == "vision":
        return "vision"
    for p in parts:
        if p in ("encoder", "enc"):
            return "encoder"
        if p in ("decoder", "dec", "language_model"):
            return "decoder"
    return default


def block_of(path: str) -> tuple[int | None, str]:
    """(index of the first numeric path component, the path after it); (None, path) outside blocks."""
    parts = re.split(r"([./])", path)
    for i in range(0, len(parts), 2):
        if parts[i].isdigit():
            return int(parts[i]), "".join(parts[i + 2 :])
    return None, path
