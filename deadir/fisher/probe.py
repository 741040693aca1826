"""The directional Fisher information of a model along a parameter-space direction, measured exactly.

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
rounding floors use that dtype's unit roundoff (:mod:`deadir.precision`); the report says so.

Large vocabularies (:meth:`FisherProbe.fisher_many`): when the logits are exactly the output of
the model's output-embedding ``Linear`` (checked on the unperturbed forward: the head's input
comes out unchanged when the head is an identity, so no soft-cap, slicing or scaling follows), the
body is differentiated with the head replaced by the identity, giving the hidden tangent ḣ, and
the head is applied by vocabulary chunks of ``vocab_chunk`` rows: logits l_c = h W_cᵀ + b_c,
J_c = ḣ W_cᵀ + h Ẇ_cᵀ + ḃ_c. The normaliser log Σ_v exp l_v is one logsumexp pass over chunks at
construction; each chunk then contributes its probability mass P_c, its mean μ_c = Σ_c p J / P_c
and its centred sum M2_c = Σ_c p (J − μ_c)², merged in float64 by Chan's pairwise update
M2 ← M2 + M2_c + (μ_c − μ)² P P_c / (P + P_c). That equals Σ_v p_v (J_v − E_p J)² (the old
centred full-vocabulary form) up to float64 rounding, and never subtracts the two large sums of
the textbook Σ p J² − (Σ p J)² (which would leave u·J² of cancellation on an exactly dead
softmax-shift direction, far above the rounding floor). Memory: O(N · vocab_chunk · block) for
the chunk, flat in the vocabulary size. Directions come in blocks of ``tangent_block`` tangents
through ``torch.func.vmap`` over ``torch.func.jvp``: one primal pass per block.

Lean mode (the default where it applies; :class:`FisherProbe`): the input embedding and the head
weight are not copied to float64 but read in their stored dtype, by chunks upcast exactly to
float64 (the body reads the gathered rows of the tokens present), so a 262k-row tied table costs
no float64 copy; a direction along such a table is a row-chunked view (a stride-0 constant, or
Gaussian draws replayed from a saved generator state), never a float64 table either.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from deadir.errors import InputShapeError
from deadir.fisher.directions import DeadDirection, is_conv1d
from deadir.precision import UNIT_ROUNDOFF

__all__ = [
    "DEFAULT_TANGENT_BLOCK",
    "DEFAULT_VOCAB_CHUNK",
    "LARGE_TENSOR",
    "ChangeOf",
    "Direction",
    "FisherProbe",
    "dense_fisher",
    "directional_fisher",
    "function_change",
]

#: vocabulary rows per chunk of the head (4096 × N positions × block float64 numbers per chunk)
DEFAULT_VOCAB_CHUNK = 4096
#: tangents per primal pass (vmap over jvp)
DEFAULT_TANGENT_BLOCK = 8
#: a block's tangents hold at most this many float64 numbers (an embedding-sized tangent goes alone)
_BLOCK_NUMBERS = 1 << 24

ChangeOf = Literal["log-probs", "logits"]

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


def _low_precision_ops(run: Callable[[], Any]) -> tuple[Any, dict[str, str]]:
    """Call ``run()`` (a forward) once, recording every op that returns a floating tensor narrower than float64.

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
        output = run()
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


#: rows per generation step of a chunked Gaussian (a multiple of 16: torch's CPU normal sampler fills 16 at a time,
#: so drawing in such steps reproduces one ``torch.randn`` call of the whole tensor bit for bit)
_GAUSS_ROWS = 1024
#: a random baseline direction of a tensor with at least this many entries is drawn as float32 normals upcast
#: to float64 (:meth:`_Rows.gaussian`; by both the lean and the plain probe, so they measure the same directions);
#: smaller tensors keep float64 draws
LARGE_TENSOR = 1 << 22


class _Rows:
    """A float64 view, by row ranges, of a tensor kept in its stored dtype, times a scale.

    A direction along a large table (the 262k × 640 tied embedding of Gemma 3) is never copied to
    float64 whole: its rows are read, upcast (exactly: float32/bfloat16/float16 ⊂ float64) and scaled
    chunk by chunk. The source is a tensor (possibly a stride-0 ``expand`` of a constant, which
    costs nothing), the sum of two sources, or a Gaussian drawn in steps of :data:`_GAUSS_ROWS`
    rows from a saved generator state (redrawn on every pass instead of held in memory).
    """

    def __init__(self, shape: tuple[int, ...], source: Any, scale: float = 1.0) -> None:
        self.shape = shape
        self.source = source
        self.scale = scale
        self._sq: float | None = None
        self._gathered: tuple[Any, Any] | None = None

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def _raw_blocks(self, step: int) -> Iterator[Any]:
        import torch

        src = self.source
        if isinstance(src, torch.Tensor):
            for a in range(0, self.shape[0], step):
                yield src[a : a + step].to(torch.float64)
        elif isinstance(src, tuple) and src[0] == "sum":
            for x, y in zip(src[1].blocks(step), src[2].blocks(step), strict=True):
                yield x + y
        else:  # ("gauss", generator state): replay the draws in the same steps, regroup to ``step`` rows
            gen = torch.Generator()
            gen.set_state(src[1])
            buf: list[Any] = []
            have = 0
            for a, rows in _gauss_steps(self.shape):
                buf.append(torch.randn((rows, *self.shape[1:]), generator=gen, dtype=torch.float32).to(torch.float64))
                have += rows
                while have >= step or (have and a + rows >= self.shape[0]):
                    cat = torch.cat(buf) if len(buf) > 1 else buf[0]
                    take = min(step, have)
                    yield cat[:take]
                    buf = [cat[take:]] if take < have else []
                    have -= take

    def blocks(self, step: int) -> Iterator[Any]:
        """Consecutive float64 row blocks of ``step`` rows (the last may be shorter), scaled."""
        for block in self._raw_blocks(step):
            yield block * self.scale if self.scale != 1.0 else block

    def sq_norm(self) -> float:
        """Σ entries² in float64 (one pass; cached)."""
        if self._sq is None:
            self._sq = sum(float((b * b).sum()) for b in self._raw_blocks(_GAUSS_ROWS * 8)) * self.scale**2
        return self._sq

    def gather(self, index: Any) -> Any:
        """Rows ``index`` (a sorted 1-D long tensor) as float64, scaled; one pass unless cached."""
        import torch

        src = self.source
        if isinstance(src, torch.Tensor):
            raw = src[index].to(torch.float64)
        elif self._gathered is not None and torch.equal(self._gathered[0], index):
            raw = self._gathered[1]
        else:
            parts, a = [], 0
            for block in self._raw_blocks(_GAUSS_ROWS * 8):
                b = a + block.shape[0]
                sel = index[(index >= a) & (index < b)] - a
                parts.append(block[sel])
                a = b
            raw = torch.cat(parts)
            self._gathered = (index, raw)
        return raw * self.scale if self.scale != 1.0 else raw

    def scaled(self, factor: float) -> _Rows:
        out = _Rows(self.shape, self.source, self.scale * factor)
        out._sq = None if self._sq is None else self._sq * factor**2
        out._gathered = self._gathered
        return out

    def plus(self, other: _Rows) -> _Rows:
        return _Rows(self.shape, ("sum", self, other))

    def full(self) -> Any:
        """The whole tensor in float64 (the reference paths; small models only)."""
        import torch

        return torch.cat(list(self.blocks(max(1, _GAUSS_ROWS * 8)))).reshape(self.shape)

    @staticmethod
    def gaussian(shape: tuple[int, ...], generator: Any, index: Any = None) -> _Rows:
        """N(0, 1) entries drawn in float32 (4× cheaper than float64) and upcast exactly: equal to
        ``torch.randn(shape, generator=generator, dtype=float32).to(float64)``.

        Advances ``generator`` exactly as that call would; computes Σ entries² and the rows ``index``
        on the way (one pass), so that later passes are the head's chunks only.
        """
        import torch

        out = _Rows(shape, ("gauss", generator.get_state()))
        sq, parts = 0.0, []
        for a, rows in _gauss_steps(shape):
            block = torch.randn((rows, *shape[1:]), generator=generator, dtype=torch.float32).to(torch.float64)
            sq += float((block * block).sum())
            if index is not None:
                parts.append(block[index[(index >= a) & (index < a + block.shape[0])] - a])
        out._sq = sq
        if index is not None:
            out._gathered = (index, torch.cat(parts))
        return out


def _gauss_steps(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(first row, rows) of each draw: :data:`_GAUSS_ROWS` rows, a last draw of < 16 numbers merged into the one before.

    torch's CPU sampler fills groups of 16 numbers and redraws the last 16 of a call whose size is
    not a multiple of 16 (a call of < 16 numbers goes number by number): with every draw but the
    last a multiple of 16 numbers and the last ≥ 16 (or the only one), the draws equal one call.
    """
    per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    steps = [(a, min(_GAUSS_ROWS, shape[0] - a)) for a in range(0, shape[0], _GAUSS_ROWS)]
    if len(steps) > 1 and steps[-1][1] * per_row < 16:
        (a, r), (_, last) = steps[-2], steps[-1]
        steps[-2:] = [(a, r + last)]
    return steps


def _dense(value: Any) -> Any:
    return value.full() if isinstance(value, _Rows) else value


class FisherProbe:
    """A float64 copy of a model and fixed inputs, for many directional measurements.

    The model is deep-copied, cast to float64, put in eval mode (no dropout) and switched to eager
    attention; the original is not modified. The predictive distribution p = softmax(logits) of
    the unperturbed copy is computed once.

    Lean mode (``lean=True``, the default, used whenever it applies: token-id inputs, an
    ``nn.Embedding`` input table, an ``nn.Linear`` head whose output is the logits untouched): the
    input embedding and the head weight are *not* copied to float64. They stay shared with the
    model in their stored dtype; the body reads only the rows of the tokens present, gathered and
    upcast once (the embedding module's index is remapped to those rows), and the head is applied
    by vocabulary chunks upcast per chunk. Upcasting float32/bfloat16/float16 to float64 is exact,
    so every number the model computes is the float64 copy's own; directions along those tables are
    read by row chunks too (never a float64 copy of the table). Memory: the float64 body plus
    O(vocab_chunk · (d + positions · block)) for the head, flat in the vocabulary size.

    Positions: every leading index of the logits (batch × sequence for a language model, batch for
    a classifier) is one position; when ``inputs`` has an ``attention_mask`` of exactly those
    leading dimensions, padded positions (mask 0) are left out of every average and maximum.

    Raises:
        InputShapeError: bad ``inputs``, or a model output without logits.
    """

    def __init__(
        self,
        model: Any,
        inputs: Any,
        *,
        vocab_chunk: int = DEFAULT_VOCAB_CHUNK,
        tangent_block: int = DEFAULT_TANGENT_BLOCK,
        lean: bool = True,
    ) -> None:
        import torch

        if not (isinstance(vocab_chunk, int) and vocab_chunk >= 1):
            raise InputShapeError(f"vocab_chunk: must be an integer ≥ 1, got {vocab_chunk!r}")
        if not (isinstance(tangent_block, int) and tangent_block >= 1):
            raise InputShapeError(f"tangent_block: must be an integer ≥ 1, got {tangent_block!r}")
        self.vocab_chunk = vocab_chunk
        self.tangent_block = tangent_block
        self.inputs = _prepare_inputs(inputs)
        self.forward_dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self._head: Any = None
        self._head_weight: str | None = None
        self._head_bias: str | None = None
        self._logits: Any = None
        self._p: Any = None
        #: parameter names kept in their stored dtype (lean mode: the input embedding, the head weight)
        self.lean_names: frozenset[str] = frozenset()
        self._emb_name: str | None = None
        self._rows_index: Any = None  # sorted token ids present in the inputs (lean)
        self._emb_rows: Any = None  # their embedding rows, float64 (lean)
        hidden = None
        kept = _lean_tables(model, self.inputs) if lean else None
        if kept is not None:
            self.model = _float64_copy(model, keep=kept)
            _force_eager_attention(self.model)
            self.model.requires_grad_(False)
            self._index_params()
            head = self._find_head()
            if head is not None:
                self._setup_lean_embedding()
                hidden = self._capture_hidden(head)
            if hidden is None:  # the logits are not the head's output untouched: the plain float64 copy
                self._emb_name, self._rows_index, self._emb_rows, self.lean_names = None, None, None, frozenset()
                del self.model
        if hidden is None:
            self.model = _float64_copy(model)
            _force_eager_attention(self.model)
            self.model.requires_grad_(False)  # forward-mode only: no autograd graph is needed
            self._index_params()
            head = self._find_head()
            if head is not None:
                hidden = self._capture_hidden(head)
        if hidden is None:
            self._head = None
            output, self.low_precision_ops = _low_precision_ops(lambda: self.model(**self.inputs))
            self._logits = _logits_of(output).to(torch.float64)
            lead = tuple(self._logits.shape[:-1])
            self.vocab = int(self._logits.shape[-1])
        else:
            self._head = head
            self._head_weight = self.canonical[id(head.weight)]
            self._head_bias = self.canonical[id(head.bias)] if getattr(head, "bias", None) is not None else None
            lead = tuple(hidden.shape[:-1])
            self.vocab = int(head.weight.shape[0])
            self._hidden = hidden.reshape(-1, hidden.shape[-1])
            self._lse = self._chunked_logsumexp()
        #: parameters the body reads (a tied head weight is one of them; an untied head weight is not)
        self.body_names = frozenset(
            self.canonical[id(p)] for path, m in self.model.named_modules() if m is not self._head
            for _, p in m.named_parameters(recurse=False) if id(p) in self.canonical
        )
        #: shape of the logits (positions …, vocabulary)
        self.logits_shape = (*lead, self.vocab)
        #: unit roundoff of the narrowest float the float64 copy actually computes in (see low_precision_ops)
        self.unit_roundoff = max([UNIT_ROUNDOFF["float64"], *(_roundoff(d) for d in self.low_precision_ops.values())])
        self.compute_dtype = min(
            ["float64", *self.low_precision_ops.values()], key=lambda d: -_roundoff(d)
        )
        mask = self.inputs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and tuple(mask.shape) == lead:
            weights = mask.to(torch.float64).reshape(-1)
        else:
            weights = torch.ones(int(np.prod(lead)) if lead else 1, dtype=torch.float64)
        if float(weights.sum()) <= 0:
            raise InputShapeError("inputs.attention_mask: no position is unmasked")
        self.weights = weights / weights.sum()

    def _index_params(self) -> None:
        self.params = dict(self.model.named_parameters())
        self.canonical = {id(p): n for n, p in self.params.items()}
        self.aliases = {n: self.canonical[id(p)] for n, p in self.model.named_parameters(remove_duplicate=False)}

    def _setup_lean_embedding(self) -> None:
        """Gather the input rows once and remap the embedding's index to them (lean mode)."""
        import torch

        emb = self.model.get_input_embeddings()
        name = self.canonical[id(emb.weight)]
        ids = self.inputs["input_ids"]
        index = torch.unique(ids)
        remap = torch.full((int(emb.weight.shape[0]),), -1, dtype=torch.long)
        remap[index] = torch.arange(index.numel())
        self._emb_name = name
        self._rows_index = index
        self._emb_rows = emb.weight.detach()[index].to(torch.float64)
        head = self.model.get_output_embeddings()
        self.lean_names = frozenset({name, self.canonical[id(head.weight)]})
        n_rows = int(index.numel())

        def forward(input_ids: Any, *args: Any, **kwargs: Any) -> Any:
            # only the gathered float64 rows may stand in for the table (functional_call passes them)
            if emb.weight.shape[0] != n_rows or emb.weight.dtype != torch.float64:
                raise RuntimeError("lean FisherProbe: the embedding is called without its gathered float64 rows")
            return type(emb).forward(emb, remap[input_ids], *args, **kwargs)

        emb.forward = forward

    def _capture_hidden(self, head: Any) -> Any:
        """The head's input on the unperturbed forward, when the logits are exactly the head's output; else None."""
        import torch

        captured: list[Any] = []
        hook = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            with self._identity_head(head):
                output, self.low_precision_ops = _low_precision_ops(lambda: self._run(self._with_rows({})))
        finally:
            hook.remove()
        out = _logits_of(output)
        # chunking is exact only when the logits are the head's output untouched
        if len(captured) == 1 and out.shape == captured[0].shape and torch.equal(out, captured[0]):
            return out.to(torch.float64)
        return None

    @property
    def lean(self) -> bool:
        """Whether the input embedding and head weight stay in their stored dtype (see the class docstring)."""
        return bool(self.lean_names)

    @property
    def chunked(self) -> bool:
        """Whether :meth:`fisher_many` applies the head by vocabulary chunks (else it holds the full logits)."""
        return self._head is not None

    @property
    def logits(self) -> Any:
        """The unperturbed float64 logits (positions …, vocabulary); built on first use when chunked."""
        import torch

        if self._logits is None:
            with torch.no_grad():
                self._logits = self._call({}).to(torch.float64)
        return self._logits

    @property
    def p(self) -> Any:
        """softmax(logits) as (positions, vocabulary) float64; built on first use."""
        import torch

        if self._p is None:
            self._p = torch.softmax(self.logits.reshape(-1, self.vocab), dim=-1)
        return self._p

    def _find_head(self) -> Any:
        import torch

        getter = getattr(self.model, "get_output_embeddings", None)
        head = getter() if callable(getter) else None
        if not isinstance(head, torch.nn.Linear) or id(head.weight) not in self.canonical:
            return None
        if head.bias is not None and id(head.bias) not in self.canonical:
            return None
        return head

    @staticmethod
    @contextlib.contextmanager
    def _identity_head(head: Any) -> Iterator[None]:
        # an instance attribute shadows Linear.forward: the model returns the head's input as its "logits"
        head.forward = _identity
        try:
            yield
        finally:
            del head.forward

    def _head_rows(self, a: int, b: int) -> tuple[Any, Any]:
        import torch

        assert self._head_weight is not None
        weight = self.params[self._head_weight][a:b].to(torch.float64)  # exact upcast of a lean head's chunk
        bias = self.params[self._head_bias][a:b].to(torch.float64) if self._head_bias is not None else None
        return weight, bias

    def _chunked_logsumexp(self) -> Any:
        import torch

        lse = torch.full((self._hidden.shape[0],), -math.inf, dtype=torch.float64)
        for a in range(0, self.vocab, self.vocab_chunk):
            w, b = self._head_rows(a, min(a + self.vocab_chunk, self.vocab))
            logits = torch.nn.functional.linear(self._hidden, w, b)
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=-1))
        return lse

    def unit(self, direction: Direction) -> dict[str, Any]:
        """``direction`` as float64 tensors on this copy's parameter names, scaled to unit Frobenius norm.

        In lean mode a direction along a stored-dtype table (:attr:`lean_names`) stays a row-chunked
        view (never copied to float64 whole); elsewhere values are float64 tensors.

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
            t: Any
            if name in self.lean_names:
                t = value if isinstance(value, _Rows) else _Rows(tuple(torch.as_tensor(value).shape),
                                                                 torch.as_tensor(value))
            else:
                t = _dense(value) if isinstance(value, _Rows) else torch.as_tensor(value).to(torch.float64)
            if tuple(t.shape) != tuple(self.params[name].shape):
                raise InputShapeError(
                    f"direction[{name!r}]: shape {tuple(t.shape)} differs from the parameter's "
                    f"{tuple(self.params[name].shape)}"
                )
            if name in out:
                out[name] = out[name].plus(t) if isinstance(t, _Rows) else out[name] + t
            else:
                out[name] = t
        norm = math.sqrt(sum(t.sq_norm() if isinstance(t, _Rows) else float((t * t).sum()) for t in out.values()))
        if not (norm > 0 and math.isfinite(norm)):
            raise InputShapeError(f"direction: its norm is {norm}; a direction must be non-zero and finite")
        return {k: v.scaled(1 / norm) if isinstance(v, _Rows) else v / norm for k, v in out.items()}

    def _run(self, overrides: Mapping[str, Any]) -> Any:
        import torch

        return torch.func.functional_call(self.model, dict(overrides), args=(), kwargs=self.inputs)

    def _with_rows(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Lean mode: the embedding's override becomes its gathered rows (the index is remapped to them)."""
        import torch

        out = dict(overrides)
        if self._emb_name is not None:
            full = out.get(self._emb_name)
            out[self._emb_name] = self._emb_rows if full is None else full[self._rows_index].to(torch.float64)
            for name in self.lean_names - {self._emb_name}:
                out.pop(name, None)  # an untied stored-dtype head: applied outside the body
        return out

    def _body(self, overrides: Mapping[str, Any]) -> Any:
        """The head's input (the head replaced by the identity), positions × hidden."""
        assert self._head is not None
        with self._identity_head(self._head):
            return _logits_of(self._run(self._with_rows(overrides)))

    def _call(self, overrides: Mapping[str, Any]) -> Any:
        """The full logits with the parameters ``overrides`` (name → full-shape tensor) substituted."""
        import torch

        if not self.lean:
            return _logits_of(self._run(overrides))
        assert self._head_weight is not None
        h = self._body(overrides)
        w = overrides.get(self._head_weight, self.params[self._head_weight]).to(torch.float64)
        b = None
        if self._head_bias is not None:
            b = overrides.get(self._head_bias, self.params[self._head_bias]).to(torch.float64)
        return torch.nn.functional.linear(h, w, b)

    def _jvp_block(self, names: Sequence[str], tangents: Sequence[Any], *, body: bool) -> Any:
        """Tangents of the logits (``body`` False) or of the head's input (``body`` True) for a block.

        ``tangents[i]`` has shape (B, *shape of the override of ``names[i]``); returns
        (B, *output_shape), one primal pass. In lean mode the body's embedding override is its
        gathered rows (primal and tangent alike).
        """
        import torch

        fn = self._body if body else self._call
        gathered = body and self.lean

        def f(*values: Any) -> Any:
            over = dict(zip(names, values, strict=True))
            if gathered and self._emb_name in over:  # already the gathered rows: no second gather
                rows = over.pop(self._emb_name)
                with self._identity_head(self._head):
                    return _logits_of(self._run({**self._with_rows(over), self._emb_name: rows}))
            return fn(over)

        primals = tuple(
            self._emb_rows if gathered and n == self._emb_name else self.params[n].detach().to(torch.float64)
            for n in names
        )

        def one(*tangent: Any) -> Any:
            return torch.func.jvp(f, primals, tangent)[1]

        with warnings.catch_warnings():
            # torch's first forward-AD call loads its JVP decompositions through torch.jit.script, which
            # itself warns that torch.jit.script is deprecated: a torch-internal notice, not about this call
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning
            )
            if tangents[0].shape[0] == 1:
                return one(*(t[0] for t in tangents)).unsqueeze(0)
            return torch.func.vmap(one)(*tangents)

    def jvp(self, direction: Direction) -> Any:
        """J_δ: the derivative of the logits along the unit direction (float64, shape of the logits).

        Materialises the full logits' tangent (positions × vocabulary) and the direction in float64:
        the reference path, one direction per primal pass.
        """
        delta = self.unit(direction)
        names = list(delta)
        return self._jvp_block(names, [_dense(delta[n]).unsqueeze(0) for n in names], body=False)[0]

    def fisher_full(self, direction: Direction) -> float:
        """F(δ) by the reference path: one JVP of the full logits, Var_p over the whole vocabulary at once."""
        j = self.jvp(direction).reshape(-1, self.vocab)
        # Var_p(j) as Σ p (j − E_p j)²: non-negative by construction, no cancellation of two large terms
        centred = j - (self.p * j).sum(-1, keepdim=True)
        per_position = (self.p * centred * centred).sum(-1)
        return float((self.weights * per_position).sum())

    def fisher(self, direction: Direction) -> float:
        """F(δ) = mean over positions of J_δᵀ(diag p − ppᵀ)J_δ = Var_p(J_δ) for the unit direction δ."""
        return self.fisher_many([direction])[0]

    def fisher_many(self, directions: Sequence[Direction]) -> list[float]:
        """F(δ) of every direction, in blocks of :attr:`tangent_block` tangents per primal pass.

        Same value as :meth:`fisher_full` up to float64 rounding; when :attr:`chunked`, the head is
        applied by vocabulary chunks (module docstring) so that memory is flat in the vocabulary. A
        block whose directions move only an untied head needs no pass through the body (ḣ = 0).

        Raises:
            InputShapeError: a direction is invalid (see :meth:`unit`).
        """
        units = [self.unit(d) for d in directions]
        out: list[float] = [0.0] * len(units)
        order = sorted(range(len(units)), key=lambda i: tuple(sorted(units[i])))
        block: list[int] = []

        def size(i: int) -> int:
            # what a block holds in float64: a lean table's direction only as its gathered rows
            rows = 0 if self._rows_index is None else int(self._rows_index.numel())
            return sum(
                rows * int(np.prod(t.shape[1:])) if isinstance(t, _Rows) else int(t.numel())
                for t in units[i].values()
            )

        def flush() -> None:
            if not block:
                return
            names = sorted({n for i in block for n in units[i]})
            values = self._block_fisher(names, [units[i] for i in block])
            for i, v in zip(block, values, strict=True):
                out[i] = v
            block.clear()

        for i in order:
            if block and (
                len(block) >= self.tangent_block
                or sorted(units[i]) != sorted(units[block[0]])
                or (len(block) + 1) * size(i) > _BLOCK_NUMBERS
            ):
                flush()
            block.append(i)
        flush()
        return out

    def _stack(self, name: str, block: Sequence[Mapping[str, Any]], *, gathered: bool = False) -> Any:
        """The block's tangents of one parameter, (B, *shape); zeros for directions that do not move it."""
        import torch

        def one(d: Mapping[str, Any]) -> Any:
            value = d.get(name)
            if gathered:
                if value is None:
                    return torch.zeros_like(self._emb_rows)
                return value.gather(self._rows_index) if isinstance(value, _Rows) else value[self._rows_index]
            return torch.zeros_like(self.params[name], dtype=torch.float64) if value is None else _dense(value)

        return torch.stack([one(d) for d in block])

    def _block_fisher(self, names: Sequence[str], block: Sequence[Mapping[str, Any]]) -> list[float]:
        import torch

        n_dir = len(block)
        if self._head is None:
            tangents = [self._stack(n, block) for n in names]
            j = self._jvp_block(names, tangents, body=False).reshape(n_dir, -1, self.vocab)
            centred = j - (self.p * j).sum(-1, keepdim=True)
            per_position = (self.p * centred * centred).sum(-1)
            return [float(v) for v in (per_position * self.weights).sum(-1)]
        h = self._hidden
        n_pos = h.shape[0]
        body = [n for n in names if n in self.body_names]
        if body:
            tangents = [self._stack(n, block, gathered=self.lean and n == self._emb_name) for n in body]
            hdot = self._jvp_block(body, tangents, body=True).reshape(n_dir, -1, h.shape[-1])
        else:  # only an untied head moves: the head's input does not
            hdot = None
        wname, bname = self._head_weight or "", self._head_bias or ""
        # per direction, its head-weight tangent by vocabulary chunks (None: it does not move the head weight)
        wdots = [iter(_chunks_of(d[wname], self.vocab_chunk)) if wname in d else None for d in block]
        bdot = self._stack(bname, block) if bname in names else None
        mass = torch.zeros(n_pos, dtype=torch.float64)
        mean = torch.zeros(n_dir, n_pos, dtype=torch.float64)
        m2 = torch.zeros(n_dir, n_pos, dtype=torch.float64)
        for a in range(0, self.vocab, self.vocab_chunk):
            b = min(a + self.vocab_chunk, self.vocab)
            w, bias = self._head_rows(a, b)
            p = torch.exp(torch.nn.functional.linear(h, w, bias) - self._lse[:, None])  # (N, C)
            j = torch.matmul(hdot, w.T) if hdot is not None else torch.zeros(n_dir, n_pos, b - a, dtype=torch.float64)
            for k, it in enumerate(wdots):
                if it is not None:
                    j[k] += torch.matmul(h, next(it).T)  # h Ẇ_cᵀ for direction k
            if bdot is not None:
                j = j + bdot[:, None, a:b]
            mass_c = p.sum(-1)  # (N,)
            safe = torch.where(mass_c > 0, mass_c, torch.ones_like(mass_c))
            mean_c = (p * j).sum(-1) / safe
            m2_c = (p * (j - mean_c[..., None]) ** 2).sum(-1)
            total = mass + mass_c
            frac = torch.where(total > 0, mass_c / torch.where(total > 0, total, torch.ones_like(total)), total)
            delta = mean_c - mean
            # Chan et al.'s pairwise update: the cross term between two centred partial sums
            m2 = m2 + m2_c + delta * delta * (mass * frac)
            mean = mean + delta * frac
            mass = total
        return [float(v) for v in (m2 * self.weights).sum(-1)]

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
            moved = self._call(
                {n: self.params[n].detach().to(torch.float64) + t * _dense(d) for n, d in delta.items()}
            ).to(torch.float64)
        if output == "log-probs":
            diff = torch.log_softmax(moved, -1) - torch.log_softmax(self.logits, -1)
        else:
            diff = moved - self.logits
        per_position = diff.abs().reshape(-1, self.vocab).amax(-1)
        return float(per_position[self.weights > 0].max())

    def random_direction(self, names: Sequence[str], generator: Any) -> dict[str, Any]:
        """A Gaussian direction over the parameter tensors ``names`` (same shapes), for baselines.

        Tensors of at least :data:`LARGE_TENSOR` entries get float32 normals upcast to float64 (the
        same draws in lean and plain probes); a lean table's direction is a row-chunked view.
        """
        import torch

        out: dict[str, Any] = {}
        for n in names:
            shape = tuple(self.params[n].shape)
            if int(np.prod(shape)) < LARGE_TENSOR:
                out[n] = torch.randn(shape, generator=generator, dtype=torch.float64)
            else:  # float32 draws (4× cheaper); a stored-dtype table (lean) keeps them as row chunks, redrawn per pass
                lazy = _Rows.gaussian(shape, generator, self._rows_index if n == self._emb_name else None)
                out[n] = lazy if n in self.lean_names else lazy.full()
        return out

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
            elif is_conv1d(module):
                total += int(weight.shape[0])
                n_layers += 1
            elif weight.ndim == 1:
                total += int(weight.shape[0])
        seq = int(self.logits_shape[-2]) if len(self.logits_shape) >= 3 else 1
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

    probe = FisherProbe(model, inputs, lean=False)
    delta = probe.unit(direction)
    names = list(delta)

    def f(*values: Any) -> Any:
        return probe._call(dict(zip(names, values, strict=True))).reshape(-1, probe.vocab)

    jac = torch.func.jacrev(f, argnums=tuple(range(len(names))))(*(probe.params[n].detach() for n in names))
    j = sum((jac[i].reshape(*jac[i].shape[:2], -1) * delta[n].reshape(-1)).sum(-1) for i, n in enumerate(names))
    p = probe.p
    fisher_per = (p * j * j).sum(-1) - (p * j).sum(-1) ** 2  # the textbook diag p − ppᵀ form
    return float((probe.weights * fisher_per).sum())


def _float64_copy(model: Any, keep: frozenset[int] = frozenset()) -> Any:
    """A deep copy of ``model`` whose floating tensors are float64, built without a same-dtype copy first.

    ``deepcopy(model).to(float64)`` holds the model three times at its peak (original, copy, float64
    copy); pre-filling deepcopy's memo with the float64 tensors holds it twice (≈ 1 GB less for
    Gemma 3 270M). Tied parameters stay tied (one memo entry per tensor). The parameters whose ids
    are in ``keep`` are not copied at all: the copy's parameter shares the original's storage and
    dtype (lean mode; their readers upcast what they read).
    """
    import torch

    memo: dict[int, Any] = {}
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in memo:
            continue
        if id(t) in keep:
            memo[id(t)] = torch.nn.Parameter(t.detach(), requires_grad=False)
        elif t.is_floating_point():
            data = t.detach().to(torch.float64, copy=True)
            memo[id(t)] = torch.nn.Parameter(data, requires_grad=False) if isinstance(t, torch.nn.Parameter) else data
    out = copy.deepcopy(model, memo)
    # every floating tensor is float64 already; ``.to(float64)`` would also upcast the kept ones whole
    return (out if keep else out.to(torch.float64)).eval()


def _lean_tables(model: Any, inputs: Mapping[str, Any]) -> frozenset[int] | None:
    """Ids of the input-embedding and head weights a lean probe keeps in their stored dtype, or None.

    Lean mode needs token ids (the rows read are known), an ``nn.Embedding`` input table read by
    nothing but itself and an ``nn.Linear`` head (tied to it or not); whether the logits are the
    head's output untouched is checked on the copy's first forward.
    """
    import torch

    ids = inputs.get("input_ids")
    if not isinstance(ids, torch.Tensor) or "inputs_embeds" in inputs:
        return None
    emb = model.get_input_embeddings() if callable(getattr(model, "get_input_embeddings", None)) else None
    head = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
    if not isinstance(emb, torch.nn.Embedding) or not isinstance(head, torch.nn.Linear):
        return None
    if not emb.weight.is_floating_point() or not head.weight.is_floating_point():
        return None
    allowed = {id(emb), id(head)}
    for module in model.modules():
        if id(module) in allowed:
            continue
        if any(p is emb.weight or p is head.weight for p in module.parameters(recurse=False)):
            return None  # another module reads one of the tables: it would need the whole float64 table
    return frozenset({id(emb.weight), id(head.weight)})


def _chunks_of(value: Any, step: int) -> Iterator[Any]:
    """A head-weight tangent by consecutive row chunks, float64."""
    import torch

    if isinstance(value, _Rows):
        yield from value.blocks(step)
    else:
        for a in range(0, int(value.shape[0]), step):
            yield value[a : a + step].to(torch.float64)


def _identity(x: Any) -> Any:
    return x


def _roundoff(dtype: str) -> float:
    """u of a dtype an op returned; a float format deadir has no table for counts as the coarsest (bfloat16)."""
    return UNIT_ROUNDOFF.get(dtype, UNIT_ROUNDOFF["bfloat16"])
