"""Calling the norm under test: a per-call timeout and the typed errors that make a verdict ERROR.

The pack has three verdicts (DESIGN.md §4): PASS, FAIL (a counterexample of the algebra) and
ERROR (the factory, the norm's call or the harness failed; exit code 2). Every error here is
an ERROR, never a FAIL: a norm that hangs, raises, or answers the same input differently
twice has not been shown to break the algebra, so no counterexample is claimed.

Why a thread for the timeout: the norm runs in-process (its tensors, its compiled code), so
a subprocess would have to re-create it from the factory; a daemon worker thread lets the
caller stop waiting after ``timeout`` seconds. The stuck thread cannot be killed, but it is
a daemon (it never holds the interpreter's exit) and the pack stops calling the norm at the
first ERROR, so at most one thread is left behind.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from deadir.errors import DeadirError

__all__ = [
    "DEFAULT_TIMEOUT",
    "CompiledFallbackError",
    "FactoryError",
    "HarnessError",
    "NondeterministicNormError",
    "NormCallError",
    "NormTimeoutError",
    "call_with_timeout",
]

# Seconds one call of the norm under test may take. A first call of a torch.compile'd module
# compiles (tens of seconds on a 2-core CI machine); every other call of a norm on at most
# 2^15 elements takes milliseconds, so 120 s only ever fires on a norm that does not return.
DEFAULT_TIMEOUT = 120.0

T = TypeVar("T")


class HarnessError(DeadirError, RuntimeError):
    """The pack could not judge the norm (verdict ERROR, exit code 2). ``details`` holds a traceback, if any."""

    def __init__(self, message: str, *, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class FactoryError(HarnessError):
    """The factory raised, or returned something the pack cannot run."""


class NormCallError(HarnessError):
    """The norm under test raised on a valid input (named in the message)."""


class NormTimeoutError(HarnessError, TimeoutError):
    """The norm under test did not return within the per-call timeout."""


class NondeterministicNormError(HarnessError, ValueError):
    """The same input, run twice, gave outputs further apart than the forward error bound allows."""


class CompiledFallbackError(HarnessError):
    """torch.compile was asked for, but the calls did not all run compiled code."""


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc`` as text (what the ERROR verdict shows)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def call_with_timeout(fn: Callable[[], T], timeout: float | None, *, what: str) -> T:
    """Run ``fn()`` and return its result, or raise NormTimeoutError after ``timeout`` seconds.

    ``timeout`` None runs ``fn`` in the calling thread. Exceptions of ``fn`` propagate
    unchanged. Thread-local state (e.g. ``torch.no_grad``) must be entered inside ``fn``.

    Raises:
        NormTimeoutError: ``fn`` had not returned after ``timeout`` seconds ("``what`` did not
            return within T s").
    """
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            box["error"] = exc

    worker = threading.Thread(target=work, name="deadir-norm-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise NormTimeoutError(f"{what} did not return within {timeout:g} s (--timeout)")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
