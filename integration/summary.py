"""The main job's one-page summary: ``python -m integration.summary [--build DIR]``.

Reads what the main job's steps wrote and prints one page:

* proofs: ``build/proofs/index.md`` (one row per theorem: result, negative controls);
* fuzzing: ``build/fuzz/results.json`` (properties, examples, failures, mutants killed);
* integration: ``build/integration/report.json`` (one row per model);

and where the full reports are. A missing part is printed as missing, never invented.
Exit status: 0 when every part present reports success, 1 when any reports a failure,
2 when a part is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deadir.report import render_table

WIDTH = 100


def _rule(title: str) -> str:
    return f"\n{title}\n{'=' * len(title)}"


def proofs_part(build: Path) -> tuple[list[str], bool | None]:
    """Lines for the proofs, and success (None when missing)."""
    index = build / "proofs" / "index.md"
    if not index.is_file():
        return [f"missing: {index} (run python -m proofs --out build/proofs)"], None
    rows = []
    for line in index.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].startswith("[T"):
            name = cells[0].split("]")[0].lstrip("[")
            rows.append((name, cells[1][:60], cells[-3], cells[-2]))
    proved = sum(r[2] == "PROVED" for r in rows)
    lines = [f"{proved}/{len(rows)} theorems proved; negative controls rejected as listed.",
             render_table(("theorem", "statement", "result", "controls rejected"), rows)]
    return lines, bool(rows) and proved == len(rows)


def fuzz_part(build: Path) -> tuple[list[str], bool | None]:
    """Lines for the fuzzing step (properties and mutants), and success (None when missing).

    Reads ``build/fuzz/results.json`` as ``property_tests`` writes it: ``rows`` (property,
    backend, dtype, examples, failures) and ``kills`` (mutant, caught_by).
    """
    path = build / "fuzz" / "results.json"
    if not path.is_file():
        return [f"missing: {path} (run nox -s fuzz)"], None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["rows"]
        kills = data.get("kills") or []
        props = sorted({str(r["property"]) for r in rows})
        examples = sum(int(r["examples"]) for r in rows)
        failures = sum(int(r["failures"]) for r in rows)
        killed = sum(1 for k in kills if k["caught_by"])
        survived = [str(k["mutant"]) for k in kills if not k["caught_by"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{path}: unreadable ({type(exc).__name__}: {exc})"], False
    lines = [f"profile {data.get('profile', '?')}: {len(props)} properties over {len(rows)} (backend, dtype) "
             f"combinations, {examples} examples, {failures} failure(s)",
             f"mutants killed: {killed}/{len(kills)}" + (f" (survived: {', '.join(survived)})" if survived else "")]
    return lines, failures == 0 and not survived


def integration_part(build: Path, sub: str = "integration") -> tuple[list[str], bool | None]:
    """Lines for one integration report (per-model table), and success (None when missing)."""
    path = build / sub / "report.json"
    if not path.is_file():
        return [f"missing: {path} (run nox -s integration)"], None
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for r in data["rows"]:
        rows.append((r["model"], r["source"][:18], r["norm"], r["d"], r["tokens"], r["Rayleigh vᵀCv/λmax"],
                     r["|cos| bottom"] if not isinstance(r["|cos| bottom"], str) else r["|cos| bottom"][:10],
                     r["near-null ≤1e-6"], r["dead ch."], r["σ_min ratio min/max"], r["class"], r["pass"]))
    n_pass = sum(r[-1] == "pass" for r in rows)
    errors = data.get("meta", {}).get("errors") or {}
    lines = [f"{n_pass}/{len(rows)} models pass every claim that applies; suite time "
             f"{data.get('meta', {}).get('suite_seconds', '?')} s.",
             render_table(("model", "source", "norm", "d", "N", "Rayleigh", "|cos|", "nn≤1e-6", "dead",
                           "σmin min/max", "class", "pass"), rows)]
    if errors:
        lines.append(f"measurement errors: {errors}")
    ok = n_pass == len(rows) and not errors and data.get("meta", {}).get("pytest_exitstatus", 0) == 0
    return lines, ok


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m integration.summary", description=__doc__.splitlines()[0])
    p.add_argument("--build", type=Path, default=Path("build"), help="the build folder (default build/)")
    args = p.parse_args(argv)
    build: Path = args.build
    out = ["deadir main job: summary"]
    status: list[bool | None] = []
    for title, (lines, ok) in (
        ("Proofs (SymPy certificates)", proofs_part(build)),
        ("Fuzzing (Hypothesis properties, mutants)", fuzz_part(build)),
        ("Integration (CPU: real checkpoints and random-init architectures)", integration_part(build)),
    ):
        out.append(_rule(title))
        out.extend(lines)
        status.append(ok)
    gpu = build / "integration-gpu" / "report.json"
    out.append(_rule("Full reports"))
    out += [
        f"proof certificates:  {build / 'proofs' / 'index.md'}",
        f"fuzzing:             {build / 'fuzz' / 'results.json'} (python -m property_tests.summary)",
        f"integration (CPU):   {build / 'integration' / 'report.md'} (+ report.json, spectra/*.png)",
        "integration (GPU):   "
        + (str(gpu.with_suffix(".md")) if gpu.is_file() else "not run here (nox -s gpu on a CUDA machine)"),
    ]
    print("\n".join(out))
    if any(s is None for s in status):
        return 2
    return 0 if all(status) else 1


if __name__ == "__main__":
    sys.exit(main())
