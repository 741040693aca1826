"""Statement mutants: false edits of each theorem's statement, run through its own derivation, are rejected.

Marker ``mutants`` (``pytest proofs -m mutants``). Each theorem T1–T10 has at least three: a wrong
constant, a statement false only above the concrete range its families check (caught by the
symbolic-d step with a witness past that range), and a dropped hypothesis.
"""

from __future__ import annotations

import pytest
import sympy as sp

from proofs import symbolic as S
from proofs.core import REFUTED, Derivation, Mutant
from proofs.registry import theorem_modules

MODULES = theorem_modules()
MUTANTS = [pytest.param(m, mut, id=f"{m.THEOREM}-{mut.name}") for m in MODULES for mut in m.MUTANTS]
KINDS = {"wrong constant", "false above the concrete range", "dropped hypothesis"}

pytestmark = pytest.mark.mutants


def test_every_theorem_has_the_three_kinds_of_mutant():
    assert [m.THEOREM for m in MODULES] == [f"T{k}" for k in range(1, 11)]
    for m in MODULES:
        kinds = {mut.kind for mut in m.MUTANTS}
        assert kinds == KINDS, f"{m.THEOREM}: mutant kinds {kinds}"
        assert len({mut.name for mut in m.MUTANTS}) == len(m.MUTANTS)


@pytest.mark.parametrize(("module", "mutant"), MUTANTS)
def test_mutant_is_rejected_with_a_witness(module, mutant):
    res = mutant.run()
    assert res.mutant == mutant.statement
    refuted = [s for s in res.steps if s.status == REFUTED]
    assert refuted, f"{module.THEOREM} mutant {mutant.name!r} ACCEPTED: {[(s.name, s.status) for s in res.steps]}"
    assert all(s.witness for s in refuted)
    assert not res.proved and res.verdict == "REJECTED" and res.ok


def test_false_above_range_mutants_pass_the_concrete_range():
    """The 'above the range' edits really are true on the concrete range: only a general-d step can catch them."""
    d = sp.Symbol("d", integer=True, positive=True)
    assert all(S.vanishing_on(d, 2, 6).subs(d, k) == 0 for k in range(2, 7))
    assert S.vanishing_on(d, 2, 6).subs(d, 7) != 0
    t5 = next(m for m in MODULES if m.THEOREM == "T5")
    from proofs.t05_rms_absence import _two_point_concrete

    above = next(m for m in t5.MUTANTS if m.kind == "false above the concrete range")
    assert "d ≥ 7" in above.statement
    closed = lambda dd, s, e: s**2 / (s / dd + e) + S.vanishing_on(dd, 2, 6) * s  # noqa: E731
    assert sp.simplify(_two_point_concrete(4, closed)) == 0  # the concrete family accepts it at d = 4 …
    res = above.run()  # … and the symbolic-d step refutes it with an instance d ≥ 7
    step = next(s for s in res.steps if s.status == REFUTED)
    assert step.name == "two-point covariance, symbolic d" and step.witness.startswith("d = 7")


def test_witness_search_reaches_past_the_concrete_ranges():
    """A claim that vanishes for d = 2..12 is refuted at d = 13 (WITNESS_SIZES), not left undecided."""
    d = sp.Symbol("d", integer=True, positive=True)
    i = sp.Symbol("i", integer=True)
    x = sp.IndexedBase("x")
    der = Derivation("TX", "t", "s", [], "c")
    der.zero("false above 12", "", S.vanishing_on(d, 2, 12) * sp.Sum(x[i] ** 2, (i, 1, d)))
    step = der.result().steps[0]
    assert step.status == REFUTED and step.witness.startswith("d = 13")


def test_a_true_edit_is_not_counted_as_rejected():
    """Mutant bookkeeping: a 'mutant' that is in fact true is ACCEPTED (so a weak mutant list shows up)."""
    x = sp.Symbol("x", real=True)

    def build():
        der = Derivation("TX", "t", "s", [], "c")
        der.zero("true", "", (x + 1) ** 2 - x**2 - 2 * x - 1)
        return der.result()

    res = Mutant("true-edit", "wrong constant", "a true statement", build).run()
    assert res.verdict == "ACCEPTED" and not res.ok
