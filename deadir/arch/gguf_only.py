"""Families deadir reads only from GGUF files: llama.cpp converts them, ``transformers`` ships no class.

Their checkpoints (safetensors) need remote code, which deadir never runs, so these records
carry no tiny configuration; the record test writes a GGUF file per record instead.
"""

from __future__ import annotations

from deadir.arch.record import Architecture

_NO_CLASS = "transformers ships no class for it (remote code, never run); read from GGUF only"
_NOT_TESTED_HF = "transformers' class is not a reference for llama.cpp's conversion of it; read from GGUF only"


def _gguf(name: str, kind: str, reason: str, *, stack: str = "decoder", note: str = "") -> Architecture:
    return Architecture(name, (), "rmsnorm" if kind == "rms" else "layernorm", stack="encoder" if stack == "encoder"
                        else "decoder", gguf_names=(name,), no_tiny_reason=reason, note=note)


RECORDS: tuple[Architecture, ...] = (
    _gguf("internlm2", "rms", _NO_CLASS),
    _gguf("minicpm", "rms", _NO_CLASS),
    _gguf("exaone", "rms", _NO_CLASS),
    _gguf("deepseek2", "rms", _NOT_TESTED_HF),
    _gguf("mpt", "ln", _NOT_TESTED_HF, note="bias-free LayerNorm"),
    _gguf("nomic-bert", "ln", _NO_CLASS, stack="encoder"),
    _gguf("jina-bert-v2", "ln", _NO_CLASS, stack="encoder"),
)
