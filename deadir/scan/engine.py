"""The γ-only read: every normalisation site of a checkpoint from its norm tensors alone.

``scan(path)`` lists the tensors of a checkpoint from its headers, picks the norm tensors by
the architecture record's naming rules (:mod:`deadir.arch`, applied in
:mod:`deadir.scan.naming`), reads those and nothing else, and reports per site the predicted
dead direction v = γ⁻¹/‖γ⁻¹‖ (mean-centring kinds), or "no kernel" (RMSNorm, affine-only),
the spread of |γ|, dead channels and degenerate (zero) scales. No model is instantiated, and
neither time nor memory depends on the size of the matmul weights: only the norm tensors'
bytes are read (``ScanReport.bytes_read``).

Formats: Hugging Face safetensors (single file or sharded index; the tensor name minus
``.weight`` is the module path, any leading prefix such as ``model.`` accepted), GGUF
(llama.cpp naming, :data:`deadir.arch.GGUF_RULES`; the record comes from
``general.architecture``), CTranslate2 Whisper ``model.bin``. GGUF files of the Gemma family
store the *effective* scale 1 + w (llama.cpp's converter adds 1 to every ``*norm.weight``),
while Hugging Face safetensors store w: sites read from such a GGUF are given weight =
stored − 1 and offset 1 (exact in float64 for float32 values), so their NormSpec equals the
one the Hugging Face checkpoint gives. A family whose norms have no parameters (OLMo) has its
sites placed by the record with γ = 1, and the report says so.

Roles and stacks agree with :func:`deadir.find_norms` on the same model: tests/test_arch.py
checks it for every architecture record on a saved random-init checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from deadir import arch as arch_records
from deadir.arch import Role, Stack
from deadir.arrays import FloatArray, as_float64
from deadir.direction import dead_channels, inverse_scale_direction, live_fraction
from deadir.errors import CheckpointError, ConfigMismatchError, DegenerateScaleError, InputShapeError
from deadir.io import Checkpoint, TensorInfo, open_checkpoint
from deadir.io.gguf import check_hidden_norm_lengths
from deadir.io.onnx import is_onnx_path, read_onnx_norms, site_roles
from deadir.models.sites import Site, find_norms
from deadir.norms import NormKind, NormSpec
from deadir.precision import DEAD_CHANNEL_REL_TOL
from deadir.scan.naming import Candidate, candidates, hidden_size
from deadir.scan.report import ScanReport, ScanSite

__all__ = ["DEFAULT_DEAD_REL_TOL", "ConfigMismatchError", "architecture_norm_kind", "scan"]

DEFAULT_DEAD_REL_TOL = DEAD_CHANNEL_REL_TOL
"""A channel is dead when |γᵢ| ≤ 1e-6 · median |γ|: :data:`deadir.precision.DEAD_CHANNEL_REL_TOL`, the one
threshold scan, verify and fisher share (it says why 1e-6)."""

Reader = Callable[[Sequence[str]], dict[str, FloatArray]]


# ----------------------------------------------------------------------------- building sites


def _build_site(
    c: Candidate,
    values: Mapping[str, FloatArray],
    infos: Mapping[str, TensorInfo],
    *,
    gguf_stores_effective: bool,
    dead_rel_tol: float,
    where: str,
    eps_override: float | None = None,
) -> ScanSite:
    if not c.weight:  # a non-parametric norm (OLMo): γ = 1, β = 0, nothing stored
        spec = NormSpec(c.kind, None, None, c.eps, c.weight_offset, d=c.d, source="architecture record")
        site = Site(c.prefix, spec, c.role, c.stack, c.block, "non-parametric (no tensors)", False)
        return _measure(site, "", None, "-", False, c.kind_source, c.eps_source, dead_rel_tol)
    w = np.asarray(values[c.weight], dtype=np.float64).reshape(-1)
    if w.ndim != 1 or w.size == 0 or len(infos[c.weight].shape) != 1:
        raise CheckpointError(f"{where}: norm tensor {c.weight!r} has shape {infos[c.weight].shape}, expected 1-D")
    bad = np.flatnonzero(~np.isfinite(w))
    if bad.size:
        raise CheckpointError(f"{where}: norm tensor {c.weight!r} has NaN or infinite entries at {bad[:20].tolist()}")
    b = None
    if c.bias is not None:
        b = np.asarray(values[c.bias], dtype=np.float64).reshape(-1)
        if b.shape != w.shape:
            raise CheckpointError(f"{where}: bias {c.bias!r} has shape {b.shape}, its weight {c.weight!r} {w.shape}")
        if not np.all(np.isfinite(b)):
            raise CheckpointError(f"{where}: norm bias {c.bias!r} has NaN or infinite entries")
    if gguf_stores_effective and c.weight_offset == 1.0:
        # GGUF holds 1 + w; store w with offset 1 like the HF checkpoint. Exact: a float32
        # value minus 1 is a float64 without rounding, and adding 1 back restores it.
        w = w - 1.0
    spec = NormSpec(c.kind, w, b, c.eps if eps_override is None else eps_override, c.weight_offset,
                    dtype=infos[c.weight].dtype.lower(), source="checkpoint tensor")  # fmt: skip
    site = Site(c.prefix, spec, c.role, c.stack, c.block, "checkpoint tensor", False)
    return _measure(site, c.weight, c.bias, infos[c.weight].dtype, c.guessed, c.kind_source,
                    c.eps_source if eps_override is None else "module", dead_rel_tol)  # fmt: skip


def _measure(
    site: Site, weight_name: str, bias_name: str | None, stored_dtype: str, guessed: bool, kind_source: str,
    eps_source: str, dead_rel_tol: float,
) -> ScanSite:
    spec = site.spec
    gamma = spec.gamma
    absg = np.abs(gamma)
    degenerate = tuple(int(i) for i in np.flatnonzero(gamma == 0.0))
    dead = tuple(int(i) for i in dead_channels(gamma, rel_tol=dead_rel_tol))
    direction: FloatArray | None = None
    live: float | None = None
    if spec.kind == "layernorm" or (spec.kind == "groupnorm" and spec.groups == 1):
        try:
            direction = inverse_scale_direction(gamma)
            kernel = "inverse-scale"
        except DegenerateScaleError as exc:  # γᵢ = 0: eᵢ null, γ⁻¹ undefined (T6)
            degenerate = tuple(exc.indices)
            kernel = "zero-scale"
        live = live_fraction(gamma, np.asarray(dead, dtype=np.intp))
    elif spec.kind == "groupnorm":
        kernel = "zero-scale" if degenerate else "per-group"
        live = live_fraction(gamma, np.asarray(dead, dtype=np.intp)) if not degenerate else 0.0
    elif spec.kind == "scale-then-centre":
        kernel, direction = "ones", np.full(spec.size, 1.0 / math.sqrt(spec.size))
    else:
        kernel = "none"
    gmin = float(absg.min())
    return ScanSite(
        site, weight_name, bias_name, stored_dtype, guessed, kind_source, eps_source, kernel, direction,
        degenerate, dead, live, float(np.median(absg)), gmin, float(absg.max()), int(np.argmin(absg)),
        float(absg.max()) / gmin if gmin > 0 else math.inf,
    )  # fmt: skip


_WIDTH_ROLES = ("final", "block-input")


def _check_consistency(sites: Sequence[ScanSite], config: Mapping[str, Any], arch_name: str | None,
                       where: str) -> None:
    """Refuse a checkpoint whose tensors contradict what its config says (never a silent wrong verdict).

    * a bias tensor on a site the architecture calls RMSNorm: the tensors look like a LayerNorm
      (e.g. GPT-NeoX weights under a config that says ``llama``), so the predicted "no kernel"
      would be wrong;
    * a residual-stream norm (final or block-input, single-stack text/speech model) whose length
      differs from the config's hidden size.

    Raises:
        ConfigMismatchError: naming the site, the tensors and the config key.
    """
    for s in sites:
        if s.site.spec.kind == "rmsnorm" and s.bias_name and not s.guessed:
            raise ConfigMismatchError(
                f"{where}: site {s.site.path!r} has a bias tensor {s.bias_name!r}, but the architecture "
                f"{arch_name!r} from the config makes it an RMSNorm (which has no bias): the tensors look like a "
                "LayerNorm; fix the config or pass --arch with the architecture the weights belong to"
            )
    if any(k in config for k in ("text_config", "vision_config", "audio_config")):
        return  # multi-tower models have one width per tower
    hidden = hidden_size(config, arch_name or "")
    if hidden is None:
        return
    for s in sites:
        site = s.site
        if site.role in _WIDTH_ROLES and site.stack != "vision" and site.spec.kind != "affine-only" \
                and site.spec.size != hidden:
            raise ConfigMismatchError(
                f"{where}: {site.role} norm {site.path!r} has {site.spec.size} entries but the config's hidden size is "
                f"{hidden}: the norm tensor and the config disagree (truncated or mislabelled tensor?)"
            )


# ----------------------------------------------------------------------------- sources


@dataclasses.dataclass
class _Source:
    format: str
    infos: Mapping[str, TensorInfo]
    config: dict[str, Any]
    read: Reader
    config_warning: str | None = None


def _read_tensors(checkpoint: Checkpoint, names: Sequence[str],
                  infos: Mapping[str, TensorInfo] | None = None) -> dict[str, FloatArray]:
    """All tensor reads of a safetensors / CTranslate2 checkpoint go through here (tests count what is asked for)."""
    return checkpoint.read(names)


def _open_file(path: str | os.PathLike[str]) -> _Source:
    checkpoint = open_checkpoint(path)  # one header walk for names, metadata and offsets
    if checkpoint.format == "gguf":
        return _Source(checkpoint.format, checkpoint.tensors, checkpoint.config,
                       lambda names: _read_tensors_gguf(checkpoint, names))
    warning = None
    if checkpoint.config_file is None:
        warning = ("no config.json next to the weights: architecture unknown "
                   f"({checkpoint.path.parent / 'config.json'} does not exist)")
    return _Source(checkpoint.format, checkpoint.tensors, checkpoint.config,
                   lambda names: _read_tensors(checkpoint, names, checkpoint.tensors), warning)


def _read_tensors_gguf(checkpoint: Checkpoint, names: Sequence[str]) -> dict[str, FloatArray]:
    """GGUF reads by offset (one positioned read of each tensor's own bytes), residual norms checked
    against ``<arch>.embedding_length`` first."""
    check_hidden_norm_lengths(checkpoint, names)
    return checkpoint.read(names)


def _arch_of(source: _Source, names: Mapping[str, Any]) -> str:
    if source.format == "gguf":
        arch = source.config.get("general.architecture")
        return str(arch) if isinstance(arch, str) else ""
    if source.format == "ctranslate2":
        return "whisper" if "encoder/conv1/weight" in names and any(n.startswith("decoder/") for n in names) else (
            "ctranslate2")
    model_type = source.config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise CheckpointError(f"config.json: model_type is {model_type!r}, expected a string")
    return model_type or ""


# ----------------------------------------------------------------------------- public entry


def architecture_norm_kind(arch: str) -> str | None:
    """The norm kind ("layernorm", "rmsnorm", "affine-only") an architecture record gives, or None if unknown.

    ``arch`` is a Hugging Face ``model_type`` (aliases included) or a GGUF architecture name;
    the answer comes from the same records (:mod:`deadir.arch`) that :func:`scan` reads checkpoints with.
    """
    record = arch_records.by_model_type(arch) or arch_records.by_gguf(arch)
    return None if record is None else str(record.norm_kind)


def scan(
    path_or_model: str | os.PathLike[str] | Any,
    *,
    arch: str | None = None,
    dead_rel_tol: float = DEFAULT_DEAD_REL_TOL,
) -> ScanReport:
    """Read every normalisation site of a checkpoint from its norm tensors alone.

    Args:
        path_or_model: a folder (config.json + model.safetensors or a sharded
            model.safetensors.index.json), a single .safetensors file, a .gguf file, a
            CTranslate2 Whisper model.bin (or its folder) — or an instantiated torch
            model, whose norm parameters are read instead (through deadir.find_norms).
        arch: override the architecture (a model_type / GGUF architecture name), e.g.
            for a bare .safetensors file without config.json.
        dead_rel_tol: dead channels are |γᵢ| ≤ dead_rel_tol · median |γ| (see
            :data:`DEFAULT_DEAD_REL_TOL`).

    Returns:
        A :class:`ScanReport`; zero scales are reported per site (``degenerate``), never raised.

    Raises:
        CheckpointError: missing path, unknown/pickled/corrupt/truncated file, an index
            pointing at a missing shard, a config with an invalid ε or model_type, a norm
            tensor that is not 1-D or holds NaN/inf, or a checkpoint with no norm tensors.
        InputShapeError: dead_rel_tol outside (0, 1).
    """
    if not (math.isfinite(dead_rel_tol) and 0.0 < dead_rel_tol < 1.0):
        raise InputShapeError(f"dead_rel_tol: must lie in (0, 1), got {dead_rel_tol!r}")
    t0 = time.perf_counter()
    if hasattr(path_or_model, "named_parameters"):
        return _scan_model(path_or_model, arch=arch, dead_rel_tol=dead_rel_tol, t0=t0)
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise CheckpointError(
            f"scan: expected a checkpoint path or a torch model, got {type(path_or_model).__name__}"
        )
    where = str(path_or_model)
    if is_onnx_path(path_or_model):
        return _scan_onnx(path_or_model, dead_rel_tol=dead_rel_tol, t0=t0)
    source = _open_file(path_or_model)
    arch_name = arch if arch is not None else _arch_of(source, source.infos)
    cands, known, warnings = candidates(source.infos, source.format, arch_name, source.config, where)
    if source.config_warning:
        warnings.insert(0, source.config_warning)
    if not cands:
        raise CheckpointError(
            f"{where}: no norm tensors found among {len(source.infos)} tensors "
            f"(format {source.format}, architecture {arch_name or 'unknown'}); nothing to scan"
        )
    names = list(dict.fromkeys(n for c in cands for n in (c.weight, c.bias) if n))
    values = source.read(names) if names else {}
    record = arch_records.by_gguf(arch_name) if source.format == "gguf" else None
    gguf_effective = record is not None and record.gguf_stores_effective
    sites = tuple(
        _build_site(c, values, source.infos, gguf_stores_effective=gguf_effective, dead_rel_tol=dead_rel_tol,
                    where=where)
        for c in cands
    )  # fmt: skip
    _check_consistency(sites, source.config, arch_name, where)
    return ScanReport(
        source=where, format=source.format, arch=arch_name or "unknown", arch_known=known, sites=sites,
        dead_rel_tol=dead_rel_tol, n_tensors=len(source.infos),
        bytes_total=sum(i.nbytes for i in source.infos.values() if i.alias_of is None),
        tensors_read=tuple(names), bytes_read=sum(source.infos[n].nbytes for n in names),
        elapsed_s=time.perf_counter() - t0, warnings=tuple(warnings),
    )  # fmt: skip


def _scan_onnx(path: str | os.PathLike[str], *, dead_rel_tol: float, t0: float) -> ScanReport:
    """scan() of an ONNX graph: sites recognised from the graph's own arithmetic (:mod:`deadir.io.onnx`),
    γ and β from its initializers; nothing is run. Unrecognised normalisation-like nodes are warnings."""
    norms = read_onnx_norms(path)
    if not norms.sites:
        raise CheckpointError(f"{path}: no LayerNorm/RMSNorm site recognised in the ONNX graph"
                              + (f" ({len(norms.unrecognised)} unrecognised)" if norms.unrecognised else ""))
    sites = tuple(
        _measure(
            Site(s.path, NormSpec(cast(NormKind, s.kind), s.weight, s.bias, s.eps, dtype=s.stored_dtype.lower(),
                                  source="onnx graph"),
                 cast(Role, role), cast(Stack, stack), block, f"onnx {s.recognised_as}", False),
            s.weight_name or "", s.bias_name, s.stored_dtype, False, f"onnx graph: {s.recognised_as}", "onnx graph",
            dead_rel_tol,
        )
        for s, (role, stack, block) in zip(norms.sites, site_roles(norms), strict=True)
    )
    return ScanReport(
        source=str(path), format="onnx", arch="onnx", arch_known=True, sites=sites, dead_rel_tol=dead_rel_tol,
        n_tensors=norms.n_initializers, bytes_total=norms.bytes_initializers, tensors_read=norms.tensors_read,
        bytes_read=norms.bytes_read, elapsed_s=time.perf_counter() - t0,
        warnings=tuple(f"unrecognised {u.node} ({u.op_type}): {u.reason}" for u in norms.unrecognised),
    )


def _scan_model(model: Any, *, arch: str | None, dead_rel_tol: float, t0: float) -> ScanReport:
    """scan() of an instantiated model: the norm modules' parameters are read, no forward pass.

    Without an ``arch`` override the sites are :func:`deadir.find_norms`' (so scan and verify
    agree on an instantiated model: known norm classes are read from their parameters, unknown
    norm-like modules probed); with one, the parameter names go through that record's naming
    rules as a checkpoint's would, and ε is taken from the module (``variance_epsilon`` /
    ``eps``) when it has one.
    """
    where = type(model).__name__
    params = dict(model.named_parameters(remove_duplicate=False))
    config_obj = getattr(model, "config", None)
    to_dict = getattr(config_obj, "to_dict", None)
    config: dict[str, Any] = dict(to_dict()) if callable(to_dict) else {}
    arch_name = arch if arch is not None else str(config.get("model_type") or "")
    infos = {
        n: TensorInfo(n, tuple(int(s) for s in p.shape), str(p.dtype).removeprefix("torch.").upper(),
                                  Path(where), int(p.numel() * p.element_size()), 0)
        for n, p in params.items()
    }  # fmt: skip
    sites: list[ScanSite] = []
    names: list[str] = []
    warnings: list[str] = []
    if arch is None:
        known = True
        for site in find_norms(model):
            weight = f"{site.path}.weight" if f"{site.path}.weight" in infos else ""
            bias = f"{site.path}.bias" if f"{site.path}.bias" in infos else None
            names.extend(n for n in (weight, bias) if n)
            sites.append(_measure(site, weight, bias, infos[weight].dtype if weight else "-", site.probed,
                                  "find_norms (probed)" if site.probed else "find_norms", "module", dead_rel_tol))
    else:
        cands, known, warnings = candidates(infos, "model", arch_name, config, where)
        for c in cands:
            module = _submodule(model, c.prefix)
            eps = getattr(module, "variance_epsilon", getattr(module, "eps", None)) if module is not None else None
            values = {n: as_float64(params[n], name=n) for n in (c.weight, c.bias) if n}
            names.extend(values)
            sites.append(_build_site(
                c, values, infos, gguf_stores_effective=False, dead_rel_tol=dead_rel_tol, where=where,
                eps_override=float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else None,
            ))  # fmt: skip
    if not sites:
        raise CheckpointError(f"{where}: no norm parameters found among {len(params)} parameters")
    return ScanReport(
        source=where, format="model", arch=arch_name or "unknown", arch_known=known, sites=tuple(sites),
        dead_rel_tol=dead_rel_tol, n_tensors=len(infos), bytes_total=sum(i.nbytes for i in infos.values()),
        tensors_read=tuple(names), bytes_read=sum(infos[n].nbytes for n in names),
        elapsed_s=time.perf_counter() - t0, warnings=tuple(warnings),
    )  # fmt: skip


def _submodule(model: Any, path: str) -> Any:
    try:
        return model.get_submodule(path)
    except (AttributeError, KeyError):
        return None
