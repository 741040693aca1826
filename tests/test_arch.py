"""Every architecture record against the model it describes.

For each record of :mod:`deadir.arch` with a tiny configuration: instantiate it at random init
(``AutoModel.from_config``, offline), give its norms distinct non-unit gains, save it as
safetensors (and as GGUF where the record names a GGUF architecture, with llama.cpp's own
tensor-name map from the ``gguf`` package), and check that ``scan`` (tensor names + the record's
naming rules, no model) finds exactly the sites ``find_norms`` (module classes + the record's
post-LN and final rules) finds — same paths, kinds, offsets, roles, stacks, blocks, sizes, ε and
γ — and that the record's Fisher plan names exactly the norms of the stream (or the record has
no plan). GGUF-only records (no transformers class) are checked on a GGUF file of llama.cpp names.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from deadir import arch
from deadir.arch import Architecture
from deadir.models import find_norms, tiny_config
from deadir.models.sites import Site
from deadir.scan import ScanReport, scan

RECORDS = arch.all_architectures()
TINY = [r for r in RECORDS if r.tiny_config is not None]
GGUF_ONLY = [r for r in RECORDS if r.tiny_config is None]
GGUF_TESTED = [r for r in TINY if r.gguf_names]


def test_there_are_at_least_40_records_each_with_a_tiny_config_or_a_reason() -> None:
    assert len(TINY) >= 40
    assert all(r.no_tiny_reason for r in GGUF_ONLY)
    assert all(r.gguf_names for r in GGUF_ONLY)  # readable from somewhere


def test_every_architecture_named_before_the_redesign_has_a_record() -> None:
    """The union of the old tables (scan.HF_ARCHS + GGUF lists, models.FINAL_NORMS / TINY_CONFIGS /
    ENCODER_TYPES / VISION_TYPES, fisher.ARCHITECTURES, integration/configs.py) and the issue's list."""
    model_types = {
        "gpt2", "opt", "gpt_neox", "gptj", "gpt_neo", "bloom", "falcon", "phi", "phi3", "llama", "mistral",
        "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3", "gemma3_text", "t5",
        "mt5", "umt5", "olmo", "olmo2", "granite", "bert", "roberta", "xlm-roberta", "camembert", "distilbert",
        "electra", "albert", "deberta", "deberta-v2", "mobilebert", "mpnet", "modernbert", "bart", "marian", "whisper",
        "vit", "deit", "beit", "dinov2", "swin", "convnext", "clip", "clip_text_model", "clip_vision_model", "siglip",
        "siglip_vision_model",
    }  # fmt: skip
    gguf_names = {
        "llama", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "olmo2", "phi3", "t5", "t5encoder", "granite", "deepseek2",
        "command-r", "internlm2", "minicpm", "exaone", "gemma", "gemma2", "gemma3", "gpt2", "gptneox", "bloom",
        "falcon", "phi2", "bert", "nomic-bert", "jina-bert-v2", "starcoder", "stablelm", "mpt", "gptj",
    }  # fmt: skip
    assert {t for t in model_types if arch.by_model_type(t) is None} == set()
    assert {g for g in gguf_names if arch.by_gguf(g) is None} == set()


def test_lookups_and_unknown_names() -> None:
    assert arch.by_model_type("xlm-roberta") is arch.by_model_type("roberta")
    assert arch.by_gguf("gemma3") is arch.by_model_type("gemma3_text")
    assert arch.by_model_type("no-such-type") is None and arch.by_gguf("no-such") is None
    with pytest.raises(arch.UnknownArchitectureError, match="no-such-type"):
        arch.get("no-such-type")
    assert arch.get("mobilebert").norm_kind == "affine-only"
    assert arch.get("cohere").norm_kind == "layernorm"  # centres, although llama.cpp files it with RMSNorm models


# ----------------------------------------------------------------------------- helpers


def _model(record: Architecture) -> Any:
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(record.model_type)).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct, non-unit gains (and shifts) so that directions are informative
        for site in find_norms(model):
            module = model.get_submodule(site.path)
            for name, scale in (("weight", (0.5, 2.0)), ("bias", (-0.5, 0.5))):
                p = getattr(module, name, None)
                if isinstance(p, torch.nn.Parameter):
                    p.copy_(torch.empty(p.shape).uniform_(*scale, generator=gen))
    return model


def _write_safetensors(folder: Path, model: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.config.to_dict()))
    state = {k: v.detach().to(torch.float32).numpy().copy() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder


def _describe(site: Site) -> tuple[Any, ...]:
    return (site.spec.kind, site.spec.weight_offset, site.role, site.stack, site.block, site.spec.size)


def _assert_same_sites(report: ScanReport, found: list[Site], paths: Mapping[str, str] | None = None, *,
                       stores_effective: bool = False) -> None:
    """scan's sites (renamed by ``paths``, scan path → model path) equal find_norms' sites.

    ``stores_effective``: the file holds float32(1 + w) (llama.cpp's Gemma GGUF), so the effective
    γ is what both sides must agree on, to the bit.
    """
    rename = dict(paths or {})
    scanned = {rename.get(s.site.path, s.site.path): s for s in report.sites}
    by_path = {s.path: s for s in found}
    assert sorted(scanned) == sorted(by_path), (sorted(set(scanned) ^ set(by_path)), report.warnings)
    for path, s in scanned.items():
        f = by_path[path]
        assert _describe(s.site) == _describe(f), (path, _describe(s.site), _describe(f))
        assert s.site.spec.eps == pytest.approx(f.spec.eps, rel=1e-6), (path, s.eps_source)
        if stores_effective:
            np.testing.assert_array_equal(s.gamma, f.spec.gamma.astype(np.float32).astype(np.float64), err_msg=path)
        pairs = ((s.site.spec.bias, f.spec.bias),) if stores_effective else (
            (s.site.spec.weight, f.spec.weight), (s.site.spec.bias, f.spec.bias))
        for got, want in pairs:
            assert (got is None) == (want is None), path
            if got is not None and want is not None:  # the stored float32 values, both sides
                np.testing.assert_array_equal(got, want.astype(np.float32).astype(np.float64), err_msg=path)
        assert not s.guessed, (path, s.kind_source)


# ----------------------------------------------------------------------------- the walk


@pytest.mark.parametrize("record", TINY, ids=lambda r: r.name)
def test_scan_of_a_saved_checkpoint_equals_find_norms(tmp_path: Path, record: Architecture) -> None:
    model = _model(record)
    found = find_norms(model)
    assert found and not any(s.probed for s in found), [s.path for s in found if s.probed]
    assert {s.spec.kind for s in found if s.stack != "vision" or record.norm_kind == "layernorm"} <= {
        record.norm_kind, "layernorm"}
    report = scan(_write_safetensors(tmp_path / record.name, model))
    assert report.arch_known
    _assert_same_sites(report, found)
    if record.nonparametric:  # OLMo: γ = 1 read from the record, and said so
        assert report.bytes_read == 0 and all(s.weight_name == "" for s in report.sites)
        assert any("no parameters" in w for w in report.warnings)
        assert all(s.kernel == "inverse-scale" for s in report.sites)


@pytest.mark.parametrize("record", [r for r in TINY if r.fisher_plan is not None], ids=lambda r: r.name)
def test_fisher_plan_names_the_norms_of_the_stream(record: Architecture) -> None:
    model = _model(record)
    modules = dict(model.named_modules())
    assert record.fisher_plan is not None
    plan = record.fisher_plan(modules, model.config)
    stream = {s.path for s in find_norms(model) if s.role not in ("attention-qk", "other")}
    assert plan.norms() == stream
    assert plan.modules() <= set(modules), sorted(plan.modules() - set(modules))


def test_a_record_without_a_fisher_plan_is_refused_by_name() -> None:
    from deadir.fisher import UnsupportedArchitectureError, plan_for

    without = [r for r in TINY if r.fisher_plan is None]
    assert without and len(without) < len(TINY)
    model = _model(arch.get("mixtral"))
    with pytest.raises(UnsupportedArchitectureError, match="'mixtral' has no consumer table"):
        plan_for(model)


# ----------------------------------------------------------------------------- GGUF

_PREFIXES = ("", "model.", "transformer.", "gpt_neox.", "bert.", "model.decoder.", "model.language_model.")


def _gguf_map(record: Architecture, gguf_name: str, n_blocks: int) -> Any:
    import gguf

    by_name = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    return gguf.get_tensor_name_map(by_name[gguf_name], n_blocks)


def _to_gguf_name(name_map: Any, path: str) -> str | None:
    for prefix in _PREFIXES:
        got = name_map.get_name(prefix + path)
        if got is not None:
            return str(got)
    return None


def _write_gguf(path: Path, record: Architecture, gguf_name: str, model: Any, found: list[Site]) -> dict[str, str]:
    """A GGUF of the model's norm tensors under llama.cpp's names (+ one matmul per block); gguf name → model path."""
    import gguf

    n_blocks = 1 + max(s.block for s in found if s.block is not None)
    name_map = _gguf_map(record, gguf_name, n_blocks)
    writer = gguf.GGUFWriter(str(path), gguf_name)
    writer.add_block_count(n_blocks)
    hidden = max(s.spec.size for s in found)
    writer.add_embedding_length(hidden)
    eps = {s.spec.eps for s in found}
    assert len(eps) == 1, eps  # one ε per GGUF architecture
    if record.norm_kind == "rmsnorm":
        writer.add_layer_norm_rms_eps(eps.pop())
    else:
        writer.add_layer_norm_eps(eps.pop())
    back: dict[str, str] = {}
    # a non-parametric family has no tensors for llama.cpp to name: the record pairs its two templates
    templates = dict(zip(record.nonparametric_sites, record.gguf_nonparametric_sites, strict=True))
    for site in found:
        name = _to_gguf_name(name_map, site.path) if not record.nonparametric else templates.get(
            site.path if site.block is None else site.path.replace(f".{site.block}.", ".{N}.", 1), "").replace(
            "{N}", str(site.block))
        assert name is not None, f"{site.path}: llama.cpp's {gguf_name} map has no name for it"
        back[name] = site.path
        if site.spec.weight is not None:
            stored = site.spec.weight + (1.0 if record.gguf_stores_effective else 0.0)  # llama.cpp stores 1 + w
            writer.add_tensor(f"{name}.weight", np.ascontiguousarray(stored, dtype=np.float32))
        if site.spec.bias is not None:
            writer.add_tensor(f"{name}.bias", np.ascontiguousarray(site.spec.bias, dtype=np.float32))
    for i in range(n_blocks):  # a matmul per block: the block count a non-parametric family is placed by
        writer.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((hidden, hidden), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return back


@pytest.mark.parametrize("record", GGUF_TESTED, ids=lambda r: r.name)
def test_scan_of_a_gguf_equals_find_norms(tmp_path: Path, record: Architecture) -> None:
    model = _model(record)
    found = find_norms(model)
    gguf_name = record.gguf_names[0]
    back = _write_gguf(tmp_path / f"{record.name}.gguf", record, gguf_name, model, found)
    report = scan(tmp_path / f"{record.name}.gguf")
    assert report.arch == gguf_name and report.arch_known
    _assert_same_sites(report, found, back, stores_effective=record.gguf_stores_effective)


@pytest.mark.parametrize("record", GGUF_ONLY, ids=lambda r: r.name)
def test_gguf_only_record_reads_llama_cpp_names(tmp_path: Path, record: Architecture) -> None:
    import gguf

    d, rng = 16, np.random.default_rng(0)
    path = tmp_path / f"{record.name}.gguf"
    writer = gguf.GGUFWriter(str(path), record.gguf_names[0])
    writer.add_block_count(2)
    writer.add_embedding_length(d)
    names = ["output_norm", "blk.0.attn_norm", "blk.0.ffn_norm", "blk.1.attn_norm", "blk.1.ffn_norm"]
    for name in names:
        writer.add_tensor(f"{name}.weight", rng.uniform(0.5, 2.0, d).astype(np.float32))
        if record.norm_kind == "layernorm":
            writer.add_tensor(f"{name}.bias", rng.standard_normal(d).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report = scan(path)
    assert report.arch_known and sorted(s.site.path for s in report.sites) == sorted(names)
    assert {s.site.spec.kind for s in report.sites} == {record.norm_kind}
    assert {s.site.stack for s in report.sites} == {record.stack}
    assert [s.site.path for s in report.sites if s.site.role == "final"] == ["output_norm"]


# ----------------------------------------------------------------------------- negative controls


def test_a_wrong_record_is_caught_by_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted wrong records (a wrong role, a missing rule, a wrong kind, a wrong offset): the same comparison fails."""
    record = arch.get("gemma2")
    model = _model(record)
    found = find_norms(model)
    folder = _write_safetensors(tmp_path / "gemma2", model)
    rules = record.rules
    mutants = [
        dataclasses.replace(record, rules=tuple(dataclasses.replace(r, role="block-input") for r in rules)),
        dataclasses.replace(record, rules=rules[1:]),
        dataclasses.replace(record, norm_kind="layernorm"),
        dataclasses.replace(record, weight_offset=0.0),
    ]
    for mutant in mutants:
        monkeypatch.setattr(arch, "by_model_type", lambda t, m=mutant: m if t == "gemma2" else None)
        with pytest.raises(AssertionError):
            _assert_same_sites(scan(folder), found)
    monkeypatch.undo()
    _assert_same_sites(scan(folder), found)  # and the real record passes


def test_a_wrong_fisher_plan_is_caught() -> None:
    """Planted wrong plans (a reader of the stream left out; a consumer that does not exist) fail the same check."""
    from deadir.arch.plans import Plan, Read, plan_llama

    def no_writes(mods: Any, config: Any) -> Plan:
        return dataclasses.replace(plan_llama(mods, config), writes=())  # the final norm is no longer named

    def ghost_consumer(mods: Any, config: Any) -> Plan:
        plan = plan_llama(mods, config)
        return dataclasses.replace(plan, reads=(*plan.reads, Read("norm", "no_such.proj")))

    record = arch.get("llama")
    for builder in (no_writes, ghost_consumer):
        with pytest.raises(AssertionError):
            test_fisher_plan_names_the_norms_of_the_stream(dataclasses.replace(record, fisher_plan=builder))
