"""Theorems T1, T2, T5, T8 and reference agreement, fuzzed over every backend and dtype.

Tolerances: T1/T2 from deadir.bound.kernel_error_bound (T10), T8 from the first-order
forward bound of deadir.testing.forward_error_bound, the reference budget relative to
PyTorch's own error against float64; T5 requires γ⁻¹ and 𝟙 to lie 64x above the T10 bound.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, reject
from hypothesis import strategies as st

from deadir.testing import (
    NormPropertyError,
    PreparedNorm,
    activations,
    betas,
    check_hyperplane,
    check_kernel,
    check_no_kernel,
    check_reference,
    check_shift,
    dims,
    epsilons,
    gammas,
    prepare_norm,
)
from deadir.testing.assertions import UndefinedOutputError
from property_tests._fuzzlog import record
from property_tests.backends import GROUP_CENTRING, MEAN_CENTRING, RMS, Backend, cases

MAX_D = 4096


def draw_case(data: Any, backend: Backend, dtype: str, *, min_d: int = 2, max_d: int = MAX_D,
              min_rows: int = 1) -> tuple[Any, ...]:
    d = data.draw(dims(min_value=min_d, max_value=max_d), label="d")
    # a float64 input to a module that computes in float32 is cast there: draw values that
    # float32 holds, so the module sees the γ, β and x the bound is computed for
    vdt = backend.compute_dtype if dtype == "float64" and backend.compute_dtype else dtype
    gamma = data.draw(gammas(d, dtype=vdt), label="gamma")
    beta = data.draw(betas(d, dtype=vdt), label="beta")
    eps = data.draw(epsilons(), label="eps") if backend.fixed_eps is None else None
    x = data.draw(activations(d, dtype=vdt, min_rows=min_rows, max_elements=2**15), label="x")
    return d, prepare_case(backend, d, dtype, gamma, beta=beta, eps=eps), x


def prepare_case(backend: Backend, d: int, dtype: str, gamma: Any, **kwargs: Any) -> PreparedNorm:
    """The backend's norm holding ``gamma``; a γ the module cannot hold is rejected, never run.

    A (1 + w) module stores w = γ − 1, which rounds to −1 for |γ| below half the dtype's spacing
    at 1, so the module's γ is 0 there: that channel ignores its input (T6, tested apart), and a
    property of it is deadir's own degenerate draw, not the norm's behaviour.
    """
    prep = prepare_norm(backend.make(d), d, gamma=gamma, dtype=dtype, weight_offset=backend.weight_offset,
                        compute_dtype=backend.compute_dtype, **kwargs)
    if not holds_every_scale(prep):
        reject()
    return prep


def holds_every_scale(prep: PreparedNorm) -> bool:
    """Whether the module's γ (read back from it) has no zero channel."""
    return bool(np.all(prep.gamma != 0))


def run(check: Any, prop: str, backend: Backend, dtype: str, *args: Any) -> None:
    """Run one check and count the example only once it is decided (passed or failed), never a rejected one."""
    try:
        m = check(*args)
    except UndefinedOutputError:
        reject()
    except NormPropertyError:
        record(prop, backend.name, dtype)  # a decided (failing) example
        raise
    record(prop, backend.name, dtype, m.ratio)


@pytest.mark.parametrize(("backend", "dtype"), cases(MEAN_CENTRING))
@given(data=st.data())
def test_layernorm_output_on_inverse_scale_hyperplane(backend: Backend, dtype: str, data: Any) -> None:
    """T1: every output row satisfies |⟨v, ŷ − β⟩| ≤ T10 bound."""
    _, prep, x = draw_case(data, backend, dtype)
    run(check_hyperplane, "T1 hyperplane", backend, dtype, prep, x)


@pytest.mark.parametrize(("backend", "dtype"), cases(MEAN_CENTRING))
@given(data=st.data())
def test_layernorm_inverse_scale_is_covariance_kernel(backend: Backend, dtype: str, data: Any) -> None:
    """T2: vᵀĈv/λmax ≤ T10 bound for the empirical covariance of the outputs."""
    _, prep, x = draw_case(data, backend, dtype, max_d=1024, min_rows=2)  # < 2 rows: no covariance, vacuous
    run(check_kernel, "T2 kernel", backend, dtype, prep, x)


@pytest.mark.parametrize(("backend", "dtype"), cases(MEAN_CENTRING))
@given(data=st.data(), t=st.floats(-64.0, 64.0, allow_nan=False))
def test_layernorm_shift_invariant(backend: Backend, dtype: str, data: Any, t: float) -> None:
    """T8: LN(x + t𝟙) = LN(x) within the forward error bound."""
    _, prep, x = draw_case(data, backend, dtype)
    run(check_shift, "T8 shift invariance", backend, dtype, prep, x, t * max(1.0, float(np.max(np.abs(x)))))


@pytest.mark.parametrize(("backend", "dtype"), cases(MEAN_CENTRING + RMS + GROUP_CENTRING))
@given(data=st.data())
def test_norm_matches_float64_reference(backend: Backend, dtype: str, data: Any) -> None:
    """The output matches the float64 NormSpec forward within 2x PyTorch's own error (+ 8u·max|y|)."""
    d, prep, x = draw_case(data, backend, dtype)
    spec = backend.reference(d)
    spec = spec if prep.eps is None else dataclasses.replace(spec, eps=prep.eps)
    run(check_reference, "reference", backend, dtype, prep, spec, x)


@pytest.mark.parametrize(("backend", "dtype"), cases(RMS))
@given(data=st.data())
def test_rmsnorm_has_no_kernel(backend: Backend, dtype: str, data: Any) -> None:
    """T5: neither γ⁻¹ nor 𝟙 is a kernel direction of an RMS norm's outputs on Gaussian inputs."""
    _, prep, _ = draw_case(data, backend, dtype, max_d=512)
    run(check_no_kernel, "T5 no kernel", backend, dtype, prep)


@pytest.mark.parametrize(("backend", "dtype"), cases(RMS))
@given(data=st.data())
def test_rmsnorm_not_shift_invariant(backend: Backend, dtype: str, data: Any) -> None:
    """T8 fails for RMSNorm (negative control of the T8 check): shifting Gaussian rows by 𝟙 moves the output."""
    d = data.draw(dims(min_value=2, max_value=512), label="d")
    gamma = data.draw(gammas(d, dtype=dtype), label="gamma")
    prep = prepare_case(backend, d, dtype, gamma, eps=1e-6)
    x = np.random.default_rng(d).standard_normal((4, d))
    record("T8 fails (RMS control)", backend.name, dtype)
    with pytest.raises(NormPropertyError, match="T8 shift invariance"):
        check_shift(prep, x, 4.0)


def test_a_scale_a_1_plus_w_module_cannot_hold_is_rejected_not_run() -> None:
    """Found by the dev profile: GemmaRMSNorm in bfloat16 stores γ = [−0.0025, −0.0032] as w = −1, so its γ
    is 0, its output ignores x, and the RMS control above reported that T8 held."""
    gemma = next(b for b in RMS if b.name == "hf GemmaRMSNorm")
    gamma = np.array([-0.00248718, -0.00317383])
    held = prepare_norm(gemma.make(2), 2, gamma=gamma, eps=1e-6, dtype="bfloat16", weight_offset=1.0,
                        compute_dtype=gemma.compute_dtype)
    assert not holds_every_scale(held)
    assert check_shift(held, np.random.default_rng(2).standard_normal((4, 2)), 4.0).measured == 0.0
    ten_times = prepare_norm(gemma.make(2), 2, gamma=10 * gamma, eps=1e-6, dtype="bfloat16", weight_offset=1.0,
                             compute_dtype=gemma.compute_dtype)
    assert holds_every_scale(ten_times)
    with pytest.raises(NormPropertyError, match="T8 shift invariance"):
        check_shift(ten_times, np.random.default_rng(2).standard_normal((4, 2)), 4.0)


class ProjectsOutInverseScale(torch.nn.Module):
    """Planted bug: an RMSNorm whose output has the γ⁻¹ direction projected out (a kernel that T5 says is absent)."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        v = 1.0 / self.weight
        v = v / torch.linalg.vector_norm(v)
        return y - (y @ v)[:, None] * v


def _replay_case(backend: Backend, dtype: str, d: int, eps: float | None = None) -> tuple[Any, Any]:
    """The T5 proof's generated counterexample (two inputs ±γ⊙v, v = γ⁻¹/‖γ⁻¹‖) at the backend's ε and dtype."""
    from proofs.t05_rms_absence import numeric_counterexample

    if eps is None:
        eps = backend.fixed_eps if backend.fixed_eps is not None else 1e-6
    ex = numeric_counterexample(d, seed=d, eps=eps)
    prep = prepare_norm(backend.make(d), d, gamma=ex.gamma, eps=eps, dtype=dtype,
                        weight_offset=backend.weight_offset, compute_dtype=backend.compute_dtype)
    return ex, prep


@pytest.mark.parametrize("d", [2, 3, 16, 257])
@pytest.mark.parametrize(("backend", "dtype"), cases(RMS))
def test_t5_counterexample_replays_as_no_kernel(backend: Backend, dtype: str, d: int) -> None:
    """T5's generated counterexample: the no-kernel check passes, the mean-centring assertion rejects it."""
    from deadir.testing import assert_mean_centring_kernel, assert_no_kernel

    ex, prep = _replay_case(backend, dtype, d)
    if dtype == "float64" and backend.compute_dtype is None:  # the proof's own arithmetic: vᵀCv = S²/(S/d + ε)
        y, _ = prep.run(ex.points)
        yc = y - y.mean(axis=0)
        assert float(ex.v @ (yc.T @ yc / 2) @ ex.v) == pytest.approx(ex.closed_form, rel=1e-12)
    m = assert_no_kernel(prep, ex.points)
    record("T5 counterexample replay", backend.name, dtype, m.ratio)
    # the counterexample's rows are constant (γ⊙γ⁻¹ ∝ 𝟙), whose normaliser no output shows (tolerance.py):
    # with one varying row beside them the mean-centring assertion has something to decide, and rejects
    varying = np.vstack([ex.points, np.linspace(-1.0, 2.0, d)[None, :]])
    with pytest.raises(NormPropertyError, match=r"T1 hyperplane|T2 kernel"):
        assert_mean_centring_kernel(prep, varying)


@pytest.mark.parametrize("d", [3, 16])
def test_t5_counterexample_replay_catches_a_planted_kernel(d: int) -> None:
    """Teeth: on an RMSNorm with γ⁻¹ projected out, the replayed counterexample fails the no-kernel check."""
    from deadir.testing import assert_mean_centring_kernel, assert_no_kernel

    planted = Backend("planted kernel", ProjectsOutInverseScale, "rmsnorm", ("float64",))
    # the two inputs are constant rows (γ⊙γ⁻¹ ∝ 𝟙): at ε = 1 their |mean|/√ε is O(1), so the
    # LayerNorm bound the check compares with is resolvable (T5 holds for every ε ≥ 0)
    ex, prep = _replay_case(planted, "float64", d, eps=1.0)
    with pytest.raises(NormPropertyError, match="T5 no kernel"):
        assert_no_kernel(prep, ex.points)
    assert_mean_centring_kernel(prep, np.vstack([ex.points, np.linspace(-1.0, 2.0, d)[None, :]]))  # it has the kernel
