"""Gappa certificates for T10 (proofs.gappa_check): certified, tightened bound rejected, Coq re-check, library ≥ it.

Marker ``gappa``. Without gappa the tests skip with the install hint, or FAIL when DEADIR_REQUIRE_COQ=1
(CI, where the Debian packages are installed). Gappa runs the full grid; coqc re-checks the
certificates of :data:`proofs.gappa_check.CI_GRID` (d = 2..4), or the full grid with DEADIR_GAPPA_FULL=1
(tens of minutes; see proofs/gappa/README.md).
"""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from pathlib import Path

import pytest

from proofs import gappa_check as gc

pytestmark = pytest.mark.gappa

_REQUIRE = os.environ.get("DEADIR_REQUIRE_COQ") == "1"
_FULL = os.environ.get("DEADIR_GAPPA_FULL") == "1"


def _need_gappa() -> None:
    if gc.gappa_available():
        return
    msg = f"gappa is not installed: {gc.INSTALL_HINT}"
    if _REQUIRE:
        pytest.fail(msg + " (DEADIR_REQUIRE_COQ=1)")
    pytest.skip(msg)


def _need_coq() -> None:
    if gc.coq_available():
        return
    msg = f"coqc or the Gappa Coq library is missing: {gc.INSTALL_HINT}"
    if _REQUIRE:
        pytest.fail(msg + " (DEADIR_REQUIRE_COQ=1)")
    pytest.skip(msg)


_ALL = gc.grid(full=True)
_COQ_CASES = gc.grid(full=_FULL)


@pytest.mark.parametrize(("dtype", "d"), _ALL, ids=[f"{dt}-d{d}" for dt, d in _ALL])
def test_case_certified_tightened_rejected_library_above(dtype: str, d: int) -> None:
    """Every case of the full grid: Gappa proves a bound, cannot prove half of it, library ≥ it."""
    _need_gappa()
    r = gc.check_case(dtype, d, coq=False, timeout=900)
    assert r.status == "proved", r.reason
    assert 0.0 < r.certified_bound < math.inf
    assert r.tightened_rejected, "Gappa proved half its own bound: the negative control is broken"
    assert r.library_ok, f"library {r.library_bound} < certified {r.certified_bound}"
    assert r.library_bound >= r.certified_bound


@pytest.mark.parametrize(("dtype", "d"), _COQ_CASES, ids=[f"{dt}-d{d}-coq" for dt, d in _COQ_CASES])
def test_case_coq_recheck(dtype: str, d: int) -> None:
    """coqc re-checks the certificate (CI: d = 2..4; DEADIR_GAPPA_FULL=1: the full grid)."""
    _need_gappa()
    _need_coq()
    r = gc.check_case(dtype, d, coq=True, coq_tamper=d == 2, timeout=3600)
    assert r.status == "proved", r.reason
    assert r.coq_status == "proved", r.reason
    assert set(r.coq_axioms) <= set(gc.ALLOWED_AXIOMS), r.coq_axioms
    assert "classic" in r.coq_axioms  # Print Assumptions was read (the NNPP step uses it)
    if d == 2:
        assert r.coq_tampered_rejected is True, "coqc accepted the certificate with its interval halved"


_CI_BETA0 = [(dt, d) for dt, d in gc.grid(full=False) if d <= 4]


@pytest.mark.parametrize(("dtype", "d"), _CI_BETA0, ids=[f"{dt}-d{d}-beta0" for dt, d in _CI_BETA0])
def test_beta_free_box_library_above_certified(dtype: str, d: int) -> None:
    """β = 0: the library's β-free terms alone (S_β = 0) must still cover Gappa's bound."""
    _need_gappa()
    r = gc.check_case(dtype, d, coq=False, beta_max=Fraction(0), timeout=900)
    assert r.status == "proved", r.reason
    assert r.hypotheses["beta"] == "|βᵢ| ≤ 0"
    assert r.tightened_rejected
    assert r.library_ok, f"library {r.library_bound} < certified {r.certified_bound}"


def test_script_states_the_hypotheses_and_operation_sequence() -> None:
    s = gc.script_text("bfloat16", 3)
    assert "@rnd = float<8,-133,ne>;" in s
    for needle in ("x1 in [-1, 1]", "|g3| in [1b-2, 1]", "b2 in [-1, 1]", "r in [0, 1]"):
        assert needle in s, needle
    for op in ("s2 rnd= x1 + x2;", "s3 rnd= s2 + x3;", "mh rnd= s3 / 3;", "c2 rnd= x2 - mh;", "z2 rnd= c2 * r;",
               "p2 rnd= g2 * z2;", "y2 rnd= p2 + b2;"):
        assert op in s, op
    assert "T = (y1 - b1) / g1 + (y2 - b2) / g2 + (y3 - b3) / g3;" in s


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="dtype"):
        gc.script_text("float8", 3)
    with pytest.raises(ValueError, match="d >= 2"):
        gc.script_text("float32", 1)


def test_parse_bound_reads_the_exact_dyadic() -> None:
    out = "Results:\n  T in [-130023429b-46 {-1.8e-06, -2^(-19.04)}, 130023429b-46 {1.8e-06, 2^(-19.04)}]\n"
    b, text = gc.parse_bound(out)
    assert b == Fraction(130023429, 2**46)
    assert text == "130023429b-46"
    assert gc.parse_bound("  T in [-81b-7 {-0.6}, 3 {3}]\n")[0] == 3
    with pytest.raises(gc.GappaError):
        gc.parse_bound("Error: some properties were not satisfied\n")


def test_library_bound_is_the_worst_point_of_the_box() -> None:
    # residual_raw grows with S_β only; the box's worst point is |γ| = 1/4, |β| = 1: below it must be smaller
    from deadir.bound import kernel_error_bound

    worst = gc.library_bound("float16", 4)
    milder = kernel_error_bound([0.5] * 4, "float16", 4, beta=[1.0] * 4, mean_ratio=1.0).residual_raw
    assert milder < worst


def test_planted_too_small_library_bound_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control of the comparison: a library bound below Gappa's must give library_ok False."""
    _need_gappa()
    monkeypatch.setattr(gc, "library_bound", lambda dtype, d, beta_max=1: 1e-12)
    r = gc.check_case("float32", 2, coq=False)
    assert r.status == "proved"
    assert not r.library_ok


def test_missing_gappa_is_not_run_never_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "gappa_available", lambda: False)
    r = gc.check_case("float32", 2)
    assert r.status == "not run"
    assert "apt-get install" in r.reason
    assert r.coq_status == "not run"
    assert not r.library_ok


def test_tampered_script_is_what_coq_rejects() -> None:
    """The tamper control halves the goal interval and nothing else."""
    cert = (
        "Definition f4 := Float2 (-130023429) (-46).\nDefinition f5 := Float2 (130023429) (-46).\n"
        "Definition i3 := makepairF f4 f5.\nNotation p3 := (BND _T i3).\n"
        "Theorem deadir_certified : s2 -> p3.\n"
    )
    t = gc.tamper_certificate(cert)
    assert "Definition f4_half := Float2 (-130023429) (-47)." in t
    assert "Definition i3 := makepairF f4_half f5_half." in t


def test_write_to_keeps_script_certificate_and_log(tmp_path: Path) -> None:
    _need_gappa()
    _need_coq()
    r = gc.check_case("float16", 2, coq=True, write_to=tmp_path)
    assert r.coq_status == "proved", r.reason
    names = {p.name for p in tmp_path.iterdir()}
    assert {"t10_float16_d2.g", "t10_float16_d2.v", "t10_float16_d2.coqlog"} <= names
    assert oct((tmp_path / "t10_float16_d2.v").stat().st_mode & 0o777) == "0o644"
    assert "Hypotheses:" in (tmp_path / "t10_float16_d2.g").read_text()


def test_planted_false_hint_gappa_warns_and_coq_rejects(tmp_path: Path) -> None:
    """Why the hints are re-proved: with a false hint (the centring term dropped) Gappa still 'proves' a bound.

    Gappa only warns; check_case's reading of the warning and coqc's ``field`` must both reject it.
    """
    _need_gappa()
    _need_coq()
    good = gc.script_text("float32", 2)
    bad = good.replace(" + r * (S - 2 * mh) {", " {")
    assert bad != good
    (tmp_path / "bad.g").write_text(bad)
    rc, out, err, _ = gc._run(["gappa", "-Bcoq", "bad.g"], tmp_path, 600)
    assert rc == 0, err  # Gappa alone accepts it ...
    assert gc.hint_warnings(err)  # ... with a warning that check_case turns into "failed"
    v = tmp_path / "bad.v"
    v.write_text(gc.coq_certificate(out))
    rc_c, log, _ = gc._coqc(v, 600)
    assert rc_c != 0
    line = int(re.search(r"line (\d+)", log).group(1))  # type: ignore[union-attr]
    failing = v.read_text().splitlines()[line - 1]
    assert "field" in failing, (log, failing)  # rejected in the re-proof of the hint, nowhere else


def test_tightening_control_can_fail() -> None:
    """The halved-bound control distinguishes: twice the certified bound is provable, half is not."""
    _need_gappa()
    r = gc.check_case("bfloat16", 3, coq=False)
    b = Fraction(r.certified_bound)
    assert gc.gappa_proves("bfloat16", 3, 2 * b) is True
    assert gc.gappa_proves("bfloat16", 3, b / 2) is False


def test_gappa_placeholder_repair() -> None:
    """Gappa 1.4.1 prints $p for a hint's 10th and later hypotheses (d >= 10); they are filled in order."""
    line = " refine (b1 h0 h1 h2 h3 h4 h5 h6 h7 h8 $p $p $p) ; finalize.\n"
    fixed = gc._repair_placeholders(line)
    assert fixed == " refine (b1 h0 h1 h2 h3 h4 h5 h6 h7 h8 h9 h10 h11) ; finalize.\n"
    assert gc._repair_placeholders(" refine (b2 h0 h1) ; finalize.\n") == " refine (b2 h0 h1) ; finalize.\n"
    assert "$p" in gc._repair_placeholders(" exact $p.\n")  # only the refine (bN …) shape is touched
