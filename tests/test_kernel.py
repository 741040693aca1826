from __future__ import annotations

import numpy as np
import pytest
import torch

from deadir import CovarianceAccumulator, InputShapeError, NormSpec, inverse_scale_direction, measure_kernel
from deadir.kernel import eigensolver_floor_rel, projection_std


def _ln_outputs(rng: np.random.Generator, d: int = 16, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1, 1], d)
    spec = NormSpec("layernorm", gamma, rng.standard_normal(d), eps=1e-5)
    return spec.apply(rng.standard_normal((n, d))), gamma


def test_layernorm_direction_is_at_the_floor(rng: np.random.Generator) -> None:
    y, gamma = _ln_outputs(rng)
    rep = measure_kernel(y, inverse_scale_direction(gamma))
    assert rep.rayleigh_rel < rep.floor_rel
    assert rep.floor_dim == 1
    assert rep.cos_bottom is not None and rep.cos_bottom > 1 - 1e-10
    assert rep.projection_std < 1e-13
    assert rep.spectral_gap_rel > 0.01
    assert rep.n_near_null(1e-10) == 1 and rep.n_near_null(1.0) == 16
    assert np.all(np.diff(rep.eigvals) >= 0)


def test_rms_direction_is_not_a_kernel(rng: np.random.Generator) -> None:
    gamma = rng.uniform(0.5, 2.0, 16)
    y = NormSpec("rmsnorm", gamma).apply(rng.standard_normal((2000, 16)))
    rep = measure_kernel(y, inverse_scale_direction(gamma))
    assert rep.rayleigh_rel > 1e-3
    assert rep.floor_dim == 0 and rep.n_near_null(1e-10) == 0


def test_accumulator_input_gives_same_numbers(rng: np.random.Generator) -> None:
    y, gamma = _ln_outputs(rng)
    v = inverse_scale_direction(gamma)
    direct = measure_kernel(y, v)
    acc = CovarianceAccumulator(y.shape[1])
    for chunk in np.array_split(y, 7):
        acc.update(chunk)
    via_acc = measure_kernel(acc, v)
    np.testing.assert_allclose(via_acc.eigvals[1:], direct.eigvals[1:], rtol=1e-10)
    assert via_acc.rayleigh_rel < via_acc.floor_rel


def test_cos_bottom_is_withheld_when_several_eigenvalues_are_at_the_floor(rng: np.random.Generator) -> None:
    # Two constant channels plus a LayerNorm kernel: a 3-dimensional floor.
    y, _ = _ln_outputs(rng, d=10)
    y[:, 2] = 1.5
    y[:, 7] = -0.25
    rep = measure_kernel(y, np.eye(10)[2])
    assert rep.floor_dim >= 2
    assert rep.cos_bottom is None and not rep.cos_bottom_defined
    assert rep.floor_subspace_cos == pytest.approx(1.0, abs=1e-10)
    assert rep.to_dict()["cos_bottom"] is None


def test_projection_std_alone_matches_direct_projection(rng: np.random.Generator) -> None:
    x = rng.standard_normal((300, 5))
    v = np.array([1.0, 2.0, 0.0, -1.0, 0.5])
    expected = np.std(x @ (v / np.linalg.norm(v)))
    assert projection_std(x, v) == pytest.approx(expected, rel=1e-14)
    assert projection_std(torch.from_numpy(x), v) == pytest.approx(expected, rel=1e-12)
    assert measure_kernel(torch.from_numpy(x), v).projection_std == pytest.approx(expected, rel=1e-12)


def test_floor_grows_with_dimension() -> None:
    assert eigensolver_floor_rel(1000) == pytest.approx(1000 * eigensolver_floor_rel(1))


@pytest.mark.parametrize(
    "direction,match",
    [([1.0, 2.0], "length 3"), ([0.0, 0.0, 0.0], "zero vector"), ([1.0, np.nan, 0.0], "NaN")],
)
def test_bad_direction_is_rejected(direction: list[float], match: str) -> None:
    with pytest.raises(InputShapeError, match=match):
        measure_kernel(np.random.default_rng(0).standard_normal((10, 3)), direction)


def test_degenerate_activations_are_rejected() -> None:
    with pytest.raises(InputShapeError, match="at least 2 samples"):
        measure_kernel(np.ones((1, 3)), [1.0, 0.0, 0.0])
    with pytest.raises(InputShapeError, match="identical"):
        measure_kernel(np.ones((5, 3)), [1.0, 0.0, 0.0])
    with pytest.raises(InputShapeError, match="no rows"):
        projection_std(np.zeros((0, 3)), [1.0, 0.0, 0.0])
    with pytest.raises(InputShapeError, match="NaN"):
        projection_std(torch.tensor([[float("nan"), 0.0]]), [1.0, 0.0])


def test_n_near_null_rejects_bad_tolerance(rng: np.random.Generator) -> None:
    y, gamma = _ln_outputs(rng, d=4, n=50)
    rep = measure_kernel(y, inverse_scale_direction(gamma))
    with pytest.raises(InputShapeError, match="rel_tol"):
        rep.n_near_null(-1.0)
