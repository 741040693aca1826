from __future__ import annotations

import numpy as np
import pytest
import torch

from deadir import DegenerateScaleError, InputShapeError, NormSpec, UnknownNormError, known_norm_classes


def _ln_ref(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def test_layernorm_apply_matches_torch_in_float64(rng: np.random.Generator) -> None:
    d = 13
    m = torch.nn.LayerNorm(d, eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(rng.standard_normal(d)))
        m.bias.copy_(torch.from_numpy(rng.standard_normal(d)))
    spec = NormSpec.from_module(m)
    assert spec.kind == "layernorm" and spec.eps == 1e-3 and spec.size == d and spec.dtype == "float64"
    x = rng.standard_normal((5, 3, d))
    np.testing.assert_allclose(spec.apply(x), m(torch.from_numpy(x)).detach().numpy(), rtol=1e-13, atol=1e-13)


def test_layernorm_without_bias_and_without_affine() -> None:
    nob = NormSpec.from_module(torch.nn.LayerNorm(6, bias=False))
    assert nob.weight is not None and nob.bias is None
    none = NormSpec.from_module(torch.nn.LayerNorm(6, elementwise_affine=False))
    assert none.weight is None and none.bias is None and none.size == 6
    np.testing.assert_array_equal(none.gamma, np.ones(6))
    np.testing.assert_array_equal(none.beta, np.zeros(6))


def test_rmsnorm_apply_matches_torch(rng: np.random.Generator) -> None:
    m = torch.nn.RMSNorm(9, eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(rng.standard_normal(9)))
    spec = NormSpec.from_module(m)
    assert spec.kind == "rmsnorm" and spec.bias is None
    x = rng.standard_normal((4, 9))
    np.testing.assert_allclose(spec.apply(x), m(torch.from_numpy(x)).detach().numpy(), rtol=1e-13)


def test_rmsnorm_default_eps_is_machine_epsilon_of_its_dtype() -> None:
    assert NormSpec.from_module(torch.nn.RMSNorm(4)).eps == float(torch.finfo(torch.float32).eps)


def test_groupnorm_apply_matches_torch(rng: np.random.Generator) -> None:
    m = torch.nn.GroupNorm(3, 12, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(rng.standard_normal(12)))
        m.bias.copy_(torch.from_numpy(rng.standard_normal(12)))
    spec = NormSpec.from_module(m)
    assert spec.kind == "groupnorm" and spec.groups == 3
    x = rng.standard_normal((7, 12))
    np.testing.assert_allclose(spec.apply(x), m(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-13)


def test_scale_then_centre_and_none_forwards(rng: np.random.Generator) -> None:
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    x = rng.standard_normal((3, 5))
    stc = NormSpec("scale-then-centre", gamma, beta, eps=0.0)
    np.testing.assert_allclose(stc.apply(x), _ln_ref(x * gamma, np.ones(5), beta, 0.0), rtol=1e-14)
    np.testing.assert_allclose(NormSpec("affine-only", gamma, beta).apply(x), x * gamma + beta)


def test_gemma_weight_offset_scales_by_one_plus_w(rng: np.random.Generator) -> None:
    w = rng.standard_normal(6)
    spec = NormSpec("rmsnorm", w, None, eps=1e-6, weight_offset=1.0)
    np.testing.assert_allclose(spec.gamma, 1.0 + w)
    x = rng.standard_normal((2, 6))
    ref = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * (1.0 + w)
    np.testing.assert_allclose(spec.apply(x), ref, rtol=1e-14)


def test_predicted_kernels() -> None:
    gamma = np.array([1.0, 2.0, -4.0, 0.5])
    ln = NormSpec("layernorm", gamma)
    np.testing.assert_allclose(ln.predicted_kernel()[:, 0], (1 / gamma) / np.linalg.norm(1 / gamma))
    gn = NormSpec("groupnorm", gamma, groups=2).predicted_kernel()
    assert gn.shape == (4, 2)
    np.testing.assert_allclose(gn.T @ gn, np.eye(2), atol=1e-15)
    assert gn[2, 0] == 0.0 and gn[0, 1] == 0.0
    np.testing.assert_allclose(NormSpec("scale-then-centre", gamma).predicted_kernel()[:, 0], np.full(4, 0.5))
    assert NormSpec("rmsnorm", gamma).predicted_kernel().shape == (4, 0)
    assert NormSpec("layernorm", gamma).has_mean_centring and not NormSpec("rmsnorm", gamma).has_mean_centring


def test_predicted_kernel_with_zero_scale_raises() -> None:
    with pytest.raises(DegenerateScaleError, match="1 \\(zero\\)"):
        NormSpec("layernorm", [1.0, 0.0, 2.0]).predicted_kernel()


def test_layernorm_output_is_orthogonal_to_inverse_scale(rng: np.random.Generator) -> None:
    gamma, beta = rng.standard_normal(11), rng.standard_normal(11)
    y = NormSpec("layernorm", gamma, beta, eps=0.1).apply(rng.standard_normal((50, 11)))
    assert np.max(np.abs((y - beta) @ (1 / gamma))) < 1e-12 * np.sum(np.abs(1 / gamma)) * 10


def test_with_params_replaces_weight_and_bias() -> None:
    spec = NormSpec("layernorm", np.ones(3))
    new = spec.with_params(weight=[2.0, 2.0, 2.0], bias=[1.0, 0.0, 0.0])
    np.testing.assert_array_equal(new.gamma, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(new.beta, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(spec.gamma, np.ones(3))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "batchnorm", "d": 3}, "unknown kind"),
        ({"kind": "layernorm"}, "d is required"),
        ({"kind": "layernorm", "weight": [1.0, 2.0], "bias": [1.0]}, "inconsistent sizes"),
        ({"kind": "layernorm", "weight": [1.0, np.nan]}, "NaN"),
        ({"kind": "layernorm", "d": 3, "eps": -1.0}, "eps"),
        ({"kind": "layernorm", "d": 3, "eps": float("inf")}, "eps"),
        ({"kind": "layernorm", "d": 3, "weight_offset": float("nan")}, "weight_offset"),
        ({"kind": "layernorm", "d": 4, "groups": 2}, "only groupnorm"),
        ({"kind": "groupnorm", "d": 5, "groups": 2}, "does not divide"),
        ({"kind": "groupnorm", "d": 4, "groups": 0}, "does not divide"),
        ({"kind": "layernorm", "d": 0}, "must be ≥ 1"),
        ({"kind": "layernorm", "weight": [[1.0, 2.0]]}, "1-D"),
    ],
)
def test_invalid_specs_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputShapeError, match=match):
        NormSpec(**kwargs)  # type: ignore[arg-type]


def test_apply_rejects_wrong_width() -> None:
    with pytest.raises(InputShapeError, match=r"expected shape \(\.\.\., 4\)"):
        NormSpec("layernorm", d=4).apply(np.zeros((2, 3)))
    with pytest.raises(InputShapeError, match="x"):
        NormSpec("layernorm", d=4).apply(np.float64(1.0))


def test_unknown_module_names_its_type() -> None:
    with pytest.raises(UnknownNormError, match=r"torch\.nn\.modules\.linear\.Linear") as info:
        NormSpec.from_module(torch.nn.Linear(3, 3))
    assert isinstance(info.value, TypeError)


def test_multi_dim_layernorm_is_rejected_clearly() -> None:
    with pytest.raises(InputShapeError, match="more than one dimension"):
        NormSpec.from_module(torch.nn.LayerNorm((3, 4)))


def test_subclasses_resolve_through_the_mro() -> None:
    class MyLN(torch.nn.LayerNorm):
        pass

    assert NormSpec.from_module(MyLN(5)).kind == "layernorm"


def test_registering_a_new_class_is_one_entry() -> None:
    from deadir.norms import _READERS, register_norm_class

    class Custom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))

    name = f"{Custom.__module__}.{Custom.__qualname__}"
    register_norm_class(name, lambda m: NormSpec("rmsnorm", m.scale.detach().numpy(), weight_offset=1.0))
    try:
        assert name in known_norm_classes()
        assert NormSpec.from_module(Custom()).weight_offset == 1.0
    finally:
        del _READERS[name]
