"""CTranslate2 ``model.bin`` (binary versions 4 to 6, e.g. faster-whisper), parsed here.

Layout (little-endian): uint32 version, string spec name, uint32 spec revision, uint32
variable count, then per variable: string name, uint8 rank, rank × uint32 dims, uint8 dtype
code, uint32 byte size, the data; then uint32 alias count and (alias, target) string pairs.
Strings are uint16 length (NUL included) + bytes + NUL. Quantised weights (int8/int16 with a
``<name>_scale`` variable) are refused: deadir reads float models only.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import CheckpointError, UnsupportedDtypeError
from deadir.io.checkpoint import Checkpoint, Decoder, TensorInfo
from deadir.io.config import read_config_beside
from deadir.io.files import ByteCursor, open_regular
from deadir.io.limits import Limits
from deadir.io.registry import CheckpointFormat, register_format

__all__ = ["CT2_DTYPES", "CT2_MODEL", "FORMAT", "MAX_VERSION", "MIN_VERSION", "parse_header"]

CT2_MODEL = "model.bin"

CT2_DTYPES: tuple[tuple[str, str], ...] = (
    ("F32", "<f4"), ("I8", "<i1"), ("I16", "<i2"), ("I32", "<i4"), ("F16", "<f2"), ("BF16", "<u2"),
)  # fmt: skip
"""CTranslate2 DataType enum order (types.h): the file stores the index into this table."""
MIN_VERSION, MAX_VERSION = 4, 6


def _string(cur: ByteCursor) -> str:
    (n,) = struct.unpack("<H", cur.take(2))
    data = cur.take(n)
    if n == 0 or data[-1:] != b"\0":
        raise CheckpointError(f"{cur.file}: truncated or corrupt CTranslate2 string at byte {cur.pos}")
    try:
        return data[:-1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{cur.file}: corrupt CTranslate2 string at byte {cur.pos}: {exc}") from exc


def parse_header(file: Path, limits: Limits) -> tuple[str, int, int, dict[str, TensorInfo]]:
    """(spec name, spec revision, binary version, variables and aliases) of a CTranslate2 model.bin.

    Raises:
        CheckpointError: unsupported version, truncation, unknown dtype code, a variable whose size
            disagrees with its shape, data past the end, an alias to an unknown variable.
        CheckpointLimitError: more variables than ``limits.max_tensors``.
    """
    infos: dict[str, TensorInfo] = {}
    with open_regular(file) as fd:
        size = os.fstat(fd).st_size
        # names and shapes sit between the variables' data: small windows, no over-read of the data
        cur = ByteCursor(fd, file, size, "CTranslate2 header", chunk=512)
        version = cur.unpack("<I")
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise CheckpointError(
                f"{file}: CTranslate2 binary version {version} is not supported "
                f"(need {MIN_VERSION}..{MAX_VERSION}); re-convert the model"
            )
        spec = _string(cur)  # e.g. "WhisperSpec"
        revision = cur.unpack("<I")
        count = cur.unpack("<I")
        limits.check(file, "CTranslate2 variable count", count, limits.max_tensors)
        for _ in range(count):
            name = _string(cur)
            rank = cur.unpack("<B")
            shape = struct.unpack(f"<{rank}I", cur.take(4 * rank)) if rank else ()
            code, nbytes = cur.unpack("<B"), cur.unpack("<I")
            if code >= len(CT2_DTYPES):
                raise CheckpointError(f"{file}: variable {name!r} has unknown dtype code {code}")
            dtype, np_dtype = CT2_DTYPES[code]
            need = math.prod(shape) * np.dtype(np_dtype).itemsize
            if nbytes != need:
                raise CheckpointError(
                    f"{file}: header lies about variable {name!r}: shape {shape} {dtype} needs "
                    f"{need} bytes, header says {nbytes}"
                )
            if cur.pos + nbytes > size:
                raise CheckpointError(
                    f"{file}: truncated: variable {name!r} ends at byte {cur.pos + nbytes}, file has {size}"
                )
            infos[name] = TensorInfo(name, tuple(shape), dtype, file, nbytes, cur.pos)
            cur.skip(nbytes)
        n_alias = cur.unpack("<I")
        limits.check(file, "CTranslate2 alias count", n_alias, limits.max_tensors)
        for _ in range(n_alias):
            alias, target = _string(cur), _string(cur)
            if target not in infos:
                raise CheckpointError(f"{file}: alias {alias!r} points at unknown variable {target!r}")
            t = infos[target]
            infos[alias] = TensorInfo(alias, t.shape, t.dtype, t.file, t.nbytes, t.offset, alias_of=target)
    return spec, revision, version, infos


def make_decoder(infos: Mapping[str, TensorInfo]) -> Decoder:
    """The decoder of one model: it needs the whole index to tell a quantised weight (a ``_scale`` sibling)."""

    def decode(info: TensorInfo, raw: bytes) -> FloatArray:
        base = info.alias_of or info.name
        if info.dtype in ("I8", "I16") and f"{base}_scale" in infos:
            raise UnsupportedDtypeError(
                f"{info.file}: variable {info.name!r} is quantised ({info.dtype} with {base}_scale); "
                "deadir reads float CTranslate2 models only"
            )
        arr = np.frombuffer(raw, dtype=dict(CT2_DTYPES)[info.dtype])
        if info.dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(np.float64)

    return decode


def open_ct2(file: Path, folder: Path, limits: Limits) -> Checkpoint:
    """A CTranslate2 model.bin with CTranslate2's own config.json beside it (if any)."""
    spec, revision, version, infos = parse_header(file, limits)
    config, config_file = read_config_beside(file.parent, limits)
    return Checkpoint("ctranslate2", file, folder, config, config_file, infos,
                      "whisper" if spec == "WhisperSpec" else None, make_decoder(infos),
                      {"spec": spec, "revision": revision, "version": version}, limits)  # fmt: skip


def _sniff(file: Path, head: bytes) -> bool:
    # versions 1-3 are claimed too, so that open_ct2 can say which version to re-convert from
    return len(head) >= 6 and 1 <= int.from_bytes(head[:4], "little") <= MAX_VERSION


FORMAT = register_format(CheckpointFormat(
    name="ctranslate2",
    sniff=_sniff,
    open=open_ct2,
    folder_globs=(CT2_MODEL,),
))  # fmt: skip
