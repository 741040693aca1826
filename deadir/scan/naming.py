"""Which tensors of a checkpoint are norm sites, and what each site is: the architecture records applied to names.

The record (:mod:`deadir.arch`) that the checkpoint's ``model_type`` (safetensors), GGUF
``general.architecture`` or CTranslate2 layout selects gives the naming rules, the kind,
offset and ε keys. Tensors that look like norms but match no rule are still reported,
marked ``guessed`` with the evidence for their kind, never dropped. A non-parametric family
(OLMo) stores no norm tensors at all: its sites are placed from the record's templates and
the checkpoint's block count, with γ = 1.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from deadir import arch
from deadir.arch import Architecture, NamingRule, Role, Stack, block_of, stack_of_path
from deadir.arch.naming import GGUF_LAST_BLOCK_FINAL
from deadir.errors import CheckpointError
from deadir.norms import NormKind

WEIGHT_LEAVES = (".weight", "/gamma", ".gamma", ".scale")
BIAS_LEAVES = {".weight": ".bias", "/gamma": "/beta", ".gamma": ".beta", ".scale": ".bias"}
_HIDDEN_KEYS = ("hidden_size", "d_model", "n_embd", "dim", "embed_dim", "text_config.hidden_size")


class TensorShape(Protocol):
    """What naming needs of a tensor's index entry (deadir.io.TensorInfo has it)."""

    @property
    def shape(self) -> tuple[int, ...]: ...


@dataclasses.dataclass
class Candidate:
    """One norm site found by name, before its tensors are read.

    ``weight`` is "" for a non-parametric site (no tensor: γ = 1), then ``d`` gives its size.
    """

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
    d: int | None = None


def record_for(fmt: str, arch_name: str) -> Architecture | None:
    """The record selecting the naming of a checkpoint of format ``fmt`` and architecture ``arch_name``."""
    if fmt == "gguf":
        return arch.by_gguf(arch_name)
    return arch.by_model_type(arch_name)


def split_leaf(name: str) -> tuple[str, str] | None:
    """(site prefix, weight leaf) of a tensor name that ends like a norm scale, else None."""
    for leaf in WEIGHT_LEAVES:
        if name.endswith(leaf):
            return name[: -len(leaf)], leaf
    return None


def cfg_get(config: Mapping[str, Any], dotted: str) -> Any:
    """config[dotted] (GGUF keys contain dots), else the nested lookup a.b.c."""
    if dotted in config:
        return config[dotted]
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def eps_from(config: Mapping[str, Any], keys: Sequence[str], default: float, where: str) -> tuple[float, str]:
    """(ε, source): the first key present, else the default ("default" when keys were expected,
    "fixed by architecture" when the format stores no ε, as for Whisper and OPT).

    Raises:
        CheckpointError: a key holds something that is not a finite ε ≥ 0.
    """
    if not keys:
        return default, "fixed by architecture"
    for key in keys:
        value = cfg_get(config, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise CheckpointError(f"{where}: config key {key!r} = {value!r} is not a finite ε ≥ 0")
        return float(value), key
    return default, "default"


def _rule_eps(rule: NamingRule, keys: tuple[str, ...], default: float, config: Mapping[str, Any],
              where: str) -> tuple[float, str]:
    if rule.eps_fixed is not None:
        return rule.eps_fixed, "fixed by architecture"
    return eps_from(config, rule.eps_keys or keys, default, where)


def candidates(
    infos: Mapping[str, TensorShape],
    fmt: str,
    arch_name: str,
    config: Mapping[str, Any],
    where: str,
) -> tuple[list[Candidate], bool, list[str]]:
    """Norm sites from the tensor names: the record's rules first, then generic guesses.

    Returns (candidates in natural name order, whether a record knew the architecture, warnings).

    Raises:
        CheckpointError: a config ε key holds an invalid value.
    """
    warnings: list[str] = []
    record = record_for(fmt, arch_name)
    if fmt == "ctranslate2":
        record = arch.by_model_type(arch_name) if arch_name != "ctranslate2" else None
        rules = record.ctranslate2_rules if record is not None else ()
        record = record if rules else None
    elif fmt == "gguf":
        rules = arch.GGUF_RULES if record is not None else ()
    else:
        rules = record.rules if record is not None else ()
    known = record is not None
    kind: NormKind = record.norm_kind if record is not None else "layernorm"
    offset = record.weight_offset if record is not None else 0.0
    default_stack: Stack = record.stack if record is not None else "decoder"
    if fmt == "gguf":
        default_stack = "encoder" if default_stack == "encoder" else "decoder"
        eps_keys: tuple[str, ...] = (f"{arch_name}.attention.layer_norm_rms_epsilon",) if kind == "rmsnorm" else (
            f"{arch_name}.attention.layer_norm_epsilon",)
        eps_default = 1e-6 if kind == "rmsnorm" else 1e-5
        if record is not None and record.nonparametric:
            eps_keys, eps_default = (), record.eps_default
    elif fmt == "ctranslate2":
        eps_keys, eps_default = (), record.eps_default if record is not None else 1e-5
    else:
        eps_keys = record.eps_keys if record is not None else ()
        eps_default = record.eps_default if record is not None else 1e-5
    # a config flag that turns every block norm post-LN (OPT-350m's do_layer_norm_before=False)
    post_ln_all = (record is not None and fmt not in ("gguf", "ctranslate2") and record.pre_ln_flag is not None
                   and record.post_ln_pattern(config) == r".*")
    record_stack = record.stack if record is not None else None

    out: list[Candidate] = []
    claimed: set[str] = set()
    for name in infos:
        split = split_leaf(name)
        if split is None:
            continue
        prefix, leaf = split
        for rule in rules:
            m = rule.regex.fullmatch(prefix)
            if m is None:
                continue
            block = m.groupdict().get("block")
            role: Role = rule.role
            if post_ln_all and role == "block-input":
                role = "block-output"
            eps, eps_src = _rule_eps(rule, eps_keys, eps_default, config, where)
            bias = prefix + BIAS_LEAVES[leaf]
            out.append(Candidate(
                prefix, leaf, name, bias if bias in infos else None, role,
                rule.stack or stack_of_path(prefix, default_stack, record_stack=record_stack),
                None if block is None else int(block), rule.kind or kind,
                offset if rule.weight_offset is None else rule.weight_offset, eps, eps_src, False, "table",
            ))  # fmt: skip
            claimed.add(name)
            break
    if record is not None:
        _mark_last_block_final(out, record, fmt)
        if record.nonparametric:
            out.extend(_nonparametric(infos, fmt, record, arch_name, config, where, eps_keys, eps_default))
            warnings.append(f"{record.name}: the norms have no parameters (γ = 1, β = 0); their sites are placed "
                            "by the architecture record, not read from tensors")
        if fmt == "gguf" and record.gguf_stores_effective:
            for c in out:
                if c.weight_offset == 1.0:
                    c.kind_source = "table (GGUF stores 1 + w)"
    missing = sorted({c.prefix for c in out if c.eps_source == "default"})
    if missing:
        warnings.append(f"ε not in the config for {len(missing)} site(s) (looked for "
                        f"{', '.join(eps_keys) or 'rule keys'}); used the architecture's default")

    # Generic pass: everything that looks like a norm scale and is not claimed.
    hidden = hidden_size(config, arch_name)
    looks = {
        n: i for n, i in infos.items()
        if n not in claimed and (s := split_leaf(n)) is not None and _looks_like_norm(s[0]) and len(i.shape) == 1
        and i.shape[0] > 0
    }  # fmt: skip
    if hidden is None and looks:
        hidden = Counter(i.shape[0] for i in looks.values()).most_common(1)[0][0]
    for name, info in looks.items():
        prefix, leaf = cast(tuple[str, str], split_leaf(name))
        qk = re.search(r"(?:^|[._/])(?:q|k|attn_q|attn_k)_(?:norm|layernorm)$", prefix) is not None
        if info.shape[0] != hidden and not qk:
            continue
        bias = prefix + BIAS_LEAVES[leaf]
        has_bias = bias in infos
        g_kind, g_offset, evidence = _guess_kind(prefix, has_bias, fmt, arch_name, config, record)
        eps, eps_src = eps_from(config, _generic_eps_keys(fmt, arch_name, g_kind),
                                1e-6 if g_kind == "rmsnorm" else 1e-5, where)
        block_m = re.search(r"(?:^|[._/])(?:layers?|h|blk|block)[._/](\d+)(?:[._/]|$)", prefix)
        g_role: Role = "attention-qk" if qk else (
            "final" if block_m is None and "final" in prefix.lower() else "other")
        out.append(Candidate(
            prefix, leaf, name, bias if has_bias else None, g_role,
            stack_of_path(prefix, default_stack, record_stack=record_stack),
            int(block_m.group(1)) if block_m else None, g_kind, g_offset, eps, eps_src, True, evidence,
        ))  # fmt: skip
    if any(c.guessed for c in out):
        n_guess = sum(c.guessed for c in out)
        what = "architecture not in the naming tables" if not known else "not in the table for this architecture"
        warnings.append(f"{n_guess} site(s) found by name pattern only ({what}); their kind is a guess")
    out.sort(key=lambda c: natural_key(c.prefix))  # layer 2 before layer 10, the same for every format
    return out, known, warnings


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers numerically (layer 2 before layer 10)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p)


def _mark_last_block_final(cands: list[Candidate], record: Architecture, fmt: str) -> None:
    """The record's last-block final rules (post-LN stacks), applied as find_norms applies them.

    A last-block rule is a fallback: it applies only when no site is final by a rule before it;
    then in each stack the highest block's site whose in-block path matches becomes final.
    """
    if any(c.role == "final" for c in cands):
        return
    if fmt == "gguf":
        patterns = [GGUF_LAST_BLOCK_FINAL]
    elif fmt == "ctranslate2":
        patterns = []
    else:
        patterns = [r.pattern for r in record.final_rules if r.last_block]
    for pattern in patterns:
        hits = [c for c in cands if c.block is not None and re.search(pattern, block_of(c.prefix)[1])]
        for stack in dict.fromkeys(c.stack for c in hits):
            in_stack = [c for c in hits if c.stack == stack]
            top = max(c.block for c in in_stack if c.block is not None)
            for c in in_stack:
                if c.block == top:
                    c.role = "final"
        if hits:
            return


def _nonparametric(infos: Mapping[str, TensorShape], fmt: str, record: Architecture, arch_name: str,
                   config: Mapping[str, Any], where: str, eps_keys: tuple[str, ...],
                   eps_default: float) -> list[Candidate]:
    """Sites of a family whose norms store no tensors, placed by the record's templates (γ = 1)."""
    templates = record.gguf_nonparametric_sites if fmt == "gguf" else record.nonparametric_sites
    block_stems = {t.split("{N}")[0] for t in templates if "{N}" in t}
    prefixes: Counter[str] = Counter()
    blocks: set[int] = set()
    for name in infos:
        for stem in block_stems:
            m = re.match(r"^(?P<p>(?:.*\.)?)" + re.escape(stem) + r"(?P<n>\d+)[./]", name)
            if m:
                prefixes[m.group("p")] += 1
                blocks.add(int(m.group("n")))
    if not blocks:
        return []
    prefix = "" if fmt == "gguf" else prefixes.most_common(1)[0][0]
    d = hidden_size(config, arch_name)
    if d is None:
        raise CheckpointError(f"{where}: {record.name} norms are non-parametric and the config gives no hidden "
                              "size to place them with")
    eps, eps_src = eps_from(config, eps_keys, eps_default, where)
    out: list[Candidate] = []
    evidence = f"architecture: {record.name} norms are non-parametric (γ = 1, β = 0, no tensors)"
    for template in templates:
        rule = next((r for r in (arch.GGUF_RULES if fmt == "gguf" else record.rules)
                     if r.regex.fullmatch(template.replace("{N}", "0"))), None)
        if rule is None:  # pragma: no cover - a record whose templates its own rules do not name
            raise CheckpointError(f"{record.name}: site template {template!r} matches no naming rule")
        for n in sorted(blocks) if "{N}" in template else [None]:
            path = prefix + (template if n is None else template.replace("{N}", str(n)))
            out.append(Candidate(path, "", "", None, rule.role, rule.stack or stack_of_path(path, record.stack),
                                 n, record.norm_kind, record.weight_offset, eps, eps_src, False, evidence, d=d))
    return out


def _looks_like_norm(prefix: str) -> bool:
    parts = re.split(r"[./]", prefix.lower())
    return any("norm" in p or re.fullmatch(r"ln(?:_?[a-z0-9]+)?", p) is not None for p in parts)


def _generic_eps_keys(fmt: str, arch_name: str, kind: str) -> tuple[str, ...]:
    if fmt == "gguf":
        suffix = "layer_norm_rms_epsilon" if kind == "rmsnorm" else "layer_norm_epsilon"
        return (f"{arch_name}.attention.{suffix}",)
    if kind == "rmsnorm":
        return ("rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps")
    return ("layer_norm_eps", "layer_norm_epsilon")


def _guess_kind(prefix: str, has_bias: bool, fmt: str, arch_name: str, config: Mapping[str, Any],
                record: Architecture | None) -> tuple[NormKind, float, str]:
    """Kind of an unlisted norm from the evidence at hand, with the evidence named."""
    # the family's offset applies to safetensors (GGUF stores the effective scale)
    offset = record.weight_offset if record is not None and fmt != "gguf" else 0.0
    if "rms" in prefix.lower():
        return "rmsnorm", offset, "name says rms"
    if fmt == "ctranslate2":
        # CTranslate2's LayerNormSpec stores beta for LayerNorm and only gamma for RMSNorm
        return ("layernorm", 0.0, "CTranslate2: beta present") if has_bias else (
            "rmsnorm", 0.0, "CTranslate2: no beta")
    if has_bias:
        return "layernorm", 0.0, "has a bias"
    if fmt == "gguf":
        if f"{arch_name}.attention.layer_norm_rms_epsilon" in config:
            return "rmsnorm", 0.0, "config: GGUF has layer_norm_rms_epsilon"
        if f"{arch_name}.attention.layer_norm_epsilon" in config:
            return "layernorm", 0.0, "config: GGUF has layer_norm_epsilon"
    else:
        if cfg_get(config, "rms_norm_eps") is not None or cfg_get(config, "text_config.rms_norm_eps") is not None:
            return "rmsnorm", offset, "config: has rms_norm_eps"
        if cfg_get(config, "layer_norm_eps") is not None or cfg_get(config, "layer_norm_epsilon") is not None:
            return "layernorm", 0.0, "config: has layer_norm_eps"
    return "layernorm", 0.0, "no evidence: assumed LayerNorm"


def hidden_size(config: Mapping[str, Any], arch_name: str) -> int | None:
    """The model width from the config (Hugging Face keys, or GGUF ``<arch>.embedding_length``), else None."""
    for key in (*_HIDDEN_KEYS, f"{arch_name}.embedding_length"):
        value = cfg_get(config, key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
