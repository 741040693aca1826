"""The nightly ledger: which property tests finished, with how many examples, on which source.

A nightly run (10,000 examples per property) takes hours, longer than one CI job or one
machine's session may last. Every finished test of a non-ci profile appends a line to
build/fuzz/ledger.jsonl: node id, outcome, examples, seconds, the profile, and a digest of
the code under test (deadir/, property_tests/, proofs/ and the Hypothesis and torch
versions). A run is complete for a digest when every collected test has passed under it;
``--args-file`` writes the ``--deselect`` arguments (pytest's ``@file``) of the tests that
already have, so the next run takes up only what is left:

    python -m property_tests.ledger --profile nightly --args-file build/fuzz/resume.args
    DEADIR_HYPOTHESIS_PROFILE=nightly pytest property_tests @build/fuzz/resume.args

A change to the code under test starts the count again; a test that failed under a digest
does not count under it (its counterexample stands). The mutant tests and the kill-rate check
that reads their results are one unit: they are deselected together or not at all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "build" / "fuzz" / "ledger.jsonl"
SOURCES = ("deadir", "property_tests", "proofs")
# one unit: the kill-rate check reads KILLS filled by the mutant tests of the same session
UNIT = ("property_tests/test_fuzz_mutants.py::test_mutant_is_caught[",
        "property_tests/test_fuzz_mutants.py::test_kill_rate_is_total")


def source_digest(root: Path = ROOT) -> str:
    """sha256 (first 16 hex digits) of the code under test: every .py under SOURCES, plus hypothesis and torch."""
    h = hashlib.sha256()
    for top in SOURCES:
        for path in sorted((root / top).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for dist in ("hypothesis", "torch"):
        h.update(f"{dist}=={metadata.version(dist)}\0".encode())
    return h.hexdigest()[:16]


def append(entry: dict[str, Any], path: Path = DEFAULT) -> None:
    """Append one finished test's line (one write per line, so a run cut off mid-test loses only that test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({**entry, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


def read(path: Path = DEFAULT) -> list[dict[str, Any]]:
    """The ledger's lines, oldest first (an empty list when there is none).

    Raises:
        ValueError: a line is not a JSON object (names the file and line).
    """
    if not path.is_file():
        return []
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{i}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "nodeid" not in row:
            raise ValueError(f"{path}:{i}: not a ledger entry (a JSON object with a nodeid)")
        rows.append(row)
    return rows


def passed(rows: list[dict[str, Any]], *, digest: str, profile: str) -> dict[str, dict[str, Any]]:
    """The latest passing line per node id under ``digest`` and ``profile``.

    A test that also failed under them is not counted (its counterexample stands even if a later
    run with other seeds passed), and the mutant unit counts only when all of it passed.
    """
    mine = [r for r in rows if r.get("digest") == digest and r.get("profile") == profile]
    failed = {r["nodeid"] for r in mine if r.get("outcome") == "failed"}
    done = {r["nodeid"]: r for r in mine if r.get("outcome") == "passed" and r["nodeid"] not in failed}
    unit = [n for n in done if n.startswith(UNIT)]
    if not any(n.startswith(UNIT[1]) for n in unit):
        for n in unit:
            done.pop(n)
    return done


def failures(rows: list[dict[str, Any]], *, digest: str, profile: str) -> list[str]:
    """Node ids that failed under ``digest`` and ``profile``."""
    return sorted({r["nodeid"] for r in rows
                   if r.get("digest") == digest and r.get("profile") == profile and r.get("outcome") == "failed"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m property_tests.ledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", type=Path, default=DEFAULT)
    parser.add_argument("--profile", default="nightly")
    parser.add_argument("--digest", default=None, help="default: the digest of this tree")
    parser.add_argument("--args-file", type=Path, default=None,
                        help="write --deselect lines for the tests that already passed (pytest @file)")
    args = parser.parse_args(argv)
    digest = args.digest or source_digest()
    try:
        rows = read(args.ledger)
    except ValueError as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return 2
    done = passed(rows, digest=digest, profile=args.profile)
    examples = sum(int(r.get("examples") or 0) for r in done.values())
    seconds = sum(float(r.get("seconds") or 0.0) for r in done.values())
    failing = failures(rows, digest=digest, profile=args.profile)
    print(f"ledger {args.ledger}: profile {args.profile}, source {digest}: {len(done)} test(s) passed "
          f"({examples} examples, {seconds:.0f} s); {len(failing)} failed")
    for nodeid in failing:
        print(f"  failed: {nodeid}")
    if args.args_file is not None:
        args.args_file.parent.mkdir(parents=True, exist_ok=True)
        args.args_file.write_text("".join(f"--deselect={n}\n" for n in sorted(done)), encoding="utf-8")
        print(f"wrote {args.args_file}: {len(done)} --deselect line(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
