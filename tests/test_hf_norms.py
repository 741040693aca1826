"""Every entry of the Hugging Face norm table against the real class's forward, in float64."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch

from deadir import NormSpec, known_norm_classes
from deadir.hf_norms import HF_NORM_TABLE, HFNormEntry

D = 12
EPS = 0.0371  # distinctive: a reader that takes ε from the wrong attribute (or a default) is off by ~2 %


def _instance(entry: HFNormEntry, rng: np.random.Generator) -> torch.nn.Module:
    module_name, cls_name = entry.qualified_name.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), cls_name)
    module = cls(D).to(torch.float64)
    if entry.eps_attr is not None:
        setattr(module, entry.eps_attr, EPS)
    if getattr(module, "weight", None) is not None:
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(rng.standard_normal(D) * 0.7 + 0.3))
    if entry.has_bias:
        with torch.no_grad():
            module.bias.copy_(torch.from_numpy(rng.standard_normal(D) * 0.5))
    return module


def _check(spec: NormSpec, module: torch.nn.Module, x: np.ndarray) -> None:
    # Several classes compute in float32 whatever the input dtype (Llama: .to(torch.float32)), so
    # each output entry carries a relative error ≲ 4·u32 ≈ 2.4e-7 of max|y|; 1e-5 leaves 40× headroom
    # and is still 1000× below the smallest wrong-entry effect (ε off by 0.037 on unit variance: ~2 %).
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).double().numpy()
    got = spec.apply(x)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * float(np.max(np.abs(ref))))


@pytest.mark.parametrize("entry", HF_NORM_TABLE, ids=lambda e: e.class_name)
def test_table_entry_matches_real_forward(entry: HFNormEntry, rng: np.random.Generator) -> None:
    module = _instance(entry, rng)
    spec = NormSpec.from_module(module)
    assert spec.kind == entry.kind and spec.weight_offset == entry.weight_offset
    assert (spec.bias is not None) == entry.has_bias
    assert spec.source == entry.class_name and spec.size == D
    x = rng.standard_normal((4, 3, D)) * 1.5 + 0.4  # a non-zero mean separates centring from RMS
    _check(spec, module, x)


@pytest.mark.parametrize("entry", HF_NORM_TABLE, ids=lambda e: e.class_name)
def test_wrong_table_entry_is_caught(entry: HFNormEntry, rng: np.random.Generator) -> None:
    """Negative control: each single mistake in an entry makes the same comparison fail."""
    module = _instance(entry, rng)
    spec = NormSpec.from_module(module)
    x = rng.standard_normal((4, 3, D)) * 1.5 + 0.4
    wrong_kind = "layernorm" if spec.kind == "rmsnorm" else "rmsnorm"
    mutants = [dataclasses.replace(spec, kind=wrong_kind)]
    if spec.kind != "affine-only":  # NoNorm has no ε to get wrong
        mutants.append(dataclasses.replace(spec, eps=spec.eps + 0.05))
    if spec.weight is not None:
        mutants.append(dataclasses.replace(spec, weight_offset=1.0 - spec.weight_offset))
    if spec.bias is not None:
        mutants.append(dataclasses.replace(spec, bias=None))
    for mutant in mutants:
        with pytest.raises(AssertionError):
            _check(mutant, module, x)


def test_every_table_class_is_registered_and_exists() -> None:
    known = set(known_norm_classes())
    for entry in HF_NORM_TABLE:
        assert entry.qualified_name in known
        module_name, cls_name = entry.qualified_name.rsplit(".", 1)
        assert hasattr(importlib.import_module(module_name), cls_name), entry.qualified_name


def test_t5_layernorm_is_read_as_rmsnorm_not_layernorm(rng: np.random.Generator) -> None:
    from transformers.models.t5.modeling_t5 import T5LayerNorm

    spec = NormSpec.from_module(T5LayerNorm(D))
    assert spec.kind == "rmsnorm" and not spec.has_mean_centring


def test_gemma_zero_weight_is_unit_effective_scale() -> None:
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm

    spec = NormSpec.from_module(GemmaRMSNorm(D))  # weight initialised to zeros
    np.testing.assert_array_equal(spec.weight, np.zeros(D))
    np.testing.assert_array_equal(spec.gamma, np.ones(D))


def test_qk_norm_weight_of_wrong_rank_is_a_clear_error() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from deadir import InputShapeError

    m = LlamaRMSNorm(D)
    m.weight = torch.nn.Parameter(torch.ones(2, D))
    with pytest.raises(InputShapeError, match=r"LlamaRMSNorm\.weight"):
        NormSpec.from_module(m)


def test_mobilebert_nonorm_is_affine_only_and_cohere_layernorm_centres(rng: np.random.Generator) -> None:
    from transformers.models.cohere.modeling_cohere import CohereLayerNorm
    from transformers.models.mobilebert.modeling_mobilebert import NoNorm

    nonorm = NormSpec.from_module(NoNorm(D))
    assert nonorm.kind == "affine-only" and not nonorm.has_mean_centring and nonorm.predicted_kernel().shape == (D, 0)
    cohere = NormSpec.from_module(CohereLayerNorm(D))
    assert cohere.kind == "layernorm" and cohere.has_mean_centring and cohere.bias is None
