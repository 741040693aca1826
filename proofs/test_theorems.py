"""Every theorem is proved and every negative control is rejected by the same proof code."""

from __future__ import annotations

import pytest

from proofs.core import CITED, PROVED, REFUTED
from proofs.registry import theorem_modules

MODULES = theorem_modules()
THEOREMS = [pytest.param(m, id=m.THEOREM) for m in MODULES]
CONTROLS = [pytest.param(m, name, id=f"{m.THEOREM}-{name}") for m in MODULES for name in m.CONTROLS]


@pytest.mark.parametrize("module", THEOREMS)
def test_theorem_is_proved(module):
    result = module.prove()
    failed = [(s.name, s.status, s.witness) for s in result.steps if s.status not in (PROVED, CITED)]
    assert result.proved, f"{module.THEOREM}: steps not proved: {failed}"
    # A proof with only cited steps proves nothing: at least one machine-checked step per theorem.
    assert any(s.status == PROVED for s in result.steps)


@pytest.mark.parametrize(("module", "name"), CONTROLS)
def test_negative_control_is_rejected(module, name):
    result = module.CONTROLS[name]()
    assert result.control, "a negative control must say which hypothesis it drops"
    refuted = [s for s in result.steps if s.status == REFUTED]
    assert refuted, (
        f"{module.THEOREM} control {name!r} was ACCEPTED: {[(s.name, s.status) for s in result.steps]}"
    )
    assert all(s.witness for s in refuted), "every refutation names its witness"
    assert not result.proved


def test_every_theorem_has_a_negative_control():
    assert [m.THEOREM for m in MODULES] == [f"T{k}" for k in range(1, 11)]
    assert all(len(m.CONTROLS) >= 1 for m in MODULES)
