"""Assertion helpers: check a norm implementation against the deadir theorems with a stated error budget.

Every helper runs the norm under test in its own dtype, measures in float64 and compares
with an a-priori bound, never a magic tolerance:

* :func:`assert_mean_centring_kernel` — T1 (every output row on the hyperplane
  ⟨γ⁻¹, y − β⟩ = 0) and T2 (γ⁻¹ spans a kernel of the output covariance), each within
  the T10 bound :func:`deadir.bound.kernel_error_bound` for the norm's dtype.
* :func:`assert_no_kernel` — T5 (an RMS-like norm has no such kernel): the Rayleigh
  quotient of γ⁻¹ (and of 𝟙) lies far above that bound.
* :func:`assert_shift_invariant` — T8 (LN(x + t𝟙) = LN(x)) within a first-order
  forward error bound derived below (:func:`forward_error_bound`).
* :func:`assert_matches_reference` — the output matches the float64 reference forward
  of a :class:`~deadir.NormSpec` within a budget relative to PyTorch's own error against
  that reference (the budget flash-attention's layer-norm tests use).

A failure raises :class:`NormPropertyError` (an AssertionError) that prints γ, β, ε, the
offending input rows and the measured value against its bound.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from deadir.arrays import FloatArray, as_rows, as_vector, is_torch_tensor
from deadir.bound import forward_error_bound, gamma_k, kernel_error_bound, unit_roundoff
from deadir.direction import dead_channels, effective_scale, inverse_scale_direction
from deadir.errors import DeadirError, InputShapeError, UnknownNormError
from deadir.norms import NormKind, NormSpec
from deadir.precision import LARGEST_FINITE, default_compute_dtype
from deadir.testing.harness import (
    NondeterministicNormError,
    NormCallError,
    call_with_timeout,
    format_exception,
)
from deadir.testing.strategies import dtype_name, round_to_dtype
from deadir.testing.tolerance import (
    EffectiveNormaliser,
    effective_normaliser,
    folded_bias_term,
    hyperplane_tolerance,
    underflow_term,
)

__all__ = [
    "InconclusiveError",
    "Measurement",
    "NormPropertyError",
    "PreparedNorm",
    "UndefinedOutputError",
    "assert_matches_reference",
    "assert_mean_centring_kernel",
    "assert_no_kernel",
    "assert_shift_invariant",
    "check_hyperplane",
    "check_kernel",
    "check_no_kernel",
    "check_reference",
    "check_shift",
    "forward_error_bound",
    "prepare_norm",
]

_SIGNIFICAND_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
# Safety factor of the "no kernel" test: an RMS-like norm must put γ⁻¹ this far above the
# LayerNorm bound. The bound is an upper bound on rounding, so any factor ≥ 1 is sound; 64
# keeps an implementation that merely *nearly* centres (a kernel at 10× the floor) out.
NO_KERNEL_MARGIN = 64.0
# When 64x the LayerNorm bound reaches 1 % of λmax (float16/bfloat16 at large d or large β/γ)
# a quotient between the bound and the margin cannot be called either way: inconclusive.
RESOLUTION_LIMIT = 1e-2


class UndefinedOutputError(InputShapeError):
    """No input row has a defined output (all constant with ε = 0): nothing to check."""


class InconclusiveError(UndefinedOutputError):
    """The measurement cannot decide at the dtype's resolution (the example is skipped, not failed)."""


class NormPropertyError(AssertionError):
    """A norm broke a property of the deadir algebra; the message is the readable counterexample.

    Attributes:
        property: name of the property ("T1 hyperplane", "T2 kernel", ...).
        measured, bound: the measured quantity and its bound (same units).
        gamma, beta, x: effective scale, shift and the offending input rows (float64).
        eps, dtype, d: the configuration.
    """

    def __init__(self, prop: str, *, measured: float, bound: float, gamma: Any, beta: Any, x: Any,
                 eps: float | None, dtype: str, d: int, detail: str = "") -> None:
        self.property = prop
        self.measured = float(measured)
        self.bound = float(bound)
        self.gamma = None if gamma is None else np.asarray(gamma, dtype=np.float64)
        self.beta = None if beta is None else np.asarray(beta, dtype=np.float64)
        self.x = np.asarray(x, dtype=np.float64)
        self.eps = eps
        self.dtype = dtype
        self.d = d
        self.detail = detail
        super().__init__(self.render())

    def render(self) -> str:
        """The counterexample as text: property, measured vs bound, configuration, γ, β and x."""
        if math.isfinite(self.bound) and self.measured > self.bound:
            ratio = f"ratio {self.measured / self.bound:.4g}" if self.bound > 0 else "bound is 0"
            head = f"measured {self.measured:.6g} > bound {self.bound:.6g} ({ratio})"
        else:  # a shape or finiteness failure: there is no quantity to compare with a bound
            head = f"measured {self.measured:.6g}" + ("" if math.isnan(self.bound) else f", bound {self.bound:.6g}")
        lines = [f"{self.property} violated: {head} in {self.dtype}, d={self.d}, eps={self.eps!r}"]
        if self.detail:
            lines.append(self.detail)
        lines.append(f"gamma = {_fmt_array(self.gamma)}")
        lines.append(f"beta  = {_fmt_array(self.beta)}")
        lines.append(f"x ({self.x.shape[0]} row(s) shown) = {_fmt_array(self.x)}")
        return "\n".join(lines)


def _fmt_array(a: FloatArray | None) -> str:
    if a is None:
        return "None"
    return np.array2string(a, precision=6, threshold=64, edgeitems=4, max_line_width=110)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One check's outcome: ``measured`` against ``bound`` (same units); ``ratio`` = measured/bound ≤ 1 passes."""

    property: str
    measured: float
    bound: float
    ratio: float
    d: int
    n: int
    dtype: str


@dataclasses.dataclass(frozen=True)
class PreparedNorm:
    """A norm under test with its parameters fixed, ready to run on float64 rows.

    Attributes:
        run: maps float64 rows (values representable in ``dtype``) to (float64 outputs,
            output dtype name).
        d, dtype: size and the dtype inputs and parameters are stored in.
        compute_dtype: the dtype the statistics are accumulated in (float32 for half
            precision torch modules, which upcast).
        gamma: effective scale γ = weight + weight_offset as stored (float64).
        beta: shift as stored (zeros when there is none).
        eps: ε when the norm exposes it (``eps`` or ``variance_epsilon``), else None.
        weight_offset: the offset added to the stored weight (1.0 for Gemma's (1 + w)).
        name: for messages.
        groups: the number of channel groups normalised separately (GroupNorm), else 1.
    """

    run: Callable[[FloatArray], tuple[FloatArray, str]]
    d: int
    dtype: str
    compute_dtype: str
    gamma: FloatArray
    beta: FloatArray
    eps: float | None
    weight_offset: float
    name: str
    groups: int = 1  # GroupNorm: statistics per group of d/groups channels
    timeout: float | None = None  # seconds one call may take (None: no limit)
    check_determinism: bool = False  # run every input twice and compare (NondeterministicNormError)
    notes: tuple[str, ...] = ()  # what the report must say about how the norm was driven
    reference_kind: str | None = None  # the formula the norm declares (an ONNX op's), for reference="auto"


def _module_eps(module: Any) -> tuple[str | None, float | None]:
    for attr in ("eps", "variance_epsilon"):
        value = getattr(module, attr, None)
        if isinstance(value, (float, int)) and not isinstance(value, bool):
            return attr, float(value)
    return None, None


def prepare_norm(
    norm: Any,
    d: int,
    *,
    gamma: Any = None,
    beta: Any = None,
    eps: float | None = None,
    dtype: Any = None,
    weight_offset: float | None = None,
    compute_dtype: Any = None,
) -> PreparedNorm:
    """Fix the parameters of ``norm`` and wrap it for the checks.

    ``norm`` is a torch module (cast to ``dtype``; when it has ``.weight`` / ``.bias``
    parameters of length d, ``gamma`` − weight_offset and ``beta`` are written into them,
    and ``eps`` into an ``eps`` / ``variance_epsilon`` attribute), a
    :class:`~deadir.NormSpec` (float64 reference forward) or any callable taking a torch
    tensor of shape (n, d) (``gamma``/``beta`` then declare the parameters it uses).
    ``weight_offset`` defaults to the one :meth:`NormSpec.from_module` knows, else 0.

    Raises:
        InputShapeError: d < 1, bad dtype, parameters of the wrong length, or an object
            that is neither a module, a spec nor a callable.
        DegenerateScaleError: ``gamma`` + offset has NaN or infinite entries.
    """
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise InputShapeError(f"d: must be a positive integer, got {d!r}")
    d = int(d)
    g_in = None if gamma is None else as_vector(gamma, name="gamma")
    b_in = None if beta is None else as_vector(beta, name="beta")
    for name, vec in (("gamma", g_in), ("beta", b_in)):
        if vec is not None and vec.size != d:
            raise InputShapeError(f"{name}: expected length {d}, got {vec.size}")
        if vec is not None and not np.all(np.isfinite(vec)):
            raise InputShapeError(f"{name}: contains NaN or infinite entries")
    if eps is not None and not (math.isfinite(eps) and eps >= 0):
        raise InputShapeError(f"eps: must be finite and ≥ 0, got {eps!r}")

    if isinstance(norm, NormSpec):
        return _prepare_spec(norm, d, g_in, b_in, eps, weight_offset)
    import torch

    if isinstance(norm, torch.nn.Module):
        from deadir.testing.adapters import DriveOptions
        from deadir.testing.adapters.torch import bind_torch

        if weight_offset is None:
            try:
                weight_offset = NormSpec.from_module(norm).weight_offset
            except (UnknownNormError, InputShapeError):
                weight_offset = 0.0
        params = list(norm.parameters())
        name = dtype_name(dtype if dtype is not None else (params[0].dtype if params else "float32"))
        options = DriveOptions(framework="torch", weight_offset=float(weight_offset), timeout=None,
                               compute_dtype=None if compute_dtype is None else dtype_name(compute_dtype),
                               determinism=False)
        return bind_torch(norm, d, weight=None if g_in is None else g_in - float(weight_offset), beta=b_in, eps=eps,
                          dtype=name, options=options)
    if not callable(norm):
        raise InputShapeError(f"norm: expected a torch module, a NormSpec or a callable, got {type(norm).__name__}")
    name = dtype_name(dtype if dtype is not None else "float32")
    offset = float(weight_offset or 0.0)
    g = round_to_dtype(g_in if g_in is not None else np.ones(d) - offset, name) + offset
    b = round_to_dtype(b_in, name) if b_in is not None else np.zeros(d)
    return PreparedNorm(_torch_runner(norm, name), d, name, _default_compute(name, compute_dtype), g, b,
                        eps, offset, getattr(norm, "__qualname__", type(norm).__name__))


def _default_compute(name: str, compute_dtype: Any) -> str:
    if compute_dtype is not None:
        return dtype_name(compute_dtype)
    return default_compute_dtype(name)


def _torch_runner(fn: Callable[[Any], Any], name: str) -> Callable[[FloatArray], tuple[FloatArray, str]]:
    import torch

    tdtype = getattr(torch, name)

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        with torch.no_grad():
            out = fn(torch.from_numpy(np.ascontiguousarray(x)).to(tdtype))
        if not is_torch_tensor(out):
            raise InputShapeError(f"norm: returned {type(out).__name__}, expected a torch tensor")
        return out.detach().to("cpu", torch.float64).numpy(), str(out.dtype).removeprefix("torch.")

    return run


def _prepare_spec(spec: NormSpec, d: int, g: FloatArray | None, b: FloatArray | None, eps: float | None,
                  weight_offset: float | None) -> PreparedNorm:
    if spec.size != d:
        raise InputShapeError(f"norm: the NormSpec has d={spec.size}, expected {d}")
    offset = spec.weight_offset if weight_offset is None else float(weight_offset)
    spec = dataclasses.replace(
        spec,
        weight=spec.weight if g is None else g - offset,
        bias=spec.bias if b is None else b,
        eps=spec.eps if eps is None else float(eps),
        weight_offset=offset,
    )

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        return spec.apply(x), "float64"

    return PreparedNorm(run, d, "float64", "float64", spec.gamma, spec.beta, spec.eps, offset,
                        spec.source or f"NormSpec({spec.kind})", spec.groups if spec.kind == "groupnorm" else 1)


def _call(prep: PreparedNorm, x: FloatArray) -> tuple[FloatArray, str]:
    """One call of the norm under test, within its timeout; a raising norm becomes NormCallError (ERROR)."""
    try:
        return call_with_timeout(lambda: prep.run(x), prep.timeout, what=f"norm {prep.name}")
    except DeadirError:
        raise
    except Exception as exc:  # the norm's own exception: the harness cannot judge it (ERROR, not FAIL)
        raise NormCallError(f"norm {prep.name} raised {type(exc).__name__}: {exc} on an input of shape {x.shape}",
                            details=format_exception(exc)) from exc


def _run(prep: PreparedNorm, x: FloatArray) -> tuple[FloatArray, str]:
    """Run and validate the output shape and finiteness (a NaN is a failure of the norm, reported with its input).

    With ``prep.check_determinism`` the input runs twice; outputs further apart than twice the
    forward error bound (each run may err by that much) raise NondeterministicNormError.
    """
    y, out = _call(prep, x)
    if y.shape != x.shape:
        raise NormPropertyError("output shape", measured=math.nan, bound=math.nan, gamma=prep.gamma, beta=prep.beta,
                                x=x[:4], eps=prep.eps, dtype=prep.dtype, d=prep.d,
                                detail=f"returned shape {y.shape} for input shape {x.shape}")
    bad = ~np.all(np.isfinite(y), axis=1)
    if np.any(bad):
        raise NormPropertyError("finite output", measured=math.inf, bound=math.nan, gamma=prep.gamma,
                                beta=prep.beta, x=x[bad][:4], eps=prep.eps, dtype=prep.dtype, d=prep.d,
                                detail=f"NaN or infinite output on {int(bad.sum())} finite input row(s)")
    if prep.check_determinism:
        _check_deterministic(prep, x, y, out)
    return y, out


def _check_deterministic(prep: PreparedNorm, x: FloatArray, y: FloatArray, out: str) -> None:
    y2, _ = _call(prep, x)
    if y2.shape == y.shape and np.array_equal(y, y2):
        return
    if y2.shape != y.shape or not np.all(np.isfinite(y2)):
        raise NondeterministicNormError(f"norm {prep.name} is not deterministic: the same input of shape {x.shape} "
                                        f"gave an output of shape {y2.shape} or non-finite values the second time")
    tol = 2.0 * _forward_tolerance(prep, x, y, out)[0]
    diff = np.abs(y2 - y)
    if np.any(diff > tol):
        k = np.unravel_index(int(np.argmax(diff - tol)), diff.shape)
        raise NondeterministicNormError(
            f"norm {prep.name} is not deterministic: the same input gave {y[k]!r} then {y2[k]!r} at row {k[0]}, "
            f"channel {k[1]} (difference {diff[k]:.3g} > twice the forward error bound {tol[k]:.3g})")


def _input_rows(x: Any, prep: PreparedNorm) -> FloatArray:
    """``x`` as float64 rows rounded to the norm's dtype.

    Raises:
        InputShapeError: bad shape, non-finite entries, or a value beyond the dtype's largest finite value
            (stored in that dtype it would be ±inf, an input no norm is asked to normalise).
    """
    rows = round_to_dtype(as_rows(x, name="x", d=prep.d), prep.dtype)
    if not np.all(np.isfinite(rows)):
        bad = np.argwhere(~np.isfinite(rows))[:5].tolist()
        raise InputShapeError(f"x: values beyond {prep.dtype}'s largest finite value {LARGEST_FINITE[prep.dtype]:g} "
                              f"(they would be stored as inf; first at (row, column) {bad})")
    return rows


def _in_range(rows: FloatArray, prep: PreparedNorm) -> Any:
    """Boolean mask of the rows that the storage and the compute dtype both hold without overflow."""
    top = min(LARGEST_FINITE[prep.dtype], LARGEST_FINITE[prep.compute_dtype])
    return np.all(np.abs(rows) <= top, axis=1)


def _rows(x: Any, prep: PreparedNorm) -> FloatArray:
    """Input rows as float64, rounded to the norm's dtype, without rows whose output is undefined (:func:`_defined`).

    Raises:
        InputShapeError: see :func:`_input_rows`.
        UndefinedOutputError: no row is left.
    """
    rows = _input_rows(x, prep)
    rows = np.asarray(rows[_defined(rows, prep)], dtype=np.float64)
    if rows.shape[0] == 0:
        raise UndefinedOutputError("x: no row with a defined output (every row constant with ε = 0 or unknown, "
                                   "or its mean's rounding as large as its spread)")
    return rows


def _defined(rows: FloatArray, prep: PreparedNorm) -> Any:
    """Boolean mask of the rows whose normalised output is defined in the norm's arithmetic.

    A constant row (or, for GroupNorm, a constant group) has σ² = 0; with ε = 0 (or unknown, or
    rounding to 0) the normalised value 0/0 is undefined. And when the computed mean errs by as much
    as the spread (ρ·γ_{k+1}(u_c) ≥ 1, ρ = |μ|/√(σ² + ε), k channels per group) every standardised
    value is rounding noise, for any implementation. Such rows are left out, not counted as failures.
    (A row whose mean's rounding exceeds σ but not √(σ² + ε) stays: its normaliser is measured with the
    mean error allowed for, and a row whose output cannot show it is left out there — tolerance.py.)
    """
    groups = rows.reshape(rows.shape[0], prep.groups, prep.d // prep.groups)
    eps = 0.0 if _eps_is_zero(prep) else float(prep.eps or 0.0)
    spread = np.sqrt(groups.var(axis=2) + eps)
    noise = gamma_k(groups.shape[2] + 1, unit_roundoff(prep.compute_dtype)) * np.abs(groups.mean(axis=2))
    ok = (spread > 0) & (noise < spread)
    return np.all(ok, axis=1)


def _eps_is_zero(prep: PreparedNorm) -> bool:
    """ε is 0, unknown, or rounds to 0 in the storage or the compute dtype (kernels add it in either)."""
    if not prep.eps:
        return True
    eps = np.array([prep.eps])
    return bool(round_to_dtype(eps, prep.compute_dtype)[0] == 0 or round_to_dtype(eps, prep.dtype)[0] == 0)


def _group_directions(prep: PreparedNorm) -> list[tuple[slice, FloatArray]]:
    """(channels, v_g) per group: v_g = γ_g⁻¹/‖γ_g⁻¹‖ (T9; one group is T1's v). Raises DegenerateScaleError (T6)."""
    if prep.d < 2 or prep.d // prep.groups < 2:
        raise InputShapeError(f"d: the kernel bound needs d ≥ 2 channels per group, got d={prep.d}, "
                              f"groups={prep.groups}")
    k = prep.d // prep.groups
    inverse_scale_direction(prep.gamma)  # names every zero / non-finite index of the whole γ
    return [(slice(g * k, (g + 1) * k), inverse_scale_direction(prep.gamma[g * k : (g + 1) * k]))
            for g in range(prep.groups)]


def _measured_run(prep: PreparedNorm, x: Any) -> tuple[FloatArray, FloatArray, str, EffectiveNormaliser, FloatArray]:
    """Rows, outputs, output dtype, the norm's measured normaliser and the per-(row, group) T10 tolerance.

    Rows whose measured ρ makes the computed mean's rounding as large as the spread
    (ρ·γ_{k+1}(u_c) ≥ 1) are left out: no implementation resolves them; so are rows whose output does
    not show their normaliser (constant rows, and rows where the mean's own error could hide it).

    Raises:
        UndefinedOutputError: no row is left.
    """
    rows = _rows(x, prep)
    y, out = _run(prep, rows)
    norm = effective_normaliser(rows, y, prep.gamma, prep.beta, groups=prep.groups, dtype=out,
                                compute_dtype=prep.compute_dtype)
    k = prep.d // prep.groups
    ok = np.all(norm.mean_ratio * gamma_k(k + 1, unit_roundoff(prep.compute_dtype)) < 1.0, axis=1)
    ok &= norm.measurable
    if not np.any(ok):
        raise UndefinedOutputError("x: no row whose normaliser the output shows (constant rows) and whose mean's "
                                   "rounding stays below its spread in the compute dtype")
    if not np.all(ok):
        rows, y = rows[ok], y[ok]
        norm = norm.select(ok)
    tol = hyperplane_tolerance(prep.gamma, prep.beta, norm, dtype=out, compute_dtype=prep.compute_dtype,
                               groups=prep.groups,
                               underflow=underflow_term(rows, prep.gamma, groups=prep.groups, dtype=out,
                                                        compute_dtype=prep.compute_dtype))
    return rows, y, out, norm, tol


def check_hyperplane(prep: PreparedNorm, x: Any) -> Measurement:
    """T1 (T9 per group): max over rows of |⟨v_g, ŷ_g − β_g⟩| (units of y) against its T10 tolerance.

    The tolerance is that of the norm's own normaliser, measured per row from its output
    (:mod:`deadir.testing.tolerance`): any scale r in y = γ⊙r(x − μ) + β is correct algebra.

    Raises:
        InputShapeError: bad x, or d < 2.
        DegenerateScaleError: a zero effective scale (γ⁻¹ undefined, T6).
        NormPropertyError: the bound is exceeded (or the output is not finite).
    """
    dirs = _group_directions(prep)  # a zero scale is reported whatever the rows (T6)
    rows, y, out, _, tol = _measured_run(prep, x)
    resid = np.stack([np.abs((y[:, sl] - prep.beta[sl]) @ v) for sl, v in dirs], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tol > 0, resid / tol, np.where(resid > 0, np.inf, 0.0))
    k, g = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    measured, bound = float(resid[k, g]), float(tol[k, g])
    where = f" in group {g} of {prep.groups}" if prep.groups > 1 else ""
    if not measured <= bound:
        raise NormPropertyError("T1 hyperplane", measured=measured, bound=bound, gamma=prep.gamma,
                                beta=prep.beta, x=rows[k : k + 1], eps=prep.eps, dtype=out, d=prep.d,
                                detail=f"|<v, y - beta>| of row {k} of {rows.shape[0]}{where}, "
                                       "v = gamma^-1/|gamma^-1|")
    return Measurement("T1 hyperplane", measured, bound, float(ratio[k, g]), prep.d, rows.shape[0], out)


def _rms(p: FloatArray) -> float:
    """√(mean p²) without underflow or overflow (p scaled by max|p| first)."""
    m = float(np.max(np.abs(p))) if p.size else 0.0
    return 0.0 if m == 0.0 else m * float(np.sqrt(np.mean((p / m) ** 2)))


def _centred(y: FloatArray) -> FloatArray:
    """y − ȳ by the corrected two-pass algorithm: the second pass removes the first mean's rounding.

    One pass leaves every centred column off by the rounding of its mean, ~u·|ȳ|: a constant a
    LayerNorm row never carries, as large as the T10 bound's own u·|βᵢ| term when a channel's
    output is its β (γᵢ ≈ 0). After the correction the error is O(n·u·|y − ȳ|).
    """
    yc: FloatArray = y - y.mean(axis=0)
    yc -= yc.mean(axis=0)
    return yc


def _lambda_max(yc: FloatArray) -> float:
    """Largest eigenvalue of the population covariance of the centred rows yc (via the smaller Gram matrix)."""
    n, d = yc.shape
    gram = yc @ yc.T if n <= d else yc.T @ yc
    return float(np.linalg.eigvalsh(gram)[-1] / n)


def check_kernel(prep: PreparedNorm, x: Any) -> Measurement:
    """T2 (T9 per group): √(v_gᵀĈv_g/λmax) of the outputs' covariance against the T10 tolerance.

    vᵀĈv ≤ max_k ⟨v, ŷ_k − β⟩² (:mod:`deadir.bound`), so the root Rayleigh quotient is compared
    with the largest per-row tolerance over √λmax. Roots, not squares: the squares of both
    underflow for a v along a near-dead channel. Vacuous for < 2 rows or constant outputs.

    Raises:
        InputShapeError, DegenerateScaleError: as :func:`check_hyperplane`.
        NormPropertyError: the bound is exceeded.
    """
    dirs = _group_directions(prep)  # a zero scale is reported whatever the rows (T6)
    rows, y, out, _, tol = _measured_run(prep, x)
    # in units of s = max|y − ȳ|: the quotient is scale free, and tiny γ (outputs ~1e-300)
    # would otherwise underflow λmax to 0
    yc = _centred(y)
    s = float(np.max(np.abs(yc))) if yc.size else 0.0
    lam = _lambda_max(yc / s) if rows.shape[0] >= 2 and s > 0 else 0.0
    if lam <= 0.0:
        return Measurement("T2 kernel", 0.0, math.inf, 0.0, prep.d, rows.shape[0], out)
    root = math.sqrt(lam)
    worst: tuple[float, float, float, int] | None = None
    for g, (sl, v) in enumerate(dirs):
        std = _rms(yc[:, sl] @ v / s)
        res = float(np.max(tol[:, g])) / s
        ratio = std / res if res > 0 else (math.inf if std > 0 else 0.0)
        if worst is None or ratio > worst[2]:
            worst = (std / root, res / root, ratio, g)
    assert worst is not None
    measured, bound, ratio, g = worst
    if not ratio <= 1.0:
        where = f" along group {g}'s gamma^-1" if prep.groups > 1 else ""
        raise NormPropertyError("T2 kernel", measured=measured, bound=bound, gamma=prep.gamma, beta=prep.beta,
                                x=rows[:4], eps=prep.eps, dtype=out, d=prep.d,
                                detail=f"root Rayleigh quotient sqrt(v^T C v / lambda_max){where} over "
                                       f"{rows.shape[0]} rows (lambda_max = {lam:.4g} in units of max|y - mean y|)")
    return Measurement("T2 kernel", measured, bound, ratio, prep.d, rows.shape[0], out)


def _exact_shift_grid(x: FloatArray, t: FloatArray, dtype: str) -> tuple[FloatArray, FloatArray]:
    """x and t moved onto a grid of step q (a power of two) on which x + t is exact in ``dtype``.

    Every k·q with |k| ≤ 2^p (p significand bits) is representable, so choosing
    q = 2^(⌈log₂ m⌉ − p + 1) with m = max|x| + max|t| makes x, t and x + t exact.
    """
    p = _SIGNIFICAND_BITS[dtype]
    m = float(np.max(np.abs(x)) + np.max(np.abs(t)))
    if m == 0.0:
        return x, t
    q = 2.0 ** (math.ceil(math.log2(m)) - p + 1)
    return np.round(x / q) * q, np.round(t / q) * q


def check_shift(prep: PreparedNorm, x: Any, t: Any) -> Measurement:
    """T8: max |ŷ(x + tᵢ𝟙) − ŷ(x)| over entries, relative to the sum of the two forward error bounds.

    ``t`` is one shift per row (or a scalar). x and t are first moved onto a grid on which
    the shifted input is exact in the norm's dtype, so only the norm's own rounding
    separates the two outputs. The bound needs the norm's ε (``prep.eps``; 0 assumed when
    unknown, which only loosens it).

    Raises:
        InputShapeError: bad x or t.
        NormPropertyError: the difference exceeds the bound.
    """
    rows = _input_rows(x, prep)
    ts = np.asarray(t, dtype=np.float64).reshape(-1, 1) if np.ndim(t) else np.full((rows.shape[0], 1), float(t))
    if ts.shape[0] != rows.shape[0] or not np.all(np.isfinite(ts)):
        raise InputShapeError(f"t: expected a finite scalar or one shift per row ({rows.shape[0]}), got {np.shape(t)}")
    coarse = min(prep.dtype, prep.compute_dtype, key=_SIGNIFICAND_BITS.__getitem__)
    xg, tg = _exact_shift_grid(rows, np.array(ts), coarse)
    xs = xg + tg
    # a shift can carry a row beyond the dtype's resolution, or (with the grid's rounding) beyond its range:
    # there the shifted input is not the row plus t in that dtype, and the row is left out
    keep = _defined(xg, prep) & _defined(xs, prep) & _in_range(xg, prep) & _in_range(xs, prep)
    xg, xs = xg[keep], xs[keep]
    if xg.shape[0] == 0:
        return Measurement("T8 shift invariance", 0.0, math.inf, 0.0, prep.d, 0, prep.dtype)
    y0, out = _run(prep, xg)
    y1, _ = _run(prep, xs)
    b0, m0 = _forward_tolerance(prep, xg, y0, out)
    b1, m1 = _forward_tolerance(prep, xs, y1, out)
    keep = m0 & m1  # a constant row shows no normaliser to bound its rounding with (tolerance.py)
    if not np.any(keep):
        return Measurement("T8 shift invariance", 0.0, math.inf, 0.0, prep.d, 0, out)
    xg, xs, y0, y1, bound = xg[keep], xs[keep], y0[keep], y1[keep], (b0 + b1)[keep]
    diff = np.abs(y1 - y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bound > 0, diff / bound, np.where(diff > 0, np.inf, 0.0))
    k = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    worst = float(ratio[k])
    if not worst <= 1.0:
        raise NormPropertyError("T8 shift invariance", measured=diff[k], bound=bound[k], gamma=prep.gamma,
                                beta=prep.beta, x=xg[k[0] : k[0] + 1], eps=prep.eps, dtype=out, d=prep.d,
                                detail=f"|y(x + t) - y(x)| at row {k[0]}, channel {k[1]}, "
                                       f"shift t = {float(xs[k] - xg[k]):.6g}")
    return Measurement("T8 shift invariance", float(diff[k]), float(bound[k]), worst, prep.d, xg.shape[0], out)


def _forward_tolerance(prep: PreparedNorm, rows: FloatArray, y: FloatArray, out: str) -> tuple[FloatArray, Any]:
    """Per-entry forward error bound of one run from the norm's own measured normaliser (folded bias and
    underflow included), and the mask of rows whose normaliser is measurable."""
    norm = effective_normaliser(rows, y, prep.gamma, prep.beta, groups=prep.groups, dtype=out,
                                compute_dtype=prep.compute_dtype)
    rho = norm.mean_ratio.max(axis=1)
    bound = (forward_error_bound(norm.z, prep.gamma, prep.beta, rho, dtype=out, compute_dtype=prep.compute_dtype)
             + folded_bias_term(prep.gamma, prep.beta, rho, compute_dtype=prep.compute_dtype)
             + underflow_term(rows, prep.gamma, groups=prep.groups, dtype=out, compute_dtype=prep.compute_dtype))
    return bound, norm.measurable


def _default_probe(d: int, dtype: str, seed: int) -> FloatArray:
    """Gaussian rows, n = 2d + 8 of them: a full-rank sample covariance (Marchenko–Pastur lower edge
    (1 − √(d/n))² ≥ 0.086), so no direction is null merely for want of rows."""
    return round_to_dtype(np.random.default_rng(seed).standard_normal((2 * d + 8, d)), dtype)


def check_no_kernel(prep: PreparedNorm, x: Any = None, *, seed: int = 0) -> Measurement:
    """T5: neither γ⁻¹ nor 𝟙 is a kernel direction of the outputs' covariance.

    Their Rayleigh quotients vᵀĈv/λmax must exceed ``NO_KERNEL_MARGIN`` times the T10
    bound a LayerNorm with this γ, β and dtype would meet. ``x`` defaults to Gaussian rows
    (from ``seed``), for which an RMSNorm's covariance is diag(γ)²-like and full rank (T5).
    ``measured`` is the smaller quotient, ``bound`` the margin times its LayerNorm bound;
    ratio = bound/measured (≤ 1 passes, like the other checks).

    Raises:
        InputShapeError: bad x, d < 2, or fewer than 2 rows.
        NormPropertyError: a direction is a kernel within the margin.
    """
    gaussian = x is None
    rows = _rows(_default_probe(prep.d, prep.dtype, seed) if gaussian else x, prep)
    if rows.shape[0] < 2:
        raise InputShapeError("x: need at least 2 rows to measure a covariance")
    y, out = _run(prep, rows)
    # the bound of a hypothetical LayerNorm with this γ, β and ε (not the norm's own normaliser: an
    # RMS norm has no centring to measure), with ρ = |μ|/√(σ² + ε) of the rows
    mu = rows.mean(axis=1)
    spread = np.sqrt(rows.var(axis=1) + float(prep.eps or 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(spread > 0, np.abs(mu) / spread, 0.0)
    # On the Gaussian probe an RMSNorm's covariance is ≈ diag(γ)² (T5), so direction v sits at
    # q_iso(v) = Σvᵢ²γᵢ²/max γᵢ², lowered by sampling to at most the Marchenko–Pastur edge (1 − √(d/n))²:
    # a LayerNorm margin above that cannot tell the two apart (γ with a wide spread does this in bf16).
    edge = max(0.0, 1.0 - math.sqrt(prep.d / rows.shape[0])) ** 2 if gaussian else 0.0
    yc = _centred(y)
    s = float(np.max(np.abs(yc)))
    if s == 0.0:
        raise InconclusiveError("the outputs do not vary: no covariance to look for a kernel in")
    yc = yc / s  # scale free, and no underflow for tiny γ
    lam = _lambda_max(yc)
    worst: tuple[float, float, float] | None = None
    # A channel with |γᵢ| below the output's rounding of the others is dead: eᵢ is a null direction
    # of any norm (T6), and γ⁻¹ is essentially eᵢ. Look for the kernel along γ⁻¹'s live part then.
    inv = inverse_scale_direction(prep.gamma)
    dead = dead_channels(prep.gamma, rel_tol=unit_roundoff(out))
    label_inv = "gamma^-1"
    if dead.size:
        if dead.size >= prep.d - 1:
            raise InconclusiveError(f"{dead.size} of {prep.d} channels are dead (|γᵢ| ≤ u·median|γ|): "
                                    "no live direction to test")
        live = np.ones(prep.d, dtype=bool)
        live[dead] = False
        inv = np.zeros(prep.d)
        inv[live] = 1.0 / prep.gamma[live]  # live channels only: a dead γᵢ (even subnormal) is never inverted
        label_inv = f"gamma^-1 on the {prep.d - dead.size} live channels"
    for label, vec in ((label_inv, inv), ("ones", np.ones(prep.d))):
        v = vec / np.linalg.norm(vec)
        gamma = prep.gamma if label != "ones" else np.ones(prep.d)
        res = kernel_error_bound(gamma, out, beta=prep.beta, compute_dtype=prep.compute_dtype,
                                 mean_ratio=float(rho.max())).residual / s
        std = _rms(yc @ v)
        with np.errstate(over="ignore"):  # γ near the underflow edge: a bound beyond float64 is inf (inconclusive)
            limit = float(NO_KERNEL_MARGIN * np.float64(res) ** 2 / lam)
            q = float(np.float64(std) ** 2 / lam)
        above = std > np.sqrt(NO_KERNEL_MARGIN) * res  # q > limit, without squaring tiny numbers
        resolvable = RESOLUTION_LIMIT
        if gaussian:
            g2 = (prep.gamma / float(np.max(np.abs(prep.gamma)))) ** 2  # scaled first: no overflow
            resolvable = min(resolvable, edge * float(np.sum(v * v * g2)))
        if not above and limit >= resolvable:
            # the LayerNorm bound of this dtype is too loose to tell a kernel from no kernel
            raise InconclusiveError(f"the {label} direction: Rayleigh quotient {q:.3g} is not above "
                                    f"{NO_KERNEL_MARGIN:g}x the LayerNorm bound ({limit:.3g}) in {out}, "
                                    f"which is ≥ {resolvable:.3g} (what an RMSNorm itself may give here): "
                                    "unresolvable")
        if not above:
            raise NormPropertyError("T5 no kernel", measured=limit, bound=q, gamma=prep.gamma, beta=prep.beta,
                                    x=rows[:4], eps=prep.eps, dtype=out, d=prep.d,
                                    detail=f"the {label} direction is a kernel: Rayleigh quotient {q:.4g} is not above "
                                           f"{NO_KERNEL_MARGIN:g}x the LayerNorm rounding bound ({limit:.4g})")
        with np.errstate(over="ignore"):
            r = float((np.sqrt(NO_KERNEL_MARGIN) * np.float64(res) / std) ** 2)
        if worst is None or r > worst[2]:
            worst = (limit, q, r)
    assert worst is not None
    return Measurement("T5 no kernel", worst[1], worst[0], worst[2], prep.d, rows.shape[0], out)


def _torch_reference(spec: NormSpec, x: FloatArray, dtype: str) -> FloatArray:
    """PyTorch's own functional op for ``spec`` run in ``dtype`` (the error the budget is relative to)."""
    import torch
    import torch.nn.functional as F

    tdtype = getattr(torch, dtype)
    # copies: the arrays may be read-only views (of jax or onnxruntime outputs), which torch warns about
    t = torch.from_numpy(np.array(x)).to(tdtype)
    w = torch.from_numpy(np.array(spec.gamma)).to(tdtype)
    b = None if spec.bias is None else torch.from_numpy(np.array(spec.beta)).to(tdtype)
    with torch.no_grad():
        if spec.kind == "layernorm":
            out = F.layer_norm(t, (spec.size,), w, b, spec.eps)
        elif spec.kind == "rmsnorm":
            out = F.rms_norm(t, (spec.size,), w, spec.eps)
            out = out if b is None else out + b
        elif spec.kind == "groupnorm":
            out = F.group_norm(t, spec.groups, w, b, spec.eps)
        else:
            return round_to_dtype(spec.apply(x), dtype)
    return np.asarray(out.to(torch.float64).numpy())


def check_reference(prep: PreparedNorm, spec: NormSpec, x: Any, *, factor: float = 2.0) -> Measurement:
    """Output against ``spec``'s float64 forward, within factor·(PyTorch's own error) + 8u·max|y|.

    ``spec`` supplies the kind, groups and ε (the intended one: a module that ignores its
    own ε is caught here); γ, β and the weight offset are taken from ``prep``. PyTorch's
    error is that of its functional op (layer_norm / rms_norm / group_norm) run in the same
    dtype on the same input; the additive 8u·max|y_ref| (u of the output dtype) absorbs a
    few extra output roundings. Each entry may instead use its :func:`forward_error_bound`
    (layernorm and rmsnorm kinds) when that is larger.

    Raises:
        InputShapeError: bad x or a spec of another size.
        NormPropertyError: the error exceeds the budget.
    """
    if spec.size != prep.d:
        raise InputShapeError(f"spec: has d={spec.size}, the norm d={prep.d}")
    if not (math.isfinite(factor) and factor >= 1.0):
        raise InputShapeError(f"factor: must be ≥ 1, got {factor!r}")
    rows = _rows(x, prep)
    ref_spec = dataclasses.replace(spec, weight=prep.gamma, bias=prep.beta if np.any(prep.beta) else None,
                                   weight_offset=0.0)
    y, out = _run(prep, rows)
    y_ref = ref_spec.apply(rows)
    # PyTorch's error at the precision the norm computes in: the storage dtype, or a lower
    # compute dtype (HF norms run float64 inputs in float32)
    low = prep.compute_dtype if unit_roundoff(prep.compute_dtype) > unit_roundoff(prep.dtype) else prep.dtype
    y_pt = _torch_reference(ref_spec, rows, low)
    # rows where PyTorch's own op is not finite (a one-pass variance gone negative under a large
    # common offset) are beyond the dtype: there is no error to compare against
    ok = np.all(np.isfinite(y_pt), axis=1)
    if not np.any(ok):
        raise UndefinedOutputError("x: PyTorch's own op gives NaN/inf on every row in this dtype "
                                   "(beyond its resolution)")
    rows, y, y_ref, y_pt = rows[ok], y[ok], y_ref[ok], y_pt[ok]
    err = np.abs(y - y_ref)
    err_pt = float(np.max(np.abs(y_pt - y_ref)))
    budget = factor * err_pt + 8.0 * unit_roundoff(out) * float(np.max(np.abs(y_ref)))
    # an entry may also use its a-priori forward error bound: ill-conditioned rows (|μ| ≫ σ,
    # σ² ≪ ε = 0) can put any correct implementation beyond 2x PyTorch's own error there
    if spec.kind in ("layernorm", "rmsnorm"):
        centred = spec.kind == "layernorm"
        xc = rows - rows.mean(axis=1, keepdims=True) if centred else rows
        scale = np.sqrt((xc * xc).mean(axis=1, keepdims=True) + ref_spec.eps)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(scale > 0, xc / scale, 0.0)
            rho = np.where(scale[:, 0] > 0, np.abs(rows.mean(axis=1)) / scale[:, 0], 0.0)
        rho = rho if centred else np.zeros_like(rho)  # RMS: no mean, no cancellation
        entry_budget = np.maximum(budget, forward_error_bound(z, prep.gamma, prep.beta, rho, dtype=out,
                                                              compute_dtype=prep.compute_dtype))
        if prep.weight_offset:
            # Gemma-style γ = offset + w formed in the compute dtype: w rounds first (|δw| ≤ u_c|w|), then
            # the sum; with w ≈ −offset that cancels, so the effective γ carries u_c(|w| + |γ|) (times |z|)
            w = prep.gamma - prep.weight_offset
            entry_budget += unit_roundoff(low) * (np.abs(w) + np.abs(prep.gamma)) * np.abs(z)
    else:
        entry_budget = np.full(err.shape, budget)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(entry_budget > 0, err / entry_budget, np.where(err > 0, np.inf, 0.0))
    k = np.unravel_index(int(np.argmax(rel)), err.shape)
    measured, budget = float(err[k]), float(entry_budget[k])
    if not measured <= budget:
        raise NormPropertyError("reference", measured=measured, bound=budget, gamma=prep.gamma, beta=prep.beta,
                                x=rows[k[0] : k[0] + 1], eps=ref_spec.eps, dtype=out, d=prep.d,
                                detail=f"|y - y_ref| at row {k[0]}, channel {k[1]}: got {y[k]!r}, float64 reference "
                                       f"{spec.kind} gives {y_ref[k]!r}; PyTorch's own error {err_pt:.3g}")
    return Measurement("reference", measured, budget, measured / budget if budget > 0 else 0.0, prep.d,
                       rows.shape[0], out)


def _prepare(norm: Any, x: Any, kw: dict[str, Any]) -> PreparedNorm:
    if isinstance(norm, PreparedNorm):
        return norm
    d = kw.pop("d", None)
    if d is None:
        shape = np.shape(x.detach() if is_torch_tensor(x) else x)
        if not shape:
            raise InputShapeError("x: expected shape (..., d), got a scalar")
        d = int(shape[-1])
    return prepare_norm(norm, d, **kw)


def assert_mean_centring_kernel(norm: Any, x: Any, **kwargs: Any) -> tuple[Measurement, Measurement]:
    """Assert T1 and T2 for ``norm`` on inputs ``x`` (shape (..., d)) within the T10 bound of its dtype.

    ``norm`` is a :class:`PreparedNorm` or anything :func:`prepare_norm` accepts; the
    keyword arguments (gamma, beta, eps, dtype, weight_offset, compute_dtype, d) go to it.
    Returns the (T1, T2) measurements.

    Raises:
        NormPropertyError: a bound is exceeded (the message is the counterexample).
        InputShapeError, DegenerateScaleError: bad input, or a zero scale (T6).
    """
    prep = _prepare(norm, x, dict(kwargs))
    return check_hyperplane(prep, x), check_kernel(prep, x)


def assert_no_kernel(norm: Any, x: Any = None, *, seed: int = 0, **kwargs: Any) -> Measurement:
    """Assert T5: ``norm`` (RMS-like) has no kernel along γ⁻¹ or 𝟙. Needs ``d=`` when ``x`` is None.

    Raises:
        NormPropertyError: a kernel direction was found; InputShapeError: bad input.
    """
    kw = dict(kwargs)
    if x is None and "d" not in kw and not isinstance(norm, PreparedNorm):
        raise InputShapeError("d: give d= (or x) so the probe inputs can be drawn")
    prep = _prepare(norm, x if x is not None else np.zeros((1, kw.get("d", 1))), kw)
    return check_no_kernel(prep, x, seed=seed)


def assert_shift_invariant(norm: Any, x: Any, t: Any, **kwargs: Any) -> Measurement:
    """Assert T8: norm(x + t𝟙) = norm(x) within the forward error bound (see :func:`check_shift`).

    Raises:
        NormPropertyError: the outputs differ by more; InputShapeError: bad input.
    """
    prep = _prepare(norm, x, dict(kwargs))
    return check_shift(prep, x, t)


def assert_matches_reference(norm: Any, spec: NormSpec, x: Any, *, factor: float = 2.0,
                             **kwargs: Any) -> Measurement:
    """Assert the output of ``norm`` matches ``spec``'s float64 forward within the PyTorch-relative budget.

    By default γ, β and ε are those of ``spec`` (pass gamma=/beta=/eps= to override).

    Raises:
        NormPropertyError: the error exceeds the budget; InputShapeError: bad input.
    """
    if not isinstance(spec, NormSpec):
        raise InputShapeError(f"spec: expected a NormSpec, got {type(spec).__name__}")
    kw = dict(kwargs)
    kw.setdefault("d", spec.size)
    if not isinstance(norm, PreparedNorm) and not isinstance(norm, NormSpec):
        kw.setdefault("gamma", spec.gamma)
        kw.setdefault("beta", spec.beta if spec.bias is not None else None)
        kw.setdefault("eps", spec.eps)
    prep = _prepare(norm, x, kw)
    return check_reference(prep, spec, x, factor=factor)


def reference_spec_for(module: Any, expect: str) -> NormSpec | None:
    """The float64 reference a module claims to implement, or None when it cannot be known.

    :meth:`NormSpec.from_module` when the class is known; otherwise, for a module that
    exposes ``eps`` or ``variance_epsilon``, the spec of the expected kind ("layernorm"
    for mean-centring, "rmsnorm" for rms) with that ε.
    """
    try:
        return NormSpec.from_module(module)
    except DeadirError:
        pass
    _, eps = _module_eps(module)
    if eps is None:
        return None
    kind: NormKind = "layernorm" if expect == "mean-centring" else "rmsnorm"
    weight: Any = getattr(module, "weight", None)
    bias: Any = getattr(module, "bias", None)
    d = int(weight.numel()) if is_torch_tensor(weight) else None
    if d is None:
        return None
    return NormSpec(kind, weight.reshape(-1), bias.reshape(-1) if is_torch_tensor(bias) else None, eps, d=d,
                    source=type(module).__name__)


def inverse_scale_ok(gamma: Any, offset: float = 0.0) -> bool:
    """Whether γ + offset has no zero or non-finite entry (so γ⁻¹ is defined)."""
    try:
        effective_scale(gamma, offset=offset)
    except DeadirError:
        return False
    return True
