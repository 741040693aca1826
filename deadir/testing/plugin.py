"""pytest plugin (entry point ``pytest11``: ``deadir = deadir.testing.plugin``): run the deadir pack in your CI.

Mark a test and request the fixture::

    import pytest

    @pytest.mark.deadir_norm(factory="mypkg.norms:make_layernorm", expect="mean-centring", dtype="float32")
    def test_my_norm_keeps_the_kernel(deadir_pack):
        deadir_pack()          # fails the test with Hypothesis's shrunk counterexample

``deadir_pack`` is a callable; keyword arguments override the marker's (factory, expect,
dtype, max_examples, max_d, seed, weight_offset, properties) and it returns the
:class:`~deadir.testing.PackReport`. ``--deadir-max-examples N`` sets the default number
of examples per property (50). Importing this plugin is cheap: numpy, torch and
Hypothesis load only when the fixture runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_MARKER = "deadir_norm"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--deadir-max-examples``."""
    group = parser.getgroup("deadir", "deadir norm test pack")
    group.addoption("--deadir-max-examples", type=int, default=50, dest="deadir_max_examples",
                    help="Hypothesis examples per property of the deadir pack (default 50)")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``deadir_norm`` marker (so --strict-markers accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(factory, expect='mean-centring', dtype='float32', **options): configure the deadir_pack fixture "
        "to fuzz factory (a callable d -> norm, or 'package.module:factory') against the deadir algebra",
    )


@pytest.fixture
def deadir_pack(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A callable that runs the deadir pack and fails the test with the counterexample when a property breaks."""
    marker = request.node.get_closest_marker(_MARKER)
    defaults: dict[str, Any] = {"max_examples": request.config.getoption("deadir_max_examples")}
    if marker is not None:
        if marker.args:
            defaults["factory"] = marker.args[0]
        defaults.update(marker.kwargs)

    def run(**overrides: Any) -> Any:
        from deadir.testing.pack import run_pack

        options = {**defaults, **overrides}
        factory = options.pop("factory", None)
        if factory is None:
            pytest.fail(f"deadir_pack: no factory; use @pytest.mark.{_MARKER}(factory=...) or deadir_pack(factory=...)",
                        pytrace=False)
        report = run_pack(factory, **options)
        if not report.passed:
            pytest.fail(report.render(), pytrace=False)
        return report

    return run
