"""Tiny checkpoint writers: safetensors (single, folder, sharded), GGUF and CTranslate2 v6.

The one set of writers that tests, the integration suite and the benchmarks use to put a
checkpoint on disk. Each is written from the format's public specification, independently of
the readers in :mod:`deadir.io` (a reader bug is not mirrored by its writer): safetensors and
CTranslate2 byte layouts are produced here directly, GGUF through the ``gguf`` package's own
writer. :func:`whisper_to_ct2` is a hand-written inverse of CTranslate2's Whisper converter that
does not share :mod:`deadir.whisper_ct2`'s mapping table.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CT2_WHISPER_ALIASES",
    "ct2_string",
    "tiny_whisper",
    "whisper_to_ct2",
    "write_ct2",
    "write_gguf",
    "write_safetensors",
    "write_safetensors_folder",
    "write_safetensors_sharded",
    "write_safetensors_stream",
]

# numpy dtype -> safetensors dtype name
_ST_DTYPE = {
    "float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "int16": "I16",
    "int8": "I8", "uint8": "U8", "bool": "BOOL", "uint16": "U16", "uint32": "U32", "uint64": "U64",
}  # fmt: skip

# numpy dtype -> CTranslate2 DataType code (types.h: FLOAT32, INT8, INT16, INT32, FLOAT16, BFLOAT16)
_CT2_CODE = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}


def _as_stored(value: Any) -> tuple[str, bytes, tuple[int, ...]]:
    """(safetensors dtype, little-endian bytes, shape) of a numpy array or torch tensor (bfloat16 kept)."""
    if type(value).__module__.startswith("torch"):
        import torch

        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return "BF16", t.view(torch.int16).numpy().astype("<i2").tobytes(), tuple(t.shape)
        value = t.numpy()
    arr = np.asarray(value)
    name = _ST_DTYPE.get(arr.dtype.name)
    if name is None:
        raise TypeError(f"cannot store dtype {arr.dtype} in safetensors")
    return name, np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes(), tuple(arr.shape)


def write_safetensors_stream(
    path: Path,
    entries: Sequence[tuple[str, str, tuple[int, ...]]],
    chunks: Iterable[bytes],
    *,
    metadata: Mapping[str, str] | None = None,
    align: int = 8,
) -> int:
    """Write a safetensors file tensor by tensor (constant memory); returns its size in bytes.

    ``entries``: (name, safetensors dtype, shape) in file order; ``chunks``: each tensor's bytes in
    the same order. The header is padded with spaces to a multiple of ``align`` (the format's rule
    is 8). Written to a temporary name and renamed, so no half file is ever visible.
    """
    itemsize = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}  # fmt: skip
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in entries:
        n = itemsize[dtype] * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % align)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        written = 0
        for chunk in chunks:
            fh.write(chunk)
            written += len(chunk)
    if written != offset:
        tmp.unlink()
        raise ValueError(f"{path}: chunks hold {written} bytes, entries need {offset}")
    os.replace(tmp, path)
    return path.stat().st_size


def write_safetensors(path: Path, tensors: Mapping[str, Any], *, metadata: Mapping[str, str] | None = None) -> Path:
    """Write numpy arrays / torch tensors (any safetensors dtype, bfloat16 included) as one file; returns ``path``."""
    stored = [(name, *_as_stored(v)) for name, v in tensors.items()]
    write_safetensors_stream(path, [(n, dt, shape) for n, dt, _, shape in stored], (raw for _, _, raw, _ in stored),
                             metadata=metadata)  # fmt: skip
    return path


def write_safetensors_folder(folder: Path, config: Mapping[str, Any] | None, tensors: Mapping[str, Any]) -> Path:
    """A Hugging Face style folder: ``config.json`` (unless None) and ``model.safetensors``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(dict(config)))
    write_safetensors(folder / "model.safetensors", tensors)
    return folder


def write_safetensors_sharded(
    folder: Path, config: Mapping[str, Any] | None, shards: Sequence[Mapping[str, Any]]
) -> Path:
    """A sharded folder: ``model-0000i-of-0000n.safetensors`` per shard and ``model.safetensors.index.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(dict(config)))
    weight_map: dict[str, str] = {}
    for i, tensors in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(folder / name, tensors)
        weight_map.update(dict.fromkeys(tensors, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def write_gguf(
    path: Path,
    arch: str,
    tensors: Mapping[str, np.ndarray],
    *,
    d: int | None = None,
    blocks: int | None = 2,
    eps: float | None = None,
    rms: bool = True,
    dtype: Any = np.float32,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """A GGUF v3 file through ``gguf.GGUFWriter``: architecture, block count, embedding length, ε, tensors.

    ``rms`` picks the ε key (``layer_norm_rms_epsilon`` or ``layer_norm_epsilon``); ``dtype`` the
    stored float type (float32 or float16); ``extra`` more metadata (key -> int / float / str / list).
    """
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    if blocks is not None:
        w.add_block_count(blocks)
    if d is not None:
        w.add_embedding_length(d)
    if eps is not None:
        (w.add_layer_norm_rms_eps if rms else w.add_layer_norm_eps)(eps)
    for key, value in (extra or {}).items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_array(key, list(value))
    for name, value in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(value, dtype=dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def ct2_string(s: str) -> bytes:
    """A CTranslate2 header string: uint16 length (NUL included), UTF-8 bytes, NUL."""
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(
    path: Path,
    variables: Mapping[str, np.ndarray],
    *,
    spec: str = "WhisperSpec",
    aliases: Mapping[str, str] | None = None,
    version: int = 6,
    revision: int = 3,
) -> Path:
    """A CTranslate2 ``model.bin`` in the documented v6 layout; each variable's dtype code from its numpy dtype.

    float32, float16, int8, int16 and int32 arrays are stored as they are (0-d arrays as scalars).
    """
    out = [struct.pack("<I", version), ct2_string(spec), struct.pack("<I", revision),
           struct.pack("<I", len(variables))]  # fmt: skip
    for name, value in variables.items():
        arr = np.array(value, order="C")  # (ascontiguousarray would turn a scalar into shape (1,))
        out += [ct2_string(name), struct.pack("<B", arr.ndim), struct.pack(f"<{arr.ndim}I", *arr.shape)]
        out += [struct.pack("<B", _CT2_CODE[arr.dtype.name]), struct.pack("<I", arr.nbytes), arr.tobytes()]
    out.append(struct.pack("<I", len(aliases or {})))
    for alias, target in (aliases or {}).items():
        out += [ct2_string(alias), ct2_string(target)]
    path.write_bytes(b"".join(out))
    return path


CT2_WHISPER_ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}
"""The alias CTranslate2's Whisper converter writes for the tied output projection."""


def whisper_to_ct2(model: Any, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """CTranslate2 WhisperSpec variables of a ``WhisperForConditionalGeneration`` (every layer), hand-written.

    Fused projections: self-attention ``linear_0`` = [q; k; v], cross-attention ``linear_1`` =
    [k; v], with a zero block for Whisper's bias-free k projections. Write with
    ``write_ct2(path, whisper_to_ct2(model), aliases=CT2_WHISPER_ALIASES)``.
    """
    config = model.config
    sd = {k: v.detach().float().numpy().astype(dtype) for k, v in model.state_dict().items()}
    zeros = np.zeros(config.d_model, dtype=dtype)

    def lin(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return sd[f"{prefix}.weight"], sd[f"{prefix}.bias"]

    v: dict[str, np.ndarray] = {}
    e, d = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        v[f"encoder/{conv}/weight"], v[f"encoder/{conv}/bias"] = lin(f"{e}.{conv}")
    v["encoder/position_encodings/encodings"] = sd[f"{e}.embed_positions.weight"]
    v["decoder/embeddings/weight"] = sd[f"{d}.embed_tokens.weight"]
    v["decoder/position_encodings/encodings"] = sd[f"{d}.embed_positions.weight"]
    for side, pre, n_layers, heads in (
        ("encoder", e, config.encoder_layers, config.encoder_attention_heads),
        ("decoder", d, config.decoder_layers, config.decoder_attention_heads),
    ):
        for i in range(n_layers):
            layer, L = f"{side}/layer_{i}", f"{pre}.layers.{i}"
            a = f"{L}.self_attn"
            v[f"{layer}/self_attention/layer_norm/gamma"], v[f"{layer}/self_attention/layer_norm/beta"] = lin(
                f"{L}.self_attn_layer_norm"
            )
            v[f"{layer}/self_attention/linear_0/weight"] = np.concatenate(
                [sd[f"{a}.q_proj.weight"], sd[f"{a}.k_proj.weight"], sd[f"{a}.v_proj.weight"]]
            )
            v[f"{layer}/self_attention/linear_0/bias"] = np.concatenate(
                [sd[f"{a}.q_proj.bias"], zeros, sd[f"{a}.v_proj.bias"]]
            )
            v[f"{layer}/self_attention/linear_1/weight"], v[f"{layer}/self_attention/linear_1/bias"] = lin(
                f"{a}.out_proj"
            )
            v[f"{layer}/ffn/layer_norm/gamma"], v[f"{layer}/ffn/layer_norm/beta"] = lin(f"{L}.final_layer_norm")
            v[f"{layer}/ffn/linear_0/weight"], v[f"{layer}/ffn/linear_0/bias"] = lin(f"{L}.fc1")
            v[f"{layer}/ffn/linear_1/weight"], v[f"{layer}/ffn/linear_1/bias"] = lin(f"{L}.fc2")
            if side == "decoder":
                x = f"{L}.encoder_attn"
                v[f"{layer}/attention/layer_norm/gamma"], v[f"{layer}/attention/layer_norm/beta"] = lin(
                    f"{L}.encoder_attn_layer_norm"
                )
                v[f"{layer}/attention/linear_0/weight"], v[f"{layer}/attention/linear_0/bias"] = lin(f"{x}.q_proj")
                v[f"{layer}/attention/linear_1/weight"] = np.concatenate(
                    [sd[f"{x}.k_proj.weight"], sd[f"{x}.v_proj.weight"]]
                )
                v[f"{layer}/attention/linear_1/bias"] = np.concatenate([zeros, sd[f"{x}.v_proj.bias"]])
                v[f"{layer}/attention/linear_2/weight"], v[f"{layer}/attention/linear_2/bias"] = lin(f"{x}.out_proj")
        v[f"{side}/layer_norm/gamma"], v[f"{side}/layer_norm/beta"] = lin(f"{pre}.layer_norm")
        v[f"{side}/num_heads"] = np.array(heads, dtype=np.int16)
    v["decoder/pre_norm"] = np.array(1, dtype=np.int8)
    v["decoder/activation"] = np.array(3, dtype=np.int8)  # CTranslate2 ActivationType.GELU
    return v


def tiny_whisper(
    *,
    seed: int = 0,
    vocab_size: int = 20,
    num_mel_bins: int = 4,
    d_model: int = 16,
    max_source_positions: int = 8,
    max_target_positions: int = 8,
    perturb: float = 0.1,
) -> Any:
    """A random-init ``WhisperForConditionalGeneration`` (one layer per side, 2 heads) in eval mode.

    ``perturb`` adds N(0, perturb²) noise to every parameter, so norms are not all ones and biases
    not all zeros: a swapped mapping then shows in the weights. Special tokens are the last id.
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    last = vocab_size - 1
    config = WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=num_mel_bins, d_model=d_model, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_source_positions=max_source_positions,
        max_target_positions=max_target_positions, pad_token_id=last, bos_token_id=last, eos_token_id=last,
        decoder_start_token_id=last,
    )  # fmt: skip
    model: Any = WhisperForConditionalGeneration(config)
    model.eval()  # transformers' eval() is untyped
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * perturb)
    return model
