"""Tiny random-init checkpoints written to disk, for testing the user-named-checkpoint path end to end.

* :func:`save_tiny_safetensors`: a Hugging Face folder (config.json, model.safetensors, a fast
  tokenizer) of any architecture of ``deadir.models.tiny_config`` at random init;
* :func:`save_tiny_ct2_whisper`: a CTranslate2 Whisper ``model.bin`` with its tokenizer.json, written
  by :func:`deadir.testing.checkpoints.write_ct2` (the shared tiny-checkpoint writers; the Whisper
  variables come from a hand-written inverse that does not share deadir's mapping).

The tokenizer is a word-level one trained on the suite's own corpus, so the text batches are the
same distinct prompts that real checkpoints read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from integration import inputs

WHISPER_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>")


def word_tokenizer(vocab_size: int = 400, specials: tuple[str, ...] = ("[UNK]", "[PAD]")) -> Any:
    """A ``tokenizers.Tokenizer`` (word level, whitespace split) trained on the corpus; ``specials[0]`` is unk."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token=specials[0]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=list(specials))
    tok.train_from_iterator(inputs.corpus_paragraphs()[:400], trainer=trainer)
    return tok


def save_tiny_safetensors(folder: Path, model_type: str, *, seed: int = 0) -> Path:
    """Save a random-init tiny ``model_type`` (base model class) with a word-level tokenizer; returns the folder."""
    from transformers import PreTrainedTokenizerFast

    from deadir.models import random_init_like, tiny_config

    tok = word_tokenizer()
    vocab = tok.get_vocab_size()
    config = tiny_config(model_type, vocab_size=vocab, pad_token_id=tok.token_to_id("[PAD]"))
    model = random_init_like(config, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    return folder


def save_tiny_ct2_whisper(folder: Path, *, seed: int = 0) -> Path:
    """Save a random-init tiny Whisper (d_model 16, one layer per side) as CTranslate2 model.bin + tokenizer.json.

    Positions: 1500 encoder (Whisper's 30-s clip after the convolutions), 64 decoder. Returns model.bin.
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from deadir.testing.checkpoints import CT2_WHISPER_ALIASES, whisper_to_ct2, write_ct2

    tok = word_tokenizer(specials=("[UNK]", *WHISPER_SPECIALS))
    vocab = tok.get_vocab_size()
    eot, sot = (tok.token_to_id(t) for t in WHISPER_SPECIALS)
    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=vocab, num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=64,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
    )
    model = WhisperForConditionalGeneration(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return write_ct2(folder / "model.bin", whisper_to_ct2(model), aliases=CT2_WHISPER_ALIASES)
