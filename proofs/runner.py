"""Run the proofs, print a table, write certificates: ``python -m proofs`` / ``deadir prove``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from proofs.certificates import write_certificates
from proofs.core import ProofResult
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


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m proofs", description="Prove deadir's theorems T1–T10 with SymPy."
    )
    p.add_argument("--out", default="build/proofs", help="certificate folder (default build/proofs)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    p.add_argument("--only", default=None, help="comma-separated theorems, e.g. T1,T3")
    return p.parse_args(None if argv is None else list(argv))


def _summary(res: ProofResult, controls: Sequence[ProofResult]) -> dict[str, object]:
    return {
        "theorem": res.theorem,
        "title": res.title,
        "covered": res.covered,
        "result": res.verdict,
        "seconds": round(res.seconds, 3),
        "steps": [{"name": s.name, "status": s.status, "method": s.method} for s in res.steps],
        "controls": [
            {"name": c.control, "result": c.verdict, "seconds": round(c.seconds, 3)} for c in controls
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 when every theorem is proved and every negative control rejected."""
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
    rows = [run_theorem(m) for m in modules]
    paths = write_certificates(Path(args.out), rows)
    ok = all(r.ok and all(c.ok for c in cs) for r, cs in rows)
    if args.json:
        print(
            json.dumps(
                {"ok": ok, "out": str(args.out), "theorems": [_summary(r, cs) for r, cs in rows]}, indent=2
            )
        )
        return 0 if ok else 1
    head = f"{'theorem':<8}{'statement':<58}{'result':<12}{'controls':<10}{'seconds':>8}"
    print(head)
    print("-" * len(head))
    for r, cs in rows:
        rej = f"{sum(c.refuted for c in cs)}/{len(cs)} rej"
        secs = r.seconds + sum(c.seconds for c in cs)
        print(f"{r.theorem:<8}{r.title[:57]:<58}{r.verdict:<12}{rej:<10}{secs:>8.2f}")
        print(f"{'':<8}d covered: {r.covered}")
        for c in cs:
            if not c.ok:
                print(f"{'':<8}negative control ACCEPTED (defect): {c.control}")
    print(f"\ncertificates: {len(paths)} files in {args.out}")
    print("ALL PROVED, ALL CONTROLS REJECTED" if ok else "FAILURES: see above")
    return 0 if ok else 1
