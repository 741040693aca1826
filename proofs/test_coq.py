"""Coq + MathComp proofs of T1–T9: each proved without axioms, each negative control and statement mutant rejected.

Without ``coqc`` these tests skip with the install command, or fail when ``DEADIR_REQUIRE_COQ=1`` (CI sets it,
so a CI run can never pass without the kernel-checked part).
"""

from __future__ import annotations

import functools
import os
import shutil

import pytest

from proofs import coq_check
from proofs.coq_check import CONTROLS, COQ_THEOREMS, MUTANTS, CoqResult, Variant


def _require_coq() -> None:
    if coq_check.coq_available():
        return
    if os.environ.get("DEADIR_REQUIRE_COQ") == "1":
        pytest.fail("DEADIR_REQUIRE_COQ=1 but coqc/MathComp is missing; " + coq_check.INSTALL_HINT)
    pytest.skip("coqc/MathComp not installed; " + coq_check.INSTALL_HINT)


@functools.cache
def _result(tid: str) -> CoqResult:
    return coq_check.check_theorem(tid, variants=False)


@functools.cache
def _variant(tid: str, kind: str, index: int) -> coq_check.VariantResult:
    variant = (CONTROLS if kind == "control" else MUTANTS)[tid][index]
    return coq_check.run_variant(tid, variant)


CONTROL_CASES = [(tid, i, v.name) for tid in COQ_THEOREMS for i, v in enumerate(CONTROLS.get(tid, []))]
MUTANT_CASES = [(tid, i, v.name) for tid in COQ_THEOREMS for i, v in enumerate(MUTANTS.get(tid, []))]


@pytest.mark.coq
@pytest.mark.parametrize("tid", sorted(COQ_THEOREMS))
def test_theorem_proved_without_axioms(tid: str) -> None:
    _require_coq()
    res = _result(tid)
    assert res.status == "proved", res.reason
    assert res.assumptions == []
    assert res.file.endswith(COQ_THEOREMS[tid])


@pytest.mark.coq
@pytest.mark.parametrize(("tid", "index", "name"), CONTROL_CASES)
def test_negative_control_rejected(tid: str, index: int, name: str) -> None:
    _require_coq()
    res = _variant(tid, "control", index)
    assert res.rejected, f"{tid} control {name!r}: {res.message}"


@pytest.mark.coq
@pytest.mark.parametrize(("tid", "index", "name"), MUTANT_CASES)
def test_statement_mutant_rejected(tid: str, index: int, name: str) -> None:
    _require_coq()
    res = _variant(tid, "mutant", index)
    assert res.rejected, f"{tid} mutant {name!r}: {res.message}"


@pytest.mark.parametrize("tid", sorted(COQ_THEOREMS))
def test_every_theorem_has_a_control_and_three_mutants(tid: str) -> None:
    assert CONTROLS.get(tid), f"{tid} has no negative control"
    assert len(MUTANTS.get(tid, [])) >= 3, f"{tid} has fewer than three statement mutants"
    for v in (*CONTROLS[tid], *MUTANTS[tid]):
        assert v.why_false, f"{tid} {v.name!r} does not say why it is false"
        # Every region named by a variant exists, and the replacement changes it.
        coq_check.apply_variant((coq_check.COQ_DIR / COQ_THEOREMS[tid]).read_text(), v)


# --- the harness itself: it must be able to say "not rejected" ---------------------------------------------------


@pytest.mark.coq
def test_true_variant_is_reported_as_accepted() -> None:
    """A 'mutant' that is still true (a comment added) compiles, and the harness reports it as not rejected."""
    _require_coq()
    text = (coq_check.COQ_DIR / COQ_THEOREMS["T1"]).read_text()
    start, end = coq_check._regions(text)["STATEMENT hyperplane"]
    planted = Variant("still true", "STATEMENT hyperplane", "(* unchanged *)\n" + text[start:end], "it is not")
    res = coq_check.run_variant("T1", planted)
    assert not res.rejected and "ACCEPTED" in res.message


@pytest.mark.coq
def test_syntax_error_is_not_counted_as_rejection() -> None:
    _require_coq()
    planted = Variant("broken", "STATEMENT hyperplane", "Theorem hyperplane eps g b x : (.\n", "malformed")
    res = coq_check.run_variant("T1", planted)
    assert not res.rejected and "malformed" in res.message


@pytest.mark.coq
def test_unknown_name_outside_a_proof_is_not_counted_as_rejection() -> None:
    _require_coq()
    planted = Variant("unknown", "DEF norm", "Definition normalise eps x : 'rV[R]_d := no_such_thing.\n", "malformed")
    res = coq_check.run_variant("T1", planted)
    assert not res.rejected and "outside a proof" in res.message


def test_missing_region_raises() -> None:
    with pytest.raises(ValueError, match="no region"):
        coq_check.apply_variant("Theorem t : True.\n", Variant("x", "STATEMENT nope", "", ""))


def test_parse_assumptions() -> None:
    assert coq_check.parse_assumptions("Closed under the global context\n") == []
    axioms = "Axioms:\nclassic : forall P : Prop, P \\/ ~ P\nread_dir\n  : forall (R : rcfType),\n    R = R\n"
    assert coq_check.parse_assumptions(axioms) == ["classic", "read_dir"]
    assert coq_check.parse_assumptions("nothing here") is None


@pytest.mark.coq
def test_admitted_lemma_fails_the_axiom_check(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: T1's helper lemma closed with Admitted compiles, but Print Assumptions names it; status failed."""
    _require_coq()
    text = (coq_check.COQ_DIR / COQ_THEOREMS["T1"]).read_text()
    proof = "Proof. by move=> c0; rewrite mulrC mulKf. Qed."
    assert proof in text
    (tmp_path / COQ_THEOREMS["T1"]).write_text(text.replace(proof, "Admitted."))
    monkeypatch.setattr(coq_check, "COQ_DIR", tmp_path)
    res = coq_check.check_theorem("T1", variants=False)
    assert res.status == "failed" and res.assumptions == ["unscale"] and "unjustified axioms" in res.reason


def test_without_coqc_status_is_not_run_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    res = coq_check.check_theorem("T1")
    assert res.status == "not run" and "apt-get install" in res.reason
    assert not coq_check.coq_available()
    assert coq_check.coq_versions() == {"coq": "missing", "mathcomp": "missing"}


def test_unknown_theorem_id() -> None:
    with pytest.raises(KeyError, match="T99"):
        coq_check.check_theorem("T99")


def test_mutant_counts() -> None:
    ok = coq_check.VariantResult("a", True, "")
    bad = coq_check.VariantResult("b", False, "ACCEPTED")
    results = {
        "T1": CoqResult("proved", "f", "m", mutants=[ok, bad]),
        "T2": CoqResult("proved", "f", "m", mutants=[ok]),
    }
    assert coq_check.mutant_counts(results) == (2, 3)
    assert sum(len(MUTANTS[t]) for t in COQ_THEOREMS) >= 3 * len(COQ_THEOREMS)
