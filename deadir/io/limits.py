"""Parser limits for untrusted checkpoint bytes, and the one JSON loader that enforces them.

A checkpoint is untrusted input: a header can claim a 95 MB JSON object, two million tensors or
arrays nested 100,000 deep, and a naive parser then spends gigabytes or overflows the stack.
Every reader in :mod:`deadir.io` checks the limits below *before* it allocates for a claim, and
raises :class:`~deadir.errors.CheckpointLimitError` naming the file, the limit and the value.

The defaults sit well above every real checkpoint (the largest safetensors header of a public
model is a few MB; GGUF files carry ~50 metadata keys and at most tens of thousands of tensors;
configs nest < 10 deep) and well below what hurts. A caller with a legitimately larger file passes
``open_checkpoint(path, limits=Limits(max_header_bytes=...))``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deadir.errors import CheckpointError, CheckpointLimitError

__all__ = [
    "MAX_ARRAY_NESTING",
    "MAX_HEADER_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_INT_DIGITS",
    "MAX_METADATA_ENTRIES",
    "MAX_STRING_BYTES",
    "MAX_TENSORS",
    "Limits",
    "json_depth",
    "load_json",
]

MAX_HEADER_BYTES = 32 * 2**20
"""Largest safetensors JSON header read (bytes); real headers are ≤ a few MB (≈150 bytes a tensor)."""
MAX_JSON_BYTES = 64 * 2**20
"""Largest config.json / index / baseline JSON file read (bytes)."""
MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted (checked before parsing: ``json.loads`` recurses and overflows)."""
MAX_JSON_INT_DIGITS = 30
"""Longest JSON integer accepted (digits); a 401-digit ε would overflow ``float``."""
MAX_METADATA_ENTRIES = 100_000
"""Most GGUF metadata key/value pairs (real files: ~30-60)."""
MAX_TENSORS = 1_000_000
"""Most tensors in one header (GGUF, safetensors or CTranslate2; large MoE files: tens of thousands)."""
MAX_ARRAY_NESTING = 8
"""Deepest GGUF array-of-array nesting (real files: 1)."""
MAX_STRING_BYTES = 16 * 2**20
"""Longest single string in a GGUF or CTranslate2 header (bytes; chat templates are ~10 KB)."""


@dataclass(frozen=True)
class Limits:
    """The parser limits one :func:`deadir.io.open_checkpoint` call enforces (defaults: the module constants)."""

    max_header_bytes: int = MAX_HEADER_BYTES
    max_json_bytes: int = MAX_JSON_BYTES
    max_json_depth: int = MAX_JSON_DEPTH
    max_json_int_digits: int = MAX_JSON_INT_DIGITS
    max_metadata_entries: int = MAX_METADATA_ENTRIES
    max_tensors: int = MAX_TENSORS
    max_array_nesting: int = MAX_ARRAY_NESTING
    max_string_bytes: int = MAX_STRING_BYTES

    def check(self, file: Path | str, what: str, value: int, limit: int) -> None:
        """Raise CheckpointLimitError when ``value`` exceeds ``limit`` (``what`` names the quantity)."""
        if value > limit:
            raise CheckpointLimitError(
                f"{file}: {what} is {value}, above the limit {limit} "
                "(raise it with deadir.io.Limits if the file is genuine)"
            )


DEFAULT_LIMITS = Limits()

# A JSON string literal (escapes included); removing them leaves only structural characters
# whose brackets can be counted without a parser.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


def json_depth(raw: bytes) -> int:
    """Maximum bracket nesting depth of a JSON text, found without recursion (vectorised count)."""
    stripped = np.frombuffer(_JSON_STRING.sub(b"", raw), dtype=np.uint8)
    if stripped.size == 0:
        return 0
    step = np.isin(stripped, _OPEN).astype(np.int64) - np.isin(stripped, _CLOSE).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def load_json(raw: bytes, source: Path | str, what: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse untrusted JSON bytes: depth pre-scanned, integers bounded in digits, non-finite numbers refused.

    Raises:
        CheckpointLimitError: deeper than ``limits.max_json_depth`` or an integer longer than
            ``limits.max_json_int_digits`` digits.
        CheckpointError: not valid UTF-8 JSON, or a number that is NaN/Infinity or overflows float64.
    """
    limits.check(source, f"{what} JSON nesting depth", json_depth(raw), limits.max_json_depth)

    def parse_int(text: str) -> int:
        limits.check(source, f"{what} integer length (digits)", len(text.lstrip("-")), limits.max_json_int_digits)
        return int(text)

    def parse_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise CheckpointError(f"{source}: {what} has the number {text[:40]!r}, which overflows float64")
        return value

    def parse_constant(text: str) -> Any:
        raise CheckpointError(f"{source}: {what} has the non-standard JSON constant {text!r}")

    try:
        return json.loads(raw, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{source}: {what} is not valid JSON ({exc})") from exc
