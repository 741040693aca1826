"""deadir.verify.twin: a model against its random-init twin on the same inputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from deadir import make_inputs, verify_against_init
from deadir.models import random_model
from deadir.report import dumps


@pytest.fixture(scope="module")
def gpt2() -> torch.nn.Module:
    return random_model("gpt2")


def test_random_init_side_by_side(gpt2: torch.nn.Module) -> None:
    trained = copy.deepcopy(gpt2)
    rng = np.random.default_rng(0)
    with torch.no_grad():  # a "trained" γ, β: spread of scales and non-zero shifts
        for s in ("ln_1", "ln_2"):
            for blk in trained.h:
                ln = getattr(blk, s)
                ln.weight.copy_(torch.from_numpy(np.exp(rng.normal(0, 1.0, 32))))
                ln.bias.copy_(torch.from_numpy(rng.normal(0, 1.0, 32)))
    cmp = verify_against_init(trained, make_inputs(trained, n_tokens=256), seed=0)
    rows = {r["path"]: r for r in cmp.rows()}
    assert set(rows) == {"h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f"}
    for r in rows.values():
        assert r["deepening"] == pytest.approx(r["rayleigh_rel_init"] / r["rayleigh_rel"], rel=1e-12)
        assert r["at_floor"] and r["at_floor_init"]
        assert r["near_null"]["1e-10"] == [1, 1] and r["near_null_deepening"]["1e-10"] == 1.0
    assert cmp.init.site("h.0.ln_1").site.spec.gamma.tolist() == [1.0] * 32  # init γ = 1
    assert "deepening" in cmp.table()
    json.loads(dumps(cmp.to_dict()))
