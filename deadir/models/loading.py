"""Instantiated models: a family's tiny random-init model, a model's random-init twin, and loading a checkpoint.

* :func:`tiny_config` / :func:`random_model`: the tiny configuration of an architecture record
  (:attr:`deadir.arch.Architecture.tiny_config`: hidden 32, 2 layers), for tests, demos and
  ``deadir verify random:<model_type>``.
* :func:`random_init_like`: the same architecture at initialisation, no download.
* :func:`load_model`: a local checkpoint (safetensors folder, GGUF file, CTranslate2 Whisper), offline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from deadir import arch
from deadir.errors import CheckpointError, UnknownNormError


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint asks to run its own code (``auto_map``, custom Python files); deadir never runs it."""


_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                 "generation_config.json", "feature_extractor_config.json", "image_processor_config.json")
_MAX_CONFIG_BYTES = 16 * 2**20


def refuse_custom_code(folder: Any, *, python_files: bool = True) -> None:
    """Refuse a checkpoint folder that ships code for ``transformers`` to run, before transformers sees it.

    Refused: an ``auto_map`` (or ``custom_pipelines``) key in any of its JSON configs (that is what makes
    ``from_pretrained`` ask "Do you wish to run the custom code?"), and, when ``python_files`` (a
    checkpoint folder, which ``from_pretrained`` reads as a whole), any ``*.py`` file in the folder. A
    single ``.gguf`` file is loaded from its own bytes, so the Python files of a package that merely
    ships it (``__init__.py``) are not refused; its folder's JSON configs still are checked.
    Every load also passes ``trust_remote_code=False``; this check makes the refusal a typed error
    instead of a prompt on stdin.

    Raises:
        UntrustedCheckpointError: naming the file and the key.
    """
    from pathlib import Path

    from deadir.errors import CheckpointLimitError
    from deadir.io.limits import load_json

    root = Path(folder)
    for py in sorted(root.glob("*.py")) if python_files else ():
        raise UntrustedCheckpointError(
            f"{root}: ships Python code ({py.name}); deadir never runs checkpoint code (trust_remote_code=False)"
        )
    for name in _CODE_CONFIGS:
        cfg = root / name
        if not cfg.is_file():
            continue
        if cfg.stat().st_size > _MAX_CONFIG_BYTES:
            raise CheckpointError(f"{cfg}: {cfg.stat().st_size} bytes, over the {_MAX_CONFIG_BYTES}-byte config limit")
        try:
            data = load_json(cfg.read_bytes(), cfg, "config")
        except CheckpointLimitError:
            raise
        except CheckpointError:
            continue  # transformers reports a malformed config itself; it cannot carry a code reference
        stack = [data]
        while stack:  # iterative walk: a nested auto_map (e.g. under text_config) is refused too
            node = stack.pop()
            if isinstance(node, dict):
                for key in ("auto_map", "custom_pipelines"):
                    if key in node:
                        raise UntrustedCheckpointError(
                            f"{cfg}: has {key!r} = {node[key]!r}: the checkpoint asks to run its own code; "
                            "deadir never runs checkpoint code (trust_remote_code=False)"
                        )
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def tiny_config(model_type: str, **overrides: Any) -> Any:
    """A tiny ``transformers`` config of ``model_type`` (its record's ``tiny_config``), with overrides.

    Raises:
        UnknownNormError: ``model_type`` has no record, or its record no tiny configuration.
    """
    record = arch.by_model_type(model_type)
    if record is None or record.tiny_config is None:
        known = sorted(t for r in arch.all_architectures() if r.tiny_config is not None for t in r.model_types)
        raise UnknownNormError(f"model type {model_type!r}: no tiny config; known: {known}")
    _offline()
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **{**record.tiny_config, **overrides})


def random_init_like(model_or_config: Any, *, seed: int = 0) -> Any:
    """The same architecture at initialisation (no download), in eval mode.

    A model gives its own class, built from its config, in its parameters' dtype and on
    its device; a config gives ``AutoModel.from_config(config)`` (float32, CPU). The
    global torch RNG is left as it was: the seed only drives this initialisation.

    Raises:
        UnknownNormError: neither a transformers model (with ``.config``) nor a config.
    """
    import torch

    _offline()
    from transformers import AutoModel, PretrainedConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model_or_config, PretrainedConfig):
            model = AutoModel.from_config(model_or_config)  # type: ignore[no-untyped-call]
        elif isinstance(model_or_config, torch.nn.Module) and isinstance(
            getattr(model_or_config, "config", None), PretrainedConfig
        ):
            src: Any = model_or_config
            cls: Any = type(src)
            model = cls._from_config(src.config) if hasattr(cls, "_from_config") else cls(src.config)
            p = next(iter(src.parameters()), None)
            if p is not None:
                model = model.to(device=p.device, dtype=p.dtype)
        else:
            raise UnknownNormError(
                f"model_or_config: expected a transformers model or config, got {type(model_or_config).__name__}"
            )
    return model.eval()


def random_model(model_type: str, *, seed: int = 0, **overrides: Any) -> Any:
    """A tiny random-init model of ``model_type`` (base model class, eval mode, float32)."""
    return random_init_like(tiny_config(model_type, **overrides), seed=seed)

# --------------------------------------------------------------------------------------
# loading a local checkpoint
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model loaded by :func:`load_model`, its tokenizer (or None) and where it came from."""

    model: Any
    tokenizer: Any
    source: str


def load_model(path: str, *, dtype: Any = None, device: str = "cpu", seed: int = 0) -> LoadedModel:
    """Load a model for verification, offline.

    ``path`` is ``random:<model_type>`` (a tiny random-init model, the record's ``tiny_config``), a
    local folder with config.json and safetensors (``AutoModel.from_pretrained(folder,
    local_files_only=True)``), or a ``.gguf`` file (``AutoModelForCausalLM.from_pretrained(folder,
    gguf_file=name)``, of which the base model is returned), or a CTranslate2 Whisper
    ``model.bin`` or its folder (:func:`deadir.whisper_ct2.load_ctranslate2_whisper`). Pickled
    weights are refused, never loaded. The tokenizer is loaded from the same place when it is
    there (else None). ``dtype`` is a torch dtype or its name.
    ``device`` is a torch device, or ``"auto"``: accelerate places the layers over every
    GPU and then the host (``device_map="auto"``), for models larger than one device; the
    forward's hooks move activations between devices and deadir's accumulators follow.

    Raises:
        CheckpointError: the path does not exist, is not a checkpoint, or fails to load (named).
        UnknownNormError: ``random:`` with a model type that has no tiny config.
    """
    import torch

    _offline()
    tdtype = None
    if dtype is not None:
        tdtype = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype), None)
        if not isinstance(tdtype, torch.dtype):
            raise CheckpointError(f"dtype: {dtype!r} is not a torch dtype")
    if path.startswith("random:"):
        model = random_model(path.removeprefix("random:"), seed=seed)
        if tdtype is not None:
            model = model.to(dtype=tdtype)
        model = _dispatch_auto(model) if device == "auto" else model.to(device)
        return LoadedModel(model, None, f"{path} (tiny random-init config, seed {seed})")
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    refuse_custom_code(p if p.is_dir() else p.parent, python_files=p.is_dir())
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if tdtype is not None:
        kwargs["dtype"] = tdtype
    if device == "auto":
        kwargs["device_map"] = "auto"
    from deadir.io import detect_format
    from deadir.whisper_ct2 import ctranslate2_whisper_tokenizer, load_ctranslate2_whisper

    # refuses pickled weights and unknown files before transformers sees them
    if detect_format(p) == "ctranslate2":  # Whisper's model.bin (or its folder): a flat binary, not pickle
        whisper: Any = load_ctranslate2_whisper(p)
        model = whisper.to(tdtype) if tdtype is not None else whisper
        folder = p.parent if p.is_file() else p
        tokenizer = ctranslate2_whisper_tokenizer(folder) if (folder / "tokenizer.json").is_file() else None
        model = _dispatch_auto(model) if device == "auto" else model.to(device)
        return LoadedModel(model.eval(), tokenizer, str(p))
    gguf_once = contextlib.ExitStack()
    if p.is_file() and p.suffix == ".gguf":
        gguf_once.enter_context(_one_gguf_parse())
    with gguf_once:
        loaded = _load_transformers(p, path, kwargs, device)
    _return_freed_memory()
    return loaded


def _return_freed_memory() -> None:
    """Hand the load's freed buffers back to the OS (glibc keeps them in its heap otherwise).

    Loading dequantizes and copies every tensor; the freed temporaries stay in the process's
    resident set until ``malloc_trim`` (Gemma 3 270M GGUF: ≈ 0.2 GB). A no-op where there is no glibc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _load_transformers(p: Any, path: str, kwargs: dict[str, Any], device: str) -> LoadedModel:
    """The transformers part of :func:`load_model` (a folder with safetensors, or a .gguf file)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    model: Any
    try:
        if p.is_file() and p.suffix == ".gguf":
            full = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, **kwargs)
            model = getattr(full, "base_model", full)
            tok_kwargs: dict[str, Any] = {"gguf_file": p.name}
            folder = p.parent
        elif p.is_dir():
            if not (p / "config.json").is_file():
                raise CheckpointError(f"{path}: folder has no config.json")
            # safetensors only: a folder with nothing but a pickled pytorch_model.bin is refused, never unpickled
            model = AutoModel.from_pretrained(str(p), use_safetensors=True, **kwargs)
            tok_kwargs, folder = {}, p
        else:
            raise CheckpointError(f"{path}: expected a folder with config.json and safetensors, or a .gguf file")
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        raise CheckpointError(f"{path}: could not be loaded ({type(exc).__name__}: {exc})") from exc
    tokenizer = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False,
                                                  **tok_kwargs)
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        tokenizer = None  # no offline tokenizer: make_inputs falls back to its synthetic distribution
    if device != "auto":  # an accelerate-dispatched model is already placed
        model = model.to(device)
    return LoadedModel(model.eval(), tokenizer, str(p))


#: rows per dequantization step of a GGUF tensor (:func:`_one_gguf_parse`)
_DEQUANT_ROWS = 16384


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """Parse each GGUF file once for the whole load (config, weights, tokenizer); dequantize by row blocks.

    transformers builds a fresh ``gguf.GGUFReader`` for the config, for the weights and for the
    tokenizer; each parses every metadata field in Python, which for a 262k-token vocabulary takes
    10–30 s on a 2-core machine (Gemma 3 270M). The reader only reads its memory map, so one
    instance per file serves all three; the cache (and its maps) is dropped when the load ends.
    Dequantization goes by blocks of :data:`_DEQUANT_ROWS` rows into one output array (the same
    numbers: each row dequantizes on its own), which lowers the load's peak memory.
    """
    import gguf

    module: Any = gguf  # its reader class and dequantizer are swapped for the duration of the load
    original = module.GGUFReader
    dequantize = module.dequantize
    readers: dict[tuple[str, str], Any] = {}

    def by_rows(data: Any, qtype: Any) -> Any:
        # rows dequantize independently (quantization blocks never span rows); a whole 262k-row table at
        # once holds several float32 temporaries of its full size (≈ 0.7 GB each for Gemma 3's embedding)
        rows = _DEQUANT_ROWS
        if getattr(data, "ndim", 0) < 2 or data.shape[0] <= rows:
            return dequantize(data, qtype)
        first = dequantize(data[:rows], qtype)
        out = np.empty((data.shape[0], *first.shape[1:]), dtype=first.dtype)
        out[:rows] = first
        for a in range(rows, data.shape[0], rows):
            out[a : a + rows] = dequantize(data[a : a + rows], qtype)
        return out

    def shared(path: Any, mode: str = "r") -> Any:
        key = (os.path.realpath(os.fspath(path)), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    module.GGUFReader = shared
    module.dequantize = by_rows
    try:
        yield
    finally:
        module.GGUFReader = original
        module.dequantize = dequantize
        readers.clear()


def _dispatch_auto(model: Any) -> Any:
    """Place ``model`` with accelerate's automatic device map (GPUs first, then the host)."""
    from accelerate import dispatch_model, infer_auto_device_map

    return dispatch_model(model, device_map=infer_auto_device_map(model))


__all__ = [
    "LoadedModel", "UntrustedCheckpointError", "load_model", "random_init_like", "random_model", "refuse_custom_code",
    "tiny_config",
]
