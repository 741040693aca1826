"""The kernel-checked evidence next to the SymPy derivations: Coq (T1–T9) and Gappa (T10).

The checkers live in :mod:`proofs.coq_check` and :mod:`proofs.gappa_check`; they are imported lazily
(both shell out to ``coqc``/``gappa``). Each is summarised here as a plain record the runner, the
certificates and ``summary.json`` read: status ``"proved"`` / ``"failed"`` / ``"not run"`` and, when
not run, the reason and the install command — a missing tool is reported, never skipped silently.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

ROOT = Path(__file__).resolve().parent.parent

INSTALL_COMMAND = (
    "apt-get install -y coq libcoq-mathcomp-ssreflect libcoq-mathcomp-algebra "
    "libcoq-mathcomp-algebra-tactics gappa libcoq-flocq libcoq-gappa"
)
# Set to 1 (CI does) to turn a missing coqc/gappa into a failure instead of a reported "not run".
REQUIRE_ENV = "DEADIR_REQUIRE_COQ"


def require_kernel_checks() -> bool:
    """True when DEADIR_REQUIRE_COQ=1: the Coq and Gappa parts must run (CI)."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rel(path: Path) -> str:
    """A path relative to the repository root (as a reader's checkout names it)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


@dataclass
class VariantRecord:
    """One Coq control or mutant: its name, whether coqc rejected it, and coqc's message."""

    name: str
    rejected: bool
    message: str


@dataclass
class CoqEvidence:
    """The Coq check of one theorem."""

    status: str  # proved | failed | not run
    file: str | None = None
    main_theorem: str | None = None
    assumptions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = ""
    controls: list[VariantRecord] = field(default_factory=list)
    mutants: list[VariantRecord] = field(default_factory=list)
    sha256: str | None = None
    command: str | None = None


@dataclass
class GappaEvidence:
    """The Gappa + Coq certification of T10 over its (dtype, d) grid."""

    status: str  # proved | failed | not run
    dtypes: list[str] = field(default_factory=list)
    d_max: dict[str, int] = field(default_factory=dict)
    cases: list[Any] = field(default_factory=list)  # gappa_check.GappaResult
    reason: str = ""
    seconds: float = 0.0
    table: str = ""
    generator_sha256: str | None = None
    command: str | None = None
    library_ok: bool = False


def versions() -> dict[str, str]:
    """Every tool version the evidence depends on; "not installed" for a missing one."""
    out = {"python": platform.python_version(), "sympy": sp.__version__}
    try:
        from proofs import coq_check

        cv = coq_check.coq_versions()
        out["coq"], out["mathcomp"] = cv.get("coq", "missing"), cv.get("mathcomp", "missing")
    except ImportError as exc:  # the Coq module itself is missing from this checkout
        out["coq"] = out["mathcomp"] = f"unavailable ({exc})"
    try:
        from proofs import gappa_check

        gv = gappa_check.gappa_versions()
        out["gappa"], out["flocq"] = gv.get("gappa", "not installed"), gv.get("flocq", "not installed")
    except ImportError as exc:
        out["gappa"] = out["flocq"] = f"unavailable ({exc})"
    return out


def coq_theorems() -> dict[str, str]:
    """Theorem id -> Coq file name, empty when the Coq module is missing."""
    try:
        from proofs import coq_check
    except ImportError:
        return {}
    return dict(coq_check.COQ_THEOREMS)


def run_coq(tid: str, *, enabled: bool = True, timeout: float = 600) -> CoqEvidence:
    """Check theorem ``tid`` in Coq (file, axioms, controls, mutants); "not run" with the reason otherwise."""
    try:
        from proofs import coq_check
    except ImportError as exc:
        return CoqEvidence("not run", reason=f"proofs.coq_check cannot be imported ({exc})")
    if tid not in coq_check.COQ_THEOREMS:
        return CoqEvidence("not run", reason=f"no Coq proof of {tid} in proofs/coq/ (SymPy evidence only)")
    path = coq_check.COQ_DIR / coq_check.COQ_THEOREMS[tid]
    flags = " ".join(coq_check.COQC_FLAGS)
    command = f"coqc {flags} {rel(path)}"
    base = CoqEvidence("not run", file=rel(path), main_theorem=coq_check.MAIN_THEOREMS.get(tid),
                       sha256=sha256(path) if path.is_file() else None, command=command)
    if not enabled:
        base.reason = "Coq check disabled on the command line (--no-coq)"
        return base
    res = coq_check.check_theorem(tid, timeout=timeout)
    base.status = res.status
    base.assumptions = list(res.assumptions)
    base.seconds = res.seconds
    base.reason = res.reason
    base.controls = [VariantRecord(v.name, v.rejected, v.message) for v in res.controls]
    base.mutants = [VariantRecord(v.name, v.rejected, v.message) for v in res.mutants]
    if res.status == "not run" and INSTALL_COMMAND not in base.reason:
        base.reason += f" — install: {INSTALL_COMMAND}"
    return base


def run_gappa(*, enabled: bool = True, write_to: Path | None = None, full_coq: bool = False) -> GappaEvidence:
    """Certify T10's float bound over the whole grid with Gappa; coqc re-checks the CI subset (or all)."""
    try:
        from proofs import gappa_check
    except ImportError as exc:
        return GappaEvidence("not run", reason=f"proofs.gappa_check cannot be imported ({exc})")
    gen = Path(gappa_check.__file__)
    ev = GappaEvidence(
        "not run",
        dtypes=list(gappa_check.DTYPES),
        d_max=dict(gappa_check.D_MAX),
        generator_sha256=sha256(gen),
        command=f"{shlex.quote(sys.executable)} -m proofs.gappa_check --write",
    )
    if not enabled:
        ev.reason = "Gappa check disabled on the command line (--no-gappa)"
        return ev
    if not gappa_check.gappa_available():
        ev.reason = f"gappa not found on PATH — install: {INSTALL_COMMAND}"
        return ev
    coq_ok = gappa_check.coq_available()
    cases = gappa_check.check_all(
        gappa_check.grid(),
        coq=coq_ok,
        coq_cases=None if full_coq else gappa_check.grid(full=False),
        write_to=write_to,
    )
    ev.cases = cases
    ev.seconds = sum(c.seconds + (0.0 if c.coq_seconds != c.coq_seconds else c.coq_seconds) for c in cases)
    ev.table = gappa_check.table(cases)
    ev.library_ok = all(c.library_ok for c in cases)
    bad = [f"{c.dtype} d={c.d}: {c.reason or c.status}" for c in cases
           if c.status != "proved" or not c.tightened_rejected or not c.library_ok or c.coq_status == "failed"]
    if bad:
        ev.status, ev.reason = "failed", "; ".join(bad)
    else:
        ev.status = "proved"
        if not coq_ok:
            ev.status = "failed" if require_kernel_checks() else "proved"
            ev.reason = f"Gappa certified every case but coqc/libcoq-gappa is missing, so no certificate was " \
                        f"re-checked by Coq — install: {INSTALL_COMMAND}"
    return ev


def coq_from_gappa(g: GappaEvidence) -> CoqEvidence:
    """T10's Coq evidence: coqc's re-check of the Gappa certificates (cases where it ran)."""
    checked = [c for c in g.cases if c.coq_status != "not run"]
    if not checked:
        return CoqEvidence("not run", reason="no Gappa certificate was re-checked by coqc"
                           + (f" ({g.reason})" if g.reason else ""))
    axioms = sorted({a for c in checked for a in c.coq_axioms})
    failed = [f"{c.dtype} d={c.d}" for c in checked if c.coq_status != "proved"]
    return CoqEvidence(
        "failed" if failed else "proved",
        file="build/proofs/T10/gappa/*.v (generated by proofs/gappa_check.py)",
        main_theorem="deadir_certified",
        assumptions=axioms,
        seconds=sum(c.coq_seconds for c in checked),
        reason=(f"coqc rejected: {failed}" if failed else
                f"re-checked {len(checked)} certificates: " + ", ".join(f"{c.dtype} d={c.d}" for c in checked)),
        command=g.command,
    )
