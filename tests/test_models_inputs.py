from __future__ import annotations

import numpy as np
import pytest
import torch

from deadir import UnknownNormError
from deadir.models import random_model, tiny_config
from deadir.models.corpus import ByteTokenizer
from deadir.models.inputs import make_inputs, modality, speech_features, synthesise_audio


def test_modalities() -> None:
    assert modality(tiny_config("whisper")) == "speech"
    assert modality(tiny_config("vit")) == "vision"
    assert modality(tiny_config("clip")) == "text+vision"
    assert modality(tiny_config("llama")) == "text"
    with pytest.raises(UnknownNormError):
        modality(torch.nn.Linear(2, 2))


def test_text_inputs_from_a_tokenizer_and_fallbacks() -> None:
    model = random_model("gpt2")
    inp = make_inputs(model, n_tokens=300, seq_len=32, tokenizer=ByteTokenizer(128))
    assert inp.tensors["input_ids"].shape == (10, 32) and inp.n_rows == 320 and "ByteTokenizer" in inp.description
    big = random_model("gpt2", vocab_size=5000)  # no tokenizer, big vocabulary: synthetic ids
    syn = make_inputs(big, n_tokens=128)
    assert "synthetic uniform ids" in syn.description
    assert len(set(syn.tensors["input_ids"][:, 0].tolist())) == syn.n_samples


def test_encoder_decoder_and_dual_tower_inputs() -> None:
    t5 = make_inputs(random_model("t5"), n_tokens=128)
    assert set(t5.tensors) == {"input_ids", "decoder_input_ids"}
    clip = make_inputs(random_model("clip"), n_tokens=170)
    assert clip.tensors["pixel_values"].shape == (10, 3, 16, 16)  # 170 rows / 17 patches
    assert clip.tensors["input_ids"].shape[0] == 10


def test_speech_features_are_log_mel_of_synthetic_audio() -> None:
    audio = synthesise_audio(2, 0.5, seed=1)
    assert audio[0].shape == (8000,) and audio[0].dtype == np.float32 and np.max(np.abs(audio[0])) <= 0.6
    assert not np.allclose(audio[0], audio[1])
    feats = speech_features(2, 80, 100, seed=1)
    assert feats.shape == (2, 80, 100) and torch.isfinite(feats).all()
    assert float(feats.std()) > 0.05  # not silence


def test_bad_token_count() -> None:
    from deadir import InputShapeError

    with pytest.raises(InputShapeError, match="n_tokens"):
        make_inputs(random_model("gpt2"), n_tokens=1)
