from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PASSING = """
import pytest

@pytest.mark.deadir_norm(factory="deadir.testing.examples:layernorm", expect="mean-centring", max_d=8)
def test_layernorm(deadir_pack):
    report = deadir_pack()
    assert report.passed

@pytest.mark.deadir_norm("deadir.testing.examples:rmsnorm", expect="rms", max_d=8)
def test_rmsnorm(deadir_pack):
    deadir_pack()
"""

FAILING = """
import pytest

@pytest.mark.deadir_norm(factory="deadir.testing.examples:rmsnorm", expect="mean-centring", max_d=8)
def test_rms_is_not_layernorm(deadir_pack):
    deadir_pack()

def test_no_factory(deadir_pack):
    deadir_pack()
"""


@pytest.fixture
def isolated(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # load the plugin explicitly, whether or not the installed entry point would
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def test_plugin_marker_and_fixture_pass(isolated: pytest.Pytester) -> None:
    isolated.makepyfile(PASSING)
    result = isolated.runpytest("-p", "deadir.testing.plugin", "--strict-markers", "--deadir-max-examples", "6")
    result.assert_outcomes(passed=2)


def test_plugin_fails_with_counterexample(isolated: pytest.Pytester) -> None:
    isolated.makepyfile(FAILING)
    result = isolated.runpytest("-p", "deadir.testing.plugin", "--strict-markers", "--deadir-max-examples", "6")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*T1 hyperplane violated*", "*gamma = *"])
    result.stdout.fnmatch_lines(["*no factory*"])
