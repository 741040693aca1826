"""The format registry: which reader opens a file or folder (see :mod:`deadir.io` for the API)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deadir.errors import CheckpointError, UnsafeCheckpointError
from deadir.io.checkpoint import Checkpoint
from deadir.io.files import inside_folder, open_regular
from deadir.io.limits import DEFAULT_LIMITS, Limits

__all__ = ["CheckpointFormat", "formats", "open_checkpoint", "register_format", "resolve", "sniff_file"]

SNIFF_BYTES = 16
"""How many leading bytes a format's ``sniff`` sees."""


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint format: how to recognise it and how to open it.

    Attributes:
        name: the format's name, as :attr:`Checkpoint.format` reports it.
        sniff: (file, its first :data:`SNIFF_BYTES` bytes) -> True if this format reads the file.
            Must not read the file itself (the registry already did, safely).
        open: (file, folder, limits) -> :class:`Checkpoint`; parses headers only. ``folder`` is the
            checkpoint's folder: every other file it opens must pass
            :func:`deadir.io.files.inside_folder` against it.
        folder_files: exact file names that identify the format inside a folder; the first format
            (in registration order) with such a file present wins over every glob match.
        folder_globs: patterns of single-file candidates inside a folder (a folder must hold exactly
            one candidate across all formats when no ``folder_files`` name is present).
    """

    name: str
    sniff: Callable[[Path, bytes], bool]
    open: Callable[[Path, Path, Limits], Checkpoint]
    folder_files: tuple[str, ...] = ()
    folder_globs: tuple[str, ...] = ()


_FORMATS: dict[str, CheckpointFormat] = {}

_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl"}


def register_format(fmt: CheckpointFormat) -> CheckpointFormat:
    """Add a format to the registry (a module calls this once at import); returns it.

    Raises:
        ValueError: a different format of the same name is already registered.
    """
    known = _FORMATS.get(fmt.name)
    if known is not None and known is not fmt:
        raise ValueError(f"checkpoint format {fmt.name!r} is already registered")
    _FORMATS[fmt.name] = fmt
    return fmt


def formats() -> tuple[CheckpointFormat, ...]:
    """The registered formats, in registration (= priority) order."""
    return tuple(_FORMATS.values())


def _refuse_pickle(file: Path, head: bytes) -> None:
    if head[:2] == b"PK" or head[:1] == b"\x80":
        # torch.save writes a zip archive (PK..) or a bare pickle (protocol >= 2: 0x80).
        raise CheckpointError(
            f"{file}: looks like a pickled PyTorch checkpoint; deadir never unpickles files. "
            "Convert it to safetensors (e.g. torch.load(path, weights_only=True) in a trusted "
            "environment, then safetensors.torch.save_file)"
        )


def sniff_file(file: Path) -> CheckpointFormat:
    """The format of one file, from its first bytes (never its name alone, except JSON indexes).

    Raises:
        CheckpointError: missing, pickled, or no registered format recognises it.
        UnsafeCheckpointError: not a regular file (FIFO, device, folder).
    """
    with open_regular(file) as fd:
        head = os.pread(fd, SNIFF_BYTES, 0)
    for fmt in _FORMATS.values():
        if fmt.sniff(file, head):
            return fmt
    # after the formats: a safetensors header length of 128 (mod 256) also starts with 0x80
    _refuse_pickle(file, head)
    names = ", ".join(_FORMATS)
    raise CheckpointError(f"{file}: unknown checkpoint format (not {names}; first bytes {head[:8]!r})")


def resolve(path: str | os.PathLike[str]) -> tuple[CheckpointFormat, Path, Path]:
    """(format, defining file, folder) of a file or folder.

    Raises:
        CheckpointError: missing path, only pickled weights, no or several candidate files, unknown format.
        UnsafeCheckpointError: a special file, or a candidate that is a symlink out of the folder.
    """
    p = Path(path)
    if not os.path.lexists(p):
        raise CheckpointError(f"{p}: no such file or folder")
    if not p.is_dir():
        return sniff_file(p), p, p.parent
    for fmt in _FORMATS.values():
        for name in fmt.folder_files:
            if os.path.lexists(p / name):
                file = inside_folder(Path(name), p, "weights file")
                found = sniff_file(file)
                if found is not fmt:
                    raise CheckpointError(f"{file}: named like {fmt.name} but holds {found.name}")
                return fmt, file, p
    candidates: list[Path] = []
    for fmt in _FORMATS.values():
        for pattern in fmt.folder_globs:
            candidates.extend(q for q in sorted(p.glob(pattern)) if q not in candidates)
    if len(candidates) == 1:
        file = inside_folder(Path(candidates[0].name), p, "weights file")
        if file.is_dir():
            raise UnsafeCheckpointError(f"{file}: is a folder, expected a weights file")
        return sniff_file(file), file, p
    pickles = sorted(q.name for q in p.iterdir() if q.suffix in _PICKLE_SUFFIXES)
    if pickles and not candidates:
        raise CheckpointError(
            f"{p}: only pickled weights ({', '.join(pickles)}); deadir never unpickles files. "
            "Convert them to safetensors"
        )
    what = f"several candidates ({', '.join(c.name for c in candidates)})" if candidates else "no weights"
    exact = sorted({n for f in _FORMATS.values() for n in f.folder_files})
    raise CheckpointError(
        f"{p}: {what}; expected {' or '.join(exact)}, or exactly one of "
        f"{', '.join(g for f in _FORMATS.values() for g in f.folder_globs)}"
    )


def open_checkpoint(path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    """Open a checkpoint file or folder: detect its format and parse its headers (no tensor data).

    ``path`` is a safetensors file, a folder with ``model.safetensors`` or
    ``model.safetensors.index.json`` (or a ``*.index.json`` file), a ``.gguf`` file, a
    CTranslate2 ``model.bin``, or a folder holding exactly one weights file. ``limits`` raises or
    lowers the parser limits (:mod:`deadir.io.limits`).

    Raises:
        CheckpointError: missing path, unknown or pickled format, corrupt or truncated header, a
            header whose sizes do not add up, an index pointing at a missing shard.
        UnsafeCheckpointError: a FIFO/device/folder where a file is expected, a shard or symlink
            outside the checkpoint's folder.
        CheckpointLimitError: a header beyond the parser limits.
    """
    fmt, file, folder = resolve(path)
    return fmt.open(file, folder, limits)
