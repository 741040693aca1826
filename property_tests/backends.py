"""The norm implementations under test, each with the float64 reference it claims to implement.

HF classes are built directly (no weights, no hub). Their reference NormSpec is written here
(NormSpec.from_module learns them on another branch): Gemma scales by (1 + w) in its forward
(transformers 5.23, GemmaRMSNorm.forward: ``output * (1.0 + self.weight.float())``), so its
weight offset is 1; OlmoLayerNorm has no parameters and a fixed ε = 1e-5; CohereLayerNorm
centres (it is a LayerNorm without bias despite computing in float32).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deadir.norms import NormKind, NormSpec

DTYPES = ("float16", "bfloat16", "float32", "float64")


class FunctionalLayerNorm(torch.nn.Module):
    """torch.nn.functional.layer_norm with its own weight, bias and eps (the functional backend)."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.bias = torch.nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


@dataclasses.dataclass(frozen=True)
class Backend:
    """A norm implementation: ``make(d)`` returns a module or NormSpec; ``kind`` its algebra."""

    name: str
    make: Callable[[int], Any]
    kind: NormKind
    dtypes: tuple[str, ...] = DTYPES
    weight_offset: float = 0.0
    fixed_eps: float | None = None  # ε of a module that does not expose it
    # HF norms upcast to float32 whatever the input dtype (`.to(torch.float32)` / `.float()` in
    # their forward), so in float64 they compute in float32: declared, not hidden
    compute_dtype: str | None = None
    groups: Callable[[int], int] | None = None  # number of groups at size d (GroupNorm)

    def reference(self, d: int) -> NormSpec:
        """The float64 spec of the algebra the backend implements (γ, β, ε are filled in by the checks)."""
        extra: dict[str, Any] = {} if self.groups is None else {"groups": self.groups(d)}
        return NormSpec(self.kind, d=d, eps=self.fixed_eps if self.fixed_eps is not None else 1e-5,
                        weight_offset=self.weight_offset, source=self.name, **extra)


def _hf(module_path: str, cls: str) -> Callable[[int], Any]:
    def make(d: int) -> Any:
        import importlib

        return getattr(importlib.import_module(module_path), cls)(d)

    return make


def _spec(kind: NormKind, offset: float = 0.0) -> Callable[[int], Any]:
    return lambda d: NormSpec(kind, np.ones(d), np.zeros(d), 1e-5, weight_offset=offset, source=f"numpy {kind}")


MEAN_CENTRING = (
    Backend("numpy reference", _spec("layernorm"), "layernorm", ("float64",)),
    Backend("numpy reference (1+w)", _spec("layernorm", 1.0), "layernorm", ("float64",), weight_offset=1.0),
    Backend("F.layer_norm", FunctionalLayerNorm, "layernorm"),
    Backend("nn.LayerNorm", lambda d: torch.nn.LayerNorm(d), "layernorm"),
    Backend("nn.LayerNorm(bias=False)", lambda d: torch.nn.LayerNorm(d, bias=False), "layernorm"),
    Backend("hf CohereLayerNorm", _hf("transformers.models.cohere.modeling_cohere", "CohereLayerNorm"), "layernorm",
            compute_dtype="float32"),
    Backend("hf OlmoLayerNorm", _hf("transformers.models.olmo.modeling_olmo", "OlmoLayerNorm"), "layernorm",
            fixed_eps=1e-5, compute_dtype="float32"),
)
def _gn_groups(d: int) -> int:
    """The largest of 4, 3, 2 groups that divides d (1 when none does: then GroupNorm is a LayerNorm)."""
    return next((g for g in (4, 3, 2) if d % g == 0 and d // g >= 2), 1)


GROUP_CENTRING = (
    Backend("nn.GroupNorm", lambda d: torch.nn.GroupNorm(_gn_groups(d), d), "groupnorm", groups=_gn_groups),
)
RMS = (
    Backend("numpy reference", _spec("rmsnorm"), "rmsnorm", ("float64",)),
    Backend("nn.RMSNorm", lambda d: torch.nn.RMSNorm(d, eps=1e-6), "rmsnorm"),
    Backend("hf LlamaRMSNorm", _hf("transformers.models.llama.modeling_llama", "LlamaRMSNorm"), "rmsnorm",
            compute_dtype="float32"),
    Backend("hf GemmaRMSNorm", _hf("transformers.models.gemma.modeling_gemma", "GemmaRMSNorm"), "rmsnorm",
            weight_offset=1.0, compute_dtype="float32"),
    Backend("hf T5LayerNorm", _hf("transformers.models.t5.modeling_t5", "T5LayerNorm"), "rmsnorm",
            compute_dtype="float32"),
    Backend("hf Qwen2RMSNorm", _hf("transformers.models.qwen2.modeling_qwen2", "Qwen2RMSNorm"), "rmsnorm",
            compute_dtype="float32"),
    Backend("hf MistralRMSNorm", _hf("transformers.models.mistral.modeling_mistral", "MistralRMSNorm"), "rmsnorm",
            compute_dtype="float32"),
)


def cases(backends: tuple[Backend, ...]) -> list[Any]:
    """pytest params (backend, dtype) with readable ids."""
    import pytest

    return [pytest.param(b, dt, id=f"{b.name}-{dt}") for b in backends for dt in b.dtypes]
