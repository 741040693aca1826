"""The chunked-vocabulary, blocked-tangent Fisher (FisherProbe.fisher_many) against the reference path.

Reference: FisherProbe.fisher_full, one JVP of the full logits per direction and Var_p over the
whole vocabulary at once (itself pinned to the dense Jacobian in test_fisher.py).

Stated tolerance: |F_chunked − F_full| ≤ rtol · max(F_chunked, F_full) + floor, with rtol = 1e-10
for models whose float64 copy computes in float64 throughout (the two paths sum the same float64
terms in different orders: O(V · u) relative, V ≤ 10³ here) and rtol = n·u (FisherProbe's
rounding depth times float32's unit roundoff) for Llama, whose RMSNorm casts to float32 inside, where
a batched and an unbatched float32 matmul may round differently; floor = FisherProbe.fisher_floor
of the median Fisher of random directions of the same tensors, the level below which an exactly
dead direction's Fisher is rounding (its value is not compared, its verdict is).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
import torch

from deadir.errors import InputShapeError
from deadir.fisher import FisherProbe, candidate_parameter_directions
from deadir.models import find_norms, tiny_config

ARCHS = ("gpt2", "gpt2-untied", "bert-mlm", "llama")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@functools.cache
def build(arch: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """(model, inputs): tiny random-init model with random norm γ, β (else every formula is degenerate)."""
    import transformers as tf

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if arch in ("gpt2", "gpt2-untied"):
            model = tf.AutoModelForCausalLM.from_config(tiny_config("gpt2", tie_word_embeddings=arch == "gpt2"))
        elif arch == "bert-mlm":
            model = tf.BertForMaskedLM(tiny_config("bert"))
        elif arch == "bert-cls":
            model = tf.BertForSequenceClassification(tiny_config("bert", num_labels=5))
        else:
            model = tf.AutoModelForCausalLM.from_config(tiny_config(arch))
    model.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for site in find_norms(model):
            module = model.get_submodule(site.path)
            d = site.spec.size
            gamma = 0.5 + torch.rand(d, generator=gen, dtype=torch.float64)
            module.weight.copy_(gamma - site.spec.weight_offset)
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(0.5 * torch.randn(d, generator=gen, dtype=torch.float64))
    ids = torch.randint(3, int(model.config.vocab_size), (2, 6), generator=torch.Generator().manual_seed(2))
    inputs = {"input_ids": ids}
    if arch.startswith("bert"):
        mask = torch.ones_like(ids)
        mask[1, 4:] = 0
        inputs["attention_mask"] = mask
    return model, inputs


def _directions(p: FisherProbe, model: Any) -> list[tuple[dict[str, torch.Tensor], float, bool]]:
    """(direction, floor, exact) for every candidate, plus random directions over the head and a mixed set."""
    cands, _ = candidate_parameter_directions(model)
    gen = torch.Generator().manual_seed(3)
    rng = np.random.default_rng(4)
    out = []
    for c in cands:
        randoms = p.fisher_many([p.random_direction(list(c.params), gen) for _ in range(3)])
        floor = p.fisher_floor(float(np.median(randoms)))
        out.append((c.perturbation(rng.standard_normal(c.free_dim), dtype=torch.float64), floor, c.exact))
    head = p.model.get_output_embeddings()
    head_names = [n for n, q in p.params.items() if q is head.weight or q is getattr(head, "bias", None)]
    body = [n for n in p.params if ".0." in n][:2]
    for names in (head_names, body, head_names + body):
        out.append((p.random_direction(names, gen), 0.0, False))
    return out


def _tolerance(p: FisherProbe) -> float:
    return 1e-10 if p.unit_roundoff < 1e-15 else p.rounding_depth() * p.unit_roundoff


def _assert_paths_agree(p: FisherProbe, directions: list[tuple[dict[str, torch.Tensor], float, bool]]) -> None:
    fast = p.fisher_many([d for d, _, _ in directions])
    rtol = _tolerance(p)
    for (d, floor, exact), value in zip(directions, fast, strict=True):
        ref = p.fisher_full(d)
        assert abs(value - ref) <= rtol * max(abs(value), abs(ref)) + floor, (value, ref, rtol, floor, list(d))
        assert (value <= floor) == (ref <= floor), (value, ref, floor)  # the same dead / live verdict
        if floor > 0:
            assert (value <= floor) == exact, (value, floor, exact, list(d))


@pytest.mark.parametrize("arch", ARCHS)
def test_chunked_blocked_fisher_equals_full_vocabulary_path(arch: str) -> None:
    model, inputs = build(arch)
    vocab = int(model.config.vocab_size)
    for chunk in (1, 7, vocab + 5):
        p = FisherProbe(model, inputs, vocab_chunk=chunk, tangent_block=3)
        assert p.chunked and p.vocab == vocab
        if chunk == 1:  # a chunk of one row per step: few directions keep the python loop short
            dirs = _directions(p, model)[-3:]
        else:
            dirs = _directions(p, model)
        _assert_paths_agree(p, dirs)


def test_block_of_one_and_block_of_many_agree() -> None:
    model, inputs = build("gpt2")
    one = FisherProbe(model, inputs, tangent_block=1)
    many = FisherProbe(model, inputs, tangent_block=16)
    dirs = [d for d, _, _ in _directions(one, model)]
    a, b = one.fisher_many(dirs), many.fisher_many(dirs)
    # dead directions (values ~1e-30, pure rounding) are not compared; every other one to 1e-10
    assert all(math.isclose(x, y, rel_tol=1e-10) or max(x, y) < 1e-25 for x, y in zip(a, b, strict=True))
    assert one.fisher(dirs[-1]) == a[-1]


def test_post_head_transform_and_no_head_fall_back_to_the_full_logits() -> None:
    # Gemma 2 soft-caps its logits after the head: chunking the head alone would be wrong, and is not used
    import transformers as tf

    cfg = tiny_config("gemma2")
    assert getattr(cfg, "final_logit_softcapping", None) is not None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    ids = torch.randint(3, int(cfg.vocab_size), (1, 5), generator=torch.Generator().manual_seed(5))
    p = FisherProbe(model, {"input_ids": ids}, vocab_chunk=3)
    assert not p.chunked
    gen = torch.Generator().manual_seed(6)
    d = p.random_direction(["model.layers.0.mlp.down_proj.weight"], gen)
    assert math.isclose(p.fisher(d), p.fisher_full(d), rel_tol=_tolerance(p))
    cls_model, cls_inputs = build("bert-cls")  # a classifier: no output embeddings
    q = FisherProbe(cls_model, cls_inputs)
    assert not q.chunked
    d = q.random_direction(["classifier.weight"], gen)
    assert math.isclose(q.fisher(d), q.fisher_full(d), rel_tol=1e-10)


@pytest.mark.parametrize("mutant", ["no-normaliser", "normaliser-off-by-log2"])
def test_planted_wrong_accumulation_is_caught(mutant: str) -> None:
    model, inputs = build("gpt2-untied")
    p = FisherProbe(model, inputs, vocab_chunk=7)
    dirs = _directions(p, model)[-3:]
    _assert_paths_agree(p, dirs)  # the unplanted probe passes
    p._lse = torch.zeros_like(p._lse) if mutant == "no-normaliser" else p._lse - math.log(2.0)
    with pytest.raises(AssertionError):
        _assert_paths_agree(p, dirs)


def test_chunk_and_block_arguments_are_checked() -> None:
    model, inputs = build("gpt2")
    with pytest.raises(InputShapeError, match="vocab_chunk"):
        FisherProbe(model, inputs, vocab_chunk=0)
    with pytest.raises(InputShapeError, match="tangent_block"):
        FisherProbe(model, inputs, tangent_block=0)
