"""Adversarial API inputs to the measurement functions: 0-d tensors, string offsets, overflow."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import deadir
from deadir.errors import DeadirError, InputShapeError


@pytest.mark.parametrize("x", [torch.tensor(1.0), np.array(1.0), 3.0, torch.tensor(1.0, dtype=torch.float16)])
def test_measure_kernel_on_a_scalar(x: Any) -> None:
    with pytest.raises(InputShapeError, match="activations"):
        deadir.measure_kernel(x, [1.0])


@pytest.mark.parametrize("offset", ["1", b"1", None, True, [1.0], 10**401, float("nan"), float("inf"), 1 + 2j])
def test_inverse_scale_direction_bad_offsets(offset: Any) -> None:
    with pytest.raises(InputShapeError, match="offset"):
        deadir.inverse_scale_direction([1.0, 2.0], offset=offset)


@pytest.mark.parametrize("offset", ["1", 10**401, None])
def test_offset_everywhere(offset: Any) -> None:
    with pytest.raises(InputShapeError, match="offset"):
        deadir.dead_channels([1.0, 2.0], rel_tol=1e-6, offset=offset)
    with pytest.raises(InputShapeError, match="offset"):
        deadir.kernel_error_bound([1.0, 2.0], "float32", offset=offset)
    with pytest.raises(InputShapeError, match="offset"):
        deadir.effective_scale([1.0, 2.0], offset=offset)


@pytest.mark.parametrize("offset", [1, 1.0, np.float32(1.0), np.int64(1)])
def test_real_offsets_still_work(offset: Any) -> None:
    v = deadir.inverse_scale_direction([1.0, 3.0], offset=offset)
    assert np.allclose(v, np.array([0.5, 0.25]) / np.linalg.norm([0.5, 0.25]))


@pytest.mark.parametrize("scale", [1e160, 1e200, 1e300])
@pytest.mark.parametrize("as_torch", [False, True])
def test_measure_kernel_overflowing_activations(scale: float, as_torch: bool) -> None:
    x = np.random.default_rng(0).standard_normal((64, 4)) * scale
    data: Any = torch.from_numpy(x) if as_torch else x
    # the accumulator (AccumulatorOverflowError) or measure_kernel (InputShapeError) refuses it: both typed
    with pytest.raises(DeadirError, match=r"(?i)overflow"):
        deadir.measure_kernel(data, [1.0, 1.0, 1.0, 1.0])


def test_measure_kernel_large_but_representable_control() -> None:
    x = np.random.default_rng(0).standard_normal((64, 4)) * 1e100
    report = deadir.measure_kernel(x, [1.0, 1.0, 1.0, 1.0])
    assert np.isfinite(report.lambda_max) and report.lambda_max > 0
