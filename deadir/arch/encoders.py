"""Encoder families: BERT and its descendants (post-LN), MobileBERT's NoNorm, ModernBERT (pre-LN)."""

from __future__ import annotations

from typing import Any

from deadir.arch.plans import plan_bert
from deadir.arch.record import Architecture, FinalRule, NamingRule

R = NamingRule
_L: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                      "vocab_size": 128, "max_position_embeddings": 64}
_ROBERTA_TOK = {"max_position_embeddings": 72, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}

_BERT_RULES = (
    R(r"embeddings\.LayerNorm", "embedding"),
    R(r"encoder\.layer\.{N}\.attention\.output\.LayerNorm", "block-output"),
    R(r"encoder\.layer\.{N}\.output\.LayerNorm", "block-output"),
    R(r"cls\.predictions\.transform\.LayerNorm", "other"),
    R(r"lm_head\.layer_norm", "other"),
    R(r"generator_predictions\.LayerNorm", "other"),
)
_BERT_FINAL = (FinalRule(r"^output\.LayerNorm$", last_block=True),)
_EPS = ("layer_norm_eps",)


def _bert_like(name: str, tiny: dict[str, Any], *, aliases: tuple[str, ...] = (), plan: Any = None,
               gguf: tuple[str, ...] = (), extra: tuple[R, ...] = (), position_offset: int = 0,
               note: str = "") -> Architecture:
    return Architecture(name, (name, *aliases), "layernorm", 0.0, _EPS, 1e-12, _BERT_RULES + extra, _BERT_FINAL,
                        post_ln=r"LayerNorm$", stack="encoder", gguf_names=gguf, tiny_config=tiny, fisher_plan=plan,
                        position_offset=position_offset, note=note)


RECORDS: tuple[Architecture, ...] = (
    _bert_like("bert", {**_L, "pad_token_id": 0}, gguf=("bert",), plan=plan_bert,
               note="post-LN: each residual sum is read by one LayerNorm; the last block's output LayerNorm is final"),
    _bert_like("roberta", {**_L, **_ROBERTA_TOK}, aliases=("xlm-roberta", "camembert"), plan=plan_bert,
               position_offset=2),
    _bert_like("electra", {**_L, "embedding_size": 16, "pad_token_id": 0},
               note="embeddings of their own width (embedding_size), projected to the hidden size"),
    _bert_like("deberta", {**_L, "pad_token_id": 0},
               note="DebertaLayerNorm: a LayerNorm with β computed in float32 (ε = layer_norm_eps, 1e-7)"),
    _bert_like("deberta-v2", {**_L, "pad_token_id": 0}, extra=(R(r"encoder\.LayerNorm", "other"),),
               note="encoder.LayerNorm normalises the relative-position embeddings (norm_rel_ebd='layer_norm')"),
    Architecture("mpnet", ("mpnet",), "layernorm", 0.0, _EPS, 1e-12, (
        R(r"embeddings\.LayerNorm", "embedding"),
        R(r"encoder\.layer\.{N}\.attention\.LayerNorm", "block-output"),
        R(r"encoder\.layer\.{N}\.output\.LayerNorm", "block-output"),
        R(r"lm_head\.layer_norm", "other"),
    ), _BERT_FINAL, post_ln=r"LayerNorm$", stack="encoder", tiny_config={**_L, **_ROBERTA_TOK},
        position_offset=2),
    Architecture("distilbert", ("distilbert",), "layernorm", 0.0, (), 1e-12, (
        R(r"embeddings\.LayerNorm", "embedding"),
        R(r"transformer\.layer\.{N}\.(?:sa_layer_norm|output_layer_norm)", "block-output"),
        R(r"vocab_layer_norm", "other"),
    ), (FinalRule(r"^output_layer_norm$", last_block=True),), post_ln=r"layer_norm$", stack="encoder",
        tiny_config={"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "vocab_size": 128,
                     "max_position_embeddings": 64, "pad_token_id": 0},
        note="ε fixed at 1e-12 in the model code (not in the config)"),
    Architecture("albert", ("albert",), "layernorm", 0.0, _EPS, 1e-12, (
        R(r"embeddings\.LayerNorm", "embedding"),
        R(r"encoder\.albert_layer_groups\.{N}\.albert_layers\.\d+\.(?:attention\.LayerNorm|full_layer_layer_norm)",
          "block-output"),
        R(r"predictions\.LayerNorm", "other"),
    ), (FinalRule(r"full_layer_layer_norm$", last_block=True),), post_ln=r"(LayerNorm|layer_norm)$",
        stack="encoder", tiny_config={**_L, "embedding_size": 16, "pad_token_id": 0, "num_hidden_groups": 1},
        note="one layer group shared by every layer: each site is applied num_hidden_layers times"),
    Architecture("mobilebert", ("mobilebert",), "affine-only", 0.0, (), 0.0, (
        R(r"embeddings\.LayerNorm", "embedding"),
        R(r"encoder\.layer\.{N}\.(?:.+\.)?LayerNorm", "block-output"),
        R(r"cls\.predictions\.transform\.LayerNorm", "other"),
    ), (FinalRule(r"^output\.bottleneck\.LayerNorm$", last_block=True),), post_ln=r"LayerNorm$", stack="encoder",
        tiny_config={**_L, "embedding_size": 16, "intra_bottleneck_size": 16, "true_hidden_size": 16,
                     "num_feedforward_networks": 2, "pad_token_id": 0},
        note="NoNorm (normalization_type='no_norm'): y = w⊙x + b, no normalisation at all, so no kernel; "
             "the modules are still named LayerNorm"),
    Architecture("modernbert", ("modernbert",), "layernorm", 0.0, ("norm_eps",), 1e-5, (
        R(r"embeddings\.norm", "embedding"),
        R(r"layers\.{N}\.(?:attn_norm|mlp_norm)", "block-input"),
        R(r"final_norm", "final"),
        R(r"head\.norm", "other"),
    ), (FinalRule(r"(^|\.)final_norm$"),), stack="encoder",
        tiny_config={**_L, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1,
                     "sep_token_id": 2, "global_attn_every_n_layers": 1},
        note="pre-LN encoder with bias-free LayerNorms; layer 0 has no attn_norm (the embedding norm precedes it)"),
)  # fmt: skip
