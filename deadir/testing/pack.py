"""The deadir test pack: every property a norm of an expected kind must satisfy, fuzzed with Hypothesis.

:func:`run_pack` takes a *factory* (a callable d -> torch module or callable), draws d, γ,
β, ε and inputs with the strategies of :mod:`deadir.testing.strategies`, writes γ, β and ε
into the module when it has ``.weight`` / ``.bias`` / ``eps`` (or ``variance_epsilon``),
and runs each property of the expected kind as its own Hypothesis search. A failing
property comes back with Hypothesis's shrunk counterexample (the γ, β, x and measured
value against its bound); the pack never stops at the first failure, so a report says
which properties caught a broken norm.

Properties by expected kind:

* "mean-centring": T1 hyperplane, T2 kernel, T8 shift invariance, reference (when the
  float64 reference is known: see :func:`~deadir.testing.assertions.reference_spec_for`).
* "rms": T5 no kernel, reference.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from deadir.errors import InputShapeError
from deadir.norms import NormSpec
from deadir.report import render_table
from deadir.testing.assertions import (
    Measurement,
    NormPropertyError,
    PreparedNorm,
    UndefinedOutputError,
    check_hyperplane,
    check_kernel,
    check_no_kernel,
    check_reference,
    check_shift,
    prepare_norm,
    reference_spec_for,
)
from deadir.testing.strategies import activations, betas, dims, dtype_name, epsilons, gammas

__all__ = ["EXPECTATIONS", "PROPERTIES", "PackReport", "PropertyOutcome", "load_factory", "run_pack"]

EXPECTATIONS = ("mean-centring", "rms")
PROPERTIES: dict[str, tuple[str, ...]] = {
    "mean-centring": ("T1 hyperplane", "T2 kernel", "T8 shift invariance", "reference"),
    "rms": ("T5 no kernel", "reference"),
}
Factory = Callable[[int], Any]


@dataclasses.dataclass
class PropertyOutcome:
    """One property's search: examples run, whether it failed, the worst measured/bound ratio seen.

    ``counterexample`` is the readable shrunk counterexample when it failed, ``skipped``
    says why a property could not run (e.g. no known reference).
    """

    name: str
    examples: int = 0
    failures: int = 0
    max_ratio: float = 0.0
    counterexample: str | None = None
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        """True when the property ran and never failed."""
        return self.failures == 0 and self.skipped is None


@dataclasses.dataclass
class PackReport:
    """The outcome of :func:`run_pack` on one factory."""

    factory: str
    expect: str
    dtype: str
    outcomes: list[PropertyOutcome]

    @property
    def passed(self) -> bool:
        """True when no property failed (skipped properties do not fail the pack)."""
        return all(o.failures == 0 for o in self.outcomes)

    @property
    def caught_by(self) -> list[str]:
        """Names of the properties that failed."""
        return [o.name for o in self.outcomes if o.failures]

    def render(self) -> str:
        """A table of the properties, then the counterexample of each failure."""
        rows = [(o.name, "skipped" if o.skipped else ("FAIL" if o.failures else "pass"), o.examples,
                 o.max_ratio if o.examples else None) for o in self.outcomes]
        text = render_table(("property", "result", "examples", "max measured/bound"), rows,
                            title=f"deadir check-norm {self.factory} (expect {self.expect}, {self.dtype})")
        for o in self.outcomes:
            if o.skipped:
                text += f"\n\n{o.name}: skipped ({o.skipped})"
            if o.counterexample:
                text += f"\n\n{o.name} counterexample (shrunk by Hypothesis):\n{o.counterexample}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"factory": self.factory, "expect": self.expect, "dtype": self.dtype, "passed": self.passed,
                "properties": [dataclasses.asdict(o) for o in self.outcomes]}


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


def _check(prop: str, prep: PreparedNorm, x: np.ndarray, t: np.ndarray, expect: str, module: Any) -> Measurement:
    if prop == "T1 hyperplane":
        return check_hyperplane(prep, x)
    if prop == "T2 kernel":
        return check_kernel(prep, x)
    if prop == "T8 shift invariance":
        return check_shift(prep, x, t)
    if prop == "T5 no kernel":
        return check_no_kernel(prep)
    spec = reference_spec_for(module, expect)
    if spec is None:
        raise InputShapeError(f"norm: no float64 reference known for {type(module).__name__}")
    # the reference uses the ε the pack drew and wrote into the module
    return check_reference(prep, spec if prep.eps is None else dataclasses.replace(spec, eps=prep.eps), x)


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
) -> PackReport:
    """Fuzz ``factory`` (d -> torch module or callable) against the properties of ``expect``.

    Args:
        factory: the callable, or "package.module:factory" to import.
        expect: "mean-centring" (LayerNorm-like) or "rms" (RMSNorm-like).
        dtype: the dtype the module is cast to and inputs are rounded to.
        max_examples: Hypothesis examples per property.
        max_d: the largest hidden size drawn (2 … max_d).
        seed: Hypothesis seed; None runs derandomized (the same examples every run).
        weight_offset: γ = weight + offset (1.0 for Gemma-style (1 + w)); None = from
            NormSpec.from_module when the class is known, else 0.
        properties: a subset of PROPERTIES[expect] to run.
        hypothesis_settings: full control over the search (overrides max_examples).
        shrink: shrink a counterexample (True) or report the first one found (faster).

    Returns:
        PackReport; ``passed`` is False when any property found a counterexample.

    Raises:
        InputShapeError: unknown expect/property/dtype, bad limits, or a factory that cannot be loaded.
    """
    name = factory if isinstance(factory, str) else getattr(factory, "__qualname__", repr(factory))
    fn = load_factory(factory) if isinstance(factory, str) else factory
    if not callable(fn):
        raise InputShapeError(f"factory: expected a callable d -> norm, got {type(fn).__name__}")
    if expect not in EXPECTATIONS:
        raise InputShapeError(f"expect: must be one of {EXPECTATIONS}, got {expect!r}")
    props = tuple(properties) if properties is not None else PROPERTIES[expect]
    unknown = [p for p in props if p not in PROPERTIES[expect]]
    if unknown:
        raise InputShapeError(f"properties: {unknown} are not properties of {expect!r}: {PROPERTIES[expect]}")
    if not (isinstance(max_examples, int) and max_examples >= 1):
        raise InputShapeError(f"max_examples: must be a positive integer, got {max_examples!r}")
    if not (isinstance(max_d, int) and 2 <= max_d <= 4096):
        raise InputShapeError(f"max_d: must be an integer in [2, 4096], got {max_d!r}")
    dt = dtype_name(dtype)
    base = hypothesis_settings or settings(
        max_examples=max_examples,
        derandomize=seed is None,
        database=None,
        deadline=None,  # a first torch call is slow; speed is never a property
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        phases=[Phase.explicit, Phase.generate, Phase.target] + ([Phase.shrink] if shrink else []),
    )
    report = PackReport(name, expect, dt, [])
    for prop in props:
        report.outcomes.append(_run_property(prop, fn, expect, dt, max_d, base, seed, weight_offset))
    return report


def _takes_parameters(norm: Any) -> bool:
    """Whether the pack can write the drawn γ, β and ε into ``norm`` (a torch module or a NormSpec)."""
    import torch

    return isinstance(norm, (torch.nn.Module, NormSpec))


def _run_property(prop: str, fn: Factory, expect: str, dt: str, max_d: int, base: settings, seed: int | None,
                  weight_offset: float | None) -> PropertyOutcome:
    outcome = PropertyOutcome(prop)
    if prop == "reference" and reference_spec_for(fn(2), expect) is None:
        outcome.skipped = "no float64 reference known for this norm: register its class with deadir.register_norm_class"
        return outcome

    @settings(base)
    @given(data=st.data())
    def search(data: Any) -> None:
        d = data.draw(dims(min_value=2, max_value=max_d), label="d")
        module = fn(d)
        gamma = data.draw(gammas(d, dtype=dt), label="gamma")
        beta = data.draw(betas(d, dtype=dt), label="beta")
        eps = data.draw(epsilons(), label="eps")
        # T2 measures a covariance: fewer than 2 rows would pass vacuously
        x = data.draw(activations(d, dtype=dt, min_rows=2 if prop == "T2 kernel" else 1, max_elements=2**14),
                      label="x")
        t = data.draw(st.floats(-64.0, 64.0, allow_nan=False), label="shift (units of max|x|)")
        if _takes_parameters(module):
            prep = prepare_norm(module, d, gamma=gamma, beta=beta, eps=eps, dtype=dt, weight_offset=weight_offset)
        else:  # a plain callable applies no γ, β or ε of ours: declaring them would misstate its algebra
            prep = prepare_norm(module, d, dtype=dt, weight_offset=weight_offset)
        try:
            m = _check(prop, prep, x, np.full(x.shape[0], t * max(1.0, float(np.max(np.abs(x))))), expect, module)
        except UndefinedOutputError:
            reject()  # every row constant with ε = 0: the norm's output is undefined, not wrong
        except NormPropertyError:
            outcome.examples += 1  # decided: failed (Hypothesis's shrinking decides more of them)
            raise
        outcome.examples += 1  # decided: passed (undefined and inconclusive examples are not counted)
        if math.isfinite(m.ratio):
            outcome.max_ratio = max(outcome.max_ratio, m.ratio)

    search_fn = search if seed is None else hypothesis_seed(seed)(search)
    try:
        search_fn()
    except NormPropertyError as exc:
        outcome.failures = 1
        outcome.counterexample = exc.render()
        if exc.bound > 0 and math.isfinite(exc.measured / exc.bound):
            outcome.max_ratio = max(outcome.max_ratio, exc.measured / exc.bound)
    except Exception as exc:  # the norm crashed: that is a failure too, reported as such
        outcome.failures = 1
        outcome.counterexample = f"{type(exc).__name__}: {exc}"
    return outcome
