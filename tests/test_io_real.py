"""deadir.io on the real checkpoints installed by integration.fetch_checkpoints (integration marker)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from deadir.io import TensorInfo, list_tensors, read_config, read_tensors
from deadir.whisper_ct2 import load_ctranslate2_whisper


def _manifest() -> dict[str, dict[str, Any]]:
    from integration.fetch_checkpoints import default_dest, load_manifest, missing_checkpoint

    dest = default_dest()
    if not (dest / "manifest.json").is_file():
        missing_checkpoint(f"no {dest / 'manifest.json'}: run `python -m integration.fetch_checkpoints`")
    return load_manifest(dest)


def _entry(name: str) -> dict[str, Any]:
    models = _manifest()
    if name not in models:
        from integration.fetch_checkpoints import missing_checkpoint

        missing_checkpoint(f"{name} is not installed (python -m integration.fetch_checkpoints --only {name})")
    return models[name]


REAL_NORMS = {
    "minilm": (r"encoder\.layer\.\d+\.(attention\.output\.)?(output\.)?LayerNorm\.weight", 12,
               "embeddings.LayerNorm.weight"),
    "mpnet": (r"encoder\.layer\.\d+\.(attention|output)\.LayerNorm\.weight", 24,
              "embeddings.LayerNorm.weight"),
    "whisper-base": (r"(encoder|decoder)/layer_\d+/(self_attention|attention|ffn)/layer_norm/gamma", 30,
                     "encoder/layer_norm/gamma"),
    "gemma3-270m": (r"blk\.\d+\.(attn_norm|ffn_norm|post_attention_norm|post_ffw_norm)\.weight", 72,
                    "output_norm.weight"),
    "qwen2.5-0.5b": (r"blk\.\d+\.(attn_norm|ffn_norm)\.weight", 48, "output_norm.weight"),
    "smollm2-135m": (r"blk\.\d+\.(attn_norm|ffn_norm)\.weight", 60, "output_norm.weight"),
}  # fmt: skip


def _d_model(entry: dict[str, Any], config: dict[str, Any], infos: dict[str, TensorInfo]) -> int:
    if entry["format"] == "gguf":
        return int(config[f"{config['general.architecture']}.embedding_length"])
    if entry["format"] == "ctranslate2":
        return infos["encoder/layer_norm/gamma"].shape[0]
    return int(config["hidden_size"])


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_NORMS))
def test_real_norm_tensors_read_with_config_shapes(name: str) -> None:
    import re

    entry = _entry(name)
    infos = list_tensors(entry["path"])
    config = read_config(entry["path"])
    pattern, count, final = REAL_NORMS[name]
    names = [*sorted(n for n in infos if re.fullmatch(pattern, n)), final]
    gammas = read_tensors(entry["path"], names)
    d = _d_model(entry, config, infos)
    assert d == entry["d_model"]
    assert len(names) == count + 1
    for n, g in gammas.items():
        assert g.shape == (d,), n
        assert np.all(np.isfinite(g)), n
    if name == "gemma3-270m":  # per-head q/k norms, one per block, over the head dimension
        qk = [n for n in infos if re.fullmatch(r"blk\.\d+\.attn_[qk]_norm\.weight", n)]
        assert len(qk) == 2 * entry["n_layers"]
        head = int(config["gemma3.attention.key_length"])
        assert all(g.shape == (head,) for g in read_tensors(entry["path"], qk).values())
    if entry["format"] == "gguf":
        arch = config["general.architecture"]
        assert arch == entry["arch"]
        assert config[f"{arch}.block_count"] == entry["n_layers"]
        assert config[f"{arch}.attention.layer_norm_rms_epsilon"] == pytest.approx(entry["eps"], rel=1e-6)
        assert {infos[n].dtype for n in names} == {"F32"}  # norms are exact in these quantised files


@pytest.mark.integration
def test_real_minilm_has_dead_channels() -> None:
    entry = _entry("minilm")
    infos = list_tensors(entry["path"])
    names = [n for n in infos if n.endswith("LayerNorm.weight")]
    gammas = read_tensors(entry["path"], names)
    dead = {n: np.flatnonzero(np.abs(g) < 1e-20).tolist() for n, g in gammas.items()}
    dead = {n: idx for n, idx in dead.items() if idx}
    # the pinned checkpoint (sha256 in the manifest) has two: ~5e-33 and ~6e-33, in the
    # last block's output LayerNorm; a third channel (1.5e-9) is small but not dead
    assert dead == {"encoder.layer.5.output.LayerNorm.weight": [127, 223]}, dead
    gamma = gammas["encoder.layer.5.output.LayerNorm.weight"]
    assert 0 < abs(gamma[127]) < 1e-30 and 0 < abs(gamma[223]) < 1e-30  # tiny, exactly representable


@pytest.mark.integration
def test_real_gemma_norms_store_one_plus_w() -> None:
    entry = _entry("gemma3-270m")
    gamma = read_tensors(entry["path"], ["output_norm.weight"])["output_norm.weight"]
    # Gemma's GGUF stores the effective scale 1 + w: its median sits well above 1
    assert np.median(gamma) > 1.0


@pytest.mark.integration
def test_real_whisper_loads_and_detects_no_speech_in_a_tone() -> None:
    from transformers import WhisperFeatureExtractor

    entry = _entry("whisper-base")
    model = load_ctranslate2_whisper(entry["path"])
    assert (model.config.d_model, model.config.encoder_layers, model.config.encoder_attention_heads) == (
        512,
        6,
        8,
    )
    gamma = read_tensors(entry["path"], ["encoder/layer_norm/gamma"])["encoder/layer_norm/gamma"]
    assert np.array_equal(model.model.encoder.layer_norm.weight.detach().double().numpy(), gamma)
    t = np.arange(32000) / 16000
    tone = (0.1 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
    features = WhisperFeatureExtractor()(tone, sampling_rate=16000, return_tensors="pt").input_features
    sot = model.config.decoder_start_token_id
    with torch.no_grad():
        logits = model(input_features=features, decoder_input_ids=torch.tensor([[sot]])).logits
    assert torch.isfinite(logits).all()
    # After <|startoftranscript|> the trained model names a language or says <|nospeech|>
    # (ids 50259..50362); weights loaded into the wrong places would not.
    assert 50259 <= int(logits[0, -1].argmax()) <= 50362


@pytest.mark.integration
def test_real_gguf_header_agrees_with_gguf_reader() -> None:
    from gguf import GGUFReader

    entry = _entry("smollm2-135m")
    infos = list_tensors(entry["path"])
    config = read_config(entry["path"])
    reader = GGUFReader(entry["path"])
    assert {t.name: (int(t.data_offset), int(t.n_bytes), t.tensor_type.name) for t in reader.tensors} == {
        n: (i.offset, i.nbytes, i.dtype) for n, i in infos.items()
    }
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        ours = config[key]
        if isinstance(ours, dict):  # long arrays are skipped, their length kept
            assert ours == {"array_length": len(field.data)}, key
        else:
            assert ours == field.contents(), key
    norm = read_tensors(entry["path"], ["output_norm.weight"])["output_norm.weight"]
    theirs = next(t for t in reader.tensors if t.name == "output_norm.weight")
    assert np.array_equal(norm, np.asarray(theirs.data, dtype=np.float64))
