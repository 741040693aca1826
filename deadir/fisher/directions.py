"""Parameter-space dead directions (docs/theory.md T7, T8): the candidate families and their verdicts.

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

Which module reads which norm is architecture knowledge: each record of :mod:`deadir.arch`
points at its Fisher plan builder (:mod:`deadir.arch.plans`), which states the stream's readers;
the write family is exact only when all of them are LayerNorms. The same formulas built after an
RMSNorm are the negative control: marked not exact, with the reason (T5: ⟨γ⁻¹, y⟩ = Σ xᵢ/rms(x)
varies with the input, RMS(x + t𝟙) ≠ RMS(x)).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np

from deadir import arch
from deadir.arch.plans import Plan, Read, UnsupportedArchitectureError, Write
from deadir.arrays import FloatArray, as_vector
from deadir.direction import dead_channels, effective_scale, live_fraction
from deadir.errors import DegenerateScaleError, InputShapeError
from deadir.models.sites import find_norms
from deadir.norms import NormSpec
from deadir.precision import DEAD_CHANNEL_REL_TOL

__all__ = [
    "FAMILIES",
    "DeadDirection",
    "Family",
    "candidate_parameter_directions",
    "dead_parameter_directions",
    "plan_for",
]

Family = Literal["read-bias", "read-beta0", "lm-head-softmax", "keys-constant", "write-residual"]
FAMILIES: tuple[str, ...] = get_args(Family)


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
            parameter name → torch tensor with that parameter's shape. A constant table (the tied
            head's c𝟙𝟙ᵀ) is a stride-0 ``expand`` view: read it, do not write into it.

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
            if array.size > 1 and not any(array.strides):
                # a constant table (the tied head's c𝟙𝟙ᵀ) stays a stride-0 view: 262k × 640 numbers cost nothing
                out[name] = torch.full((), float(array.flat[0]), dtype=dtype or pdtype).expand(shape)
            else:
                out[name] = torch.as_tensor(array, dtype=dtype or pdtype).reshape(shape)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (without tensors)."""
        return {
            "family": self.family, "site": self.site, "module": self.module, "layer": self.layer,
            "params": list(self.params), "free_dim": self.free_dim, "exact": self.exact,
            "norm_kind": self.norm_kind, "reason": self.reason,
        }


def plan_for(model: Any) -> Plan:
    """The consumer/writer plan of ``model`` (a transformers PreTrainedModel), from its architecture record.

    Raises:
        UnsupportedArchitectureError: the model's ``config.model_type`` has no record, or its record no plan.
    """
    config = getattr(model, "config", None)
    name = str(getattr(config, "model_type", type(model).__name__))
    record = arch.by_model_type(name)
    if record is None or record.fisher_plan is None:
        supported = sorted(t for r in arch.all_architectures() if r.fisher_plan is not None for t in r.model_types)
        raise UnsupportedArchitectureError(
            f"model: architecture {name!r} has no consumer table (Fisher plan); supported: {supported}"
        )
    return record.fisher_plan(dict(model.named_modules()), config)


# --------------------------------------------------------------------------- enumeration


def _norm_specs(model: Any) -> dict[str, NormSpec]:
    """path → NormSpec of every norm module the library can read (via :func:`deadir.models.find_norms`)."""
    return {site.path: site.spec for site in find_norms(model, errors="skip")}


def is_conv1d(module: Any) -> bool:
    """Whether ``module`` is transformers' Conv1D (y = x W + b with W of shape (in, out), transposed to Linear)."""
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
    conv = is_conv1d(consumer)
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
    conv = is_conv1d(writer)
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
        res: dict[str, FloatArray] = {wname: np.broadcast_to(np.float64(c[0]), (n_vocab, d))}
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
