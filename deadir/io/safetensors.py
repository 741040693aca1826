"""safetensors: a single file (8-byte header length, JSON header, data) and the sharded index.

The header is parsed here (the ``safetensors`` package is not needed to read): every entry's
dtype, shape and offsets are validated against each other and the file size before any data is
read. A sharded checkpoint is ``model.safetensors.index.json`` (``weight_map``: tensor ->
shard file), whose shards must lie inside the index's folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import CheckpointError, CheckpointLimitError, UnsupportedDtypeError
from deadir.io.checkpoint import Checkpoint, TensorInfo
from deadir.io.config import read_config_beside
from deadir.io.files import inside_folder, open_regular, pread_exact, read_small_file
from deadir.io.limits import Limits, load_json
from deadir.io.registry import CheckpointFormat, register_format

__all__ = ["FORMAT", "SAFETENSORS_INDEX", "SAFETENSORS_SINGLE", "SHARDED_FORMAT", "read_header"]

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"

ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
"""Every dtype the safetensors format defines, with its item size (listing accepts them all)."""

_NUMPY = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "<i1",
    "U8": "<u1", "BOOL": "<u1", "U16": "<u2", "U32": "<u4", "U64": "<u8",
}  # fmt: skip


def decode(info: TensorInfo, raw: bytes) -> FloatArray:
    """Widen one tensor's stored bytes to float64 exactly (BF16 via its float32 top half).

    Raises:
        UnsupportedDtypeError: float8 (no exact float64 path in numpy) or an unknown dtype, naming the tensor.
    """
    if info.dtype == "BF16":
        # bf16 is the top half of a float32, so widening is exact
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    np_dtype = _NUMPY.get(info.dtype)
    if np_dtype is None:
        raise UnsupportedDtypeError(
            f"{info.file}: tensor {info.name!r} is stored as {info.dtype}, which deadir does not read "
            "(supported: F64, F32, F16, BF16 and integer types)"
        )
    return np.frombuffer(raw, dtype=np_dtype).astype(np.float64)


def read_header(file: Path, limits: Limits) -> tuple[dict[str, TensorInfo], dict[str, Any]]:
    """(tensor infos, ``__metadata__``) of one safetensors file, validated, without reading data.

    Raises:
        CheckpointError: truncated file, header not JSON / not an object, an entry whose shape,
            dtype and offsets disagree, or data past the end of the file.
        CheckpointLimitError: header longer than ``limits.max_header_bytes``, deeper than the JSON
            depth limit, or more tensors than ``limits.max_tensors``.
    """
    with open_regular(file) as fd:
        size = os.fstat(fd).st_size
        raw_len = os.pread(fd, 8, 0)
        if len(raw_len) < 8:
            raise CheckpointError(f"{file}: truncated safetensors file ({size} bytes, no header length)")
        hlen = int.from_bytes(raw_len, "little")
        if 8 + hlen > size:
            raise CheckpointError(f"{file}: safetensors header length {hlen} exceeds the file size {size}")
        limits.check(file, "safetensors header length (bytes)", hlen, limits.max_header_bytes)
        raw = pread_exact(fd, hlen, 8, file, "safetensors header")
    try:
        header = load_json(raw, file, "safetensors header", limits)
    except CheckpointLimitError:
        raise
    except CheckpointError as exc:
        raise CheckpointError(f"{file}: corrupt safetensors header (not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header (not a JSON object)")
    limits.check(file, "safetensors tensor count", len(header), limits.max_tensors)
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header (__metadata__ is not an object)")
    data_start = 8 + hlen
    infos: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{file}: corrupt safetensors header entry for {name!r}: {exc}") from exc
        itemsize = ITEMSIZE.get(dtype)
        if itemsize is None:
            raise UnsupportedDtypeError(f"{file}: tensor {name!r} has unsupported dtype {dtype}")
        if any(s < 0 for s in shape) or len(shape) > 16:
            raise CheckpointError(f"{file}: corrupt safetensors header entry for {name!r}: shape {shape}")
        if end - begin != math.prod(shape) * itemsize or begin < 0:
            raise CheckpointError(
                f"{file}: header lies about tensor {name!r}: shape {shape} {dtype} needs "
                f"{math.prod(shape) * itemsize} bytes, offsets give {end - begin}"
            )
        if data_start + end > size:
            raise CheckpointError(
                f"{file}: truncated: tensor {name!r} ends at byte {data_start + end}, file has {size}"
            )
        infos[name] = TensorInfo(name, shape, dtype, file, end - begin, data_start + begin)
    return infos, metadata


def _arch(config: dict[str, Any]) -> str | None:
    model_type = config.get("model_type")
    return model_type if isinstance(model_type, str) and model_type else None


def open_single(file: Path, folder: Path, limits: Limits) -> Checkpoint:
    """A single safetensors file with the config.json beside it (if any)."""
    infos, metadata = read_header(file, limits)
    config, config_file = read_config_beside(file.parent, limits)
    return Checkpoint("safetensors", file, folder, config, config_file, infos, _arch(config), decode,
                      {"metadata": metadata}, limits)  # fmt: skip


def read_index(index: Path, folder: Path, limits: Limits) -> dict[str, Path]:
    """Tensor name -> shard file of a ``*.index.json``; every shard inside ``folder`` and present.

    Raises:
        CheckpointError: not JSON / no ``weight_map`` object / missing shard files.
        UnsafeCheckpointError: a shard named by an absolute path, ``..`` or a symlink out of the folder.
    """
    raw = read_small_file(index, limits.max_json_bytes, "safetensors index")
    try:
        data = load_json(raw, index, "safetensors index", limits)
    except CheckpointLimitError:
        raise
    except CheckpointError as exc:
        raise CheckpointError(f"{index}: corrupt safetensors index ({exc})") from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index}: corrupt safetensors index (no weight_map object)")
    limits.check(index, "safetensors index tensor count", len(weight_map), limits.max_tensors)
    shards: dict[str, Path] = {}
    resolved: dict[str, Path] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise CheckpointError(f"{index}: corrupt safetensors index (shard of {name!r} is {shard!r})")
        if shard not in resolved:
            resolved[shard] = inside_folder(Path(shard), folder, "shard")
        shards[name] = resolved[shard]
    missing = sorted({s.name for s in resolved.values() if not os.path.lexists(s)})
    if missing:
        raise CheckpointError(f"{index}: index points at missing shard(s) {', '.join(missing)}")
    return shards


def open_sharded(index: Path, folder: Path, limits: Limits) -> Checkpoint:
    """A sharded checkpoint from its index json: every shard's header read and cross-checked."""
    shards = read_index(index, index.parent, limits)
    headers = {shard: read_header(shard, limits)[0] for shard in sorted(set(shards.values()))}
    infos: dict[str, TensorInfo] = {}
    for name, shard in shards.items():
        info = headers[shard].get(name)
        if info is None:
            raise CheckpointError(f"{index}: index maps {name!r} to {shard.name}, which does not contain it")
        infos[name] = info
    config, config_file = read_config_beside(index.parent, limits)
    return Checkpoint("safetensors-sharded", index, index.parent, config, config_file, infos, _arch(config),
                      decode, {}, limits)  # fmt: skip


# the index is registered first: in a folder holding both, the index names the whole checkpoint
SHARDED_FORMAT = register_format(CheckpointFormat(
    name="safetensors-sharded",
    sniff=lambda file, head: file.name.endswith(".index.json"),
    open=open_sharded,
    folder_files=(SAFETENSORS_INDEX,),
))  # fmt: skip

FORMAT = register_format(CheckpointFormat(
    name="safetensors",
    sniff=lambda file, head: len(head) >= 9 and head[8:9] == b"{",
    open=open_single,
    folder_files=(SAFETENSORS_SINGLE,),
    folder_globs=("*.safetensors",),
))  # fmt: skip
