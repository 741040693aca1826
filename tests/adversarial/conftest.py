"""Fixtures of the adversarial io suites: a valid tiny checkpoint folder that cases then spoil."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deadir.testing.checkpoints import write_safetensors


@pytest.fixture
def st_folder(tmp_path: Path) -> Callable[..., Path]:
    """A valid folder (config.json + model.safetensors with one 8-wide LayerNorm); kwargs override files."""

    def make(name: str = "ck", config: Any = None, **files: bytes) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        cfg = {"model_type": "gpt2", "n_embd": 8, "layer_norm_epsilon": 1e-5} if config is None else config
        (folder / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        write_safetensors(folder / "model.safetensors", {"ln_f.weight": np.linspace(0.5, 2.0, 8, dtype=np.float32),
                                                         "ln_f.bias": np.zeros(8, np.float32)})  # fmt: skip
        for fname, data in files.items():
            (folder / fname.replace("__", ".")).write_bytes(data)
        return folder

    return make
