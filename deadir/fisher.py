"""Parameter-space dead directions (DESIGN.md T7, T8) and the directional Fisher information.

A LayerNorm output obeys ⟨γ⁻¹, y − β⟩ = 0 for every input (T1). Every layer that reads it
therefore has directions in parameter space along which its output, and so the model's
function and Fisher information, does not change at all:

read side (T7), for a consumer f(y) = W y + b of a LayerNorm output y:
    read-bias        (δW, δb) = (u γ⁻¹ᵀ, −⟨γ⁻¹,β⟩ u) for every u: δf = u⟨γ⁻¹, y − β⟩ = 0.
    read-beta0       no bias but β = 0 (bias-free LayerNorm, or β = 0 at init): δW = u γ⁻¹ᵀ.
    keys-constant    a bias-free key projection with β ≠ 0 and no rotary embedding: δW = u γ⁻¹ᵀ
                     adds the same vector u⟨γ⁻¹,β⟩ to every key, which shifts every score of one
                     query by the same amount; softmax over keys ignores it.
    lm-head-softmax  the LM head: δW = 𝟙 wᵀ (and δb = c 𝟙) shifts every logit of a token by the
                     same amount; softmax ignores it (T7 names the instance w = γ⁻¹). This one is
                     a property of softmax, not of the norm: it is dead after an RMSNorm too and
                     is enumerated only where a LayerNorm feeds the head. A head tied to the input
                     embedding moves the embeddings too: then only δW = c 𝟙𝟙ᵀ is dead, and only
                     because the embedding stream is read through LayerNorms alone (T8).
write side (T8), LN(x + t𝟙) = LN(x):
    write-residual   a weight writing into a residual stream that is read *only* through
                     LayerNorms: δW = 𝟙 wᵀ (torch Linear layout (out, in); δb = c 𝟙 with it), and
                     for an embedding table E (rows = tokens) δE = a 𝟙ᵀ: each write moves by a
                     multiple of 𝟙, which no reader sees.

Which module reads which norm is architecture knowledge: :data:`ARCHITECTURES` holds one plan
builder per Hugging Face ``model_type`` (GPT-2, GPT-Neo, BERT, Llama-style, Gemma). Each builder
states the stream's readers; the write family is exact only when all of them are LayerNorms:

- GPT-2 / GPT-Neo (pre-LN): the residual stream is read by ln_1, ln_2 of every block and by ln_f,
  and by nothing else (the logits come from ln_f). Writers: wte, wpe, attention output
  projection, MLP output projection. Valid. (The optional ``hidden_states`` outputs are raw
  stream reads: the directions are dead for the logits, not for those.)
- BERT (post-LN): there is no long residual stream; each sum is re-normalised at once:
  word + position + token-type embeddings → embeddings.LayerNorm; attention.output.dense(ctx) + h
  → attention.output.LayerNorm; output.dense(inter) + h' → output.LayerNorm. Every sum is read by
  exactly one LayerNorm, so all those writers are valid. The LayerNorm β themselves are *not*
  writers in this sense: β shifts h, which Q/K/V also read.
- Llama / Gemma (RMSNorm): the same formulas are built as *candidates* (the negative control)
  and marked not exact: ⟨γ⁻¹, y⟩ = Σ xᵢ/rms(x) varies with the input (T5), RMS(x + t𝟙) ≠ RMS(x).

The Fisher information along a unit direction δ for the model's own predictive distribution
p = softmax(logits) is  F(δ) = mean over positions of J_δᵀ (diag p − p pᵀ) J_δ = Var_p(J_δ),
with J_δ the directional derivative of the logits, computed exactly by one forward-mode JVP
(``torch.func.jvp`` through ``torch.func.functional_call``) on a float64 copy of the model.
Cost: one forward pass with tangents (≈ 2–3 forwards) per direction, whatever the number of
parameters P; the dense alternative builds the Jacobian of all N·V logits with respect to the P
parameters of the tensors involved (P forward passes, or N·V reverse passes, and N·V·P float64
numbers of memory) and then contracts it with δ (:func:`dense_fisher`, kept as a cross-check).

Precision: the copy is float64, but some transformers code casts inside on purpose (Llama and
Gemma RMSNorm upcast ``.to(float32)``, softmax with ``dtype=float32``, GPT-Neo's query/key). The
probe records every op that returns a narrower float (``FisherProbe.low_precision_ops``) and its
rounding floors use that dtype's unit roundoff; the report says so.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np

from deadir.arrays import FloatArray, as_vector
from deadir.direction import dead_channels, effective_scale, live_fraction
from deadir.errors import DeadirError, DegenerateScaleError, InputShapeError
from deadir.models import find_norms
from deadir.norms import NormSpec
from deadir.report import render_table

Family = Literal["read-bias", "read-beta0", "lm-head-softmax", "keys-constant", "write-residual"]
FAMILIES: tuple[str, ...] = get_args(Family)
Role = Literal["linear", "key", "lm-head"]
ChangeOf = Literal["log-probs", "logits"]

#: float64 unit roundoff u = 2⁻⁵³.
UNIT_ROUNDOFF = 2.0**-53
#: |γᵢ| ≤ this × median |γ| is reported as a dead channel in the notes.
DEAD_CHANNEL_REL_TOL = 1e-6


class UnsupportedArchitectureError(DeadirError, TypeError):
    """A model whose architecture has no consumer table in :data:`ARCHITECTURES`."""


@dataclasses.dataclass(frozen=True, eq=False)
class DeadDirection:
    """A family of candidate function-preserving directions in parameter space.

    One item covers the whole linear family spanned by its free vector (``u`` on the read side,
    ``w`` on the write side), of length :attr:`free_dim`.

    Attributes:
        family: "read-bias", "read-beta0", "lm-head-softmax", "keys-constant" or "write-residual".
        site: path of the norm that makes it dead (read side: the norm the consumer reads;
            write side: the first norm that reads the written stream).
        module: path of the consumer (read side) or writer (write side) module.
        layer: block index as a string, or "embeddings" / "head" outside blocks (report rows).
        params: names of the perturbed parameters as in ``model.named_parameters()`` (a tied
            parameter appears under its first name).
        free_dim: length of the vector passed to :meth:`perturbation`.
        exact: True when the theorem makes the direction exactly function-preserving for this
            model; False for the negative-control candidates (e.g. the same formula after an
            RMSNorm).
        norm_kind: the kind of the norm at ``site`` ("layernorm", "rmsnorm", ...).
        reason: which theorem, and why it is (or is not) exact here.
    """

    family: Family
    site: str
    module: str
    layer: str
    params: tuple[str, ...]
    free_dim: int
    exact: bool
    norm_kind: str
    reason: str
    _build: Callable[[FloatArray], dict[str, FloatArray]] = dataclasses.field(repr=False)
    _shapes: Mapping[str, tuple[tuple[int, ...], Any]] = dataclasses.field(repr=False)
    _default: FloatArray = dataclasses.field(repr=False)

    def perturbation(self, u_or_w: Any = None, *, dtype: Any = None) -> dict[str, Any]:
        """The perturbation δθ of this family for the free vector ``u_or_w`` (not normalised).

        Args:
            u_or_w: vector of length :attr:`free_dim` (numpy, sequence or tensor); None gives the
                family's canonical choice (all ones; for an untied LM head w = γ⁻¹, c = 0, T7's
                instance).
            dtype: torch dtype of the tensors; None keeps each parameter's dtype. Fisher and
                function-change measurements use float64 (a float32 δ would round the
                cancellation between δW and δb, leaving a float32-sized residue).

        Returns:
            parameter name → torch tensor with that parameter's shape.

        Raises:
            InputShapeError: ``u_or_w`` is not a finite vector of length :attr:`free_dim`.
        """
        import torch

        vec = self._default if u_or_w is None else as_vector(u_or_w, name="u_or_w")
        if vec.size != self.free_dim or not np.all(np.isfinite(vec)):
            raise InputShapeError(
                f"u_or_w: expected a finite vector of length {self.free_dim} for {self.family} at {self.module}, "
                f"got size {vec.size}"
            )
        out = {}
        for name, array in self._build(vec).items():
            shape, pdtype = self._shapes[name]
            out[name] = torch.as_tensor(array, dtype=dtype or pdtype).reshape(shape)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (without tensors)."""
        return {
            "family": self.family, "site": self.site, "module": self.module, "layer": self.layer,
            "params": list(self.params), "free_dim": self.free_dim, "exact": self.exact,
            "norm_kind": self.norm_kind, "reason": self.reason,
        }


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


PlanBuilder = Callable[[Mapping[str, Any], Any], Plan]


def _blocks(paths: Iterable[str], pattern: str) -> list[tuple[str, int]]:
    """(prefix, block index) for every path matching ``(prefix)<pattern with {i}>``, sorted by index."""
    rx = re.compile(r"^(?P<p>(?:.+\.)?)" + pattern.replace(".", r"\.").replace("{i}", r"(?P<i>\d+)") + "$")
    found = []
    for path in paths:
        m = rx.match(path)
        if m:
            found.append((m.group("p"), int(m.group("i"))))
    return sorted(found, key=lambda t: t[1])


def _plan_gpt2(mods: Mapping[str, Any], config: Any) -> Plan:
    blocks = _blocks(mods, "h.{i}.ln_1")
    if not blocks:
        raise UnsupportedArchitectureError("gpt2: no module named like 'h.<i>.ln_1'")
    p = blocks[0][0]
    neo = getattr(config, "model_type", "") == "gpt_neo"
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


def _plan_bert(mods: Mapping[str, Any], config: Any) -> Plan:
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


def _plan_llama(mods: Mapping[str, Any], config: Any) -> Plan:
    return _decoder_plan(mods, config, mlp_norm="post_attention_layernorm", sandwich=False)


def _plan_gemma2(mods: Mapping[str, Any], config: Any) -> Plan:
    """Gemma 2 / Gemma 3 text: sandwich norms (a norm before and after attention and the MLP)."""
    return _decoder_plan(mods, config, mlp_norm="pre_feedforward_layernorm", sandwich=True)


#: model_type → plan builder (the per-architecture consumer table).
ARCHITECTURES: dict[str, PlanBuilder] = {
    "gpt2": _plan_gpt2,
    "gpt_neo": _plan_gpt2,
    "bert": _plan_bert,
    "llama": _plan_llama,
    "mistral": _plan_llama,
    "qwen2": _plan_llama,
    "gemma": _plan_llama,
    "gemma2": _plan_gemma2,
    "gemma3_text": _plan_gemma2,
    "roberta": _plan_bert,
}


def plan_for(model: Any) -> Plan:
    """The consumer/writer table of ``model`` (a transformers PreTrainedModel).

    Raises:
        UnsupportedArchitectureError: the model's ``config.model_type`` has no table.
    """
    config = getattr(model, "config", None)
    arch = str(getattr(config, "model_type", type(model).__name__))
    builder = ARCHITECTURES.get(arch)
    if builder is None:
        raise UnsupportedArchitectureError(
            f"model: architecture {arch!r} has no consumer table; supported: {sorted(ARCHITECTURES)}"
        )
    return builder(dict(model.named_modules()), config)


# --------------------------------------------------------------------------- enumeration


def _norm_specs(model: Any) -> dict[str, NormSpec]:
    """path → NormSpec of every norm module the library can read (via :func:`deadir.models.find_norms`)."""
    return {site.path: site.spec for site in find_norms(model, errors="skip")}


def _is_conv1d(module: Any) -> bool:
    # transformers.pytorch_utils.Conv1D: y = x W + b with W of shape (in, out)
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _layer_of(path: str) -> str:
    m = re.search(r"\.(?:h|layer|layers)\.(\d+)\.", "." + path + ".")
    if m:
        return m.group(1)
    return "head" if ("lm_head" in path or path.startswith("cls.") or "pooler" in path) else "embeddings"


class _Params:
    """Parameter names and tying of one model."""

    def __init__(self, model: Any) -> None:
        self.name = {id(p): n for n, p in model.named_parameters()}
        self.users: dict[int, list[str]] = {}
        for path, module in model.named_modules():
            for attr, p in module.named_parameters(recurse=False):
                self.users.setdefault(id(p), []).append(f"{path}.{attr}" if path else attr)

    def of(self, module: Any, attr: str) -> tuple[str, tuple[tuple[int, ...], Any]] | None:
        p = getattr(module, attr, None)
        if p is None or id(p) not in self.name:
            return None
        return self.name[id(p)], (tuple(p.shape), p.dtype)

    def shared_with(self, module: Any, attr: str, own: str) -> list[str]:
        p = getattr(module, attr, None)
        if p is None:
            return []
        return [u for u in self.users.get(id(p), []) if u != f"{own}.{attr}"]


def candidate_parameter_directions(model: Any) -> tuple[list[DeadDirection], list[str]]:
    """Every direction the T7/T8 formulas build for ``model``, with an exactness verdict each.

    On a LayerNorm model the candidates are the dead directions; on an RMSNorm model the same
    formulas give the negative control (``exact=False`` with the reason). Also returns notes
    (skipped sites, the plan's stream description).

    Raises:
        UnsupportedArchitectureError: no consumer table for the architecture.
    """
    plan = plan_for(model)
    mods = dict(model.named_modules())
    specs = _norm_specs(model)
    params = _Params(model)
    notes = [f"{plan.arch}: {plan.note}"]
    out: list[DeadDirection] = []

    def spec_of(path: str) -> NormSpec | None:
        if path not in specs:
            if path in mods:
                notes.append(f"{path}: {type(mods[path]).__name__} is not a norm deadir can read; skipped")
            return None
        return specs[path]

    tied_heads: dict[str, str] = {}  # embedding module path → head module path sharing its weight
    for read in plan.reads:
        if read.role == "lm-head" and read.consumer in mods:
            for user in params.shared_with(mods[read.consumer], "weight", read.consumer):
                tied_heads[user.rsplit(".", 1)[0]] = read.consumer

    for read in plan.reads:
        spec, consumer = spec_of(read.norm), mods.get(read.consumer)
        if spec is None or consumer is None:
            continue
        try:
            out.extend(_read_candidates(read, spec, consumer, params))
        except DegenerateScaleError as err:
            notes.append(f"{read.norm} → {read.consumer}: skipped, γ⁻¹ undefined ({err})")
    for write in plan.writes:
        writer = mods.get(write.writer)
        if writer is None:
            continue
        reader_specs = [spec_of(r) for r in write.readers if r in mods]
        if any(s is None for s in reader_specs) or not reader_specs:
            notes.append(f"{write.writer}: a reader of its stream is not a readable norm; skipped")
            continue
        kinds = sorted({s.kind for s in reader_specs if s is not None})
        if write.writer in tied_heads:
            out.append(_tied_head_candidate(write, tied_heads[write.writer], kinds, writer, mods, params))
        else:
            cand = _write_candidate(write, kinds, writer, params)
            if cand is not None:
                out.append(cand)
    if not any(s.kind == "layernorm" for s in specs.values()):
        notes.append(
            "no LayerNorm in this model: it has none of the read-side or write-side dead families "
            "(the candidates built by the same formulas are a negative control, exact=False); "
            "an untied LM head still has the softmax-shift directions 𝟙wᵀ, a fact about softmax, not the norm"
        )
    for path in sorted({r.norm for r in plan.reads if r.norm in specs}):
        spec = specs[path]
        if spec.kind != "layernorm":
            continue
        dead = dead_channels(spec.gamma, rel_tol=DEAD_CHANNEL_REL_TOL)
        if dead.size and dead.size < spec.size:
            notes.append(
                f"{path}: {dead.size} dead channel(s) (|γᵢ| ≤ {DEAD_CHANNEL_REL_TOL:g}·median) {dead[:8].tolist()}; "
                f"γ⁻¹ has {live_fraction(spec.gamma, dead):.2e} of its norm on the live channels, so its read "
                "directions are essentially 'move the weights of the dead channels' (still exact)"
            )
    return out, notes


def dead_parameter_directions(model: Any) -> list[DeadDirection]:
    """The exact function-preserving directions that LayerNorm induces in ``model`` (T7, T8).

    Returns the candidates that are exact *and* hinge on a LayerNorm; an RMSNorm model returns
    an empty list (softmax-shift directions of an untied LM head are dead in every model, a fact
    about softmax rather than the norm, and are not returned there).

    Raises:
        UnsupportedArchitectureError: no consumer table for the architecture.
    """
    cands, _ = candidate_parameter_directions(model)
    return [c for c in cands if c.exact and c.norm_kind == "layernorm"]


def _inverse_gamma(spec: NormSpec, name: str) -> FloatArray:
    return np.asarray(1.0 / effective_scale(spec.gamma, name=f"{name}.gamma"), dtype=np.float64)


_NOT_LN = {
    "rmsnorm": "RMSNorm has no mean-centring: ⟨γ⁻¹, y⟩ = Σ xᵢ/rms(x) varies with the input (T5)",
}


def _read_candidates(
    read: Read,
    spec: NormSpec,
    consumer: Any,
    params: _Params,
) -> list[DeadDirection]:
    ln = spec.kind == "layernorm"
    not_ln = _NOT_LN.get(spec.kind, f"{spec.kind} is not a LayerNorm; T1 does not hold")
    weight = params.of(consumer, "weight")
    if weight is None:
        return []
    wname, wshape = weight
    bias = params.of(consumer, "bias")
    conv = _is_conv1d(consumer)
    ginv = _inverse_gamma(spec, read.norm)
    beta = spec.beta
    c = float(ginv @ beta)
    n_out = wshape[0][1] if conv else wshape[0][0]
    d = ginv.size
    layer = _layer_of(read.consumer)
    out: list[DeadDirection] = []
    shared = params.shared_with(consumer, "weight", read.consumer)

    def outer_w(u: FloatArray) -> FloatArray:
        return np.outer(ginv, u) if conv else np.outer(u, ginv)

    base: dict[str, Any] = {"site": read.norm, "module": read.consumer, "layer": layer, "norm_kind": spec.kind}
    tie_note = f"; but its weight is shared with {shared}, which the perturbation also moves" if shared else ""
    if bias is not None:
        bname, bshape = bias

        def build_bias(u: FloatArray) -> dict[str, FloatArray]:
            return {wname: outer_w(u), bname: -c * u}

        exact = ln and not shared
        why = ("T7: δ(Wy+b) = u⟨γ⁻¹, y − β⟩ = 0 for every input because 𝟙ᵀz = 0 (T1)"
               if ln else f"not exact: {not_ln}")
        out.append(DeadDirection(
            "read-bias", params=(wname, bname), free_dim=n_out, exact=exact, reason=why + tie_note,
            _build=build_bias, _shapes={wname: wshape, bname: bshape}, _default=np.ones(n_out), **base,
        ))
    elif not np.any(beta) or read.role == "key":
        beta0 = not np.any(beta)
        family: Family = "read-beta0" if beta0 else "keys-constant"
        if beta0:
            exact = ln and not shared
            why = ("T7 with β = 0: δ(Wy) = u⟨γ⁻¹, y⟩ = u⟨γ⁻¹, β⟩ = 0 for every input"
                   if ln else f"not exact: {not_ln}")
        else:
            exact = ln and not read.rotary and not shared
            why = ("T7 keys: δk = u⟨γ⁻¹, y⟩ = u⟨γ⁻¹, β⟩ is the same vector for every position, so each "
                   "query's scores shift by one constant, which softmax over keys ignores (no rotary)")
            if read.rotary:
                why = "not exact: rotary embeddings rotate the constant key shift differently at each position"
            elif not ln:
                why = f"not exact: {not_ln}"

        def build_w(u: FloatArray) -> dict[str, FloatArray]:
            return {wname: outer_w(u)}

        if read.role != "lm-head" or not shared:  # a tied head is handled with its embedding
            out.append(DeadDirection(
                family, params=(wname,), free_dim=n_out, exact=exact, reason=why + tie_note,
                _build=build_w, _shapes={wname: wshape}, _default=np.ones(n_out), **base,
            ))
    if read.role == "lm-head" and not shared:
        names = (wname,) + ((bias[0],) if bias is not None else ())
        shapes = {wname: wshape} | ({bias[0]: bias[1]} if bias is not None else {})
        bname_opt = bias[0] if bias is not None else None

        def build_head(wc: FloatArray) -> dict[str, FloatArray]:
            # δlogits = 𝟙 (⟨w, y⟩ + c): the same shift for every vocabulary entry
            res = {wname: np.outer(wc[:d], np.ones(n_out)) if conv else np.outer(np.ones(n_out), wc[:d])}
            if bname_opt is not None:
                res[bname_opt] = np.full(n_out, wc[d])
            return res

        free = d + (1 if bias is not None else 0)
        default = np.concatenate([ginv, np.zeros(free - d)])
        why = ("T7 softmax: δW = 𝟙wᵀ shifts every logit of a position by ⟨w, y⟩, which softmax ignores; "
               "exact for any w and any norm (T7 names w = γ⁻¹)")
        if read.softcap:
            why = ("not exact: the logits are soft-capped (cap·tanh(ℓ/cap)) before the softmax, and the cap "
                   "does not commute with a common shift")
        out.append(DeadDirection(
            "lm-head-softmax", params=names, free_dim=free, exact=not read.softcap, reason=why,
            _build=build_head, _shapes=shapes, _default=default, **base,
        ))
    return out


def _write_candidate(write: Write, kinds: Sequence[str], writer: Any, params: _Params) -> DeadDirection | None:
    weight = params.of(writer, "weight")
    if weight is None:
        return None
    wname, wshape = weight
    bias = params.of(writer, "bias")
    conv = _is_conv1d(writer)
    embedding = type(writer).__name__.endswith("Embedding") or isinstance(getattr(writer, "num_embeddings", None), int)
    shape = wshape[0]
    if embedding:
        n_free, d = shape[0], shape[1]
    elif conv:
        n_free, d = shape[0], shape[1]
    else:
        d, n_free = shape[0], shape[1]
    free = n_free + (1 if bias is not None else 0)
    shared = params.shared_with(writer, "weight", write.writer)
    bname = bias[0] if bias is not None else None

    def build(w: FloatArray) -> dict[str, FloatArray]:
        ones = np.ones(d)
        res = {wname: np.outer(w[:n_free], ones) if (embedding or conv) else np.outer(ones, w[:n_free])}
        if bname is not None:
            res[bname] = np.full(d, w[n_free])
        return res

    all_ln = list(kinds) == ["layernorm"]
    exact = all_ln and not shared
    if all_ln:
        why = (f"T8: the write moves the stream by a multiple of 𝟙 and LN(x + t𝟙) = LN(x); the stream is read only "
               f"by LayerNorms ({len(write.readers)} readers: {write.readers[0]} …)")
    else:
        why = f"not exact: the stream is read by {'/'.join(kinds)} norms, which see a shift along 𝟙 (T8 fails)"
    if shared:
        why += f"; but its weight is shared with {shared}"
    shapes = {wname: wshape} | ({bias[0]: bias[1]} if bias is not None else {})
    return DeadDirection(
        "write-residual", site=write.readers[0], module=write.writer, layer=_layer_of(write.writer),
        params=tuple(shapes), free_dim=free, exact=exact, norm_kind=kinds[0] if len(kinds) == 1 else "mixed",
        reason=why, _build=build, _shapes=shapes, _default=np.ones(free),
    )


def _tied_head_candidate(
    write: Write, head: str, kinds: Sequence[str], writer: Any, mods: Mapping[str, Any], params: _Params
) -> DeadDirection:
    weight = params.of(writer, "weight")
    assert weight is not None  # the tie was found through this weight
    wname, wshape = weight
    head_mod = mods[head]
    bias = params.of(head_mod, "bias")
    bname = bias[0] if bias is not None else None
    shapes = {wname: wshape} | ({bias[0]: bias[1]} if bias is not None else {})
    n_vocab, d = wshape[0]

    def build(c: FloatArray) -> dict[str, FloatArray]:
        res: dict[str, FloatArray] = {wname: np.full((n_vocab, d), c[0])}
        if bname is not None:
            res[bname] = np.full(n_vocab, c[1])
        return res

    all_ln = list(kinds) == ["layernorm"]
    if all_ln:
        why = ("tied head: δE = c𝟙𝟙ᵀ shifts every embedding by c𝟙 (invisible: the stream is read only by LayerNorms, "
               "T8) and every logit by c⟨𝟙, y⟩ (invisible to softmax, T7); other 𝟙wᵀ would move the embeddings")
    else:
        why = (f"not exact: the head is tied to {write.writer}, whose stream is read by {'/'.join(kinds)} norms; "
               "the embedding shift c𝟙 changes their output (T8 fails)")
    return DeadDirection(
        "lm-head-softmax", site=write.readers[0], module=f"{head} (tied to {write.writer})", layer="head",
        params=tuple(shapes), free_dim=1 + (1 if bias is not None else 0), exact=all_ln,
        norm_kind=kinds[0] if len(kinds) == 1 else "mixed", reason=why, _build=build, _shapes=shapes,
        _default=np.ones(1 + (1 if bias is not None else 0)),
    )


# --------------------------------------------------------------------------- Fisher information


Direction = DeadDirection | Mapping[str, Any]


def _prepare_inputs(inputs: Any) -> dict[str, Any]:
    import torch

    if isinstance(inputs, torch.Tensor):
        if inputs.is_floating_point() or inputs.is_complex():
            raise InputShapeError(f"inputs: a tensor must hold token ids (an integer dtype), got {inputs.dtype}")
        return {"input_ids": inputs if inputs.ndim >= 2 else inputs.unsqueeze(0)}
    if not isinstance(inputs, Mapping) or not inputs:
        raise InputShapeError(
            "inputs: expected a tensor of token ids or a non-empty dict of keyword arguments, "
            f"got {type(inputs).__name__}"
        )
    out = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            value = value.to(torch.float64)  # measurements in float64 (pixel values, embeddings, ...)
        out[str(key)] = value
    return out


def _logits_of(output: Any) -> Any:
    import torch

    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, torch.Tensor):
        logits = output
    if logits is None:
        raise InputShapeError(
            f"model: its output ({type(output).__name__}) has no .logits; the Fisher information needs a predictive "
            "distribution, so use a model with a head (…ForCausalLM, …ForMaskedLM, …ForSequenceClassification)"
        )
    return logits


_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def _low_precision_ops(model: Any, inputs: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
    """Run ``model(**inputs)`` once, recording every op that returns a floating tensor narrower than float64.

    transformers casts to float32 inside some float64 forwards on purpose (Llama/Gemma RMSNorm
    upcast, softmax with dtype=float32, GPT-Neo's query/key): there the "float64" measurement
    rounds at float32 and every floor must use float32's unit roundoff. Returns (output, op → dtype).
    """
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_leaves

    seen: dict[str, str] = {}

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and leaf.dtype != torch.float64:
                    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or str(func)
                    seen.setdefault(str(name), str(leaf.dtype).removeprefix("torch."))
            return out

    with torch.no_grad(), Spy():
        output = model(**inputs)
    return output, seen


def _force_eager_attention(model: Any) -> None:
    # forward-mode AD is not implemented for every fused attention kernel; the eager path is plain matmuls
    setter = getattr(model, "set_attn_implementation", None)
    if callable(setter):
        try:
            setter("eager")
            return
        except (ValueError, TypeError, AttributeError):
            pass
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            config._attn_implementation = "eager"


class FisherProbe:
    """A float64 copy of a model and fixed inputs, for many directional measurements.

    The model is deep-copied, cast to float64, put in eval mode (no dropout) and switched to eager
    attention; the original is not modified. The predictive distribution p = softmax(logits) of
    the unperturbed copy is computed once.

    Positions: every leading index of the logits (batch × sequence for a language model, batch for
    a classifier) is one position; when ``inputs`` has an ``attention_mask`` of exactly those
    leading dimensions, padded positions (mask 0) are left out of every average and maximum.

    Raises:
        InputShapeError: bad ``inputs``, or a model output without logits.
    """

    def __init__(self, model: Any, inputs: Any) -> None:
        import torch

        self.inputs = _prepare_inputs(inputs)
        self.forward_dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.model = copy.deepcopy(model).to(torch.float64).eval()
        _force_eager_attention(self.model)
        self.model.requires_grad_(False)  # forward-mode only: no autograd graph is needed
        self.params = dict(self.model.named_parameters())
        canonical = {id(p): n for n, p in self.params.items()}
        self.aliases = {n: canonical[id(p)] for n, p in self.model.named_parameters(remove_duplicate=False)}
        output, self.low_precision_ops = _low_precision_ops(self.model, self.inputs)
        self.logits = _logits_of(output).to(torch.float64)
        #: unit roundoff of the narrowest float the float64 copy actually computes in (see low_precision_ops)
        self.unit_roundoff = max([UNIT_ROUNDOFF, *(_ROUNDOFF.get(d, 2.0**-8) for d in self.low_precision_ops.values())])
        self.compute_dtype = min(
            ["float64", *self.low_precision_ops.values()], key=lambda d: -_ROUNDOFF.get(d, 2.0**-8)
        )
        self.vocab = int(self.logits.shape[-1])
        lead = tuple(self.logits.shape[:-1])
        mask = self.inputs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and tuple(mask.shape) == lead:
            weights = mask.to(torch.float64).reshape(-1)
        else:
            weights = torch.ones(int(np.prod(lead)) if lead else 1, dtype=torch.float64)
        if float(weights.sum()) <= 0:
            raise InputShapeError("inputs.attention_mask: no position is unmasked")
        self.weights = weights / weights.sum()
        self.p = torch.softmax(self.logits.reshape(-1, self.vocab), dim=-1)

    def unit(self, direction: Direction) -> dict[str, Any]:
        """``direction`` as float64 tensors on this copy's parameter names, scaled to unit Frobenius norm.

        Raises:
            InputShapeError: unknown parameter names, wrong shapes, or a zero direction.
        """
        import torch

        raw = direction.perturbation(dtype=torch.float64) if isinstance(direction, DeadDirection) else direction
        if not isinstance(raw, Mapping) or not raw:
            raise InputShapeError("direction: expected a DeadDirection or a non-empty dict parameter name → tensor")
        out: dict[str, Any] = {}
        for given, value in raw.items():
            if given not in self.aliases:
                raise InputShapeError(f"direction: {given!r} is not a parameter name of the model")
            name = self.aliases[given]  # a tied parameter may be named by any of its names
            t = torch.as_tensor(value).to(torch.float64)
            if tuple(t.shape) != tuple(self.params[name].shape):
                raise InputShapeError(
                    f"direction[{name!r}]: shape {tuple(t.shape)} differs from the parameter's "
                    f"{tuple(self.params[name].shape)}"
                )
            out[name] = out[name] + t if name in out else t
        norm = math.sqrt(sum(float((t * t).sum()) for t in out.values()))
        if not (norm > 0 and math.isfinite(norm)):
            raise InputShapeError(f"direction: its norm is {norm}; a direction must be non-zero and finite")
        return {k: v / norm for k, v in out.items()}

    def _call(self, overrides: Mapping[str, Any]) -> Any:
        import torch

        out = torch.func.functional_call(self.model, dict(overrides), args=(), kwargs=self.inputs)
        return _logits_of(out)

    def jvp(self, direction: Direction) -> Any:
        """J_δ: the derivative of the logits along the unit direction (float64, shape of the logits)."""
        import torch

        delta = self.unit(direction)
        names = list(delta)

        def f(*values: Any) -> Any:
            return self._call(dict(zip(names, values, strict=True)))

        primals = tuple(self.params[n].detach() for n in names)
        with warnings.catch_warnings():
            # torch's first forward-AD call loads its JVP decompositions through torch.jit.script, which
            # itself warns that torch.jit.script is deprecated: a torch-internal notice, not about this call
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning
            )
            out = torch.func.jvp(f, primals, tuple(delta[n] for n in names))
        return out[1]

    def fisher(self, direction: Direction) -> float:
        """F(δ) = mean over positions of J_δᵀ(diag p − ppᵀ)J_δ = Var_p(J_δ) for the unit direction δ."""
        j = self.jvp(direction).reshape(-1, self.vocab)
        # Var_p(j) as Σ p (j − E_p j)²: non-negative by construction, no cancellation of two large terms
        centred = j - (self.p * j).sum(-1, keepdim=True)
        per_position = (self.p * centred * centred).sum(-1)
        return float((self.weights * per_position).sum())

    def function_change(self, direction: Direction, t: float, *, output: ChangeOf = "log-probs") -> float:
        """max |Δ| over unmasked positions and classes when θ moves to θ + t δ, δ the unit direction.

        ``output="log-probs"`` (default) compares log p = log_softmax(logits): the predictive
        distribution, blind to the per-position constant that softmax ignores (the lm-head-softmax
        family moves the logits by exactly such a constant). ``output="logits"`` compares raw logits.
        """
        import torch

        if not math.isfinite(t):
            raise InputShapeError(f"t: must be finite, got {t!r}")
        if output not in ("log-probs", "logits"):
            raise InputShapeError(f"output: expected 'log-probs' or 'logits', got {output!r}")
        delta = self.unit(direction)
        with torch.no_grad():
            moved = self._call({n: self.params[n].detach() + t * d for n, d in delta.items()}).to(torch.float64)
        if output == "log-probs":
            diff = torch.log_softmax(moved, -1) - torch.log_softmax(self.logits, -1)
        else:
            diff = moved - self.logits
        per_position = diff.abs().reshape(-1, self.vocab).amax(-1)
        return float(per_position[self.weights > 0].max())

    def random_direction(self, names: Sequence[str], generator: Any) -> dict[str, Any]:
        """A Gaussian direction over the parameter tensors ``names`` (same shapes), for baselines."""
        import torch

        return {
            n: torch.randn(self.params[n].shape, generator=generator, dtype=torch.float64) for n in names
        }

    def rounding_depth(self) -> int:
        """Over-estimate of the longest chain of float64 accumulations a logit depends on.

        Σ fan-in of every Linear / Conv1D / head + Σ size of every norm + (sequence length) ×
        (number of such layers): each matrix product, norm statistic and attention sum on the
        way from the inputs to a logit is one recursive sum of at most that length.
        """
        import torch

        total = 0
        n_layers = 0
        for module in self.model.modules():
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.Tensor):
                continue
            if isinstance(module, torch.nn.Linear):
                total += int(weight.shape[1])
                n_layers += 1
            elif _is_conv1d(module):
                total += int(weight.shape[0])
                n_layers += 1
            elif weight.ndim == 1:
                total += int(weight.shape[0])
        seq = int(self.logits.shape[-2]) if self.logits.ndim >= 3 else 1
        return total + seq * n_layers

    def fisher_floor(self, scale: float) -> float:
        """Rounding floor for the Fisher along an exactly dead unit direction: (n u)² · scale.

        For an exactly dead direction J_δ = 0 and the computed tangent is pure rounding. With
        recursive-summation error γ_n ≈ n·u (n = :meth:`rounding_depth`) relative to the size of
        the tangent terms being summed, and those terms of the size of the tangents of unit random
        directions of the same tensors (``scale`` = their median Fisher), the computed Fisher is at
        most (n·u)²·scale, u the unit roundoff of the narrowest float the copy computes in
        (:attr:`unit_roundoff`: float32 where transformers casts inside, e.g. Llama's RMSNorm).
        This is a first-order estimate, not a rigorous bound for the whole network;
        it is pessimistic (rounding errors add like √n, not n, in practice).
        """
        return (self.rounding_depth() * self.unit_roundoff) ** 2 * scale

    def change_floor(self, scale: float) -> float:
        """Rounding floor for the output change along an exactly dead direction: 2 n u (max|output| + scale).

        Both forwards round with relative error ≤ n·u (n = :meth:`rounding_depth`) against the size
        of the terms summed: the logits, plus the perturbation's contributions, which are of the size
        of the change along a random unit direction at the same t (``scale``).
        """
        import torch

        size = max(float(self.logits.abs().max()), float(torch.log_softmax(self.logits, -1).abs().max()))
        return 2 * self.rounding_depth() * self.unit_roundoff * (size + scale)


def directional_fisher(model: Any, inputs: Any, direction: Direction) -> float:
    """Fisher information of the model's predictive distribution along a parameter direction.

    F(δ) = E_x[J_δᵀ (diag p − p pᵀ) J_δ] for the unit direction δ (normalised to Frobenius norm 1
    over all its tensors), p = softmax(logits) over the vocabulary / classes, J_δ the directional
    derivative of the logits, computed exactly by one forward-mode JVP on a float64 copy of the
    model; E_x is the mean over every (unmasked) position of the logits. Units: nats per unit²
    of parameter distance.

    Args:
        model: a torch model whose output has ``.logits`` (or is the logits tensor).
        inputs: keyword arguments for ``model(**inputs)``, or a tensor of token ids.
        direction: a :class:`DeadDirection` (its default free vector) or parameter name → tensor.

    Raises:
        InputShapeError: bad inputs, unknown parameter names, wrong shapes, zero direction, no logits.
    """
    return FisherProbe(model, inputs).fisher(direction)


def function_change(
    model: Any, inputs: Any, direction: Direction, t: float, *, output: ChangeOf = "log-probs"
) -> float:
    """max |Δ output| (float64) when the parameters move by distance ``t`` along the unit ``direction``.

    ``output``: "log-probs" (default; log_softmax of the logits, the predictive distribution) or
    "logits" (raw; the lm-head-softmax family moves them by a per-position constant). Same
    conventions and errors as :func:`directional_fisher`.
    """
    return FisherProbe(model, inputs).function_change(direction, t, output=output)


def dense_fisher(model: Any, inputs: Any, direction: Direction) -> float:
    """The same Fisher information from the dense float64 Jacobian (``torch.func.jacrev``).

    Builds ∂logits/∂θ for every entry of the direction's tensors (N·V × P numbers), contracts it
    with δ and forms Σ J_δᵀ(diag p − ppᵀ)J_δ: a cross-check for tiny models only.
    """
    import torch

    probe = FisherProbe(model, inputs)
    delta = probe.unit(direction)
    names = list(delta)

    def f(*values: Any) -> Any:
        return probe._call(dict(zip(names, values, strict=True))).reshape(-1, probe.vocab)

    jac = torch.func.jacrev(f, argnums=tuple(range(len(names))))(*(probe.params[n].detach() for n in names))
    j = sum((jac[i].reshape(*jac[i].shape[:2], -1) * delta[n].reshape(-1)).sum(-1) for i, n in enumerate(names))
    p = probe.p
    fisher_per = (p * j * j).sum(-1) - (p * j).sum(-1) ** 2  # the textbook diag p − ppᵀ form
    return float((probe.weights * fisher_per).sum())


# --------------------------------------------------------------------------- report


@dataclasses.dataclass(frozen=True)
class FisherRow:
    """One (family, layer, predicted) group of :func:`fisher_report`.

    Each direction i of the group gets its Fisher F_i and the median R_i of the Fisher of
    ``n_random`` Gaussian unit directions of the *same* parameter tensors; ratios are F_i / R_i.
    """

    family: str
    layer: str
    count: int
    dim: int
    exact: bool
    max_fisher: float
    min_fisher: float
    median_random_fisher: float
    max_ratio: float
    min_ratio: float
    floor: float
    measured: Literal["dead", "live", "mixed"]

    @property
    def agrees(self) -> bool:
        """Whether the measurement matches the prediction (dead ⇔ every direction at or below its floor)."""
        return self.measured == ("dead" if self.exact else "live")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FisherReport:
    """Directional Fisher information of every candidate dead direction of a model."""

    arch: str
    forward_dtype: str
    measure_dtype: str
    rows: tuple[FisherRow, ...]
    notes: tuple[str, ...]
    n_random: int
    rounding_depth: int

    HEADERS = ("family", "layer", "count", "dim", "predicted", "max Fisher", "median random Fisher", "max ratio",
               "min ratio", "floor", "measured")

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch, "forward_dtype": self.forward_dtype, "measure_dtype": self.measure_dtype,
            "n_random": self.n_random, "rounding_depth": self.rounding_depth,
            "rows": [{**r.to_dict(), "agrees": r.agrees} for r in self.rows], "notes": list(self.notes),
        }

    def table_rows(self) -> list[tuple[Any, ...]]:
        return [
            (r.family, r.layer, r.count, r.dim, "dead" if r.exact else "live", r.max_fisher,
             r.median_random_fisher, r.max_ratio, r.min_ratio, r.floor, r.measured)
            for r in self.rows
        ]

    def render(self) -> str:
        """A plain-text table followed by the notes."""
        title = (f"Directional Fisher information ({self.arch}; model dtype {self.forward_dtype}, measured in "
                 f"{self.measure_dtype}; one JVP per direction; baseline: {self.n_random} random unit directions "
                 "of the same tensors)")
        text = render_table(self.HEADERS, self.table_rows(), title=title)
        return text + ("\n" + "\n".join(f"note: {n}" for n in self.notes) if self.notes else "")


def fisher_report(
    model: Any, inputs: Any, *, n_random: int = 8, seed: int = 0, include_negative: bool = True
) -> FisherReport:
    """Measure the Fisher information along every candidate direction, grouped by (family, layer).

    For each direction (a seeded random free vector, normalised to a unit parameter direction): its
    Fisher F, the median R over ``n_random`` Gaussian unit directions of the same parameter tensors,
    the ratio F/R and the rounding floor (:meth:`FisherProbe.fisher_floor` of R); a group is measured
    "dead" when every direction is at or below its floor, "live" when none is. Candidates that the
    theorems predict are not exact (``include_negative``; e.g. the same formulas in an RMSNorm
    model) are measured too.

    Cost: (1 + ``n_random``) forward-mode JVPs of the float64 model per direction.

    Raises:
        UnsupportedArchitectureError, InputShapeError: see :func:`candidate_parameter_directions`
            and :class:`FisherProbe`.
    """
    import torch

    if n_random < 1:
        raise InputShapeError(f"n_random: must be ≥ 1, got {n_random}")
    cands, notes = candidate_parameter_directions(model)
    if not include_negative:
        cands = [c for c in cands if c.exact]
    probe = FisherProbe(model, inputs)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    groups: dict[tuple[str, str, bool], list[DeadDirection]] = {}
    for c in cands:
        groups.setdefault((c.family, c.layer, c.exact), []).append(c)
    rows = []
    for (family, layer, exact), items in groups.items():
        values, randoms, floors = [], [], []
        for c in items:
            values.append(probe.fisher(c.perturbation(rng.standard_normal(c.free_dim), dtype=torch.float64)))
            med = float(np.median([
                probe.fisher(probe.random_direction(list(c.params), gen)) for _ in range(n_random)
            ]))
            randoms.append(med)
            floors.append(probe.fisher_floor(med))
        ratios = [v / r if r > 0 else math.inf for v, r in zip(values, randoms, strict=True)]
        below = [v <= f for v, f in zip(values, floors, strict=True)]
        measured: Literal["dead", "live", "mixed"] = "dead" if all(below) else "live" if not any(below) else "mixed"
        rows.append(FisherRow(
            family=family, layer=layer, count=len(items), dim=sum(c.free_dim for c in items), exact=exact,
            max_fisher=max(values), min_fisher=min(values), median_random_fisher=float(np.median(randoms)),
            max_ratio=max(ratios), min_ratio=min(ratios), floor=max(floors), measured=measured,
        ))
    arch = plan_for(model).arch
    measure = "float64"
    if probe.low_precision_ops:
        measure = f"float64 with {probe.compute_dtype} inside"
        ops = ", ".join(f"{op} → {dt}" for op, dt in sorted(probe.low_precision_ops.items())[:6])
        notes.append(
            f"the model's own code computes in {probe.compute_dtype} inside its float64 copy ({ops}); "
            f"floors use that dtype's unit roundoff {probe.unit_roundoff:.3g}"
        )
    return FisherReport(arch, probe.forward_dtype, measure, tuple(rows), tuple(notes), n_random,
                        probe.rounding_depth())


def with_lm_head(model: Any, *, seed: int = 0) -> tuple[Any, str]:
    """``model`` with a predictive head, for the Fisher information; returns (model, note).

    A model that already has output embeddings (…ForCausalLM, …ForMaskedLM) is returned as is.
    A base model (``AutoModel``, as ``deadir verify`` loads checkpoints) gets the masked-LM head of
    its architecture when there is one, else the causal-LM head: the base weights are copied in,
    a head tied to the input embeddings uses the real embeddings, and head weights the base model
    does not have are random-init (``seed``), which the note says.

    Raises:
        UnsupportedArchitectureError: no masked-LM or causal-LM class for the architecture.
    """
    import torch

    if callable(getattr(model, "get_output_embeddings", None)) and model.get_output_embeddings() is not None:
        return model, f"{type(model).__name__}: the model's own head"
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", ""))
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        auto: Any = AutoModelForMaskedLM
    elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        auto = AutoModelForCausalLM
    else:
        raise UnsupportedArchitectureError(f"model: no masked-LM or causal-LM head class for {model_type!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        headed = auto.from_config(config)
    p = next(model.parameters())
    headed = headed.to(device=p.device, dtype=p.dtype).eval()
    base = headed.base_model
    result = base.load_state_dict(model.state_dict(), strict=False)
    if result.missing_keys:
        raise UnsupportedArchitectureError(
            f"model: its weights do not fill {type(base).__name__}; missing {result.missing_keys[:5]}"
        )
    prefix = getattr(headed, "base_model_prefix", "")
    new = sorted(n for n in dict(headed.named_parameters()) if not n.startswith(prefix + "."))
    return headed, (
        f"{type(headed).__name__} built around the given {type(model).__name__}; parameters outside the base "
        f"model are random-init (seed {seed}) unless tied to it: {new[:6]}{' …' if len(new) > 6 else ''}"
    )
