"""Fisher plans: which module reads which norm, and who writes into which stream, per family.

A plan is architecture knowledge: the read side of T7 (a consumer f(y) = Wy + b of a norm's
output) and the write side of T8 (a writer into a residual stream that only norms read). Each
builder takes the model's modules (path → module) and config and names them; the records of
:mod:`deadir.arch` point at their builder, and :mod:`deadir.fisher` turns a plan into
candidate directions. The write family is exact only when every reader is a LayerNorm:

- GPT-2 / GPT-Neo (pre-LN): the residual stream is read by ln_1, ln_2 of every block and by ln_f,
  and by nothing else (the logits come from ln_f). Writers: wte, wpe, attention output
  projection, MLP output projection. (The optional ``hidden_states`` outputs are raw stream
  reads: the directions are dead for the logits, not for those.)
- BERT (post-LN): there is no long residual stream; each sum is re-normalised at once:
  word + position + token-type embeddings → embeddings.LayerNorm; attention.output.dense(ctx) + h
  → attention.output.LayerNorm; output.dense(inter) + h' → output.LayerNorm. Every sum is read by
  exactly one LayerNorm, so all those writers are valid. The LayerNorm β themselves are *not*
  writers in this sense: β shifts h, which Q/K/V also read.
- Llama / Gemma (RMSNorm): the same formulas are built as *candidates* (the negative control)
  and marked not exact by :mod:`deadir.fisher`: ⟨γ⁻¹, y⟩ = Σ xᵢ/rms(x) varies with the input
  (docs/theory.md T5), RMS(x + t𝟙) ≠ RMS(x).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from deadir.errors import DeadirError

Role = Literal["linear", "key", "lm-head"]
"""How a consumer reads a norm: a plain linear map, an attention key projection, or the LM head."""


class UnsupportedArchitectureError(DeadirError, TypeError):
    """A model whose architecture has no Fisher plan (its record's ``fisher_plan`` is None)."""


@dataclasses.dataclass(frozen=True)
class Read:
    """Architecture table entry: module ``consumer`` reads the output of norm ``norm``."""

    norm: str
    consumer: str
    role: Role = "linear"
    rotary: bool = False  # keys: a position-dependent rotation is applied to them
    softcap: bool = False  # lm-head: logits pass through cap·tanh(ℓ/cap) before the softmax


@dataclasses.dataclass(frozen=True)
class Write:
    """Architecture table entry: ``writer`` adds into a stream read only by the norms ``readers``."""

    writer: str
    readers: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Who reads which norm, and who writes into which stream, in one model."""

    arch: str
    reads: tuple[Read, ...]
    writes: tuple[Write, ...]
    note: str

    def norms(self) -> frozenset[str]:
        """Every norm the plan names: read by a consumer, or reading a written stream."""
        return frozenset(r.norm for r in self.reads) | frozenset(n for w in self.writes for n in w.readers)

    def modules(self) -> frozenset[str]:
        """Every consumer and writer module the plan names."""
        return frozenset(r.consumer for r in self.reads) | frozenset(w.writer for w in self.writes)


def _blocks(paths: Iterable[str], pattern: str) -> list[tuple[str, int]]:
    """(prefix, block index) for every path matching ``(prefix)<pattern with {i}>``, sorted by index."""
    rx = re.compile(r"^(?P<p>(?:.+\.)?)" + pattern.replace(".", r"\.").replace("{i}", r"(?P<i>\d+)") + "$")
    found = []
    for path in paths:
        m = rx.match(path)
        if m:
            found.append((m.group("p"), int(m.group("i"))))
    return sorted(found, key=lambda t: t[1])


def plan_gpt2(mods: Mapping[str, Any], config: Any) -> Plan:
    """GPT-2: fused Q|K|V (``attn.c_attn``, a Conv1D with bias) reads ln_1; ``mlp.c_fc`` reads ln_2."""
    return _gpt2_like(mods, config, neo=False)


def plan_gpt_neo(mods: Mapping[str, Any], config: Any) -> Plan:
    """GPT-Neo: GPT-2's stream with separate q/k/v projections (no bias) reading ln_1."""
    return _gpt2_like(mods, config, neo=True)


def _gpt2_like(mods: Mapping[str, Any], config: Any, *, neo: bool) -> Plan:
    blocks = _blocks(mods, "h.{i}.ln_1")
    if not blocks:
        raise UnsupportedArchitectureError("gpt2: no module named like 'h.<i>.ln_1'")
    p = blocks[0][0]
    reads: list[Read] = []
    writes: list[Write] = []
    readers = (*(f"{p}h.{i}.{ln}" for _, i in blocks for ln in ("ln_1", "ln_2")), f"{p}ln_f")
    for _, i in blocks:
        b = f"{p}h.{i}."
        if neo:
            reads += [Read(b + "ln_1", b + f"attn.attention.{x}_proj", "key" if x == "k" else "linear") for x in "qkv"]
            writes.append(Write(b + "attn.attention.out_proj", readers))
        else:
            reads.append(Read(b + "ln_1", b + "attn.c_attn"))  # fused Q|K|V, Conv1D with bias
            writes.append(Write(b + "attn.c_proj", readers))
        reads.append(Read(b + "ln_2", b + "mlp.c_fc"))
        writes.append(Write(b + "mlp.c_proj", readers))
    if "lm_head" in mods:
        reads.append(Read(f"{p}ln_f", "lm_head", "lm-head"))
    writes += [Write(f"{p}wte", readers), Write(f"{p}wpe", readers)]
    note = (
        "pre-LN: the residual stream is read by ln_1/ln_2 of every block and ln_f only; "
        "the logits come from ln_f (hidden_states outputs, if requested, are raw stream reads)"
    )
    return Plan(str(getattr(config, "model_type", "gpt2")), tuple(reads), tuple(writes), note)


def plan_bert(mods: Mapping[str, Any], config: Any) -> Plan:
    """BERT / RoBERTa (post-LN): every residual sum is read by exactly one LayerNorm."""
    blocks = _blocks(mods, "encoder.layer.{i}.output.LayerNorm")
    if not blocks:
        raise UnsupportedArchitectureError("bert: no module named like 'encoder.layer.<i>.output.LayerNorm'")
    p = blocks[0][0]
    reads: list[Read] = []
    writes: list[Write] = []
    emb = f"{p}embeddings."
    writes += [Write(emb + e, (emb + "LayerNorm",)) for e in ("word_embeddings", "position_embeddings",
                                                               "token_type_embeddings")]
    prev = emb + "LayerNorm"
    for _, i in blocks:
        b = f"{p}encoder.layer.{i}."
        reads += [Read(prev, b + f"attention.self.{x}", "key" if x == "key" else "linear")
                  for x in ("query", "key", "value")]
        reads.append(Read(b + "attention.output.LayerNorm", b + "intermediate.dense"))
        writes.append(Write(b + "attention.output.dense", (b + "attention.output.LayerNorm",)))
        writes.append(Write(b + "output.dense", (b + "output.LayerNorm",)))
        prev = b + "output.LayerNorm"
    if f"{p}pooler.dense" in mods:
        reads.append(Read(prev, f"{p}pooler.dense"))  # the [CLS] row of the last LayerNorm's output
    if "cls.predictions.transform.dense" in mods:
        reads.append(Read(prev, "cls.predictions.transform.dense"))
        reads.append(Read("cls.predictions.transform.LayerNorm", "cls.predictions.decoder", "lm-head"))
    if "lm_head.dense" in mods:  # RoBERTa's masked-LM head
        reads.append(Read(prev, "lm_head.dense"))
        reads.append(Read("lm_head.layer_norm", "lm_head.decoder", "lm-head"))
    note = (
        "post-LN: every residual sum (embeddings, attention output + input, MLP output + input) is "
        "read by exactly one LayerNorm, so each writer into it is a write-residual direction"
    )
    return Plan(str(getattr(config, "model_type", "bert")), tuple(reads), tuple(writes), note)


def _decoder_plan(mods: Mapping[str, Any], config: Any, *, mlp_norm: str, sandwich: bool) -> Plan:
    """Llama-style decoders: ``input_layernorm`` feeds attention, ``mlp_norm`` the gated MLP.

    ``sandwich`` (Gemma 2 / 3): o_proj and down_proj are read only by their post-norms
    (post_attention_layernorm / post_feedforward_layernorm), whose outputs join the stream;
    otherwise they write straight into the stream the block and final norms read.
    """
    arch = str(getattr(config, "model_type", "llama"))
    blocks = _blocks(mods, f"layers.{{i}}.{mlp_norm}")
    if not blocks:
        raise UnsupportedArchitectureError(f"{arch}: no module named like 'layers.<i>.{mlp_norm}'")
    p = blocks[0][0]
    readers = (*(f"{p}layers.{i}.{n}" for _, i in blocks for n in ("input_layernorm", mlp_norm)), f"{p}norm")
    reads: list[Read] = []
    writes: list[Write] = [Write(f"{p}embed_tokens", readers)]
    for _, i in blocks:
        b = f"{p}layers.{i}."
        reads += [Read(b + "input_layernorm", b + f"self_attn.{x}_proj", "key" if x == "k" else "linear", True)
                  for x in "qkv"]
        reads += [Read(b + mlp_norm, b + f"mlp.{x}_proj") for x in ("gate", "up")]
        if sandwich:
            writes += [Write(b + "self_attn.o_proj", (b + "post_attention_layernorm",)),
                       Write(b + "mlp.down_proj", (b + "post_feedforward_layernorm",))]
        else:
            writes += [Write(b + "self_attn.o_proj", readers), Write(b + "mlp.down_proj", readers)]
    if "lm_head" in mods:
        reads.append(Read(f"{p}norm", "lm_head", "lm-head",
                          softcap=getattr(config, "final_logit_softcapping", None) is not None))
    note = (f"pre-norm decoder: the residual stream is read by input_layernorm/{mlp_norm} and the final norm"
            + ("; o_proj and down_proj are read only by post_attention/post_feedforward_layernorm" if sandwich
               else ""))
    return Plan(arch, tuple(reads), tuple(writes), note)


def plan_llama(mods: Mapping[str, Any], config: Any) -> Plan:
    """Llama-style pre-norm decoders (input_layernorm, post_attention_layernorm feeding the MLP, norm)."""
    return _decoder_plan(mods, config, mlp_norm="post_attention_layernorm", sandwich=False)


def plan_gemma2(mods: Mapping[str, Any], config: Any) -> Plan:
    """Gemma 2 / Gemma 3 text: sandwich norms (a norm before and after attention and the MLP)."""
    return _decoder_plan(mods, config, mlp_norm="pre_feedforward_layernorm", sandwich=True)
