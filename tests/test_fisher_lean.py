"""The lean FisherProbe (stored-dtype embedding and head, read by chunks) pinned to the plain float64 copy.

Reference: ``FisherProbe(..., lean=False)``, the whole model copied to float64 (today's slow path),
measured by ``fisher_full`` (one JVP of the full logits, Var_p over the whole vocabulary at once).
The lean probe keeps the tied (or untied) 4099 × 32 table in float32, gathers the input rows once
and applies the head by vocabulary chunks upcast per chunk; upcasting float32 → float64 is exact,
so the two compute the same float64 numbers up to summation order.

Stated tolerance (as tests/test_fisher_chunked.py): |F_lean − F_ref| ≤ rtol · max(F_lean, F_ref) + floor,
rtol = n·u (FisherProbe's rounding depth times the unit roundoff of the narrowest float the copy
computes in: Gemma's RMSNorm computes in float32 inside its float64 copy), floor = the rounding floor
of the median Fisher of random directions of the same tensors (below it only the verdict is compared).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deadir.fisher import FisherProbe, candidate_parameter_directions, fisher_report, with_lm_head
from deadir.fisher import probe as probe_module
from deadir.models import find_norms, tiny_config

VOCAB = 4099  # larger than every chunk used, not a multiple of any


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _small_large_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tiny tables (4099 × 32) count as large here, so the float32-drawn, row-chunked baselines are exercised
    monkeypatch.setattr(probe_module, "LARGE_TENSOR", 1 << 10)


@functools.cache
def build(tied: bool) -> tuple[Any, dict[str, torch.Tensor]]:
    """A tiny Gemma 3 (random init, random norm scales) with a 4099-token vocabulary, tied or untied head."""
    import transformers as tf

    cfg = tiny_config("gemma3_text", vocab_size=VOCAB, tie_word_embeddings=tied)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for site in find_norms(model):
            module = model.get_submodule(site.path)
            module.weight.copy_(0.3 * torch.randn(module.weight.shape, generator=gen))
    ids = torch.randint(0, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    ids[1, 3] = ids[0, 5]  # a repeated token: one gathered row read twice
    return model, {"input_ids": ids}


def _directions(p: FisherProbe, model: Any) -> list[tuple[dict[str, Any], float]]:
    """(direction, floor): every candidate touching the tables, random directions over tables, body, both."""
    emb = p.canonical[id(p.model.get_input_embeddings().weight)]
    head = p.canonical[id(p.model.get_output_embeddings().weight)]
    body = "model.layers.1.mlp.down_proj.weight"
    gen = torch.Generator().manual_seed(3)
    rng = np.random.default_rng(4)
    out: list[tuple[dict[str, Any], float]] = []
    cands, _ = candidate_parameter_directions(model)
    for c in cands:
        if c.layer != "head" and not set(c.params) & {emb, head}:
            continue
        randoms = p.fisher_many([p.random_direction(list(c.params), gen) for _ in range(3)])
        floor = p.fisher_floor(float(np.median(randoms)))
        out.append((c.perturbation(rng.standard_normal(c.free_dim), dtype=torch.float64), floor))
    for names in ([emb], [head], [body], [emb, body], sorted({emb, head, body})):
        out.append((p.random_direction(names, gen), 0.0))
    return out


def _tolerance(p: FisherProbe) -> float:
    return p.rounding_depth() * p.unit_roundoff


def _assert_pinned(lean: FisherProbe, ref: FisherProbe, directions: list[tuple[dict[str, Any], float]]) -> None:
    fast = lean.fisher_many([d for d, _ in directions])
    rtol = _tolerance(ref)
    for (d, floor), value in zip(directions, fast, strict=True):
        slow = ref.fisher_full(d)
        assert abs(value - slow) <= rtol * max(abs(value), abs(slow)) + floor, (value, slow, rtol, floor, list(d))
        assert (value <= floor) == (slow <= floor), (value, slow, floor)  # the same dead / live verdict


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_lean_probe_equals_the_float64_copy(tied: bool) -> None:
    model, inputs = build(tied)
    ref = FisherProbe(model, inputs, lean=False)
    for chunk, block in ((512, 8), (VOCAB + 1, 2)):
        lean = FisherProbe(model, inputs, vocab_chunk=chunk, tangent_block=block)
        assert lean.lean and lean.chunked and not ref.lean
        # the tables are the model's own float32 storage, not float64 copies
        for name in lean.lean_names:
            assert lean.params[name].dtype == torch.float32
            assert lean.params[name].data_ptr() == dict(model.named_parameters())[name].data_ptr()
        assert math.isclose(float(lean._lse.sum()), float(ref._lse.sum()), rel_tol=1e-12)
        # the same draws on both probes: each gets its own generator with the same seed
        lean_dirs = _directions(lean, model)
        ref_dirs = _directions(ref, model)
        for (a, _), (b, _) in zip(lean_dirs, ref_dirs, strict=True):
            assert a.keys() == b.keys()
        _assert_pinned(lean, ref, lean_dirs)


def test_lean_random_directions_are_the_reference_draws() -> None:
    model, inputs = build(True)
    lean, ref = FisherProbe(model, inputs), FisherProbe(model, inputs, lean=False)
    names = ["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"]
    a = lean.random_direction(names, torch.Generator().manual_seed(9))
    b = ref.random_direction(names, torch.Generator().manual_seed(9))
    assert isinstance(a[names[0]], probe_module._Rows) and isinstance(b[names[0]], torch.Tensor)
    for n in names:
        assert torch.equal(probe_module._dense(a[n]), b[n])
    c = ref.random_direction(["model.layers.0.input_layernorm.weight"], torch.Generator().manual_seed(9))
    small = torch.randn(32, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    assert torch.equal(c["model.layers.0.input_layernorm.weight"], small)  # below LARGE_TENSOR: float64 draws


@pytest.mark.parametrize("shape", [(1025, 8), (3000, 33), (2049, 1), (5, 3), (1, 1), (4097, 17)])
def test_chunked_gaussian_is_one_randn_call(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(1)
    full = torch.randn(shape, generator=gen, dtype=torch.float32).to(torch.float64)
    index = torch.tensor(sorted({0, shape[0] // 2, shape[0] - 1}))
    lazy_gen = torch.Generator().manual_seed(1)
    lazy = probe_module._Rows.gaussian(shape, lazy_gen, index)
    assert torch.equal(lazy_gen.get_state(), gen.get_state())  # the caller's generator advanced alike
    assert torch.equal(lazy.full(), full)
    assert torch.equal(lazy.gather(index), full[index])
    for step in (7, 1000, 5000):
        assert torch.equal(torch.cat(list(lazy.blocks(step))), full)
    assert math.isclose(lazy.sq_norm(), float((full * full).sum()), rel_tol=1e-13)
    half = lazy.scaled(0.5)
    assert torch.equal(half.gather(index), 0.5 * full[index]) and math.isclose(half.sq_norm(), lazy.sq_norm() / 4)


def test_planted_draws_in_steps_of_not_16_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (3000, 33)
    full = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float32).to(torch.float64)
    monkeypatch.setattr(probe_module, "_GAUSS_ROWS", 1001)  # 1001 · 33 numbers: not a multiple of 16
    lazy = probe_module._Rows.gaussian(shape, torch.Generator().manual_seed(1))
    assert not torch.equal(lazy.full(), full)


@pytest.mark.parametrize("mutant", ["wrong-rows", "gather-zeros", "head-chunk-skipped"])
def test_planted_wrong_lean_probe_is_caught(mutant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model, inputs = build(True)
    ref = FisherProbe(model, inputs, lean=False)
    lean = FisherProbe(model, inputs, vocab_chunk=512)
    dirs = _directions(lean, model)
    _assert_pinned(lean, ref, dirs)  # the unplanted probe passes
    if mutant == "wrong-rows":  # the body reads the neighbouring token's row
        lean._emb_rows = torch.roll(lean._emb_rows, 1, dims=0)
    elif mutant == "gather-zeros":  # a table direction's gathered rows lost: the body would not see it
        monkeypatch.setattr(probe_module._Rows, "gather", lambda self, index: torch.zeros(
            (index.numel(), *self.shape[1:]), dtype=torch.float64))
    else:  # the head's tangent chunks of a table direction are dropped after the first chunk
        original = probe_module._chunks_of

        def first_only(value: Any, step: int) -> Iterator[Any]:
            chunks = original(value, step)
            yield next(chunks)
            for c in chunks:
                yield torch.zeros_like(c)

        monkeypatch.setattr(probe_module, "_chunks_of", first_only)
    with pytest.raises(AssertionError):
        _assert_pinned(lean, ref, dirs)


def test_the_lean_embedding_refuses_a_call_without_its_gathered_rows() -> None:
    model, inputs = build(True)
    lean = FisherProbe(model, inputs)
    with pytest.raises(RuntimeError, match="gathered float64 rows"):
        lean.model(**lean.inputs)  # the float32 table itself: the remapped index would read wrong rows
    ids = inputs["input_ids"]
    logits = lean.logits
    with torch.no_grad():
        ref = FisherProbe(model, inputs, lean=False).logits
    assert logits.shape == (*ids.shape, VOCAB)
    assert torch.allclose(logits, ref, rtol=0, atol=1e-12 * float(ref.abs().max()))


def test_lean_is_not_used_where_it_does_not_apply() -> None:
    import transformers as tf

    model, inputs = build(True)
    embeds = {"inputs_embeds": model.get_input_embeddings()(inputs["input_ids"]).detach()}
    assert not FisherProbe(model, embeds).lean  # no token ids: the rows read are not known
    cfg = tiny_config("gemma2")  # soft-capped logits: the head is not chunked, so nothing is lean
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        capped = tf.AutoModelForCausalLM.from_config(cfg).eval()
    p = FisherProbe(capped, {"input_ids": torch.tensor([[3, 4, 5]])})
    assert not p.lean and not p.chunked
    assert all(t.dtype == torch.float64 for t in p.params.values())


def test_layer_filtered_report_has_the_full_reports_numbers_and_lean_the_references() -> None:
    model, inputs = build(True)
    full = fisher_report(model, inputs, n_random=3, seed=5)
    head = fisher_report(model, inputs, n_random=3, seed=5, layers=("head",))
    ref = fisher_report(model, inputs, n_random=3, seed=5, layers=("head",), lean=False)
    assert [r.layer for r in head.rows] == ["head"] and head.rows[0].family == "lm-head-softmax"
    assert head.rows[0] == next(r for r in full.rows if r.layer == "head")  # the same draws, bit for bit
    rtol = 1e-6  # n·u of this model with float32 inside (test_lean_probe_equals_the_float64_copy pins n·u)
    for a, b in zip(head.rows, ref.rows, strict=True):
        assert a.measured == b.measured and a.exact == b.exact
        for field in ("max_fisher", "min_fisher", "median_random_fisher"):
            x, y = getattr(a, field), getattr(b, field)
            assert abs(x - y) <= rtol * max(abs(x), abs(y)) + a.floor, (field, x, y)
    assert any("only the candidates of layer(s) ['head']" in n for n in head.notes)


def test_tied_head_is_put_around_the_base_model_without_a_copy() -> None:
    import transformers as tf

    model, inputs = build(True)
    base = model.base_model
    headed, note = with_lm_head(base)
    assert "no copy" in note and headed.base_model is base
    assert headed.get_output_embeddings().weight is base.get_input_embeddings().weight
    with torch.no_grad():
        assert torch.equal(headed(**inputs).logits, model(**inputs).logits)
    untied, _ = build(False)
    built, note = with_lm_head(untied.base_model)  # an untied head has random-init weights: built as before
    assert "random-init" in note and isinstance(built, tf.Gemma3ForCausalLM)
    assert built.get_output_embeddings().weight is not untied.base_model.get_input_embeddings().weight


def test_one_gguf_parse_shares_one_reader_per_file(tmp_path: Path) -> None:
    import gguf

    from deadir.models.loading import _one_gguf_parse

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("t", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    original = gguf.GGUFReader
    assert gguf.GGUFReader(path) is not gguf.GGUFReader(path)  # the negative control: two parses
    with _one_gguf_parse():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first
        assert list(first.tensors[0].data) == [0.0] * 4
    assert gguf.GGUFReader is original


def test_gguf_dequantization_by_row_blocks_is_the_whole_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    import gguf

    from deadir.models import loading

    rows = np.random.default_rng(0).standard_normal((45, 64)).astype(np.float32)
    data = gguf.quants.quantize(rows, gguf.GGMLQuantizationType.Q8_0)
    whole = gguf.dequantize(data, gguf.GGMLQuantizationType.Q8_0)
    monkeypatch.setattr(loading, "_DEQUANT_ROWS", 7)  # 45 rows: 6 full blocks and a short one
    original = gguf.dequantize
    with loading._one_gguf_parse():
        assert gguf.dequantize is not original  # swapped during the load only
        by_rows = gguf.dequantize(data, gguf.GGMLQuantizationType.Q8_0)
        shuffled = gguf.dequantize(data[::-1], gguf.GGMLQuantizationType.Q8_0)
    assert gguf.dequantize is original
    assert by_rows.shape == whole.shape and np.array_equal(by_rows, whole)
    assert not np.array_equal(shuffled, whole)  # the comparison sees rows out of place
    assert np.abs(whole - rows).max() < 0.05  # and it is the dequantized table
