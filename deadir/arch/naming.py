"""Naming knowledge shared by every family: generic norm names, and the GGUF naming.

Hugging Face checkpoints name their norms per family (the records' rules). Two things are
shared: the generic names that say a module is a q/k norm, an embedding norm or a final norm
when no family rule says so; and llama.cpp's GGUF naming, one for every architecture (the
kind then comes from the record that ``general.architecture`` selects).
"""

from __future__ import annotations

from deadir.arch.record import NamingRule

GENERIC_FINAL_NAMES = ("ln_f", "norm", "final_layer_norm", "final_layernorm", "layer_norm", "layernorm",
                       "post_layernorm", "norm_f", "ln_final", "final_norm")
"""Leaf names of a norm outside the blocks that, for a family without final rules, is taken as final."""

QK_NAMES = r"(^|\.)(q_norm|k_norm|q_layernorm|k_layernorm|query_norm|key_norm|q_ln|k_ln)$"
"""In-block names of q/k norms (role "attention-qk")."""

EMBEDDING_NAMES = (r"(^|\.)(embeddings?\.LayerNorm|embeddings\.(?:norm|layernorm)|word_embeddings_layernorm|"
                   r"layernorm_embedding|emb_ln|embed_layer_norm|pre_layrnorm|pre_layernorm|embedding_norm|ln_embed)$")
"""Names of norms of the embeddings, outside the blocks (role "embedding")."""

GGUF_RULES = (
    NamingRule(r"token_embd_norm", "embedding", anchored=True),
    NamingRule(r"output_norm", "final", anchored=True),
    NamingRule(r"blk\.{N}\.(?:attn_norm|attn_norm_2|ffn_norm)", "block-input", anchored=True),
    NamingRule(r"blk\.{N}\.(?:post_attention_norm|post_ffw_norm|attn_output_norm|layer_output_norm)",
               "block-output", anchored=True),
    NamingRule(r"blk\.{N}\.attn_(?:q|k)_norm", "attention-qk", anchored=True),
    NamingRule(r"enc\.blk\.{N}\.(?:attn_norm|ffn_norm)", "block-input", "encoder", anchored=True),
    NamingRule(r"dec\.blk\.{N}\.(?:attn_norm|cross_attn_norm|ffn_norm)", "block-input", "decoder", anchored=True),
    NamingRule(r"enc\.output_norm", "final", "encoder", anchored=True),
    NamingRule(r"dec\.output_norm", "final", "decoder", anchored=True),
)
"""llama.cpp's norm tensor names (minus ``.weight``), the same for every architecture."""

GGUF_LAST_BLOCK_FINAL = r"^layer_output_norm$"
"""GGUF post-LN encoders (BERT) end in ``blk.N.layer_output_norm``: the last block's is final."""
