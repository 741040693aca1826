"""Inputs for the integration suite: real English text, synthesised speech, synthetic images, token ids.

Every generator is deterministic (fixed seeds, fixed text) so the report is reproducible.

* Text: ``deadir.models.corpus`` — the prose shipped in ``deadir/data/corpus.txt``, then the
  docstrings of a fixed list of standard-library modules. Paragraphs are split into
  distinct prompts: causal LMs must not see repeated prefixes, which make the covariance
  rank-deficient and mimic dead directions.
* Speech: a source–filter synthesiser (glottal pulse train through formant resonators,
  varying pitch and vowels, with fricative noise bursts) rendered at 16 kHz, turned into
  Whisper log-mel features by ``WhisperFeatureExtractor`` (numpy only, no download).
* Images: smooth random fields plus edges and colour blobs, normalised like ViT/CLIP
  pixels; good enough for random-init vision towers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

PREFIX_WORDS = 4


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        para = " ".join(block.split())
        # Keep prose: enough words, mostly letters (drops code samples and tables).
        letters = sum(ch.isalpha() or ch == " " for ch in para)
        if len(para.split()) >= 8 and letters >= 0.85 * len(para):
            out.append(para)
    return out


def corpus_paragraphs() -> list[str]:
    """Distinct English paragraphs of ``deadir.models.corpus`` (shipped prose, then stdlib docstrings), fixed order."""
    from deadir.models.corpus import corpus_text

    text = corpus_text("both")
    # Distinct prompts: drop a paragraph whose first PREFIX_WORDS words an earlier one already starts with
    # (stdlib docstrings repeat openings such as "Help message formatter which ...").
    out, seen = [], set()
    for para in _paragraphs(text):
        key = tuple(para.split()[:PREFIX_WORDS])
        if key not in seen:
            seen.add(key)
            out.append(para)
    return out


def corpus_source() -> str:
    """Where :func:`corpus_paragraphs` takes its text from (for the report)."""
    return "deadir.models.corpus (shipped prose, then standard-library docstrings)"


def text_batches(tokenize: Any, n_tokens: int, *, max_len: int = 128, bos_drop: int = 1) -> Iterator[dict[str, Any]]:
    """Yield tokenised batches of distinct paragraphs until about ``n_tokens`` usable tokens were produced.

    ``tokenize(list[str], max_len)`` returns a dict with ``input_ids`` and ``attention_mask``
    (torch tensors, right-padded). Each batch carries ``keep``: a bool mask of the tokens
    to measure (attended and not among the first ``bos_drop`` positions, which are
    identical across prompts).
    """
    import torch

    paras = corpus_paragraphs()
    produced = 0
    i = 0
    while produced < n_tokens and i < len(paras):
        chunk = paras[i : i + 8]
        i += 8
        enc = tokenize(chunk, max_len)
        mask = enc["attention_mask"].bool()
        keep = mask.clone()
        keep[:, :bos_drop] = False
        enc = dict(enc)
        enc["keep"] = keep
        produced += int(keep.sum())
        yield enc
    if produced < n_tokens:
        # The corpus ran out: continue with shuffled sentence recombinations (still distinct prompts).
        rng = np.random.default_rng(0)
        sentences = [s for p in paras for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) >= 4]
        used = {tuple(p.split()[:PREFIX_WORDS]) for p in paras}
        while produced < n_tokens:
            chunk = []
            while len(chunk) < 8:
                text = " ".join(rng.choice(sentences, size=4, replace=False))
                key = tuple(text.split()[:PREFIX_WORDS])
                if key not in used:
                    used.add(key)
                    chunk.append(text)
            enc = dict(tokenize(chunk, max_len))
            keep = enc["attention_mask"].bool().clone()
            keep[:, :bos_drop] = False
            enc["keep"] = keep
            produced += int(keep.sum())
            yield enc
    del torch


def random_token_batches(vocab: int, n_tokens: int, *, seq_len: int = 64, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Batches of uniformly random token ids (distinct sequences), for random-init language models."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    produced = 0
    while produced < n_tokens:
        batch = 8
        ids = torch.randint(0, vocab, (batch, seq_len), generator=gen)
        mask = torch.ones_like(ids)
        keep = mask.bool()
        produced += int(keep.sum())
        yield {"input_ids": ids, "attention_mask": mask, "keep": keep}


# --- speech -------------------------------------------------------------------------------

_VOWELS = {  # first three formants (Hz), adult averages (Peterson & Barney)
    "a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
    "o": (570, 840, 2410), "u": (300, 870, 2240), "ae": (660, 1720, 2410), "er": (490, 1350, 1690),
}


def _resonator(signal: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    """Filter ``signal`` by one formant: the magnitude response of a two-pole resonator, applied by FFT."""
    spec = np.fft.rfft(signal)
    f = np.fft.rfftfreq(signal.size, 1.0 / sr)
    response = 1.0 / np.sqrt(1.0 + ((f - freq) / (bw / 2.0)) ** 2) + 1.0 / np.sqrt(1.0 + ((f + freq) / (bw / 2.0)) ** 2)
    return np.fft.irfft(spec * response, n=signal.size)


def synth_speech(seconds: float, *, seed: int, sr: int = 16000) -> np.ndarray:
    """Synthesised speech-like audio: voiced vowels with gliding pitch, fricatives and pauses (float32, [-1, 1])."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    total = int(seconds * sr)
    n = 0
    vowels = list(_VOWELS.values())
    while n < total:
        kind = rng.random()
        dur = int(sr * rng.uniform(0.06, 0.25))
        if kind < 0.7:
            f0 = rng.uniform(90, 240) * np.linspace(1.0, rng.uniform(0.8, 1.25), dur)
            phase = np.cumsum(f0 / sr)
            source = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)  # glottal pulses
            source += 0.02 * rng.standard_normal(dur)
            f1, f2, f3 = vowels[rng.integers(len(vowels))]
            scale = rng.uniform(0.85, 1.2)  # speaker variation
            seg = sum(_resonator(source, f * scale, bw, sr) for f, bw in ((f1, 80), (f2, 100), (f3, 140)))
        elif kind < 0.85:
            noise = rng.standard_normal(dur)
            seg = _resonator(noise, rng.uniform(2500, 6000), 1500, sr)  # fricative
        else:
            seg = 1e-3 * rng.standard_normal(dur)  # pause
        env = np.minimum(1.0, np.minimum(np.arange(dur), np.arange(dur)[::-1]) / (0.01 * sr))
        seg = seg * env
        peak = np.max(np.abs(seg)) or 1.0
        out.append(seg / peak * rng.uniform(0.2, 0.8))
        n += dur
    return np.concatenate(out)[:total].astype(np.float32)


def speech_features(n_clips: int, *, seconds: float = 30.0, num_mel_bins: int = 80, seed: int = 0) -> Any:
    """Whisper log-mel features (torch, shape (n_clips, num_mel_bins, 3000)) of synthesised speech."""
    import torch
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=num_mel_bins)
    clips = [synth_speech(seconds, seed=seed + k) for k in range(n_clips)]
    feats = fe(clips, sampling_rate=16000, return_tensors="np")["input_features"]
    return torch.from_numpy(np.asarray(feats, dtype=np.float32))


# --- images -------------------------------------------------------------------------------


def synthetic_images(n: int, size: int, *, channels: int = 3, seed: int = 0) -> Any:
    """Images (torch float32, (n, channels, size, size), roughly zero-mean unit-variance) with structure."""
    import torch

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    imgs = np.empty((n, channels, size, size), dtype=np.float32)
    for k in range(n):
        img = np.zeros((channels, size, size))
        for c in range(channels):
            fx, fy = rng.uniform(0.5, 6, size=2)
            img[c] = np.sin(2 * np.pi * (fx * xx + rng.random())) * np.cos(2 * np.pi * (fy * yy + rng.random()))
        for _ in range(rng.integers(2, 6)):  # blobs and edges
            cx, cy, r = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
            blob = ((xx - cx) ** 2 + (yy - cy) ** 2 < r**2).astype(np.float64)
            img += blob[None] * rng.uniform(-1.5, 1.5, size=(channels, 1, 1))
        img += 0.1 * rng.standard_normal(img.shape)
        imgs[k] = (img - img.mean()) / (img.std() + 1e-6)
    return torch.from_numpy(imgs)
