"""Inputs for :func:`deadir.verify`: text, images and speech, each of its own kind, offline.

* text (``input_ids``): the model's tokenizer on the corpus of :mod:`deadir.models.corpus`
  (real English prose and standard-library docstrings) cut into distinct windows; without
  a tokenizer, :class:`~deadir.models.corpus.ByteTokenizer` when the vocabulary holds the byte
  values, else the documented synthetic distribution :func:`~deadir.models.corpus.synthetic_token_ids`
  (uniform ids, no two sequences alike, first tokens distinct);
* vision (``pixel_values``): synthetic images — per image and channel a sum of 6 random
  2-D sinusoids (random frequency up to 4 cycles per side, phase, amplitude) plus 10 %
  white noise, standardised to mean 0, std 1 (the range of normalised pixels);
* speech (``input_features``): log-mel features (``WhisperFeatureExtractor``) of synthesised
  16 kHz audio — per clip 3 harmonic tones with random fundamentals (90–400 Hz), 4
  harmonics each, a slow amplitude envelope, a linear chirp, and noise at -30 dB;
* encoder-decoders also get ``decoder_input_ids`` (distinct, from the corpus or synthetic).

The "rows" a site sees are positions: ``n_tokens`` is the number of positions of the main
stream (text tokens, image patches + 1, or encoder frames / 2 for Whisper).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from deadir import arch
from deadir.errors import InputShapeError, UnknownNormError
from deadir.models.corpus import ByteTokenizer, Source, synthetic_token_ids, token_sequences


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """Keyword tensors with a common leading sample size, and how they were made."""

    tensors: dict[str, Any]
    description: str
    n_rows: int

    @property
    def n_samples(self) -> int:
        """The leading size of the tensors."""
        return int(next(iter(self.tensors.values())).shape[0])


def modality(model_or_config: Any) -> str:
    """"speech", "vision", "text+vision" or "text", from the model's config.

    Raises:
        UnknownNormError: no config to read it from.
    """
    config = getattr(model_or_config, "config", model_or_config)
    if config is None or not hasattr(config, "to_dict"):
        raise UnknownNormError(f"{type(model_or_config).__name__}: no transformers config to pick inputs from")
    if hasattr(config, "num_mel_bins"):
        return "speech"
    if getattr(config, "text_config", None) is not None and getattr(config, "vision_config", None) is not None:
        return "text+vision"
    if hasattr(config, "image_size") and not hasattr(config, "vocab_size"):
        return "vision"
    return "text"


MAX_INPUT_BYTES = 4 * 2**30
"""Largest synthesised input batch (4 GiB of audio, features or pixels) :func:`make_inputs` builds;
a request above it (e.g. ``--tokens 1000000000`` on Whisper: 1.3 TB of audio) is refused at once
instead of running for minutes and dying of memory. Raise it with ``max_input_bytes``."""


def _check_input_bytes(nbytes: int, what: str, n_tokens: int, limit: int) -> None:
    if nbytes > limit:
        raise InputShapeError(
            f"n_tokens: {n_tokens} rows need {nbytes / 2**30:.3g} GiB of {what}, over the "
            f"{limit / 2**30:.3g} GiB input limit (max_input_bytes / --max-input-gib); ask for fewer tokens"
        )


def make_inputs(
    model: Any,
    *,
    n_tokens: int = 2048,
    seq_len: int | None = None,
    seed: int = 0,
    tokenizer: Any = None,
    source: Source = "both",
    max_input_bytes: int = MAX_INPUT_BYTES,
) -> ModelInputs:
    """Inputs of the model's own kind with about ``n_tokens`` rows per site (see the module docstring).

    Raises:
        InputShapeError: n_tokens < 2, seq_len < 1, the inputs would exceed ``max_input_bytes``, or the
            corpus is too small for the request.
        UnknownNormError: the model has no config.
    """
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 2:
        raise InputShapeError(f"n_tokens: must be an integer ≥ 2, got {n_tokens!r}")
    if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1):
        raise InputShapeError(f"seq_len: must be an integer ≥ 1 (or None for the default), got {seq_len!r}")
    kind = modality(model)
    config: Any = model.config
    rng = np.random.default_rng(seed)
    if kind == "speech":
        frames = 2 * int(config.max_source_positions)
        n = math.ceil(n_tokens / (frames // 2))
        # float32 audio (hop 160 samples per frame at 16 kHz) plus float32 features
        _check_input_bytes(n * frames * (160 + int(config.num_mel_bins)) * 4, "audio and features", n_tokens,
                           max_input_bytes)
        feats = speech_features(n, int(config.num_mel_bins), frames, seed=seed)
        dec_len = min(16, int(getattr(config, "max_target_positions", 16)))
        dec, dec_desc = _text_ids(config, n, dec_len, seed + 1, tokenizer, source)
        return ModelInputs({"input_features": feats, "decoder_input_ids": dec},
                           f"speech: {n} synthesised clips → log-mel {tuple(feats.shape)}; decoder ids {dec_desc}",
                           n * (frames // 2))
    if kind == "vision":
        size, channels = int(config.image_size), int(getattr(config, "num_channels", 3))
        per = (size // int(config.patch_size)) ** 2 + 1
        n = math.ceil(n_tokens / per)
        _check_input_bytes(n * channels * size * size * 8, "pixels", n_tokens, max_input_bytes)
        pix = synthetic_images(n, channels, size, rng)
        return ModelInputs({"pixel_values": pix}, f"vision: {n} synthetic images {tuple(pix.shape)}", n * per)
    text_config = getattr(config, "text_config", None) if kind == "text+vision" else config
    t = seq_len if seq_len is not None else _default_seq_len(text_config)
    n = math.ceil(n_tokens / t)
    _check_input_bytes(n * t * 8, "token ids", n_tokens, max_input_bytes)
    if kind == "text+vision":  # one sample = a text and an image: enough of each for n_tokens rows
        vc = config.vision_config
        n = max(n, math.ceil(n_tokens / ((int(vc.image_size) // int(vc.patch_size)) ** 2 + 1)))
        size = int(vc.image_size)
        _check_input_bytes(n * int(getattr(vc, "num_channels", 3)) * size * size * 8, "pixels", n_tokens,
                           max_input_bytes)
    ids, desc = _text_ids(text_config, n, t, seed, tokenizer, source)
    tensors: dict[str, Any] = {"input_ids": ids}
    if kind == "text+vision":
        vc = config.vision_config
        tensors["pixel_values"] = synthetic_images(n, int(getattr(vc, "num_channels", 3)), int(vc.image_size), rng)
        desc += f"; synthetic images {tuple(tensors['pixel_values'].shape)}"
    if getattr(config, "is_encoder_decoder", False):
        dec, dec_desc = _text_ids(config, n, min(16, t), seed + 1, tokenizer, source)
        tensors["decoder_input_ids"] = dec
        desc += f"; decoder ids {dec_desc}"
    return ModelInputs(tensors, f"text: {desc}", n * t)


def _default_seq_len(config: Any) -> int:
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 512
    record = arch.by_model_type(str(getattr(config, "model_type", "") or ""))
    if record is not None:
        limit -= record.position_offset  # RoBERTa-style positions start after the padding index
    return int(max(2, min(64, limit)))


def _text_ids(config: Any, n: int, t: int, seed: int, tokenizer: Any, source: Source) -> tuple[Any, str]:
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if tokenizer is not None:
        ids = token_sequences(tokenizer, n, t, seed=seed, source=source, vocab_size=vocab or None)
        return ids, f"{n}×{t} corpus tokens ({source}, {type(tokenizer).__name__})"
    if 128 <= vocab <= 1024:  # tiny vocabularies: every ASCII byte keeps its own id
        ids = token_sequences(ByteTokenizer(vocab), n, t, seed=seed, source=source, vocab_size=vocab)
        return ids, f"{n}×{t} corpus bytes as ids ({source}; no tokenizer)"
    if vocab < 2:
        raise InputShapeError(f"{getattr(config, 'model_type', '?')}: no vocab_size in the config to draw ids from")
    ids = synthetic_token_ids(n, t, vocab, seed=seed)
    return ids, f"{n}×{t} synthetic uniform ids (vocab {vocab}; no tokenizer)"


def synthetic_images(n: int, channels: int, size: int, rng: np.random.Generator) -> Any:
    """Smooth random images (see the module docstring), float32 tensor (n, channels, size, size)."""
    import torch

    yy, xx = np.meshgrid(np.arange(size) / size, np.arange(size) / size, indexing="ij")
    img = np.zeros((n, channels, size, size))
    for _ in range(6):
        fx = rng.uniform(-4, 4, (n, channels, 1, 1))
        fy = rng.uniform(-4, 4, (n, channels, 1, 1))
        ph = rng.uniform(0, 2 * np.pi, (n, channels, 1, 1))
        amp = rng.uniform(0.2, 1.0, (n, channels, 1, 1))
        img += amp * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    img += 0.1 * rng.standard_normal(img.shape)
    img = (img - img.mean(axis=(2, 3), keepdims=True)) / img.std(axis=(2, 3), keepdims=True)
    return torch.from_numpy(img.astype(np.float32))


def synthesise_audio(n: int, seconds: float, *, seed: int = 0, rate: int = 16000) -> list[Any]:
    """``n`` clips of synthetic speech-like audio (float32 numpy, ``rate`` Hz; see the module docstring)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    clips = []
    for _ in range(n):
        x = np.zeros_like(t)
        for _ in range(3):
            f0 = rng.uniform(90, 400)
            env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t + rng.uniform(0, 2 * np.pi))
            for h in range(1, 5):
                x += env * rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
        f_a, f_b = rng.uniform(200, 3000, 2)
        x += 0.3 * np.sin(2 * np.pi * (f_a * t + (f_b - f_a) * t * t / (2 * max(seconds, 1e-9))))
        x = x / np.max(np.abs(x)) * 0.5
        x += 10 ** (-30 / 20) * 0.5 * rng.standard_normal(t.size)
        clips.append(x.astype(np.float32))
    return clips


def speech_features(n: int, n_mels: int, frames: int, *, seed: int = 0) -> Any:
    """Whisper log-mel features (float32 tensor (n, n_mels, frames)) of :func:`synthesise_audio` clips."""
    from transformers import WhisperFeatureExtractor

    hop, rate = 160, 16000
    chunk = max(1, math.ceil(frames * hop / rate))
    fe = WhisperFeatureExtractor(  # type: ignore[no-untyped-call]
        feature_size=n_mels, sampling_rate=rate, hop_length=hop, chunk_length=chunk)
    audio = synthesise_audio(n, frames * hop / rate, seed=seed, rate=rate)
    feats = fe(audio, sampling_rate=rate, return_tensors="pt")["input_features"]
    return feats[:, :, :frames].contiguous()
