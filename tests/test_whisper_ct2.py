"""deadir.whisper_ct2: a CTranslate2 Whisper model.bin loaded into transformers' Whisper, parameter by parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deadir.errors import CheckpointError
from deadir.testing.checkpoints import CT2_WHISPER_ALIASES, tiny_whisper, whisper_to_ct2, write_ct2, write_safetensors
from deadir.whisper_ct2 import CT2_WHISPER_NAME_MAP, ctranslate2_whisper_mapping, load_ctranslate2_whisper


def test_ct2_whisper_round_trip_loads_every_parameter(tmp_path: Path) -> None:
    model = tiny_whisper()
    write_ct2(tmp_path / "model.bin", whisper_to_ct2(model), aliases=CT2_WHISPER_ALIASES)
    (tmp_path / "config.json").write_text(json.dumps({"suppress_ids": [1]}))
    loaded = load_ctranslate2_whisper(tmp_path / "model.bin")
    assert loaded.config.encoder_attention_heads == 2 and loaded.config.d_model == 16
    assert loaded.config.max_source_positions == 8 and loaded.config.vocab_size == 20
    ours = dict(loaded.named_parameters())
    for name, param in model.named_parameters():
        assert torch.equal(ours[name].detach(), param.detach()), name
    features = torch.randn(1, 4, 16)
    ids = torch.tensor([[19, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(
            loaded(input_features=features, decoder_input_ids=ids).logits,
            model(input_features=features, decoder_input_ids=ids).logits,
        )


def test_ct2_whisper_mapping_table() -> None:
    mapping = ctranslate2_whisper_mapping(
        ["encoder/layer_3/self_attention/linear_0/bias", "decoder/layer_1/attention/linear_1/weight",
         "decoder/layer_norm/gamma", "encoder/conv2/weight", "decoder/projection/weight", "decoder/num_heads"]
    )  # fmt: skip
    assert mapping == {
        "encoder/layer_3/self_attention/linear_0/bias": [
            "model.encoder.layers.3.self_attn.q_proj.bias", "", "model.encoder.layers.3.self_attn.v_proj.bias"
        ],
        "decoder/layer_1/attention/linear_1/weight": [
            "model.decoder.layers.1.encoder_attn.k_proj.weight",
            "model.decoder.layers.1.encoder_attn.v_proj.weight",
        ],
        "decoder/layer_norm/gamma": ["model.decoder.layer_norm.weight"],
        "encoder/conv2/weight": ["model.encoder.conv2.weight"],
        "decoder/projection/weight": ["proj_out.weight"],
    }  # fmt: skip
    assert "ffn/layer_norm" in CT2_WHISPER_NAME_MAP


def test_ct2_whisper_unmapped_variable(tmp_path: Path) -> None:
    variables = whisper_to_ct2(tiny_whisper())
    variables["encoder/layer_0/mystery/weight"] = np.ones((2, 2), np.float32)
    write_ct2(tmp_path / "model.bin", variables, aliases=CT2_WHISPER_ALIASES)
    with pytest.raises(CheckpointError, match=r"no Whisper parameter.*encoder/layer_0/mystery/weight"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_missing_variables_listed(tmp_path: Path) -> None:
    variables = whisper_to_ct2(tiny_whisper())
    del variables["decoder/layer_0/ffn/linear_1/weight"]
    write_ct2(tmp_path / "model.bin", variables, aliases=CT2_WHISPER_ALIASES)
    with pytest.raises(CheckpointError, match=r"not found in the file.*model.decoder.layers.0.fc2.weight"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_nonzero_k_bias_refused(tmp_path: Path) -> None:
    variables = whisper_to_ct2(tiny_whisper())
    variables["encoder/layer_0/self_attention/linear_0/bias"][20] = 1.0  # inside the k block
    write_ct2(tmp_path / "model.bin", variables, aliases=CT2_WHISPER_ALIASES)
    with pytest.raises(CheckpointError, match="non-zero k-projection bias"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_loader_refuses_other_specs_and_post_norm(tmp_path: Path) -> None:
    variables = whisper_to_ct2(tiny_whisper())
    file = tmp_path / "model.bin"
    write_ct2(file, variables, aliases=CT2_WHISPER_ALIASES)
    file.write_bytes(file.read_bytes().replace(b"WhisperSpec", b"WhisperSpex", 1))
    with pytest.raises(CheckpointError, match="spec 'WhisperSpex', expected 'WhisperSpec'"):
        load_ctranslate2_whisper(file)
    variables["decoder/pre_norm"] = np.array(0, dtype=np.int8)
    write_ct2(file, variables, aliases=CT2_WHISPER_ALIASES)
    with pytest.raises(CheckpointError, match="decoder/pre_norm is not 1"):
        load_ctranslate2_whisper(file)
    variables["decoder/pre_norm"] = np.array(1, dtype=np.int8)
    variables["decoder/activation"] = np.array(0, dtype=np.int8)  # ReLU
    write_ct2(file, variables, aliases=CT2_WHISPER_ALIASES)
    with pytest.raises(CheckpointError, match="decoder/activation is not 3"):
        load_ctranslate2_whisper(file)


def test_ct2_whisper_fused_block_not_divisible(tmp_path: Path) -> None:
    variables = whisper_to_ct2(tiny_whisper())
    variables["encoder/layer_0/self_attention/linear_0/weight"] = np.ones((47, 16), np.float32)
    write_ct2(tmp_path / "model.bin", variables, aliases=CT2_WHISPER_ALIASES)
    with pytest.raises(CheckpointError, match="47 rows, not divisible into 3 fused blocks"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_loader_refuses_other_formats(tmp_path: Path, st_tensors: Any) -> None:
    write_safetensors(tmp_path / "model.safetensors", st_tensors)
    with pytest.raises(CheckpointError, match="not a CTranslate2 model"):
        load_ctranslate2_whisper(tmp_path)


def test_load_model_refuses_a_pickle_only_folder_without_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deadir.models import load_model, random_model

    random_model("gpt2").config.save_pretrained(tmp_path)
    torch.save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")

    def no_unpickling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch.load was called on an untrusted file")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_model(str(tmp_path))


def test_load_model_reads_a_ctranslate2_whisper(tmp_path: Path) -> None:
    from deadir.models import load_model

    model = tiny_whisper()
    write_ct2(tmp_path / "model.bin", whisper_to_ct2(model), aliases=CT2_WHISPER_ALIASES)
    for path in (tmp_path / "model.bin", tmp_path):  # the file or its folder
        loaded = load_model(str(path), dtype="float64")
        assert type(loaded.model).__name__ == "WhisperForConditionalGeneration" and loaded.tokenizer is None
        ours = dict(loaded.model.named_parameters())
        for name, param in model.named_parameters():
            assert torch.equal(ours[name].detach(), param.detach().double()), name
