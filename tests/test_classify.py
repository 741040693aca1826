"""classify_norm must tell apart the six cases of the foundation issue, deciding by exactness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from deadir import InputShapeError, NormSpec, classify_norm
from deadir.testing.examples import build_builtin_norm, draw_gamma

CASES = {
    "layernorm": ("mean-centring", True, False),
    "layernorm-ones": ("mean-centring", True, True),
    "scale-then-centre": ("mean-centring", False, True),
    "rmsnorm": ("rms", None, False),
    "identity": ("none", None, False),
    "tanh": ("none", None, False),
}


def _build(case: str, d: int, dtype: str = "float32") -> Any:
    gamma = np.ones(d) if case == "layernorm-ones" else draw_gamma(d, spread=1e3, seed=d)
    beta = np.random.default_rng(d).standard_normal(d) * 0.1
    kind = "layernorm" if case == "layernorm-ones" else case
    return build_builtin_norm(kind, d, groups=1, gamma=gamma, beta=beta, dtype=dtype)


def _check(case: str, d: int, dtype: str = "float32") -> None:
    kind, matches, ones = CASES[case]
    result = classify_norm(_build(case, d, dtype), d)
    assert result.kind == kind, result.note
    assert result.matches_inverse_scale is matches
    assert result.kernel_is_ones is ones
    assert result.kernel_dim == (1 if kind == "mean-centring" else 0)
    if kind == "mean-centring":
        assert result.gap >= 8 * result.floor


@pytest.mark.parametrize("d", [2, 3, 64])
@pytest.mark.parametrize("case", list(CASES))
def test_six_cases(case: str, d: int) -> None:
    _check(case, d)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_six_cases_at_d_1000(case: str) -> None:
    _check(case, 1000)


@pytest.mark.parametrize("d,groups", [(4, 2), (8, 4), (6, 3), (64, 4), (60, 3), (64, 32)])
def test_groupnorm_has_one_kernel_direction_per_group(d: int, groups: int) -> None:
    gamma = draw_gamma(d, spread=1e3, seed=1)
    m = build_builtin_norm("groupnorm", d, groups=groups, gamma=gamma, beta=np.zeros(d), dtype="float32")
    result = classify_norm(m, d)
    assert result.kind == "group-centring" and result.kernel_dim == groups
    assert result.matches_inverse_scale is True


@pytest.mark.slow
def test_groupnorm_at_d_1000() -> None:
    m = build_builtin_norm("groupnorm", 1000, groups=8, gamma=draw_gamma(1000, spread=1e3, seed=2),
                           beta=np.zeros(1000), dtype="float32")
    result = classify_norm(m, 1000)
    assert result.kind == "group-centring" and result.kernel_dim == 8 and result.matches_inverse_scale


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("case", ["layernorm", "rmsnorm"])
def test_other_dtypes(case: str, dtype: str) -> None:
    d = 48
    gamma = draw_gamma(d, spread=10.0, seed=3)
    m = build_builtin_norm(case, d, groups=1, gamma=gamma, beta=np.zeros(d), dtype=dtype)
    result = classify_norm(m, d)
    assert result.dtype == dtype
    assert result.kind == ("mean-centring" if case == "layernorm" else "rms"), result.note


def test_rms_with_one_tiny_gain_is_still_rms() -> None:
    # The Gemma 3 / Qwen2.5 trap: the bottom eigenvector of C is nearly γ⁻¹, yet there is no kernel.
    d = 64
    gamma = np.full(d, 7.0)
    gamma[5] = -0.066
    m = build_builtin_norm("rmsnorm", d, groups=1, gamma=gamma, beta=np.zeros(d), dtype="float32")
    x = np.random.default_rng(0).standard_normal((4000, d))
    y = m(torch.from_numpy(x).float()).detach().double().numpy()
    c = np.cov(y, rowvar=False)
    bottom = np.linalg.eigh(c)[1][:, 0]
    v = (1 / gamma) / np.linalg.norm(1 / gamma)
    assert abs(bottom @ v) > 0.9  # alignment alone would say "kernel"
    result = classify_norm(m, d)
    assert result.kind == "rms" and result.kernel_dim == 0
    assert result.inverse_scale_rayleigh is not None and result.inverse_scale_rayleigh > 1e3 * result.floor


def test_normspec_and_plain_callables() -> None:
    gamma = draw_gamma(8, spread=10.0, seed=0)
    spec = NormSpec("layernorm", gamma, np.zeros(8), eps=1e-5)
    assert classify_norm(spec, 8).matches_inverse_scale is True
    assert classify_norm(spec.apply, 8, gamma=gamma).matches_inverse_scale is True
    assert classify_norm(spec.apply, 8).matches_inverse_scale is None  # γ unknown

    def torch_ln(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, (8,))

    result = classify_norm(torch_ln, 8, dtype=torch.float32)
    assert result.kind == "mean-centring" and result.kernel_is_ones and result.dtype == "float32"


def test_constant_channels_are_reported_as_kernel_axes() -> None:
    spec = NormSpec("layernorm", [1.0, 0.0, 2.0, -1.0, 0.5], np.array([0.0, 3.0, 0.0, 0.0, 0.0]))
    result = classify_norm(spec, 5)
    assert result.constant_channels == (1,)
    assert result.kernel_dim >= 1
    assert result.matches_inverse_scale is None  # γ has a zero: γ⁻¹ undefined (T6)
    assert np.max(np.abs(result.kernel_basis[:, -1])) == pytest.approx(1.0)


def test_inconclusive_floor_is_reported_not_guessed() -> None:
    d = 16
    gamma = np.full(d, 1e-3)
    m = build_builtin_norm("layernorm", d, groups=1, gamma=gamma, beta=np.full(d, 1.0), dtype="bfloat16")
    result = classify_norm(m, d)
    assert result.kind == "other" and "inconclusive" in result.note


def test_constant_output_is_other() -> None:
    result = classify_norm(lambda x: np.zeros_like(x), 4)
    assert result.kind == "other" and result.kernel_dim == 4


def test_error_paths() -> None:
    with pytest.raises(InputShapeError, match="d: must be an integer ≥ 2"):
        classify_norm(torch.nn.LayerNorm(1), 1)
    with pytest.raises(InputShapeError, match="returned shape"):
        classify_norm(lambda x: x[:, :2], 4)
    with pytest.raises(InputShapeError, match="NaN or infinite"):
        classify_norm(lambda x: np.full_like(x, np.inf), 4)
    with pytest.raises(InputShapeError, match="expected an array"):
        classify_norm(lambda x: x.tolist(), 4)
    with pytest.raises(InputShapeError, match="expected a torch module"):
        classify_norm(42, 4)
    with pytest.raises(InputShapeError, match="plain callable"):
        classify_norm(lambda x: x, 4, dtype="float32")
    with pytest.raises(InputShapeError, match="dtype"):
        classify_norm(torch.nn.LayerNorm(4), 4, compute_dtype="int8")


def test_result_serialises() -> None:
    result = classify_norm(torch.nn.LayerNorm(6), 6)
    data = result.to_dict()
    assert "kernel_basis" not in data and data["kind"] == "mean-centring"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nearly_equal_gains_are_decided_by_exactness_not_alignment(dtype: str) -> None:
    # Dev-profile counterexample: d = 2, γ of spread 1e2 whose entries agree to 0.08 %. γ⁻¹ is then
    # 8e-4 off 𝟙 in standardised units, which a 1e-3 alignment threshold took for "in the kernel",
    # though its Rayleigh quotient (≈ 3e-7) is far above the floor.
    d = 2
    gamma = draw_gamma(d, spread=1e2, seed=27754)
    assert abs(abs(gamma[0]) - abs(gamma[1])) < 1e-3 * abs(gamma[0]) and gamma[0] * gamma[1] > 0
    beta = np.random.default_rng(d).standard_normal(d) * 0.1
    stc = classify_norm(build_builtin_norm("scale-then-centre", d, groups=1, gamma=gamma, beta=beta, dtype=dtype), d)
    assert stc.kind == "mean-centring" and stc.kernel_is_ones is True
    assert stc.matches_inverse_scale is False, stc.note
    assert stc.inverse_scale_rayleigh is not None and stc.inverse_scale_rayleigh > 1e3 * stc.floor
    # converse control: a LayerNorm with the same γ has kernel γ⁻¹, and 𝟙 is not it
    ln = classify_norm(build_builtin_norm("layernorm", d, groups=1, gamma=gamma, beta=beta, dtype=dtype), d)
    assert ln.kind == "mean-centring" and ln.matches_inverse_scale is True
    assert ln.kernel_is_ones is False, ln.note


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_dead_gains_give_mean_centring_with_constant_channels(dtype: str) -> None:
    # MiniLM's final LayerNorm: 3 gains ≈ 1e-33, far below the rounding of β, so those outputs are
    # exactly β. The live part of γ⁻¹ is then off by the lost −Σ ẑᵢ (T6, T10), which the floor must
    # carry; without it float32 read "other" and bfloat16 (as the real checkpoint, "other" there)
    # found the kernel but not γ⁻¹ in it.
    d, dead = 384, [17, 100, 300]
    rng = np.random.default_rng(0)
    gamma = 0.6 + 0.05 * rng.standard_normal(d)
    gamma[dead] = 1e-33
    m = torch.nn.LayerNorm(d, eps=1e-12)
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(gamma))
        m.bias.copy_(torch.as_tensor(0.05 * rng.standard_normal(d)))
    result = classify_norm(m.to(getattr(torch, dtype)), d)
    assert result.kind == "mean-centring", result.note
    assert result.constant_channels == tuple(dead) and result.kernel_dim == 1 + len(dead)
    assert result.matches_inverse_scale is True


def test_constant_channel_detection_is_exact() -> None:
    # β = 0.05 is not a dyadic number: a family mean of equal values need not round back to it,
    # which once left rounding noise in the dead channels, standardised to unit variance
    gamma = np.full(384, 0.6)
    gamma[[1, 5, 9]] = 0.0
    result = classify_norm(NormSpec("layernorm", gamma, np.full(384, 0.05)), 384)
    assert result.constant_channels == (1, 5, 9)
    assert result.kind == "mean-centring" and result.kernel_is_ones and result.matches_inverse_scale is None


def _pin_case(case: str, d: int) -> Any:
    gamma = draw_gamma(d, spread=10.0, seed=d + 1)
    beta = np.random.default_rng(d).standard_normal(d) * 0.1
    if case == "groupnorm":
        return build_builtin_norm("groupnorm", d, groups=4, gamma=gamma, beta=np.zeros(d), dtype="float32")
    if case == "layernorm-duplicate":
        inner = build_builtin_norm("layernorm", d, groups=1, gamma=gamma, beta=beta, dtype="float32")

        def duplicated(x: torch.Tensor) -> torch.Tensor:  # channel 0 copies channel 1: a second, planted kernel
            y: torch.Tensor = inner(x)
            return torch.cat([y[:, 1:2], y[:, 1:]], dim=1)

        return duplicated
    return build_builtin_norm(case, d, groups=1, gamma=gamma, beta=beta, dtype="float32")


PIN_CASES = ["layernorm", "rmsnorm", "groupnorm", "scale-then-centre", "identity", "tanh", "layernorm-duplicate"]


@pytest.mark.parametrize("d", [16, 64])
@pytest.mark.parametrize("case", PIN_CASES)
def test_iterative_path_is_pinned_to_the_dense_path(case: str, d: int) -> None:
    # Same probe rows, same floor formula: same verdict; the numbers within the stated bounds:
    # the iterative gap is a Ritz value (≥ the dense eigenvalue) and its certificate L (≤ it).
    norm = _pin_case(case, d)
    kw: dict[str, Any] = {"dtype": torch.float32} if case == "layernorm-duplicate" else {}
    dense = classify_norm(norm, d, method="dense", **kw)
    fast = classify_norm(norm, d, method="iterative", **kw)
    assert (dense.method, fast.method) == ("dense", "iterative")
    assert fast.kind == dense.kind, (dense.note, fast.note)
    assert fast.kernel_dim == dense.kernel_dim
    assert fast.matches_inverse_scale == dense.matches_inverse_scale
    assert fast.kernel_is_ones == dense.kernel_is_ones
    assert fast.rows == dense.rows
    if dense.kind == "group-centring":
        # the dense path keeps the whole-row floor when it already counts every group's eigenvalue below
        # it; the iterative path uses the group hypothesis' own floor. Both bound the kernel quotients.
        assert max(fast.bottom_eigvals[: fast.kernel_dim]) <= fast.floor
        assert max(dense.bottom_eigvals[: dense.kernel_dim]) <= dense.floor
    else:
        # floors differ only by the float64 evaluation allowances (≤ (γ_N + γ_d)(u)·d each, < 1e-11 here)
        assert abs(fast.floor - dense.floor) <= 1e-6 * dense.floor + 1e-11
    if dense.inverse_scale_rayleigh is not None:
        assert fast.inverse_scale_rayleigh == pytest.approx(dense.inverse_scale_rayleigh, rel=1e-6, abs=1e-12)
    if np.isfinite(dense.gap):
        assert fast.gap_lower <= dense.gap * (1 + 1e-9) + 1e-12
        assert fast.gap >= dense.gap * (1 - 1e-6) - 1e-12
    if dense.kernel_dim:
        overlap = np.linalg.svd(dense.kernel_basis.T @ fast.kernel_basis, compute_uv=False)
        assert overlap.min() > 1 - 1e-3  # same kernel (principal angles ≈ 0)
    if case == "layernorm-duplicate":
        # channel 0 copies channel 1: γ⁻¹ is no longer a kernel vector, e₀ − e₁ is; no candidate finds it,
        # the solver's Ritz vector does (and its zero components make the kind "other", as dense says)
        assert fast.kind == "other" and fast.kernel_dim == 1
        assert abs(fast.kernel_basis[0, 0]) == pytest.approx(abs(fast.kernel_basis[1, 0]), rel=1e-3)


def test_iterative_certificate_is_checked_not_assumed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mutant: one Lanczos step cannot certify the gap (ε ≈ 1), so the verdict must be "inconclusive",
    # not a kind; with the normal step budget the same norm is "rms".
    import deadir.classify as classify_module

    norm = _pin_case("rmsnorm", 64)
    assert classify_norm(norm, 64, method="iterative").kind == "rms"
    monkeypatch.setattr(classify_module, "LANCZOS_MAX_STEPS", 1)
    result = classify_norm(norm, 64, method="iterative")
    assert result.kind == "other" and "inconclusive" in result.note and result.gap_lower < 8 * result.floor


def test_iterative_path_on_an_ill_conditioned_norm_is_inconclusive_not_wrong() -> None:
    # scale-then-centre with |γ| spread over 1e6: channels with tiny γ are dominated by the common
    # mean, so R has eigenvalues far below what the Lanczos certificate reaches. The dense path still
    # decides; the iterative one says "other" (inconclusive) or the same kind, never another kind.
    d = 64
    gamma = draw_gamma(d, spread=1e3, seed=5)
    norm = build_builtin_norm("scale-then-centre", d, groups=1, gamma=gamma, beta=np.zeros(d), dtype="float64")
    dense = classify_norm(norm, d, method="dense")
    fast = classify_norm(norm, d, method="iterative")
    assert dense.kind == "mean-centring"
    assert fast.kind in ("mean-centring", "other")


def _spectrum_z(rng: np.random.Generator, eigvals: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows Z (n_rows × n) with ZᵀZ/N exactly V·diag(eigvals)·Vᵀ (to rounding); returns (Z, V)."""
    n = eigvals.size
    v = np.linalg.qr(rng.standard_normal((n, n)))[0]
    u = np.linalg.qr(rng.standard_normal((n_rows, n)))[0]
    return (u * np.sqrt(eigvals * n_rows)) @ v.T, v


def test_outlier_split_certificate_is_a_lower_bound_even_for_a_wrong_split() -> None:
    # R on K⊥ = W ⊕ T is [[A, B], [Bᵀ, C]]: min(λmin A, λmin C) alone over-states λmin when T is not an
    # invariant subspace. Planted wrong input: T mixes the outlier with the bottom eigenvector of K⊥.
    import deadir.classify as classify_module

    rng = np.random.default_rng(3)
    n = 96
    eigvals = np.concatenate([[0.0, 0.5], np.linspace(1.0, 2.0, n - 3), [100.0]])
    z, v = _spectrum_z(rng, eigvals, 4 * n)
    kernel, bottom, outlier = v[:, :1], v[:, 1], v[:, -1]
    true_min = 0.5
    for top, wrong in ((outlier[:, None], False), (((outlier + bottom) / np.sqrt(2.0))[:, None], True)):
        first = classify_module._Spectrum(theta=np.array([0.6, 1.0, 1.2, 1.5, 90.0]), vector=bottom, lower=-1.0,
                                          steps=6, top=top)
        spec = classify_module._deflated_certificate(z, z.shape[0], kernel, first, np.random.default_rng(0),
                                                     1e-6, 1e-9, 0.0)
        assert spec is not None
        assert spec.lower <= true_min * (1 + 1e-9)
        if wrong:
            # the coupling term is what keeps it a lower bound: without it the split would over-state λmin
            t = np.linalg.qr(top - kernel @ (kernel.T @ top))[0]
            c_min = float(np.linalg.eigvalsh(t.T @ (z.T @ (z @ t)) / z.shape[0])[0])
            w = np.linalg.qr(np.column_stack([kernel, t, rng.standard_normal((n, n - 2))]))[0][:, 2:]
            a_min = float(np.linalg.eigvalsh(w.T @ (z.T @ (z @ w)) / z.shape[0])[0])
            assert min(a_min, c_min) > true_min + 0.05
        else:
            assert spec.lower >= 1e-6  # a right split certifies the target (the solver stops once it holds)


def test_outlier_split_makes_scale_then_centre_decisive(monkeypatch: pytest.MonkeyPatch) -> None:
    # scale-then-centre's small-γ channels correlate into one outlying eigenvalue; with it split off the
    # certificate holds within a small step budget, without it (mutant: no split) the verdict is inconclusive
    import deadir.classify as classify_module

    d = 512
    norm = _pin_case("scale-then-centre", d)
    monkeypatch.setattr(classify_module, "LANCZOS_MAX_STEPS", 30)
    split = classify_norm(norm, d, method="iterative")
    assert split.kind == "mean-centring" and split.kernel_is_ones and split.gap_lower >= 8 * split.floor
    monkeypatch.setattr(classify_module, "_deflated_certificate", lambda *args, **kwargs: None)
    plain = classify_norm(norm, d, method="iterative")
    assert plain.kind == "other" and "inconclusive" in plain.note
