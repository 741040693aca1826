"""Sessions: `nox` (no arguments) runs the main job; `nox -s ci` is exactly what CI runs.

Virtualenvs are pip-backed (venv), and every install goes through constraints.txt so that
torch resolves to the pinned CPU build.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["main"]

PYTEST = ("python", "-m", "pytest", "-p", "no:cacheprovider")


def install(session: nox.Session, extras: str = "test") -> None:
    session.install("-c", "constraints.txt", "--upgrade", "pip")
    session.install("-c", "constraints.txt", "-e", f".[{extras}]")


def run_tests(session: nox.Session) -> None:
    session.run(*PYTEST, "tests", *session.posargs)


def run_proofs(session: nox.Session) -> None:
    """Each theorem and each negative control as a pytest test, then the certificates in build/proofs."""
    session.run(*PYTEST, "proofs")
    session.run("python", "-m", "proofs", "--out", "build/proofs")


def run_lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")
    session.run("mypy")


def run_integration(session: nox.Session) -> None:
    """Install the six real checkpoints (skipped when already verified), then the CPU integration suite.

    Writes build/integration/report.md, report.json and spectra/*.png. ``DEADIR_CHECKPOINTS``
    picks the checkpoint folder (default .checkpoints/); ``DEADIR_TOKENS`` the tokens per model.
    """
    session.run("python", "-m", "integration.fetch_checkpoints")
    session.run(*PYTEST, "integration", "-m", "integration and not gpu", "--report-dir", "build/integration",
                *session.posargs)


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
    """SymPy proofs of T1-T10 with negative controls; certificates to build/proofs/."""
    install(session)
    run_proofs(session)


@nox.session
def main(session: nox.Session) -> None:
    """The main job: proofs, fuzzing and the real-checkpoint check, with a readable report."""
    install(session)
    run_proofs(session)


@nox.session(default=False)
def ci(session: nox.Session) -> None:
    """Everything CI runs, in one environment."""
    install(session, "test,lint")
    run_lint(session)
    run_tests(session)
    run_proofs(session)
