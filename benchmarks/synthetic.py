"""Synthetic GPT-2-layout safetensors checkpoints of ≥ 1 GB, written by streaming.

Two variants share every norm tensor (same names, shapes and values) and differ only in
the size of the non-norm weights:

* ``gpt2-1x``: d = 1024, 20 blocks, MLP width 4096, vocabulary 50,257 → ≈ 1.2 GB float32,
  real Hugging Face GPT-2 tensor names (``h.{i}.ln_1.weight``, ``ln_f.bias``, ...), so
  ``AutoModel.from_pretrained`` loads it and the "forward + eigensolve" route runs on it.
  Weights are GPT-2's random init (normal, std 0.02; biases 0); every LayerNorm gets a
  random γ in [0.5, 1.5] and β ~ N(0, 0.02²), so the direction γ⁻¹ is not trivial.
* ``gpt2-4x``: the same norms, with the MLP width and vocabulary grown so that the
  non-norm bytes are ≈ 4× those of ``gpt2-1x`` (≈ 4.9 GB). It is only ever scanned, never
  loaded, so its matmul weights are a tiled random block (cheap to write; scan never
  reads them).

The files are written once under ``build/bench/checkpoints`` (never committed) and
reused while their spec matches; a tensor-by-tensor writer keeps peak memory at one
tensor (≈ 200 MB for the embedding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SPEC_VERSION = 1
_ALIGN = 8  # safetensors pads its JSON header with spaces to a multiple of 8 bytes


@dataclasses.dataclass(frozen=True)
class GPT2Spec:
    """Sizes of a GPT-2-layout checkpoint (float32)."""

    name: str
    d: int = 1024
    n_layer: int = 20
    n_head: int = 16
    n_inner: int = 4096
    vocab: int = 50257
    n_positions: int = 1024
    tiled: bool = False  # matmul weights from a tiled random block instead of fresh draws
    seed: int = 0

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every tensor, in file order (Hugging Face GPT2Model names)."""
        d, m = self.d, self.n_inner
        out: list[tuple[str, tuple[int, ...]]] = [("wte.weight", (self.vocab, d)),
                                                  ("wpe.weight", (self.n_positions, d))]
        for i in range(self.n_layer):
            p = f"h.{i}."
            out += [
                (p + "ln_1.weight", (d,)), (p + "ln_1.bias", (d,)),
                (p + "attn.c_attn.weight", (d, 3 * d)), (p + "attn.c_attn.bias", (3 * d,)),
                (p + "attn.c_proj.weight", (d, d)), (p + "attn.c_proj.bias", (d,)),
                (p + "ln_2.weight", (d,)), (p + "ln_2.bias", (d,)),
                (p + "mlp.c_fc.weight", (d, m)), (p + "mlp.c_fc.bias", (m,)),
                (p + "mlp.c_proj.weight", (m, d)), (p + "mlp.c_proj.bias", (d,)),
            ]  # fmt: skip
        out += [("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
        return out

    def norm_names(self) -> list[str]:
        """The LayerNorm tensors (γ and β of ln_1, ln_2 and ln_f)."""
        return [n for n, _ in self.tensors() if is_norm_name(n)]

    def nbytes(self, *, norms: bool | None = None) -> int:
        """Bytes of float32 data: all tensors, only norms (True) or only non-norms (False)."""
        return sum(
            4 * int(np.prod(s)) for n, s in self.tensors() if norms is None or is_norm_name(n) == norms
        )

    def config(self) -> dict[str, Any]:
        """The Hugging Face GPT2Config fields of this layout."""
        return {
            "model_type": "gpt2", "architectures": ["GPT2Model"], "vocab_size": self.vocab,
            "n_positions": self.n_positions, "n_embd": self.d, "n_layer": self.n_layer, "n_head": self.n_head,
            "n_inner": self.n_inner, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.02,
            "torch_dtype": "float32", "dtype": "float32",
        }  # fmt: skip

    def key(self) -> str:
        blob = json.dumps({"v": SPEC_VERSION, **dataclasses.asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def is_norm_name(name: str) -> bool:
    """GPT-2 LayerNorm tensors: ``ln_1``, ``ln_2``, ``ln_f`` weights and biases."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-2] in ("ln_1", "ln_2", "ln_f")


def base_spec() -> GPT2Spec:
    """The ≥ 1 GB checkpoint that is loaded and run forward."""
    return GPT2Spec(name="gpt2-1x")


def grown_spec(base: GPT2Spec, factor: float = 4.0) -> GPT2Spec:
    """Same norms as ``base``; MLP width and vocabulary grown so non-norm bytes ≈ factor × base's."""
    vocab = round(base.vocab * factor)
    d, L = base.d, base.n_layer
    target = factor * base.nbytes(norms=False) / 4  # float32 elements
    fixed = vocab * d + base.n_positions * d + L * (4 * d * d + 4 * d + d)  # embeddings, attention, c_proj bias
    n_inner = (target - fixed) / (L * (2 * d + 1))  # c_fc (d×m + m) and c_proj (m×d)
    return dataclasses.replace(base, name=f"gpt2-{factor:g}x", vocab=vocab, n_inner=int(round(n_inner / 64) * 64),
                               tiled=True)


def _norm_values(spec: GPT2Spec) -> dict[str, npt.NDArray[np.float32]]:
    """γ ~ U[0.5, 1.5], β ~ N(0, 0.02²); a function of (seed, d, n_layer) only, so variants share them."""
    rng = np.random.default_rng([spec.seed, spec.d, spec.n_layer, 1])
    out: dict[str, npt.NDArray[np.float32]] = {}
    for name in spec.norm_names():
        if name.endswith(".weight"):
            out[name] = rng.uniform(0.5, 1.5, spec.d).astype(np.float32)
        else:
            out[name] = (0.02 * rng.standard_normal(spec.d)).astype(np.float32)
    return out


def _values(spec: GPT2Spec) -> Iterator[tuple[str, npt.NDArray[np.float32]]]:
    norms = _norm_values(spec)
    rng = np.random.default_rng([spec.seed, 2])
    block = (0.02 * rng.standard_normal(1 << 22, dtype=np.float32)) if spec.tiled else None
    for name, shape in spec.tensors():
        if name in norms:
            yield name, norms[name]
        elif name.endswith(".bias"):
            yield name, np.zeros(shape, dtype=np.float32)
        elif block is not None:
            n = int(np.prod(shape))
            yield name, np.resize(block, n).reshape(shape)
        else:
            w = rng.standard_normal(shape, dtype=np.float32)
            w *= 0.02 / np.sqrt(2 * spec.n_layer) if name.endswith("c_proj.weight") else 0.02
            yield name, w


def write_safetensors_streaming(path: Path, spec: GPT2Spec) -> int:
    """Write ``spec`` as one safetensors file, a tensor at a time; returns the file size in bytes."""
    from deadir.testing.checkpoints import write_safetensors_stream

    entries = [(name, "F32", shape) for name, shape in spec.tensors()]
    chunks = (np.ascontiguousarray(arr, dtype="<f4").tobytes() for _name, arr in _values(spec))
    return write_safetensors_stream(path, entries, chunks, metadata={"format": "pt", "deadir_bench_spec": spec.key()},
                                    align=_ALIGN)


def ensure_checkpoint(root: Path, spec: GPT2Spec) -> Path:
    """The folder ``root/spec.name`` holding ``config.json`` and ``model.safetensors`` for ``spec``,
    written now unless a previous run left one with the same spec key."""
    folder = root / spec.name
    stamp = folder / "deadir-bench-spec.json"
    if stamp.is_file() and (folder / "model.safetensors").is_file():
        if json.loads(stamp.read_text(encoding="utf-8")).get("key") == spec.key():
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    (folder / "config.json").write_text(json.dumps(spec.config(), indent=2), encoding="utf-8")
    size = write_safetensors_streaming(folder / "model.safetensors", spec)
    stamp.write_text(json.dumps({"key": spec.key(), "spec": dataclasses.asdict(spec), "bytes": size}),
                     encoding="utf-8")
    return folder
