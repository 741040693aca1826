"""CTranslate2 Whisper -> ``transformers`` ``WhisperForConditionalGeneration`` (model loading, not bytes).

:mod:`deadir.io.ctranslate2` reads the ``model.bin`` bytes; this module maps its variables onto
a ``WhisperForConditionalGeneration`` built from a ``WhisperConfig`` whose sizes are read off the
variable shapes, and builds the tokenizer from the ``tokenizer.json`` beside it. It imports
``transformers`` and lives with model loading (``deadir.models`` calls it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from deadir.errors import CheckpointError, UnsafeCheckpointError
from deadir.io import Checkpoint, TensorInfo, open_checkpoint
from deadir.io.files import inside_folder, open_regular, read_small_file
from deadir.io.limits import MAX_JSON_BYTES, load_json

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration

__all__ = [
    "CT2_WHISPER_NAME_MAP",
    "ctranslate2_whisper_mapping",
    "ctranslate2_whisper_tokenizer",
    "load_ctranslate2_whisper",
]


# CTranslate2 WhisperSpec scope -> WhisperForConditionalGeneration module, per layer.
# Fused projections ("qkv", "kv") are split row-wise into equal blocks of d_model.
CT2_WHISPER_NAME_MAP: dict[str, tuple[str, ...]] = {
    "self_attention/layer_norm": ("self_attn_layer_norm",),
    "self_attention/linear_0": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "self_attention/linear_1": ("self_attn.out_proj",),
    "attention/layer_norm": ("encoder_attn_layer_norm",),
    "attention/linear_0": ("encoder_attn.q_proj",),
    "attention/linear_1": ("encoder_attn.k_proj", "encoder_attn.v_proj"),
    "attention/linear_2": ("encoder_attn.out_proj",),
    "ffn/layer_norm": ("final_layer_norm",),
    "ffn/linear_0": ("fc1",),
    "ffn/linear_1": ("fc2",),
}
_CT2_LEAF = {"gamma": "weight", "beta": "bias", "weight": "weight", "bias": "bias"}
_CT2_WHISPER_FLAGS = (
    ("decoder/pre_norm", 1), ("decoder/activation", 3), ("decoder/scale_embeddings", 0), ("decoder/alibi", 0),
)  # fmt: skip


def ctranslate2_whisper_mapping(ct2_names: Iterable[str]) -> dict[str, list[str]]:
    """CT2 variable name -> the WhisperForConditionalGeneration parameter name(s) it fills.

    A fused variable maps to several parameters, filled from equal row blocks in order
    (self-attention ``linear_0`` = q, k, v; cross-attention ``linear_1`` = k, v). Whisper's
    k projections have no bias: the matching block of a fused bias maps to ``""`` and must
    be zero. Names with no counterpart are left out (the caller reports them).
    """
    mapping: dict[str, list[str]] = {}
    for name in ct2_names:
        parts = name.split("/")
        side, leaf = parts[0], parts[-1]
        if side not in ("encoder", "decoder") or (leaf not in _CT2_LEAF and leaf != "encodings"):
            continue
        prefix = f"model.{side}"
        middle = "/".join(parts[1:-1])
        if middle in ("conv1", "conv2", "layer_norm"):
            mapping[name] = [f"{prefix}.{middle}.{_CT2_LEAF[leaf]}"]
        elif middle == "position_encodings" and leaf == "encodings":
            mapping[name] = [f"{prefix}.embed_positions.weight"]
        elif middle == "embeddings" and side == "decoder" and leaf == "weight":
            mapping[name] = ["model.decoder.embed_tokens.weight"]
        elif middle == "projection" and side == "decoder" and leaf == "weight":
            mapping[name] = ["proj_out.weight"]
        elif parts[1].startswith("layer_") and parts[1][6:].isdigit():
            modules = CT2_WHISPER_NAME_MAP.get("/".join(parts[2:-1]))
            if modules is None or leaf not in _CT2_LEAF:
                continue
            layer = f"{prefix}.layers.{int(parts[1][6:])}"
            targets = [f"{layer}.{m}.{_CT2_LEAF[leaf]}" for m in modules]
            if leaf == "bias":
                targets = ["" if ".k_proj." in t else t for t in targets]
            mapping[name] = targets
    return mapping


def _whisper_config_from_ct2(ck: Checkpoint, tokenizer_ids: Mapping[str, int]) -> Any:
    """WhisperConfig whose sizes are read off the CT2 variable shapes."""
    from transformers import WhisperConfig

    infos: Mapping[str, TensorInfo] = ck.tensors
    config = ck.config

    def shape(name: str) -> tuple[int, ...]:
        if name not in infos:
            raise CheckpointError(f"CTranslate2 Whisper model lacks variable {name!r}")
        return infos[name].shape

    def n_layers(side: str) -> int:
        scopes = {n.split("/")[1] for n in infos if n.startswith(f"{side}/layer_")}
        return sum(1 for s in scopes if s[6:].isdigit())  # "layer_norm" is not a layer

    d_model = shape("encoder/layer_norm/gamma")[0]
    vocab = shape("decoder/embeddings/weight")[0]
    heads: dict[str, int] = {}
    for side in ("encoder", "decoder"):
        var = f"{side}/num_heads"
        if var in infos:
            heads[side] = int(ck.read([var])[var].reshape(-1)[0])
        elif config.get(f"{side}_attention_heads") is not None:
            heads[side] = int(config[f"{side}_attention_heads"])
        else:
            # Whisper uses 64-dimensional heads at every size (tiny..large)
            heads[side] = max(1, d_model // 64)
    # Special token ids from the tokenizer.json shipped next to model.bin when there is one
    # (<|endoftext|> is pad/bos/eos, <|startoftranscript|> starts decoding); without it,
    # the last id, so that tiny test vocabularies stay valid.
    ids = {"<|endoftext|>": vocab - 1, "<|startoftranscript|>": vocab - 1}
    ids.update({k: v for k, v in tokenizer_ids.items() if k in ids and 0 <= v < vocab})
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=shape("encoder/conv1/weight")[1],
        d_model=d_model,
        encoder_layers=n_layers("encoder"),
        decoder_layers=n_layers("decoder"),
        encoder_attention_heads=heads["encoder"],
        decoder_attention_heads=heads["decoder"],
        encoder_ffn_dim=shape("encoder/layer_0/ffn/linear_0/weight")[0],
        decoder_ffn_dim=shape("decoder/layer_0/ffn/linear_0/weight")[0],
        max_source_positions=shape("encoder/position_encodings/encodings")[0],
        max_target_positions=shape("decoder/position_encodings/encodings")[0],
        tie_word_embeddings=True,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )


def _added_token_ids(folder: Path) -> dict[str, int]:
    """content -> id of the added (special) tokens of the folder's tokenizer.json; {} if absent or unreadable.

    Raises:
        UnsafeCheckpointError: tokenizer.json is a FIFO/device or a symlink out of the folder.
    """
    if not os.path.lexists(folder / "tokenizer.json"):
        return {}
    file = inside_folder(Path("tokenizer.json"), folder, "tokenizer file")
    try:
        data = load_json(read_small_file(file, MAX_JSON_BYTES, "tokenizer.json"), file, "tokenizer.json")
        return {str(t["content"]): int(t["id"]) for t in data.get("added_tokens", [])}
    except UnsafeCheckpointError:
        raise
    except (CheckpointError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # the ids are a convenience for generation; the weights do not depend on them


def ctranslate2_whisper_tokenizer(folder: str | os.PathLike[str]) -> Any:
    """The fast tokenizer of a CTranslate2 Whisper folder (its tokenizer.json).

    tokenizer.json carries no special-token roles; Whisper's end of text is its pad and eos.

    Raises:
        CheckpointError: the folder has no tokenizer.json.
    """
    from transformers import PreTrainedTokenizerFast

    if not os.path.lexists(Path(folder) / "tokenizer.json"):
        raise CheckpointError(f"{Path(folder) / 'tokenizer.json'}: no tokenizer.json beside the CTranslate2 model")
    file = inside_folder(Path("tokenizer.json"), Path(folder), "tokenizer file")
    with open_regular(file):
        pass  # a FIFO or device raises here, before the tokenizers library would block on it
    tok: Any = PreTrainedTokenizerFast(tokenizer_file=str(file))  # type: ignore[no-untyped-call]
    tok.eos_token = tok.pad_token = "<|endoftext|>"
    return tok


def load_ctranslate2_whisper(path: str | os.PathLike[str]) -> WhisperForConditionalGeneration:
    """Build a float32 ``WhisperForConditionalGeneration`` from a CTranslate2 Whisper model.

    ``path`` is the ``model.bin`` (spec ``WhisperSpec``) or its folder. Sizes come from
    the variable shapes; head counts from the ``*/num_heads`` attributes (else config.json
    keys ``encoder_attention_heads`` / ``decoder_attention_heads``, else d_model/64 as in
    every Whisper); special token ids from the tokenizer.json next to it, if any.
    The model is created at random init from a ``WhisperConfig`` and every parameter is
    then overwritten from the file through :func:`ctranslate2_whisper_mapping` (fp16 ->
    float32). Raises CheckpointError listing CT2 variables with no parameter, parameters
    no variable fills, shape mismatches, or a non-zero bias block where Whisper has none.
    """
    import torch
    from transformers import WhisperForConditionalGeneration

    ck = open_checkpoint(path)
    if ck.format != "ctranslate2":
        raise CheckpointError(f"{path}: not a CTranslate2 model (found {ck.format})")
    file, infos, spec = ck.path, ck.tensors, ck.header["spec"]
    if spec != "WhisperSpec":
        raise CheckpointError(f"{file}: CTranslate2 model of spec {spec!r}, expected 'WhisperSpec'")
    # Hugging Face Whisper is pre-LN, exact GELU (CTranslate2 ActivationType 3), unscaled
    # embeddings, no ALiBi; refuse files whose attributes say otherwise.
    for flag, expected in _CT2_WHISPER_FLAGS:
        if flag in infos and int(ck.read([flag])[flag].reshape(-1)[0]) != expected:
            raise CheckpointError(f"{file}: {flag} is not {expected}; not the Whisper architecture")
    model = WhisperForConditionalGeneration(_whisper_config_from_ct2(ck, _added_token_ids(file.parent)))
    # remove_duplicate=False lists tied parameters (proj_out / embed_tokens) under both names
    params = dict(model.named_parameters(remove_duplicate=False))
    scalars = {n for n, i in infos.items() if not i.shape or n.endswith("/num_heads")}
    mapping = ctranslate2_whisper_mapping(n for n in infos if n not in scalars)
    unmapped = sorted(n for n in infos if n not in mapping and n not in scalars)
    if unmapped:
        raise CheckpointError(f"{file}: CTranslate2 variables with no Whisper parameter: {unmapped}")
    # float64 -> float32 is exact for the F16/BF16/F32 values a float model stores
    values = {k: v.astype(np.float32) for k, v in ck.read(list(mapping)).items()}
    filled: set[str] = set()
    with torch.no_grad():
        for ct2_name, targets in mapping.items():
            if values[ct2_name].shape[0] % len(targets):
                raise CheckpointError(
                    f"{file}: {ct2_name} has {values[ct2_name].shape[0]} rows, "
                    f"not divisible into {len(targets)} fused blocks"
                )
            blocks = np.split(values[ct2_name], len(targets), axis=0)
            for target, block in zip(targets, blocks, strict=True):
                if target == "":
                    if np.any(block != 0):
                        raise CheckpointError(f"{file}: {ct2_name} has a non-zero k-projection bias block")
                    continue
                if target not in params:
                    raise CheckpointError(f"{file}: {ct2_name} maps to {target}, which the model does not have")
                param = params[target]
                if tuple(param.shape) != block.shape:
                    raise CheckpointError(
                        f"{file}: {ct2_name} block has shape {block.shape}, {target} needs {tuple(param.shape)}"
                    )
                param.copy_(torch.from_numpy(np.ascontiguousarray(block)).to(param.dtype))
                filled.add(target)
    # A tied parameter is one tensor under two names: filling either fills both.
    filled |= {n for n, p in params.items() if any(p is params[f] for f in filled)}
    not_loaded = sorted(set(params) - filled)
    if not_loaded:
        raise CheckpointError(f"{file}: Whisper parameters not found in the file: {not_loaded}")
    cast(Any, model).eval()  # transformers' eval() is untyped
    return model
