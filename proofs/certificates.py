"""Markdown certificates: one file per theorem plus an index, readable by a mathematician.

Each certificate states the theorem and its hypotheses, lists every derivation step with the
claim in LaTeX ($$...$$) and how SymPy settled it, gives the result, each negative control
(and the witness that rejected it), the SymPy version and the time taken.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sympy as sp

from proofs.core import CITED, ProofResult, Step

_MARK = {"proved": "✔ proved", "refuted": "✘ refuted", "undecided": "? undecided", CITED: "cited"}


def _write_atomic(path: Path, text: str) -> None:
    """Write text to path atomically (temporary file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _step_md(k: int, step: Step) -> str:
    lines = [f"**Step {k}: {step.name}** — {_MARK.get(step.status, step.status)}", "", step.text, ""]
    if step.latex:
        lines += ["$$", step.latex, "$$", ""]
    if step.status == CITED:
        lines.append("*Not machine-checked:* a standard lemma, listed so the reader sees every assumption.")
    else:
        lines.append(f"*SymPy:* {step.method}; {step.seconds:.2f} s.")
    if step.witness:
        lines += ["", f"*Witness:* {step.witness}"]
    return "\n".join(lines) + "\n"


def certificate_markdown(result: ProofResult, controls: Sequence[ProofResult]) -> str:
    """The certificate of one theorem, as Markdown with LaTeX."""
    out = [f"# {result.theorem}. {result.title}", ""]
    out += ["## Statement", "", result.statement, "", "**Hypotheses.**", ""]
    out += [f"- {h}" for h in result.hypotheses]
    out += ["", f"**Covered:** {result.covered}.", "", "## Derivation", ""]
    out += [_step_md(k, s) for k, s in enumerate(result.steps, 1)]
    if result.notes:
        out += ["## What exactly is proved", ""] + [f"- {n}" for n in result.notes] + [""]
    cited = [s.name for s in result.steps if s.status == CITED]
    out += ["## Result", "", f"**{result.verdict}** in {result.seconds:.2f} s."]
    if cited:
        out += ["", "Standard lemmas used without machine check: " + ", ".join(cited) + "."]
    out += ["", "## Negative controls", ""]
    if not controls:
        out.append("None.")
    for c in controls:
        out += [f"### Control: {c.control}", "", f"**{c.verdict}** ({c.seconds:.2f} s).", ""]
        refuted = [s for s in c.steps if s.status == "refuted"]
        for s in refuted:
            out += [f"- step *{s.name}* refuted: {s.witness}"]
        out.append("")
    out += ["---", f"SymPy {sp.__version__}, Python {platform.python_version()}.", ""]
    return "\n".join(out)


def _cell(text: str) -> str:
    """Escape a table cell (a bare | would split the Markdown table)."""
    return text.replace("|", "\\|")


def index_markdown(rows: Sequence[tuple[ProofResult, Sequence[ProofResult], str]]) -> str:
    """The index page: one line per theorem with verdict, coverage, controls and time."""
    out = ["# deadir proof certificates", "", f"SymPy {sp.__version__}.", ""]
    out += [
        "| Theorem | Statement | Covered | Result | Controls rejected | Seconds |",
        "|---|---|---|---|---|---|",
    ]
    for res, controls, fname in rows:
        rejected = sum(c.refuted for c in controls)
        total = res.seconds + sum(c.seconds for c in controls)
        out.append(
            f"| [{res.theorem}]({fname}) | {_cell(res.title)} | {_cell(res.covered)} | {res.verdict} | "
            f"{rejected}/{len(controls)} | {total:.2f} |"
        )
    return "\n".join(out) + "\n"


def write_certificates(
    out_dir: Path | str, rows: Sequence[tuple[ProofResult, Sequence[ProofResult]]]
) -> list[Path]:
    """Write one certificate per theorem and index.md into out_dir (created); return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    index_rows = []
    for res, controls in rows:
        fname = f"{res.theorem}.md"
        path = out / fname
        _write_atomic(path, certificate_markdown(res, controls))
        written.append(path)
        index_rows.append((res, controls, fname))
    index = out / "index.md"
    _write_atomic(index, index_markdown(index_rows))
    written.append(index)
    return written
