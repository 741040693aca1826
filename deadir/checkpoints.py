"""Read named tensors and configs from checkpoints without loading the whole file.

Formats (recognised by their first bytes, not by file name):

- safetensors: a single file, a folder with ``model.safetensors`` (and ``config.json``)
  or a sharded folder with ``model.safetensors.index.json``;
- GGUF (``.gguf``, v2/v3): the header is parsed here through a memory map, skipping the
  tokenizer arrays (``gguf.GGUFReader`` decodes every token string: 2-10 s per file on
  these checkpoints, against 20-100 ms here; the tests check both agree); quantised
  tensors are dequantised with ``gguf.quants``;
- CTranslate2 ``model.bin`` (binary version 4 to 6, e.g. faster-whisper), parsed here.

Only headers are read to list tensors; ``read_tensors`` reads the bytes of the tensors
asked for and nothing else. Nothing is ever unpickled: a pickled PyTorch file
(``pytorch_model.bin``, ``*.pt``) is refused with a CheckpointError telling the user to
convert it to safetensors.

Every problem (missing file, unknown format, truncated or inconsistent header, missing
tensor, index pointing at a missing shard) raises :class:`deadir.errors.CheckpointError`
naming the path and what is wrong.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

import numpy as np
import numpy.typing as npt

from deadir.errors import CheckpointError

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration

__all__ = [
    "CT2_WHISPER_NAME_MAP",
    "Format",
    "TensorInfo",
    "ctranslate2_whisper_mapping",
    "detect_format",
    "list_tensors",
    "load_ctranslate2_whisper",
    "read_config",
    "read_tensors",
]

Format = Literal["safetensors", "safetensors-sharded", "gguf", "ctranslate2"]

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
CT2_MODEL = "model.bin"
_GGUF_MAGIC = b"GGUF"
# safetensors headers are JSON; 100 MB is the limit the safetensors library itself enforces.
_SAFETENSORS_MAX_HEADER = 100_000_000

_SAFETENSORS_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip

# CTranslate2 DataType enum order (types.h); the file stores the index.
_CT2_DTYPES: tuple[tuple[str, str], ...] = (
    ("F32", "<f4"), ("I8", "<i1"), ("I16", "<i2"), ("I32", "<i4"), ("F16", "<f2"), ("BF16", "<u2"),
)  # fmt: skip
_CT2_MIN_VERSION, _CT2_MAX_VERSION = 4, 6


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what it is, read from a header.

    ``shape`` is in row-major (numpy / PyTorch) order, also for GGUF, whose files store
    dimensions innermost first. ``dtype`` is the format's own type name in upper case
    ("F32", "F16", "BF16", "I8", GGUF quantisations such as "Q4_K"). ``nbytes`` is the
    size of the stored data in bytes and ``offset`` its absolute byte offset in ``file``.
    ``alias_of`` names the tensor whose bytes this one shares (CTranslate2 aliases).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    file: Path
    nbytes: int
    offset: int
    alias_of: str | None = None

    @property
    def numel(self) -> int:
        """Number of elements (1 for a scalar)."""
        return math.prod(self.shape)


# ----------------------------------------------------------------------------- detection


def _sniff(file: Path) -> Format:
    """Format of a single file from its first bytes; CheckpointError if unknown or pickled."""
    try:
        with file.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot read: {exc}") from exc
    if head[:4] == _GGUF_MAGIC:
        return "gguf"
    if head[:2] == b"PK" or head[:1] == b"\x80":
        # torch.save writes a zip archive (PK..) or a bare pickle (protocol >= 2: 0x80).
        raise CheckpointError(
            f"{file}: looks like a pickled PyTorch checkpoint; deadir never unpickles files. "
            "Convert it to safetensors (e.g. torch.load(path, weights_only=True) in a trusted "
            "environment, then safetensors.torch.save_file)"
        )
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if len(head) >= 6:
        version = struct.unpack_from("<I", head)[0]
        if _CT2_MIN_VERSION <= version <= _CT2_MAX_VERSION:
            return "ctranslate2"
        if 1 <= version < _CT2_MIN_VERSION:
            raise CheckpointError(
                f"{file}: CTranslate2 binary version {version} is not supported "
                f"(need {_CT2_MIN_VERSION}..{_CT2_MAX_VERSION}); re-convert the model"
            )
    raise CheckpointError(
        f"{file}: unknown checkpoint format (not safetensors, GGUF or CTranslate2; first bytes {head[:8]!r})"
    )


def _resolve(path: str | os.PathLike[str]) -> tuple[Format, Path]:
    """(format, file) for a path; for sharded folders the file is the index json."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / SAFETENSORS_INDEX).is_file():
            return "safetensors-sharded", p / SAFETENSORS_INDEX
        if (p / SAFETENSORS_SINGLE).is_file():
            return "safetensors", p / SAFETENSORS_SINGLE
        candidates = sorted(p.glob("*.safetensors")) + sorted(p.glob("*.gguf"))
        if (p / CT2_MODEL).is_file():
            candidates.append(p / CT2_MODEL)
        if len(candidates) == 1:
            return _sniff(candidates[0]), candidates[0]
        pickles = sorted(q.name for q in p.iterdir() if q.suffix in {".bin", ".pt", ".pth", ".ckpt"})
        if pickles and not candidates:
            raise CheckpointError(
                f"{p}: only pickled weights ({', '.join(pickles)}); deadir never unpickles files. "
                "Convert them to safetensors"
            )
        what = f"several candidates ({', '.join(c.name for c in candidates)})" if candidates else "no weights"
        raise CheckpointError(
            f"{p}: {what}; expected {SAFETENSORS_SINGLE}, {SAFETENSORS_INDEX}, one .gguf "
            f"or a CTranslate2 {CT2_MODEL}"
        )
    if p.name.endswith(".index.json"):
        return "safetensors-sharded", p
    return _sniff(p), p


def detect_format(path: str | os.PathLike[str]) -> Format:
    """The checkpoint format of a file or folder.

    Raises CheckpointError if the path is missing, holds pickled weights, or is not one
    of the supported formats.
    """
    return _resolve(path)[0]


# ----------------------------------------------------------------------------- safetensors


def _safetensors_header(file: Path) -> dict[str, TensorInfo]:
    """Parse and validate a safetensors header (8-byte length + JSON) without reading data."""
    size = file.stat().st_size
    with file.open("rb") as fh:
        raw_len = fh.read(8)
        if len(raw_len) < 8:
            raise CheckpointError(f"{file}: truncated safetensors file ({size} bytes, no header length)")
        (hlen,) = struct.unpack("<Q", raw_len)
        if hlen > _SAFETENSORS_MAX_HEADER or 8 + hlen > size:
            raise CheckpointError(f"{file}: safetensors header length {hlen} exceeds the file size {size}")
        raw = fh.read(hlen)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: corrupt safetensors header (not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header (not a JSON object)")
    data_start = 8 + hlen
    infos: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{file}: corrupt safetensors header entry for {name!r}: {exc}") from exc
        itemsize = _SAFETENSORS_ITEMSIZE.get(dtype)
        if itemsize is None:
            raise CheckpointError(f"{file}: tensor {name!r} has unsupported dtype {dtype}")
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
    return infos


def _read_index(index: Path) -> dict[str, Path]:
    """Tensor name -> shard file from a ``model.safetensors.index.json``."""
    try:
        data = json.loads(index.read_text())
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index}: corrupt safetensors index ({exc})") from exc
    shards = {name: index.parent / str(shard) for name, shard in weight_map.items()}
    missing = sorted({str(s.name) for s in shards.values() if not s.is_file()})
    if missing:
        raise CheckpointError(f"{index}: index points at missing shard(s) {', '.join(missing)}")
    return shards


def _sharded_infos(index: Path) -> dict[str, TensorInfo]:
    shards = _read_index(index)
    headers = {shard: _safetensors_header(shard) for shard in sorted(set(shards.values()))}
    infos: dict[str, TensorInfo] = {}
    for name, shard in shards.items():
        info = headers[shard].get(name)
        if info is None:
            raise CheckpointError(f"{index}: index maps {name!r} to {shard.name}, which does not contain it")
        infos[name] = info
    return infos


def _read_safetensors(
    infos: Mapping[str, TensorInfo], names: list[str]
) -> dict[str, npt.NDArray[np.float64]]:
    from safetensors import safe_open

    out: dict[str, npt.NDArray[np.float64]] = {}
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(infos[name].file, []).append(name)
    for file, file_names in by_file.items():
        try:
            # numpy has no bfloat16, so bf16 tensors go through torch (exact widening to float32)
            if any(infos[n].dtype == "BF16" for n in file_names):
                with safe_open(str(file), framework="pt") as fh:
                    for n in file_names:
                        out[n] = fh.get_tensor(n).double().numpy()
            else:
                with safe_open(str(file), framework="numpy") as fh:
                    for n in file_names:
                        out[n] = np.asarray(fh.get_tensor(n), dtype=np.float64)
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises its own SafetensorError (not a public class)
            raise CheckpointError(f"{file}: cannot read tensors {file_names}: {exc}") from exc
    return out


# ----------------------------------------------------------------------------- GGUF

# GGUF metadata value types (gguf.GGUFValueType) -> struct format; 8 = string, 9 = array.
_GGUF_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_DEFAULT_ALIGNMENT = 32
# Arrays longer than this (tokenizer vocabularies, merges) are skipped, not decoded:
# decoding 150k-260k strings is what makes gguf.GGUFReader take seconds per file.
_GGUF_MAX_ARRAY = 4096


@dataclass(frozen=True)
class _GGUFHeader:
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    type_ids: dict[str, int]


class _Cursor:
    """Sequential little-endian reader over a memory map; truncation -> CheckpointError."""

    def __init__(self, buf: Any, file: Path) -> None:
        self.buf, self.file, self.pos = buf, file, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise CheckpointError(f"{self.file}: truncated GGUF header at byte {self.pos}")
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"{self.file}: corrupt GGUF string at byte {self.pos}: {exc}") from exc

    def skip_strings(self, count: int) -> None:
        buf, pos, size = self.buf, self.pos, len(self.buf)
        for _ in range(count):
            if pos + 8 > size:
                raise CheckpointError(f"{self.file}: truncated GGUF string array at byte {pos}")
            pos += 8 + int.from_bytes(buf[pos : pos + 8], "little")
        if pos > size:
            raise CheckpointError(f"{self.file}: truncated GGUF string array at byte {pos}")
        self.pos = pos

    def value(self, vtype: int, key: str) -> Any:
        if vtype in _GGUF_SCALAR:
            return self.unpack(_GGUF_SCALAR[vtype])
        if vtype == _GGUF_STRING:
            return self.string()
        if vtype == _GGUF_ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if count > _GGUF_MAX_ARRAY:
                if etype == _GGUF_STRING:
                    self.skip_strings(count)
                elif etype in _GGUF_SCALAR:
                    self.take(count * struct.calcsize(_GGUF_SCALAR[etype]))
                else:
                    raise CheckpointError(f"{self.file}: GGUF key {key!r}: nested array too long to skip")
                return {"array_length": count}
            return [self.value(etype, key) for _ in range(count)]
        raise CheckpointError(f"{self.file}: GGUF key {key!r} has unknown value type {vtype}")


def _gguf_header(file: Path) -> _GGUFHeader:
    """The parsed GGUF header, cached per (path, size, mtime, inode).

    Walking a 260k-entry tokenizer array costs ~50-100 ms; a scan calls list_tensors,
    read_config and read_tensors on the same file, so parse once. A rewritten file has a
    new mtime or size and is parsed again.
    """
    try:
        st = file.stat()
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot read: {exc}") from exc
    return _gguf_header_cached(file.resolve(), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=16)
def _gguf_header_cached(file: Path, size: int, mtime_ns: int, inode: int) -> _GGUFHeader:
    return _parse_gguf_header(file)


def _parse_gguf_header(file: Path) -> _GGUFHeader:
    """Parse a GGUF (v2/v3) header: metadata, tensor infos, data offsets. Memory-maps the file."""
    import mmap

    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    size = file.stat().st_size
    if size < 24:
        raise CheckpointError(f"{file}: truncated GGUF file ({size} bytes)")
    with file.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf, file)
        if cur.take(4) != _GGUF_MAGIC:
            raise CheckpointError(f"{file}: not a GGUF file (bad magic)")
        version = cur.unpack("<I")
        if version not in (2, 3):
            raise CheckpointError(
                f"{file}: GGUF version {version} not supported (need 2 or 3, little-endian)"
            )
        n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            metadata[key] = cur.value(cur.unpack("<I"), key)
        raw: list[tuple[str, tuple[int, ...], int, int]] = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.unpack("<I")
            if n_dims > 8:
                raise CheckpointError(f"{file}: corrupt GGUF tensor info for {name!r} ({n_dims} dimensions)")
            dims = struct.unpack(f"<{n_dims}Q", cur.take(8 * n_dims))
            raw.append((name, tuple(reversed(dims)), cur.unpack("<I"), cur.unpack("<Q")))
        alignment = metadata.get("general.alignment", _GGUF_DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise CheckpointError(f"{file}: invalid general.alignment {alignment!r}")
        data_start = -(-cur.pos // alignment) * alignment
    tensors: dict[str, TensorInfo] = {}
    type_ids: dict[str, int] = {}
    for name, shape, type_id, rel in raw:
        try:
            qtype = GGMLQuantizationType(type_id)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{file}: tensor {name!r} has unknown GGML type {type_id}") from exc
        numel = math.prod(shape)
        if shape and shape[-1] % block:
            raise CheckpointError(f"{file}: tensor {name!r}: row of {shape[-1]} is not a multiple of {block}")
        nbytes = numel * type_size // block
        offset = data_start + rel
        if offset + nbytes > size:
            raise CheckpointError(
                f"{file}: truncated: tensor {name!r} ends at byte {offset + nbytes}, file has {size}"
            )
        if name in tensors:
            raise CheckpointError(f"{file}: duplicate tensor name {name!r}")
        tensors[name] = TensorInfo(name, shape, qtype.name, file, nbytes, offset)
        type_ids[name] = type_id
    return _GGUFHeader(metadata, tensors, type_ids)


def _read_gguf(header: _GGUFHeader, names: list[str]) -> dict[str, npt.NDArray[np.float64]]:
    from gguf import GGMLQuantizationType, quants

    out: dict[str, npt.NDArray[np.float64]] = {}
    for name in names:
        info = header.tensors[name]
        qtype = GGMLQuantizationType(header.type_ids[name])
        # np.fromfile reads exactly this tensor's bytes, nothing else of the file
        raw = np.fromfile(info.file, dtype=np.uint8, count=info.nbytes, offset=info.offset)
        if raw.size != info.nbytes:
            raise CheckpointError(f"{info.file}: truncated while reading tensor {name!r}")
        if qtype == GGMLQuantizationType.F32:
            values: npt.NDArray[Any] = raw.view("<f4")
        elif qtype == GGMLQuantizationType.F16:
            values = raw.view("<f2")
        elif qtype == GGMLQuantizationType.F64:
            values = raw.view("<f8")
        elif qtype == GGMLQuantizationType.BF16:
            # bf16 is the top half of a float32, so widening is exact
            values = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            byte_shape = (*info.shape[:-1], info.nbytes // max(1, math.prod(info.shape[:-1])))
            try:
                values = quants.dequantize(raw.reshape(byte_shape), qtype)
            except NotImplementedError as exc:
                raise CheckpointError(
                    f"{info.file}: tensor {name!r} is stored as {qtype.name}, which gguf cannot dequantise"
                ) from exc
        out[name] = np.asarray(values, dtype=np.float64).reshape(info.shape)
    return out


# ----------------------------------------------------------------------------- CTranslate2


def _ct2_string(fh: BinaryIO, file: Path) -> str:
    raw = fh.read(2)
    if len(raw) < 2:
        raise CheckpointError(f"{file}: truncated CTranslate2 header (string length at byte {fh.tell()})")
    (n,) = struct.unpack("<H", raw)
    data = fh.read(n)
    if len(data) < n or n == 0 or data[-1:] != b"\0":
        raise CheckpointError(f"{file}: truncated or corrupt CTranslate2 string at byte {fh.tell()}")
    try:
        return data[:-1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{file}: corrupt CTranslate2 string at byte {fh.tell()}: {exc}") from exc


def _ct2_unpack(fh: BinaryIO, fmt: str, file: Path) -> tuple[int, ...]:
    n = struct.calcsize(fmt)
    raw = fh.read(n)
    if len(raw) < n:
        raise CheckpointError(f"{file}: truncated CTranslate2 header at byte {fh.tell()}")
    return struct.unpack(fmt, raw)


def _ct2_infos(file: Path) -> dict[str, TensorInfo]:
    return _ct2_header(file)[1]


def _ct2_header(file: Path) -> tuple[str, dict[str, TensorInfo]]:
    """Walk the CTranslate2 model.bin: version, spec name, revision, variables, aliases."""
    size = file.stat().st_size
    infos: dict[str, TensorInfo] = {}
    with file.open("rb") as fh:
        (version,) = _ct2_unpack(fh, "<I", file)
        if not _CT2_MIN_VERSION <= version <= _CT2_MAX_VERSION:
            raise CheckpointError(f"{file}: unsupported CTranslate2 binary version {version}")
        spec = _ct2_string(fh, file)  # e.g. "WhisperSpec"
        _ct2_unpack(fh, "<I", file)  # spec revision
        (count,) = _ct2_unpack(fh, "<I", file)
        for _ in range(count):
            name = _ct2_string(fh, file)
            (rank,) = _ct2_unpack(fh, "<B", file)
            shape = _ct2_unpack(fh, f"<{rank}I", file) if rank else ()
            (code,) = _ct2_unpack(fh, "<B", file)
            (nbytes,) = _ct2_unpack(fh, "<I", file)
            if code >= len(_CT2_DTYPES):
                raise CheckpointError(f"{file}: variable {name!r} has unknown dtype code {code}")
            dtype, np_dtype = _CT2_DTYPES[code]
            if nbytes != math.prod(shape) * np.dtype(np_dtype).itemsize:
                raise CheckpointError(
                    f"{file}: header lies about variable {name!r}: shape {shape} {dtype} needs "
                    f"{math.prod(shape) * np.dtype(np_dtype).itemsize} bytes, header says {nbytes}"
                )
            offset = fh.tell()
            if offset + nbytes > size:
                raise CheckpointError(
                    f"{file}: truncated: variable {name!r} ends at byte {offset + nbytes}, file has {size}"
                )
            infos[name] = TensorInfo(name, tuple(shape), dtype, file, nbytes, offset)
            fh.seek(nbytes, os.SEEK_CUR)
        (n_alias,) = _ct2_unpack(fh, "<I", file)
        for _ in range(n_alias):
            alias, target = _ct2_string(fh, file), _ct2_string(fh, file)
            if target not in infos:
                raise CheckpointError(f"{file}: alias {alias!r} points at unknown variable {target!r}")
            t = infos[target]
            infos[alias] = TensorInfo(alias, t.shape, t.dtype, t.file, t.nbytes, t.offset, alias_of=target)
    return spec, infos


def _read_ct2(
    infos: Mapping[str, TensorInfo], names: list[str], dtype: type[np.floating[Any]] = np.float64
) -> dict[str, npt.NDArray[Any]]:
    out: dict[str, npt.NDArray[Any]] = {}
    for name in names:
        info = infos[name]
        base = info.alias_of or name
        if info.dtype in ("I8", "I16") and f"{base}_scale" in infos:
            raise CheckpointError(
                f"{info.file}: variable {name!r} is quantised ({info.dtype} with {base}_scale); "
                "deadir reads float CTranslate2 models only"
            )
        np_dtype = dict(_CT2_DTYPES)[info.dtype]
        with info.file.open("rb") as fh:
            fh.seek(info.offset)
            raw = fh.read(info.nbytes)
        if len(raw) != info.nbytes:
            raise CheckpointError(f"{info.file}: truncated while reading variable {name!r}")
        arr = np.frombuffer(raw, dtype=np_dtype)
        if info.dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.astype(dtype).reshape(info.shape)
    return out


# ----------------------------------------------------------------------------- public API


def list_tensors(path: str | os.PathLike[str]) -> dict[str, TensorInfo]:
    """Every tensor of a checkpoint with its shape, dtype, file, byte size and offset.

    ``path`` is a safetensors file, a folder with ``model.safetensors`` or
    ``model.safetensors.index.json``, a ``.gguf`` file, or a CTranslate2 ``model.bin``
    (or a folder holding exactly one of these). Reads headers only (for GGUF the header is
    walked through a memory map; long tokenizer arrays are skipped, not decoded).

    Raises CheckpointError on a missing path, an unknown or pickled format, a corrupt or
    truncated header, a header whose sizes do not add up, or an index pointing at a
    missing shard.
    """
    fmt, file = _resolve(path)
    if fmt == "safetensors":
        return _safetensors_header(file)
    if fmt == "safetensors-sharded":
        return _sharded_infos(file)
    if fmt == "gguf":
        return dict(_gguf_header(file).tensors)  # a copy: the parsed header is cached
    return _ct2_infos(file)


def read_tensors(
    path: str | os.PathLike[str], names: Iterable[str], *, infos: Mapping[str, TensorInfo] | None = None
) -> dict[str, npt.NDArray[np.float64]]:
    """The named tensors as float64 arrays (row-major shapes), reading only their bytes.

    ``infos``: what :func:`list_tensors` returned for the same path, so the header is not
    parsed twice (a scan lists the tensors first, then reads the norms).

    F16/BF16/F32 values are widened exactly. GGUF quantised tensors are dequantised with
    ``gguf.quants`` (CheckpointError if gguf has no dequantiser for the type); quantised
    CTranslate2 weights are refused. Raises CheckpointError if a name is absent (all
    absent names are listed) or the file cannot be read, plus everything
    :func:`list_tensors` raises.
    """
    wanted = list(dict.fromkeys(names))
    fmt, file = _resolve(path)
    header = _gguf_header(file) if fmt == "gguf" else None
    if header is not None:
        infos = header.tensors
    elif infos is None:
        infos = list_tensors(path)
    missing = [n for n in wanted if n not in infos]
    if missing:
        raise CheckpointError(f"{path}: no tensor named {', '.join(repr(m) for m in missing)}")
    if fmt in ("safetensors", "safetensors-sharded"):
        return _read_safetensors(infos, wanted)
    if header is not None:
        return _read_gguf(header, wanted)
    return _read_ct2(infos, wanted)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model configuration as a dict.

    - safetensors folder (or a file inside one) and CTranslate2: the ``config.json`` next
      to the weights (for CTranslate2 this is CTranslate2's own config, e.g. token ids;
      the architecture sizes live in the variable shapes);
    - GGUF: the metadata key/values, e.g. ``general.architecture``,
      ``<arch>.embedding_length``, ``<arch>.block_count``,
      ``<arch>.attention.layer_norm_rms_epsilon``; arrays longer than 4096 entries
      (tokenizer vocabularies) are replaced by ``{"array_length": n}``.

    Raises CheckpointError if the path is missing, config.json is absent or not a JSON
    object, or the GGUF metadata is corrupt.
    """
    fmt, file = _resolve(path)
    if fmt == "gguf":
        return copy.deepcopy(_gguf_header(file).metadata)  # a copy: the parsed header is cached
    config_file = file.parent / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path}: no config.json next to the weights ({config_file})")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_file}: not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_file}: not a JSON object")
    return config


# ----------------------------------------------------------------------------- CTranslate2 Whisper


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


def _whisper_config_from_ct2(
    infos: Mapping[str, TensorInfo], config: Mapping[str, Any], tokenizer_ids: Mapping[str, int]
) -> Any:
    """WhisperConfig whose sizes are read off the CT2 variable shapes."""
    from transformers import WhisperConfig

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
            heads[side] = int(_read_ct2(infos, [var])[var].reshape(-1)[0])
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


def _added_token_ids(tokenizer_file: Path) -> dict[str, int]:
    """content -> id of the added (special) tokens of a tokenizer.json; {} if absent or unreadable."""
    try:
        data = json.loads(tokenizer_file.read_text())
        return {str(t["content"]): int(t["id"]) for t in data.get("added_tokens", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # the ids are a convenience for generation; the weights do not depend on them


def ctranslate2_whisper_tokenizer(folder: str | os.PathLike[str]) -> Any:
    """The fast tokenizer of a CTranslate2 Whisper folder (its tokenizer.json).

    tokenizer.json carries no special-token roles; Whisper's end of text is its pad and eos.

    Raises:
        CheckpointError: the folder has no tokenizer.json.
    """
    from transformers import PreTrainedTokenizerFast

    file = Path(folder) / "tokenizer.json"
    if not file.is_file():
        raise CheckpointError(f"{file}: no tokenizer.json beside the CTranslate2 model")
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

    fmt, file = _resolve(path)
    if fmt != "ctranslate2":
        raise CheckpointError(f"{path}: not a CTranslate2 model (found {fmt})")
    spec, infos = _ct2_header(file)
    if spec != "WhisperSpec":
        raise CheckpointError(f"{file}: CTranslate2 model of spec {spec!r}, expected 'WhisperSpec'")
    # Hugging Face Whisper is pre-LN, exact GELU (CTranslate2 ActivationType 3), unscaled
    # embeddings, no ALiBi; refuse files whose attributes say otherwise.
    for flag, expected in _CT2_WHISPER_FLAGS:
        if flag in infos and int(_read_ct2(infos, [flag])[flag].reshape(-1)[0]) != expected:
            raise CheckpointError(f"{file}: {flag} is not {expected}; not the Whisper architecture")
    config_file = file.parent / "config.json"
    config = read_config(file) if config_file.is_file() else {}
    model = WhisperForConditionalGeneration(
        _whisper_config_from_ct2(infos, config, _added_token_ids(file.parent / "tokenizer.json"))
    )
    # remove_duplicate=False lists tied parameters (proj_out / embed_tokens) under both names
    params = dict(model.named_parameters(remove_duplicate=False))
    scalars = {n for n, i in infos.items() if not i.shape or n.endswith("/num_heads")}
    mapping = ctranslate2_whisper_mapping(n for n in infos if n not in scalars)
    unmapped = sorted(n for n in infos if n not in mapping and n not in scalars)
    if unmapped:
        raise CheckpointError(f"{file}: CTranslate2 variables with no Whisper parameter: {unmapped}")
    values = _read_ct2(infos, list(mapping), dtype=np.float32)  # fp16 -> float32 exactly
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
                    raise CheckpointError(
                        f"{file}: {ct2_name} maps to {target}, which the model does not have"
                    )
                param = params[target]
                if tuple(param.shape) != block.shape:
                    raise CheckpointError(
                        f"{file}: {ct2_name} block has shape {block.shape}, "
                        f"{target} needs {tuple(param.shape)}"
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
