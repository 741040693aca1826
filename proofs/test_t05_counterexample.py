"""The generated RMSNorm counterexample replays: positive vᵀCv equal to the proved closed form."""

from __future__ import annotations

import numpy as np
import pytest

from proofs.t05_rms_absence import numeric_counterexample


@pytest.mark.parametrize("d", [2, 3, 16, 257])
@pytest.mark.parametrize("eps", [0.0, 1e-5])
def test_rmsnorm_counterexample_replays(d, eps):
    ex = numeric_counterexample(d, seed=d, eps=eps)
    y = ex.gamma * ex.points / np.sqrt(np.mean(ex.points**2, axis=1, keepdims=True) + ex.eps)
    np.testing.assert_allclose(y, ex.outputs, rtol=1e-14)
    centred = y - y.mean(axis=0)
    vcv = float(ex.v @ (centred.T @ centred / 2) @ ex.v)
    assert vcv > 0
    assert vcv == pytest.approx(ex.closed_form, rel=1e-12)


def test_counterexample_for_a_given_direction_and_errors():
    v = np.zeros(4)
    v[2] = 1.0
    ex = numeric_counterexample(4, seed=1, v=v)
    assert ex.v_c_v > 0
    with pytest.raises(ValueError, match="d"):
        numeric_counterexample(1)
    with pytest.raises(ValueError, match="v"):
        numeric_counterexample(4, v=np.zeros(4))
    with pytest.raises(ValueError, match="eps"):
        numeric_counterexample(4, eps=-1.0)
