"""Every theorem is proved and every negative control is rejected by the same proof code."""

from __future__ import annotations

import pytest

from proofs.core import CHECKED, CITED, PROVED, REFUTED
from proofs.registry import theorem_modules

MODULES = theorem_modules()
_PROVED: dict[str, object] = {}  # one derivation per theorem, shared by the tests below


def proved(module):
    """module.prove(), computed once per test session."""
    if module.THEOREM not in _PROVED:
        _PROVED[module.THEOREM] = module.prove()
    return _PROVED[module.THEOREM]
THEOREMS = [pytest.param(m, id=m.THEOREM) for m in MODULES]
CONTROLS = [pytest.param(m, name, id=f"{m.THEOREM}-{name}") for m in MODULES for name in m.CONTROLS]


@pytest.mark.parametrize("module", THEOREMS)
def test_theorem_is_proved(module):
    result = proved(module)
    failed = [(s.name, s.status, s.witness) for s in result.steps if s.status not in (PROVED, CITED, CHECKED)]
    assert result.proved and result.status == PROVED, f"{module.THEOREM}: steps not proved: {failed}"
    # A proof with only cited or numerical steps proves nothing: at least one symbolic step per theorem.
    assert any(s.status == PROVED for s in result.steps)
    # Numerical comparisons are labelled as such: their method never claims to be symbolic.
    for s in result.steps:
        if s.status == CHECKED:
            assert "numeric" in s.method, (module.THEOREM, s.name, s.method)
        if "numeric" in s.method:
            assert s.status == CHECKED, f"{module.THEOREM}: numerical step {s.name!r} reported as {s.status}"
    assert result.covered and result.covered.strip(), "coverage must say what was established"


@pytest.mark.parametrize(("module", "name"), CONTROLS)
def test_negative_control_is_rejected_by_the_theorems_own_steps(module, name):
    result = module.CONTROLS[name]()
    assert result.control, "a negative control must say which hypothesis it drops"
    refuted = [s for s in result.steps if s.status == REFUTED]
    assert refuted, (
        f"{module.THEOREM} control {name!r} was ACCEPTED: {[(s.name, s.status) for s in result.steps]}"
    )
    assert all(s.witness for s in refuted), "every refutation names its witness"
    assert not result.proved
    # The refuted step is one of the theorem's own steps (same name, same code path, false variant).
    theorem_steps = {s.name.replace(" with rotary positions", "") for s in proved(module).steps}
    first = refuted[0].name.replace(" with rotary positions", "")
    assert first in theorem_steps, (module.THEOREM, name, first, sorted(theorem_steps))


def test_every_theorem_has_a_negative_control():
    assert [m.THEOREM for m in MODULES] == [f"T{k}" for k in range(1, 11)]
    assert all(len(m.CONTROLS) >= 1 for m in MODULES)


def test_theorem_modules_define_no_norm_inline():
    """One definition of each norm (proofs/symbolic.py): no theorem module writes sqrt-normalisers itself."""
    import inspect
    import re

    for m in MODULES:
        src = inspect.getsource(m)
        assert not re.search(r"def (layer_norm|rms_norm|group_norm)\b", src), m.THEOREM
        assert "/ d) / s" not in src and "Sum(x[j], (j, 1, d)) / d" not in src, m.THEOREM
