"""The public handle on one checkpoint: format, config, tensor index, exact-range reads."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import CheckpointError
from deadir.io.files import open_regular, pread_exact
from deadir.io.limits import DEFAULT_LIMITS, Limits

__all__ = ["Checkpoint", "Decoder", "TensorInfo"]


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


Decoder = Callable[[TensorInfo, bytes], FloatArray]
"""A format's byte decoder: (tensor info, exactly its stored bytes) -> float64 array of ``info.shape``."""


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint on disk, its headers parsed, no tensor data read yet.

    Attributes:
        format: the registered format name ("safetensors", "safetensors-sharded", "gguf", "ctranslate2", ...).
        path: the file that defines the checkpoint (the weights file, or the sharded index).
        folder: the checkpoint's folder; every file it names must resolve inside it.
        config: the model configuration as a dict: ``config.json`` beside the weights
            (safetensors; CTranslate2's own config), or the GGUF metadata key/values
            (arrays longer than 4096 entries replaced by ``{"array_length": n}``); {} when absent.
        config_file: the config.json read, or None (GGUF: metadata; or no config.json beside the weights).
        tensors: tensor name -> :class:`TensorInfo` (every tensor of every shard).
        arch: the architecture the file names (``model_type``, GGUF ``general.architecture``,
            "whisper" for a CTranslate2 ``WhisperSpec``), or None.
        header: format-specific header facts (CTranslate2 spec and version, GGUF version,
            safetensors ``__metadata__``).
        limits: the parser limits it was opened with.
    """

    format: str
    path: Path
    folder: Path
    config: dict[str, Any]
    config_file: Path | None
    tensors: Mapping[str, TensorInfo]
    arch: str | None
    decoder: Decoder = field(repr=False)
    header: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS

    @property
    def files(self) -> list[Path]:
        """The data files, in name order (one, or every shard)."""
        return sorted({i.file for i in self.tensors.values()})

    @property
    def nbytes(self) -> int:
        """Stored bytes of all tensors (aliases counted once)."""
        return sum(i.nbytes for i in self.tensors.values() if i.alias_of is None)

    def read(self, names: Iterable[str]) -> dict[str, FloatArray]:
        """The named tensors as float64 arrays (row-major shapes), reading exactly their bytes.

        Each file is opened once (regular files only), advised for random access, and every tensor
        is fetched with one ``os.pread`` of its own byte range: no mmap, no readahead of the rest.
        F16/BF16/F32 widen exactly; GGUF quantised tensors are dequantised with ``gguf.quants``.

        Raises:
            CheckpointError: a name is absent (all absent names are listed) or the file ends early.
            UnsupportedDtypeError: a tensor's dtype cannot be widened to float64 (named).
        """
        wanted = list(dict.fromkeys(names))
        missing = [n for n in wanted if n not in self.tensors]
        if missing:
            raise CheckpointError(f"{self.path}: no tensor named {', '.join(repr(m) for m in missing)}")
        by_file: dict[Path, list[TensorInfo]] = {}
        for name in wanted:
            info = self.tensors[name]
            by_file.setdefault(info.file, []).append(info)
        out: dict[str, FloatArray] = {}
        for file, infos in by_file.items():
            with open_regular(file) as fd:
                for info in sorted(infos, key=lambda i: i.offset):
                    raw = pread_exact(fd, info.nbytes, info.offset, file, f"tensor {info.name!r}")
                    out[info.name] = np.asarray(self.decoder(info, raw), dtype=np.float64).reshape(info.shape)
        return {n: out[n] for n in wanted}
