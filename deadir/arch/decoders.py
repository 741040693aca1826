"""Decoder-only families: GPT-2 and its descendants (LayerNorm), the Llama line (RMSNorm), Gemma (1 + w), OLMo."""

from __future__ import annotations

from typing import Any

from deadir.arch.plans import plan_gemma2, plan_gpt2, plan_gpt_neo, plan_llama
from deadir.arch.record import Architecture, FinalRule, NamingRule

R = NamingRule
_OUT = r"(^|\.)"
_TOK = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}
_L = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
      "vocab_size": 128, "max_position_embeddings": 64}
_GQA: dict[str, Any] = {**_L, "num_key_value_heads": 2, "head_dim": 8, **_TOK}
_GPT2_TINY = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 128, "n_positions": 64, **_TOK}

_H_RULES = (  # GPT-2 style: h.N.ln_1 / ln_2, ln_f
    R(r"h\.{N}\.ln_1", "block-input"), R(r"h\.{N}\.ln_2", "block-input"),
    R(r"h\.{N}\.ln_cross_attn", "block-input"), R(r"ln_f", "final"),
)  # fmt: skip
_LLAMA_RULES = (
    R(r"layers\.{N}\.input_layernorm", "block-input"),
    R(r"layers\.{N}\.post_attention_layernorm", "block-input"),
    R(r"norm", "final"),
)
_QK_RULES = (R(r"layers\.{N}\.self_attn\.(?:q|k)_norm", "attention-qk"),)
_SANDWICH_RULES = (  # Gemma 2 / 3: a norm before and after attention and the MLP
    R(r"layers\.{N}\.input_layernorm", "block-input"),
    R(r"layers\.{N}\.pre_feedforward_layernorm", "block-input"),
    R(r"layers\.{N}\.post_attention_layernorm", "block-output"),
    R(r"layers\.{N}\.post_feedforward_layernorm", "block-output"),
    R(r"norm", "final"),
)
_SANDWICH_POST_LN = r"^post_(attention|feedforward)_layernorm$"
_LN_F = (FinalRule(_OUT + r"ln_f$"),)
_NORM = (FinalRule(_OUT + r"norm$"),)
_SIGLIP_EPS = ("vision_config.layer_norm_eps",)


def _rms(name: str, *, gguf: tuple[str, ...] = (), tiny: dict[str, Any] | None = None,
         rules: tuple[R, ...] = _LLAMA_RULES, plan: Any = None, note: str = "",
         aliases: tuple[str, ...] = ()) -> Architecture:
    return Architecture(name, (name, *aliases), "rmsnorm", 0.0, ("rms_norm_eps",), 1e-6, rules, _NORM,
                        gguf_names=gguf, tiny_config=_GQA if tiny is None else tiny, fisher_plan=plan, note=note)


RECORDS: tuple[Architecture, ...] = (
    # ---------------------------------------------------------------- LayerNorm decoders
    Architecture("gpt2", ("gpt2",), "layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, _H_RULES, _LN_F,
                 gguf_names=("gpt2",), tiny_config=_GPT2_TINY, fisher_plan=plan_gpt2),
    Architecture("gpt_neo", ("gpt_neo",), "layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, _H_RULES, _LN_F,
                 tiny_config={"hidden_size": 32, "num_layers": 2, "num_heads": 4, "vocab_size": 128,
                              "max_position_embeddings": 64, "attention_types": [[["global", "local"], 1]],
                              "window_size": 16, **_TOK}, fisher_plan=plan_gpt_neo),
    Architecture("gptj", ("gptj",), "layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, _H_RULES, _LN_F,
                 gguf_names=("gptj",), tiny_config={**_GPT2_TINY, "rotary_dim": 4},
                 note="parallel attention and MLP read the same ln_1"),
    Architecture("codegen", ("codegen",), "layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, _H_RULES, _LN_F,
                 tiny_config={**_GPT2_TINY, "n_ctx": 64, "rotary_dim": 4}),
    Architecture("gpt_bigcode", ("gpt_bigcode",), "layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, _H_RULES, _LN_F,
                 gguf_names=("starcoder",), tiny_config=_GPT2_TINY),
    Architecture("bloom", ("bloom",), "layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, (
        R(r"word_embeddings_layernorm", "embedding"),
        R(r"h\.{N}\.input_layernorm", "block-input"), R(r"h\.{N}\.post_attention_layernorm", "block-input"),
        R(r"ln_f", "final"),
    ), _LN_F, gguf_names=("bloom",),
        tiny_config={"hidden_size": 32, "n_layer": 2, "n_head": 4, "vocab_size": 128, **_TOK}),
    Architecture("falcon", ("falcon",), "layernorm", 0.0, ("layer_norm_epsilon",), 1e-5, (
        R(r"h\.{N}\.(?:input_layernorm|post_attention_layernorm|ln_attn|ln_mlp)", "block-input"),
        R(r"ln_f", "final"),
    ), _LN_F, gguf_names=("falcon",),
        tiny_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 128, **_TOK}),
    Architecture("opt", ("opt",), "layernorm", 0.0, (), 1e-5, (
        R(r"layers\.{N}\.self_attn_layer_norm", "block-input"),
        R(r"layers\.{N}\.final_layer_norm", "block-input"),
        R(r"decoder\.final_layer_norm", "final"),
    ), (FinalRule(_OUT + r"decoder\.final_layer_norm$"), FinalRule(r"^final_layer_norm$", last_block=True)),
        pre_ln_flag="do_layer_norm_before",
        tiny_config={**_L, "ffn_dim": 64, "word_embed_proj_dim": 32, **_TOK},
        note="do_layer_norm_before=False (OPT-350m) makes every block norm post-LN, the last block's final"),
    Architecture("gpt_neox", ("gpt_neox",), "layernorm", 0.0, ("layer_norm_eps",), 1e-5, (
        R(r"layers\.{N}\.input_layernorm", "block-input"),
        R(r"layers\.{N}\.post_attention_layernorm", "block-input"),
        R(r"final_layer_norm", "final"),
    ), (FinalRule(_OUT + r"final_layer_norm$"),), gguf_names=("gptneox",), tiny_config={**_L, **_TOK}),
    Architecture("phi", ("phi",), "layernorm", 0.0, ("layer_norm_eps",), 1e-5, (
        R(r"layers\.{N}\.input_layernorm", "block-input"),
        R(r"layers\.{N}\.self_attn\.(?:q|k)_layernorm", "attention-qk"),
        R(r"final_layernorm", "final"),
    ), (FinalRule(_OUT + r"final_layernorm$"),), gguf_names=("phi2",), tiny_config={**_L, **_TOK}),
    Architecture("biogpt", ("biogpt",), "layernorm", 0.0, (), 1e-5, (
        R(r"layers\.{N}\.self_attn_layer_norm", "block-input"),
        R(r"layers\.{N}\.final_layer_norm", "block-input"),
        R(r"layer_norm", "final"),
    ), (FinalRule(_OUT + r"layer_norm$"),), tiny_config={**_L, **_TOK},
        note="every LayerNorm is nn.LayerNorm(d) with the default ε = 1e-5: config.layer_norm_eps is not used"),
    Architecture("stablelm", ("stablelm",), "layernorm", 0.0, ("layer_norm_eps",), 1e-5, _LLAMA_RULES, _NORM,
                 gguf_names=("stablelm",), tiny_config=_GQA),
    Architecture("starcoder2", ("starcoder2",), "layernorm", 0.0, ("norm_epsilon",), 1e-5, _LLAMA_RULES, _NORM,
                 gguf_names=("starcoder2",), tiny_config=_GQA),
    Architecture("cohere", ("cohere",), "layernorm", 0.0, ("layer_norm_eps",), 1e-5, (
        R(r"layers\.{N}\.input_layernorm", "block-input"),
        R(r"layers\.{N}\.self_attn\.(?:q|k)_norm", "attention-qk"),
        R(r"norm", "final"),
    ), _NORM, gguf_names=("command-r",), tiny_config=_GQA,
        note="CohereLayerNorm centres (a LayerNorm without β), although llama.cpp files it with the RMSNorm models"),
    Architecture("olmo", ("olmo",), "layernorm", 0.0, (), 1e-5, _LLAMA_RULES, _NORM, gguf_names=("olmo",),
                 nonparametric=True,
                 nonparametric_sites=("layers.{N}.input_layernorm", "layers.{N}.post_attention_layernorm", "norm"),
                 gguf_nonparametric_sites=("blk.{N}.attn_norm", "blk.{N}.ffn_norm", "output_norm"),
                 tiny_config=_GQA,
                 note="OlmoLayerNorm is F.layer_norm without affine: γ = 1, β = 0, ε = 1e-5, no tensors stored"),
    # ---------------------------------------------------------------- RMSNorm decoders
    _rms("llama", gguf=("llama",), plan=plan_llama),
    _rms("mistral", plan=plan_llama, note="llama.cpp converts Mistral to general.architecture 'llama'"),
    _rms("mixtral", tiny={**_GQA, "num_local_experts": 2, "num_experts_per_tok": 1},
         note="llama.cpp converts Mixtral to 'llama'; experts sit behind the same post_attention_layernorm"),
    _rms("qwen2", gguf=("qwen2",), plan=plan_llama),
    _rms("qwen2_moe", gguf=("qwen2moe",), tiny={**_GQA, "num_experts": 2, "num_experts_per_tok": 1,
                                                 "moe_intermediate_size": 16, "shared_expert_intermediate_size": 16}),
    _rms("qwen3", gguf=("qwen3",), rules=_LLAMA_RULES + _QK_RULES),
    _rms("qwen3_moe", gguf=("qwen3moe",), rules=_LLAMA_RULES + _QK_RULES,
         tiny={**_GQA, "num_experts": 2, "num_experts_per_tok": 1, "moe_intermediate_size": 16}),
    _rms("phi3", gguf=("phi3",)),
    _rms("granite", gguf=("granite",)),
    Architecture("olmo2", ("olmo2",), "rmsnorm", 0.0, ("rms_norm_eps",), 1e-6, (
        R(r"layers\.{N}\.post_attention_layernorm", "block-output"),
        R(r"layers\.{N}\.post_feedforward_layernorm", "block-output"),
        *_QK_RULES, R(r"norm", "final"),
    ), _NORM, post_ln=_SANDWICH_POST_LN, gguf_names=("olmo2",), tiny_config=_GQA,
        note="norms only after attention and the MLP (post-norm inside a pre-norm stream); q/k norms over all heads"),
    Architecture("gemma", ("gemma",), "rmsnorm", 1.0, ("rms_norm_eps",), 1e-6, _LLAMA_RULES, _NORM,
                 gguf_names=("gemma",), gguf_stores_effective=True, tiny_config=_GQA, fisher_plan=plan_llama,
                 note="γ = 1 + w (weights initialised to 0); llama.cpp stores 1 + w in GGUF"),
    Architecture("gemma2", ("gemma2",), "rmsnorm", 1.0, ("rms_norm_eps",), 1e-6, _SANDWICH_RULES, _NORM,
                 post_ln=_SANDWICH_POST_LN, gguf_names=("gemma2",), gguf_stores_effective=True, tiny_config=_GQA,
                 fisher_plan=plan_gemma2),
    Architecture("gemma3_text", ("gemma3_text",), "rmsnorm", 1.0, ("rms_norm_eps",), 1e-6,
                 _SANDWICH_RULES + _QK_RULES, _NORM, post_ln=_SANDWICH_POST_LN, gguf_names=("gemma3",),
                 gguf_stores_effective=True, tiny_config=_GQA, fisher_plan=plan_gemma2,
                 note="a Gemma 3 GGUF holds the language model (the vision tower ships as a separate mmproj)"),
    Architecture("gemma3", ("gemma3",), "rmsnorm", 1.0, ("text_config.rms_norm_eps", "rms_norm_eps"), 1e-6, (
        R(r"vision_tower\.(?:vision_model\.)?encoder\.layers\.{N}\.layer_norm[12]", "block-input", "vision",
          kind="layernorm", weight_offset=0.0, eps_keys=_SIGLIP_EPS),
        R(r"vision_tower\.(?:vision_model\.)?post_layernorm", "final", "vision", kind="layernorm", weight_offset=0.0,
          eps_keys=_SIGLIP_EPS),
        R(r"vision_tower\.(?:vision_model\.)?head\.layernorm", "other", "vision", kind="layernorm", weight_offset=0.0,
          eps_keys=_SIGLIP_EPS),
        R(r"multi_modal_projector\.mm_soft_emb_norm", "other", eps_keys=_SIGLIP_EPS),
        *_SANDWICH_RULES, *_QK_RULES,
    ), (
        # transformers 5 names the SigLIP tower vision_tower(.vision_model)?; 4.x named it vision_model
        FinalRule(_OUT + r"language_model\.norm$"),
        FinalRule(r"(vision_tower\.(vision_model\.)?|vision_model\.)post_layernorm$"),
    ), post_ln=_SANDWICH_POST_LN,
        tiny_config={
            "text_config": {**_GQA, "vocab_size": 300, "sliding_window": 16,
                            "layer_types": ["sliding_attention", "full_attention"]},
            "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "image_size": 28, "patch_size": 14},
            "mm_tokens_per_image": 4, "image_token_index": 299, "boi_token_index": 297, "eoi_token_index": 298,
        },
        note="Gemma 3 text (RMSNorm, 1 + w) with a SigLIP vision tower (LayerNorm) and an RMSNorm projector"),
)  # fmt: skip
