"""All architecture knowledge: one :class:`Architecture` record per model family.

Every module that needs to know a family — where its norms sit in a checkpoint (scan), how
its module paths map to roles and the final norm (find_norms, final_norm), its tiny test
configuration (random_init_like, the integration matrix), who reads its norms (fisher) — asks
here, and nothing else names a ``model_type``. Adding an architecture is one record in one of
the family modules (``decoders``, ``encoders``, ``seq2seq``, ``vision``, ``gguf_only``), and,
if it brings its own norm class, one entry in :mod:`deadir.hf_norms`;
``tests/test_arch.py`` then checks the record against the instantiated model.

Lookups: :func:`by_model_type` (a ``config.model_type``, aliases included), :func:`by_gguf`
(a GGUF ``general.architecture``), :func:`all_architectures`.
"""

from __future__ import annotations

from deadir.arch import decoders, encoders, gguf_only, seq2seq, vision
from deadir.arch.naming import EMBEDDING_NAMES, GENERIC_FINAL_NAMES, GGUF_RULES, QK_NAMES
from deadir.arch.plans import Plan, Read, UnsupportedArchitectureError, Write
from deadir.arch.record import (
    ROLES,
    STACKS,
    Architecture,
    FinalRule,
    NamingRule,
    PlanBuilder,
    Role,
    Stack,
    block_of,
    stack_of_path,
)
from deadir.errors import UnknownNormError

__all__ = [
    "EMBEDDING_NAMES",
    "GENERIC_FINAL_NAMES",
    "GGUF_RULES",
    "QK_NAMES",
    "ROLES",
    "STACKS",
    "Architecture",
    "FinalRule",
    "NamingRule",
    "Plan",
    "PlanBuilder",
    "Read",
    "Role",
    "Stack",
    "UnknownArchitectureError",
    "UnsupportedArchitectureError",
    "Write",
    "all_architectures",
    "block_of",
    "by_gguf",
    "by_model_type",
    "get",
    "stack_of_path",
]


class UnknownArchitectureError(UnknownNormError):
    """A model type or GGUF architecture name that no record holds."""


_ALL: tuple[Architecture, ...] = (
    *decoders.RECORDS, *encoders.RECORDS, *seq2seq.RECORDS, *vision.RECORDS, *gguf_only.RECORDS,
)


def _index(key: str) -> dict[str, Architecture]:
    out: dict[str, Architecture] = {}
    for record in _ALL:
        for name in getattr(record, key):
            if name in out:
                raise RuntimeError(f"deadir.arch: {key} {name!r} is claimed by {out[name].name} and {record.name}")
            out[name] = record
    return out


_BY_MODEL_TYPE = _index("model_types")
_BY_GGUF = _index("gguf_names")
if len({r.name for r in _ALL}) != len(_ALL):  # pragma: no cover - a wiring error, caught on import
    raise RuntimeError("deadir.arch: two records share a name")


def all_architectures() -> tuple[Architecture, ...]:
    """Every record, in family-module order."""
    return _ALL


def by_model_type(model_type: str) -> Architecture | None:
    """The record of a Hugging Face ``config.model_type`` (aliases such as mt5, xlm-roberta included), or None."""
    return _BY_MODEL_TYPE.get(model_type)


def by_gguf(name: str) -> Architecture | None:
    """The record of a GGUF ``general.architecture`` value (llama.cpp's name), or None."""
    return _BY_GGUF.get(name)


def get(model_type: str) -> Architecture:
    """The record of ``model_type``.

    Raises:
        UnknownArchitectureError: no record has it (the message lists the known model types).
    """
    record = by_model_type(model_type)
    if record is None:
        raise UnknownArchitectureError(
            f"model type {model_type!r}: no architecture record; known: {sorted(_BY_MODEL_TYPE)}"
        )
    return record
