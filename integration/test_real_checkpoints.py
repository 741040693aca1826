"""The six real offline checkpoints (shared/CHECKPOINTS.md), each on its own kind of input.

Installed by ``python -m integration.fetch_checkpoints`` (the ``integration`` nox session runs
it first); ``DEADIR_CHECKPOINTS`` points at an existing install. Each checkpoint is measured
once per session together with its random-init twin (same config, same kind of input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integration import claims, harness, real

ROWS = [(case, row) for case in real.REAL_CASES for row in case.rows]
BY_NAME = {row.name: (case, row) for case, row in ROWS}

# Rows whose γ is known to carry dead channels (CHECKPOINTS.md: MiniLM 3, MPNet 4, γ as small as 1e-33).
EXPECT_DEAD = {"minilm", "mpnet"}


def _param(case: real.RealCase, row: real.Row) -> object:
    return pytest.param(row.name, id=row.name, marks=[pytest.mark.slow] if case.slow else [])


def _params(pred: Callable[[real.Row], bool] = lambda row: True) -> list[object]:
    return [_param(case, row) for case, row in ROWS if pred(row)]


@pytest.fixture(scope="session")
def manifest() -> dict[str, dict[str, object]]:
    from integration.fetch_checkpoints import load_manifest

    try:
        return load_manifest()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (or set DEADIR_CHECKPOINTS to an existing install)")


def measure(store: Any, manifest: dict[str, Any], tokens: int, name: str) -> harness.ModelResult:
    case, _ = BY_NAME[name]
    dev = real.known_deviations(name)
    store.expected_drops[name] = dev.expected_drops
    store.expect_more_near_null[name] = dev.more_near_null
    store.expect_deeper[name] = dev.deeper
    if case.key not in manifest:
        pytest.fail(f"{case.key} is not in the checkpoint manifest; run python -m integration.fetch_checkpoints")
    entry = manifest[case.key]
    res = store.get(name, lambda: real.measure_real(case, str(entry["path"]), str(entry["format"]),
                                                    n_tokens=tokens, twin_tokens=tokens))
    deviations = dev.reasons()
    if deviations:
        res.extra["known_deviations"] = deviations
    return res


Measure = Callable[[str], harness.ModelResult]


@pytest.fixture(scope="session")
def measured(store: Any, manifest: dict[str, Any], tokens: int) -> Measure:
    """name -> the measured row (loaded and measured once per session, with its random-init twin)."""
    return lambda name: measure(store, manifest, tokens, name)


@pytest.mark.parametrize("name", _params(lambda r: r.expected_norm == "layernorm"))
def test_layernorm_inverse_scale_is_bottom_direction_at_float_floor(measured: Measure, name: str) -> None:
    verdict = claims.layernorm_direction(measured(name).final)
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", _params(lambda r: r.expected_norm == "rmsnorm"))
def test_rmsnorm_direction_absent_even_when_cosine_is_high(measured: Measure, name: str) -> None:
    verdict = claims.rms_absent(measured(name).final)
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", _params())
def test_dead_channels_reported_as_exact_null_directions(measured: Measure, name: str) -> None:
    m = measured(name)
    verdict = claims.dead_channels_exact([m.final, *m.sites])
    if name in EXPECT_DEAD:  # CHECKPOINTS.md: these carry γ ≈ 0 channels; they must be found and be exact
        assert verdict.applies, verdict.detail
    assert verdict.ok, verdict.detail


@pytest.mark.parametrize("name", _params())
def test_trained_vs_random_init_side_by_side(measured: Measure, name: str) -> None:
    verdict = claims.side_by_side(measured(name), real.known_deviations(name).more_near_null)
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", _params(lambda r: r.expected_norm == "layernorm"))
def test_trained_direction_deeper_than_random_init(measured: Measure, name: str) -> None:
    # The paper: the eigenvalue along v sits ~10³× deeper after training (rows that deviate record why).
    verdict = claims.depth_along_direction(measured(name), real.known_deviations(name).deeper)
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", _params())
def test_residual_sigma_min_preserved_block_to_block(measured: Measure, name: str) -> None:
    verdict = claims.residual_preserved(measured(name), real.known_deviations(name).expected_drops)
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", _params())
def test_classification_from_parameters_agrees_with_architecture(measured: Measure, name: str) -> None:
    verdict = claims.classification_agrees(measured(name))
    assert verdict.ok, verdict.detail
