from __future__ import annotations

import numpy as np
import pytest
import torch

from deadir import CovarianceAccumulator, InputShapeError


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_single_batch_matches_numpy(rng: np.random.Generator) -> None:
    x = rng.standard_normal((500, 7)) @ rng.standard_normal((7, 7))
    acc = CovarianceAccumulator(7).update(x)
    assert acc.n == 500
    assert _rel(acc.cov(), np.cov(x, rowvar=False, ddof=0)) < 1e-12
    np.testing.assert_allclose(acc.mean, x.mean(0), rtol=1e-13)


def test_streaming_batches_and_leading_axes(rng: np.random.Generator) -> None:
    x = rng.standard_normal((6, 50, 5))
    acc = CovarianceAccumulator(5)
    for chunk in x:
        acc.update(chunk.reshape(10, 5, 5))  # (..., d) with two leading axes
    flat = x.reshape(-1, 5)
    assert _rel(acc.cov(), np.cov(flat, rowvar=False, ddof=0)) < 1e-12


def test_huge_common_offset_stays_exact(rng: np.random.Generator) -> None:
    x = 1e8 + rng.standard_normal((4000, 6))
    acc = CovarianceAccumulator(6)
    for chunk in np.array_split(x, 13):
        acc.update(chunk)
    ref = np.cov(x, rowvar=False, ddof=0)
    assert _rel(acc.cov(), ref) < 1e-12
    # The naive formula the accumulator avoids loses everything at this offset.
    naive = x.T @ x / len(x) - np.outer(x.mean(0), x.mean(0))
    assert _rel(naive, ref) > 1e-3


def test_merge_is_exact_and_order_free(rng: np.random.Generator) -> None:
    x = 5e7 + rng.standard_normal((900, 4))
    parts = np.array_split(x, [100, 101, 600])
    accs = [CovarianceAccumulator(4).update(p) for p in parts]
    left = CovarianceAccumulator(4)
    for a in accs:
        left.merge(a)
    right = CovarianceAccumulator(4)
    for a in reversed(accs):
        right.merge(a)
    ref = np.cov(x, rowvar=False, ddof=0)
    assert _rel(left.cov(), ref) < 1e-12 and _rel(right.cov(), ref) < 1e-12
    assert left.n == right.n == 900


def test_merge_with_empty_and_into_empty(rng: np.random.Generator) -> None:
    x = rng.standard_normal((20, 3))
    a = CovarianceAccumulator(3).update(x)
    a.merge(CovarianceAccumulator(3))
    b = CovarianceAccumulator(3).merge(a)
    np.testing.assert_allclose(b.cov(), a.cov(), rtol=1e-15)
    a.update(np.zeros((0, 3)))
    assert a.n == 20


def test_torch_batches_accumulate_in_float64_on_their_device(rng: np.random.Generator) -> None:
    x = rng.standard_normal((300, 8))
    acc = CovarianceAccumulator(8)
    for chunk in np.array_split(x, 3):
        acc.update(torch.from_numpy(chunk).to(torch.float32))
    assert acc._torch_device == torch.device("cpu") and acc._m2.dtype == torch.float64
    ref = np.cov(x.astype(np.float32).astype(np.float64), rowvar=False, ddof=0)
    assert _rel(acc.cov(), ref) < 1e-12


def test_bfloat16_tensor_widens_exactly(rng: np.random.Generator) -> None:
    t = torch.from_numpy(rng.standard_normal((64, 4))).to(torch.bfloat16)
    acc = CovarianceAccumulator(4).update(t)
    ref = np.cov(t.to(torch.float64).numpy(), rowvar=False, ddof=0)
    assert _rel(acc.cov(), ref) < 1e-12


def test_mixing_numpy_and_torch(rng: np.random.Generator) -> None:
    x = rng.standard_normal((100, 3))
    a = CovarianceAccumulator(3).update(x[:50]).update(torch.from_numpy(x[50:]))
    b = CovarianceAccumulator(3).update(torch.from_numpy(x[:50])).update(x[50:])
    ref = np.cov(x, rowvar=False, ddof=0)
    assert _rel(a.cov(), ref) < 1e-12 and _rel(b.cov(), ref) < 1e-12
    a.merge(b)
    assert a.n == 200


@pytest.mark.parametrize("d", [0, -1, 2.5, True])
def test_bad_dimension_is_rejected(d: object) -> None:
    with pytest.raises(InputShapeError, match="d: must be a positive integer"):
        CovarianceAccumulator(d)  # type: ignore[arg-type]


def test_wrong_width_and_non_finite_batches_are_rejected() -> None:
    acc = CovarianceAccumulator(3)
    with pytest.raises(InputShapeError, match="last axis of size 3"):
        acc.update(np.zeros((2, 4)))
    with pytest.raises(InputShapeError, match="NaN or infinite"):
        acc.update(np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(InputShapeError, match=r"shape \(\.\.\., 3\)"):
        acc.update(torch.zeros(2, 4))
    with pytest.raises(InputShapeError, match="NaN or infinite"):
        acc.update(torch.tensor([[1.0, float("inf"), 0.0]]))
    with pytest.raises(InputShapeError, match="scalar"):
        acc.update(np.float64(3.0))
    assert acc.n == 0


def test_empty_accumulator_has_no_mean_or_cov() -> None:
    acc = CovarianceAccumulator(2)
    with pytest.raises(InputShapeError, match="no samples"):
        acc.cov()
    with pytest.raises(InputShapeError, match="no samples"):
        _ = acc.mean


def test_merge_rejects_mismatch() -> None:
    with pytest.raises(InputShapeError, match="d=4"):
        CovarianceAccumulator(3).merge(CovarianceAccumulator(4))
    with pytest.raises(InputShapeError, match="CovarianceAccumulator"):
        CovarianceAccumulator(3).merge(np.zeros((3, 3)))  # type: ignore[arg-type]


def test_repr_names_state() -> None:
    assert repr(CovarianceAccumulator(3)) == "CovarianceAccumulator(d=3, n=0)"


def test_cov_is_exactly_symmetric_across_symmetrisation_blocks(rng: np.random.Generator) -> None:
    x = 3.0 + rng.standard_normal((700, 300)) @ rng.standard_normal((300, 300))  # d not a multiple of 256
    c = CovarianceAccumulator(300).update(x).cov()
    assert np.array_equal(c, c.T)
    assert _rel(c, np.cov(x, rowvar=False, ddof=0)) < 1e-12


def test_merge_into_empty_does_not_alias_the_other_state(rng: np.random.Generator) -> None:
    a, b = CovarianceAccumulator(3), CovarianceAccumulator(3).update(rng.standard_normal((10, 3)))
    a.merge(b)
    before = a.cov().copy()
    b.update(rng.standard_normal((10, 3)) * 100.0)
    np.testing.assert_array_equal(a.cov(), before)


def test_huge_rows_raise_a_typed_error_naming_the_batch_and_leave_the_state(rng: np.random.Generator) -> None:
    from deadir.covariance import AccumulatorOverflowError

    acc = CovarianceAccumulator(4).update(rng.standard_normal((10, 4)))
    before = acc.cov().copy()
    with pytest.raises(AccumulatorOverflowError, match=r"batch 2:.*scatter overflows") as info:
        acc.update(1e200 * rng.standard_normal((10, 4)))  # squares 1e400: the scatter overflows
    assert info.value.batch == 2 and isinstance(info.value, OverflowError)
    with pytest.raises(AccumulatorOverflowError, match=r"batch 3:.*column sums overflow"):
        acc.update(np.full((10, 4), 1e308))  # finite entries whose column sums overflow
    assert acc.n == 10
    np.testing.assert_array_equal(acc.cov(), before)
    # negative control: large but representable rows are accepted and stay finite
    acc.update(1e150 * rng.standard_normal((10, 4)))
    assert np.all(np.isfinite(acc.cov()))


def test_huge_torch_rows_raise_too(rng: np.random.Generator) -> None:
    from deadir.covariance import AccumulatorOverflowError

    acc = CovarianceAccumulator(3).update(torch.from_numpy(rng.standard_normal((5, 3))))
    with pytest.raises(AccumulatorOverflowError, match="batch 2"):
        acc.update(torch.from_numpy(1e200 * rng.standard_normal((5, 3))))
    assert acc.n == 5 and np.all(np.isfinite(acc.cov()))


def test_merge_that_would_overflow_raises(rng: np.random.Generator) -> None:
    from deadir.covariance import AccumulatorOverflowError

    a = CovarianceAccumulator(2).update(1e150 * rng.standard_normal((50, 2)))
    b = CovarianceAccumulator(2).update(1e150 * rng.standard_normal((50, 2)) + 1e151)
    assert np.all(np.isfinite(a.cov())) and np.all(np.isfinite(b.cov()))
    with pytest.raises(AccumulatorOverflowError, match="merged scatter"):
        for _ in range(2000):  # each merge doubles n and the scatter: it must fail before it overflows
            a.merge(b)
            b.merge(a)
    assert np.all(np.isfinite(a.cov()))


def test_drifting_batch_means_stay_exact(rng: np.random.Generator) -> None:
    # each batch is centred on its own mean: a batch whose mean is 1e8 away from the first's loses nothing
    x = rng.standard_normal((600, 5))
    x[300:] += 1e8
    acc = CovarianceAccumulator(5).update(x[:300]).update(x[300:])
    assert _rel(acc.cov(), np.cov(x - np.array([0.0] * 5), rowvar=False, ddof=0)) < 1e-9


def test_mean_residue_correction_is_applied_where_it_matters(monkeypatch: pytest.MonkeyPatch) -> None:
    # A constant column whose float mean is not the constant (7 × 1e8 + 0.1): r = rows − fl(c) is a nonzero
    # constant m, Sᵢᵢ = n·m², and only the n·m mᵀ correction makes its variance exactly 0. The correction is
    # skipped only below syrk's rounding bound; a mutant that always skips it (u = 1) leaves n·m² behind.
    import deadir.covariance as covariance_module

    n = 7
    col = np.full(n, 1e8 + 0.1)
    assert col.mean() != col[0]
    rows = np.column_stack([np.arange(n, dtype=float), col])
    assert CovarianceAccumulator(2).update(rows).cov()[1, 1] == 0.0
    monkeypatch.setitem(covariance_module.UNIT_ROUNDOFF, "float64", 1.0)
    assert CovarianceAccumulator(2).update(rows).cov()[1, 1] > 0.0
