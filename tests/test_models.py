"""find_norms / final_norm / random_init_like on tiny random-init models of every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deadir import InputShapeError, NormSpec, UnknownNormError, arch, final_norm, find_norms, random_init_like
from deadir.models import random_model, spec_from_probe, tiny_config

LAYERNORM_FAMILIES = ("gpt2", "opt", "gpt_neox", "bloom", "falcon", "phi", "bert", "roberta", "mpnet", "vit", "clip",
                      "whisper", "olmo")
RMSNORM_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "t5", "olmo2")

# family -> (number of norm sites in the tiny 2-layer model, final-norm paths)
EXPECTED = {
    "gpt2": (5, ["ln_f"]),
    "opt": (5, ["decoder.final_layer_norm"]),
    "gpt_neox": (5, ["final_layer_norm"]),
    "bloom": (6, ["ln_f"]),
    "falcon": (3, ["ln_f"]),
    "phi": (3, ["final_layernorm"]),
    "bert": (5, ["encoder.layer.1.output.LayerNorm"]),
    "roberta": (5, ["encoder.layer.1.output.LayerNorm"]),
    "mpnet": (5, ["encoder.layer.1.output.LayerNorm"]),
    "vit": (5, ["layernorm"]),
    "clip": (11, ["text_model.final_layer_norm", "vision_model.post_layernorm"]),
    "whisper": (12, ["encoder.layer_norm", "decoder.layer_norm"]),
    "olmo": (5, ["norm"]),
    "llama": (5, ["norm"]),
    "mistral": (5, ["norm"]),
    "qwen2": (5, ["norm"]),
    "qwen3": (9, ["norm"]),
    "gemma": (5, ["norm"]),
    "gemma2": (9, ["norm"]),
    "gemma3_text": (13, ["norm"]),
    "t5": (12, ["encoder.final_layer_norm", "decoder.final_layer_norm"]),
    "olmo2": (9, ["norm"]),
}


def test_expected_families_have_records_of_their_kind() -> None:
    assert set(EXPECTED) == set(LAYERNORM_FAMILIES) | set(RMSNORM_FAMILIES)
    for family in EXPECTED:
        record = arch.get(family)
        assert record.tiny_config is not None
        assert record.norm_kind == ("layernorm" if family in LAYERNORM_FAMILIES else "rmsnorm")


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_find_norms_reads_every_site_of_a_family(model_type: str, rng: np.random.Generator) -> None:
    model = random_model(model_type).double()
    sites = find_norms(model)
    n_sites, finals = EXPECTED[model_type]
    assert len(sites) == n_sites
    assert [s.path for s in final_norm(model)] == finals
    assert [s.path for s in sites if s.role == "final"] == finals
    want_kind = "layernorm" if model_type in LAYERNORM_FAMILIES else "rmsnorm"
    assert {s.spec.kind for s in sites} == {want_kind}
    assert not any(s.probed for s in sites)
    want_offset = 1.0 if model_type.startswith("gemma") else 0.0
    assert {s.spec.weight_offset for s in sites} == {want_offset}
    # each spec reproduces its module's forward: the spec really is the module
    for s in sites:
        module = model.get_submodule(s.path)
        with torch.no_grad():
            for p in module.parameters():  # random γ, β so a mixed-up parameter shows
                p.copy_(torch.from_numpy(rng.standard_normal(p.shape) * 0.5))
        spec = NormSpec.from_module(module)
        x = rng.standard_normal((6, spec.size)) + 0.3
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).double().numpy()
        # float32 internals in some classes: ≲ 4·u32 relative; see test_hf_norms
        np.testing.assert_allclose(spec.apply(x), ref, rtol=0, atol=1e-5 * float(np.max(np.abs(ref))))


def _roles(model_type: str) -> dict[str, tuple[str, str, int | None]]:
    return {s.path: (s.role, s.stack, s.block) for s in find_norms(random_model(model_type))}


def test_roles_and_stacks_per_architecture() -> None:
    llama = _roles("llama")
    assert llama["layers.1.post_attention_layernorm"] == ("block-input", "decoder", 1)  # pre-MLP norm
    gemma2 = _roles("gemma2")
    assert gemma2["layers.0.post_attention_layernorm"] == ("block-output", "decoder", 0)
    assert gemma2["layers.0.pre_feedforward_layernorm"] == ("block-input", "decoder", 0)
    olmo2 = _roles("olmo2")
    assert olmo2["layers.1.post_feedforward_layernorm"][0] == "block-output"
    assert olmo2["layers.1.self_attn.q_norm"][0] == "attention-qk"
    qwen3 = _roles("qwen3")
    assert qwen3["layers.0.self_attn.k_norm"] == ("attention-qk", "decoder", 0)
    bert = _roles("bert")
    assert bert["embeddings.LayerNorm"] == ("embedding", "encoder", None)
    assert bert["encoder.layer.0.attention.output.LayerNorm"] == ("block-output", "encoder", 0)
    assert bert["encoder.layer.1.output.LayerNorm"] == ("final", "encoder", 1)
    assert _roles("bloom")["word_embeddings_layernorm"][0] == "embedding"
    clip = _roles("clip")
    assert clip["vision_model.pre_layrnorm"] == ("embedding", "vision", None)
    assert clip["text_model.encoder.layers.0.layer_norm1"] == ("block-input", "text", 0)
    assert clip["vision_model.post_layernorm"] == ("final", "vision", None)
    whisper = _roles("whisper")
    assert whisper["encoder.layers.1.final_layer_norm"] == ("block-input", "encoder", 1)
    assert whisper["decoder.layer_norm"] == ("final", "decoder", None)
    t5 = _roles("t5")
    assert t5["decoder.block.1.layer.2.layer_norm"] == ("block-input", "decoder", 1)
    assert _roles("vit")["layernorm"] == ("final", "vision", None)


def test_post_ln_opt_uses_last_block_norm_as_final() -> None:
    model = random_init_like(tiny_config("opt", do_layer_norm_before=False))
    sites = find_norms(model)
    assert [s.path for s in final_norm(model)] == ["decoder.layers.1.final_layer_norm"]
    assert {s.role for s in sites if s.block is not None and s.block == 0} == {"block-output"}


def test_head_models_with_prefixes() -> None:
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    gpt = GPT2LMHeadModel(tiny_config("gpt2"))
    assert [s.path for s in final_norm(gpt)] == ["transformer.ln_f"]
    llama = LlamaForCausalLM(tiny_config("llama"))
    assert [s.path for s in final_norm(llama)] == ["model.norm"]


# ---------------------------------------------------------------- unknown classes: probing


class HandMadeLayerNorm(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(0.5, 2.0, d))
        self.bias = torch.nn.Parameter(torch.linspace(-0.3, 0.3, d))
        self.eps = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xc = x - x.mean(-1, keepdim=True)
        return xc / torch.sqrt((xc * xc).mean(-1, keepdim=True) + self.eps) * self.weight + self.bias


class OnePlusRMSNorm(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(-0.5, 0.5, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * (1.0 + self.weight)


class ScaleByRms(torch.nn.Module):  # not named like a norm, but has a 1-D weight and normalises
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(0.5, 1.5, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.pow(2).mean(-1, keepdim=True).sqrt() * self.weight


class PlainScale(torch.nn.Module):  # 1-D weight, no normalisation: not a norm
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(0.5, 1.5, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class ImageOnlyNorm(torch.nn.Module):  # named like a norm, refuses (n, d) input
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError("expected NCHW")
        return x


class Toy(torch.nn.Module):
    def __init__(self, d: int, *extra: torch.nn.Module) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(d, d)
        self.ln = HandMadeLayerNorm(d)
        self.rms = OnePlusRMSNorm(d)
        self.scale_rms = ScaleByRms(d)
        self.scale = PlainScale(d)
        self.extra = torch.nn.ModuleList(extra)


def test_unknown_norms_are_probed_and_reported() -> None:
    d = 16
    sites = {s.path: s for s in find_norms(Toy(d))}
    assert set(sites) == {"ln", "rms", "scale_rms"}  # proj (2-D weight) and the plain scale are not norms
    assert all(s.probed for s in sites.values())
    ln = sites["ln"].spec
    assert ln.kind == "layernorm" and ln.weight_offset == 0.0
    np.testing.assert_array_equal(ln.gamma, HandMadeLayerNorm(d).weight.detach().double().numpy())
    assert ln.bias is not None
    np.testing.assert_allclose(ln.beta, np.linspace(-0.3, 0.3, d), atol=1e-5)
    rms = sites["rms"].spec
    assert rms.kind == "rmsnorm" and rms.weight_offset == 1.0  # the (1 + w) scaling was recognised
    assert sites["scale_rms"].spec.kind == "rmsnorm"


def test_probe_failure_of_a_norm_named_module_is_an_error_not_silence() -> None:
    model = Toy(8, ImageOnlyNorm(8))
    with pytest.raises(UnknownNormError, match=r"extra\.0 \(ImageOnlyNorm\).*could not be probed"):
        find_norms(model)
    assert "extra.0" not in {s.path for s in find_norms(model, errors="skip")}


def test_spec_from_probe_matches_the_forward(rng: np.random.Generator) -> None:
    module = HandMadeLayerNorm(10)
    spec = spec_from_probe(module, 10)
    assert spec is not None
    x = rng.standard_normal((5, 10)) * 2
    np.testing.assert_allclose(spec.apply(x), module(torch.from_numpy(x).float()).detach().double().numpy(),
                               atol=1e-4)


def test_no_norms_and_bad_inputs() -> None:
    plain = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    assert find_norms(plain) == []
    with pytest.raises(UnknownNormError, match="no final norm"):
        final_norm(plain)
    with pytest.raises(UnknownNormError, match=r"torch\.nn\.Module"):
        find_norms("not a model")
    with pytest.raises(UnknownNormError, match="no tiny config"):
        tiny_config("no_such_model")
    with pytest.raises(UnknownNormError, match="transformers model or config"):
        random_init_like(plain)
    two_axis = torch.nn.Sequential(torch.nn.LayerNorm((3, 4)))
    with pytest.raises(InputShapeError, match=r"^0: .*more than one dimension"):
        find_norms(two_axis)


# ---------------------------------------------------------------- random_init_like


def test_random_init_like_builds_the_same_architecture_at_init() -> None:
    trained = random_model("gpt2")
    with torch.no_grad():
        trained.ln_f.weight.mul_(3.0)
    trained = trained.to(torch.float64)
    state = torch.random.get_rng_state()
    init = random_init_like(trained, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert type(init) is type(trained) and not init.training
    assert {k: v.shape for k, v in init.state_dict().items()} == {k: v.shape for k, v in trained.state_dict().items()}
    assert next(init.parameters()).dtype == torch.float64
    assert torch.equal(init.ln_f.weight, torch.ones(32, dtype=torch.float64))  # LayerNorm init: γ = 1
    again = random_init_like(trained, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(init.state_dict().values(), again.state_dict().values(), strict=True))
    other = random_init_like(trained, seed=8)
    assert not torch.equal(init.h[0].attn.c_attn.weight, other.h[0].attn.c_attn.weight)


def test_random_init_from_config() -> None:
    model = random_init_like(tiny_config("qwen3"))
    assert type(model).__name__ == "Qwen3Model"


def test_batchnorm_and_instancenorm_are_not_sites() -> None:
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.InstanceNorm1d(4),
                               torch.nn.LayerNorm(4))
    assert [s.path for s in find_norms(conv)] == ["3"]


def test_final_norm_from_a_list_of_sites() -> None:
    sites = find_norms(random_model("whisper"))
    assert [s.path for s in final_norm(sites)] == ["encoder.layer_norm", "decoder.layer_norm"]
    import dataclasses

    unmarked = [dataclasses.replace(s, role="other") if s.role == "final" else s for s in sites]
    assert [s.path for s in final_norm(unmarked, model_type="whisper")] == ["encoder.layer_norm", "decoder.layer_norm"]
    with pytest.raises(UnknownNormError, match="no final norm"):
        final_norm(unmarked, model_type="t5")  # T5's rule names final_layer_norm outside blocks: none here
