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
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from deadir.errors import InputShapeError
from deadir.fisher.directions import DeadDirection, is_conv1d
from deadir.precision import UNIT_ROUNDOFF

__all__ = ["ChangeOf", "Direction", "FisherProbe", "dense_fisher", "directional_fisher", "function_change"]

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
        self.unit_roundoff = max([UNIT_ROUNDOFF["float64"], *(_roundoff(d) for d in self.low_precision_ops.values())])
        self.compute_dtype = min(
            ["float64", *self.low_precision_ops.values()], key=lambda d: -_roundoff(d)
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
            elif is_conv1d(module):
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


def _roundoff(dtype: str) -> float:
    """u of a dtype an op returned; a float format deadir has no table for counts as the coarsest (bfloat16)."""
    return UNIT_ROUNDOFF.get(dtype, UNIT_ROUNDOFF["bfloat16"])
