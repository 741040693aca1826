"""Shared machinery of the proof modules: named steps checked by SymPy, and their results.

A proof is a list of :class:`Step` objects. Each step names a SymPy expression and what the
text says it equals (usually 0); :class:`Derivation` simplifies it and records one of

* ``proved``    -- SymPy simplified the claim to an identity (the method is recorded);
* ``refuted``   -- SymPy did not, and an exact-rational substitution of the free symbols,
  evaluated with mpmath to 50 significant digits, gives a non-zero value (the witness is
  recorded): the claim is false;
* ``undecided`` -- neither (the step is reported, never silently accepted);
* ``cited``     -- a standard lemma used without machine check, listed as such;
* ``checked``   -- a numerical comparison (floating point, a measured value, a library call)
  that held. It is reported as "checked numerically" and never counts as proof.

A theorem is PROVED when no step is refuted or undecided and at least one step is a symbolic
identity; its checked steps are supplementary (listed, not counted). A negative control or a
statement mutant is the same derivation code run on a false variant or a false edit of the
statement; it is REJECTED when it is not proved (at least one step refuted or undecided).
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sympy as sp

PROVED = "proved"
REFUTED = "refuted"
UNDECIDED = "undecided"
CITED = "cited"
CHECKED = "checked"


@dataclass
class Step:
    """One named claim and how SymPy settled it."""

    name: str
    text: str
    latex: str
    status: str
    method: str
    witness: str | None = None
    cases: int = 1
    seconds: float = 0.0
    # Every instance of a family (label, the exact expression claimed to be 0), in full.
    instances: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ProofResult:
    """The outcome of one theorem derivation or one negative control."""

    theorem: str
    title: str
    statement: str
    hypotheses: list[str]
    covered: str
    steps: list[Step]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    control: str | None = None  # name of the negative control, None for the theorem itself
    mutant: str | None = None  # the statement edit, for a statement mutant

    @property
    def proved(self) -> bool:
        """True when every symbolic step is proved (cited lemmas and numerical checks aside) and one exists."""
        symbolic = [s for s in self.steps if s.status not in (CITED, CHECKED)]
        return bool(symbolic) and all(s.status == PROVED for s in symbolic)

    @property
    def status(self) -> str:
        """"proved", "checked" (only numerical evidence held) or "failed"."""
        if self.proved:
            return PROVED
        if any(s.status in (REFUTED, UNDECIDED) for s in self.steps):
            return "failed"
        return CHECKED if any(s.status == CHECKED for s in self.steps) else "failed"

    @property
    def refuted(self) -> bool:
        """True when at least one step was shown false by an explicit witness."""
        return any(s.status == REFUTED for s in self.steps)

    @property
    def verdict(self) -> str:
        """PROVED / NOT PROVED for a theorem, REJECTED / ACCEPTED for a negative control."""
        if self.control is None and self.mutant is None:
            return "PROVED" if self.proved else "NOT PROVED"
        return "REJECTED" if self.refuted else "ACCEPTED"

    @property
    def ok(self) -> bool:
        """Whether this result is what the suite needs (theorem proved, control or mutant refuted)."""
        return self.proved if self.control is None and self.mutant is None else self.refuted


def latex_of(expr: sp.Basic | str) -> str:
    """LaTeX of an expression, in full (certificates never elide)."""
    if isinstance(expr, str):
        return expr
    return str(sp.latex(expr))


def _canonical_sums(expr: sp.Basic) -> sp.Basic:
    """Rename the dummy indices of every innermost Sum to fixed symbols, canonically.

    SymPy does not identify Sum(x[i], (i,1,d)) with Sum(x[j], (j,1,d)); after this they are
    the same object, so linear combinations of sums cancel. A single index becomes ``_k``; the
    n indices of a multi-index sum become ``_k1.._kn`` in the order (over all n! orders, n ≤ 4)
    that gives the smallest printed form, so Σ_{j,l} x_{l,j} and Σ_{l,p} x_{l,p} coincide.
    Renaming bound indices is always sound; reordering them needs independent bounds, which
    every sum in these proofs has (bounds 1..d or 1..m).
    """
    canon = sp.Symbol("_k", integer=True)

    def rename(s: sp.Sum) -> sp.Sum:
        if len(s.limits) == 1:
            ((var, lo, hi),) = s.limits
            return sp.Sum(s.function.xreplace({var: canon}), (canon, lo, hi))
        dummies = [lim[0] for lim in s.limits]
        if len(dummies) > 4 or any(lim[1].has(*dummies) or lim[2].has(*dummies) for lim in s.limits):
            return s
        names = [sp.Symbol(f"_k{t + 1}", integer=True) for t in range(len(dummies))]
        best: sp.Sum | None = None
        for order in itertools.permutations(s.limits):
            new = dict(zip([lim[0] for lim in order], names, strict=True))
            cand = sp.Sum(
                s.function.xreplace(new), *[(new[v], lo, hi) for v, lo, hi in order]
            )
            if best is None or sp.srepr(cand) < sp.srepr(best):
                best = cand
        assert best is not None
        return best

    return expr.replace(lambda q: isinstance(q, sp.Sum) and not q.function.has(sp.Sum), rename)


def _flatten_nested(s: sp.Sum) -> sp.Sum:
    """Σ_i c·Σ_l f = Σ_{i,l} c·f when c does not involve l (finite sums, independent bounds)."""
    factors = sp.Mul.make_args(s.function)
    inner = [t for t in factors if isinstance(t, sp.Sum)]
    if len(inner) != 1:
        return s
    rest = sp.Mul(*[t for t in factors if t is not inner[0]])
    if rest.free_symbols & {v for v, _, _ in inner[0].limits}:
        return s
    return sp.Sum(rest * inner[0].function, *inner[0].limits, *s.limits)


def _drop_constant_limits(s: sp.Sum) -> sp.Basic:
    """Σ_{l=a}^{b} f = (b − a + 1)·f for a summand f that does not involve l."""
    keep = [lim for lim in s.limits if lim[0] in s.function.free_symbols]
    count = sp.Mul(*[hi - lo + 1 for v, lo, hi in s.limits if v not in s.function.free_symbols])
    return count * (sp.Sum(s.function, *keep) if keep else s.function)


def _sum_normal_form(expr: sp.Basic) -> sp.Basic:
    """Normal form of a linear combination of (nested) finite sums with independent bounds.

    Expands summands, merges nested sums into multi-index sums, orders the indices (finite
    sums with independent bounds commute), removes indices the summand does not involve, and
    pulls constants out; equal sums then cancel.
    """
    e = sp.expand(expr)
    e = e.replace(lambda q: isinstance(q, sp.Sum), lambda q: sp.Sum(sp.expand(q.function), *q.limits))
    e = sp.expand(e)
    e = e.replace(lambda q: isinstance(q, sp.Sum), _flatten_nested)
    e = e.replace(
        lambda q: isinstance(q, sp.Sum) and len(q.limits) > 1,
        lambda q: sp.Sum(q.function, *sorted(q.limits, key=lambda t: str(t[0]))),
    )
    e = e.replace(lambda q: isinstance(q, sp.Sum), _drop_constant_limits)
    e = sp.expand(e.doit())
    e = e.replace(lambda q: isinstance(q, sp.Sum), lambda q: sp.factor_terms(q))
    return _canonical_sums(e)


def _linear_pass(expr: sp.Basic) -> sp.Basic:
    """One pass of linearity of Σ: expand, evaluate what can be evaluated, pull constants out, merge."""
    e = sp.expand(sp.expand(expr).doit())
    e = e.replace(lambda q: isinstance(q, sp.Sum), lambda q: sp.factor_terms(q))
    return _canonical_sums(e)


def _innermost_first(expr: sp.Basic) -> sp.Basic:
    """Simplify every Sum from the inside out: a summand that cancels to 0 makes its Sum 0.

    Each Sum's summand is brought to the linear normal form before the Sum itself is, so
    Σ_k w_k·(Σ_j f_kj) with Σ_j f_kj = 0 for every k becomes Σ_k w_k·0 = 0 ("a sum of zeros")
    without the product ever being expanded across the two sums. Only sound rewrites are used:
    expansion, evaluation of sums of constants, and renaming of bound indices.
    """
    if isinstance(expr, sp.Sum):
        # SymPy stores Σ_l Σ_j f as one Sum with limits (j, l), innermost first.
        inner = _innermost_first(expr.function)
        for limit in expr.limits:
            if inner == 0:
                return sp.Integer(0)
            inner = _linear_pass(sp.Sum(inner, limit))
            if inner != 0 and inner.has(sp.Sum):
                inner = _sum_normal_form(inner)
        return inner
    if not expr.args or not expr.has(sp.Sum):
        return expr
    return _linear_pass(expr.func(*[_innermost_first(a) for a in expr.args]))


def simplify_to_zero(expr: sp.Basic) -> tuple[bool, str]:
    """Try increasingly expensive exact simplifications; return (is_zero, method).

    Before the expensive general ``simplify`` a numeric probe runs: an exact rational point where
    the expression is provably non-zero settles the question (it is not identically 0) without
    asking SymPy to simplify, e.g., a trigonometric expression that is not an identity.
    """
    expr = sp.sympify(expr)
    if expr == 0:
        return True, "identically 0"
    if isinstance(expr, sp.MatrixBase):
        results = []
        for e in expr:
            ok, method = simplify_to_zero(e)
            results.append(method)
            if not ok:
                return False, "entrywise: " + method
        return True, "entrywise " + ", ".join(sorted(set(results)))
    if expr.has(sp.Sum):
        # Linearity of finite sums: expand, evaluate inner sums, pull constants out, merge; inner
        # sums first, so a product whose inner-sum factor is 0 is never expanded.
        if _innermost_first(expr) == 0:
            return True, "linearity and interchange of finite Σ, innermost sums first"
        # A witness (non-zero at a concrete size) settles a false claim before the costly expansions.
        if find_witness(expr) is not None:
            return False, "symbolic sums did not cancel"
        e = _linear_pass(expr)
        if e == 0:
            return True, "linearity of Σ (expand, doit, merge sums)"
        if _sum_normal_form(expr) == 0:
            return True, "linearity and interchange of finite Σ (multi-index normal form)"
        if sp.simplify(e) == 0:
            return True, "linearity of Σ + simplify"
        return False, "symbolic sums did not cancel"
    # Shallow first: radicands such as σ² + ε are shared objects and need no expansion.
    if sp.expand(expr, deep=False) == 0:
        return True, "expand"
    if sp.expand(expr) == 0:
        return True, "expand"
    if sp.expand(sp.together(sp.expand(expr))) == 0:
        return True, "together + expand"
    if find_witness(expr) is not None:
        return False, "not an identity (non-zero at a rational point)"
    if sp.simplify(expr) == 0:
        return True, "simplify"
    return False, "simplify did not reach 0"


def _value_for(sym: sp.Basic, rng: random.Random) -> sp.Rational:
    """A random non-zero rational respecting the symbol's sign assumptions."""
    num = rng.randint(1, 29)
    val = sp.Rational(num, rng.randint(2, 11))
    if getattr(sym, "is_positive", None) or getattr(sym, "is_nonnegative", None):
        return val
    return val if rng.random() < 0.5 else -val


def find_witness(expr: sp.Basic, *, tries: int = 4, seed: int = 0) -> tuple[str, float] | None:
    """Exact rational point where expr is provably non-zero, as (description, value), else None.

    Symbolic dimensions (integer symbols bounding a Sum, or integer symbols outside any index)
    are set to 3, 4, … (distinct), then to 7, 8, … and 13, 14, … (see WITNESS_SIZES) and the
    sums expanded; free indices (integer symbols indexing an IndexedBase) are set to 1.
    Values are evaluated by mpmath at 50 significant digits; |value| > 1e-20 counts.
    Results are cached: a refuted step asks twice (simplify_to_zero, then Derivation).
    """
    expr = sp.sympify(expr)
    if isinstance(expr, sp.MatrixBase):
        for e in expr:
            w = _find_witness(e, tries, seed)
            if w is not None:
                return w
        return None
    return _find_witness(expr, tries, seed)


# Symbolic dimensions are tried at these starting sizes (then +1, +2, … for further dimensions):
# small sizes first (cheap), then sizes past every concrete range used in the proofs (d ≤ 12), so a
# statement false only for large d is still refuted with an explicit instance.
WITNESS_SIZES = (3, 7, 13)


@functools.lru_cache(maxsize=256)
def _find_witness(expr: sp.Basic, tries: int, seed: int) -> tuple[str, float] | None:
    """find_witness for one scalar expression."""
    index_syms = {t for a in expr.atoms(sp.Indexed) for t in a.indices if isinstance(t, sp.Symbol)}
    dims = {hi for s in expr.atoms(sp.Sum) for (_, _, hi) in s.limits if isinstance(hi, sp.Symbol)}
    # An integer symbol that is neither a sum bound nor an index (d in a closed form) is a size too.
    dims |= {t for t in expr.free_symbols if isinstance(t, sp.Symbol) and t.is_integer and t not in index_syms}
    ordered = sorted(dims, key=str)
    if not ordered:
        return _witness_at(expr.doit() if expr.has(sp.Sum) else expr, tries, seed, "")
    for start in WITNESS_SIZES:
        # Distinct sizes so that sums over different ranges (1..d, 1..m) are not conflated.
        sizes = {dim: start + t for t, dim in enumerate(ordered)}
        inst = expr.subs(sizes).doit()
        # A free index (component i, sample k) is set to 1, inside every range, so the witness
        # is an entry of the concrete instance, not a fresh symbol γ_i.
        free_idx = sorted(
            {
                t
                for a in inst.atoms(sp.Indexed)
                for t in a.indices
                if isinstance(t, sp.Symbol) and t.is_integer and t in inst.free_symbols
            },
            key=str,
        )
        prefix = ""
        if free_idx:
            inst = inst.xreplace({t: sp.Integer(1) for t in free_idx})
            prefix = ", ".join(f"{t} = 1" for t in free_idx) + "; "
        if ordered:
            prefix = ", ".join(f"{dim} = {n}" for dim, n in sizes.items()) + ", " + prefix
        found = _witness_at(inst, tries, seed, prefix)
        if found is not None:
            return found
    return None


def _witness_at(expr: sp.Basic, tries: int, seed: int, prefix: str) -> tuple[str, float] | None:
    """A random exact rational point (every substitution listed) where expr is non-zero."""
    rng = random.Random(seed)
    for _ in range(tries):
        labels = {base.label for base in expr.atoms(sp.IndexedBase)}
        atoms = [
            a
            for a in expr.free_symbols
            if isinstance(a, sp.Indexed)
            or (isinstance(a, sp.Symbol) and not a.is_integer and a not in labels)
        ]
        subs = {a: _value_for(a, rng) for a in sorted(atoms, key=str)}
        try:
            val = sp.N(expr.xreplace(subs), 50)
        except (ZeroDivisionError, TypeError, ValueError):
            continue
        if val.is_number and val.is_finite and abs(complex(val)) > 1e-20:
            shown = ", ".join(f"{sp.latex(k)}={sp.latex(v)}" for k, v in sorted(subs.items(), key=str))
            return (
                f"{prefix}at ${shown}$ the expression equals {sp.N(val, 8)}",
                float(abs(complex(val))),
            )
    return None


def _non_positive_point(expr: sp.Basic) -> str | None:
    """A point allowed by the sign assumptions where expr is ≤ 0 or undefined, described; else None."""
    syms = sorted(expr.free_symbols, key=str)
    rng = random.Random(1)
    candidates: list[dict[sp.Basic, sp.Basic]] = []
    # Boundary first: every non-negative symbol at 0 (a dropped "≠ 0" hypothesis shows here).
    def value(s: sp.Basic) -> sp.Basic:
        return sp.Integer(rng.randint(2, 9)) if s.is_integer else _value_for(s, rng)

    candidates.append({s: (sp.Integer(0) if s.is_nonnegative and not s.is_positive else value(s)) for s in syms})
    candidates += [{s: value(s) for s in syms} for _ in range(12)]
    for point in candidates:
        try:
            val = sp.N(expr.xreplace(point), 30)
        except (ZeroDivisionError, TypeError, ValueError):
            val = sp.nan
        shown = ", ".join(f"{sp.latex(k)}={sp.latex(v)}" for k, v in point.items())
        if not (val.is_number and val.is_finite) or val.is_real is False:
            return f"at ${shown}$ the expression is undefined ({val})"
        if val <= 0:
            return f"at ${shown}$ the expression equals {sp.N(val, 8)} ≤ 0"
    return None


# While a statement mutant runs, its derivation stops at the first refuted step: the mutant is
# rejected there, and later steps of a false statement may ask for costly witnesses at large sizes.
_STOP_AT_REFUTATION: contextvars.ContextVar[bool] = contextvars.ContextVar("stop_at_refutation", default=False)


@dataclass(frozen=True)
class Mutant:
    """A false edit of a theorem's statement, run through the theorem's own derivation.

    ``kind`` is "wrong constant", "false above the concrete range" or "dropped hypothesis";
    ``statement`` is the edited (false) statement; ``build`` runs the derivation on it.
    """

    name: str
    kind: str
    statement: str
    build: Callable[[], ProofResult]

    def run(self) -> ProofResult:
        """Run the derivation on the edited statement; the result is marked as this mutant."""
        token = _STOP_AT_REFUTATION.set(True)
        try:
            res = self.build()
        finally:
            _STOP_AT_REFUTATION.reset(token)
        res.mutant = self.statement
        res.control = None
        return res


class Derivation:
    """Builder for one proof: each method checks a named claim and appends a Step."""

    def __init__(
        self,
        theorem: str,
        title: str,
        statement: str,
        hypotheses: Sequence[str],
        covered: str,
        *,
        control: str | None = None,
    ) -> None:
        self.theorem = theorem
        self.title = title
        self.statement = statement
        self.hypotheses = list(hypotheses)
        self.covered = covered
        self.control = control
        self.mutant: str | None = None
        self.steps: list[Step] = []
        self.notes: list[str] = []
        self._t0 = time.perf_counter()

    @property
    def _stopped(self) -> bool:
        """A control or mutant already refuted: later steps are not run (the first refutation decides)."""
        stop = self.control is not None or _STOP_AT_REFUTATION.get()
        return stop and any(s.status == REFUTED for s in self.steps)

    def zero(self, name: str, text: str, expr: sp.Basic, *, latex: str | None = None) -> bool:
        """Claim ``expr == 0``; returns whether it was proved."""
        if self._stopped:
            return False
        t = time.perf_counter()
        ok, method = simplify_to_zero(expr)
        witness = None
        status = PROVED
        if not ok:
            found = find_witness(expr)
            status = REFUTED if found is not None else UNDECIDED
            witness = found[0] if found is not None else None
        shown = latex if latex is not None else latex_of(expr) + " = 0"
        self.steps.append(Step(name, text, shown, status, method, witness, 1, time.perf_counter() - t))
        return ok

    def equal(self, name: str, text: str, lhs: sp.Basic, rhs: sp.Basic) -> bool:
        """Claim ``lhs == rhs`` (checked as lhs - rhs == 0)."""
        shown = f"{latex_of(lhs)} = {latex_of(rhs)}"
        return self.zero(name, text, sp.sympify(lhs) - sp.sympify(rhs), latex=shown)

    def family(
        self, name: str, text: str, latex: str, cases: Iterable[tuple[str, Callable[[], sp.Basic]]]
    ) -> bool:
        """Claim ``expr == 0`` for every instance of a family (e.g. d = 2..12); one Step.

        Instances are built lazily so a refuted one stops the family early (the witness
        names the instance).
        """
        if self._stopped:
            return False
        t = time.perf_counter()
        n = 0
        methods: set[str] = set()
        instances: list[tuple[str, str]] = []
        for label, build in cases:
            expr = build()
            instances.append((label, str(expr)))
            ok, method = simplify_to_zero(expr)
            n += 1
            methods.add(method)
            if not ok:
                found = find_witness(expr)
                status = REFUTED if found is not None else UNDECIDED
                witness = f"instance {label}: " + (found[0] if found else "no witness found")
                self.steps.append(
                    Step(name, text, latex, status, method, witness, n, time.perf_counter() - t, instances)
                )
                return False
        method = ", ".join(sorted(methods)) + f"; all {n} instances"
        self.steps.append(Step(name, text, latex, PROVED, method, None, n, time.perf_counter() - t, instances))
        return True

    def positive(self, name: str, text: str, expr: sp.Basic) -> bool:
        """Claim ``expr > 0`` under the symbols' sign assumptions (decided by SymPy, never sampled).

        A rational point allowed by the assumptions (non-negative symbols may be 0) where the
        expression is ≤ 0 or undefined refutes the claim.
        """
        if self._stopped:
            return False
        t = time.perf_counter()
        e = sp.simplify(expr)
        shown = latex_of(e) + " > 0"
        if e.is_positive is True:
            status, method, witness = PROVED, "simplify + sign assumptions", None
        else:
            status, method, witness = UNDECIDED, "sign not decided by SymPy", None
            bad = _non_positive_point(e)
            if bad is not None:
                status, witness = REFUTED, bad
        self.steps.append(Step(name, text, shown, status, method, witness, 1, time.perf_counter() - t))
        return status == PROVED

    def numeric(
        self, name: str, text: str, latex: str, holds: bool, method: str, witness: str | None = None
    ) -> bool:
        """Record a numerical comparison: "checked" (never proof) when it holds, refuted when it fails."""
        if self._stopped:
            return False
        status = CHECKED if holds else REFUTED
        self.steps.append(Step(name, text, latex, status, method, None if holds else witness))
        return holds

    def fact(
        self, name: str, text: str, latex: str, holds: bool, method: str, witness: str | None = None
    ) -> bool:
        """Record a claim decided by an exact symbolic computation done by the caller (``method`` says which).

        Only exact decisions belong here (polynomial coefficients, determinants); a floating-point
        comparison goes through :meth:`numeric`.
        """
        if self._stopped:
            return False
        status = PROVED if holds else REFUTED
        self.steps.append(Step(name, text, latex, status, method, None if holds else witness))
        return holds

    def cite(self, name: str, text: str, latex: str = "") -> None:
        """Record a standard lemma used without machine check."""
        self.steps.append(Step(name, text, latex, CITED, "standard lemma, not machine-checked"))

    def note(self, text: str) -> None:
        """Add a remark to the certificate (e.g. what exactly was proved)."""
        self.notes.append(text)

    def result(self) -> ProofResult:
        """Freeze the derivation into a ProofResult."""
        return ProofResult(
            self.theorem,
            self.title,
            self.statement,
            self.hypotheses,
            self.covered,
            self.steps,
            self.notes,
            time.perf_counter() - self._t0,
            self.control,
            self.mutant,
        )
