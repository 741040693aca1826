"""Tiny norm factories for ``deadir check-norm`` and the pack's own tests.

``deadir check-norm deadir.testing.examples:layernorm`` passes; with
``deadir.testing.examples:rmsnorm --expect mean-centring`` it fails with a counterexample.
"""

from __future__ import annotations

from typing import Any


def layernorm(d: int) -> Any:
    """torch.nn.LayerNorm(d) with bias (mean-centring)."""
    import torch

    return torch.nn.LayerNorm(d)


def layernorm_nobias(d: int) -> Any:
    """torch.nn.LayerNorm(d, bias=False) (mean-centring)."""
    import torch

    return torch.nn.LayerNorm(d, bias=False)


def rmsnorm(d: int) -> Any:
    """torch.nn.RMSNorm(d, eps=1e-6) (RMS-like: no kernel)."""
    import torch

    return torch.nn.RMSNorm(d, eps=1e-6)


def functional_layernorm(d: int) -> Any:
    """A plain callable (no parameters): torch.nn.functional.layer_norm over the last axis, γ = 1, β = 0."""
    import torch

    def norm(x: Any) -> Any:
        return torch.nn.functional.layer_norm(x, (d,), eps=1e-5)

    return norm


def functional_rmsnorm(d: int) -> Any:
    """A plain callable (no parameters): torch.nn.functional.rms_norm over the last axis, γ = 1."""
    import torch

    def norm(x: Any) -> Any:
        return torch.nn.functional.rms_norm(x, (d,), eps=1e-6)

    return norm
