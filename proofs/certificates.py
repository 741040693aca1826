"""Certificates a reader can re-check: one folder per theorem, an index, and ``summary.json``.

Layout under the output folder::

    index.md                 one row per theorem (links to each theorem's index page)
    summary.json             machine-readable status of every checker, per theorem
    T1/index.md              the theorem, what each tool established, hashes, commands, versions
    T1/sympy.md              every SymPy step in full (claims in LaTeX, methods, witnesses),
                             the negative controls and the statement mutants
    T1/instances.md          every instance of every family step, as the exact expression shown to be 0
    T1/coq.md                the Coq file, its SHA-256, the command, Print Assumptions, controls, mutants
    T1/<file>.v              a copy of the Coq source that was checked
    T10/gappa.md             the Gappa grid: hypotheses, certified bounds, library comparison, Coq re-check
    T10/gappa/               the generated Gappa scripts and Coq certificates

Nothing is elided or truncated. Files are written atomically with mode 0666 & ~umask (0644 under
the usual umask 022): temporary file, fsync, chmod, rename.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proofs.core import CHECKED, CITED, ProofResult, Step
from proofs.evidence import INSTALL_COMMAND, ROOT, rel, sha256

if TYPE_CHECKING:
    from proofs.runner import TheoremRun

_MARK = {
    "proved": "✔ proved",
    "refuted": "✘ refuted",
    "undecided": "? undecided",
    CITED: "cited (not machine-checked)",
    CHECKED: "≈ checked numerically (not counted as proof)",
}


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file(path: Path, data: str | bytes) -> None:
    """Write atomically with mode 0666 & ~umask: temporary file in the same folder, fsync, chmod, rename."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _step_md(k: int, step: Step) -> str:
    lines = [f"**Step {k}: {step.name}** — {_MARK.get(step.status, step.status)}", "", step.text, ""]
    if step.latex:
        lines += ["$$", step.latex, "$$", ""]
    if step.status == CITED:
        lines.append("*Not machine-checked:* a standard lemma, listed so the reader sees every assumption.")
    elif step.status == CHECKED:
        lines.append(f"*Numerical check:* {step.method}. Evidence, not proof.")
    else:
        lines.append(f"*SymPy:* {step.method}; {step.seconds:.2f} s.")
    if step.instances:
        lines.append(f"*Instances:* {len(step.instances)} ({', '.join(lab for lab, _ in step.instances)}); "
                     "each in full in instances.md.")
    if step.witness:
        lines += ["", f"*Witness:* {step.witness}"]
    return "\n".join(lines) + "\n"


def _derivation_md(res: ProofResult) -> list[str]:
    return [_step_md(k, s) for k, s in enumerate(res.steps, 1)]


def sympy_markdown(run: TheoremRun) -> str:
    """The SymPy certificate of one theorem: statement, every step, controls, mutants."""
    res = run.result
    out = [f"# {res.theorem}. {res.title} — SymPy derivation", ""]
    out += ["## Statement", "", res.statement, "", "**Hypotheses.**", ""]
    out += [f"- {h}" for h in res.hypotheses]
    out += ["", f"**What SymPy established:** {res.covered}.", "", "## Derivation", ""]
    out += _derivation_md(res)
    if res.notes:
        out += ["## What exactly is proved", ""] + [f"- {n}" for n in res.notes] + [""]
    cited = [s.name for s in res.steps if s.status == CITED]
    checked = [s.name for s in res.steps if s.status == CHECKED]
    out += ["## Result", "", f"**{res.verdict}** (status: {res.status}) in {res.seconds:.2f} s."]
    if cited:
        out += ["", "Standard lemmas used without machine check: " + ", ".join(cited) + "."]
    if checked:
        out += ["", "Numerical checks (evidence, not counted as proof): " + ", ".join(checked) + "."]
    out += ["", "## Negative controls", "", "Each runs this theorem's own steps on a false variant.", ""]
    if not run.controls:
        out.append("None.")
    for c in run.controls:
        out += [f"### Control: {c.control}", "", f"**{c.verdict}** ({c.seconds:.2f} s).", ""]
        out += _derivation_md(c)
    out += ["## Statement mutants", "", "False edits of the statement, run through the same derivation.", ""]
    for name, kind, m in run.mutants:
        out += [f"### Mutant {name} ({kind})", "", f"Edited statement: {m.mutant}", "",
                f"**{m.verdict}** ({m.seconds:.2f} s).", ""]
        out += _derivation_md(m)
    return "\n".join(out) + "\n"


def instances_markdown(run: TheoremRun) -> str:
    """Every instance of every family step (theorem, controls, mutants), in full."""
    out = [f"# {run.theorem} — every instance, in full", "",
           "Each line is the exact SymPy expression (str form) that the step shows to be 0 for that instance.", ""]
    results = [("theorem", run.result)] + [(f"control {c.control}", c) for c in run.controls]
    results += [(f"mutant {n}", r) for n, _, r in run.mutants]
    for label, res in results:
        for s in res.steps:
            if not s.instances:
                continue
            out += [f"## {label}: {s.name} ({_MARK.get(s.status, s.status)})", ""]
            for lab, expr in s.instances:
                out += [f"- `{lab}`:", "", "```", expr, "```", ""]
    return "\n".join(out) + "\n"


def coq_markdown(run: TheoremRun, tools: dict[str, str]) -> str:
    """The Coq evidence of one theorem."""
    c = run.coq
    out = [f"# {run.theorem} — Coq + MathComp", ""]
    if c.file is None:
        return "\n".join([*out, f"**Not run:** {c.reason}", ""])
    out += [f"- file: `{c.file}` (copy: [{Path(c.file).name}]({Path(c.file).name}))",
            f"- SHA-256: `{c.sha256}`",
            f"- main theorem: `{c.main_theorem}`",
            f"- re-run: `{c.command}` (its last line prints `Print Assumptions {c.main_theorem}`)",
            f"- status: **{c.status}**" + (f" — {c.reason}" if c.reason else ""),
            "- axioms reported by Print Assumptions: "
            + (", ".join(c.assumptions) or "none (closed under the global context)"),
            f"- seconds: {c.seconds:.2f}",
            f"- Coq {tools.get('coq')}, MathComp {tools.get('mathcomp')}", ""]
    if c.status == "not run":
        out += [f"Install: `apt-get update && {INSTALL_COMMAND}` (Debian/Ubuntu, as root).", ""]
    out += ["## Negative controls (same proof script, false variant; coqc must fail inside a proof)", ""]
    out += _variants_md(c.controls)
    out += ["", "## Statement mutants", ""]
    out += _variants_md(c.mutants)
    return "\n".join(out) + "\n"


def _variants_md(variants: Sequence[Any]) -> list[str]:
    return [f"- {v.name}: {'rejected' if v.rejected else 'NOT REJECTED'} — {v.message}" for v in variants] or [
        "none run"
    ]


def gappa_markdown(run: TheoremRun, tools: dict[str, str]) -> str:
    """The Gappa evidence of T10."""
    g = run.gappa
    assert g is not None
    out = ["# T10 — Gappa certificates of the floating-point bound, re-checked by Coq", ""]
    out += [f"- status: **{g.status}**" + (f" — {g.reason}" if g.reason else ""),
            "- formats and sizes: " + ", ".join(f"{dt} every d = 2..{g.d_max.get(dt)}" for dt in g.dtypes),
            f"- generator: `proofs/gappa_check.py`, SHA-256 `{g.generator_sha256}`",
            f"- re-run: `{g.command}` (scripts and certificates in proofs/gappa/generated/)",
            f"- Gappa {tools.get('gappa')}, Flocq {tools.get('flocq')}, Coq {tools.get('coq')}",
            f"- library tolerance ≥ certified bound in every case: {g.library_ok}", ""]
    if g.cases:
        out += ["## Hypotheses (written into every script)", ""]
        out += [f"- {k}: {v}" for k, v in g.cases[0].hypotheses.items()]
        out += ["", "## Cases", "", g.table, ""]
        out += ["Scripts (`.g`) and Coq certificates (`.v`, `.coqlog`) are in [gappa/](gappa/).", ""]
    elif g.status == "not run":
        out += [f"Install: `apt-get update && {INSTALL_COMMAND}` (Debian/Ubuntu, as root).", ""]
    return "\n".join(out) + "\n"


def _sources(run: TheoremRun) -> list[tuple[str, str]]:
    """(path, SHA-256) of every proof source this theorem's evidence depends on."""
    files = [Path(run.module.__file__ or ""), ROOT / "proofs" / "core.py", ROOT / "proofs" / "symbolic.py"]
    out = [(rel(p), sha256(p)) for p in files if p.is_file()]
    if run.coq.file and run.coq.sha256:
        out.append((run.coq.file, run.coq.sha256))
    if run.gappa is not None and run.gappa.generator_sha256:
        out.append(("proofs/gappa_check.py", run.gappa.generator_sha256))
    return out


def theorem_index_markdown(run: TheoremRun, tools: dict[str, str], command: str) -> str:
    """One page per theorem linking its SymPy, Coq and Gappa evidence."""
    res = run.result
    rej, tot = run.mutants_rejected
    out = [f"# {res.theorem}. {res.title}", "", res.statement, "", "## Evidence", "",
           "| tool | status | what it established | evidence |", "|---|---|---|---|",
           f"| SymPy | {res.status} | {_cell(res.covered)} | [sympy.md](sympy.md), [instances.md](instances.md) |"]
    coq_what = "every d (kernel-checked)" if run.coq.status == "proved" else _cell(run.coq.reason or run.coq.status)
    out.append(f"| Coq + MathComp | {run.coq.status} | {coq_what} | [coq.md](coq.md) |")
    if run.gappa is not None:
        out.append(f"| Gappa (+ Coq re-check) | {run.gappa.status} | "
                   f"{', '.join(f'{dt} d = 2..{run.gappa.d_max.get(dt)}' for dt in run.gappa.dtypes)} | "
                   "[gappa.md](gappa.md) |")
    out += ["", f"Negative controls rejected: SymPy {sum(c.refuted for c in run.controls)}/{len(run.controls)}, "
            f"Coq {sum(v.rejected for v in run.coq.controls)}/{len(run.coq.controls)}. "
            f"Statement mutants rejected: {rej}/{tot}.", ""]
    out += ["## Proof sources (SHA-256)", ""] + [f"- `{p}`: `{h}`" for p, h in _sources(run)]
    out += ["", "## Re-run", "", f"- everything: `{command}`",
            f"- this theorem only: `python -m proofs --only {res.theorem} --out <folder>`"]
    if run.coq.command:
        out.append(f"- Coq alone: `{run.coq.command}`")
    if run.gappa is not None and run.gappa.command:
        out.append(f"- Gappa alone: `{run.gappa.command}`")
    out += ["", "## Tool versions", ""] + [f"- {k}: {v}" for k, v in tools.items()] + [""]
    return "\n".join(out)


def _cell(text: str) -> str:
    """Escape a table cell (a bare | would split the Markdown table)."""
    return text.replace("|", "\\|").replace("\n", " ")


def index_markdown(runs: Sequence[TheoremRun], tools: dict[str, str]) -> str:
    """The top index: one line per theorem. The last three cells stay result, controls, seconds."""
    rej = sum(r.mutants_rejected[0] for r in runs)
    tot = sum(r.mutants_rejected[1] for r in runs)
    out = ["# deadir proof certificates", "", ", ".join(f"{k} {v}" for k, v in tools.items()) + ".", "",
           f"Statement mutants rejected: {rej}/{tot}.", "",
           "| Theorem | Statement | SymPy generality | Coq | Gappa | Mutants rejected | Result | Controls rejected "
           "| Seconds |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        mr, mt = r.mutants_rejected
        ctl = sum(c.refuted for c in r.controls) + sum(v.rejected for v in r.coq.controls)
        ctot = len(r.controls) + len(r.coq.controls)
        gappa = "—" if r.gappa is None else r.gappa.status
        out.append(
            f"| [{r.theorem}]({r.theorem}/index.md) | {_cell(r.result.title)} | {_cell(r.result.covered)} | "
            f"{r.coq.status} | {gappa} | {mr}/{mt} | {r.result.verdict} | {ctl}/{ctot} | {r.seconds:.2f} |"
        )
    return "\n".join(out) + "\n"


def summary_json(runs: Sequence[TheoremRun], tools: dict[str, str]) -> dict[str, Any]:
    """The machine-readable summary: per theorem sympy / coq / gappa / mutants, plus tool versions."""
    theorems: dict[str, Any] = {}
    for r in runs:
        rej, tot = r.mutants_rejected
        g = r.gappa
        theorems[r.theorem] = {
            "sympy": {"status": r.result.status, "generality": r.result.covered},
            "coq": {"status": r.coq.status, "file": r.coq.file, "assumptions": r.coq.assumptions,
                    **({"reason": r.coq.reason} if r.coq.status != "proved" and r.coq.reason else {})},
            "gappa": {"dtypes": g.dtypes if g is not None and g.status != "not run" else [],
                      "d_max": g.d_max if g is not None and g.status != "not run" else {},
                      "status": "not applicable" if g is None else g.status,
                      **({"reason": g.reason} if g is not None and g.reason else {})},
            "mutants": {"rejected": rej, "total": tot},
        }
    rej = sum(r.mutants_rejected[0] for r in runs)
    tot = sum(r.mutants_rejected[1] for r in runs)
    return {"theorems": theorems, "mutants": {"rejected": rej, "total": tot}, "tools": tools}


def write_certificates(
    out_dir: Path | str, runs: Sequence[TheoremRun], tools: dict[str, str], argv: Sequence[str] = ()
) -> list[Path]:
    """Write every certificate, the index pages and summary.json into out_dir (created); return the paths."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", "proofs", *argv])
    written: list[Path] = []

    def put(path: Path, data: str | bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, data)
        written.append(path)

    for r in runs:
        folder = out / r.theorem
        put(folder / "index.md", theorem_index_markdown(r, tools, command))
        put(folder / "sympy.md", sympy_markdown(r))
        put(folder / "instances.md", instances_markdown(r))
        put(folder / "coq.md", coq_markdown(r, tools))
        if r.coq.file and (ROOT / r.coq.file).is_file():
            put(folder / Path(r.coq.file).name, (ROOT / r.coq.file).read_bytes())
        if r.gappa is not None:
            put(folder / "gappa.md", gappa_markdown(r, tools))
    put(out / "index.md", index_markdown(runs, tools))
    put(out / "summary.json", json.dumps(summary_json(runs, tools), indent=2, ensure_ascii=False) + "\n")
    return written
