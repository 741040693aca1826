"""Run the proofs, print a table, write certificates: ``python -m proofs`` / ``deadir prove``.

Three independent checkers: SymPy (every theorem, its negative controls and statement mutants),
Coq + MathComp (T1–T9, kernel-checked for every d, with Coq's own controls and mutants) and Gappa
(T10's float bound per dtype and d, its certificate re-checked by Coq). A missing ``coqc`` or
``gappa`` is reported in the table, the certificates and ``summary.json`` as "not run", with the
install command; with ``DEADIR_REQUIRE_COQ=1`` (CI) it is a failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from proofs.certificates import summary_json, write_certificates
from proofs.core import ProofResult
from proofs.evidence import (
    INSTALL_COMMAND,
    CoqEvidence,
    GappaEvidence,
    coq_from_gappa,
    require_kernel_checks,
    run_coq,
    run_gappa,
    versions,
)
from proofs.registry import theorem_modules


def run_theorem(module: ModuleType) -> tuple[ProofResult, list[ProofResult]]:
    """Prove one theorem and run its negative controls; seconds are measured here."""
    t = time.perf_counter()
    result: ProofResult = module.prove()
    result.seconds = time.perf_counter() - t
    controls = []
    for name, build in module.CONTROLS.items():
        t = time.perf_counter()
        c: ProofResult = build()
        c.seconds = time.perf_counter() - t
        c.control = c.control or name
        controls.append(c)
    return result, controls


def run_mutants(module: ModuleType) -> list[tuple[str, str, ProofResult]]:
    """Run every statement mutant of a theorem module: (name, kind, result)."""
    out = []
    for m in getattr(module, "MUTANTS", []):
        t = time.perf_counter()
        res = m.run()
        res.seconds = time.perf_counter() - t
        out.append((m.name, m.kind, res))
    return out


@dataclass
class TheoremRun:
    """Everything known about one theorem after a run."""

    module: ModuleType
    result: ProofResult
    controls: list[ProofResult]
    mutants: list[tuple[str, str, ProofResult]]
    coq: CoqEvidence
    gappa: GappaEvidence | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def theorem(self) -> str:
        return self.result.theorem

    @property
    def mutants_rejected(self) -> tuple[int, int]:
        """(rejected, total) over SymPy's and Coq's statement mutants."""
        sym = sum(r.refuted for _, _, r in self.mutants)
        coq = sum(v.rejected for v in self.coq.mutants)
        return sym + coq, len(self.mutants) + len(self.coq.mutants)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m proofs",
        description="Check deadir's theorems T1–T10: SymPy derivations, Coq proofs, Gappa certificates.",
    )
    p.add_argument("--out", default="build/proofs", help="certificate folder (default build/proofs)")
    p.add_argument("--json", action="store_true", help="print the summary JSON instead of the table")
    p.add_argument("--only", default=None, help="comma-separated theorems, e.g. T1,T3")
    p.add_argument("--no-coq", action="store_true", help="skip the Coq checks (reported as not run)")
    p.add_argument("--no-gappa", action="store_true", help="skip the Gappa certificates (reported as not run)")
    p.add_argument("--no-mutants", action="store_true", help="skip the SymPy statement mutants")
    p.add_argument("--gappa-full-coq", action="store_true",
                   help="re-check every Gappa certificate with coqc (default: the CI subset, d = 2..4)")
    return p.parse_args(None if argv is None else list(argv))


def _problems(run: TheoremRun, args: argparse.Namespace) -> list[str]:
    """What is wrong with this theorem's run (empty when everything that ran is as required)."""
    out = []
    if not run.result.ok:
        out.append(f"SymPy: {run.theorem} not proved")
    out += [f"SymPy: negative control ACCEPTED (defect): {c.control}" for c in run.controls if not c.ok]
    out += [f"SymPy: statement mutant ACCEPTED: {name} ({kind})" for name, kind, r in run.mutants if not r.refuted]
    if run.coq.status == "failed":
        out.append(f"Coq: {run.theorem} failed: {run.coq.reason[:300]}")
    elif run.coq.status == "not run" and run.coq.file is not None and require_kernel_checks() and not args.no_coq:
        out.append(f"Coq: {run.theorem} NOT RUN but DEADIR_REQUIRE_COQ=1: {run.coq.reason}")
    if run.gappa is not None:
        if run.gappa.status == "failed":
            out.append(f"Gappa: failed: {run.gappa.reason[:300]}")
        elif run.gappa.status == "not run" and require_kernel_checks() and not args.no_gappa:
            out.append(f"Gappa: NOT RUN but DEADIR_REQUIRE_COQ=1: {run.gappa.reason}")
    return out


def _gappa_range(g: GappaEvidence | None) -> str:
    if g is None:
        return "—"
    if g.status == "not run":
        return "not run"
    text = ", ".join(f"{dt} d=2..{g.d_max.get(dt, '?')}" for dt in g.dtypes)
    return text + ("" if g.status == "proved" else " FAILED")


def table(runs: Sequence[TheoremRun]) -> str:
    """The per-theorem table: SymPy generality, Coq status, Gappa range, mutants rejected, seconds."""
    head = f"{'thm':<5}{'SymPy':<9}{'Coq':<9}{'Gappa':<42}{'controls':<10}{'mutants':<9}{'seconds':>8}"
    lines = [head, "-" * len(head)]
    for r in runs:
        rej, tot = r.mutants_rejected
        ctl = sum(c.refuted for c in r.controls) + sum(v.rejected for v in r.coq.controls)
        ctot = len(r.controls) + len(r.coq.controls)
        lines.append(
            f"{r.theorem:<5}{r.result.status:<9}{r.coq.status:<9}{_gappa_range(r.gappa)[:41]:<42}"
            f"{f'{ctl}/{ctot}':<10}{f'{rej}/{tot}':<9}{r.seconds:>8.1f}"
        )
        lines.append(f"{'':<5}SymPy: {r.result.covered}")
        if r.coq.file:
            axioms = ", ".join(r.coq.assumptions) or "none"
            lines.append(f"{'':<5}Coq: {r.coq.file} ({r.coq.main_theorem}; axioms: {axioms})"
                         + (f" — {r.coq.reason}" if r.coq.status != "proved" and r.coq.reason else ""))
        else:
            lines.append(f"{'':<5}Coq: {r.coq.reason}")
        if r.gappa is not None and r.gappa.reason:
            lines.append(f"{'':<5}Gappa: {r.gappa.reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; 0 when every check that ran passed (and, under DEADIR_REQUIRE_COQ=1, all ran)."""
    args = _parse(argv)
    modules = theorem_modules()
    if args.only:
        wanted = {w.strip().upper() for w in args.only.split(",") if w.strip()}
        known = {m.THEOREM for m in modules}
        unknown = sorted(wanted - known)
        if unknown:
            print(f"error: --only names unknown theorems {unknown}; known: {sorted(known)}", file=sys.stderr)
            return 2
        modules = [m for m in modules if m.THEOREM in wanted]
    out = Path(args.out)
    runs = []
    for m in modules:
        t = time.perf_counter()
        result, controls = run_theorem(m)
        mutants = [] if args.no_mutants else run_mutants(m)
        coq = run_coq(m.THEOREM, enabled=not args.no_coq)
        gappa = None
        if m.THEOREM == "T10":
            gappa = run_gappa(enabled=not args.no_gappa, write_to=out / "T10" / "gappa",
                              full_coq=args.gappa_full_coq)
            if coq.file is None and gappa.cases:  # T10's Coq evidence is the re-check of Gappa's certificates
                coq = coq_from_gappa(gappa)
        run = TheoremRun(m, result, controls, mutants, coq, gappa, time.perf_counter() - t)
        run.problems = _problems(run, args)
        runs.append(run)
    tools = versions()
    paths = write_certificates(out, runs, tools, argv=list(argv) if argv is not None else sys.argv[1:])
    summary = summary_json(runs, tools)
    ok = not any(r.problems for r in runs)
    if args.json:
        print(json.dumps({"ok": ok, "out": str(out), **summary}, indent=2))
        return 0 if ok else 1
    print(table(runs))
    rej = sum(r.mutants_rejected[0] for r in runs)
    tot = sum(r.mutants_rejected[1] for r in runs)
    print(f"\nstatement mutants rejected: {rej}/{tot}")
    print(f"tools: {', '.join(f'{k} {v}' for k, v in tools.items())}")
    not_run = [r.theorem for r in runs if r.coq.status == "not run" and r.coq.file is not None]
    not_run += ["T10 (Gappa)" for r in runs if r.gappa is not None and r.gappa.status == "not run"]
    if not_run:
        print(f"\nKERNEL-CHECKED PART NOT RUN for {', '.join(not_run)}: only the SymPy evidence above was checked. "
              f"Install the checkers (Debian/Ubuntu, as root): apt-get update && {INSTALL_COMMAND}")
    print(f"\ncertificates: {len(paths)} files in {out} (index: {out / 'index.md'}, summary: {out / 'summary.json'})")
    for r in runs:
        for p in r.problems:
            print(f"FAILURE: {p}")
    print("ALL CHECKS THAT RAN PASSED" if ok else "FAILURES: see above")
    return 0 if ok else 1
