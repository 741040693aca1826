"""The conformance runner (deadir.testing.conformance): its implementation list, diagnoses and table.

Planted wrong inputs: deadir's NumPy LayerNorm with its statistics kept in float16 (the
mutant must FAIL and be diagnosed as a variance underflow), and rows whose inf output has
another cause (no underflow diagnosis may be invented for them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from deadir.testing.assertions import NormPropertyError
from deadir.testing.conformance import (
    IMPLEMENTATIONS,
    Implementation,
    Row,
    _diagnose,
    _norm_on_rows,
    _pack,
    render_markdown,
    statistics_cause,
)


def _finite_error(x: list[list[float]], dtype: str, eps: float = 0.0) -> NormPropertyError:
    return NormPropertyError("finite output", measured=math.inf, bound=math.nan, gamma=np.ones(len(x[0])),
                             beta=np.zeros(len(x[0])), x=np.asarray(x), eps=eps, dtype=dtype, d=len(x[0]))


def test_at_least_thirty_implementations_with_unique_names() -> None:
    names = [i.name for i in IMPLEMENTATIONS]
    assert len(names) >= 30 and len(set(names)) == len(names)


def test_half_precision_statistics_mutant_is_caught_and_diagnosed_as_variance_underflow() -> None:
    mutant = Implementation("mutant", "deadir.testing.examples:numpy_layernorm_half_statistics",
                            reference="layernorm", options=(("framework", "numpy"),))
    report = _pack(mutant, "float16", 30)
    assert report.verdict == "FAIL", report.render()
    diagnosis = _diagnose(mutant, "float16", report, 30)
    assert "variance underflow" in diagnosis and "float16" in diagnosis, diagnosis
    fixed = Implementation("fixed", "deadir.testing.examples:numpy_layernorm", reference="layernorm",
                           options=(("framework", "numpy"),))
    assert _pack(fixed, "float16", 30).verdict == "PASS"


def test_statistics_cause_names_underflow_and_overflow_only_when_they_happen() -> None:
    # the variance of [0.003204, 0.002947] is 1.7e-8: its float16 squares underflow to 0
    under = statistics_cause(_finite_error([[0.003204, 0.002947]], "float16"))
    assert under is not None and "variance underflow" in under
    # an ε of 1e-3 lifts the same row: the underflow does not explain an inf there
    assert statistics_cause(_finite_error([[0.003204, 0.002947]], "float16", eps=1e-3)) is None
    over = statistics_cause(_finite_error([[300.0, -300.0]], "float16"))
    assert over is not None and "variance overflow" in over
    # an ordinary row, or a float32 row: no cause to name
    assert statistics_cause(_finite_error([[1.0, 2.0]], "float16")) is None
    assert statistics_cause(_finite_error([[0.003204, 0.002947]], "float32")) is None
    no_rows = NormPropertyError("finite output", measured=math.inf, bound=math.nan, gamma=np.ones(2), beta=None,
                                x=np.empty((0, 2)), eps=0.0, dtype="float16", d=2)
    assert statistics_cause(no_rows) is None


def _numpy_impl(factory: str) -> Implementation:
    return Implementation(factory, f"deadir.testing.examples:{factory}", reference="layernorm",
                          options=(("framework", "numpy"),))


def test_an_inf_both_statistics_models_explain_is_attributed_by_the_norm_on_the_centred_row() -> None:
    # this row's float16 squares underflow AND its float32 one-pass variance cancels (see the flax test below)
    err = _finite_error([[0.1082763671875, 0.1082763671875, 0.10833740234375]], "float16")
    assert statistics_cause(err).startswith("consistent with either of two causes")  # type: ignore[union-attr]
    fast = _numpy_impl("numpy_layernorm_fast_variance")
    half = _numpy_impl("numpy_layernorm_half_statistics")
    fast_why = statistics_cause(err, _norm_on_rows(fast, err))
    half_why = statistics_cause(err, _norm_on_rows(half, err))
    assert fast_why is not None and fast_why.startswith("one-pass (fast) variance cancels"), fast_why
    assert "output is finite" in fast_why and "underflow" not in fast_why
    assert half_why is not None and half_why.startswith("variance underflow"), half_why
    assert "output is inf/NaN" in half_why and "one-pass" not in half_why
    # a norm on which the inf does not reproduce is attributed to neither model
    correct = _numpy_impl("numpy_layernorm")
    assert statistics_cause(err, _norm_on_rows(correct, err)).startswith("consistent with either")  # type: ignore[union-attr]


def test_flax_float16_inf_is_attributed_to_its_one_pass_variance_not_to_half_statistics() -> None:
    """Found by a 1,000-example run of flax nnx.LayerNorm in float16: the diagnosis blamed float16 statistics,
    but flax computes its statistics in float32 (_compute_stats promotes to float32); its default
    use_fast_variance=True is what cancels."""
    pytest.importorskip("flax")
    err = _finite_error([[-0.39624, -0.396484, -0.396484]], "float16")
    flax = next(i for i in IMPLEMENTATIONS if i.name == "flax nnx.LayerNorm")
    why = statistics_cause(err, _norm_on_rows(flax, err))
    assert why is not None and why.startswith("one-pass (fast) variance cancels") and "output is finite" in why, why


def test_fast_variance_mutant_is_caught_and_diagnosed_as_one_pass_variance() -> None:
    mutant = _numpy_impl("numpy_layernorm_fast_variance")
    report = _pack(mutant, "float32", 30)
    assert report.verdict == "FAIL", report.render()
    diagnosis = _diagnose(mutant, "float32", report, 30)
    assert diagnosis.startswith("returns NaN or inf") and "one-pass (fast) variance" in diagnosis, diagnosis


def test_markdown_lists_every_fail_and_error_with_its_diagnosis() -> None:
    rows = [Row("a", "float32", "PASS"), Row("a", "float16", "FAIL", "why it fails", "T1 hyperplane violated"),
            Row("b", "float64", "ERROR", "runtime limitation"), Row("c", "float64", "not installed", "needs c")]
    text = render_markdown(rows, subset="all", max_examples=3, seconds=1.0)
    assert "| a | — | PASS | — | **FAIL** |" in text
    assert "### a, float16: FAIL" in text and "why it fails" in text
    assert "### b, float64: ERROR" in text and "runtime limitation" in text
