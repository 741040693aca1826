"""GGUF (v2/v3, little-endian): metadata, tensor index and data offsets, parsed here.

The header is walked with positioned reads (:class:`~deadir.io.files.ByteCursor`), skipping
the tokenizer arrays instead of decoding them (``gguf.GGUFReader`` decodes every token string:
2-10 s per file on real checkpoints, against 20-100 ms here; the tests check both agree).
Quantised tensors are dequantised with ``gguf.quants``. Arrays of arrays are walked with an
explicit stack (no recursion), at most ``limits.max_array_nesting`` deep.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import re
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import CheckpointError, ConfigMismatchError, UnsupportedDtypeError
from deadir.io.checkpoint import Checkpoint, TensorInfo
from deadir.io.files import ByteCursor, open_regular
from deadir.io.limits import Limits
from deadir.io.registry import CheckpointFormat, register_format

__all__ = [
    "FORMAT",
    "GGUF_MAGIC",
    "HIDDEN_WIDTH_NORMS",
    "MAX_DECODED_ARRAY",
    "check_hidden_norm_lengths",
    "decode",
    "parse_header",
]

GGUF_MAGIC = b"GGUF"

# GGUF metadata value types (gguf.GGUFValueType) -> struct code; 8 = string, 9 = array.
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32
_MAX_DIMS = 8

MAX_DECODED_ARRAY = 4096
"""Arrays longer than this (tokenizer vocabularies, merges) are skipped and kept as
``{"array_length": n}``: decoding 150k-260k strings is what makes gguf.GGUFReader slow."""


class _Walker:
    """GGUF metadata values over a :class:`ByteCursor`, with the string and nesting limits."""

    def __init__(self, cur: ByteCursor, limits: Limits) -> None:
        self.cur, self.limits, self.file = cur, limits, cur.file

    def string(self, what: str) -> str:
        n = self.cur.unpack("<Q")
        self.limits.check(self.file, f"GGUF {what} string length (bytes)", n, self.limits.max_string_bytes)
        try:
            return self.cur.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"{self.file}: corrupt GGUF string at byte {self.cur.pos}: {exc}") from exc

    def skip_strings(self, count: int, key: str) -> None:
        self.cur.skip_prefixed(count, self.limits.max_string_bytes, f"GGUF key {key!r}")

    def _array_header(self, key: str, depth: int) -> tuple[list[Any] | None, Any]:
        """([etype, remaining, items] frame, None) for an array to decode, or (None, summary) when skipped."""
        self.limits.check(self.file, f"GGUF key {key!r} array nesting depth", depth, self.limits.max_array_nesting)
        etype, count = self.cur.unpack("<I"), self.cur.unpack("<Q")
        if count > MAX_DECODED_ARRAY:
            if etype == _STRING:
                self.skip_strings(count, key)
            elif etype in _SCALAR:
                self.cur.skip(count * struct.calcsize("<" + _SCALAR[etype]))
            else:
                raise CheckpointError(f"{self.file}: GGUF key {key!r}: nested array too long to skip")
            return None, {"array_length": count}
        if etype in _SCALAR:  # one read for the whole array
            code = _SCALAR[etype]
            return None, list(struct.unpack(f"<{count}{code}", self.cur.take(count * struct.calcsize("<" + code))))
        if etype not in (_STRING, _ARRAY):
            raise CheckpointError(f"{self.file}: GGUF key {key!r} has unknown array element type {etype}")
        return [etype, count, []], None

    def value(self, vtype: int, key: str) -> Any:
        if vtype in _SCALAR:
            return self.cur.unpack("<" + _SCALAR[vtype])
        if vtype == _STRING:
            return self.string(f"key {key!r}")
        if vtype != _ARRAY:
            raise CheckpointError(f"{self.file}: GGUF key {key!r} has unknown value type {vtype}")
        frame, done = self._array_header(key, 1)
        if frame is None:
            return done
        stack = [frame]  # explicit stack: a 100,000-deep nesting cannot overflow Python's
        while True:
            top = stack[-1]
            etype, remaining, items = top
            if remaining == 0:
                stack.pop()
                if not stack:
                    return items
                stack[-1][2].append(items)
                continue
            top[1] = remaining - 1
            if etype == _STRING:
                items.append(self.string(f"key {key!r}"))
                continue
            child, done = self._array_header(key, len(stack) + 1)
            if child is None:
                items.append(done)
            else:
                stack.append(child)


@functools.lru_cache(maxsize=16)
def _parse_cached(file: Path, size: int, mtime_ns: int, inode: int, limits: Limits) -> tuple[
        dict[str, Any], dict[str, TensorInfo], int]:  # fmt: skip
    return _parse(file, limits)


def parse_header(file: Path, limits: Limits) -> tuple[dict[str, Any], dict[str, TensorInfo], int]:
    """(metadata, tensor infos, version) of a GGUF file, cached per (path, size, mtime, inode, limits).

    A scan lists tensors, reads the metadata and then the norms of the same file; walking a
    260k-entry tokenizer array costs ~50-100 ms, so it is walked once. A rewritten file has a
    new mtime or size and is parsed again. Callers get the cached objects: do not mutate them.

    Raises:
        CheckpointError: bad magic or version, truncation, corrupt strings, unknown types,
            bad alignment, duplicate names, tensor data outside the file.
        CheckpointLimitError: more metadata entries, tensors, string bytes or array nesting than allowed.
    """
    try:
        st = os.stat(file)
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    return _parse_cached(file.resolve(), st.st_size, st.st_mtime_ns, st.st_ino, limits)


def _parse(file: Path, limits: Limits) -> tuple[dict[str, Any], dict[str, TensorInfo], int]:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    with open_regular(file) as fd:
        size = os.fstat(fd).st_size
        if size < 24:
            raise CheckpointError(f"{file}: truncated GGUF file ({size} bytes)")
        cur = ByteCursor(fd, file, size, "GGUF header", chunk=1 << 20)
        walker = _Walker(cur, limits)
        if cur.take(4) != GGUF_MAGIC:
            raise CheckpointError(f"{file}: not a GGUF file (bad magic)")
        version = cur.unpack("<I")
        if version not in (2, 3):
            raise CheckpointError(f"{file}: GGUF version {version} not supported (need 2 or 3, little-endian)")
        n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
        limits.check(file, "GGUF metadata entry count", n_kv, limits.max_metadata_entries)
        limits.check(file, "GGUF tensor count", n_tensors, limits.max_tensors)
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = walker.string("metadata key")
            metadata[key] = walker.value(cur.unpack("<I"), key)
        raw: list[tuple[str, tuple[int, ...], int, int]] = []
        for _ in range(n_tensors):
            name = walker.string("tensor name")
            n_dims = cur.unpack("<I")
            if n_dims > _MAX_DIMS:
                raise CheckpointError(f"{file}: corrupt GGUF tensor info for {name!r} ({n_dims} dimensions)")
            dims = struct.unpack(f"<{n_dims}Q", cur.take(8 * n_dims))
            raw.append((name, tuple(reversed(dims)), cur.unpack("<I"), cur.unpack("<Q")))
        alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or \
                alignment & (alignment - 1):  # fmt: skip
            raise CheckpointError(f"{file}: invalid general.alignment {alignment!r}")
        data_start = -(-cur.pos // alignment) * alignment
    tensors: dict[str, TensorInfo] = {}
    for name, shape, type_id, rel in raw:
        try:
            qtype = GGMLQuantizationType(type_id)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError) as exc:
            raise UnsupportedDtypeError(f"{file}: tensor {name!r} has unknown GGML type {type_id}") from exc
        if shape and shape[-1] % block:
            raise CheckpointError(f"{file}: tensor {name!r}: row of {shape[-1]} is not a multiple of {block}")
        nbytes = math.prod(shape) * type_size // block
        offset = data_start + rel
        if offset + nbytes > size:
            raise CheckpointError(f"{file}: truncated: tensor {name!r} ends at byte {offset + nbytes}, file has {size}")
        if name in tensors:
            raise CheckpointError(f"{file}: duplicate tensor name {name!r}")
        tensors[name] = TensorInfo(name, shape, qtype.name, file, nbytes, offset)
    return metadata, tensors, version


_DIRECT = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I8": "<i1", "I16": "<i2", "I32": "<i4", "I64": "<i8"}


def decode(info: TensorInfo, raw: bytes) -> FloatArray:
    """Widen (F32/F16/F64/BF16/integers) or dequantise (``gguf.quants``) one tensor's bytes to float64.

    Raises:
        UnsupportedDtypeError: a quantisation ``gguf`` cannot dequantise (named with the tensor).
    """
    from gguf import GGMLQuantizationType, quants

    data = np.frombuffer(raw, dtype=np.uint8)
    if info.dtype in _DIRECT:
        return data.view(_DIRECT[info.dtype]).astype(np.float64)
    if info.dtype == "BF16":
        # bf16 is the top half of a float32, so widening is exact
        return (data.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    qtype = GGMLQuantizationType[info.dtype]
    byte_shape = (*info.shape[:-1], info.nbytes // max(1, math.prod(info.shape[:-1])))
    try:
        values = quants.dequantize(data.reshape(byte_shape), qtype)
    except NotImplementedError as exc:
        raise UnsupportedDtypeError(
            f"{info.file}: tensor {info.name!r} is stored as {qtype.name}, which gguf cannot dequantise"
        ) from exc
    return np.asarray(values, dtype=np.float64)


# Norms that act on the residual stream, so their length is the model width (per-head q/k norms
# and SSM norms are not listed: their length is a head or state size).
HIDDEN_WIDTH_NORMS = re.compile(
    r"(output_norm|blk\.\d+\.(attn_norm|ffn_norm|post_attention_norm|post_ffw_norm|layer_output_norm))\.(weight|bias)"
)


def check_hidden_norm_lengths(checkpoint: Checkpoint, names: Iterable[str]) -> None:
    """Refuse residual-stream norm tensors whose length is not ``<arch>.embedding_length``.

    Raises:
        ConfigMismatchError: such a tensor's length differs (named with both numbers and the key).
    """
    key = f"{checkpoint.arch}.embedding_length"
    width = checkpoint.config.get(key)
    if not isinstance(width, int) or isinstance(width, bool):
        return
    for name in names:
        info = checkpoint.tensors.get(name)
        if info is not None and HIDDEN_WIDTH_NORMS.fullmatch(name) and info.shape != (width,):
            raise ConfigMismatchError(
                f"{checkpoint.path}: norm tensor {name!r} has shape {info.shape}, but {key} = {width}: "
                "the file contradicts its own metadata"
            )


def open_gguf(file: Path, folder: Path, limits: Limits) -> Checkpoint:
    """A GGUF file: its metadata is the config, ``general.architecture`` the arch."""
    metadata, tensors, version = parse_header(file, limits)
    arch = metadata.get("general.architecture")
    named = arch if isinstance(arch, str) and arch else None
    # a deep copy: the parsed header is cached and shared
    return Checkpoint("gguf", file, folder, copy.deepcopy(metadata), None, dict(tensors), named, decode,
                      {"version": version}, limits)  # fmt: skip


FORMAT = register_format(CheckpointFormat(
    name="gguf",
    sniff=lambda file, head: head[:4] == GGUF_MAGIC,
    open=open_gguf,
    folder_globs=("*.gguf",),
))  # fmt: skip
