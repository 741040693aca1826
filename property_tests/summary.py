"""Print the fuzz summary table from build/fuzz/results.json (written by property_tests/conftest.py).

Run as ``python -m property_tests.summary [path]``. Columns: property, backend, dtype,
examples run, failures, and the largest measured value relative to its bound
(kernel residual / T10 bound for T1 and T2; ≤ 1 passes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from deadir.report import render_table

DEFAULT = Path(__file__).resolve().parent.parent / "build" / "fuzz" / "results.json"


def render(path: Path = DEFAULT) -> str:
    """The summary and kill tables as text."""
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [(r["property"], r["backend"], r["dtype"], r["examples"], r["failures"], r["max_ratio"])
            for r in data["rows"]]
    total_ex = sum(r["examples"] for r in data["rows"])
    total_fail = sum(r["failures"] for r in data["rows"])
    out = [render_table(("property", "backend", "dtype", "examples", "failures", "max measured/bound"), rows,
                        title=f"deadir fuzz summary (profile {data['profile']}): {total_ex} examples, "
                              f"{total_fail} failure(s)")]
    kills = data.get("kills") or []
    if kills:
        killed = sum(1 for k in kills if k["caught_by"])
        out.append(render_table(("mutant", "caught by"),
                                [(k["mutant"], ", ".join(k["caught_by"]) or "SURVIVED") for k in kills],
                                title=f"mutant kill rate: {killed}/{len(kills)}"))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT
    if not path.is_file():
        print(f"no fuzz results at {path}", file=sys.stderr)
        return 1
    try:
        print(render(path))
    except BrokenPipeError:  # piped into head
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
