"""Shared fixtures for the fast unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch limited to one intra-op thread for a module: the two cores are shared, and tiny models run far
    faster without intra-op threading (modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gpt2() -> Any:
    """A random-init GPT-2 (tiny config, no download), one per test module (the verify tests share it)."""
    from deadir.models import random_model

    return random_model("gpt2")


@pytest.fixture(scope="module")
def gpt2_report(gpt2: Any) -> Any:
    """deadir.verify of that model on 512 generated tokens."""
    from deadir import make_inputs, verify

    return verify(gpt2, make_inputs(gpt2, n_tokens=512))


@pytest.fixture
def st_tensors() -> dict[str, Any]:
    """Norm-like and matmul tensors in three float dtypes (a tiny safetensors checkpoint's content; io tests)."""
    import torch

    return {
        "encoder.layer.0.LayerNorm.weight": torch.tensor([1.0, -2.0, 1e-30, 3.5], dtype=torch.float32),
        "encoder.layer.0.LayerNorm.bias": torch.tensor([0.5, 0.25, -0.125, 0.0], dtype=torch.float16),
        "norm.weight": torch.tensor([1.5, 2.0, -0.0078125, 3.0], dtype=torch.bfloat16),
        "big.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
    }
