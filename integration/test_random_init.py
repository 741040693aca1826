"""The random-initialisation matrix (tiny widths, CPU): claims (i), (ii), (v), (vi) per architecture.

The paper: at random init the predicted direction matched the measured bottom singular
direction on 9/9 LayerNorm models and was absent on 5/5 RMSNorm models. Here: every
LayerNorm-family and RMSNorm-family configuration of ``integration.configs.matrix``.
"""

from __future__ import annotations

from typing import Any

import pytest

from integration import claims, configs, harness

RANDOM_INIT_TOKENS = 1024  # 16·d at d = 64: a well-conditioned float64 covariance
CASES = {c.name: c for c in configs.matrix()}
LN = [n for n, c in CASES.items() if c.norm == "layernorm"]
RMS = [n for n, c in CASES.items() if c.norm == "rmsnorm"]


def measure(store: Any, name: str) -> harness.ModelResult:
    case = CASES[name]
    key = f"init:{name}"  # distinct from the real checkpoints' rows (there is a real "mpnet" too)

    def compute() -> list[harness.ModelResult]:
        import torch

        torch.manual_seed(0)
        model = case.build(configs.TINY).eval()
        return [harness.measure_model(
            model, case.batches(model, RANDOM_INIT_TOKENS, configs.TINY), configs.forward, name=key,
            source="random-init", family=case.family, expected_norm=case.norm, modality=case.modality,
            final_path=case.final, sites_prefix=case.sites_prefix, blocks_prefix=case.blocks_prefix,
            input_desc=case.input_desc(),
        )]

    return store.get(key, compute)


def test_matrix_covers_both_families() -> None:
    assert len(LN) >= 12 and len(RMS) >= 8, (len(LN), len(RMS))
    assert {"vision", "speech", "text"} <= {c.modality for c in CASES.values()}


@pytest.mark.parametrize("name", LN)
def test_layernorm_inverse_scale_is_bottom_direction_at_float_floor(store: Any, name: str) -> None:
    verdict = claims.layernorm_direction(measure(store, name).final)
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", RMS)
def test_rmsnorm_has_no_inverse_scale_kernel(store: Any, name: str) -> None:
    verdict = claims.rms_absent(measure(store, name).final)
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", list(CASES))
def test_residual_sigma_min_preserved_block_to_block(store: Any, name: str) -> None:
    verdict = claims.residual_preserved(measure(store, name))
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize("name", list(CASES))
def test_classification_from_parameters_agrees_with_architecture(store: Any, name: str) -> None:
    verdict = claims.classification_agrees(measure(store, name))
    assert verdict.ok, verdict.detail


@pytest.mark.parametrize("name", list(CASES))
def test_random_init_has_no_dead_channels(store: Any, name: str) -> None:
    # Claim (iii)'s control: at init γ is 1 (or 1 + 0 for Gemma), so nothing may be reported dead.
    verdict = claims.dead_channels_exact([measure(store, name).final])
    assert not verdict.applies, verdict.detail
