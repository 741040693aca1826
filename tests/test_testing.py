"""Error paths and small behaviours of deadir.testing (strategies, assertion helpers, pack)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deadir import DegenerateScaleError, InputShapeError, NormSpec
from deadir.testing import (
    NormPropertyError,
    activations,
    assert_matches_reference,
    assert_mean_centring_kernel,
    assert_no_kernel,
    assert_shift_invariant,
    betas,
    dims,
    dtype_name,
    epsilons,
    gammas,
    load_factory,
    prepare_norm,
    round_to_dtype,
    run_pack,
)


@pytest.mark.parametrize("call", [
    lambda: dims(min_value=0), lambda: dims(max_value=5000), lambda: dims(min_value=9, max_value=3),
    lambda: gammas(0), lambda: gammas(4, dtype="int8"), lambda: betas(True), lambda: epsilons(min_value=-1.0),
    lambda: epsilons(min_value=2.0, max_value=1.0), lambda: activations(4, min_rows=0),
    lambda: activations(4, min_rows=5, max_rows=2), lambda: dtype_name("complex64"),
])
def test_strategy_arguments_rejected(call: object) -> None:
    with pytest.raises(InputShapeError):
        call()  # type: ignore[operator]


@settings(max_examples=30, derandomize=True, database=None, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]))
def test_strategies_respect_dtype_and_shape(data: st.DataObject, dtype: str) -> None:
    d = data.draw(dims(max_value=64))
    g = data.draw(gammas(d, dtype=dtype))
    x = data.draw(activations(d, dtype=dtype, max_elements=512))
    assert g.shape == (d,) and np.all(g != 0) and np.all(np.isfinite(g))
    np.testing.assert_array_equal(round_to_dtype(g, dtype), g)
    assert x.ndim == 2 and x.shape[1] == d and 1 <= x.shape[0] and np.all(np.isfinite(x))
    np.testing.assert_array_equal(round_to_dtype(x, dtype), x)
    e = data.draw(epsilons())
    assert 0.0 <= e <= 1.0


def test_dtype_names() -> None:
    assert dtype_name(torch.bfloat16) == "bfloat16" and dtype_name(np.float32) == "float32"
    assert dtype_name("half") == "float16" and dtype_name("float64") == "float64"


def test_layernorm_passes_and_rmsnorm_fails_the_kernel_assertion() -> None:
    rng = np.random.default_rng(0)
    gamma, beta, x = rng.uniform(0.5, 2, 16), rng.standard_normal(16), rng.standard_normal((40, 16))
    t1, t2 = assert_mean_centring_kernel(torch.nn.LayerNorm(16), x, gamma=gamma, beta=beta)
    assert t1.ratio <= 1 and t2.ratio <= 1 and t1.dtype == "float32"
    with pytest.raises(NormPropertyError, match="T1 hyperplane violated") as info:
        assert_mean_centring_kernel(torch.nn.RMSNorm(16), x, gamma=gamma)
    err = info.value
    assert err.measured > err.bound and err.gamma is not None and err.x.shape == (1, 16)
    assert "gamma = " in str(err) and "x (1 row(s) shown)" in str(err)


def test_no_kernel_assertion() -> None:
    assert assert_no_kernel(torch.nn.RMSNorm(8), d=8).ratio < 1
    with pytest.raises(NormPropertyError, match="T5 no kernel"):
        assert_no_kernel(torch.nn.LayerNorm(8), d=8)
    with pytest.raises(InputShapeError, match="give d="):
        assert_no_kernel(torch.nn.RMSNorm(8))


def test_shift_assertion() -> None:
    x = np.random.default_rng(1).standard_normal((5, 12))
    assert assert_shift_invariant(torch.nn.LayerNorm(12), x, 3.0).ratio <= 1
    with pytest.raises(NormPropertyError, match="T8 shift invariance"):
        assert_shift_invariant(torch.nn.RMSNorm(12), x, 3.0)
    with pytest.raises(InputShapeError, match="t: expected"):
        assert_shift_invariant(torch.nn.LayerNorm(12), x, [1.0, 2.0])


def test_reference_assertion_catches_a_wrong_eps() -> None:
    x = np.random.default_rng(2).standard_normal((6, 8)) * 1e-3
    spec = NormSpec("layernorm", np.ones(8), np.zeros(8), 1e-5)
    assert assert_matches_reference(torch.nn.LayerNorm(8, eps=1e-5), spec, x).ratio <= 1
    with pytest.raises(NormPropertyError, match="reference violated"):
        assert_matches_reference(torch.nn.LayerNorm(8), spec, x, eps=1e-2)
    with pytest.raises(InputShapeError, match="spec: expected a NormSpec"):
        assert_matches_reference(torch.nn.LayerNorm(8), "layernorm", x)  # type: ignore[arg-type]


def test_assertion_input_errors() -> None:
    ln = torch.nn.LayerNorm(4)
    with pytest.raises(InputShapeError, match="gamma: expected length 4"):
        assert_mean_centring_kernel(ln, np.zeros((2, 4)), gamma=np.ones(3))
    with pytest.raises(InputShapeError, match="last axis of size 4"):
        assert_mean_centring_kernel(prepare_norm(ln, 4), np.zeros((2, 5)))
    with pytest.raises(InputShapeError, match="NaN"):
        assert_mean_centring_kernel(ln, np.array([[1.0, np.nan, 0.0, 2.0]]))
    with pytest.raises(InputShapeError, match="eps"):
        prepare_norm(ln, 4, eps=-1.0)
    with pytest.raises(InputShapeError, match="no row with a defined output"):
        assert_mean_centring_kernel(ln, np.ones((3, 4)), eps=0.0)
    with pytest.raises(DegenerateScaleError):
        assert_mean_centring_kernel(ln, np.eye(4), gamma=np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(InputShapeError, match="d ≥ 2"):
        assert_mean_centring_kernel(torch.nn.LayerNorm(1), np.ones((2, 1)) * np.arange(2)[:, None])
    with pytest.raises(InputShapeError, match="expected a torch module"):
        prepare_norm(42, 4)


def test_nan_output_is_a_failure_not_a_crash() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / 0.0

    with pytest.raises(NormPropertyError, match="finite output"):
        assert_mean_centring_kernel(Broken(), np.random.default_rng(0).standard_normal((3, 4)))


def test_pack_and_factory_errors() -> None:
    with pytest.raises(InputShapeError, match="expect"):
        run_pack("deadir.testing.examples:layernorm", expect="batch")
    with pytest.raises(InputShapeError, match="properties"):
        run_pack("deadir.testing.examples:layernorm", properties=["T5 no kernel"])
    with pytest.raises(InputShapeError, match="max_examples"):
        run_pack("deadir.testing.examples:layernorm", max_examples=0)
    with pytest.raises(InputShapeError, match="max_d"):
        run_pack("deadir.testing.examples:layernorm", max_d=1)
    with pytest.raises(InputShapeError, match="cannot import"):
        load_factory("no_such_module_abc:f")
    with pytest.raises(InputShapeError, match="not callable"):
        load_factory("deadir.testing.examples:__doc__")


def test_pack_reports_a_crashing_norm_as_error_not_fail() -> None:
    """A norm that raises is an ERROR (exit 2) with its traceback, never a counterexample (FAIL)."""
    def crashing(d: int) -> object:
        return lambda x: (_ for _ in ()).throw(RuntimeError("boom"))

    report = run_pack(crashing, max_examples=3, max_d=4, shrink=False, properties=["T1 hyperplane", "reference"])
    t1, ref = report.outcomes
    assert report.verdict == "ERROR" and report.exit_code == 2 and not report.caught_by
    assert t1.error is not None and "boom" in t1.error and "Traceback" in t1.details
    assert ref.skipped == "not run after an ERROR"


def test_pack_reports_a_missing_reference_as_not_run() -> None:
    report = run_pack("deadir.testing.examples:functional_layernorm", max_examples=3, max_d=4, shrink=False,
                      properties=["reference"])
    assert report.verdict == "PASS" and report.outcomes[0].skipped
    assert "no reference formula known" in (report.outcomes[0].skipped or "")
    assert "not run" in report.render()


def test_pack_on_plain_callables_uses_no_drawn_parameters() -> None:
    """A parameter-free callable is judged with γ = 1, β = 0 (what it applies), not with drawn values."""
    ok = run_pack("deadir.testing.examples:functional_layernorm", max_examples=15, max_d=16, shrink=False)
    assert ok.passed, ok.render()
    assert all(o.examples > 0 for o in ok.outcomes if not o.skipped)
    rms = run_pack("deadir.testing.examples:functional_rmsnorm", expect="rms", max_examples=15, max_d=16,
                   shrink=False)
    assert rms.passed, rms.render()
    wrong = run_pack("deadir.testing.examples:functional_rmsnorm", expect="mean-centring", max_examples=15,
                     max_d=16, shrink=False, properties=["T1 hyperplane"])
    assert not wrong.passed and "gamma" in (wrong.outcomes[0].counterexample or "")


def test_kernel_check_centres_without_its_own_rounding() -> None:
    """Regression (found by the fuzzing): γ₀ ≈ 1e-297 makes channel 0 output exactly β₀ on every row;
    a one-pass mean of those rows is off by an ulp of β₀, which alone exceeds the T10 bound."""
    from deadir.testing.assertions import _centred, _run, check_kernel, prepare_norm

    gamma = np.array([-1.2613833228655193e-297, -9.3608178269658504e-001])
    beta = np.array([0.01257302210933933, -0.013210486329130189])
    x = np.array([[2.3059712891179363, -2.4228862341402455], [11.745753980071713, 1.9239340890074073],
                  [-9.824513026599869, 6.631880606405061], [23.91618052468848, 17.370060200752754],
                  [-12.906946594058269, -23.208625225418565]])
    prep = prepare_norm(torch.nn.LayerNorm(2), 2, gamma=gamma, beta=beta, eps=0.0, dtype="float64")
    m = check_kernel(prep, x)
    assert m.ratio <= 1.0
    y, _ = _run(prep, x)
    one_pass = (y - y.mean(axis=0))[:, 0]
    assert np.all(y[:, 0] == beta[0]) and np.all(one_pass != 0.0)  # the measurement's own rounding
    assert np.all(_centred(y)[:, 0] == 0.0)


def test_found_by_fuzzing_gemma_offset_groupnorm_constant_group_and_dead_rms_channel() -> None:
    """Three counterexamples of a dev-profile run, each a mistake of the checks, not of the norm."""
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm

    from deadir.testing.assertions import InconclusiveError, check_no_kernel, check_reference, prepare_norm

    # Gemma's 1 + w with w ≈ −1.04, formed in float32 inside a float64 module: the cancellation is budgeted
    gemma = prepare_norm(GemmaRMSNorm(2), 2, gamma=[-0.037992313504219055, -0.011663327924907207], eps=0.0,
                         dtype="float64", compute_dtype="float32")
    spec = NormSpec("rmsnorm", np.ones(2), None, 0.0)
    assert check_reference(gemma, spec, [[0.001833723159506917, -0.0019266946474090219]]).ratio <= 1.0
    # GroupNorm with ε = 0: a row with one constant group has an undefined output and is left out
    gn = prepare_norm(torch.nn.GroupNorm(3, 6), 6, gamma=np.ones(6), beta=np.zeros(6), eps=0.0, dtype="float64")
    rows = [[0.0, -10.0, -1.0, -0.0, -6.0, -6.0], [1.0, 2.0, 3.0, 5.0, 8.0, 13.0]]
    spec_gn = NormSpec("groupnorm", np.ones(6), np.zeros(6), 0.0, groups=3)
    assert check_reference(gn, spec_gn, rows).n == 1
    # RMSNorm whose γ₀ is 1e-307: e₀ is null for any norm (dead channel); γ⁻¹'s live part is tested instead
    rms = prepare_norm(torch.nn.RMSNorm(2, eps=0.0), 2, gamma=[-2.936886909570357e-307, -0.936081782696585],
                       dtype="float64")
    x = np.random.default_rng(0).standard_normal((16, 2))
    with pytest.raises(InconclusiveError, match="dead"):
        check_no_kernel(rms, x)
    for tiny in (1e-307, 5e-324):  # a normal and a subnormal dead gain: never inverted, no overflow
        rms3 = prepare_norm(torch.nn.RMSNorm(3, eps=0.0), 3, gamma=[tiny, -0.9, 1.7], dtype="float64")
        with np.errstate(divide="raise", over="raise", invalid="raise"):  # underflow to 0 is correct rounding
            assert check_no_kernel(rms3, np.random.default_rng(0).standard_normal((16, 3))).ratio <= 1.0
    # control: the same check still rejects a LayerNorm (its kernel γ⁻¹ = 𝟙 here)
    ln = prepare_norm(torch.nn.LayerNorm(3), 3, gamma=[1.0, 1.0, 1.0], beta=np.zeros(3), dtype="float64")
    with pytest.raises(NormPropertyError, match="T5 no kernel"):
        check_no_kernel(ln, np.random.default_rng(0).standard_normal((16, 3)))


def test_found_by_the_nightly_profile_mean_rounding_against_the_rows_own_spread() -> None:
    """Nightly-profile runs (10,000 examples, nn.LayerNorm float32 "correct implementation passes"): three false
    alarms on rows where the float32 mean's error δ is as large as the centred value of the channels that carry
    the fit of r (the seven large-γ channels of the T8 row come out exactly β: the mean rounds onto their common
    value). The fit through the origin then under-reads r, and the bound with it. The fit now allows for
    |δ| ≤ γ_{k+1}(u_c)(|μ| + σ); a row whose output cannot show r is left out. The same rows with a resolvable
    mean are still checked, and a wrong norm still fails on them."""
    from deadir.testing.assertions import UndefinedOutputError, _rows, check_hyperplane, check_shift

    # T1: d = 2, ε = 0.1, |μ| = 266035, σ = 0.0156, δ_max = γ₃(u₃₂)·|μ| = 0.048 ≥ σ: no r shown (was 2.9× "over")
    t1 = prepare_norm(torch.nn.LayerNorm(2), 2, gamma=[0.252841, 1.484522], beta=np.zeros(2), eps=0.1,
                      dtype="float32")
    with pytest.raises(UndefinedOutputError, match="rounding"):
        check_hyperplane(t1, [[-266035.21875, -266035.1875]])
    assert check_hyperplane(t1, [[-2.21875, -2.1875], [-266035.21875, -266035.1875]]).n == 1  # resolvable row
    # T8: d = 8, ε = 1e-6, σ = 1.6e-4, shifted by 1493.06 to |μ| ≈ 1495.5 (δ_max = 8e-4 ≥ σ): was 27×
    gamma = [-1.157019, 1.46638, 1.236367e-37, 0.2123072, -0.7928191, 1.394683, 0.6840313, -9.044405e-38]
    t8 = prepare_norm(torch.nn.LayerNorm(8), 8, gamma=gamma, beta=np.zeros(8), eps=1e-6, dtype="float32")
    row = [[2.474121] * 7 + [2.473633]]
    assert _rows(row, t8).shape == (1, 8)  # unshifted, the row is resolvable ...
    assert check_shift(t8, row, 1493.06).n == 0  # ... shifted, it is not: no verdict from it
    assert check_shift(t8, row, 1.5).ratio <= 1.0  # a shift that keeps it resolvable is checked and passes
    # the dev-profile case of the same kind (one heavy γ = 180.8, ε = 0.837, shift −4970): 95× before, left out now
    heavy = prepare_norm(torch.nn.LayerNorm(8), 8, gamma=[1e-5, 2e-5, -3e-5, 1.5e-5, 1e-5, -2e-5, 5e-5, 180.8],
                         beta=np.zeros(8), eps=0.837, dtype="float32")
    assert check_shift(heavy, [[0.299805] * 7 + [0.298828]], -4970.0).n == 0
    assert check_shift(heavy, [[0.299805] * 7 + [0.298828]], -4.97).n == 1
    # T1, second nightly run: d = 13, |μ| = 793391, σ = 0.87 — resolvable (γ₁₄(u₃₂)|μ| = 0.66),
    # but the heavy channel γ = −531.7 sits 0.067 from μ, within the mean's rounding: the fit through the origin
    # read r = 0.071 instead of 1.15 (1.36× "over"). The fit now allows for the mean error: that row shows no r.
    g13 = [-0.8160785, -0.8489919, 1.865422, 0.1395161, -0.004993846, -531.7329, -0.068306, 12.72914, -0.01853896,
           3.712793, -23.33037, 0.1678575, 0.003134208]
    x13 = [-793391.125, -793390.5, -793390.6875, -793393.0, -793391.1875, -793390.9375, -793390.8125, -793390.75,
           -793390.375, -793392.0, -793390.5625, -793390.1875, -793389.1875]
    t13 = prepare_norm(torch.nn.LayerNorm(13), 13, gamma=g13, beta=np.zeros(13), eps=0.0, dtype="float32")
    with pytest.raises(UndefinedOutputError):
        check_hyperplane(t13, [x13])
    assert check_hyperplane(t13, [[v + 793390.0 for v in x13]]).ratio <= 1.0  # the same row, centred: checked
    # control: a LayerNorm plus a small term that is not shift invariant still fails T8 on the same row and shift
    g32 = torch.tensor(gamma, dtype=torch.float32)

    def leaky(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, (8,), g32, None, 1e-6) + 0.05 * x

    planted = prepare_norm(leaky, 8, gamma=gamma, beta=np.zeros(8), eps=1e-6, dtype="float32")
    with pytest.raises(NormPropertyError, match="T8"):
        check_shift(planted, row, 1.5)


def test_found_by_the_nightly_profile_a_shift_beyond_the_dtypes_range_is_left_out() -> None:
    """Nightly profile, T8 on F.layer_norm and nn.LayerNorm in float16: a row with max|x| = 1024 shifted by
    63·1024 = 64512 lands, on the exact-shift grid (step 64), on 65536 > 65504: stored as inf, and the norm's
    inf output was reported as a T8 failure on a "finite input row". Such rows are left out; shifts that
    stay in range are still checked, and a norm that is not shift invariant still fails there."""
    from deadir.testing.assertions import check_hyperplane, check_shift

    row = [[0.0, 0.0, 0.0, 1024.0]]
    ln16 = prepare_norm(torch.nn.LayerNorm(4), 4, gamma=np.ones(4), beta=np.zeros(4), eps=0.0, dtype="float16")
    assert check_shift(ln16, row, 63 * 1024.0).n == 0
    assert check_shift(ln16, row, 60 * 1024.0).n == 1  # 61440 + 1024 = 62464 ≤ 65504: checked, and passes
    rms16 = prepare_norm(torch.nn.RMSNorm(4, eps=1e-6), 4, gamma=np.ones(4), dtype="float16")
    with pytest.raises(NormPropertyError, match="T8"):
        check_shift(rms16, row, 60 * 1024.0)
    # an input the dtype cannot store is the caller's error, named, never a norm's failure
    with pytest.raises(InputShapeError, match=r"float16's largest finite value 65504"):
        check_hyperplane(ln16, [[70000.0, 1.0, 2.0, 3.0]])
    with pytest.raises(InputShapeError, match=r"float16's largest finite value"):
        check_shift(ln16, [[70000.0, 1.0, 2.0, 3.0]], 1.0)


def test_found_by_fuzzing_rows_beyond_the_dtype_and_subnormal_outputs() -> None:
    """Second dev-profile run: what no implementation can resolve is left out, not failed."""
    from deadir.precision import SMALLEST_SUBNORMAL
    from deadir.testing.assertions import UndefinedOutputError, _rows, check_hyperplane

    # float32, ε = 0: a row whose mean's rounding (~6e-8·4.8) exceeds its spread (~5e-7) is noise
    ln32 = prepare_norm(torch.nn.LayerNorm(2), 2, gamma=[-0.01, -0.01], beta=np.zeros(2), eps=0.0, dtype="float32")
    with pytest.raises(UndefinedOutputError, match="rounding"):
        check_hyperplane(ln32, [[4.827716, 4.827717]])
    assert _rows([[4.827716, 4.827717], [1.0, 2.0]], ln32).shape == (1, 2)  # the resolvable row stays
    # ε = 1e-33 is 0 in float16, where torch's half kernel adds it: constant rows are undefined there
    ln16 = prepare_norm(torch.nn.LayerNorm(2), 2, gamma=np.ones(2), beta=np.zeros(2), eps=1e-33, dtype="float16")
    with pytest.raises(UndefinedOutputError):
        check_hyperplane(ln16, [[0.37719727, 0.37719727]])
    # the absolute error of a subnormal result: half the smallest subnormal of each format
    assert SMALLEST_SUBNORMAL["bfloat16"] == 2.0**-133 and SMALLEST_SUBNORMAL["float16"] == 2.0**-24
