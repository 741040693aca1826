"""deadir.scan on synthetic checkpoints: naming tables, kinds, (1 + w), bytes read, baseline gate, errors."""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

import deadir
from deadir.cli import main
from deadir.direction import inverse_scale_direction
from deadir.errors import CheckpointError, InputShapeError
from deadir.models.sites import Site
from deadir.scan import BaselineError, compare_to_baseline, load_baseline, scan, site_angle
from deadir.testing.checkpoints import write_ct2

# the engine module, whose reader functions the byte-count tests spy on
scan_module = importlib.import_module("deadir.scan.engine")


# ----------------------------------------------------------------------------- writers


def write_hf(folder: Path, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              str(folder / "model.safetensors"))
    return folder


def gammas(rng: np.random.Generator, d: int, *, spread: float = 10.0) -> np.ndarray:
    """Positive and negative gains, log-uniform in [1/spread, spread], exactly float32."""
    g = np.exp(rng.uniform(-np.log(spread), np.log(spread), d)) * rng.choice([-1.0, 1.0], d)
    return g.astype(np.float32).astype(np.float64)


def gpt2_like(rng: np.random.Generator, d: int = 16, layers: int = 2, mat: int = 1) -> dict[str, np.ndarray]:
    t: dict[str, np.ndarray] = {"wte.weight": rng.standard_normal((32 * mat, d))}
    for i in range(layers):
        for ln in ("ln_1", "ln_2"):
            t[f"h.{i}.{ln}.weight"] = gammas(rng, d)
            t[f"h.{i}.{ln}.bias"] = rng.standard_normal(d)
        t[f"h.{i}.attn.c_attn.weight"] = rng.standard_normal((d * mat, 3 * d))
        t[f"h.{i}.attn.c_attn.bias"] = rng.standard_normal(3 * d)
        t[f"h.{i}.mlp.c_fc.weight"] = rng.standard_normal((d * mat, 4 * d))
    t["ln_f.weight"] = gammas(rng, d)
    t["ln_f.bias"] = rng.standard_normal(d)
    return t


GPT2_CONFIG = {"model_type": "gpt2", "n_embd": 16, "n_layer": 2, "layer_norm_epsilon": 1e-5}


def llama_like(rng: np.random.Generator, d: int = 16, layers: int = 2, mat: int = 1) -> dict[str, np.ndarray]:
    t: dict[str, np.ndarray] = {"model.embed_tokens.weight": rng.standard_normal((32, d))}
    for i in range(layers):
        t[f"model.layers.{i}.input_layernorm.weight"] = gammas(rng, d)
        t[f"model.layers.{i}.post_attention_layernorm.weight"] = gammas(rng, d)
        t[f"model.layers.{i}.self_attn.q_proj.weight"] = rng.standard_normal((d * mat, d))
        t[f"model.layers.{i}.mlp.up_proj.weight"] = rng.standard_normal((4 * d * mat, d))
    t["model.norm.weight"] = gammas(rng, d)
    return t


LLAMA_CONFIG = {"model_type": "llama", "hidden_size": 16, "rms_norm_eps": 1e-6}


def bert_like(rng: np.random.Generator, d: int = 16, layers: int = 2) -> dict[str, np.ndarray]:
    t: dict[str, np.ndarray] = {"embeddings.word_embeddings.weight": rng.standard_normal((32, d))}
    names = ["embeddings.LayerNorm"]
    for i in range(layers):
        names += [f"encoder.layer.{i}.attention.output.LayerNorm", f"encoder.layer.{i}.output.LayerNorm"]
        t[f"encoder.layer.{i}.attention.self.query.weight"] = rng.standard_normal((d, d))
        t[f"encoder.layer.{i}.attention.self.query.bias"] = rng.standard_normal(d)
    for n in names:
        t[f"{n}.weight"] = gammas(rng, d)
        t[f"{n}.bias"] = rng.standard_normal(d)
    return t


BERT_CONFIG = {"model_type": "bert", "hidden_size": 16, "layer_norm_eps": 1e-12}


def write_gguf(path: Path, arch: str, tensors: Mapping[str, np.ndarray], *, d: int, eps: float | None,
               rms: bool) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(2)
    w.add_embedding_length(d)
    if eps is not None:
        (w.add_layer_norm_rms_eps if rms else w.add_layer_norm_eps)(eps)
    for name, value in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gguf_llama_like(rng: np.random.Generator, d: int = 32, mat: int = 1) -> dict[str, np.ndarray]:
    t: dict[str, np.ndarray] = {"token_embd.weight": rng.standard_normal((64 * mat, d))}
    for i in range(2):
        t[f"blk.{i}.attn_norm.weight"] = gammas(rng, d)
        t[f"blk.{i}.ffn_norm.weight"] = gammas(rng, d)
        t[f"blk.{i}.attn_q.weight"] = rng.standard_normal((d * mat, d))
    t["output_norm.weight"] = gammas(rng, d)
    return t


def write_ct2_whisper(path: Path, rng: np.random.Generator, d: int = 8) -> dict[str, np.ndarray]:
    """A tiny CTranslate2 (v6) WhisperSpec-like model.bin: one encoder and one decoder layer."""
    variables: dict[str, np.ndarray] = {"encoder/conv1/weight": rng.standard_normal((d, 4, 3)).astype(np.float16)}
    norms = ["encoder/layer_0/self_attention/layer_norm", "encoder/layer_0/ffn/layer_norm", "encoder/layer_norm",
             "decoder/layer_0/self_attention/layer_norm", "decoder/layer_0/attention/layer_norm",
             "decoder/layer_0/ffn/layer_norm", "decoder/layer_norm"]
    for n in norms:
        variables[f"{n}/gamma"] = gammas(rng, d).astype(np.float16)
        variables[f"{n}/beta"] = rng.standard_normal(d).astype(np.float16)
    variables["decoder/embeddings/weight"] = rng.standard_normal((16, d)).astype(np.float16)
    write_ct2(path, variables, spec="WhisperSpec")
    return variables


# ----------------------------------------------------------------------------- per architecture


def test_gpt2_like_layernorm_sites(tmp_path: Path, rng: np.random.Generator) -> None:
    tensors = gpt2_like(rng)
    report = scan(write_hf(tmp_path / "gpt2", GPT2_CONFIG, tensors))
    assert report.arch == "gpt2" and report.arch_known and report.format == "safetensors"
    assert [s.site.path for s in report.sites] == ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f"]
    roles = [(s.site.role, s.site.block, s.site.stack) for s in report.sites]
    assert roles[:2] == [("block-input", 0, "decoder")] * 2 and roles[-1] == ("final", None, "decoder")
    for s in report.sites:
        assert s.site.spec.kind == "layernorm" and s.kernel == "inverse-scale" and s.kernel_predicted
        assert s.site.spec.eps == 1e-5 and s.eps_source == "layer_norm_epsilon" and not s.guessed
        g = tensors[f"{s.site.path}.weight"]
        np.testing.assert_array_equal(s.gamma, g)
        np.testing.assert_array_equal(s.site.spec.beta, tensors[f"{s.site.path}.bias"].astype(np.float32))
        np.testing.assert_array_equal(s.direction, inverse_scale_direction(g))
        assert s.gamma_median == np.median(np.abs(g)) and s.spread == np.abs(g).max() / np.abs(g).min()
        assert s.dead == () and s.live_fraction == 1.0
    assert "γ⁻¹" in report.render()


def test_llama_like_rms_sites_report_no_kernel(tmp_path: Path, rng: np.random.Generator) -> None:
    report = scan(write_hf(tmp_path / "llama", LLAMA_CONFIG, llama_like(rng)))
    assert len(report.sites) == 5
    for s in report.sites:
        assert s.site.spec.kind == "rmsnorm" and s.kernel == "none" and not s.kernel_predicted
        assert s.direction is None and s.live_fraction is None and s.site.spec.eps == 1e-6
    assert report.site("model.norm").site.role == "final"
    assert report.site("model.layers.1.post_attention_layernorm").site.role == "block-input"
    text = report.render()
    assert text.count("no kernel") == 5 and "γ⁻¹" not in text.split("\n", 1)[1]


def test_gemma_safetensors_stores_w_and_gguf_stores_one_plus_w(tmp_path: Path, rng: np.random.Generator) -> None:
    d = 32
    # w on a 2⁻¹⁰ grid, so that both w and 1 + w are exact in float32 (as bf16-trained weights are)
    names = ("blk.0.attn_norm", "blk.0.ffn_norm", "output_norm")
    w = {n: np.round((gammas(rng, d) - 1.0) * 1024) / 1024 for n in names}
    hf_names = {"blk.0.attn_norm": "model.layers.0.input_layernorm",
                "blk.0.ffn_norm": "model.layers.0.post_attention_layernorm", "output_norm": "model.norm"}
    hf = scan(write_hf(tmp_path / "gemma", {"model_type": "gemma", "hidden_size": d, "rms_norm_eps": 1e-6},
                       {f"{hf_names[k]}.weight": v for k, v in w.items()}))
    # the GGUF converter stores 1 + w (in float32: exact for these float32-representable w)
    stored = {f"{k}.weight": (v + 1.0).astype(np.float32) for k, v in w.items()}
    gg = scan(write_gguf(tmp_path / "gemma.gguf", "gemma", stored, d=d, eps=1e-6, rms=True))
    for k, v in w.items():
        a, b = hf.site(hf_names[k]), gg.site(k)
        assert a.site.spec.weight_offset == 1.0 and b.site.spec.weight_offset == 1.0
        np.testing.assert_array_equal(a.site.spec.weight, v.astype(np.float32))
        np.testing.assert_array_equal(a.gamma, b.gamma)  # same effective scale 1 + w from both formats
        np.testing.assert_array_equal(b.gamma, stored[f"{k}.weight"])
        assert "1 + w" in b.kind_source
    # negative control: the same stored values under a plain-RMSNorm architecture are taken as γ
    plain = scan(write_gguf(tmp_path / "llama.gguf", "llama", stored, d=d, eps=1e-6, rms=True))
    assert plain.site("output_norm").site.spec.weight_offset == 0.0
    np.testing.assert_array_equal(plain.site("output_norm").gamma, stored["output_norm.weight"])
    # and a HF gemma read as llama would lose the + 1: gains differ by exactly 1
    as_llama = scan(tmp_path / "gemma", arch="llama")
    np.testing.assert_array_equal(hf.site("model.norm").gamma - as_llama.site("model.norm").gamma, 1.0)


def test_gemma3_text_qk_norms_and_post_norms(tmp_path: Path, rng: np.random.Generator) -> None:
    d, hd = 16, 8
    t = {"model.norm.weight": gammas(rng, d)}
    for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
        t[f"model.layers.0.{n}.weight"] = gammas(rng, d)
    t["model.layers.0.self_attn.q_norm.weight"] = gammas(rng, hd)
    t["model.layers.0.self_attn.k_norm.weight"] = gammas(rng, hd)
    report = scan(write_hf(tmp_path / "g3", {"model_type": "gemma3_text", "hidden_size": d, "rms_norm_eps": 1e-6}, t))
    roles = {s.site.path.split(".")[-1]: s.site.role for s in report.sites}
    assert roles == {"norm": "final", "input_layernorm": "block-input", "pre_feedforward_layernorm": "block-input",
                     "post_attention_layernorm": "block-output", "post_feedforward_layernorm": "block-output",
                     "q_norm": "attention-qk", "k_norm": "attention-qk"}
    assert all(s.site.spec.weight_offset == 1.0 and not s.guessed for s in report.sites)


def test_bert_like_post_ln_with_bias_dead_and_zero_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    t = bert_like(rng)
    t["encoder.layer.1.output.LayerNorm.weight"][[3, 7]] = [1e-33, -2e-35]  # dead, as in MiniLM
    t["encoder.layer.0.output.LayerNorm.weight"][5] = 0.0  # exactly zero: γ⁻¹ undefined
    report = scan(write_hf(tmp_path / "bert", BERT_CONFIG, t))
    assert report.site("embeddings.LayerNorm").site.role == "embedding"
    assert report.site("encoder.layer.1.output.LayerNorm").site.role == "final"  # post-LN: the last block's
    assert {s.site.role for s in report.sites[1:-1]} == {"block-output"}
    assert all(s.site.stack == "encoder" and s.bias_name is not None and s.site.spec.eps == 1e-12
               for s in report.sites)
    dead = report.site("encoder.layer.1.output.LayerNorm")
    assert dead.dead == (3, 7) and dead.degenerate == () and dead.kernel == "inverse-scale"
    assert dead.live_fraction is not None and dead.live_fraction < 1e-30  # v is the dead axes
    assert dead.gamma_min == pytest.approx(2e-35, rel=1e-6) and dead.gamma_argmin == 7
    zero = report.site("encoder.layer.0.output.LayerNorm")
    assert zero.kernel == "zero-scale" and zero.direction is None and zero.degenerate == (5,)
    assert zero.dead == (5,) and zero.live_fraction == 0.0 and math.isinf(zero.spread)
    others = [s for s in report.sites if s.site.path not in (dead.site.path, zero.site.path)]
    assert all(s.dead == () and s.live_fraction == 1.0 for s in others)  # negative control
    assert "e_i (1 zero γ)" in report.render()
    # the JSON is strict and carries the direction only where it exists
    data = json.loads(report.to_json())
    by_path = {s["path"]: s for s in data["sites"]}
    assert by_path[zero.site.path]["direction"] is None and by_path[zero.site.path]["degenerate"] == [5]
    assert by_path[dead.site.path]["spread"] == "inf" or by_path[dead.site.path]["spread"] > 1e30


def test_sharded_index_gives_the_same_sites(tmp_path: Path, rng: np.random.Generator) -> None:
    tensors = gpt2_like(rng)
    single = scan(write_hf(tmp_path / "single", GPT2_CONFIG, tensors))
    folder = tmp_path / "sharded"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(GPT2_CONFIG))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, part in shards.items():
        save_file({n: tensors[n].astype(np.float32) for n in part}, str(folder / shard))
    index = {"metadata": {}, "weight_map": {n: s for s, part in shards.items() for n in part}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    sharded = scan(folder)
    assert sharded.format == "safetensors-sharded"
    assert [s.site.path for s in sharded.sites] == [s.site.path for s in single.sites]
    for s in sharded.sites:
        np.testing.assert_array_equal(s.direction, single.site(s.site.path).direction)
    assert not compare_to_baseline(sharded, single.to_dict())


def test_gguf_llama_naming(tmp_path: Path, rng: np.random.Generator) -> None:
    tensors = gguf_llama_like(rng)
    report = scan(write_gguf(tmp_path / "m.gguf", "llama", tensors, d=32, eps=1e-5, rms=True))
    assert report.format == "gguf" and report.arch == "llama"
    assert [s.site.path for s in report.sites] == [
        "blk.0.attn_norm", "blk.0.ffn_norm", "blk.1.attn_norm", "blk.1.ffn_norm", "output_norm"]
    for s in report.sites:
        assert s.site.spec.kind == "rmsnorm" and s.kernel == "none"
        assert s.site.spec.eps == float(np.float32(1e-5)) and s.eps_source == "llama.attention.layer_norm_rms_epsilon"
        np.testing.assert_array_equal(s.gamma, tensors[f"{s.site.path}.weight"])
    assert report.site("output_norm").site.role == "final" and report.site("blk.1.ffn_norm").site.block == 1
    # a GGUF LayerNorm architecture with the same naming predicts kernels
    ln = scan(write_gguf(tmp_path / "g.gguf", "gpt2", tensors, d=32, eps=1e-5, rms=False))
    assert all(s.site.spec.kind == "layernorm" and s.kernel == "inverse-scale" for s in ln.sites)
    assert ln.site("output_norm").site.spec.eps == float(np.float32(1e-5))


def test_ctranslate2_whisper(tmp_path: Path, rng: np.random.Generator) -> None:
    variables = write_ct2_whisper(tmp_path / "model.bin", rng)
    report = scan(tmp_path)
    assert report.format == "ctranslate2" and report.arch == "whisper" and report.arch_known
    assert len(report.sites) == 7
    assert {s.site.path: (s.site.role, s.site.stack) for s in report.sites if s.site.role == "final"} == {
        "encoder/layer_norm": ("final", "encoder"), "decoder/layer_norm": ("final", "decoder")}
    for s in report.sites:
        assert s.site.spec.kind == "layernorm" and s.kernel == "inverse-scale" and s.stored_dtype == "F16"
        assert s.site.spec.eps == 1e-5 and s.eps_source == "fixed by architecture"
        np.testing.assert_array_equal(s.gamma, variables[f"{s.site.path}/gamma"].astype(np.float64))
        np.testing.assert_array_equal(s.site.spec.beta, variables[f"{s.site.path}/beta"].astype(np.float64))
    assert report.site("decoder/layer_0/attention/layer_norm").site.block == 0


def test_ctranslate2_other_spec_guesses_kind_from_beta(tmp_path: Path, rng: np.random.Generator) -> None:
    d = 8
    variables = {
        "decoder/layer_0/self_attention/layer_norm/gamma": gammas(rng, d).astype(np.float16),
        "decoder/layer_0/self_attention/layer_norm/beta": gammas(rng, d).astype(np.float16),
        "decoder/layer_norm/gamma": gammas(rng, d).astype(np.float16),  # RMSNorm in CTranslate2: no beta
        "decoder/layer_0/ffn/linear_0/weight": rng.standard_normal((2 * d, d)).astype(np.float16),
    }
    write_ct2(tmp_path / "model.bin", variables, spec="TransformerDecoderModelSpec")
    report = scan(tmp_path / "model.bin")
    assert report.arch == "ctranslate2" and not report.arch_known
    got = {s.site.path: (s.site.spec.kind, s.kind_source, s.guessed) for s in report.sites}
    assert got == {
        "decoder/layer_0/self_attention/layer_norm": ("layernorm", "CTranslate2: beta present", True),
        "decoder/layer_norm": ("rmsnorm", "CTranslate2: no beta", True),
    }


def test_unknown_architecture_guesses_and_never_drops(tmp_path: Path, rng: np.random.Generator) -> None:
    d = 16
    t = {
        "blocks.0.norm_a.weight": gammas(rng, d), "blocks.0.norm_a.bias": rng.standard_normal(d),
        "blocks.0.rmsnorm.weight": gammas(rng, d),
        "blocks.1.attn.q_norm.weight": gammas(rng, 4),  # q/k norms: head size, still found
        "blocks.0.mlp.bias": rng.standard_normal(d),  # 1-D but not a norm: ignored
        "blocks.0.norm_b.weight": gammas(rng, 3),  # norm-like but not of the hidden size: ignored
        "head.weight": rng.standard_normal((d, d)),
    }  # fmt: skip
    report = scan(write_hf(tmp_path / "m", {"model_type": "mystery", "hidden_size": d}, t))
    assert not report.arch_known and report.arch == "mystery"
    got = {s.site.path: (s.site.spec.kind, s.kind_source, s.site.role) for s in report.sites}
    assert got == {
        "blocks.0.norm_a": ("layernorm", "has a bias", "other"),
        "blocks.0.rmsnorm": ("rmsnorm", "name says rms", "other"),
        "blocks.1.attn.q_norm": ("layernorm", "no evidence: assumed LayerNorm", "attention-qk"),
    }
    assert all(s.guessed for s in report.sites) and any("guess" in w for w in report.warnings)
    assert "guessed" in report.render()
    # a known architecture with an extra, unlisted norm: table sites plus one guessed site
    t2 = llama_like(rng)
    t2["model.layers.0.extra_norm.weight"] = gammas(rng, 16)
    r2 = scan(write_hf(tmp_path / "l", LLAMA_CONFIG, t2))
    extra = r2.site("model.layers.0.extra_norm")
    assert extra.guessed and extra.site.spec.kind == "rmsnorm" and extra.kind_source == "config: has rms_norm_eps"
    assert sum(s.guessed for s in r2.sites) == 1 and extra.site.block == 0


def test_single_safetensors_without_config(tmp_path: Path, rng: np.random.Generator) -> None:
    f = tmp_path / "bare.safetensors"
    save_file({k: v.astype(np.float32) for k, v in gpt2_like(rng).items()}, str(f))
    report = scan(f)
    assert report.arch == "unknown" and all(s.guessed for s in report.sites) and len(report.sites) == 5
    assert all(s.site.spec.kind == "layernorm" for s in report.sites)  # every site has a bias
    assert any("no config.json" in w for w in report.warnings)
    named = scan(f, arch="gpt2")  # the architecture can be given
    assert named.arch_known and not any(s.guessed for s in named.sites)
    assert named.site("ln_f").site.role == "final" and named.site("ln_f").eps_source == "default"


def test_opt_post_ln_flag_turns_block_norms_into_block_output(tmp_path: Path, rng: np.random.Generator) -> None:
    d = 8
    t = {f"model.decoder.layers.0.{n}.{p}": gammas(rng, d) for n in ("self_attn_layer_norm", "final_layer_norm")
         for p in ("weight", "bias")}
    with_final = {**t, "model.decoder.final_layer_norm.weight": gammas(rng, d),
                  "model.decoder.final_layer_norm.bias": gammas(rng, d)}
    pre = scan(write_hf(tmp_path / "pre", {"model_type": "opt", "hidden_size": d, "do_layer_norm_before": True},
                        with_final))
    post = scan(write_hf(tmp_path / "post", {"model_type": "opt", "hidden_size": d, "do_layer_norm_before": False}, t))
    assert [s.site.role for s in pre.sites] == ["final", "block-input", "block-input"]
    # post-LN: block norms are block-output, and the last block's final_layer_norm ends the stack
    assert {s.site.path: s.site.role for s in post.sites} == {
        "model.decoder.layers.0.self_attn_layer_norm": "block-output",
        "model.decoder.layers.0.final_layer_norm": "final"}


# ----------------------------------------------------------------------------- bytes read


@pytest.mark.parametrize("fmt", ["safetensors", "gguf"])
def test_bytes_read_do_not_grow_with_matmul_weights(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested: list[list[str]] = []
    if fmt == "safetensors":
        real = scan_module._read_tensors

        def spy(path: Any, names: Any, infos: Any = None) -> Any:
            requested.append(list(names))
            return real(path, names, infos)

        monkeypatch.setattr(scan_module, "_read_tensors", spy)
    else:
        real_g = scan_module._read_tensors_gguf

        def spy_g(header: Any, names: Any) -> Any:
            requested.append(list(names))
            return real_g(header, names)

        monkeypatch.setattr(scan_module, "_read_tensors_gguf", spy_g)
    reports = []
    for mat in (1, 4):
        rng = np.random.default_rng(7)  # same norms in both
        if fmt == "safetensors":
            path = write_hf(tmp_path / f"m{mat}", GPT2_CONFIG, gpt2_like(rng, mat=mat))
        else:
            path = write_gguf(tmp_path / f"m{mat}.gguf", "gpt2", gguf_llama_like(rng, mat=mat), d=32, eps=1e-5,
                              rms=False)
        reports.append(scan(path))
    small, big = reports
    # the other weights grew ~4x (a few biases did not)
    assert big.bytes_total - big.bytes_read > 3.5 * (small.bytes_total - small.bytes_read)
    assert small.bytes_read == big.bytes_read and small.tensors_read == big.tensors_read
    assert len(requested) == 2 and requested[0] == requested[1]  # one read call, norms only
    norm_like = {n for s in small.sites for n in (s.weight_name, s.bias_name) if n}
    assert set(requested[0]) == norm_like
    assert not any(("attn_q" in n or "c_attn" in n or "c_fc" in n or "wte" in n or "token_embd" in n)
                   for n in requested[0])


# ----------------------------------------------------------------------------- instantiated model


def test_scan_of_an_instantiated_model_matches_its_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    import torch
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    model = GPT2Model(GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=50, n_positions=32))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("ln_f"):
                p.copy_(torch.randn_like(p))
    from_model = scan(model)
    assert from_model.format == "model" and from_model.arch == "gpt2" and len(from_model.sites) == 5
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    cfg = {"model_type": "gpt2", "n_embd": 16, "layer_norm_epsilon": model.config.layer_norm_epsilon}
    from_file = scan(write_hf(tmp_path / "gpt2", cfg, state))
    assert not compare_to_baseline(from_model, from_file.to_dict())
    assert all(s.eps_source == "module" for s in from_model.sites)
    assert {s.kind_source for s in from_model.sites} == {"find_norms"}
    # with an architecture named, the parameter names go through that record's naming rules: same sites
    from_table = scan(model, arch="gpt2")
    assert {s.kind_source for s in from_table.sites} == {"table"} and not from_table.warnings
    assert not compare_to_baseline(from_table, from_file.to_dict())
    assert [s.site.to_dict() for s in from_table.sites] == [s.site.to_dict() for s in from_file.sites]


def test_scan_of_a_model_uses_find_norms(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from deadir.models import sites as model_sites

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = torch.nn.LayerNorm(6)
            self.proj = torch.nn.Linear(6, 6)

    calls: list[object] = []
    real = model_sites.find_norms

    def spy(model: object, **kw: object) -> list[Site]:
        calls.append(model)
        return real(model, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_module, "find_norms", spy)
    model = Tiny()
    report = scan(model)
    assert calls == [model]
    assert [s.site.path for s in report.sites] == ["norm"] and report.sites[0].kernel == "inverse-scale"
    assert report.tensors_read == ("norm.weight", "norm.bias") and report.sites[0].kind_source == "find_norms"


# ----------------------------------------------------------------------------- baseline gate


def _cli_json(path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["scan", str(path), "--json", "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    return printed


def test_baseline_unchanged_exits_0(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = write_hf(tmp_path / "m", GPT2_CONFIG, gpt2_like(rng))
    _cli_json(ckpt, tmp_path / "base.json", capsys)
    assert main(["scan", str(ckpt), "--baseline", str(tmp_path / "base.json")]) == 0
    assert "no normalisation change" in capsys.readouterr().out


def test_baseline_catches_a_norm_swap_with_the_config_unchanged(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model code swapped LayerNorm for RMSNorm, config.json untouched: only the β tensors vanish."""
    d = 16
    config = {"model_type": "gpt_neox", "hidden_size": d, "layer_norm_eps": 1e-5}
    ln = {f"gpt_neox.layers.{i}.{n}.{p}": gammas(rng, d) for i in range(2)
          for n in ("input_layernorm", "post_attention_layernorm") for p in ("weight", "bias")}
    before = write_hf(tmp_path / "before", config, ln)
    _cli_json(before, tmp_path / "base.json", capsys)
    swapped = write_hf(tmp_path / "after", config, {k: v for k, v in ln.items() if k.endswith(".weight")})
    assert main(["scan", str(swapped), "--baseline", str(tmp_path / "base.json")]) == 1
    out = capsys.readouterr().out
    assert out.count("β present -> absent") == 4
    # control: the unchanged checkpoint passes the same gate
    assert main(["scan", str(before), "--baseline", str(tmp_path / "base.json")]) == 0


def test_baseline_catches_layernorm_swapped_for_rmsnorm(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    d = 16
    ln = {f"gpt_neox.layers.{i}.{n}.{p}": gammas(rng, d) for i in range(2)
          for n in ("input_layernorm", "post_attention_layernorm") for p in ("weight", "bias")}
    before = write_hf(tmp_path / "before", {"model_type": "gpt_neox", "hidden_size": d, "layer_norm_eps": 1e-5}, ln)
    _cli_json(before, tmp_path / "base.json", capsys)
    # the same model with its LayerNorms replaced by RMSNorms: same names, no bias, llama-style
    rms = {k.replace("gpt_neox.", "model."): v for k, v in ln.items() if k.endswith(".weight")}
    base = json.loads((tmp_path / "base.json").read_text())
    for s in base["sites"]:
        s["path"] = s["path"].replace("gpt_neox.", "model.")
    (tmp_path / "base.json").write_text(json.dumps(base))
    after = write_hf(tmp_path / "after", {"model_type": "llama", "hidden_size": d, "rms_norm_eps": 1e-5}, rms)
    assert main(["scan", str(after), "--baseline", str(tmp_path / "base.json")]) == 1
    out = capsys.readouterr().out
    assert out.count(": kind: layernorm -> rmsnorm") == 4 and out.count("kernel predicted -> no kernel") == 4


def test_baseline_catches_a_turned_direction_and_not_a_tiny_one(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    tensors = gpt2_like(rng)
    ckpt = write_hf(tmp_path / "m", GPT2_CONFIG, tensors)
    _cli_json(ckpt, tmp_path / "base.json", capsys)
    base = tmp_path / "base.json"
    tiny = dict(tensors)
    tiny["h.1.ln_2.weight"] = tensors["h.1.ln_2.weight"] * (1 + 1e-6 * rng.standard_normal(16))
    write_hf(tmp_path / "tiny", GPT2_CONFIG, tiny)
    assert main(["scan", str(tmp_path / "tiny"), "--baseline", str(base)]) == 0  # negative control
    capsys.readouterr()
    turned = dict(tensors)
    g = tensors["h.1.ln_2.weight"].copy()
    g[[0, 1]] = g[[1, 0]]  # a permutation of γ turns v = γ⁻¹/‖γ⁻¹‖
    turned["h.1.ln_2.weight"] = g
    write_hf(tmp_path / "turned", GPT2_CONFIG, turned)
    assert main(["scan", str(tmp_path / "turned"), "--baseline", str(base)]) == 1
    out = capsys.readouterr().out
    assert "h.1.ln_2: direction: kernel direction turned by" in out and out.count("direction:") == 1
    expected = site_angle(inverse_scale_direction(g), inverse_scale_direction(tensors["h.1.ln_2.weight"]))
    assert f"{expected:.3g} rad" in out
    # --max-angle above that angle accepts it
    assert main(["scan", str(tmp_path / "turned"), "--baseline", str(base), "--max-angle", str(2 * expected)]) == 0


def test_baseline_catches_added_and_removed_sites(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    tensors = gpt2_like(rng, layers=2)
    _cli_json(write_hf(tmp_path / "m", GPT2_CONFIG, tensors), tmp_path / "base.json", capsys)
    grown = dict(tensors)
    grown["h.2.ln_1.weight"], grown["h.2.ln_1.bias"] = gammas(rng, 16), rng.standard_normal(16)
    write_hf(tmp_path / "grown", GPT2_CONFIG, grown)
    assert main(["scan", str(tmp_path / "grown"), "--baseline", str(tmp_path / "base.json")]) == 1
    assert "h.2.ln_1: added: new layernorm site" in capsys.readouterr().out
    shrunk = {k: v for k, v in tensors.items() if not k.startswith("ln_f.")}
    write_hf(tmp_path / "shrunk", GPT2_CONFIG, shrunk)
    assert main(["scan", str(tmp_path / "shrunk"), "--baseline", str(tmp_path / "base.json")]) == 1
    assert "ln_f: removed" in capsys.readouterr().out


def test_baseline_catches_gemma_offset_change(tmp_path: Path, rng: np.random.Generator) -> None:
    t = llama_like(rng)
    llama = scan(write_hf(tmp_path / "a", LLAMA_CONFIG, t))
    gemma = scan(write_hf(tmp_path / "b", {**LLAMA_CONFIG, "model_type": "gemma"}, t))
    changes = compare_to_baseline(gemma, llama.to_dict())
    assert {c.what for c in changes} == {"kind"} and len(changes) == len(llama.sites)


@pytest.mark.parametrize(
    "content,message",
    [("{not json", "not valid JSON"), ("[1, 2]", "not a deadir scan report"),
     (json.dumps({"deadir_scan": 1, "sites": [{"path": "x"}]}), "lacks a valid 'kind'"),
     (json.dumps({"deadir_scan": 1, "sites": [{"path": "x", "kind": "layernorm", "kernel_predicted": True, "d": 3,
                                              "weight_offset": 0.0, "direction": [1.0, 0.0]}]}),
      "malformed direction")],
)
def test_malformed_baseline_exits_2(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    ckpt = write_hf(tmp_path / "m", GPT2_CONFIG, gpt2_like(rng))
    (tmp_path / "bad.json").write_text(content)
    assert main(["scan", str(ckpt), "--baseline", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.json" in err
    with pytest.raises(BaselineError, match=message):
        load_baseline(tmp_path / "bad.json")


def test_missing_baseline_file_exits_2(tmp_path: Path, rng: np.random.Generator,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_hf(tmp_path / "m", GPT2_CONFIG, gpt2_like(rng))
    assert main(["scan", str(ckpt), "--baseline", str(tmp_path / "nope.json")]) == 2
    assert "baseline file not found" in capsys.readouterr().err


def test_site_angle_is_accurate_for_tiny_angles_and_sign_blind() -> None:
    u = np.array([1.0, 0.0, 0.0])
    for t in (1e-12, 1e-6, 0.3):
        v = np.array([math.cos(t), math.sin(t), 0.0])
        assert site_angle(u, v) == pytest.approx(t, rel=1e-12)
        assert site_angle(u, -v) == pytest.approx(t, rel=1e-12)
    assert site_angle(u, np.array([0.0, 1.0, 0.0])) == pytest.approx(math.pi / 2)
    with pytest.raises(InputShapeError, match="max_angle"):
        compare_to_baseline({"deadir_scan": 1, "sites": []}, {"deadir_scan": 1, "sites": []}, max_angle=0.0)


# ----------------------------------------------------------------------------- CLI output and plot


def test_cli_table_and_plot(tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    ckpt = write_hf(tmp_path / "m", BERT_CONFIG, bert_like(rng))
    png = tmp_path / "plots" / "scan.png"
    assert main(["scan", str(ckpt), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "encoder.layer.1.output.LayerNorm" in out and "block-output" in out and "arch bert" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(png.parent.glob(".*.tmp*")) and not list(png.parent.glob(".scan.png.*"))
    rms = write_hf(tmp_path / "r", LLAMA_CONFIG, llama_like(rng))  # no kernel anywhere: two panels
    assert main(["scan", str(rms), "--plot", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- error paths


def test_error_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        scan(tmp_path / "absent")
    assert main(["scan", str(tmp_path / "absent")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_error_corrupt_and_truncated_files(tmp_path: Path, rng: np.random.Generator) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointError, match=r"junk\.safetensors"):
        scan(junk)
    ckpt = write_hf(tmp_path / "m", GPT2_CONFIG, gpt2_like(rng))
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        scan(ckpt)
    gg = write_gguf(tmp_path / "t.gguf", "llama", gguf_llama_like(rng), d=32, eps=1e-5, rms=True)
    gg.write_bytes(gg.read_bytes()[:-64])
    with pytest.raises(CheckpointError, match=r"t\.gguf"):
        scan(gg)
    pickle = tmp_path / "p" / "pytorch_model.bin"
    pickle.parent.mkdir()
    pickle.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(CheckpointError, match="never unpickles"):
        scan(pickle.parent)


def test_error_missing_shard(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(GPT2_CONFIG))
    tensors = gpt2_like(rng)
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(folder / "a.safetensors"))
    index = {"weight_map": {k: ("a.safetensors" if i % 2 else "b.safetensors") for i, k in enumerate(tensors)}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="missing shard"):
        scan(folder)


def test_error_no_norm_tensors(tmp_path: Path, rng: np.random.Generator) -> None:
    t = {"h.0.attn.c_attn.weight": rng.standard_normal((16, 48)), "h.0.mlp.c_fc.bias": rng.standard_normal(16)}
    with pytest.raises(CheckpointError, match="no norm tensors found among 2 tensors"):
        scan(write_hf(tmp_path / "m", GPT2_CONFIG, t))


def test_error_bad_norm_tensors_and_config(tmp_path: Path, rng: np.random.Generator) -> None:
    t = gpt2_like(rng)
    t["h.0.ln_1.weight"] = t["h.0.ln_1.weight"].copy()
    t["h.0.ln_1.weight"][2] = np.nan
    with pytest.raises(CheckpointError, match=r"h\.0\.ln_1\.weight.*NaN"):
        scan(write_hf(tmp_path / "nan", GPT2_CONFIG, t))
    t = gpt2_like(rng)
    t["ln_f.weight"] = rng.standard_normal((4, 4))
    with pytest.raises(CheckpointError, match=r"ln_f\.weight.*expected 1-D"):
        scan(write_hf(tmp_path / "2d", GPT2_CONFIG, t))
    t = gpt2_like(rng)
    t["ln_f.bias"] = rng.standard_normal(8)
    with pytest.raises(CheckpointError, match=r"bias 'ln_f\.bias'"):
        scan(write_hf(tmp_path / "bias", GPT2_CONFIG, t))
    with pytest.raises(CheckpointError, match="layer_norm_epsilon"):
        scan(write_hf(tmp_path / "eps", {**GPT2_CONFIG, "layer_norm_epsilon": "small"}, gpt2_like(rng)))
    with pytest.raises(CheckpointError, match="model_type"):
        scan(write_hf(tmp_path / "mt", {**GPT2_CONFIG, "model_type": 3}, gpt2_like(rng)))
    (tmp_path / "cfg").mkdir()
    write_hf(tmp_path / "cfg", GPT2_CONFIG, gpt2_like(rng))
    (tmp_path / "cfg" / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match=r"config\.json"):
        scan(tmp_path / "cfg")


def test_error_bad_arguments(tmp_path: Path, rng: np.random.Generator) -> None:
    ckpt = write_hf(tmp_path / "m", GPT2_CONFIG, gpt2_like(rng))
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(InputShapeError, match="dead_rel_tol"):
            scan(ckpt, dead_rel_tol=bad)
    with pytest.raises(CheckpointError, match="expected a checkpoint path or a torch model"):
        scan(42)


# ----------------------------------------------------------------------------- agreement with find_norms
# (every architecture record: tests/test_arch.py)


def test_gemma3_multimodal_checkpoint_mixes_siglip_layernorm_and_gemma_rmsnorm(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModel, Gemma3Config

    from deadir.models import find_norms

    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 300, "sliding_window": 16, "rms_norm_eps": 3e-6,
            "layer_types": ["sliding_attention", "full_attention"]}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": 28, "patch_size": 14, "layer_norm_eps": 2e-6}
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=299,
                          boi_token_index=297, eoi_token_index=298)
    torch.manual_seed(0)
    model = AutoModel.from_config(config)
    state = {k: v.detach().to(torch.float32).numpy().copy() for k, v in model.state_dict().items()}
    report = scan(write_hf(tmp_path / "g3", model.config.to_dict(), state))
    assert report.arch == "gemma3" and not any(s.guessed for s in report.sites)
    vision_sites = [s for s in report.sites if s.site.stack == "vision"]
    assert len(vision_sites) == 6 and all(
        s.site.spec.kind == "layernorm" and s.site.spec.weight_offset == 0.0 and s.site.spec.eps == 2e-6
        and s.kernel == "inverse-scale" for s in vision_sites)
    text_sites = [s for s in report.sites if s.site.stack == "decoder"]
    assert len(text_sites) == 14 and all(s.site.spec.kind == "rmsnorm" and s.site.spec.weight_offset == 1.0
                                         for s in text_sites)
    assert report.site("multi_modal_projector.mm_soft_emb_norm").site.spec.eps == 2e-6
    assert all(s.site.spec.eps == 3e-6 for s in text_sites if "multi_modal" not in s.site.path)
    assert {s.site.path for s in report.sites if s.site.role == "final"} == {
        "language_model.norm", "vision_tower.post_layernorm"}
    found = {s.path: s for s in find_norms(model)}
    assert set(found) == {s.site.path for s in report.sites}
    for s in report.sites:
        f = found[s.site.path]
        assert (s.site.spec.kind, s.site.spec.weight_offset, s.site.stack, s.site.block) == (
            f.spec.kind, f.spec.weight_offset, f.stack, f.block)
        assert s.site.role == f.role, s.site.path


def test_architecture_norm_kind_reads_scans_own_tables() -> None:
    from deadir.scan import architecture_norm_kind

    assert [architecture_norm_kind(a) for a in ("gpt2", "bert", "llama", "gemma3_text")] == [
        "layernorm", "layernorm", "rmsnorm", "rmsnorm"]
    assert architecture_norm_kind("gemma3") == "rmsnorm"  # a GGUF architecture name
    assert architecture_norm_kind("no-such-arch") is None


def test_the_scan_module_is_callable_and_not_shadowed(tmp_path: Path, rng: np.random.Generator) -> None:
    """The README's calls: deadir.scan(path) and deadir.scan.<helper>(...) on the same name."""
    import deadir.scan as scan_package

    assert deadir.scan is scan_package and callable(deadir.scan)
    assert deadir.scan.architecture_norm_kind("gpt2") == "layernorm"
    path = write_hf(tmp_path / "gpt2", GPT2_CONFIG, gpt2_like(rng))
    by_module = deadir.scan(path)  # type: ignore[operator]
    assert isinstance(by_module, deadir.scan.ScanReport)
    assert not deadir.scan.compare_to_baseline(by_module, scan(path).to_dict())


def test_olmo_nonparametric_norms_are_read_with_unit_gamma_and_said_so(tmp_path: Path,
                                                                        rng: np.random.Generator) -> None:
    """OLMo stores no norm tensors: scan places its sites by the architecture record, γ = 1 (it used to raise
    "no norm tensors found"); a checkpoint without blocks still raises."""
    t = {f"model.layers.{i}.self_attn.q_proj.weight": rng.standard_normal((8, 8)) for i in range(3)}
    report = scan(write_hf(tmp_path / "olmo", {"model_type": "olmo", "hidden_size": 8}, t))
    assert [s.site.path for s in report.sites] == [
        *(f"model.layers.{i}.{n}" for i in range(3) for n in ("input_layernorm", "post_attention_layernorm")),
        "model.norm"]
    assert all(s.site.spec.kind == "layernorm" and s.site.spec.size == 8 and s.site.spec.eps == 1e-5
               and np.all(s.gamma == 1.0) and s.kernel == "inverse-scale" for s in report.sites)
    assert report.bytes_read == 0 and "no parameters" in " ".join(report.warnings)
    assert report.site("model.norm").site.role == "final"
    with pytest.raises(CheckpointError, match="no norm tensors"):
        scan(write_hf(tmp_path / "olmo0", {"model_type": "olmo", "hidden_size": 8},
                      {"lm_head.weight": np.ones((4, 8))}))
