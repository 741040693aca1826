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
