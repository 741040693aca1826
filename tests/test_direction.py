from __future__ import annotations

import numpy as np
import pytest
import torch

import deadir
from deadir import DegenerateScaleError, InputShapeError, dead_channels, inverse_scale_direction, live_fraction


def test_direction_is_unit_and_proportional_to_inverse_gamma() -> None:
    gamma = np.array([2.0, -4.0, 0.5, 8.0])
    v = inverse_scale_direction(gamma)
    assert v.dtype == np.float64
    assert np.linalg.norm(v) == pytest.approx(1.0, rel=1e-15)
    expected = (1 / gamma) / np.linalg.norm(1 / gamma)
    np.testing.assert_allclose(v, expected, rtol=1e-15)


def test_sign_convention_largest_entry_positive() -> None:
    v = inverse_scale_direction([-0.5, 2.0, 3.0])
    assert v[0] > 0  # 1/γ largest in magnitude at index 0, made positive
    np.testing.assert_allclose(inverse_scale_direction([0.5, -2.0, -3.0]), v, rtol=0, atol=0)


def test_offset_gives_gemma_effective_scale() -> None:
    w = np.array([0.0, 1.0, -0.5])
    np.testing.assert_allclose(inverse_scale_direction(w, offset=1.0), inverse_scale_direction(w + 1.0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_accepts_torch_tensors_of_every_float_dtype(dtype: torch.dtype) -> None:
    g = torch.tensor([1.0, 2.0, -3.0, 0.25], dtype=dtype)
    v = inverse_scale_direction(g)
    expected = inverse_scale_direction(g.to(torch.float64).numpy())
    np.testing.assert_array_equal(v, expected)


def test_accepts_python_sequences_and_ints() -> None:
    np.testing.assert_allclose(inverse_scale_direction([1, 2, 4]), inverse_scale_direction(np.array([1.0, 2.0, 4.0])))


@pytest.mark.parametrize("lo,hi", [(1e-300, 1.0), (1.0, 1e300), (1e-300, 1e300), (1e-308, 1e-300)])
def test_no_overflow_or_underflow_across_the_float64_range(lo: float, hi: float) -> None:
    gamma = np.array([lo, hi, -lo * 3, np.sqrt(lo) * np.sqrt(hi)])
    v = inverse_scale_direction(gamma)
    assert np.all(np.isfinite(v))
    assert np.linalg.norm(v) == pytest.approx(1.0, rel=1e-14)
    # Compare with exact rational arithmetic scaled by the smallest |γ|: m/γ.
    m = np.min(np.abs(gamma))
    w = np.array([m / g for g in gamma])
    np.testing.assert_allclose(v, w / np.linalg.norm(w), rtol=1e-14, atol=1e-300)


def test_scale_invariance_up_to_sign(rng: np.random.Generator) -> None:
    g = rng.standard_normal(17)
    v = inverse_scale_direction(g)
    for c in (1e-200, -3.0, 7e150):
        np.testing.assert_allclose(inverse_scale_direction(c * g), v, rtol=1e-14)


@pytest.mark.parametrize(
    "gamma,kind,index",
    [([1.0, 0.0, 2.0], "zero", 1), ([1.0, np.nan, 2.0], "nan", 1), ([np.inf, 1.0], "inf", 0)],
)
def test_degenerate_scales_are_named(gamma: list[float], kind: str, index: int) -> None:
    with pytest.raises(DegenerateScaleError, match=rf"{index} \({kind}\)") as info:
        inverse_scale_direction(gamma)
    assert info.value.indices == (index,)
    assert info.value.kinds == {index: kind}
    assert isinstance(info.value, ValueError)


def test_offset_can_create_a_zero_scale() -> None:
    with pytest.raises(DegenerateScaleError, match=r"offset=1\.0"):
        inverse_scale_direction([0.5, -1.0], offset=1.0)


def test_many_degenerate_indices_are_summarised() -> None:
    with pytest.raises(DegenerateScaleError, match=r"25 of 30 indices.*and 5 more"):
        inverse_scale_direction([0.0] * 25 + [1.0] * 5)


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], 3.0, np.zeros((2, 2))])
def test_empty_or_non_vector_input_is_rejected(bad: object) -> None:
    with pytest.raises(InputShapeError, match="gamma"):
        inverse_scale_direction(bad)


@pytest.mark.parametrize("bad", [["a", "b"], [True, False], np.array([1 + 1j, 2])])
def test_non_real_input_is_rejected(bad: object) -> None:
    with pytest.raises(InputShapeError, match="gamma"):
        inverse_scale_direction(bad)


def test_ragged_input_is_rejected() -> None:
    with pytest.raises(InputShapeError, match="cannot be read"):
        inverse_scale_direction([[1.0], [1.0, 2.0]])


def test_complex_and_bool_tensors_are_rejected() -> None:
    with pytest.raises(InputShapeError, match="dtype"):
        inverse_scale_direction(torch.ones(3, dtype=torch.complex64))
    with pytest.raises(InputShapeError, match="dtype"):
        inverse_scale_direction(torch.ones(3, dtype=torch.bool))


def test_non_finite_offset_is_rejected() -> None:
    with pytest.raises(InputShapeError, match="offset"):
        inverse_scale_direction([1.0, 2.0], offset=float("nan"))


def test_dead_channels_finds_tiny_and_zero_gains() -> None:
    gamma = np.ones(10)
    gamma[[2, 7]] = [1e-33, 0.0]
    np.testing.assert_array_equal(dead_channels(gamma, rel_tol=1e-6), [2, 7])
    assert dead_channels(np.ones(4), rel_tol=1e-6).size == 0


def test_dead_channels_with_gemma_offset() -> None:
    np.testing.assert_array_equal(dead_channels([-1.0, 0.0, 0.5], rel_tol=1e-3, offset=1.0), [0])


@pytest.mark.parametrize("rel_tol", [0.0, 1.0, -1e-3, float("nan")])
def test_dead_channels_rejects_bad_tolerance(rel_tol: float) -> None:
    with pytest.raises(InputShapeError, match="rel_tol"):
        dead_channels([1.0, 2.0], rel_tol=rel_tol)


def test_dead_channels_rejects_non_finite_gamma() -> None:
    with pytest.raises(DegenerateScaleError, match="NaN or infinite") as info:
        dead_channels([1.0, np.inf, np.nan], rel_tol=1e-3)
    assert info.value.indices == (1, 2)


def test_live_fraction_shows_the_direction_is_swamped_by_dead_channels() -> None:
    gamma = np.ones(384)
    gamma[[5, 100, 200]] = 1e-33
    dead = dead_channels(gamma, rel_tol=1e-6)
    assert live_fraction(gamma, dead) < 1e-30
    assert live_fraction(np.ones(8), dead_channels(np.ones(8), rel_tol=1e-6)) == 1.0
    gamma[5] = 0.0
    assert live_fraction(gamma, dead_channels(gamma, rel_tol=1e-6)) == 0.0


def test_public_api_names_exist() -> None:
    for name in ("inverse_scale_direction", "NormSpec", "CovarianceAccumulator", "measure_kernel", "classify_norm"):
        assert hasattr(deadir, name)
