"""Real checkpoints: the six offline models of shared/CHECKPOINTS.md, and any a user names.

Each model is loaded in float32 from its own format (safetensors folder, GGUF through
transformers' ``gguf_file=``, Whisper's CTranslate2 file through
``deadir.whisper_ct2.load_ctranslate2_whisper``) and fed its own kind of input: real
English text through the model's own tokenizer (GGUF files embed one), log-mel features
of synthesised speech for Whisper's encoder, and the corpus tokenised by Whisper's own
tokenizer for its decoder. Every model is also measured at random initialisation with
the same config and inputs (its "twin"), for claim (iv).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from integration import harness, inputs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class ExtraCheckpointError(ValueError):
    """A user-named checkpoint could not be resolved offline or has no norm deadir can measure."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row measured from a loaded checkpoint (Whisper gives two: encoder and decoder)."""

    name: str
    final: str
    expected_norm: str
    modality: str
    sites_prefix: str = ""
    blocks_prefix: str = ""
    # What the row is fed: "text" (the model's own tokenizer), "whisper-encoder" (log-mel features),
    # "whisper-decoder" (text through Whisper's tokenizer against one encoded clip).
    feed: str = "text"


@dataclasses.dataclass(frozen=True)
class RealCase:
    """One offline checkpoint (a manifest key of ``integration.fetch_checkpoints``)."""

    key: str
    family: str
    rows: tuple[Row, ...]
    slow: bool = False


REAL_CASES = (
    RealCase("minilm", "bert", (Row("minilm", "encoder.layer.5.output.LayerNorm", "layernorm", "text"),)),
    RealCase("mpnet", "mpnet", (Row("mpnet", "encoder.layer.11.output.LayerNorm", "layernorm", "text"),), slow=True),
    RealCase("whisper-base", "whisper", (
        Row("whisper-base-encoder", "model.encoder.layer_norm", "layernorm", "speech",
            sites_prefix="model.encoder.", blocks_prefix="model.encoder.", feed="whisper-encoder"),
        Row("whisper-base-decoder", "model.decoder.layer_norm", "layernorm", "text",
            sites_prefix="model.decoder.", blocks_prefix="model.decoder.", feed="whisper-decoder"),
    )),
    RealCase("gemma3-270m", "gemma3_text", (Row("gemma3-270m", "model.norm", "rmsnorm", "text"),)),
    RealCase("qwen2.5-0.5b", "qwen2", (Row("qwen2.5-0.5b", "model.norm", "rmsnorm", "text"),), slow=True),
    RealCase("smollm2-135m", "llama", (Row("smollm2-135m", "model.norm", "rmsnorm", "text"),)),
)


@dataclasses.dataclass
class Loaded:
    """A loaded model with what it needs to make inputs."""

    model: Any
    tokenizer: Any
    load_s: float
    fmt: str
    bos_drop: int = 1


DEVIATIONS_FILE = Path(__file__).with_name("deviations.json")


@dataclasses.dataclass(frozen=True)
class Deviations:
    """Where a real checkpoint is known to deviate from the paper's claims (iv) and (v), and why."""

    more_near_null: bool = True
    near_null_reason: str = ""
    expected_drops: tuple[int, ...] = ()
    drops_reason: str = ""
    deeper: bool = True
    depth_reason: str = ""

    def reasons(self) -> dict[str, str]:
        """claim -> recorded reason, for the report."""
        pairs = (("iv", self.near_null_reason), ("iv-depth", self.depth_reason), ("v", self.drops_reason))
        return {k: v for k, v in pairs if v}


def known_deviations(name: str) -> Deviations:
    """The recorded deviations of row ``name`` (``integration/deviations.json``; none when absent).

    Read at test time, so a recorded deviation is data with its reason, not code.
    """
    data = json.loads(DEVIATIONS_FILE.read_text(encoding="utf-8")) if DEVIATIONS_FILE.is_file() else {}
    entry = data.get(name, {})
    return Deviations(
        more_near_null=bool(entry.get("more_near_null", True)),
        near_null_reason=str(entry.get("near_null_reason", "")),
        expected_drops=tuple(int(i) for i in entry.get("expected_drops", ())),
        drops_reason=str(entry.get("drops_reason", "")),
        deeper=bool(entry.get("deeper", True)),
        depth_reason=str(entry.get("depth_reason", "")),
    )


def load_checkpoint(path: str | os.PathLike[str], fmt: str) -> Loaded:
    """Load a checkpoint in float32 with its tokenizer. ``fmt``: "safetensors" (folder), "gguf", "ctranslate2", "hf-id".

    Raises:
        ExtraCheckpointError: the format is unknown or the files cannot be read offline.
    """
    import torch
    import transformers as tf

    t0 = time.perf_counter()
    p = Path(path)
    if fmt == "ctranslate2":
        from deadir.whisper_ct2 import ctranslate2_whisper_tokenizer, load_ctranslate2_whisper

        model = load_ctranslate2_whisper(p)
        tok = ctranslate2_whisper_tokenizer(p.parent if p.is_file() else p)
        return Loaded(model, tok, time.perf_counter() - t0, fmt)
    if fmt == "gguf":
        tok = tf.AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        model = tf.AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32)
        return Loaded(model.eval(), tok, time.perf_counter() - t0, fmt)
    if fmt in ("safetensors", "hf-id"):
        kwargs: dict[str, Any] = {"local_files_only": True}
        tok = tf.AutoTokenizer.from_pretrained(str(path), **kwargs)
        config = tf.AutoConfig.from_pretrained(str(path), **kwargs)
        auto = tf.AutoModelForCausalLM if _is_causal(config) else tf.AutoModel
        model = auto.from_pretrained(str(path), dtype=torch.float32, **kwargs)
        return Loaded(model.eval(), tok, time.perf_counter() - t0, fmt, bos_drop=1)
    raise ExtraCheckpointError(f"{path}: unknown checkpoint format {fmt!r}")


def _is_causal(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForCausalLM") for a in archs)


def tokenizer_fn(tok: Any) -> Callable[[list[str], int], dict[str, Any]]:
    """A ``tokenize(texts, max_len)`` for :func:`integration.inputs.text_batches` (right padding)."""
    if getattr(tok, "pad_token", None) is None:
        tok.pad_token = tok.eos_token if getattr(tok, "eos_token", None) is not None else tok.unk_token
    tok.padding_side = "right"

    def tokenize(texts: list[str], max_len: int) -> dict[str, Any]:
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_len)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return tokenize


def text_forward(model: Any, batch: dict[str, Any]) -> Any:
    """Run the base model (no LM head: the final norm is what is measured, the logits are not needed)."""
    base = getattr(model, "model", None) if hasattr(model, "lm_head") else None
    target = base if base is not None else model
    return target(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def whisper_encoder_batches(model: Any, n_tokens: int) -> Iterator[dict[str, Any]]:
    """Log-mel features of synthesised speech, one 30-s clip (1500 encoder positions) per batch."""
    cfg = model.config
    n_clips = max(1, -(-n_tokens // int(cfg.max_source_positions)))
    feats = inputs.speech_features(n_clips, num_mel_bins=int(cfg.num_mel_bins))
    for i in range(n_clips):
        yield {"input_features": feats[i : i + 1], "keep": None}


def whisper_encoder_forward(model: Any, batch: dict[str, Any]) -> Any:
    return model.get_encoder()(input_features=batch["input_features"])


def whisper_decoder_batches(model: Any, tok: Any, n_tokens: int) -> Iterator[dict[str, Any]]:
    """Corpus text through Whisper's tokenizer after the start-of-transcript prompt, against one speech clip."""
    import torch

    cfg = model.config
    feats = inputs.speech_features(1, num_mel_bins=int(cfg.num_mel_bins), seed=100)
    with torch.inference_mode():
        enc = model.get_encoder()(input_features=feats).last_hidden_state
    prompt = [int(cfg.decoder_start_token_id)]
    max_len = min(128, int(cfg.max_target_positions)) - len(prompt)
    tokenize = tokenizer_fn(tok)

    def with_prompt(texts: list[str], n: int) -> dict[str, Any]:
        e = tokenize(texts, n)
        ids = torch.cat([torch.full((e["input_ids"].shape[0], 1), prompt[0]), e["input_ids"]], dim=1)
        mask = torch.cat([torch.ones_like(e["attention_mask"][:, :1]), e["attention_mask"]], dim=1)
        return {"input_ids": ids, "attention_mask": mask}

    for batch in inputs.text_batches(with_prompt, n_tokens, max_len=max_len, bos_drop=1):
        b = batch["input_ids"].shape[0]
        yield {"encoder_outputs": (enc.expand(b, -1, -1),), "decoder_input_ids": batch["input_ids"],
               "decoder_attention_mask": batch["attention_mask"], "keep": batch["keep"]}


def whisper_decoder_forward(model: Any, batch: dict[str, Any]) -> Any:
    # get_decoder: WhisperForConditionalGeneration (CTranslate2, built-in) and WhisperModel (a saved HF folder)
    return model.get_decoder()(input_ids=batch["decoder_input_ids"], attention_mask=batch["decoder_attention_mask"],
                               encoder_hidden_states=batch["encoder_outputs"][0])


def random_twin(model: Any, seed: int = 0) -> Any:
    """The same architecture and config at random initialisation (:func:`deadir.models.random_init_like`)."""
    from deadir.models import random_init_like

    return random_init_like(model, seed=seed).eval()


def measure_row(loaded: Loaded, row: Row, *, family: str, source: str, n_tokens: int) -> harness.ModelResult:
    """Measure one row of a loaded checkpoint on its own inputs."""
    model, tok = loaded.model, loaded.tokenizer
    if row.feed == "whisper-encoder":
        batches: Any = whisper_encoder_batches(model, n_tokens)
        fwd: Any = whisper_encoder_forward
        desc = "log-mel of synthesised speech (30-s clips)"
    elif row.feed == "whisper-decoder":
        batches, fwd = whisper_decoder_batches(model, tok, n_tokens), whisper_decoder_forward
        desc = f"{inputs.corpus_source()} via Whisper's tokenizer, after <|startoftranscript|>"
    elif row.feed == "text":
        batches = inputs.text_batches(tokenizer_fn(tok), n_tokens, max_len=text_max_len(model),
                                      bos_drop=loaded.bos_drop)
        fwd = text_forward
        desc = f"{inputs.corpus_source()}, own tokenizer, distinct prompts, first position dropped"
    else:
        raise ValueError(f"row {row.name}: unknown feed {row.feed!r}")
    return harness.measure_model(
        model, batches, fwd, name=row.name, source=source, family=family, expected_norm=row.expected_norm,
        modality=row.modality, final_path=row.final, sites_prefix=row.sites_prefix,
        blocks_prefix=row.blocks_prefix, input_desc=desc, load_s=loaded.load_s,
    )


def text_max_len(model: Any, default: int = 128) -> int:
    """Tokens per prompt: 128, or fewer when the model has fewer positions (BERT-likes keep 2 for specials)."""
    cfg = model.config
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if not isinstance(limit, int) or limit <= 0:
        return default
    # RoBERTa/MPNet offset their positions by padding_idx + 1 (the record's position_offset)
    from deadir import arch

    record = arch.by_model_type(str(getattr(cfg, "model_type", "") or ""))
    usable = limit - (int(getattr(cfg, "pad_token_id", 0) or 0) + 1 if record is not None and record.position_offset
                      else 0)
    return max(8, min(default, usable))


def scan_finals(path: str) -> list[dict[str, object]]:
    """The γ-only reading (``deadir.scan``, no model built): kind and dead-channel count of the final norms."""
    from deadir.scan import scan

    rep = scan(path)
    return [{"path": s.site.path, "kind": s.site.spec.kind, "dead": len(s.dead)}
            for s in rep.sites if s.site.role == "final"]


def measure_real(case: RealCase, path: str, fmt: str, *, n_tokens: int, twin_tokens: int) -> list[harness.ModelResult]:
    """Load one checkpoint, measure each of its rows, then its random-init twin on the same kind of input."""
    scanned = scan_finals(path)
    loaded = load_checkpoint(path, fmt)
    out = [measure_row(loaded, row, family=case.family, source="checkpoint", n_tokens=n_tokens) for row in case.rows]
    for res in out:
        res.extra["scan_final"] = scanned
    twin = Loaded(random_twin(loaded.model), loaded.tokenizer, 0.0, fmt, loaded.bos_drop)
    del loaded
    gc.collect()
    for res, row in zip(out, case.rows, strict=True):
        res.twin = measure_row(twin, row, family=case.family, source="random-init twin", n_tokens=twin_tokens)
    return out


# --- user-named checkpoints -------------------------------------------------------------------------


def resolve_extra(spec: str) -> tuple[str, str]:
    """(path, format) of a user-named checkpoint: a folder, a .gguf file, or a Hugging Face id in the local cache.

    Raises:
        ExtraCheckpointError: the path does not exist and the id is not in the local HF cache.
    """
    p = Path(spec).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return str(p), "gguf"
    if p.is_file() and p.name == "model.bin":
        return str(p), "ctranslate2"
    if p.is_dir():
        if (p / "model.bin").is_file() and not (p / "model.safetensors").exists():
            return str(p / "model.bin"), "ctranslate2"
        ggufs = sorted(p.glob("*.gguf"))
        if ggufs and not (p / "config.json").is_file():
            return str(ggufs[0]), "gguf"
        if (p / "config.json").is_file():
            return str(p), "safetensors"
        raise ExtraCheckpointError(f"{spec}: folder has no config.json, .gguf or CTranslate2 model.bin")
    if p.exists():
        raise ExtraCheckpointError(f"{spec}: not a folder, a .gguf file or a CTranslate2 model.bin")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(spec, local_files_only=True)
    except Exception as exc:  # the hub client raises several unrelated types for "not cached"
        raise ExtraCheckpointError(
            f"{spec}: no such file or folder, and not a Hugging Face id in the local cache "
            f"(resolved with local_files_only=True; nothing is downloaded): {type(exc).__name__}"
        ) from None
    return local, "hf-id"


def extra_specs(option_values: list[str] | None) -> list[str]:
    """User checkpoints from ``--checkpoint`` (repeatable) and ``DEADIR_EXTRA_CHECKPOINTS`` (os.pathsep-separated)."""
    env = os.environ.get("DEADIR_EXTRA_CHECKPOINTS", "")
    specs = [s for s in env.split(os.pathsep) if s.strip()] + list(option_values or [])
    return list(dict.fromkeys(s.strip() for s in specs))


def expected_norm_of(model_type: str) -> str:
    """The norm kind an architecture uses ("layernorm" / "rmsnorm"), or "unknown": the ground truth for claim (vi).

    Read from the architecture records, never from the model being judged
    (:func:`deadir.scan.architecture_norm_kind`: Hugging Face model_type with aliases, then GGUF
    architectures; the same records the random-init matrix of ``integration.configs`` reads).
    """
    from deadir.scan import architecture_norm_kind

    return architecture_norm_kind(model_type) or "unknown"


def extra_rows(model: Any, name: str, fmt: str) -> tuple[Row, ...]:
    """The table rows of a user-named checkpoint: Whisper gives an encoder (speech) and a decoder (text) row.

    The expected norm comes from :func:`expected_norm_of` (the architecture), not from the model's own
    final site, so claim (vi) can disagree with what the model contains.
    """
    family = str(getattr(model.config, "model_type", "unknown"))
    expected = expected_norm_of(family)
    if family == "whisper":
        finals = {p.rsplit(".", 2)[-2]: p for p in _final_paths(model)}
        if set(finals) != {"encoder", "decoder"}:
            raise ExtraCheckpointError(f"{name}: Whisper model without encoder and decoder final norms: {finals}")
        out = []
        for side, modality in (("encoder", "speech"), ("decoder", "text")):
            stack = finals[side].removesuffix("layer_norm")
            out.append(Row(f"{name}-{side}", finals[side], expected, modality, sites_prefix=stack,
                           blocks_prefix=stack, feed=f"whisper-{side}"))
        return tuple(out)
    sites = harness.norm_sites(model)
    if not sites:
        raise ExtraCheckpointError(f"{name}: no LayerNorm/RMSNorm deadir can read in {type(model).__name__}")
    return (Row(name, _final_site(model, sites), expected, "text"),)


def measure_extra(spec: str, *, n_tokens: int, twin_tokens: int) -> list[harness.ModelResult]:
    """Measure a user-named checkpoint row by row (see :func:`extra_rows`), then its random-init twin."""
    from deadir.errors import DeadirError

    path, fmt = resolve_extra(spec)
    loaded = load_checkpoint(path, fmt)
    model = loaded.model
    family = str(getattr(model.config, "model_type", "unknown"))
    rows = extra_rows(model, extra_name(spec), fmt)
    try:
        scanned: list[dict[str, object]] | None = scan_finals(path)
    except DeadirError:  # the γ-only reader does not know this layout: (vi) rests on the module probe
        scanned = None
    out = [measure_row(loaded, row, family=family, source=f"user ({fmt})", n_tokens=n_tokens) for row in rows]
    twin = Loaded(random_twin(model), loaded.tokenizer, 0.0, fmt, loaded.bos_drop)
    del loaded, model
    gc.collect()
    for res, row in zip(out, rows, strict=True):
        if scanned is not None:
            res.extra["scan_final"] = [s for s in scanned if _same_stack(str(s["path"]), row.final)]
        res.twin = measure_row(twin, row, family=family, source="random-init twin", n_tokens=twin_tokens)
    return out


def _same_stack(scanned_path: str, final: str) -> bool:
    """Whether a scanned final site (tensor prefix, maybe "/"-separated) is the row's final norm's stack."""
    for side in ("encoder", "decoder"):
        if side in final:
            return side in scanned_path
    return True


def _final_paths(model: Any) -> list[str]:
    from deadir.models import final_norm

    return [s.path for s in final_norm(model)]


def extra_row_names(spec: str) -> list[str]:
    """The row names :func:`measure_extra` will produce for ``spec``, read without loading the model."""
    path, fmt = resolve_extra(spec)
    name = extra_name(spec)
    model_type = "whisper" if fmt == "ctranslate2" else ""
    config = Path(path) / "config.json"
    if fmt in ("safetensors", "hf-id") and config.is_file():
        try:
            model_type = str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
        except (OSError, ValueError):
            model_type = ""
    return [f"{name}-encoder", f"{name}-decoder"] if model_type == "whisper" else [name]


def extra_name(spec: str) -> str:
    """The table name of a user-named checkpoint: "user:" + its file/folder name (or the HF id)."""
    p = Path(spec).expanduser()
    return f"user:{p.name if p.exists() else spec}"


def _final_site(model: Any, sites: list[tuple[str, Any, Any]]) -> str:
    from deadir.models import final_norm

    paths = {p for p, _, _ in sites}
    finals = [s.path for s in final_norm(model) if s.path in paths]
    return str(finals[-1]) if finals else str(sites[-1][0])
