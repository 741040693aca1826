"""Checkpoint bytes without ``transformers``: one :class:`Checkpoint` handle, one module per format.

Use::

    from deadir.io import open_checkpoint
    ck = open_checkpoint("path/to/folder-or-file")     # headers only
    ck.format, ck.config, ck.arch                        # "gguf", {...}, "llama"
    ck.tensors["blk.0.attn_norm.weight"]                 # TensorInfo(shape, dtype, file, offset, nbytes)
    ck.read(["blk.0.attn_norm.weight"])                  # {name: float64 array}, exactly those bytes read

Formats (recognised by their first bytes, not by file name, except the JSON index):
``safetensors`` (single file, or a folder with ``model.safetensors``), ``safetensors-sharded``
(``model.safetensors.index.json``), ``gguf`` (v2/v3) and ``ctranslate2`` (``model.bin`` v4-v6).
Nothing is ever unpickled: a pickled PyTorch file is refused with a CheckpointError telling the
user to convert it. Only regular files are opened; files named from inside a checkpoint (shards,
config.json) must lie inside its folder; parsers enforce the limits of :mod:`deadir.io.limits`.
No module here imports ``transformers`` (the CTranslate2 → Whisper builder lives in
:mod:`deadir.whisper_ct2`).

Adding a format (e.g. ONNX) is one new module in this package that registers itself at import::

    # deadir/io/onnx.py
    from deadir.io.checkpoint import Checkpoint, TensorInfo
    from deadir.io.registry import CheckpointFormat, register_format

    def open_onnx(file: Path, folder: Path, limits: Limits) -> Checkpoint:
        ...  # parse the header only; build TensorInfo(name, shape, dtype, file, nbytes, offset)
        return Checkpoint("onnx", file, folder, config, None, tensors, arch, decode, header, limits)

    FORMAT = register_format(CheckpointFormat(
        name="onnx",
        sniff=lambda file, head: ...,          # (file, first 16 bytes) -> bool; never raises for others' files
        open=open_onnx,                         # (file, folder, limits) -> Checkpoint
        folder_files=(),                        # exact names that win inside a folder
        folder_globs=("*.onnx",),               # single-file candidates inside a folder
    ))

and its name added to ``FORMAT_MODULES`` below. ``decode(info, raw) -> float64 array`` receives exactly the tensor's
stored bytes (``Checkpoint.read`` does the positioned read); raise
:class:`~deadir.errors.UnsupportedDtypeError` naming the tensor for a dtype it cannot widen
exactly. Every other file the format opens goes through :func:`deadir.io.files.open_regular`
and, when named from inside the checkpoint, :func:`deadir.io.files.inside_folder`; every count
or length read from the file is checked with ``limits.check`` before it is trusted.

Errors: :class:`~deadir.errors.CheckpointError` (missing, malformed, unsupported), and its
subclasses :class:`~deadir.errors.UnsafeCheckpointError` (special files, escapes from the folder),
:class:`~deadir.errors.CheckpointLimitError` (parser limits), and
:class:`~deadir.errors.UnsupportedDtypeError` (a tensor deadir cannot widen, named).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from typing import Any

from deadir.io.checkpoint import Checkpoint, TensorInfo
from deadir.io.limits import Limits
from deadir.io.registry import CheckpointFormat, formats, open_checkpoint, register_format

FORMAT_MODULES = ("safetensors", "gguf", "ctranslate2")
"""The format modules, imported (and so registered) in this order: the sniffing and folder-priority order."""
for _module in FORMAT_MODULES:
    importlib.import_module(f"deadir.io.{_module}")

__all__ = [
    "FORMAT_MODULES",
    "Checkpoint",
    "CheckpointFormat",
    "Limits",
    "TensorInfo",
    "detect_format",
    "formats",
    "list_tensors",
    "open_checkpoint",
    "read_config",
    "read_tensors",
    "register_format",
]


def detect_format(path: str | os.PathLike[str]) -> str:
    """The checkpoint format name of a file or folder (headers are not parsed).

    Raises:
        CheckpointError: as :func:`open_checkpoint` for the path itself (missing, pickled, unknown).
    """
    from deadir.io.registry import resolve

    return resolve(path)[0].name


def list_tensors(path: str | os.PathLike[str]) -> dict[str, TensorInfo]:
    """``open_checkpoint(path).tensors`` as a dict (a shortcut for one-off callers)."""
    return dict(open_checkpoint(path).tensors)


def read_tensors(path: str | os.PathLike[str], names: Iterable[str]) -> dict[str, Any]:
    """``open_checkpoint(path).read(names)`` (a shortcut for one-off callers)."""
    return open_checkpoint(path).read(names)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model configuration (``open_checkpoint(path).config``), requiring a config.json beside
    safetensors and CTranslate2 weights.

    Raises:
        CheckpointError: no config.json beside the weights, or as :func:`open_checkpoint`.
    """
    from deadir.errors import CheckpointError

    ck = open_checkpoint(path)
    if ck.format != "gguf" and ck.config_file is None:
        raise CheckpointError(f"{path}: no config.json next to the weights ({ck.path.parent / 'config.json'})")
    return ck.config
