"""Opening checkpoint files safely and reading exact byte ranges from them.

Three rules, each against a real failure mode of untrusted folders:

* only regular files are opened: the path is opened with ``O_NONBLOCK`` (so a FIFO cannot block
  the ``open`` itself) and checked with ``fstat`` on the descriptor (no check-then-open race); a
  FIFO, a device or a folder raises :class:`~deadir.errors.UnsafeCheckpointError`;
* a file named *from inside* a checkpoint (a shard of an index, ``config.json`` beside the
  weights) must resolve inside the checkpoint's folder: ``../x`` and absolute names are refused,
  and so is a symlink whose target lies outside (the Hugging Face hub cache layout
  ``snapshots/<rev>/f -> ../../blobs/<hash>`` is the one exception: its target is that
  repository's own blob store);
* tensor bytes are read with ``os.pread`` of exactly their range on a descriptor advised
  ``POSIX_FADV_RANDOM``, so a cold read costs the norm tensors' bytes, not the kernel's readahead
  of megabytes around them.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deadir.errors import CheckpointError, UnsafeCheckpointError

__all__ = ["ByteCursor", "inside_folder", "open_regular", "pread_exact", "read_small_file"]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _hub_blob(link: Path, target: Path) -> bool:
    """True for the Hugging Face hub cache layout snapshots/<rev>/<name> -> <repo>/blobs/<hash>."""
    snapshot = link.parent
    return snapshot.parent.name == "snapshots" and target.parent == snapshot.parent.parent.resolve() / "blobs"


def inside_folder(path: Path, folder: Path, what: str) -> Path:
    """``path`` (relative to ``folder`` or absolute) resolved, after checking it stays inside ``folder``.

    Raises:
        UnsafeCheckpointError: an absolute name, a ``..`` escape, or a symlink out of the folder.
    """
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeCheckpointError(f"{folder}: {what} {str(path)!r} is outside the checkpoint folder")
    full = folder / path
    root = folder.resolve()
    real = full.resolve()
    if root != real and root not in real.parents and not _hub_blob(full, real):
        raise UnsafeCheckpointError(f"{full}: {what} is a symlink to {real}, outside the checkpoint folder {folder}")
    return full


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[int]:
    """A read-only descriptor on ``path`` if it is a regular file (symlinks followed), advised for random reads.

    Raises:
        CheckpointError: the path does not exist or cannot be opened.
        UnsafeCheckpointError: it is a FIFO, a device, a socket or a folder.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise UnsafeCheckpointError(f"{path}: is a folder, expected a file") from exc
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeCheckpointError(f"{path}: is {_kind(mode)}; deadir opens only regular files")
        if hasattr(os, "posix_fadvise"):
            # headers and tensors are read at scattered offsets: no readahead of the matmul weights
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        yield fd
    finally:
        os.close(fd)


def pread_exact(fd: int, nbytes: int, offset: int, path: Path, what: str) -> bytes:
    """Exactly ``nbytes`` bytes at ``offset`` (several preads if the kernel returns fewer).

    Raises:
        CheckpointError: the file ends first (``what`` names the tensor or header being read).
    """
    parts: list[bytes] = []
    got = 0
    while got < nbytes:
        try:
            chunk = os.pread(fd, nbytes - got, offset + got)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
        if not chunk:
            raise CheckpointError(f"{path}: truncated while reading {what} (byte {offset + got} of {path.name})")
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_small_file(path: Path, max_bytes: int, what: str) -> bytes:
    """The whole of a small regular file (a config, an index), refusing one larger than ``max_bytes``.

    Raises:
        CheckpointError / UnsafeCheckpointError: as :func:`open_regular`.
        CheckpointLimitError: the file is larger than ``max_bytes``.
    """
    from deadir.errors import CheckpointLimitError

    with open_regular(path) as fd:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise CheckpointLimitError(f"{path}: {what} is {size} bytes, above the limit {max_bytes}")
        return pread_exact(fd, size, 0, path, what)


_U64 = struct.Struct("<Q")


class ByteCursor:
    """Sequential little-endian reader over a descriptor, fetching 64 KiB windows with pread.

    Header parsers walk with it; skipping (``skip``) moves past data without reading it.
    Reading past the end raises CheckpointError naming ``what`` (e.g. "GGUF header").
    """

    CHUNK = 1 << 16

    def __init__(self, fd: int, file: Path, size: int, what: str, start: int = 0, chunk: int = CHUNK) -> None:
        self.fd, self.file, self.size, self.what = fd, file, size, what
        self.pos = start
        self.chunk = chunk  # small for headers interleaved with data (CTranslate2), large for long walks
        self._buf = b""
        self._base = start

    def _fill(self, n: int) -> None:
        """Make the window start at ``pos`` and hold at least ``n`` bytes."""
        length = min(max(n, self.chunk), self.size - self.pos)
        self._buf = pread_exact(self.fd, length, self.pos, self.file, self.what)
        self._base = self.pos

    def skip_prefixed(self, count: int, max_len: int, what: str) -> None:
        """Skip ``count`` uint64-length-prefixed byte strings (GGUF token arrays) in one tight loop.

        Raises:
            CheckpointLimitError: a length above ``max_len`` (``what`` names the array).
            CheckpointError: the strings run past the end of the file.
        """
        from deadir.errors import CheckpointLimitError

        unpack_from = _U64.unpack_from
        pos, base, buf, size = self.pos, self._base, self._buf, self.size
        last = len(buf) - 8  # the last window offset at which 8 bytes remain
        for _ in range(count):
            off = pos - base
            if off > last:
                self.pos = pos
                if pos + 8 > size:
                    raise self._truncated(8)
                self._fill(8)
                base, buf, off, last = self._base, self._buf, 0, len(self._buf) - 8
            (n,) = unpack_from(buf, off)
            if n > max_len:
                raise CheckpointLimitError(
                    f"{self.file}: {what} string length (bytes) is {n}, above the limit {max_len}"
                )
            pos += 8 + n
        if pos > size:
            raise self._truncated(pos - size)
        self.pos = pos

    def _truncated(self, n: int) -> CheckpointError:
        return CheckpointError(f"{self.file}: truncated {self.what} at byte {self.pos} (needs {n} more bytes)")

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        if n < 0 or self.pos + n > self.size:
            raise self._truncated(n)
        start = self.pos - self._base
        if start < 0 or start + n > len(self._buf):
            self._fill(n)
            start = 0
        self.pos += n
        return self._buf[start : start + n]

    def skip(self, n: int) -> None:
        """Move ``n`` bytes on without reading them."""
        if n < 0 or self.pos + n > self.size:
            raise self._truncated(n)
        self.pos += n

    def unpack(self, fmt: str) -> Any:
        """One value of a ``struct`` format (little-endian formats only)."""
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
