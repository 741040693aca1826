"""Verdicts, tolerances and the norm-driving options of deadir.testing (issue 14).

Every check here has its planted wrong input: a norm 3x off the new tolerance, a hanging
norm, a non-deterministic one, a factory that raises, a module whose scale is not .weight.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from deadir import InputShapeError
from deadir.testing import run_pack
from deadir.testing.adapters import DriveOptions, Layout
from deadir.testing.assertions import NormPropertyError, check_hyperplane, prepare_norm
from deadir.testing.harness import NormTimeoutError, call_with_timeout
from deadir.testing.tolerance import effective_normaliser, hyperplane_tolerance
from property_tests.mutants import (
    FoldedBiasLayerNorm,
    OffByThreeBounds,
    RenamedEpsLayerNorm,
    StdPlusEpsLayerNorm,
    TwoPassLayerNorm,
    UnbiasedStdLayerNorm,
)

FAST: dict[str, Any] = {"max_examples": 25, "max_d": 16, "shrink": False, "reference": "none"}


def test_layernorm_keeps_its_old_margin() -> None:
    """nn.LayerNorm's worst T1 measured/bound stays far below 1 (the old bound's margin was ~0.1-0.3)."""
    report = run_pack(lambda d: torch.nn.LayerNorm(d), max_examples=40, max_d=32, shrink=False)
    assert report.verdict == "PASS", report.render()
    t1 = report.outcomes[0]
    assert t1.examples > 20 and 0.0 < t1.max_ratio < 0.5


def test_new_tolerance_equals_kernel_error_bound_for_an_exact_layernorm() -> None:
    """For y = LayerNorm(x) with ε = 0 the measured s is 1 and ρ the old one: the bound is kernel_error_bound's
    (up to the folded-bias β term)."""
    from deadir.bound import kernel_error_bound

    rng = np.random.default_rng(0)
    g, x = rng.uniform(0.5, 2, 8), rng.standard_normal((3, 8)) + 2.0
    xc = x - x.mean(1, keepdims=True)
    y = xc / np.sqrt((xc * xc).mean(1, keepdims=True)) * g
    norm = effective_normaliser(x, y, g, np.zeros(8))
    np.testing.assert_allclose(norm.spread, 1.0, rtol=1e-12)
    tol = hyperplane_tolerance(g, np.zeros(8), norm, dtype="float32", compute_dtype="float32")
    for k in range(3):
        old = kernel_error_bound(g, "float32", mean_ratio=float(norm.mean_ratio[k, 0])).residual
        assert tol[k, 0] == pytest.approx(old, rel=1e-9)


@pytest.mark.parametrize("cls", [StdPlusEpsLayerNorm, UnbiasedStdLayerNorm, FoldedBiasLayerNorm,
                                 RenamedEpsLayerNorm, TwoPassLayerNorm])
def test_correct_algebra_in_another_form_passes(cls: Any) -> None:
    """std + ε, the unbiased std, a folded bias and a renamed ε are all correct mean-centring: PASS."""
    for dtype in ("float32", "float64"):
        report = run_pack(cls, dtype=dtype, **FAST)
        assert report.verdict == "PASS", report.render()


def test_renaming_eps_does_not_change_the_algebra_verdict() -> None:
    a = run_pack(TwoPassLayerNorm, properties=["T1 hyperplane"], **FAST)
    b = run_pack(RenamedEpsLayerNorm, properties=["T1 hyperplane"], **FAST)
    assert a.verdict == b.verdict == "PASS"


def test_a_norm_three_tolerances_off_is_caught() -> None:
    report = run_pack(OffByThreeBounds, properties=["T1 hyperplane"], **FAST)
    assert report.verdict == "FAIL" and report.exit_code == 1
    assert "T1 hyperplane violated" in report.outcomes[0].counterexamples[0]
    direct = prepare_norm(OffByThreeBounds(6), 6, gamma=np.linspace(0.5, 2, 6), beta=np.ones(6), eps=1e-5,
                          dtype="float32")
    with pytest.raises(NormPropertyError, match=r"ratio 2\.9|ratio 3"):
        check_hyperplane(direct, np.random.default_rng(1).standard_normal((4, 6)))


def test_a_hanging_norm_is_an_error_and_does_not_hang() -> None:
    release = threading.Event()

    class Hangs(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            release.wait(30)
            return super().forward(x)

    start = time.monotonic()
    try:
        report = run_pack(Hangs, timeout=0.5, **FAST)
    finally:
        release.set()
    assert report.verdict == "ERROR" and report.exit_code == 2
    assert "did not return within 0.5 s" in report.render()
    assert time.monotonic() - start < 25  # no second wait per property: the pack stops at the first ERROR
    with pytest.raises(NormTimeoutError, match=r"x did not return within 0\.01 s"):
        call_with_timeout(lambda: threading.Event().wait(5), 0.01, what="x")


def test_a_non_deterministic_norm_is_an_error() -> None:
    counter = itertools.count()

    class Alternates(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = super().forward(x)
            return y if next(counter) % 2 else (y - self.bias) * 1.01 + self.bias  # still on the hyperplane

    report = run_pack(Alternates, **FAST)
    assert report.verdict == "ERROR" and "not deterministic" in report.render()
    off = run_pack(Alternates, determinism=False, properties=["T1 hyperplane"], **FAST)
    assert off.verdict == "PASS"  # ×1.01 keeps the hyperplane: only the determinism check sees it


def test_a_factory_that_raises_is_an_error_with_its_traceback() -> None:
    def factory(d: int) -> Any:
        raise ValueError("no such size")

    report = run_pack(factory, **FAST)
    assert report.verdict == "ERROR" and report.exit_code == 2
    text = report.render()
    assert "the factory raised ValueError: no such size" in text and "Traceback" in text


def test_every_distinct_failure_is_reported_shrunk() -> None:
    """A norm that breaks two ways gives two counterexamples, each with γ, β, x, ε and dtype."""
    class TwoBugs(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] % 2:
                return x * 2.0  # no centring at odd d
            y = super().forward(x)
            return torch.where(torch.isfinite(y), y, y) * torch.nan if x.shape[0] >= 3 else y  # NaN on >= 3 rows

    report = run_pack(TwoBugs, properties=["T1 hyperplane"], max_examples=60, max_d=8, reference="none")
    o = report.outcomes[0]
    assert report.verdict == "FAIL" and o.failures >= 2, report.render()
    for ce in o.counterexamples:
        assert "gamma = " in ce and "beta  = " in ce and "x (" in ce and "eps=" in ce and "float32" in ce
    assert "counterexample 1 of" in report.render()


def test_measured_zero_over_bound_zero_is_impossible() -> None:
    err = NormPropertyError("T2 kernel", measured=0.0, bound=0.0, gamma=None, beta=None, x=np.zeros((1, 2)),
                            eps=None, dtype="float32", d=2)
    assert "0 > bound 0" not in err.render() and "ratio inf" not in err.render()


def test_module_without_weight_is_not_silently_tested_at_gamma_one() -> None:
    class GammaNamed(torch.nn.Module):
        def __init__(self, d: int) -> None:
            super().__init__()
            self.gamma = torch.nn.Parameter(torch.ones(d))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.layer_norm(x, (x.shape[-1],)) * self.gamma

    report = run_pack(GammaNamed, **FAST)
    assert report.verdict == "ERROR" and "--gamma-attr" in report.render()
    ok = run_pack(GammaNamed, gamma_attr="gamma", **FAST)
    assert ok.verdict == "PASS", ok.render()

    class WrongUseOfGamma(GammaNamed):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.layer_norm(x, (x.shape[-1],)) * self.gamma.abs()

    bad = run_pack(WrongUseOfGamma, gamma_attr="gamma", properties=["T1 hyperplane"], **FAST)
    assert bad.verdict == "FAIL"  # γ is really drawn: a norm that misuses it is caught


def test_protocol_and_scalar_gain() -> None:
    class ScaleNormLike(torch.nn.Module):
        deadir_parameters: ClassVar[dict[str, str | None]] = {"gamma": "g", "beta": None, "eps": None}

        def __init__(self, d: int) -> None:
            super().__init__()
            self.g = torch.nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            xc = x - x.mean(-1, keepdim=True)
            return self.g * xc / xc.norm(dim=-1, keepdim=True).clamp_min(1e-30)

    report = run_pack(ScaleNormLike, **FAST)
    assert report.verdict == "PASS", report.render()
    assert any("scalar gain" in n for n in report.notes)


def test_layouts_axis_and_normalized_shape() -> None:
    class LayerNorm2d(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W), normalised over C
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    assert run_pack(LayerNorm2d, layout="channels-first", **FAST).verdict == "PASS"
    wrong = run_pack(lambda d: torch.nn.LayerNorm(1), layout="channels-first", properties=["T1 hyperplane"],
                     **{**FAST, "max_d": 4})
    assert wrong.verdict != "PASS"  # normalising the last (size-1) axis is not the channel axis
    report = run_pack(lambda d: torch.nn.LayerNorm((2, 4)), normalized_shape=(2, 4), **FAST)
    assert report.verdict == "PASS", report.render()
    lay = Layout(axis=1)
    rows = np.arange(6.0).reshape(2, 3)
    assert lay.to_input(rows).shape == (1, 3, 2)
    np.testing.assert_array_equal(lay.to_rows(lay.to_input(rows), 2, 3), rows)
    with pytest.raises(InputShapeError, match="layout"):
        DriveOptions(layout="nhwc")
    with pytest.raises(InputShapeError, match="timeout"):
        DriveOptions(timeout=-1.0)


def test_compute_dtype_declaration() -> None:
    class ComputesInFloat32(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.layer_norm(x.float(), self.normalized_shape, self.weight.float(),
                                                  self.bias.float(), self.eps).to(x.dtype)

    hidden = run_pack(ComputesInFloat32, dtype="float64", properties=["T1 hyperplane"], **FAST)
    assert hidden.verdict == "FAIL"  # float64 judged at float64's bound: the float32 arithmetic shows
    declared = run_pack(ComputesInFloat32, dtype="float64", compute_dtype="float32", properties=["T1 hyperplane"],
                        **FAST)
    assert declared.verdict == "PASS", declared.render()
    assert any("declared compute dtype float32" in n for n in declared.notes)


def test_reference_option() -> None:
    class DropsEps(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            xc = x - x.mean(-1, keepdim=True)
            return xc / xc.pow(2).mean(-1, keepdim=True).sqrt() * self.weight + self.bias

    # a subclass of nn.LayerNorm: auto takes LayerNorm's formula and catches the missing ε
    caught = run_pack(DropsEps, **{**FAST, "reference": "auto", "max_examples": 80})
    assert "reference" in caught.caught_by and "T1 hyperplane" not in caught.caught_by
    algebra = run_pack(DropsEps, properties=["T1 hyperplane", "T2 kernel"],
                       **{**FAST, "reference": "none", "max_examples": 80})
    assert algebra.verdict == "PASS"  # dropping ε keeps the algebra: only the reference formula sees it
    with pytest.raises(InputShapeError, match="reference"):
        run_pack(DropsEps, **{**FAST, "reference": "batchnorm"})


def test_weight_offset_draws_w_and_never_blames_the_norm_for_a_zero_scale() -> None:
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm

    for dtype in ("bfloat16", "float32"):
        report = run_pack(GemmaRMSNorm, expect="rms", dtype=dtype, max_examples=40, max_d=16, shrink=False,
                          reference="rmsnorm", weight_offset=1.0, compute_dtype="float32")
        assert report.verdict == "PASS", report.render()
        assert "DegenerateScaleError" not in report.render()


def test_conditioned_norms_row_by_row() -> None:
    """adaLN passes T1 and T8 with γ(cond), β(cond) read per row; the same over an RMSNorm fails T1."""
    ok = run_pack("deadir.testing.examples:adaptive_layernorm", conditioned=True, **FAST)
    assert ok.verdict == "PASS" and [o.name for o in ok.outcomes] == ["T1 hyperplane", "T8 shift invariance"]
    assert all(o.examples > 5 for o in ok.outcomes), ok.render()
    bad = run_pack("deadir.testing.examples:adaptive_rmsnorm", conditioned=True, **FAST)
    assert bad.verdict == "FAIL" and "T1 hyperplane" in bad.caught_by
    with pytest.raises(InputShapeError, match="conditioned"):
        run_pack("deadir.testing.examples:adaptive_layernorm", conditioned=True, properties=["T2 kernel"], **FAST)
    plain = run_pack("deadir.testing.examples:layernorm", conditioned=True, **FAST)
    assert plain.verdict == "ERROR" and "deadir_affine" in plain.render()


class _FlushToZeroLayerNorm(torch.nn.LayerNorm):
    """nn.LayerNorm whose outputs below the smallest normal number are flushed to 0, as XLA on CPU does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        tiny = torch.finfo(y.dtype).tiny
        return torch.where(y.abs() < tiny, torch.zeros_like(y), y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flush_to_zero_of_a_near_minimal_gamma_is_not_a_failure(dtype: str) -> None:
    """Regression (flax two-pass LayerNorm, float32 and float64): γᵢ near the smallest normal number puts yᵢ
    in the subnormal range, where a flush-to-zero runtime returns 0; the tolerance carries that absolute error."""
    from deadir.testing.assertions import check_kernel

    tiny = float(np.finfo(dtype).smallest_normal)
    gamma = np.array([1.036537, -0.8286419, -1.418222, 2.68 * tiny, 0.4415597])
    x = np.array([[7035.984375, 7036.375977, 7036.438477, 7034.902344, 7036.891113],
                  [7035.427246, 7036.088867, 7035.251465, 7036.367188, 7037.640625],
                  [7035.4375, 7036.424805, 7036.299316, 7036.32959, 7036.420898],
                  [7035.036133, 7033.215332, 7036.304688, 7034.157227, 7033.447754]])
    prep = prepare_norm(_FlushToZeroLayerNorm(5), 5, gamma=gamma, beta=np.zeros(5), eps=0.2037, dtype=dtype)
    assert check_hyperplane(prep, x).ratio <= 1.0
    assert check_kernel(prep, x).ratio <= 1.0
    # planted: the same near-minimal γ with a norm that does not centre must still fail T1
    no_centre = prepare_norm(torch.nn.RMSNorm(5, eps=0.2037), 5, gamma=gamma, dtype=dtype)
    with pytest.raises(NormPropertyError, match="T1 hyperplane"):
        check_hyperplane(no_centre, x)


@pytest.mark.parametrize("dtype", ["float64", "bfloat16", "float16"])
def test_conditioned_norm_runs_in_the_dtype_under_test(dtype: str) -> None:
    """Regression: the conditioned norm was left in float32 while x and cond were cast (a dtype-mismatch ERROR)."""
    ok = run_pack("deadir.testing.examples:adaptive_layernorm", conditioned=True, dtype=dtype, **FAST)
    assert ok.verdict == "PASS", ok.render()
    bad = run_pack("deadir.testing.examples:adaptive_rmsnorm", conditioned=True, dtype=dtype, **FAST)
    assert bad.verdict == "FAIL", bad.render()


def test_no_kernel_check_with_a_gain_at_the_underflow_edge_is_not_a_harness_error() -> None:
    """Regression (x-transformers ScaleNorm, float64): a scalar gain of -2.9e-307 overflowed the squared bound
    (Python OverflowError, an ERROR); it is now inconclusive or decided, never a crash."""
    from deadir.testing.assertions import InconclusiveError, check_no_kernel

    prep = prepare_norm(torch.nn.RMSNorm(2), 2, gamma=np.full(2, -2.93688691e-307), dtype="float64")
    try:
        m = check_no_kernel(prep)
    except InconclusiveError:
        return
    assert m.ratio <= 1.0
