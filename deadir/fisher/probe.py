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
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from deadir.errors import InputShapeError
from deadir.fisher.directions import DeadDirection, is_conv1d
from deadir.precision import UNIT_ROUNDOFF

__all__ = [
    "DEFAULT_TANGENT_BLOCK",
    "DEFAULT_VOCAB_CHUNK",
    "ChangeOf",
    "Direction",
    "FisherProbe",
    "dense_fisher",
    "directional_fisher",
    "function_change",
]

#: vocabulary rows per chunk of the head (8192 × N positions × block float64 numbers per chunk)
DEFAULT_VOCAB_CHUNK = 8192
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

    def __init__(
        self,
        model: Any,
        inputs: Any,
        *,
        vocab_chunk: int = DEFAULT_VOCAB_CHUNK,
        tangent_block: int = DEFAULT_TANGENT_BLOCK,
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
        self.model = _float64_copy(model)
        _force_eager_attention(self.model)
        self.model.requires_grad_(False)  # forward-mode only: no autograd graph is needed
        self.params = dict(self.model.named_parameters())
        canonical = {id(p): n for n, p in self.params.items()}
        self.aliases = {n: canonical[id(p)] for n, p in self.model.named_parameters(remove_duplicate=False)}
        self._head: Any = None
        self._head_weight: str | None = None
        self._head_bias: str | None = None
        self._logits: Any = None
        self._p: Any = None
        head = self._find_head(canonical)
        hidden = None
        if head is not None:
            captured: list[Any] = []
            hook = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
            try:
                with self._identity_head(head):
                    output, self.low_precision_ops = _low_precision_ops(self.model, self.inputs)
            finally:
                hook.remove()
            out = _logits_of(output)
            # chunking is exact only when the logits are the head's output untouched
            if len(captured) == 1 and out.shape == captured[0].shape and torch.equal(out, captured[0]):
                hidden = out.to(torch.float64)
        if hidden is None:
            self._head = None
            output, self.low_precision_ops = _low_precision_ops(self.model, self.inputs)
            self._logits = _logits_of(output).to(torch.float64)
            lead = tuple(self._logits.shape[:-1])
            self.vocab = int(self._logits.shape[-1])
        else:
            self._head = head
            self._head_weight = canonical[id(head.weight)]
            self._head_bias = canonical[id(head.bias)] if getattr(head, "bias", None) is not None else None
            lead = tuple(hidden.shape[:-1])
            self.vocab = int(head.weight.shape[0])
            self._hidden = hidden.reshape(-1, hidden.shape[-1])
            self._lse = self._chunked_logsumexp()
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

    def _find_head(self, canonical: Mapping[int, str]) -> Any:
        import torch

        getter = getattr(self.model, "get_output_embeddings", None)
        head = getter() if callable(getter) else None
        if not isinstance(head, torch.nn.Linear) or id(head.weight) not in canonical:
            return None
        if head.bias is not None and id(head.bias) not in canonical:
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
        assert self._head_weight is not None
        weight = self.params[self._head_weight][a:b]
        bias = self.params[self._head_bias][a:b] if self._head_bias is not None else None
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

    def _jvp_block(self, names: Sequence[str], tangents: Sequence[Any], *, body: bool) -> Any:
        """Tangents of the logits (``body`` False) or of the head's input (``body`` True) for a block.

        ``tangents[i]`` has shape (B, *param_shape); returns (B, *output_shape), one primal pass.
        """
        import torch

        def f(*values: Any) -> Any:
            return self._call(dict(zip(names, values, strict=True)))

        primals = tuple(self.params[n].detach() for n in names)

        def one(*tangent: Any) -> Any:
            return torch.func.jvp(f, primals, tangent)[1]

        with warnings.catch_warnings(), (
            self._identity_head(self._head) if body else contextlib.nullcontext()
        ):
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

        Materialises the full logits' tangent (positions × vocabulary): the reference path, one
        direction per primal pass.
        """
        delta = self.unit(direction)
        names = list(delta)
        return self._jvp_block(names, [delta[n].unsqueeze(0) for n in names], body=False)[0]

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
        applied by vocabulary chunks (module docstring) so that memory is flat in the vocabulary.

        Raises:
            InputShapeError: a direction is invalid (see :meth:`unit`).
        """
        import torch

        units = [self.unit(d) for d in directions]
        out: list[float] = [0.0] * len(units)
        order = sorted(range(len(units)), key=lambda i: tuple(sorted(units[i])))
        block: list[int] = []

        def size(i: int) -> int:
            return sum(int(t.numel()) for t in units[i].values())

        def flush() -> None:
            if not block:
                return
            names = sorted({n for i in block for n in units[i]})
            tangents = [
                torch.stack([units[i][n] if n in units[i] else torch.zeros_like(self.params[n]) for i in block])
                for n in names
            ]
            values = self._block_fisher(names, tangents)
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

    def _block_fisher(self, names: Sequence[str], tangents: Sequence[Any]) -> list[float]:
        import torch

        if self._head is None:
            j = self._jvp_block(names, tangents, body=False).reshape(int(tangents[0].shape[0]), -1, self.vocab)
            centred = j - (self.p * j).sum(-1, keepdim=True)
            per_position = (self.p * centred * centred).sum(-1)
            return [float(v) for v in (per_position * self.weights).sum(-1)]
        n_dir = int(tangents[0].shape[0])
        hdot = self._jvp_block(names, tangents, body=True).reshape(n_dir, -1, self._hidden.shape[-1])
        by_name = dict(zip(names, tangents, strict=True))
        wdot = by_name.get(self._head_weight or "")
        bdot = by_name.get(self._head_bias or "") if self._head_bias is not None else None
        h = self._hidden
        n_pos = h.shape[0]
        mass = torch.zeros(n_pos, dtype=torch.float64)
        mean = torch.zeros(n_dir, n_pos, dtype=torch.float64)
        m2 = torch.zeros(n_dir, n_pos, dtype=torch.float64)
        for a in range(0, self.vocab, self.vocab_chunk):
            b = min(a + self.vocab_chunk, self.vocab)
            w, bias = self._head_rows(a, b)
            p = torch.exp(torch.nn.functional.linear(h, w, bias) - self._lse[:, None])  # (N, C)
            j = torch.matmul(hdot, w.T)  # (B, N, C)
            if wdot is not None:
                j = j + torch.einsum("nd,bcd->bnc", h, wdot[:, a:b])
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


def _float64_copy(model: Any) -> Any:
    """A deep copy of ``model`` whose floating tensors are float64, built without a same-dtype copy first.

    ``deepcopy(model).to(float64)`` holds the model three times at its peak (original, copy, float64
    copy); pre-filling deepcopy's memo with the float64 tensors holds it twice (≈ 1 GB less for
    Gemma 3 270M). Tied parameters stay tied (one memo entry per tensor).
    """
    import torch

    memo: dict[int, Any] = {}
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point() and id(t) not in memo:
            data = t.detach().to(torch.float64, copy=True)
            memo[id(t)] = torch.nn.Parameter(data, requires_grad=False) if isinstance(t, torch.nn.Parameter) else data
    return copy.deepcopy(model, memo).to(torch.float64).eval()


def _identity(x: Any) -> Any:
    return x


def _roundoff(dtype: str) -> float:
    """u of a dtype an op returned; a float format deadir has no table for counts as the coarsest (bfloat16)."""
    return UNIT_ROUNDOFF.get(dtype, UNIT_ROUNDOFF["bfloat16"])
