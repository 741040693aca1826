"""The random-initialisation matrix: Hugging Face architectures built from their config classes.

Each :class:`Case` says how to build the model at a given width (tiny on CPU, the published
shapes under ``gpu``), where its final norm sits, and what input it reads (token ids, images,
log-mel speech). Which norm the architecture uses (the ground truth for claim vi) is its
record's (:mod:`deadir.arch`), never written here.
No download is involved: every model is ``XxxModel(XxxConfig(...))`` at random init.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from integration import inputs

VOCAB = 1000


@dataclasses.dataclass(frozen=True)
class Width:
    """Model size: hidden width d, layers, heads, kv heads, MLP width, vocabulary."""

    d: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int = VOCAB

    @property
    def head_dim(self) -> int:
        return self.d // self.heads


TINY = Width(d=64, layers=2, heads=4, kv_heads=2, ffn=128)


@dataclasses.dataclass(frozen=True)
class Case:
    """One architecture in the matrix."""

    name: str
    family: str  # the model_type whose architecture record describes it
    modality: str  # "text" | "vision" | "speech"
    build: Callable[[Width], Any]
    final: str  # module path of the site reported in the table
    blocks_prefix: str = ""
    sites_prefix: str = ""
    published: Width | None = None  # the full published shape, for the gpu suite
    published_name: str = ""

    @property
    def norm(self) -> str:
        """What the architecture uses ("layernorm" | "rmsnorm"): its record's norm kind (claim vi's ground truth)."""
        from deadir import arch

        return str(arch.get(self.family).norm_kind)

    def batches(self, model: Any, n_tokens: int, width: Width) -> Iterator[dict[str, Any]]:
        """Deterministic inputs for this case: about ``n_tokens`` measured rows."""
        if self.modality == "vision":
            cfg = model.config
            size, patch = int(cfg.image_size), int(cfg.patch_size)
            per_image = (size // patch) ** 2 + 1
            n_img = max(2, -(-n_tokens // per_image))
            images = inputs.synthetic_images(n_img, size, channels=int(cfg.num_channels), seed=0)
            for i in range(0, n_img, 8):
                yield {"pixel_values": images[i : i + 8].to(_dtype(model)), "keep": None}
        elif self.modality == "speech":
            per_clip = 8 * min(128, int(model.config.max_target_positions)) if self.final.startswith("decoder") \
                else int(model.config.max_source_positions)
            n_clips = max(1, -(-n_tokens // per_clip))
            feats = inputs.speech_features(n_clips, num_mel_bins=int(model.config.num_mel_bins))
            yield from _speech_batches(self, model, feats, width)
        else:
            yield from inputs.random_token_batches(width.vocab, n_tokens, seq_len=64)

    def input_desc(self) -> str:
        return {
            "vision": "synthetic images (smooth fields, blobs, edges)",
            "speech": "log-mel of synthesised speech (formant vowels, fricatives, pauses)",
        }.get(self.modality, "uniform random token ids, distinct sequences")


def _dtype(model: Any) -> Any:
    return next(model.parameters()).dtype


def _speech_batches(case: Case, model: Any, feats: Any, width: Width) -> Iterator[dict[str, Any]]:
    import torch

    gen = torch.Generator().manual_seed(0)
    for i in range(feats.shape[0]):
        clip = feats[i : i + 1].to(_dtype(model))
        if not case.final.startswith("decoder"):
            yield {"input_features": clip, "keep": None}
            continue
        # The decoder reads 8 distinct random token sequences against the same encoded clip
        # (the encoder runs once; its outputs are repeated along the batch).
        with torch.inference_mode():
            enc = model.get_encoder()(input_features=clip).last_hidden_state
        seq = min(128, int(model.config.max_target_positions))
        ids = torch.randint(3, width.vocab, (8, seq), generator=gen)
        yield {"encoder_outputs": (enc.expand(8, -1, -1),), "decoder_input_ids": ids, "keep": None}


def forward(model: Any, batch: dict[str, Any]) -> Any:
    """Call ``model`` with the batch's model inputs (everything but the ``keep`` mask)."""
    kwargs = {k: v for k, v in batch.items() if k != "keep"}
    if "input_features" in kwargs and "decoder_input_ids" not in kwargs and hasattr(model, "get_encoder"):
        return model.get_encoder()(**kwargs)
    return model(**kwargs)


# --- builders (transformers imported lazily: collecting tests must stay cheap) ------------------


def _t() -> Any:
    import transformers

    return transformers


def _gpt2(w: Width) -> Any:
    t = _t()
    return t.GPT2Model(t.GPT2Config(n_embd=w.d, n_layer=w.layers, n_head=w.heads, n_inner=w.ffn,
                                    vocab_size=w.vocab, n_positions=256, bos_token_id=1, eos_token_id=2))


def _opt(w: Width) -> Any:
    t = _t()
    return t.OPTModel(t.OPTConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                  ffn_dim=w.ffn, vocab_size=w.vocab, word_embed_proj_dim=w.d,
                                  max_position_embeddings=256))


def _neox(w: Width) -> Any:
    t = _t()
    return t.GPTNeoXModel(t.GPTNeoXConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                          intermediate_size=w.ffn, vocab_size=w.vocab, max_position_embeddings=256))


def _bloom(w: Width) -> Any:
    t = _t()
    return t.BloomModel(t.BloomConfig(hidden_size=w.d, n_layer=w.layers, n_head=w.heads, vocab_size=w.vocab))


def _falcon(w: Width) -> Any:
    t = _t()
    return t.FalconModel(t.FalconConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                        vocab_size=w.vocab, new_decoder_architecture=False, multi_query=True))


def _phi(w: Width) -> Any:
    t = _t()
    return t.PhiModel(t.PhiConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                  intermediate_size=w.ffn, vocab_size=w.vocab, max_position_embeddings=256))


def _gptj(w: Width) -> Any:
    t = _t()
    return t.GPTJModel(t.GPTJConfig(n_embd=w.d, n_layer=w.layers, n_head=w.heads, n_inner=w.ffn,
                                    vocab_size=w.vocab, n_positions=256, rotary_dim=w.head_dim // 2))


def _bert(w: Width) -> Any:
    t = _t()
    return t.BertModel(t.BertConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                    intermediate_size=w.ffn, vocab_size=w.vocab, max_position_embeddings=256),
                       add_pooling_layer=False)


def _roberta(w: Width) -> Any:
    t = _t()
    return t.RobertaModel(t.RobertaConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                          intermediate_size=w.ffn, vocab_size=w.vocab, max_position_embeddings=256),
                          add_pooling_layer=False)


def _electra(w: Width) -> Any:
    t = _t()
    return t.ElectraModel(t.ElectraConfig(hidden_size=w.d, embedding_size=w.d, num_hidden_layers=w.layers,
                                          num_attention_heads=w.heads, intermediate_size=w.ffn, vocab_size=w.vocab,
                                          max_position_embeddings=256))


def _distilbert(w: Width) -> Any:
    t = _t()
    return t.DistilBertModel(t.DistilBertConfig(dim=w.d, n_layers=w.layers, n_heads=w.heads, hidden_dim=w.ffn,
                                                vocab_size=w.vocab, max_position_embeddings=256))


def _mpnet(w: Width) -> Any:
    t = _t()
    return t.MPNetModel(t.MPNetConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                      intermediate_size=w.ffn, vocab_size=w.vocab, max_position_embeddings=256),
                        add_pooling_layer=False)


def _vit(w: Width) -> Any:
    t = _t()
    return t.ViTModel(t.ViTConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                  intermediate_size=w.ffn, image_size=32, patch_size=4), add_pooling_layer=False)


def _clip_text(w: Width) -> Any:
    t = _t()
    return t.CLIPTextModel(t.CLIPTextConfig(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                            intermediate_size=w.ffn, vocab_size=w.vocab, max_position_embeddings=77,
                                            projection_dim=w.d, bos_token_id=1, eos_token_id=2, pad_token_id=0))


def _clip_vision(w: Width) -> Any:
    t = _t()
    return t.CLIPVisionModel(t.CLIPVisionConfig(hidden_size=w.d, num_hidden_layers=w.layers,
                                                num_attention_heads=w.heads, intermediate_size=w.ffn, image_size=32,
                                                patch_size=4, projection_dim=w.d))


def _whisper(w: Width) -> Any:
    t = _t()
    return t.WhisperModel(t.WhisperConfig(d_model=w.d, encoder_layers=w.layers, decoder_layers=w.layers,
                                          encoder_attention_heads=w.heads, decoder_attention_heads=w.heads,
                                          encoder_ffn_dim=w.ffn, decoder_ffn_dim=w.ffn, vocab_size=w.vocab,
                                          num_mel_bins=80, max_source_positions=1500, max_target_positions=128,
                                          pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1))


def _llama_like(config_name: str, model_name: str, **extra: Any) -> Callable[[Width], Any]:
    def build(w: Width) -> Any:
        t = _t()
        cfg = getattr(t, config_name)(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                      num_key_value_heads=w.kv_heads, intermediate_size=w.ffn, vocab_size=w.vocab,
                                      max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                                      **extra)
        return getattr(t, model_name)(cfg)

    return build


def _gemma_like(config_name: str, model_name: str, **extra: Any) -> Callable[[Width], Any]:
    def build(w: Width) -> Any:
        t = _t()
        cfg = getattr(t, config_name)(hidden_size=w.d, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                                      num_key_value_heads=w.kv_heads, intermediate_size=w.ffn, vocab_size=w.vocab,
                                      head_dim=w.head_dim, max_position_embeddings=256, **extra)
        return getattr(t, model_name)(cfg)

    return build


def _t5(w: Width) -> Any:
    t = _t()
    return t.T5EncoderModel(t.T5Config(d_model=w.d, num_layers=w.layers, num_heads=w.heads, d_kv=w.head_dim,
                                       d_ff=w.ffn, vocab_size=w.vocab))


def _bert_final(layers: int, stem: str = "encoder.layer") -> str:
    return f"{stem}.{layers - 1}.output.LayerNorm"


def matrix(width: Width = TINY) -> list[Case]:
    """The random-init matrix at ``width`` (final-norm paths depend on the layer count)."""
    last = width.layers - 1
    p = Width  # published shapes (d, layers, heads, kv, ffn, vocab)
    return [
        # LayerNorm family
        Case("gpt2", "gpt2", "text", _gpt2, "ln_f",
             published=p(1600, 48, 25, 25, 6400, 50257), published_name="GPT-2 XL"),
        Case("opt", "opt", "text", _opt, "decoder.final_layer_norm",
             published=p(4096, 32, 32, 32, 16384, 50272), published_name="OPT-6.7B"),
        Case("gpt_neox", "gpt_neox", "text", _neox, "final_layer_norm",
             published=p(5120, 36, 40, 40, 20480, 50688), published_name="Pythia-12B"),
        Case("bloom", "bloom", "text", _bloom, "ln_f",
             published=p(4096, 30, 32, 32, 16384, 250880), published_name="BLOOM-7B1"),
        Case("falcon", "falcon", "text", _falcon, "ln_f"),
        Case("phi", "phi", "text", _phi, "final_layernorm"),
        Case("gptj", "gptj", "text", _gptj, "ln_f"),
        Case("bert", "bert", "text", _bert, _bert_final(width.layers)),
        Case("roberta", "roberta", "text", _roberta, _bert_final(width.layers)),
        Case("electra", "electra", "text", _electra, _bert_final(width.layers)),
        Case("distilbert", "distilbert", "text", _distilbert,
             f"transformer.layer.{last}.output_layer_norm"),
        Case("mpnet", "mpnet", "text", _mpnet, _bert_final(width.layers)),
        Case("vit", "vit", "vision", _vit, "layernorm"),
        Case("clip_text", "clip", "text", _clip_text, "final_layer_norm"),
        # post_layernorm sees only the pooled token: report the last norm that sees every patch.
        Case("clip_vision", "clip", "vision", _clip_vision,
             f"encoder.layers.{last}.layer_norm2"),
        Case("whisper_encoder", "whisper", "speech", _whisper, "encoder.layer_norm",
             blocks_prefix="encoder.", sites_prefix="encoder."),
        Case("whisper_decoder", "whisper", "speech", _whisper, "decoder.layer_norm",
             blocks_prefix="decoder.", sites_prefix="decoder."),
        # RMSNorm family
        Case("llama", "llama", "text", _llama_like("LlamaConfig", "LlamaModel"), "norm",
             published=p(4096, 32, 32, 32, 11008, 32000), published_name="Llama-2-7B"),
        Case("mistral", "mistral", "text", _llama_like("MistralConfig", "MistralModel"), "norm",
             published=p(4096, 32, 32, 8, 14336, 32000), published_name="Mistral-7B"),
        Case("qwen2", "qwen2", "text", _llama_like("Qwen2Config", "Qwen2Model"), "norm",
             published=p(3584, 28, 28, 4, 18944, 152064), published_name="Qwen2-7B"),
        Case("qwen3", "qwen3", "text", _gemma_like("Qwen3Config", "Qwen3Model"), "norm"),
        Case("gemma", "gemma", "text", _gemma_like("GemmaConfig", "GemmaModel"), "norm",
             published=p(3072, 28, 16, 16, 24576, 256000), published_name="Gemma-7B"),
        Case("gemma2", "gemma2", "text", _gemma_like("Gemma2Config", "Gemma2Model"), "norm"),
        Case("gemma3_text", "gemma3_text", "text",
             _gemma_like("Gemma3TextConfig", "Gemma3TextModel"), "norm"),
        Case("t5", "t5", "text", _t5, "encoder.final_layer_norm"),
        Case("olmo2", "olmo2", "text", _llama_like("Olmo2Config", "Olmo2Model"), "norm"),
        Case("phi3", "phi3", "text", _llama_like("Phi3Config", "Phi3Model"), "norm"),
        Case("granite", "granite", "text", _llama_like("GraniteConfig", "GraniteModel"), "norm"),
    ]


def published_cases() -> list[Case]:
    """The cases that carry a published full-width shape (the gpu suite's matrix)."""
    return [c for c in matrix() if c.published is not None]


def reduced(w: Width, factor: int = 32, layers: int = 2) -> Width:
    """A published shape shrunk for CPU (``--gpu-as-cpu``): width/factor (≥ 128, 4 heads), 2 layers.

    Grouped-query attention is kept (2 kv heads) where the published shape has it.
    """
    heads = 4
    kv = heads if w.kv_heads == w.heads else 2
    d = max(128, (w.d // factor) // 8 * 8)
    return Width(d=d, layers=min(layers, w.layers), heads=heads, kv_heads=kv, ffn=max(256, w.ffn // factor),
                 vocab=min(w.vocab, 4096))
