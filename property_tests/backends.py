"""The norm implementations under test, each with the float64 reference it claims to implement.

HF classes are built directly (no weights, no hub). Their kind, weight offset and fixed ε are
read from deadir's table of Hugging Face norm classes (:data:`deadir.hf_norms.HF_NORM_TABLE`,
itself tested against each class's forward): Gemma scales by (1 + w), so its offset is 1;
OlmoLayerNorm has no parameters and a fixed ε = 1e-5; CohereLayerNorm centres (a LayerNorm
without bias). The fuzz suites then check the real forward against that reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deadir.hf_norms import HF_NORM_TABLE
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


def _hf(cls: str) -> Backend:
    """The backend of a Hugging Face norm class, its algebra from deadir's HF norm table."""
    entry = next(e for e in HF_NORM_TABLE if e.class_name == cls)
    module_path = entry.qualified_name.rsplit(".", 1)[0]

    def make(d: int) -> Any:
        import importlib

        return getattr(importlib.import_module(module_path), cls)(d)

    # HF norms upcast to float32 in their forward: in float64 they compute in float32
    return Backend(f"hf {cls}", make, entry.kind, weight_offset=entry.weight_offset,
                   fixed_eps=entry.fixed_eps if entry.eps_attr is None else None, compute_dtype="float32")


def _spec(kind: NormKind, offset: float = 0.0) -> Callable[[int], Any]:
    return lambda d: NormSpec(kind, np.ones(d), np.zeros(d), 1e-5, weight_offset=offset, source=f"numpy {kind}")


MEAN_CENTRING = (
    Backend("numpy reference", _spec("layernorm"), "layernorm", ("float64",)),
    Backend("numpy reference (1+w)", _spec("layernorm", 1.0), "layernorm", ("float64",), weight_offset=1.0),
    Backend("F.layer_norm", FunctionalLayerNorm, "layernorm"),
    Backend("nn.LayerNorm", lambda d: torch.nn.LayerNorm(d), "layernorm"),
    Backend("nn.LayerNorm(bias=False)", lambda d: torch.nn.LayerNorm(d, bias=False), "layernorm"),
    _hf("CohereLayerNorm"),
    _hf("OlmoLayerNorm"),
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
    _hf("LlamaRMSNorm"),
    _hf("GemmaRMSNorm"),
    _hf("T5LayerNorm"),
    _hf("Qwen2RMSNorm"),
    _hf("MistralRMSNorm"),
)


def cases(backends: tuple[Backend, ...]) -> list[Any]:
    """pytest params (backend, dtype) with readable ids."""
    import pytest

    return [pytest.param(b, dt, id=f"{b.name}-{dt}") for b in backends for dt in b.dtypes]
