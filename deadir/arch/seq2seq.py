"""Encoder-decoder families: T5 (RMSNorm under the name LayerNorm), BART and Marian (post-LN), Whisper (pre-LN)."""

from __future__ import annotations

from deadir.arch.record import Architecture, FinalRule, NamingRule

R = NamingRule
_OUT = r"(^|\.)"
_S2S = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "vocab_size": 128}
_BART_RULES = (
    R(r"(?:encoder|decoder)\.layers\.{N}\.(?:self_attn_layer_norm|encoder_attn_layer_norm|final_layer_norm)",
      "block-output"),
    R(r"(?:encoder|decoder)\.layernorm_embedding", "embedding"),
)

RECORDS: tuple[Architecture, ...] = (
    Architecture("t5", ("t5", "mt5", "umt5"), "rmsnorm", 0.0, ("layer_norm_epsilon",), 1e-6, (
        R(r"(?:encoder|decoder)\.block\.{N}\.layer\.\d+\.layer_norm", "block-input"),
        R(r"(?:encoder|decoder)\.final_layer_norm", "final"),
    ), (FinalRule(_OUT + r"encoder\.final_layer_norm$"), FinalRule(_OUT + r"decoder\.final_layer_norm$")),
        stack="", gguf_names=("t5", "t5encoder"),
        tiny_config={"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 128,
                     "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0},
        note="T5LayerNorm is an RMSNorm (no centring) despite its name"),
    Architecture("bart", ("bart",), "layernorm", 0.0, (), 1e-5, _BART_RULES,
                 (FinalRule(r"^final_layer_norm$", last_block=True),), post_ln=r".*", stack="",
                 tiny_config={**_S2S, "max_position_embeddings": 64, "pad_token_id": 1, "bos_token_id": 0,
                              "eos_token_id": 2, "decoder_start_token_id": 2},
                 note="post-LN (normalize_before=False): each stack ends in its last block's final_layer_norm"),
    Architecture("marian", ("marian",), "layernorm", 0.0, (), 1e-5, _BART_RULES,
                 (FinalRule(r"^final_layer_norm$", last_block=True),), post_ln=r".*", stack="",
                 tiny_config={**_S2S, "max_position_embeddings": 64, "pad_token_id": 1, "eos_token_id": 0,
                              "decoder_start_token_id": 1},
                 note="post-LN like BART, without an embedding LayerNorm"),
    Architecture("whisper", ("whisper",), "layernorm", 0.0, (), 1e-5, (
        R(r"(?:encoder|decoder)\.layers\.{N}\.(?:self_attn_layer_norm|encoder_attn_layer_norm|final_layer_norm)",
          "block-input"),
        R(r"(?:encoder|decoder)\.layer_norm", "final"),
    ), (FinalRule(_OUT + r"encoder\.layer_norm$"), FinalRule(_OUT + r"decoder\.layer_norm$")), stack="",
        tiny_config={**_S2S, "num_mel_bins": 80, "max_source_positions": 50, "max_target_positions": 64,
                     "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1},
        ctranslate2_rules=(
            R(r"(?:encoder|decoder)/layer_{N}/(?:self_attention|attention|ffn)/layer_norm", "block-input",
              anchored=True),
            R(r"(?:encoder|decoder)/layer_norm", "final", anchored=True),
        ),
        note="ε is not stored (Whisper's 1e-5); CTranslate2's model.bin names the norms gamma/beta"),
)  # fmt: skip
