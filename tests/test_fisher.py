"""Parameter-space dead directions (T7, T8) and the directional Fisher information.

Tiny random-init models of the GPT-2, GPT-Neo, BERT, Llama and Gemma families (hidden 32,
2 layers). Random init has γ = 1, β = 0, which would make every formula degenerate (γ⁻¹ = 𝟙,
⟨γ⁻¹, β⟩ = 0), so every norm gets random γ (mixed signs, |γ| ∈ [0.5, 1.5]) and β ~ N(0, 0.5²)
first.

Tolerances: the Fisher of an exactly dead direction is pure float64 rounding; the floor is
FisherProbe.fisher_floor = (n·u)² × (median Fisher of random unit directions of the same
tensors), n = rounding_depth (a pessimistic recursive-summation length, γ_n ≈ n·u), and the
logit change floor is FisherProbe.change_floor = 2·n·u·(max|logits| + random change). For the
models here n ≈ 10³, so the Fisher floor sits ~26 orders of magnitude below the random median.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
import torch

import deadir
from deadir.fisher import (
    DeadDirection,
    FisherProbe,
    UnsupportedArchitectureError,
    candidate_parameter_directions,
    dead_parameter_directions,
    dense_fisher,
    directional_fisher,
    fisher_report,
    function_change,
)
from deadir.models import find_norms, tiny_config
from deadir.report import dumps

LN_ARCHS = ("gpt2", "gpt2-untied", "gpt_neo", "bert-mlm", "bert-cls", "roberta-mlm")
RMS_ARCHS = ("llama", "gemma", "gemma2", "gemma3_text")
ARCHS = LN_ARCHS + RMS_ARCHS


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_norms(model: Any, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for site in find_norms(model):
            module = model.get_submodule(site.path)
            d = site.spec.size
            gamma = (0.5 + torch.rand(d, generator=gen, dtype=torch.float64)) * torch.where(
                torch.rand(d, generator=gen, dtype=torch.float64) < 0.2, -1.0, 1.0
            )
            if site.spec.kind == "rmsnorm":
                gamma = gamma.abs()
            module.weight.copy_(gamma - site.spec.weight_offset)
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(0.5 * torch.randn(d, generator=gen, dtype=torch.float64))


@functools.cache
def build(arch: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """(model, inputs) for one test architecture, built once per session."""
    import transformers as tf

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if arch in ("gpt2", "gpt2-untied"):
            model = tf.AutoModelForCausalLM.from_config(tiny_config("gpt2", tie_word_embeddings=arch == "gpt2"))
        elif arch == "gpt_neo":
            cfg = tf.GPTNeoConfig(hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]],
                                  window_size=4, vocab_size=128, max_position_embeddings=64, bos_token_id=0,
                                  eos_token_id=1)
            model = tf.GPTNeoForCausalLM(cfg)
        elif arch == "bert-mlm":
            model = tf.BertForMaskedLM(tiny_config("bert"))
        elif arch == "bert-cls":
            model = tf.BertForSequenceClassification(tiny_config("bert", num_labels=5))
        elif arch == "roberta-mlm":
            model = tf.RobertaForMaskedLM(tiny_config("roberta"))
        else:
            model = tf.AutoModelForCausalLM.from_config(tiny_config(arch))
    model.eval()
    _randomise_norms(model, seed=1)
    if arch == "gpt_neo":
        with torch.no_grad():  # block 0 reads a β = 0 LayerNorm (read-beta0); block 1 keeps β ≠ 0 (keys-constant)
            model.transformer.h[0].ln_1.bias.zero_()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(3, int(model.config.vocab_size), (2, 8), generator=gen)
    inputs = {"input_ids": ids}
    if arch.startswith(("bert", "roberta")):
        mask = torch.ones_like(ids)
        mask[1, 6:] = 0  # padding: excluded from the averages
        inputs["attention_mask"] = mask
    return model, inputs


@functools.cache
def probe(arch: str) -> FisherProbe:
    model, inputs = build(arch)
    return FisherProbe(model, inputs)


@functools.cache
def report(arch: str) -> deadir.fisher.FisherReport:
    model, inputs = build(arch)
    return fisher_report(model, inputs, n_random=4, seed=0)


def _random_median(p: FisherProbe, names: list[str], n: int = 4, seed: int = 0) -> float:
    gen = torch.Generator().manual_seed(seed)
    return float(np.median([p.fisher(p.random_direction(names, gen)) for _ in range(n)]))


EXPECTED_FAMILIES = {
    "gpt2": {"read-bias", "write-residual", "lm-head-softmax"},
    "gpt2-untied": {"read-bias", "write-residual", "lm-head-softmax"},
    "gpt_neo": {"read-bias", "read-beta0", "keys-constant", "write-residual", "lm-head-softmax"},
    "bert-mlm": {"read-bias", "write-residual", "lm-head-softmax"},
    "bert-cls": {"read-bias", "write-residual"},
    "roberta-mlm": {"read-bias", "write-residual", "lm-head-softmax"},
}


@pytest.mark.parametrize("arch", LN_ARCHS)
def test_layernorm_dead_directions_have_zero_fisher(arch: str) -> None:
    rep = report(arch)
    assert all(r.agrees for r in rep.rows)
    exact_rows = [r for r in rep.rows if r.exact]
    assert {r.family for r in exact_rows} == EXPECTED_FAMILIES[arch]
    for row in exact_rows:
        assert row.measured == "dead", row
        assert row.max_fisher <= row.floor, row
        # the floor is far below what a generic direction of the same tensors gives (≥ 26 orders in float64;
        # GPT-Neo computes attention scores in float32 inside its float64 copy, which lifts its floor)
        assert row.median_random_fisher > 1e3 * row.floor, row
        # many orders: below u times random directions (≥ 16 orders in float64, ≥ 7 where float32 is inside)
        assert row.max_ratio < probe(arch).unit_roundoff, row
    # every enumerated direction is in the report
    model, _ = build(arch)
    assert sum(r.count for r in exact_rows) == len(dead_parameter_directions(model))


def test_every_enumerated_direction_is_dead_one_by_one() -> None:
    # per direction, several random free vectors, against the random median of the same tensors
    model, _ = build("gpt_neo")
    p = probe("gpt_neo")
    rng = np.random.default_rng(3)
    for direction in dead_parameter_directions(model):
        med = _random_median(p, list(direction.params), n=3)
        value = p.fisher(direction.perturbation(rng.standard_normal(direction.free_dim), dtype=torch.float64))
        assert 0.0 <= value <= p.fisher_floor(med), (direction.module, value, med)


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neo", "bert-mlm"])
def test_dead_directions_keep_the_logits_at_finite_t(arch: str) -> None:
    model, _ = build(arch)
    p = probe(arch)
    gen = torch.Generator().manual_seed(4)
    rng = np.random.default_rng(4)
    t = 0.5
    for direction in dead_parameter_directions(model):
        random_change = float(np.median([
            p.function_change(p.random_direction(list(direction.params), gen), t) for _ in range(3)
        ]))
        floor = p.change_floor(random_change)
        change = p.function_change(direction.perturbation(rng.standard_normal(direction.free_dim),
                                                          dtype=torch.float64), t)
        assert change <= floor, (direction.module, change, floor)
        if p.unit_roundoff < 1e-15:  # float64 throughout; GPT-Neo's float32 attention scores round at 6e-8
            assert random_change > 1e6 * floor, (direction.module, random_change, floor)


@pytest.mark.parametrize("arch", RMS_ARCHS)
def test_rmsnorm_formulas_are_not_dead(arch: str) -> None:
    model, _ = build(arch)
    assert dead_parameter_directions(model) == []
    candidates, notes = candidate_parameter_directions(model)
    assert any("no LayerNorm" in n for n in notes)
    negative = [c for c in candidates if not c.exact]
    assert {c.family for c in negative} >= {"read-beta0", "write-residual"}
    rep = report(arch)
    for row in rep.rows:
        if row.exact:
            continue
        assert row.measured == "live", row
        # comparable to random directions of the same tensors (ratios measured 0.2-2), not orders below
        assert 0.05 < row.min_ratio <= row.max_ratio < 20, row
        # every direction above the rounding floor, and the floor far below the scale of the measurement
        # (per direction the margin is that of its own tensors: Gemma 2's smallest sits 61× above the floor,
        # its random directions of the same tensors being equally small)
        assert row.min_fisher > row.floor and row.median_random_fisher > 1e3 * row.floor, row


def test_softmax_shift_of_an_untied_head_is_dead_whatever_the_norm() -> None:
    # Llama's head is untied: δW = 𝟙wᵀ only shifts every logit of a position, so it is dead
    # although the final norm is an RMSNorm; it is therefore not reported as a LayerNorm direction.
    model, _ = build("llama")
    head = [c for c in candidate_parameter_directions(model)[0] if c.family == "lm-head-softmax"]
    assert len(head) == 1 and head[0].exact and head[0].norm_kind == "rmsnorm"
    assert head[0] not in dead_parameter_directions(model)
    row = next(r for r in report("llama").rows if r.family == "lm-head-softmax")
    assert row.measured == "dead"
    # Gemma ties the head to the embedding, so the same shift moves the embeddings into an RMSNorm stream: live
    gemma_row = next(r for r in report("gemma").rows if r.family == "lm-head-softmax")
    assert not gemma_row.exact and gemma_row.measured == "live"


@pytest.mark.parametrize("softcap", [0.1, None], ids=["soft-capped", "plain"])
def test_softmax_shift_of_a_soft_capped_head_is_not_dead(softcap: float | None) -> None:
    """Gemma 2 caps its logits (cap·tanh(ℓ/cap)) before the softmax: the common shift is live there.

    The cap is set comparable to random-init logits (Gemma 2's own 30 is nearly linear on them, so
    the shift would be live only at second order, below the float32 floor of this tiny model).
    """
    import transformers as tf

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tf.AutoModelForCausalLM.from_config(
            tiny_config("gemma2", tie_word_embeddings=False, final_logit_softcapping=softcap)).eval()
    (head,) = [c for c in candidate_parameter_directions(model)[0] if c.family == "lm-head-softmax"]
    assert head.exact == (softcap is None) and ("soft-capped" in head.reason) == (softcap is not None)
    ids = torch.randint(3, int(model.config.vocab_size), (2, 8), generator=torch.Generator().manual_seed(2))
    row = next(r for r in fisher_report(model, {"input_ids": ids}, n_random=3, seed=0).rows
               if r.family == "lm-head-softmax")
    assert row.agrees and row.measured == ("dead" if softcap is None else "live"), row


def test_tied_head_in_a_layernorm_model_is_restricted_to_ones() -> None:
    model, _ = build("bert-mlm")
    cands = candidate_parameter_directions(model)[0]
    tied = [c for c in cands if c.family == "lm-head-softmax"]
    assert len(tied) == 1 and tied[0].exact and tied[0].free_dim == 2  # c 𝟙𝟙ᵀ on W and c' 𝟙 on the bias
    # the read-bias formula on the tied decoder would move the word embeddings by u_v γ⁻¹: predicted and measured live
    decoder = [c for c in cands if c.family == "read-bias" and c.module == "cls.predictions.decoder"]
    assert len(decoder) == 1 and not decoder[0].exact
    row = next(r for r in report("bert-mlm").rows if r.family == "read-bias" and not r.exact)
    assert row.measured == "live"


def _by_module(model: Any, module: str, family: str) -> DeadDirection:
    return next(c for c in dead_parameter_directions(model) if c.module == module and c.family == family)


def test_mutated_formulas_are_not_dead() -> None:
    # negative controls on a LayerNorm model: drop one ingredient of each formula and the direction comes alive
    model, _ = build("gpt2")
    p = probe("gpt2")
    rng = np.random.default_rng(5)
    read = _by_module(model, "transformer.h.1.mlp.c_fc", "read-bias")
    good = read.perturbation(rng.standard_normal(read.free_dim), dtype=torch.float64)
    med = _random_median(p, list(read.params))
    floor = p.fisher_floor(med)
    assert p.fisher(good) <= floor
    no_bias = dict(good)
    no_bias["transformer.h.1.mlp.c_fc.bias"] = torch.zeros_like(good["transformer.h.1.mlp.c_fc.bias"])
    assert p.fisher(no_bias) > 1e15 * floor  # δb = −⟨γ⁻¹,β⟩u is needed
    spec = next(s for s in find_norms(model) if s.path == "transformer.h.1.ln_2").spec
    ones = torch.ones(128, dtype=torch.float64)
    gamma_not_inverse = {
        "transformer.h.1.mlp.c_fc.weight": torch.outer(torch.as_tensor(spec.gamma), ones),
        "transformer.h.1.mlp.c_fc.bias": torch.full((128,), -float(spec.gamma @ spec.beta), dtype=torch.float64),
    }
    assert p.fisher(gamma_not_inverse) > 1e15 * floor  # γ instead of γ⁻¹
    write = _by_module(model, "transformer.h.0.mlp.c_proj", "write-residual")
    w = write.perturbation(rng.standard_normal(write.free_dim), dtype=torch.float64)
    wmed = _random_median(p, list(write.params))
    assert p.fisher(w) <= p.fisher_floor(wmed)
    not_ones = {k: v * torch.linspace(0.5, 1.5, v.shape[-1], dtype=torch.float64) for k, v in w.items()}
    assert p.fisher(not_ones) > 1e15 * p.fisher_floor(wmed)  # a write that is not along 𝟙 is seen by LN


def test_constant_key_shift_is_dead_but_a_constant_query_shift_is_not() -> None:
    model, _ = build("gpt_neo")
    p = probe("gpt_neo")
    keys = _by_module(model, "transformer.h.1.attn.attention.k_proj", "keys-constant")
    med = _random_median(p, list(keys.params))
    u = np.random.default_rng(6).standard_normal(keys.free_dim)
    assert p.fisher(keys.perturbation(u, dtype=torch.float64)) <= p.fisher_floor(med)
    # q_proj and v_proj are bias-free and read a LayerNorm with β ≠ 0: no exact direction, none enumerated
    modules = {c.module for c in candidate_parameter_directions(model)[0]}
    assert "transformer.h.1.attn.attention.q_proj" not in modules
    ginv = 1.0 / np.asarray(next(s for s in find_norms(model) if s.path == "transformer.h.1.ln_1").spec.gamma)
    same_formula_on_queries = {"transformer.h.1.attn.attention.q_proj.weight": torch.as_tensor(np.outer(u, ginv))}
    q_med = _random_median(p, ["transformer.h.1.attn.attention.q_proj.weight"])
    value = p.fisher(same_formula_on_queries)
    assert value > 1e3 * p.fisher_floor(q_med) and value > 0.05 * q_med


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_fisher_matches_dense_jacobian(arch: str) -> None:
    model, inputs = build(arch)
    small = {k: v[:1, :4] for k, v in inputs.items()}
    name = "transformer.h.0.attn.c_proj" if arch == "gpt2" else "model.layers.0.self_attn.o_proj"
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(7)
    direction = {n: torch.randn(params[n].shape, generator=gen, dtype=torch.float64)
                 for n in (f"{name}.weight", f"{name}.bias") if n in params}
    jvp_value = directional_fisher(model, small, direction)
    dense_value = dense_fisher(model, small, direction)
    assert jvp_value > 0
    # GPT-2's float64 copy is float64 throughout: rtol 1e-8. Llama's code casts to float32 inside (RMSNorm
    # upcast, softmax dtype=float32), so forward and reverse mode agree to float32 rounding: n·u32
    small_probe = FisherProbe(model, small)
    rtol = 1e-8 if small_probe.unit_roundoff < 1e-15 else small_probe.rounding_depth() * small_probe.unit_roundoff
    assert arch == "llama" or rtol == 1e-8
    assert math.isclose(jvp_value, dense_value, rel_tol=rtol), (jvp_value, dense_value, rtol)


@pytest.mark.parametrize("arch", ARCHS)
def test_consumer_table_matches_the_dataflow(arch: str) -> None:
    # every consumer in the table really reads (rows of) its norm's output
    model, inputs = build(arch)
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    cands = [c for c in candidate_parameter_directions(model)[0] if c.family != "write-residual"
             and "(tied" not in c.module]
    assert cands
    for c in cands:
        hooks.append(model.get_submodule(c.site).register_forward_hook(
            lambda _m, _i, out, key=c.site: seen.__setitem__(key, out)))
        hooks.append(model.get_submodule(c.module).register_forward_pre_hook(
            lambda _m, args, key=c.module: seen.__setitem__(key, args[0])))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for h in hooks:
            h.remove()
    for c in cands:
        norm_rows = seen[c.site].reshape(-1, seen[c.site].shape[-1])
        read_rows = seen[c.module].reshape(-1, norm_rows.shape[-1])
        found = (read_rows[:, None, :] == norm_rows[None, :, :]).all(-1).any(-1)
        assert bool(found.all()), (c.module, c.site)


def test_perturbation_contract() -> None:
    model, _ = build("gpt2")
    params = dict(model.named_parameters())
    for c in candidate_parameter_directions(model)[0]:
        delta = c.perturbation()
        assert set(delta) == set(c.params)
        for name, tensor in delta.items():
            assert tensor.shape == params[name].shape and tensor.dtype == params[name].dtype
        assert all(t.dtype == torch.float64 for t in c.perturbation(dtype=torch.float64).values())
        assert c.reason and c.to_dict()["family"] == c.family
        with pytest.raises(deadir.InputShapeError, match="u_or_w"):
            c.perturbation(np.ones(c.free_dim + 1))
    # Conv1D layout: GPT-2's fused c_attn weight is (in, out) = (32, 96); δW = γ⁻¹ uᵀ there
    attn = _by_module(model, "transformer.h.0.attn.c_attn", "read-bias")
    assert attn.free_dim == 96
    u = np.arange(96.0)
    w = attn.perturbation(u, dtype=torch.float64)["transformer.h.0.attn.c_attn.weight"].numpy()
    spec = next(s for s in find_norms(model) if s.path == "transformer.h.0.ln_1").spec
    np.testing.assert_array_equal(w, np.outer(1.0 / spec.gamma, u))


def test_public_functions_and_errors() -> None:
    model, inputs = build("gpt2")
    direction = _by_module(model, "transformer.h.0.mlp.c_fc", "read-bias")
    ids = inputs["input_ids"]
    value = directional_fisher(model, ids, direction)  # a tensor of ids works, as does the dict
    assert value == directional_fisher(model, inputs, direction)
    assert function_change(model, ids, direction, 0.5) < 1e-10
    with pytest.raises(deadir.InputShapeError, match="token ids"):
        directional_fisher(model, ids.double(), direction)
    with pytest.raises(deadir.InputShapeError, match="not a parameter name"):
        directional_fisher(model, ids, {"nope.weight": torch.zeros(3)})
    with pytest.raises(deadir.InputShapeError, match="shape"):
        directional_fisher(model, ids, {"transformer.wte.weight": torch.zeros(3)})
    # a tied parameter may be named by its alias
    tied = {"lm_head.weight": torch.ones(128, 32)}
    canonical = {"transformer.wte.weight": tied["lm_head.weight"]}
    assert directional_fisher(model, ids, tied) == directional_fisher(model, ids, canonical)
    with pytest.raises(deadir.InputShapeError, match="non-zero"):
        directional_fisher(model, ids, {"transformer.ln_f.bias": torch.zeros(32)})
    with pytest.raises(deadir.InputShapeError, match="finite"):
        function_change(model, ids, direction, math.nan)
    with pytest.raises(deadir.InputShapeError, match="logits"):
        directional_fisher(model.transformer, ids, direction)
    with pytest.raises(UnsupportedArchitectureError, match="no consumer table"):
        dead_parameter_directions(torch.nn.Sequential(torch.nn.LayerNorm(4), torch.nn.Linear(4, 4)))
    # the original model is untouched (the probe works on a float64 copy)
    assert next(model.parameters()).dtype == torch.float32


def test_masked_positions_are_left_out() -> None:
    p = probe("bert-mlm")
    direction = {"bert.encoder.layer.1.output.dense.bias": torch.linspace(-1, 1, 32, dtype=torch.float64)}
    j = p.jvp(direction).reshape(-1, p.vocab)
    probs = p.p
    per = (probs * j * j).sum(-1) - (probs * j).sum(-1) ** 2
    keep = p.inputs["attention_mask"].reshape(-1).bool()
    assert math.isclose(p.fisher(direction), float(per[keep].mean()), rel_tol=1e-12)
    assert not math.isclose(float(per[keep].mean()), float(per.mean()), rel_tol=1e-6)


def test_report_renders_and_serialises() -> None:
    rep = report("gpt2")
    text = rep.render()
    assert "median random Fisher" in text and "write-residual" in text and "note:" in text
    data = rep.to_dict()
    assert data["measure_dtype"] == "float64" and data["forward_dtype"] == "float32"
    assert all(row["agrees"] for row in data["rows"])
    dumps(data)  # strict JSON
    gemma = report("gemma").to_dict()
    assert not any(row["exact"] for row in gemma["rows"]) and all(row["agrees"] for row in gemma["rows"])


def test_with_lm_head_wraps_a_base_model() -> None:
    from deadir.fisher import with_lm_head
    from deadir.models import random_model

    base = random_model("bert", seed=3)
    headed, note = with_lm_head(base, seed=0)
    assert type(headed).__name__ == "BertForMaskedLM" and "random-init" in note
    torch.testing.assert_close(headed.bert.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight)
    assert headed.cls.predictions.decoder.weight is headed.bert.embeddings.word_embeddings.weight  # tied: real
    model, _ = build("gpt2")
    assert with_lm_head(model)[0] is model


def test_cli_verify_fisher_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from deadir.cli import main

    status = main(["verify", "random:gpt2", "--tokens", "16", "--sites", "all", "--fisher", "--fisher-random", "2",
                   "--json", "--no-progress"])
    assert status == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["fisher"]["rows"]
    assert {r["family"] for r in rows} == {"read-bias", "write-residual", "lm-head-softmax"}
    assert all(r["agrees"] and r["measured"] == "dead" for r in rows)
    # --sites final: the final norm's reader is the head; only its rows, with the same numbers as in the full report
    status = main(["verify", "random:gpt2", "--tokens", "16", "--sites", "final", "--fisher", "--fisher-random", "2",
                   "--json", "--no-progress"])
    assert status == 0
    final = json.loads(capsys.readouterr().out)["fisher"]["rows"]
    assert final and all(r["layer"] == "head" for r in final)
    assert final == [r for r in rows if r["layer"] == "head"]
