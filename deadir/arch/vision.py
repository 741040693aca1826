"""Vision and dual-tower families: ViT, DeiT, DINOv2, Swin, ConvNeXt (channels-first), CLIP, SigLIP."""

from __future__ import annotations

from typing import Any

from deadir.arch.record import Architecture, FinalRule, NamingRule

R = NamingRule
_OUT = r"(^|\.)"
_V: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                      "image_size": 16, "patch_size": 4}
_T: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                      "vocab_size": 128, "max_position_embeddings": 64, "bos_token_id": 0, "eos_token_id": 1,
                      "pad_token_id": 2}
_EPS = ("layer_norm_eps",)
_VIT_RULES = (
    R(r"(?:encoder\.layer|layers)\.{N}\.layernorm_(?:before|after)", "block-input"),
    R(r"layernorm", "final"),
)
_LAYERNORM_FINAL = (FinalRule(_OUT + r"(?<!embeddings\.)layernorm$"),)
_TEXT_EPS = ("text_config.layer_norm_eps",)
_VISION_EPS = ("vision_config.layer_norm_eps",)


def _towers(vision_final: str, vision_other: tuple[R, ...]) -> tuple[R, ...]:
    return (
        R(r"text_model\.encoder\.layers\.{N}\.layer_norm[12]", "block-input", "text", eps_keys=_TEXT_EPS),
        R(r"text_model\.final_layer_norm", "final", "text", eps_keys=_TEXT_EPS),
        R(r"vision_model\.encoder\.layers\.{N}\.layer_norm[12]", "block-input", "vision", eps_keys=_VISION_EPS),
        R(vision_final, "final", "vision", eps_keys=_VISION_EPS),
        *vision_other,
    )


RECORDS: tuple[Architecture, ...] = (
    Architecture("vit", ("vit",), "layernorm", 0.0, _EPS, 1e-12, _VIT_RULES, _LAYERNORM_FINAL, stack="vision",
                 tiny_config=_V),
    Architecture("deit", ("deit",), "layernorm", 0.0, _EPS, 1e-12, _VIT_RULES, _LAYERNORM_FINAL, stack="vision",
                 tiny_config=_V),
    Architecture("beit", ("beit",), "layernorm", 0.0, _EPS, 1e-12, (*_VIT_RULES, R(r"pooler\.layernorm", "final")),
                 (FinalRule(_OUT + r"pooler\.layernorm$"), *_LAYERNORM_FINAL), stack="vision", tiny_config=_V,
                 note="mean pooling (the default) normalises the pooled patches in pooler.layernorm: that is the "
                      "final norm; without it, layernorm"),
    Architecture("dinov2", ("dinov2",), "layernorm", 0.0, _EPS, 1e-6, (
        R(r"encoder\.layer\.{N}\.norm[12]", "block-input"),
        R(r"layernorm", "final"),
    ), _LAYERNORM_FINAL, stack="vision", tiny_config=_V),
    Architecture("swin", ("swin",), "layernorm", 0.0, _EPS, 1e-5, (
        R(r"embeddings\.norm", "embedding", eps_fixed=1e-5),
        R(r"encoder\.layers\.{N}\.blocks\.\d+\.layernorm_(?:before|after)", "block-input"),
        R(r"encoder\.layers\.{N}\.downsample\.norm", "block-input", eps_fixed=1e-5),
        R(r"layernorm", "final"),
    ), _LAYERNORM_FINAL, stack="vision",
        tiny_config={"embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2], "image_size": 16, "patch_size": 4,
                     "window_size": 2},
        note="blocks are stages (encoder.layers.N) of windowed blocks; the patch-merging norm of stage N is "
             "over 4× the stage width; the embedding and merging norms use nn.LayerNorm's default ε"),
    Architecture("convnext", ("convnext",), "layernorm", 0.0, _EPS, 1e-12, (
        R(r"embeddings\.layernorm", "embedding", eps_fixed=1e-6),
        R(r"encoder\.stages\.{N}\.layers\.\d+\.layernorm", "block-input", eps_fixed=1e-6),
        R(r"encoder\.stages\.{N}\.downsampling_layer\.0", "block-input", eps_fixed=1e-6),
        R(r"layernorm", "final"),
    ), _LAYERNORM_FINAL, stack="vision",
        tiny_config={"hidden_sizes": [16, 32], "depths": [1, 1], "num_stages": 2, "image_size": 16},
        note="ConvNextLayerNorm normalises channels-first feature maps over the channel axis: per pixel the same "
             "LayerNorm over d channels; in-stage norms use ε = 1e-6 from the code, the final one the config's"),
    Architecture("clip", ("clip", "clip_text_model", "clip_vision_model"), "layernorm", 0.0, _EPS, 1e-5, _towers(
        r"vision_model\.post_layernorm", (R(r"vision_model\.pre_layrnorm", "embedding", "vision",
                                            eps_keys=_VISION_EPS),)),
        (FinalRule(_OUT + r"text_model\.final_layer_norm$"), FinalRule(_OUT + r"vision_model\.post_layernorm$")),
        stack="",
        tiny_config={"text_config": _T, "vision_config": _V, "projection_dim": 16},
        note="two towers; the vision tower's post_layernorm reads only the pooled token"),
    Architecture("siglip", ("siglip", "siglip_vision_model"), "layernorm", 0.0, _EPS, 1e-6, _towers(
        r"vision_model\.post_layernorm", (R(r"vision_model\.head\.layernorm", "other", "vision",
                                            eps_keys=_VISION_EPS),)),
        (FinalRule(_OUT + r"text_model\.final_layer_norm$"), FinalRule(_OUT + r"vision_model\.post_layernorm$")),
        stack="", tiny_config={"text_config": _T, "vision_config": _V},
        note="SigLIP's norms are LayerNorms (unlike Gemma's RMSNorm around it in PaliGemma / Gemma 3); the "
             "attention-pooling head has its own LayerNorm"),
)  # fmt: skip
