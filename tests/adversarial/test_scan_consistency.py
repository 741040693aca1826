"""Checkpoints whose config contradicts their tensors: a typed error naming both, never a silent verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import deadir
from deadir.cli import main
from deadir.scan import ConfigMismatchError


def _write(folder: Path, config: dict[str, object], tensors: dict[str, np.ndarray]) -> Path:
    folder.mkdir()
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _neox_tensors(d: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "model.layers.0.input_layernorm.weight": rng.uniform(0.5, 2, d),
        "model.layers.0.input_layernorm.bias": rng.normal(size=d),
        "model.layers.0.post_attention_layernorm.weight": rng.uniform(0.5, 2, d),
        "model.layers.0.post_attention_layernorm.bias": rng.normal(size=d),
        "model.norm.weight": rng.uniform(0.5, 2, d),
        "model.norm.bias": rng.normal(size=d),
    }


LLAMA_LIKE = ("llama", "mistral", "qwen2", "gemma")


@pytest.mark.parametrize("model_type", LLAMA_LIKE)
def test_layernorm_tensors_under_an_rmsnorm_config_are_refused(model_type: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _write(tmp_path / "c", {"model_type": model_type, "hidden_size": 8, "rms_norm_eps": 1e-6},
                  _neox_tensors(8))
    with pytest.raises(ConfigMismatchError, match="bias"):
        deadir.scan(ckpt)
    assert main(["scan", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "RMSNorm" in err and "Traceback" not in err


@pytest.mark.parametrize("model_type", LLAMA_LIKE)
def test_the_same_config_without_biases_scans(model_type: str, tmp_path: Path) -> None:
    """Control: the consistency check is about the bias tensors, not the architecture."""
    tensors = {k: v for k, v in _neox_tensors(8).items() if not k.endswith(".bias")}
    ckpt = _write(tmp_path / "c", {"model_type": model_type, "hidden_size": 8, "rms_norm_eps": 1e-6}, tensors)
    report = deadir.scan(ckpt)
    assert {s.site.spec.kind for s in report.sites} == {"rmsnorm"}


@pytest.mark.parametrize(("model_type", "bad_site"), [
    ("llama", "model.norm.weight"),
    ("llama", "model.layers.0.input_layernorm.weight"),
    ("gpt_neox", "model.norm.weight"),
    ("qwen2", "model.layers.0.post_attention_layernorm.weight"),
])
def test_norm_length_differs_from_hidden_size(model_type: str, bad_site: str, tmp_path: Path) -> None:
    tensors = _neox_tensors(8)
    if model_type != "gpt_neox":
        tensors = {k: v for k, v in tensors.items() if not k.endswith(".bias")}
    else:
        tensors = {k.replace("model.norm", "model.final_layer_norm"): v for k, v in tensors.items()}
        bad_site = bad_site.replace("model.norm", "model.final_layer_norm")
    tensors[bad_site] = tensors[bad_site][:3]
    bias = bad_site.replace(".weight", ".bias")
    if bias in tensors:
        tensors[bias] = tensors[bias][:3]
    config = {"model_type": model_type, "hidden_size": 8, "rms_norm_eps": 1e-6, "layer_norm_eps": 1e-5}
    ckpt = _write(tmp_path / "c", config, tensors)
    with pytest.raises(ConfigMismatchError, match="hidden size is 8"):
        deadir.scan(ckpt)
