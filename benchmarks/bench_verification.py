"""Item 4: fuzzing throughput (examples/s per property family) and proof times (s per theorem).

All run in this process with a small budget, so a regression shows up here:

* fuzz pack — each property of ``deadir.testing``'s pack (T1, T2, T8, reference on
  torch LayerNorm; T5, reference on torch RMSNorm) as its own Hypothesis search;
* fuzz — the Hypothesis suites under ``property_tests/`` run in a ``pytest`` subprocess with
  their own "ci" profile (few, derandomized examples; DEADIR_HYPOTHESIS_PROFILE); Hypothesis's observability callback
  counts every test case, pytest's reports give each test's call time. A family is a test
  module; examples/s = passing test cases / call seconds of that module's tests (the
  observability hook adds a little per-example overhead to every family alike).
* proofs — ``proofs.runner.run_theorem`` for each theorem in order (proof and negative
  controls, SymPy), until the time budget is spent; theorems not reached are listed as
  skipped, not guessed.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import RateRow, Row, SkippedRow, time_repeats


def proof_rows(budget_s: float = 90.0, *, log: Callable[[str], None] = print) -> list[Row]:
    """One row per theorem: seconds to prove it (controls in ``extra``)."""
    try:
        from proofs.registry import theorem_modules
        from proofs.runner import run_theorem
    except ImportError as exc:
        return [SkippedRow(id="rate:proofs", item=4, title="proof seconds per theorem",
                           reason=f"proofs package not importable ({exc})")]
    rows: list[Row] = []
    start = time.perf_counter()
    for module in theorem_modules():
        name = str(getattr(module, "THEOREM", module.__name__))
        if time.perf_counter() - start > budget_s:
            rows.append(SkippedRow(id=f"rate:proof:{name}", item=4, title=f"proof {name}",
                                   reason=f"proof budget of {budget_s:.0f} s spent; run `python -m proofs`"))
            continue
        result, controls = run_theorem(module)
        total = result.seconds + sum(c.seconds for c in controls)
        log(f"  proof {name}: {result.verdict} in {result.seconds:.2f} s (+{total - result.seconds:.2f} s controls)")
        rows.append(RateRow(
            id=f"proof:{name}", item=4, title=f"proof {name}: {result.title[:50]}", unit="s (proof)",
            values=(result.seconds,),
            extra={"verdict": result.verdict, "controls": {str(c.control): c.seconds for c in controls},
                   "proof_and_controls_s": total},
            notes="" if result.ok and all(c.ok for c in controls) else "NOT PROVED or a control was accepted",
        ))  # fmt: skip
    return rows


class _FuzzCollector:
    """Test cases per property and call time per test, as collected by :mod:`benchmarks.fuzz_plugin`."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.seconds: dict[str, float] = defaultdict(float)
        self.outcomes: dict[str, str] = {}


def _family(nodeid: str) -> str:
    return Path(nodeid.split("::", 1)[0]).stem


def _property(nodeid: str) -> str:
    """Hypothesis's observations name a property by the test's pytest node id (parametrisation included)."""
    return nodeid


def fuzz_rows(repo: Path, *, profile: str = "ci", log: Callable[[str], None] = print) -> list[Row]:
    """One row per property family (test module under property_tests/)."""
    suite = repo / "property_tests"
    if not suite.is_dir() or not any(suite.glob("test_*.py")):
        return [SkippedRow(id="rate:fuzz", item=4, title="fuzz examples/s per property family",
                           reason="no property_tests/test_*.py here yet (the Hypothesis suites of branch `fuzz`)")]
    if os.environ.get("DEADIR_BENCH_FUZZ_SUITE") == "0":
        return [SkippedRow(id="rate:fuzz", item=4, title="fuzz examples/s of the property_tests suites",
                           reason="switched off (DEADIR_BENCH_FUZZ_SUITE=0)")]
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fuzz.json"
        # the suite's own conftest picks its Hypothesis profile from this variable ("ci": few, derandomized examples)
        env = {**os.environ, "DEADIR_HYPOTHESIS_PROFILE": os.environ.get("DEADIR_HYPOTHESIS_PROFILE", profile),
               "DEADIR_BENCH_FUZZ_OUT": str(out)}
        # the plugin (benchmarks.fuzz_plugin) must import in the subprocess whatever the suite's folder
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(__file__).resolve().parent.parent),
                                                          env.get("PYTHONPATH"))))
        if sys.version_info < (3, 12):  # observability's coverage tracing costs ~15× here; 3.12+ traces cheaply
            env["HYPOTHESIS_EXPERIMENTAL_OBSERVABILITY_NOCOVER"] = "1"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-p", "benchmarks.fuzz_plugin",
             "-m", "not slow and not gpu"], cwd=repo, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        log(f"  fuzz suite: pytest exit {proc.returncode} in {time.perf_counter() - t0:.1f} s")
        if not out.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return [SkippedRow(id="rate:fuzz", item=4, title="fuzz examples/s per property family",
                               reason=f"pytest exit {proc.returncode} before the session ended: {' / '.join(tail)}")]
        data = json.loads(out.read_text(encoding="utf-8"))
    collector = _FuzzCollector()
    for prop, counts in data["cases"].items():
        collector.cases[prop].update(counts)
    collector.seconds.update(data["seconds"])
    collector.outcomes.update(data["outcomes"])
    profile = env["DEADIR_HYPOTHESIS_PROFILE"]
    per_family: dict[str, list[str]] = defaultdict(list)
    for nodeid in collector.seconds:
        per_family[_family(nodeid)].append(nodeid)
    rows: list[Row] = []
    for family, nodeids in sorted(per_family.items()):
        props = {_property(n) for n in nodeids}
        passed = sum(collector.cases[p]["passed"] for p in props)
        gave_up = sum(collector.cases[p]["gave_up"] for p in props)
        seconds = sum(collector.seconds[n] for n in nodeids)
        failed = [n for n in nodeids if collector.outcomes[n] == "failed"]
        if passed == 0 or seconds <= 0:
            rows.append(SkippedRow(id=f"rate:fuzz:{family}", item=4, title=f"fuzz {family}",
                                   reason="no Hypothesis test case attributed to these tests (plain tests, or "
                                          "searches run inside deadir.testing's pack: see the fuzz pack rows)"))
            continue
        # one value per test: examples/s of each property, so min/median/max spread over the family
        per_test = [sum(collector.cases[_property(n)].values()) / collector.seconds[n] for n in nodeids
                    if collector.seconds[n] > 0 and collector.cases[_property(n)]["passed"]]
        rows.append(RateRow(
            id=f"fuzz:{family}", item=4, title=f"fuzz {family} ({len(nodeids)} tests)", unit="examples/s",
            values=tuple(per_test) or (passed / seconds,),
            extra={"examples_passed": passed, "gave_up": gave_up, "call_seconds": seconds,
                   "family_examples_per_s": passed / seconds, "profile": profile,
                   "failed": failed},
            notes=f"{len(failed)} FAILED: {failed[:3]}" if failed else "",
        ))  # fmt: skip
    return rows


def pack_rows(*, max_examples: int = 30, log: Callable[[str], None] = print) -> list[Row]:
    """Examples/s of each property of ``deadir.testing``'s fuzz pack, on torch LayerNorm and RMSNorm.

    Each property is its own (derandomized, so identical on every repeat) Hypothesis search of
    ``max_examples`` examples; one untimed warm-up run absorbs first-call costs.
    """
    try:
        from deadir.testing import examples
        from deadir.testing.pack import PROPERTIES, run_pack
    except ImportError as exc:
        return [SkippedRow(id="rate:fuzz-pack", item=4, title="fuzz pack examples/s",
                           reason=f"deadir.testing not on this branch ({exc})")]
    rows: list[Row] = []
    for factory, expect in ((examples.layernorm, "mean-centring"), (examples.rmsnorm, "rms")):
        for prop in PROPERTIES[expect]:
            counts: list[int] = []

            def search(f: Any = factory, e: str = expect, p: str = prop, out: list[int] = counts) -> None:
                report = run_pack(f, expect=e, max_examples=max_examples, properties=[p])
                out.append(report.outcomes[0].examples)
                if not report.passed:
                    raise RuntimeError(f"fuzz pack: {p} failed on {f.__name__}: {report.outcomes[0].counterexample}")

            timing = time_repeats(search, prop, min_repeats=2, max_repeats=5, budget_s=2.0, warmup=1)
            rates = tuple(c / t for c, t in zip(counts[1:], timing.samples, strict=True))
            log(f"  fuzz {factory.__name__} {prop}: {rates[0]:.0f} examples/s")
            rows.append(RateRow(
                id=f"fuzz-pack:{factory.__name__}:{prop}", item=4,
                title=f"fuzz {prop} ({factory.__name__}, {max_examples} examples)", unit="examples/s",
                values=rates, extra={"examples": counts[1:], "seconds": list(timing.samples)},
            ))  # fmt: skip
    return rows


def run(repo: Path, *, quick: bool = False, log: Callable[[str], None] = print) -> list[Row]:
    rows = pack_rows(max_examples=10 if quick else 30, log=log)
    rows += fuzz_rows(repo, log=log)
    rows += proof_rows(20.0 if quick else 60.0, log=log)
    return rows
