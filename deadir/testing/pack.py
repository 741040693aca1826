"""The deadir test pack: fuzz a norm against the algebra of its expected kind, with three verdicts.

:func:`run_pack` takes a *factory* (a callable d -> norm of any framework the adapters
drive), draws d, γ (or w of a (1 + w) scale), β, ε and inputs with
:mod:`deadir.testing.strategies`, binds them into the norm through
:mod:`deadir.testing.adapters`, and runs each property as its own Hypothesis search.

Verdicts (DESIGN.md §4):

* PASS — every property held within a tolerance that covers every correct implementation
  (:mod:`deadir.testing.tolerance`).
* FAIL — a counterexample of the algebra. Every distinct failure Hypothesis finds is
  reported, each shrunk (γ, β, x, ε, dtype).
* ERROR (exit code 2) — the factory, the norm's call (raised, timed out, not deterministic,
  torch.compile fell back to eager) or the harness failed; the traceback is kept. deadir's
  own rejection of a drawn input (a zero effective scale, DegenerateScaleError) is never
  counted against the norm: the example is discarded.

Properties by expected kind — the algebra: "mean-centring" T1 hyperplane, T2 kernel, T8
shift invariance; "group-centring" the same per group (T9); "rms" T5 no kernel. Separately,
"reference" compares with a float64 formula chosen by ``reference`` (auto: the class's own,
when deadir knows the class).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure, Unsatisfiable

from deadir.errors import DeadirError, DegenerateScaleError, InputShapeError
from deadir.norms import NormSpec
from deadir.precision import UNIT_ROUNDOFF
from deadir.report import render_table
from deadir.testing.adapters import DriveOptions, bind_norm
from deadir.testing.assertions import NormPropertyError, PreparedNorm, UndefinedOutputError
from deadir.testing.checks import CHECKS, Example, shifts
from deadir.testing.harness import (
    DEFAULT_TIMEOUT,
    CompiledFallbackError,
    FactoryError,
    HarnessError,
    NondeterministicNormError,
    format_exception,
)
from deadir.testing.strategies import activations, betas, dims, dtype_name, epsilons, gammas

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - Hypothesis depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["EXPECTATIONS", "PROPERTIES", "REFERENCES", "VERDICTS", "PackReport", "PropertyOutcome", "load_factory",
           "run_pack"]

EXPECTATIONS = ("mean-centring", "group-centring", "rms")
PROPERTIES: dict[str, tuple[str, ...]] = {
    "mean-centring": ("T1 hyperplane", "T2 kernel", "T8 shift invariance", "reference"),
    "group-centring": ("T1 hyperplane", "T2 kernel", "T8 shift invariance", "reference"),
    "rms": ("T5 no kernel", "reference"),
}
REFERENCES = ("auto", "layernorm", "rmsnorm", "groupnorm", "none")
VERDICTS = ("PASS", "FAIL", "ERROR")
EXIT_CODES = {"PASS": 0, "FAIL": 1, "ERROR": 2}
Factory = Callable[[int], Any]


class _Abort(BaseException):
    """Stops a Hypothesis search at once (no shrinking: the norm is not called again) on an ERROR."""


@dataclasses.dataclass
class PropertyOutcome:
    """One property's search.

    Attributes:
        name: the property.
        examples: decided examples (passed or failed; undefined and degenerate inputs are not counted).
        failures: distinct counterexamples found (0 when it held).
        max_ratio: worst measured/bound seen (≤ 1 passes).
        counterexamples: each distinct failure, shrunk, as text.
        skipped: why the property did not run (e.g. no reference formula known), else None.
        error: the ERROR message when the norm or harness failed, else None; ``details`` its traceback.
        found: the shrunk failures themselves (γ, β, x, ε, dtype as arrays), for diagnosis; not in ``to_dict``.
    """

    name: str
    examples: int = 0
    failures: int = 0
    max_ratio: float = 0.0
    counterexamples: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    details: str = ""
    found: list[NormPropertyError] = dataclasses.field(default_factory=list, repr=False, compare=False)

    @property
    def counterexample(self) -> str | None:
        """The first counterexample (kept for callers of the one-failure API)."""
        return self.counterexamples[0] if self.counterexamples else None

    @property
    def verdict(self) -> str:
        """"ERROR", "FAIL", "PASS", or "skipped"."""
        if self.error is not None:
            return "ERROR"
        if self.failures:
            return "FAIL"
        return "skipped" if self.skipped is not None else "PASS"

    @property
    def passed(self) -> bool:
        """True when the property ran and held."""
        return self.verdict == "PASS"


@dataclasses.dataclass
class PackReport:
    """The outcome of :func:`run_pack` on one factory."""

    factory: str
    expect: str
    dtype: str
    outcomes: list[PropertyOutcome]
    notes: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    details: str = ""

    @property
    def verdict(self) -> str:
        """ERROR when the factory or harness failed anywhere, else FAIL when any property failed, else PASS."""
        if self.error is not None or any(o.error is not None for o in self.outcomes):
            return "ERROR"
        return "FAIL" if any(o.failures for o in self.outcomes) else "PASS"

    @property
    def exit_code(self) -> int:
        """0 PASS, 1 FAIL, 2 ERROR."""
        return EXIT_CODES[self.verdict]

    @property
    def passed(self) -> bool:
        """True for PASS (no property failed and nothing errored; skipped properties do not fail)."""
        return self.verdict == "PASS"

    @property
    def caught_by(self) -> list[str]:
        """Names of the properties that failed."""
        return [o.name for o in self.outcomes if o.failures]

    def render(self) -> str:
        """Verdict, a table of the properties, notes, each counterexample, and the error with its traceback."""
        rows = [(o.name, o.verdict, o.examples, o.max_ratio if o.examples else None) for o in self.outcomes]
        text = render_table(("property", "result", "examples", "max measured/bound"), rows,
                            title=f"deadir check-norm {self.factory} (expect {self.expect}, {self.dtype}): "
                                  f"{self.verdict}")
        for note in self.notes:
            text += f"\nnote: {note}"
        for o in self.outcomes:
            if o.skipped:
                text += f"\n\n{o.name}: not run ({o.skipped})"
            for i, ce in enumerate(o.counterexamples, 1):
                label = f" {i} of {len(o.counterexamples)}" if len(o.counterexamples) > 1 else ""
                text += f"\n\n{o.name} counterexample{label} (shrunk by Hypothesis):\n{ce}"
            if o.error:
                text += f"\n\n{o.name}: ERROR: {o.error}" + (f"\n{o.details}" if o.details else "")
        if self.error:
            text += f"\n\nERROR: {self.error}" + (f"\n{self.details}" if self.details else "")
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        props = []
        for o in self.outcomes:
            entry = {f.name: getattr(o, f.name) for f in dataclasses.fields(o) if f.name != "found"}
            entry["counterexamples"] = list(o.counterexamples)
            entry["verdict"] = o.verdict
            props.append(entry)
        return {"factory": self.factory, "expect": self.expect, "dtype": self.dtype, "verdict": self.verdict,
                "passed": self.passed, "notes": self.notes, "error": self.error, "details": self.details,
                "properties": props}


def load_factory(target: str) -> Factory:
    """Import ``package.module:attribute`` and return the callable it names.

    Raises:
        InputShapeError: malformed target, module or attribute missing, or not callable.
    """
    if not isinstance(target, str) or target.count(":") != 1:
        raise InputShapeError(f"factory: expected 'package.module:factory', got {target!r}")
    mod_name, attr = target.split(":")
    if not mod_name or not attr:
        raise InputShapeError(f"factory: expected 'package.module:factory', got {target!r}")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InputShapeError(f"factory: cannot import module {mod_name!r} ({exc})") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputShapeError(f"factory: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputShapeError(f"factory: {target!r} is not callable")
    factory: Factory = obj
    return factory


@dataclasses.dataclass
class _State:
    """What one pack run shares between properties: the factory's products per d, the first ERROR."""

    fn: Factory
    options: DriveOptions
    norms: dict[int, Any] = dataclasses.field(default_factory=dict)
    error: HarnessError | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def norm(self, d: int) -> Any:
        if d not in self.norms:
            try:
                self.norms[d] = self.fn(d)
            except Exception as exc:
                raise FactoryError(f"the factory raised {type(exc).__name__}: {exc} (d={d})",
                                   details=format_exception(exc)) from exc
        return self.norms[d]


def run_pack(
    factory: Factory | str,
    *,
    expect: str = "mean-centring",
    dtype: Any = "float32",
    max_examples: int = 50,
    max_d: int = 64,
    seed: int | None = None,
    weight_offset: float | None = None,
    properties: Sequence[str] | None = None,
    hypothesis_settings: settings | None = None,
    shrink: bool = True,
    reference: str = "auto",
    eps: float | None = None,
    d: int | None = None,
    conditioned: bool = False,
    options: DriveOptions | None = None,
    **drive: Any,
) -> PackReport:
    """Fuzz ``factory`` (d -> norm) against the properties of ``expect``; see the module docstring.

    Args:
        factory: the callable, or "package.module:factory" to import.
        expect: "mean-centring", "group-centring" or "rms".
        dtype: the dtype inputs and parameters are stored in and the norm runs in.
        max_examples: Hypothesis examples per property.
        max_d: the largest hidden size drawn (2 … max_d).
        seed: Hypothesis seed; None runs derandomized (the same examples every run).
        weight_offset: γ = weight + offset; w is drawn directly (1.0 for Gemma-style (1 + w)).
        properties: a subset of PROPERTIES[expect].
        hypothesis_settings: full control over the search (overrides max_examples).
        shrink: shrink counterexamples (True) or report the first found (faster).
        reference: the float64 formula "reference" compares with: auto (the class's own when
            deadir knows the class), layernorm, rmsnorm, groupnorm, none (not run).
        eps: declared ε of a norm whose ε the pack cannot write (used by "reference").
        d: a fixed normalised size (default: drawn; fixed to max_d with compile, or by normalized_shape).
        conditioned: the norm is called as norm(x, cond) and reads γ(cond), β(cond) per row through
            ``deadir_affine`` (:mod:`deadir.testing.conditioned`); properties T1 and T8, row by row.
        options: how to drive the norm (:class:`~deadir.testing.adapters.DriveOptions`); keyword
            arguments ``**drive`` set its fields instead (framework, gamma_attr, compile, timeout, ...).

    Returns:
        PackReport: ``verdict`` PASS / FAIL / ERROR and ``exit_code`` 0 / 1 / 2.

    Raises:
        InputShapeError: unknown expect/property/reference/dtype, bad limits, or a factory that cannot be loaded.
    """
    name = factory if isinstance(factory, str) else getattr(factory, "__qualname__", repr(factory))
    fn = load_factory(factory) if isinstance(factory, str) else factory
    if not callable(fn):
        raise InputShapeError(f"factory: expected a callable d -> norm, got {type(fn).__name__}")
    if expect not in EXPECTATIONS:
        raise InputShapeError(f"expect: must be one of {EXPECTATIONS}, got {expect!r}")
    if reference not in REFERENCES:
        raise InputShapeError(f"reference: must be one of {REFERENCES}, got {reference!r}")
    from deadir.testing.conditioned import CONDITIONED_PROPERTIES

    allowed = CONDITIONED_PROPERTIES if conditioned else PROPERTIES[expect]
    if conditioned and expect != "mean-centring":
        raise InputShapeError("conditioned: only mean-centring conditioned norms (adaptive LayerNorm) are supported")
    props = tuple(properties) if properties is not None else allowed
    unknown = [p for p in props if p not in allowed]
    if unknown:
        raise InputShapeError(f"properties: {unknown} are not properties of {expect!r}"
                              f"{' (conditioned)' if conditioned else ''}: {allowed}")
    if not (isinstance(max_examples, int) and max_examples >= 1):
        raise InputShapeError(f"max_examples: must be a positive integer, got {max_examples!r}")
    if not (isinstance(max_d, int) and 2 <= max_d <= 4096):
        raise InputShapeError(f"max_d: must be an integer in [2, 4096], got {max_d!r}")
    if eps is not None and not (math.isfinite(eps) and eps >= 0):
        raise InputShapeError(f"eps: must be finite and ≥ 0, got {eps!r}")
    if options is None:
        drive.setdefault("timeout", DEFAULT_TIMEOUT)
        options = DriveOptions(weight_offset=weight_offset, **drive)
    elif drive or weight_offset is not None:
        raise InputShapeError("options: give DriveOptions or keyword options, not both")
    fixed_d = d
    if options.normalized_shape is not None:
        fixed_d = int(np.prod(options.normalized_shape))
    elif options.compile and fixed_d is None:
        fixed_d = max_d  # one module, compiled once: d cannot change between calls
    if fixed_d is not None and not (isinstance(fixed_d, int) and 2 <= fixed_d <= 4096):
        raise InputShapeError(f"d: must be an integer in [2, 4096], got {fixed_d!r}")
    dt = dtype_name(dtype)
    if options.compute_dtype is not None:
        dtype_name(options.compute_dtype)  # validates
    base = hypothesis_settings or settings(
        max_examples=max_examples,
        derandomize=seed is None,
        database=None,
        deadline=None,  # the per-call timeout guards against hangs; speed is never a property
        print_blob=False,
        report_multiple_bugs=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        phases=[Phase.explicit, Phase.generate, Phase.target] + ([Phase.shrink] if shrink else []),
    )
    state = _State(fn, options)
    report = PackReport(name, expect, dt, [])
    if options.compute_dtype is not None:
        report.notes.append(f"declared compute dtype {dtype_name(options.compute_dtype)}: inputs are drawn in it and "
                            f"judged at its rounding bound")
    if options.compile:
        report.notes.append(f"torch.compile(dynamic=True) once at d={fixed_d}; eps is the module's own (not drawn)")
    for prop in props:
        if state.error is not None:  # the norm already failed to run: no further search
            report.outcomes.append(PropertyOutcome(prop, skipped="not run after an ERROR"))
            continue
        if conditioned:
            report.outcomes.append(_run_conditioned(prop, state, dt, max_d, fixed_d, base, seed))
            continue
        report.outcomes.append(_run_property(prop, state, expect, dt, max_d, fixed_d, base, seed, reference, eps))
    report.notes.extend(dict.fromkeys(state.notes))
    if options.compile and state.error is None:
        _check_compiled(state, report)
    return report


def _check_compiled(state: _State, report: PackReport) -> None:
    """ERROR unless every call of the compiled norm ran compiled code (dynamo's counters and our backend's)."""
    from torch._dynamo.utils import counters

    from deadir.testing.adapters.torch import CompileCounter

    counter: CompileCounter | None = None
    for norm in state.norms.values():
        cached = getattr(norm, "_deadir_compiled", None)
        if cached is not None:
            counter = cached[1]
    frames = dict(counters["frames"])
    if counter is None or counter.calls == 0:
        err = CompiledFallbackError("torch.compile: the compiled norm was never called")
    elif counter.compiled_calls < counter.calls:
        err = CompiledFallbackError(
            f"torch.compile: compiled code ran in only {counter.compiled_calls} of {counter.calls} calls "
            f"(dynamo fell back to eager; dynamo frames {frames}, graphs compiled {counter.graphs}): the verdict "
            "would be about eager PyTorch")
    else:
        report.notes.append(f"torch.compile: compiled code ran in all {counter.calls} calls "
                            f"({counter.graphs} graph(s) compiled; dynamo frames {frames})")
        return
    report.error, report.details = str(err), err.details


def _reference_spec(prep: PreparedNorm, norm: Any, reference: str, eps: float | None) -> tuple[NormSpec | None, str]:
    """The float64 spec "reference" compares with, or (None, why not)."""
    spec_eps = prep.eps if prep.eps is not None else eps
    kind = reference
    groups = prep.groups
    if reference == "auto" and prep.reference_kind is not None:
        kind = prep.reference_kind
    elif reference == "auto":
        try:
            known = NormSpec.from_module(norm) if not isinstance(norm, NormSpec) else norm
        except (DeadirError, AttributeError, TypeError):
            known = None
        if known is None:
            return None, (f"no reference formula known for {type(norm).__name__}: pass --reference "
                          "layernorm|rmsnorm|groupnorm")
        kind, groups = known.kind, known.groups
        spec_eps = prep.eps if prep.eps is not None else known.eps
    if spec_eps is None:
        return None, "the norm's eps is unknown (no eps attribute): pass --eps or --eps-attr"
    if kind not in ("layernorm", "rmsnorm", "groupnorm"):
        return None, f"no float64 reference for kind {kind!r}"
    return NormSpec(kind, np.ones(prep.d), None, float(spec_eps), weight_offset=0.0,  # type: ignore[arg-type]
                    groups=groups if kind == "groupnorm" else 1, source=f"reference {kind}"), ""


def _values_dtype(dt: str, options: DriveOptions) -> str:
    """Draw values representable in the coarser of the storage and declared compute dtype (the norm casts)."""
    if options.compute_dtype is None:
        return dt
    comp = dtype_name(options.compute_dtype)
    return comp if UNIT_ROUNDOFF[comp] > UNIT_ROUNDOFF[dt] else dt


def _run_property(prop: str, state: _State, expect: str, dt: str, max_d: int, fixed_d: int | None, base: settings,
                  seed: int | None, reference: str, eps_declared: float | None) -> PropertyOutcome:
    outcome = PropertyOutcome(prop)
    if prop == "reference" and reference == "none":
        outcome.skipped = "--reference none"
        return outcome
    options = state.options
    vdt = _values_dtype(dt, options)
    check = CHECKS[prop]
    skip_reason: list[str] = []

    @settings(base)
    @given(data=st.data())
    def search(data: Any) -> None:
        if state.error is not None:
            raise _Abort
        d = fixed_d if fixed_d is not None else data.draw(dims(min_value=2, max_value=max_d), label="d")
        weight = data.draw(gammas(d, dtype=vdt), label="weight (gamma - offset)")
        beta = data.draw(betas(d, dtype=vdt), label="beta")
        eps = data.draw(epsilons(), label="eps")
        x = data.draw(activations(d, dtype=vdt, min_rows=2 if prop == "T2 kernel" else 1, max_elements=2**14),
                      label="x")
        t = data.draw(st.floats(-64.0, 64.0, allow_nan=False), label="shift (units of max|x|)")

        def example() -> Any:
            norm = state.norm(d)
            prep = bind_norm(norm, d, weight=weight, beta=beta, eps=eps, dtype=dt, options=options)
            state.notes.extend(prep.notes)
            if np.any(prep.gamma == 0) or not np.all(np.isfinite(prep.gamma)):
                reject()  # w + offset is 0: a degenerate scale of deadir's drawing, never the norm's fault
            spec = None
            if prop == "reference":
                spec, why = _reference_spec(prep, norm, reference, eps_declared)
                if spec is None:
                    skip_reason.append(why)
                    raise _Abort
            return check(prep, Example(x, shifts(x, t)), spec)

        _decide(example, outcome, state)

    _search(search, seed, outcome, state)
    if skip_reason:  # the reference could not be set up: the property did not run (not an ERROR of the norm)
        outcome.skipped = skip_reason[0]
    return outcome


def _run_conditioned(prop: str, state: _State, dt: str, max_d: int, fixed_d: int | None, base: settings,
                     seed: int | None) -> PropertyOutcome:
    """One property of a conditioned norm: x and a Gaussian condition drawn, checked row by row."""
    from deadir.testing.conditioned import check_conditioned

    outcome = PropertyOutcome(prop)
    options = state.options
    vdt = _values_dtype(dt, options)

    @settings(base)
    @given(data=st.data())
    def search(data: Any) -> None:
        if state.error is not None:
            raise _Abort
        d = fixed_d if fixed_d is not None else data.draw(dims(min_value=2, max_value=max_d), label="d")
        x = data.draw(activations(d, dtype=vdt, max_elements=2**12), label="x")
        cond_scale = data.draw(st.sampled_from([0.0, 0.1, 1.0, 10.0]), label="cond scale")
        cond_seed = data.draw(st.integers(0, 2**32 - 1), label="cond seed")
        t = data.draw(st.floats(-64.0, 64.0, allow_nan=False), label="shift (units of max|x|)")

        def example() -> Any:
            norm = state.norm(d)
            c = int(getattr(norm, "deadir_cond_dim", 0))
            if c < 1 or not callable(getattr(norm, "deadir_affine", None)):
                raise FactoryError(f"conditioned: {type(norm).__name__} must provide deadir_affine(cond) and "
                                   "deadir_cond_dim (see deadir.testing.conditioned)")
            cond = np.random.default_rng(cond_seed).standard_normal((x.shape[0], c)) * cond_scale
            return check_conditioned(prop, norm, x, cond, shifts(x, t), dtype=dt,
                                     compute_dtype=options.compute_dtype, timeout=options.timeout)

        _decide(example, outcome, state)

    _search(search, seed, outcome, state)
    return outcome


def _decide(example: Callable[[], Any], outcome: PropertyOutcome, state: _State) -> None:
    """Run one drawn example and sort it: passed, failed (re-raised for Hypothesis), discarded, or an ERROR.

    Undefined outputs and deadir's own rejection of a degenerate drawn scale are discarded (never
    the norm's fault); a harness or deadir error records the run's ERROR and stops the search.
    """
    try:
        m = example()
    except (UndefinedOutputError, DegenerateScaleError):
        reject()  # undefined output, or a zero scale deadir itself rejects: not the norm's fault
    except NormPropertyError:
        outcome.examples += 1  # decided: failed
        raise
    except HarnessError as exc:
        state.error = exc
        raise _Abort from exc
    except DeadirError as exc:
        state.error = HarnessError(f"{type(exc).__name__}: {exc}", details=format_exception(exc))
        raise _Abort from exc
    outcome.examples += 1  # decided: passed
    if math.isfinite(m.ratio):
        outcome.max_ratio = max(outcome.max_ratio, m.ratio)


def _search(search: Callable[[], None], seed: int | None, outcome: PropertyOutcome, state: _State) -> None:
    """Run a Hypothesis search and sort what it raised into counterexamples and ERRORs."""
    search_fn = search if seed is None else hypothesis_seed(seed)(search)
    try:
        search_fn()
    except _Abort:
        pass
    except FlakyFailure as exc:
        state.error = state.error or NondeterministicNormError(
            f"norm is not deterministic: a failure did not reproduce on the same input ({exc})",
            details=format_exception(exc))
    except Unsatisfiable as exc:
        outcome.error = f"no example could be decided: every drawn input was undefined or degenerate ({exc})"
    except BaseExceptionGroup as group:
        _collect(outcome, group, state)
    except NormPropertyError as exc:
        _collect(outcome, BaseExceptionGroup("one failure", [exc]), state)
    except Exception as exc:  # the harness itself: ERROR with its traceback
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.details = format_exception(exc)
    if state.error is not None and outcome.error is None:
        outcome.error = str(state.error)
        outcome.details = state.error.details


def _collect(outcome: PropertyOutcome, group: BaseExceptionGroup[Any], state: _State) -> None:
    """Every distinct failure of a Hypothesis run: counterexamples, or the first non-algebra error as ERROR."""
    for exc in _leaves(group):
        if isinstance(exc, NormPropertyError):
            outcome.counterexamples.append(exc.render())
            outcome.found.append(exc)
            if exc.bound > 0 and math.isfinite(exc.measured / exc.bound):
                outcome.max_ratio = max(outcome.max_ratio, exc.measured / exc.bound)
        elif outcome.error is None:
            outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.details = format_exception(exc)
    outcome.failures = len(outcome.counterexamples)


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
