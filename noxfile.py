"""Sessions: `nox` (no arguments) runs the main job; `nox -s ci` is exactly what CI runs.

Virtualenvs are pip-backed (venv), and every install goes through constraints.txt so that
torch resolves to the pinned CPU build.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["main"]

PYTEST = ("python", "-m", "pytest", "-p", "no:cacheprovider")


def install(session: nox.Session, extras: str = "test") -> None:
    session.install("-c", "constraints.txt", "--upgrade", "pip")
    session.install("-c", "constraints.txt", "-e", f".[{extras}]")


# Set where run_fetch has installed the real checkpoints: a test that cannot find one fails
# instead of skipping, so a broken install never passes as a run of skipped tests.
REQUIRE_CHECKPOINTS = {"DEADIR_REQUIRE_CHECKPOINTS": "1"}


def run_tests(session: nox.Session, *, checkpoints_fetched: bool = False) -> None:
    session.run(*PYTEST, "tests", *session.posargs, env=REQUIRE_CHECKPOINTS if checkpoints_fetched else {})


# The kernel checkers of proofs/ (Coq + MathComp for T1-T9, Gappa + Flocq for T10), Debian/Ubuntu packages.
PROOF_PACKAGES = (
    "coq", "libcoq-mathcomp-ssreflect", "libcoq-mathcomp-algebra", "libcoq-mathcomp-algebra-tactics",
    "gappa", "libcoq-flocq", "libcoq-gappa",
)
# Set in CI: a missing coqc/gappa makes the proofs fail instead of being reported as "not run".
REQUIRE_COQ = {"DEADIR_REQUIRE_COQ": "1"}
_apt_updated = False


def install_proof_checkers(session: nox.Session) -> None:
    """apt-get install the Coq/Gappa packages when coqc or gappa is missing and we are root (CI is).

    Without root nothing is installed: the SymPy part still runs and the proofs summary says that
    the kernel-checked part did not run and how to install it.
    """
    global _apt_updated
    if shutil.which("coqc") and shutil.which("gappa"):
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        session.warn("coqc/gappa missing and not root (or no apt-get): the Coq and Gappa checks will report "
                     f"'not run'; install with: apt-get install -y {' '.join(PROOF_PACKAGES)}")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        session.run("apt-get", "update", external=True, env=env)
        _apt_updated = True
    session.run("apt-get", "install", "-y", *PROOF_PACKAGES, external=True, env=env)


def run_proofs(session: nox.Session, *, require_kernel: bool = False) -> None:
    """SymPy, Coq and Gappa: every theorem, control, statement mutant (tests marked mutants, coq, gappa)
    as pytest tests, then the checks and certificates in build/proofs (summary.json, index.md).

    ``require_kernel`` (CI): DEADIR_REQUIRE_COQ=1, so a missing Coq or Gappa fails the run.
    """
    install_proof_checkers(session)
    env = REQUIRE_COQ if require_kernel else {}
    # In CI the per-case checks (each theorem, control and mutant in Coq and SymPy; each Gappa case) run
    # once, in the runner below, which fails on any of them; pytest keeps the harness tests (planted
    # true variants, syntax errors, Admitted lemmas, tampered certificates, missing tools).
    per_case = ["-k", " and ".join(f"not {t}" for t in PER_CASE_TESTS)] if require_kernel else []
    session.run(*PYTEST, "proofs", "-rs", *per_case, env=env)
    session.run("python", "-m", "proofs", "--out", "build/proofs", env=env)


PER_CASE_TESTS = (
    "test_theorem_proved_without_axioms", "test_negative_control_rejected", "test_statement_mutant_rejected",
    "test_case_certified_tightened_rejected_library_above", "test_case_coq_recheck",
    "test_mutant_is_rejected_with_a_witness",
)


def run_fetch(session: nox.Session) -> None:
    """Install the real offline checkpoints of shared/CHECKPOINTS.md (idempotent, checksummed)."""
    session.run("python", "-m", "integration.fetch_checkpoints")


def run_lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")
    session.run("mypy")


def run_integration(session: nox.Session) -> None:
    """Install the six real checkpoints (skipped when already verified), then the CPU integration suite.

    Writes build/integration/report.md, report.json and spectra/*.png. ``DEADIR_CHECKPOINTS``
    picks the checkpoint folder (default .checkpoints/); ``DEADIR_TOKENS`` the tokens per model.
    """
    run_fetch(session)
    session.run(*PYTEST, "integration", "-m", "integration and not gpu", "--report-dir", "build/integration",
                *session.posargs, env=REQUIRE_CHECKPOINTS)


def run_summary(session: nox.Session) -> None:
    """The main job's one-page summary (proofs, fuzzing, integration) and where the full reports are."""
    session.run("python", "-m", "integration.summary", "--build", "build")


@nox.session(default=False)
def integration(session: nox.Session) -> None:
    """Real checkpoints and random-init architectures on CPU: build/integration/report.md (+ json, spectra)."""
    install(session)
    run_integration(session)


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """Published full-width shapes on CUDA (bf16/fp16/fp32): build/integration-gpu/report.md.

    Without CUDA every test skips with the reason; ``nox -s gpu -- --gpu-as-cpu`` runs them on
    CPU at reduced width.
    """
    install(session)
    session.run(*PYTEST, "integration", "-m", "gpu", "-rs", "--report-dir", "build/integration-gpu",
                *session.posargs)


FUZZ_PROFILES = ("ci", "nightly", "dev")


def run_fuzz(session: nox.Session) -> None:
    """Property-based fuzzing (property_tests/) with a Hypothesis profile, then the summary table.

    The profile is the first posarg when it names one (`nox -s fuzz -- nightly`), else
    $DEADIR_HYPOTHESIS_PROFILE, else "ci"; remaining posargs go to pytest.
    """
    args = list(session.posargs)
    profile = os.environ.get("DEADIR_HYPOTHESIS_PROFILE", "ci")
    if args and args[0] in FUZZ_PROFILES:
        profile = args.pop(0)
    env = {"DEADIR_HYPOTHESIS_PROFILE": profile, "HF_HUB_OFFLINE": "1"}
    try:
        session.run(*PYTEST, "property_tests", "--durations=10", *args, env=env)
    finally:
        session.run("python", "-m", "property_tests.summary", env=env, success_codes=[0, 1])


@nox.session
def tests(session: nox.Session) -> None:
    """Fast unit tests of the library and CLI (slow ones included; deselect with -- -m 'not slow')."""
    install(session)
    run_tests(session)


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff on the tree, strict mypy on the package."""
    install(session, "test,lint")
    run_lint(session)


@nox.session(default=False)
def proofs(session: nox.Session) -> None:
    """SymPy, Coq and Gappa checks of T1-T10 with controls and mutants; certificates to build/proofs/."""
    install(session)
    run_proofs(session)


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """Hypothesis suites over every norm backend and dtype, mutant kill rate, summary table."""
    install(session)
    run_fuzz(session)


@nox.session
def main(session: nox.Session) -> None:
    """The main job: proofs, fuzzing and the real-checkpoint check, with a readable report."""
    install(session)
    try:
        run_proofs(session)
        run_fuzz(session)
        run_integration(session)
    finally:  # the one-page summary also says what did not run or failed
        run_summary(session)


@nox.session(default=False)
def ci(session: nox.Session) -> None:
    """Everything CI runs, in one environment."""
    install(session, "test,lint,onnx,jax,keras")
    session.install("-c", "constraints.txt", "x-transformers")  # conformance pack only
    run_lint(session)
    run_fetch(session)
    run_tests(session, checkpoints_fetched=True)
    run_proofs(session, require_kernel=True)
    run_fuzz(session)
    run_integration(session)
    run_conformance(session, subset="ci", out="build/conformance.md")
    run_summary(session)


def run_conformance(session: nox.Session, *, subset: str | None, out: str) -> None:
    """The conformance pack over third-party norm implementations → a Markdown table (PASS/FAIL/ERROR)."""
    args = ["--subset", subset] if subset else []
    session.run("python", "-m", "deadir.testing.conformance", "--out", out, *args)


@nox.session(default=False)
def conformance(session: nox.Session) -> None:
    """The published conformance table docs/conformance.md (`-- ci` for the ≤ 10-minute CI subset)."""
    install(session, "test,onnx,jax,keras")
    session.install("-c", "constraints.txt", "x-transformers")
    subset = session.posargs[0] if session.posargs else None
    run_conformance(session, subset=subset, out="docs/conformance.md" if subset is None else "build/conformance.md")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (ratios measured in one run): writes build/bench/results.{json,md} and prints the table.

    Real checkpoints come from $DEADIR_CHECKPOINTS (default .checkpoints/); pass options after
    `--`, e.g. `nox -s bench -- --only 2,3`. CUDA rows run where a device is present.
    """
    install(session)
    run_fetch(session)
    session.run("python", "-m", "benchmarks", *session.posargs)
