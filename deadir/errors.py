"""Typed errors raised by deadir.

Each error refines the built-in that describes its nature, so callers that
catch ``ValueError`` or ``TypeError`` keep working, and names the input and
what was wrong with it.
"""

from __future__ import annotations


class DeadirError(Exception):
    """Base class of every error deadir raises on purpose."""


class DegenerateScaleError(DeadirError, ValueError):
    """The effective scale gamma + offset has zero, NaN or infinite entries.

    ``indices`` lists the offending positions (sorted, 0-based); ``kind`` maps
    each position to "zero", "nan" or "inf".
    """

    def __init__(self, message: str, *, indices: tuple[int, ...] = (), kinds: dict[int, str] | None = None) -> None:
        super().__init__(message)
        self.indices = indices
        self.kinds = dict(kinds or {})


class InputShapeError(DeadirError, ValueError):
    """An array argument has the wrong rank, size or dtype."""


class UnknownNormError(DeadirError, TypeError):
    """A module is not a normalisation layer deadir knows how to read."""


class CheckpointError(DeadirError, ValueError):
    """A checkpoint file or folder is missing, malformed or unsupported."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint path is not safe to open: not a regular file (a FIFO, a device, a folder where a
    file was expected), a symlink out of the checkpoint's folder, or a shard named outside it."""


class CheckpointLimitError(CheckpointError):
    """A checkpoint exceeds one of the parser limits of :mod:`deadir.io.limits` (header bytes,
    metadata entries, tensor count, array nesting, string length, JSON depth or digits)."""


class UnsupportedDtypeError(CheckpointError):
    """A tensor is stored in a dtype deadir cannot widen to float64 exactly (float8, quantised
    CTranslate2 weights, an unknown GGML type); the message names the tensor."""


class OutputError(DeadirError, OSError):
    """A report or plot could not be written to its destination (missing folder, a directory,
    read-only, a special file system); nothing partial is left behind."""


class ConfigMismatchError(CheckpointError):
    """A checkpoint's tensors contradict its own config (e.g. a final norm of length 3 in a
    model whose hidden size is 8); the message names the tensor, both numbers and the key."""
