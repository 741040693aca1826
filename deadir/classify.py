"""Classify a normalisation layer by probing it: which exact kernel does its output covariance have?

The decision rests on exactness, never on cosine alignment alone. Outputs are
standardised channel by channel (the correlation matrix R = S⁻¹CS⁻¹, S = diag of
channel standard deviations), which removes the spread of |γ| from the spectrum:
an RMSNorm with one tiny gain has an eigenvalue of C that is tiny relative to λmax
and a bottom eigenvector nearly parallel to γ⁻¹ (Gemma 3 and Qwen2.5 checkpoints
do this), yet R is well conditioned. A LayerNorm's R has an eigenvalue at the
rounding floor of the norm's dtype, along S·γ⁻¹.

Probe inputs: four families of 2d + 16 rows each (isotropic Gaussian; correlated with a
random per-row scale; a large common offset, |mean| ≈ 32·std; heavy-tailed Student-t with
2 degrees of freedom), each centred on its own mean before pooling (see the code).

The floor τ is the T10 bound (:func:`deadir.bound.kernel_error_bound`) carried into
standardised units. For a LayerNorm-like block of g channels, a unit kernel vector of R is
w = Sγ⁻¹/‖Sγ⁻¹‖, so wᵀRw = Var⟨γ⁻¹, ŷ⟩/‖Sγ⁻¹‖² ≤ mean over rows of raw(ρₖ)²/‖Sγ⁻¹‖², where
raw(ρ) = |⟨γ⁻¹, ŷ − β⟩|'s bound for a row with |mean|/std = ρ (affine in ρ) and depends on
γ, β only through S_β = Σ|βᵢ/γᵢ|. Neither is known for an arbitrary norm, so the outputs'
own statistics stand in: |γᵢ| by stdᵢ (then ‖Sγ⁻¹‖² = g) and |βᵢ/γᵢ| by |mean yᵢ|/stdᵢ.
ρₖ is measured on the probe rows (with the norm's ε when it exposes one, else 0). First the
whole row is one block (LayerNorm); when that gives no clean split, each group size g | d
(GroupNorm: 2-channel groups meet rows with |mean| ≫ std that the whole row does not).
Constant channels (γᵢ = 0, or γᵢẑᵢ lost in the rounding of βᵢ) drop their ẑᵢ from the live
channels' hyperplane, so each row's raw also carries Σ_const |ẑᵢ| (see ``_floor``).
Whether a given vector (γ⁻¹, 𝟙) spans the kernel is decided by its own Rayleigh quotient ≤ τ.

Decision margins (not tolerances): an eigenvalue ≤ τ counts as kernel, and the kind is only
decided when the next one is ≥ GAP_MARGIN·τ; a floor within GAP_MARGIN of Marchenko–Pastur's
lower edge (1 − √(d/N))² cannot show a gap and the probe is "inconclusive".

Two solvers, one decision rule (issue 16: decisive at LLM widths).

* ``method="dense"`` (the default up to ``DENSE_MAX_D`` = 1024): R is formed (d × d) and
  eigensolved; k = the number of eigenvalues ≤ τ, the gap is the next eigenvalue.
* ``method="iterative"`` (the default above it): R is never formed. Z (N × d, standardised) is
  kept and R·V = Zᵀ(Z·V)/N is applied to blocks of vectors (O(N·d) each). The kernel is built
  from *candidate vectors* tested in O(N·d) each — γ⁻¹, 𝟙, and γ⁻¹ (or 𝟙) restricted to each
  contiguous group for every group count G | d with G ≤ MAX_GROUPS — by their own standardised
  Rayleigh quotient ≤ τ (the same test as the dense path). What is left is a *gap certificate*:
  λmin of R on the orthogonal complement K⊥ of the accepted candidates must be ≥ GAP_MARGIN·τ.
  A block Lanczos (block size LANCZOS_BLOCK, full reorthogonalisation, Rayleigh–Ritz on the
  whole Krylov basis) started from Gaussian vectors projected onto K⊥ gives Ritz values
  θ₁ ≤ … ≤ θₘ. Ritz values are upper bounds on λmin (Courant–Fischer), so θ₁ < GAP_MARGIN·τ
  proves there is *no* clean gap; a Ritz vector whose exact Rayleigh quotient is ≤ τ is a kernel
  vector the candidates missed, and is added to K (at most LANCZOS_BLOCK of them). The lower
  bound comes from Kuczyński and Woźniakowski (SIAM J. Matrix Anal. Appl. 13, 1992, Thm 4.2):
  for an n × n positive definite A and a start vector uniform on the sphere, k Lanczos steps
  under-estimate λmax(A) by a relative ε or more with probability ≤ 1.648·√n·exp(−√ε·(2k−1)).
  Applied to A = λ_ub·I − R on K⊥ (Krylov spaces are shift invariant) and to R itself (for
  λ_ub = θₘ/(1 − ε)), and using that the block Krylov space contains each column's own Krylov
  space (so the block estimate fails only if every one of the b independent columns fails):
  with probability ≥ 1 − MISS_PROBABILITY over the start block,

      λmin(R on K⊥) ≥ L = (θ₁ − ε·λ_ub)/(1 − ε),   ε = (ln(1.648·√n / p₁)/(2k − 1))²,
      p₁ = (MISS_PROBABILITY/2)^(1/b).

  The solver stops as soon as L ≥ GAP_MARGIN·τ (certified), or after LANCZOS_MAX_STEPS steps
  (then the verdict is "other: inconclusive", never a guess).

Why the solver's tolerance cannot be confused with the float floor: no kernel decision reads an
eigenvalue estimate. Membership in the kernel is the exact float64 Rayleigh quotient of an
explicit vector against τ (error ≤ (γ_N + γ_d)(u₆₄)·d, added to τ; Cauchy–Schwarz with
Σₖ‖zₖ‖²/N = d), and the gap is decided by L, a *lower* bound, against GAP_MARGIN·τ; the
solver's ε only moves L down, which can turn a verdict into "inconclusive" but never into a
wrong kind. The same (γ_N + γ_d)(u₆₄)·d bounds ‖fl(R·v) − R·v‖ (Weyl: eigenvalues move by no
more), far below the Marchenko–Pastur edge the gap is measured against. The residual risk is
MISS_PROBABILITY (1e-9) over the start vectors, drawn from their own random stream (the norm
never sees them).

Probe at large d (d > DENSE_MAX_D): 4 families of 3d/4 + 16 rows (N ≈ 3d; MP's edge
(1 − √(1/3))² ≈ 0.18), stored in float32 (the inputs *are* those float32 values; row statistics
are taken in float64), a low-rank correlated family (no d × d mixing matrix), a Gaussian scale
mixture (exp(N(0, ¼)) per entry) instead of Student-t with 2 degrees of freedom — each family
has fewer than d rows, so a family with an infinite variance would dominate the standardisation
and leave near-null directions of its own — and the offset family's common offset lowered from
32 std to the largest of 32, 16, …, ½, 0 whose a-priori floor (the T10 bound at γ = 1, β = 0)
stays within FLOOR_BUDGET of MP's edge: T10's centring term grows as d²u(1 + ρ), so at d = 4096
in float32 an offset of 32 std alone would put τ above anything resolvable.
Memory: the N × d float32 inputs, one N × d float64 output array (standardised in place), and
blocks of LANCZOS_BLOCK vectors — about 36·d² bytes (0.6 GB at d = 4096).

Outliers at the top. The certificate's error is ε·λmax, so a few outlying eigenvalues cost many
steps: scale-then-centre's small-γ channels are all dominated by the common mean term and
correlate into one eigenvalue ≈ 100 over a bulk of O(1) (at d = 4096, |γ| log-uniform on
[0.1, 10], 80 steps certified only ≥ −0.11 against a Ritz value 0.11). So after DEFLATE_AFTER
steps, when the certificate does not yet hold, the Ritz vectors whose values exceed
OUTLIER_FACTOR × the median one span T, K⊥ = W ⊕ T, and with R on K⊥ = [[A, B], [Bᵀ, C]] in that
split, λmin(R on K⊥) ≥ min(λmin(A), λmin(C)) − ‖B‖₂ (Weyl on the off-diagonal blocks). λmin(C) is
exact (t × t), ‖B‖₂ ≤ ‖B‖_F comes from one block product (plus √t times the evaluation error
above), and λmin(A) is certified by the same Lanczos on W, whose λmax no longer holds the
outliers. T need not be invariant: a poor T only enlarges ‖B‖ and weakens L, never over-states it.

Limits of the iterative certificate: it certifies gaps down to about ε·λmax of the bulk, not down to
GAP_MARGIN·τ itself, so a norm whose non-kernel spectrum reaches below that (for example
scale-then-centre with |γ| spread over 10⁶) is "other: inconclusive" on this path, never a wrong
kind; method="dense" resolves it at O(N·d²).

Misbehaving norms (issue 13): every call of the norm runs with a timeout (``timeout`` seconds per
call, default DEFAULT_TIMEOUT; the call cannot be cancelled, so a hung call is abandoned on a
daemon thread and NormTimeoutError raised); anything the norm raises becomes NormCallError;
d above ``max_d`` (default MAX_D) is refused before anything is allocated, and a MemoryError
becomes ProbeTooLargeError. Determinism: a subset of the isotropic rows is run twice more and
must reproduce the first outputs within DETERMINISM_MARGIN·((d + 1)·u_c·max|y| + u·|y|) (two
evaluations that differ only in reduction order differ by at most the rounding of the row
statistics and of the output); otherwise NondeterministicNormError — a norm that alternates
LayerNorm and RMSNorm, or adds fresh noise to a LayerNorm, gets that error, not a kind. A noisy
but repeatable norm is caught by the scale test instead: norm(2x) must equal norm(x) within
rounding to be "rms"; a change between rounding and SCALE_INVARIANCE_MARGIN is "other"
("neither scale invariant nor clearly not"), never "rms".
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from deadir.arrays import FloatArray, as_float64, as_vector, is_torch_tensor
from deadir.bound import gamma_k, kernel_error_bound, unit_roundoff
from deadir.errors import DeadirError, InputShapeError
from deadir.norms import NormSpec
from deadir.precision import default_compute_dtype

ClassKind = Literal["mean-centring", "group-centring", "rms", "none", "other"]
Method = Literal["auto", "dense", "iterative"]

# Decision margin: τ is an upper bound on a kernel eigenvalue, so anything above it is not
# one under the rounding model; the factor 8 keeps a clear gap for what that first-order
# model leaves out (O(u²) terms, and the std/mean stand-ins for |γ| and |β/γ|), while any
# generic non-kernel eigenvalue (≥ Marchenko–Pastur's edge, ≈ 0.4 for N ≈ 8d) is far above it.
GAP_MARGIN = 8.0
# Decision margin for "no zero component": relative to an equal-weight unit vector (entries
# 1/√d), a standardised kernel component 1000x smaller counts as zero. A LayerNorm's kernel
# S·γ⁻¹ has entries ±std(zᵢ)/‖·‖, all O(1/√d) whatever the spread of γ, so it is far above;
# a kernel vector supported on a subset of channels (constant channels, a projection) is
# at rounding level there. The eigenvector's own error (sin θ ≤ √(τ/gap), Davis–Kahan) is far
# below this margin. It shapes the measured kernel only (zero components, group blocks); whether
# a given vector (γ⁻¹, 𝟙) is in the kernel is decided by its Rayleigh quotient against τ alone.
ZERO_COMPONENT = 1e-3
# "Large" common offset of the offset probe family, in units of the rows' std: ρ ≈ 32 is far
# from centred inputs, yet the T10 floor (∝ 1 + ρ) stays resolvable in float32 at d = 1000.
COMMON_OFFSET = 32.0
# Decision margin: probe rows with |mean| > RHO_CAP·std are not measured (a LayerNorm's floor
# grows as (1 + ρ)²); 4x the common offset keeps most of the offset family in.
RHO_CAP = 4.0 * COMMON_OFFSET
# Decision margin of the scale-invariance test: norm(2x) − norm(x) is rounding (and ε) for a
# scale-invariant norm, O(1) of the output's spread for anything else (identity: 100 %, tanh:
# tens of %); 1 % sits between, above bfloat16's output rounding (u = 2⁻⁸ ≈ 0.4 %). A change
# above the rounding bound but below 1 % is neither: "other".
SCALE_INVARIANCE_MARGIN = 1e-2
# Safety factor on the rounding bounds of the determinism and scale-invariance tests (the bound
# is first order and per element; 4x covers the O(u²) terms and the max-|y| stand-in).
DETERMINISM_MARGIN = 4.0
# Widths up to this are classified densely by default (R formed and eigensolved: O(N·d²) with
# N ≈ 8d, seconds at d = 1024); above, the iterative path (module docstring).
DENSE_MAX_D = 1024
# Largest d accepted unless the caller raises it (max_d=...): the iterative path keeps about
# 2·N·d·8 bytes ≈ 32·d² bytes (2.1 GB at d = 8192, the widest current LLMs).
MAX_D = 8192
# Seconds one call of the norm may take (a probe batch is at most ~4M values); CI-friendly.
DEFAULT_TIMEOUT = 120.0
# Probe batches are cut to at most this many values (bounds the norm's own temporaries).
CHUNK_VALUES = 1 << 22
# Iterative solver: block size, step limit, and the probability that the gap certificate is
# wrong (over the random start block; module docstring).
LANCZOS_BLOCK = 8
LANCZOS_MAX_STEPS = 80
# Iterative solver: steps before the outlying top of the spectrum is split off, and what counts as
# an outlier (a Ritz value above this multiple of the median one). Scale-then-centre's small-γ
# channels are all dominated by the common mean term, so they correlate into one eigenvalue of
# order d·(share of such channels) ≫ the bulk; the certificate's error scales with λmax.
DEFLATE_AFTER = 6
OUTLIER_FACTOR = 4.0
MISS_PROBABILITY = 1e-9
# Largest group count tried as a group-centring hypothesis on the iterative path (GroupNorm
# uses 32 in practice; the dense path reads the group count off the spectrum instead).
MAX_GROUPS = 256
# A-priori floor budget for choosing the offset family's offset at large d: the a-priori τ at
# γ = 1, β = 0 must stay below FLOOR_BUDGET·(MP edge)/GAP_MARGIN.
FLOOR_BUDGET = 0.25


class NormCallError(DeadirError, RuntimeError):
    """The probed norm raised an exception on a probe batch (wrapped, with its type and message)."""


class NormTimeoutError(DeadirError, TimeoutError):
    """One call of the probed norm did not return within the timeout."""


class NondeterministicNormError(DeadirError, RuntimeError):
    """The probed norm gave different outputs for the same input, beyond rounding."""


class ProbeTooLargeError(DeadirError, ValueError):
    """d exceeds the classifier's limit (``max_d``), or the probe does not fit in memory."""


@dataclasses.dataclass(frozen=True)
class NormClass:
    """Result of :func:`classify_norm`.

    Attributes:
        kind: "mean-centring" (one kernel direction with no zero component, as LayerNorm),
            "group-centring" (one per contiguous group, as GroupNorm), "rms" (no kernel,
            scale invariant, as RMSNorm), "none" (no kernel, not scale invariant: identity,
            tanh), or "other" (anything else, or an inconclusive probe: see ``note``).
        d: the probed size; dtype: the dtype the norm was run in.
        kernel_dim: dimension of the measured kernel (constant channels included).
        kernel_basis: orthonormal basis of that kernel, float64, shape (d, kernel_dim).
        matches_inverse_scale: whether the kernel equals span(γ⁻¹) (per group for
            group-centring) for the norm's own γ; None when γ is unknown or has zeros.
        kernel_is_ones: whether the kernel is span(𝟙) (LayerNorm with constant γ, or
            scale-then-centre).
        constant_channels: channels whose output never varied (each eᵢ is a kernel vector).
        floor: τ, the rounding floor in standardised units (see module docstring).
        bottom_eigvals: the smallest eigenvalues of the standardised covariance (iterative
            path: the kernel vectors' Rayleigh quotients, then the smallest Ritz values on K⊥).
        gap: the smallest eigenvalue above the floor (inf when all are at the floor); on the
            iterative path the smallest Ritz value on K⊥ (an upper bound of it).
        inverse_scale_rayleigh: standardised Rayleigh quotient of γ⁻¹ (None if γ unknown).
        scale_invariant: whether norm(2x) = norm(x) on the probe (within 1 %).
        note: why the kind is what it is, in words.
        method: "dense" or "iterative" (module docstring).
        gap_lower: the certified lower bound on the gap that the decision used (dense: the
            eigenvalue itself; iterative: L of the module docstring).
        rows: probe rows measured (N).
    """

    kind: ClassKind
    d: int
    dtype: str
    kernel_dim: int
    kernel_basis: FloatArray
    matches_inverse_scale: bool | None
    kernel_is_ones: bool
    constant_channels: tuple[int, ...]
    floor: float
    bottom_eigvals: tuple[float, ...]
    gap: float
    inverse_scale_rayleigh: float | None
    scale_invariant: bool
    note: str
    method: str = "dense"
    gap_lower: float = math.nan
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the basis is omitted; it can be large)."""
        out = dataclasses.asdict(self)
        del out["kernel_basis"]
        out["constant_channels"] = list(self.constant_channels)
        out["bottom_eigvals"] = list(self.bottom_eigvals)
        return out


@dataclasses.dataclass(frozen=True)
class _Probe:
    forward: Callable[[FloatArray], FloatArray]
    dtype: str
    compute_dtype: str
    gamma: FloatArray | None
    timeout: float | None
    takes_float32: bool = False  # a torch forward casts its input itself: float32 probe rows go in as they are


@dataclasses.dataclass
class _Measured:
    """Standardised probe outputs and what the floors need (module docstring)."""

    x: FloatArray  # probe inputs of the measured rows
    whole: tuple[FloatArray, FloatArray]  # each row's input mean and variance (float64)
    z: FloatArray  # (N, live) centred within family, divided by each live channel's std
    std: FloatArray
    mean: FloatArray
    live: Any
    constant: Any
    eps: float
    scale_inv: bool
    scale_note: str


def classify_norm(
    norm: Any,
    d: int,
    *,
    seed: int = 0,
    gamma: Any = None,
    dtype: Any = None,
    compute_dtype: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_d: int = MAX_D,
    method: Method = "auto",
) -> NormClass:
    """Probe ``norm`` with random inputs and classify its normalisation from its output covariance.

    ``norm`` is a torch module (run in its parameters' dtype and device), a
    :class:`NormSpec` (its float64 reference forward), or any callable mapping an
    (n, d) array to an (n, d) array: it gets float64 numpy input, or a torch tensor
    when ``dtype`` is a torch dtype. ``gamma`` overrides the scale read from the
    module (``.weight``, or the spec's effective γ). ``compute_dtype`` names the dtype
    the norm accumulates its statistics in (default: float32 for half-precision torch
    modules, which upcast, else the output dtype). ``timeout``: seconds one call of the
    norm may take (None: no limit). ``max_d``: the largest d accepted (memory grows as
    ≈ 32·d² bytes). ``method``: "dense", "iterative", or "auto" (dense up to DENSE_MAX_D).

    Raises:
        InputShapeError: d < 2, a bad seed/timeout/method, a module whose weight does not have d
            entries, or the norm returns the wrong shape or non-finite values.
        ProbeTooLargeError: d > max_d, or the probe does not fit in memory.
        NormCallError: the norm raised on a probe batch.
        NormTimeoutError: one call of the norm took longer than ``timeout`` seconds.
        NondeterministicNormError: the same input twice gave different outputs beyond rounding.
    """
    if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 2:
        raise InputShapeError(f"d: must be an integer ≥ 2 (a 1-D norm output has no covariance structure), got {d!r}")
    if not isinstance(max_d, (int, np.integer)) or isinstance(max_d, bool) or max_d < 2:
        raise InputShapeError(f"max_d: must be an integer ≥ 2, got {max_d!r}")
    if d > max_d:
        raise ProbeTooLargeError(
            f"d: {d} exceeds the classifier's limit max_d={max_d} (the probe keeps about "
            f"{32 * d * d / 2**30:.1f} GiB); pass max_d=... to raise it")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputShapeError(f"seed: must be a non-negative integer, got {seed!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise InputShapeError(f"timeout: must be a positive number of seconds or None, got {timeout!r}")
    if method not in ("auto", "dense", "iterative"):
        raise InputShapeError(f"method: expected 'auto', 'dense' or 'iterative', got {method!r}")
    d = int(d)
    probe = _make_probe(norm, d, gamma, dtype, compute_dtype, None if timeout is None else float(timeout))
    iterative = method == "iterative" or (method == "auto" and d > DENSE_MAX_D)
    try:
        measured = _measure(probe, norm, d, int(seed))
        if iterative:
            return _classify_iterative(probe, measured, d, int(seed))
        return _classify_dense(probe, measured, d)
    except MemoryError:
        raise ProbeTooLargeError(
            f"d: the probe at d={d} does not fit in memory (it needs about {32 * d * d / 2**30:.1f} GiB)") from None


def _measure(probe: _Probe, norm: Any, d: int, seed: int) -> _Measured:
    """Run the probe, check determinism and scale invariance, standardise (shared by both paths)."""
    rng = np.random.default_rng(seed)
    x, families = _probe_inputs(rng, d, probe)
    y, mu_x, var_x = _run_chunked(probe, x, d)
    eps = _probe_eps(norm)
    iso_rows = families["isotropic"]
    m = min(64, iso_rows.stop - iso_rows.start)
    x_iso, y_iso = x[iso_rows][:m], y[iso_rows][:m]
    _check_deterministic(probe, x_iso, y_iso, d)
    scale_inv, scale_note = _scale_invariant(probe, x_iso, y_iso, d, eps)

    # rows with |mean| > RHO_CAP·std are left out: a LayerNorm's rounding on them grows as
    # (1 + ρ) without bound (ε = 0 and ρ = ∞ at d = 2), and the kernel property is per row,
    # so any subset of rows still has it
    with np.errstate(divide="ignore", invalid="ignore"):
        rho_row = np.where(var_x + eps > 0, np.abs(mu_x) / np.sqrt(var_x + eps), np.inf)
    well = rho_row <= RHO_CAP
    groups: list[Any] = list(families.values())
    if not np.all(well):
        label = np.empty(x.shape[0], dtype=np.int64)
        for i, rows in enumerate(families.values()):
            label[rows] = i
        x, y, label, mu_x, var_x = x[well], y[well], label[well], mu_x[well], var_x[well]
        groups = [label == i for i in range(len(families))]

    # centre within each probe family: a kernel vector of every family's covariance is one of
    # their pooled within-family covariance, and the offset family's mean does not leak in as
    # a spurious common direction (it would make the identity look nearly rank one)
    mean = y.mean(axis=0)
    # a channel is constant when its output never varies within any family, decided on the
    # outputs themselves: a family mean of n equal values c need not round to c (0.05 in
    # float64), which would leave rounding noise that standardising blows up to unit variance
    varies = np.zeros(y.shape[1], dtype=bool)
    for sel in groups:
        if isinstance(sel, slice):
            block = y[sel]  # a view: centred in place
            varies |= np.ptp(block, axis=0) > 0
            block -= block.mean(axis=0)
        elif np.any(sel):
            part = y[sel]
            varies |= np.ptp(part, axis=0) > 0
            y[sel] = part - part.mean(axis=0)
    if not np.all(varies):
        y[:, ~varies] = 0.0  # in place: y is ours (the chunked forward filled it)
    std = np.sqrt(np.einsum("ij,ij->j", y, y) / y.shape[0])
    constant = np.flatnonzero(std == 0.0)
    live = np.flatnonzero(std > 0.0)
    if live.size == d:
        y /= std  # in place: no second N × d array at LLM widths
        z = y
    else:
        z = y[:, live] / std[live]
    return _Measured(x=x, whole=(mu_x, var_x), z=z, std=std, mean=mean, live=live, constant=constant, eps=eps,
                     scale_inv=scale_inv, scale_note=scale_note)


def _classify_dense(probe: _Probe, ms: _Measured, d: int) -> NormClass:
    """R formed and eigensolved (small d; the reference the iterative path is pinned against)."""
    z, live = ms.z, ms.live
    n_rows = z.shape[0]
    if live.size < 2:
        return _constant_result(probe, d, ms, n_rows, "dense")
    r = (z.T @ z) / n_rows
    mu, w = np.linalg.eigh((r + r.T) / 2.0)
    # float64 rounding of the Gram matrix: |fl(zᵀz) − zᵀz| ≤ γ_N(u)·|z|ᵀ|z| entrywise, and
    # (|z|ᵀ|z|)ᵢⱼ/N ≤ √(RᵢᵢRⱼⱼ) = 1 (Cauchy–Schwarz), so a unit w moves by ≤ γ_N(u)·‖w‖₁² ≤ γ_N(u)·d;
    # eigh is backward stable with ‖ΔR‖ ≤ d·u·‖R‖ (LAPACK's small constant absorbed in d)
    u64 = unit_roundoff("float64")
    gram = gamma_k(n_rows, u64) * live.size + live.size * u64 * float(mu[-1])

    def floor_for(size: int) -> float:
        return float(_floor(ms.x, ms.std, ms.mean, live, probe, size, ms.eps, ms.whole) + gram)

    tau = floor_for(live.size)
    k = int(np.count_nonzero(mu <= tau))
    if live.size == d:
        # small groups (2 channels) see ill-conditioned rows (|mean| ≫ std within a group) that
        # the whole-row floor does not: a group size whose own floor splits the spectrum cleanly
        # at its number of groups, more than the whole-row count, is the better hypothesis
        for groups in range(max(2, k + 1), d // 2 + 1):
            if d % groups or (groups < mu.size and mu[groups] < GAP_MARGIN * mu[groups - 1]):
                continue  # no group structure, or no gap after the groups-th eigenvalue at any floor
            tau_g = floor_for(d // groups)
            if mu[groups - 1] <= tau_g and (groups == mu.size or mu[groups] >= GAP_MARGIN * tau_g):
                tau, k = tau_g, groups
                break
    gap = float(mu[k]) if k < mu.size else np.inf
    kernel_std = w[:, :k]  # in standardised coordinates

    def std_rayleigh(vec: FloatArray) -> float:
        s = vec[live] * ms.std[live]
        norm_s = float(np.linalg.norm(s))
        return float(s @ r @ s) / norm_s**2 if norm_s > 0 else np.inf

    # Exactness test for a candidate kernel vector (γ⁻¹, 𝟙, γ⁻¹ on one group): its own
    # standardised Rayleigh quotient against τ. τ bounds that quotient for the true kernel vector
    # of the hypothesis (module docstring), so no allowance for the measured eigenvectors' error
    # (sin θ ≤ √(τ/gap), Davis–Kahan) enters: the measured basis is not used. An alignment test
    # ("small component off the measured kernel") is not equivalent: at d = 2 a γ⁻¹ within 0.1 %
    # of 𝟙 is 1e-3 off it, i.e. a Rayleigh quotient ≈ gap·1e-6, far above a float64 or float32
    # floor. Scale-then-centre's 𝟙 is covered by the same τ: y − β is a LayerNorm with γ = 1 of
    # γ⊙x, whose centring term (∝ d²u(1 + ρ)) leads the bound, and its standardised Rayleigh
    # quotient is Var⟨𝟙, ŷ⟩/Σstd² with Σstd² ≈ d, the stand-in's normalisation. Evaluating sᵀRs
    # in float64 adds ≤ γ_d(u)·‖s‖₁²·max|Rᵢⱼ| ≤ γ_d(u)·d (|Rᵢⱼ| ≤ 1), added below.
    evaluation = gamma_k(live.size, u64) * live.size

    def in_kernel(vec: FloatArray) -> bool:
        """Exact up to rounding: the vector's standardised Rayleigh quotient is at the floor τ."""
        return bool(std_rayleigh(vec) <= tau + evaluation)

    ones_kernel = bool(k == 1 and in_kernel(np.ones(d)))
    inv_rayleigh = None
    inv_in_kernel = False
    groups_inv: list[bool] = []
    if probe.gamma is not None and probe.gamma.size == d and np.all(probe.gamma != 0):
        inv = 1.0 / probe.gamma
        inv_rayleigh = std_rayleigh(inv)
        inv_in_kernel = k >= 1 and in_kernel(inv)
        if k > 1 and d % k == 0:
            size = d // k
            for g in range(k):
                block = np.zeros(d)
                block[g * size : (g + 1) * size] = inv[g * size : (g + 1) * size]
                groups_inv.append(in_kernel(block))

    bottom = tuple(float(m) for m in mu[: min(mu.size, max(k + 2, 3))])
    return _verdict(probe, d, ms, n_rows=n_rows, k=k, tau=tau, gap=gap, gap_lower=gap, bottom=bottom,
                    kernel_std=kernel_std, inv_rayleigh=inv_rayleigh, inv_in_kernel=inv_in_kernel,
                    ones_kernel=ones_kernel, groups_inv=groups_inv, method="dense", uncertified="")


def _verdict(probe: _Probe, d: int, ms: _Measured, *, n_rows: int, k: int, tau: float, gap: float,
             gap_lower: float, bottom: tuple[float, ...], kernel_std: FloatArray, inv_rayleigh: float | None,
             inv_in_kernel: bool, ones_kernel: bool, groups_inv: list[bool], method: str,
             uncertified: str) -> NormClass:
    """The decision from the measured kernel (shared by both paths; module docstring)."""
    live, constant, std = ms.live, ms.constant, ms.std
    basis_full = np.zeros((d, k + constant.size))
    basis_full[live, :k] = kernel_std / std[live, None]
    basis_full[constant, k:] = np.eye(constant.size)
    basis = np.linalg.qr(basis_full)[0] if basis_full.shape[1] else basis_full
    scale_inv = ms.scale_inv

    def result(kind: ClassKind, note: str, ones: bool, matches: bool | None = None) -> NormClass:
        return NormClass(
            kind=kind, d=d, dtype=probe.dtype, kernel_dim=int(basis.shape[1]), kernel_basis=basis,
            matches_inverse_scale=matches, kernel_is_ones=bool(ones),
            constant_channels=tuple(int(i) for i in constant), floor=float(tau), bottom_eigvals=bottom,
            gap=float(gap), inverse_scale_rayleigh=inv_rayleigh, scale_invariant=scale_inv, note=note,
            method=method, gap_lower=float(gap_lower), rows=int(n_rows),
        )

    # the non-kernel eigenvalues of a standardised sample covariance of N generic rows sit near
    # or above Marchenko–Pastur's lower edge (1 − √(d/N))²; a floor within GAP_MARGIN of it
    # cannot show a gap whatever the norm is
    resolvable = (1.0 - np.sqrt(live.size / n_rows)) ** 2 / GAP_MARGIN
    if tau >= resolvable:
        return result("other", f"inconclusive: the rounding floor τ={tau:.2g} of {probe.dtype} is too high to "
                      "resolve a " + ("kernel (it carries the terms the constant channels lose)" if constant.size else
                         "kernel; probe in a wider dtype"), ones_kernel)
    if gap_lower < GAP_MARGIN * tau:
        if uncertified:
            return result("other", uncertified, ones_kernel)
        return result("other", f"no clear gap above the floor τ={tau:.2g}: next eigenvalue {gap:.2g}", ones_kernel)
    prefix = f"{constant.size} constant channel(s) {constant[:10].tolist()} are kernel axes; " if constant.size else ""
    if k == 0:
        if constant.size:
            return result("other", prefix + "the live channels have no kernel", False)
        if ms.scale_note:
            return result("other", "no kernel at the rounding floor; " + ms.scale_note, False)
        if scale_inv:
            return result("rms", "no kernel at the rounding floor; scale invariant (RMS-like)", False)
        return result("none", "no kernel at the rounding floor; not scale invariant (no normalisation)", False)
    if k == 1:
        if np.min(np.abs(kernel_std[:, 0])) * np.sqrt(live.size) < ZERO_COMPONENT:
            return result("other", prefix + "a one-dimensional kernel with (near-)zero components", ones_kernel)
        matches = None if inv_rayleigh is None else inv_in_kernel
        what = "γ⁻¹" if matches else ("𝟙" if ones_kernel else "a direction other than γ⁻¹")
        return result("mean-centring", prefix + f"one kernel direction at the rounding floor, spanned by {what}",
                      ones_kernel, matches)
    if _block_structured(kernel_std, live, d, k, tau):
        return result("group-centring",
                      prefix + f"{k} kernel directions, one per contiguous group of {d // k} channels", False,
                      None if not groups_inv else all(groups_inv))
    return result("other", prefix + f"a {k}-dimensional kernel without group structure", False)


def _constant_result(probe: _Probe, d: int, ms: _Measured, n_rows: int, method: str) -> NormClass:
    return NormClass(
        kind="other", d=d, dtype=probe.dtype, kernel_dim=int(ms.constant.size),
        kernel_basis=np.eye(d)[:, ms.constant], matches_inverse_scale=None, kernel_is_ones=False,
        constant_channels=tuple(int(i) for i in ms.constant), floor=np.inf, bottom_eigvals=(), gap=np.inf,
        inverse_scale_rayleigh=None, scale_invariant=ms.scale_inv,
        note="the output is constant in all but at most one channel", method=method, rows=int(n_rows))


def _classify_iterative(probe: _Probe, ms: _Measured, d: int, seed: int) -> NormClass:
    """Candidate vectors tested in O(N·d), then a block-Lanczos gap certificate on K⊥ (module docstring)."""
    z, live, std = ms.z, ms.live, ms.std
    n_rows, n_live = z.shape
    if n_live < 2:
        return _constant_result(probe, d, ms, n_rows, "iterative")
    u64 = unit_roundoff("float64")
    # float64 evaluation of ‖Z·s‖²/N for a unit s, and of R·v: ≤ (γ_d + γ_N)(u)·d (module docstring)
    evaluation = (gamma_k(n_live, u64) + gamma_k(n_rows, u64)) * n_live
    floors: dict[int, float] = {}

    def floor_for(size: int) -> float:
        if size not in floors:
            floors[size] = _floor(ms.x, std, ms.mean, live, probe, size, ms.eps, ms.whole) + evaluation
        return floors[size]

    def standardised(vec: FloatArray) -> FloatArray | None:
        s = vec[live] * std[live]
        norm_s = float(np.linalg.norm(s))
        return s / norm_s if norm_s > 0 and math.isfinite(norm_s) else None

    def rayleigh(unit: FloatArray) -> float:
        p = z @ unit
        return float(p @ p) / float(n_rows)

    tau = floor_for(n_live)
    resolvable = (1.0 - np.sqrt(n_live / n_rows)) ** 2 / GAP_MARGIN
    inv = None
    if probe.gamma is not None and probe.gamma.size == d and np.all(probe.gamma != 0):
        inv = 1.0 / probe.gamma
    ones_s = standardised(np.ones(d))
    rq_ones = rayleigh(ones_s) if ones_s is not None else np.inf
    inv_s = standardised(inv) if inv is not None else None
    inv_rayleigh = rayleigh(inv_s) if inv_s is not None else None
    kernel: list[FloatArray] = []
    if inv_s is not None and inv_rayleigh is not None and inv_rayleigh <= tau:
        kernel.append(inv_s)
    elif ones_s is not None and rq_ones <= tau:
        kernel.append(ones_s)
    groups_inv: list[bool] = []
    if n_live == d:
        # GroupNorm: the whole-row γ⁻¹ is the sum of the groups' kernel vectors, so it passes too;
        # a grouping whose every block is in the kernel is the finer (true) hypothesis
        base = inv if inv is not None else np.ones(d)
        found = _group_candidates(z, base * std, d, resolvable, floor_for)
        if found is not None:
            tau, kernel = found
            groups_inv = [True] * len(kernel) if inv is not None else []
    ones_kernel = bool(len(kernel) == 1 and rq_ones <= tau)
    inv_in_kernel = bool(kernel and inv_rayleigh is not None and inv_rayleigh <= tau)
    basis = np.column_stack(kernel) if kernel else np.zeros((n_live, 0))
    kernel_rq = [rayleigh(basis[:, j]) for j in range(basis.shape[1])]
    if tau >= resolvable:  # nothing the solver could add: the verdict is "inconclusive"
        return _verdict(probe, d, ms, n_rows=n_rows, k=basis.shape[1], tau=tau, gap=np.inf, gap_lower=-np.inf,
                        bottom=tuple(sorted(kernel_rq)), kernel_std=basis, inv_rayleigh=inv_rayleigh,
                        inv_in_kernel=inv_in_kernel, ones_kernel=ones_kernel, groups_inv=groups_inv,
                        method="iterative", uncertified="")
    ms.x = np.zeros((0, d))  # the floors are computed: release the N × d inputs before the solver
    rng = np.random.default_rng([seed, 0x1A2C])  # the start block's own stream (module docstring)
    target = GAP_MARGIN * tau
    while True:
        spec = _lanczos_bottom(z, n_rows, basis, rng, target, tau, max_steps=min(DEFLATE_AFTER, LANCZOS_MAX_STEPS))
        if spec.lower < target and spec.theta[0] > tau:
            spec = (_deflated_certificate(z, n_rows, basis, spec, rng, target, tau, evaluation)
                    or _lanczos_bottom(z, n_rows, basis, rng, target, tau))
        if spec.theta[0] <= tau and len(kernel_rq) < LANCZOS_BLOCK + len(kernel) and basis.shape[1] < n_live - 2:
            v = spec.vector - basis @ (basis.T @ spec.vector)
            v /= np.linalg.norm(v)
            rq = rayleigh(v)
            if rq <= tau:  # a kernel vector the candidates missed, by its own exact Rayleigh quotient
                basis = np.column_stack([basis, v])
                kernel_rq.append(rq)
                continue
        break
    theta0 = float(spec.theta[0])
    if theta0 < target:
        why = (f"no clear gap above the floor τ={tau:.2g}: a Ritz value {theta0:.2g} < {GAP_MARGIN:g}·τ on the "
               "complement of the kernel found (Ritz values are upper bounds: such an eigenvalue exists)")
    else:
        why = (f"inconclusive: after {spec.steps} block-Lanczos steps the smallest eigenvalue above the kernel is "
               f"certified only ≥ {spec.lower:.2g} (Ritz value {theta0:.2g}), below {GAP_MARGIN:g}·τ = {target:.2g}")
    bottom = tuple(sorted(kernel_rq)) + tuple(float(t) for t in spec.theta[:3])
    return _verdict(probe, d, ms, n_rows=n_rows, k=basis.shape[1], tau=tau, gap=theta0, gap_lower=spec.lower,
                    bottom=bottom, kernel_std=basis, inv_rayleigh=inv_rayleigh, inv_in_kernel=inv_in_kernel,
                    ones_kernel=ones_kernel, groups_inv=groups_inv, method="iterative", uncertified=why)


def _group_candidates(z: FloatArray, scaled: FloatArray, d: int, resolvable: float,
                      floor_for: Callable[[int], float]) -> tuple[float, list[FloatArray]] | None:
    """The finest contiguous grouping whose per-group restrictions of ``scaled`` (γ⁻¹·std or std) are all
    in the kernel at that grouping's own floor: (τ_G, unit block vectors), or None.

    Finest first: the sum of two groups' kernel vectors is a kernel vector too, so a coarser grouping of
    a GroupNorm would also pass. Per-group Rayleigh quotients for every G come from one pass over Z.
    """
    counts = [g for g in range(min(MAX_GROUPS, d // 2), 1, -1) if d % g == 0]
    if not counts:
        return None
    n_rows = z.shape[0]
    sums = {g: np.zeros(g) for g in counts}
    step = max(1, CHUNK_VALUES // d)
    for start in range(0, n_rows, step):
        q = z[start : start + step] * scaled
        for g in counts:
            p = q.reshape(q.shape[0], g, d // g).sum(axis=2)
            sums[g] += np.einsum("ij,ij->j", p, p)
    for g in counts:
        norms = (scaled * scaled).reshape(g, d // g).sum(axis=1)
        if np.any(norms == 0):
            continue
        rq = sums[g] / n_rows / norms
        if float(rq.max()) >= resolvable:  # cheap filter before the floor (one pass over x per group size)
            continue
        tau_g = floor_for(d // g)
        if float(rq.max()) <= tau_g:
            size = d // g
            blocks = []
            for j in range(g):
                v = np.zeros(d)
                v[j * size : (j + 1) * size] = scaled[j * size : (j + 1) * size]
                blocks.append(v / np.linalg.norm(v))
            return tau_g, blocks
    return None


def _deflated_certificate(z: FloatArray, n_rows: int, kernel: FloatArray, first: _Spectrum, rng: np.random.Generator,
                          target: float, tau: float, evaluation: float) -> _Spectrum | None:
    """The gap certificate with the outlying top of the spectrum split off (module docstring), or None
    when ``first`` shows no outliers.

    K⊥ = W ⊕ T, T spanned by the Ritz vectors of ``first`` whose Ritz values exceed OUTLIER_FACTOR × the
    median one. In that basis R on K⊥ is [[A, B], [Bᵀ, C]], so by Weyl
    λmin(R on K⊥) ≥ min(λmin(A), λmin(C)) − ‖B‖₂; λmin(C) is exact (a t × t matrix), ‖B‖₂ ≤ ‖B‖_F is
    computed from one block product, and λmin(A) is certified by the same block Lanczos on W, whose
    λmax no longer holds the outliers (the Kuczyński–Woźniakowski error scales with it).
    """
    theta = first.theta
    outliers = int(np.count_nonzero(theta > OUTLIER_FACTOR * float(np.median(theta))))
    outliers = min(outliers, first.top.shape[1])
    if theta.size < 4 or outliers == 0:
        return None
    top = first.top[:, :outliers]
    if kernel.shape[1]:
        top = top - kernel @ (kernel.T @ top)
    top = np.linalg.qr(top)[0]
    r_top = (z.T @ (z @ top)) / n_rows
    split = np.column_stack([kernel, top])
    coupling_block = r_top - split @ (split.T @ r_top)
    # the float64 evaluation of each column of R·T errs by ≤ `evaluation` (module docstring)
    coupling = float(np.linalg.norm(coupling_block)) + math.sqrt(outliers) * evaluation
    c = top.T @ r_top
    c_min = float(np.linalg.eigvalsh((c + c.T) / 2.0)[0]) - outliers * evaluation
    rest = _lanczos_bottom(z, n_rows, split, rng, target + coupling, tau)
    lower = min(rest.lower, c_min) - coupling
    return dataclasses.replace(rest, lower=lower, steps=first.steps + rest.steps)


@dataclasses.dataclass(frozen=True)
class _Spectrum:
    theta: FloatArray  # Ritz values on K⊥, ascending (each ≥ the matching eigenvalue)
    vector: FloatArray  # Ritz vector of theta[0] (unit, in K⊥)
    lower: float  # L: certified (probability ≥ 1 − MISS_PROBABILITY) lower bound on λmin(R on K⊥)
    steps: int
    top: FloatArray  # Ritz vectors of the largest Ritz values, descending (columns, unit, in K⊥)


def _lanczos_bottom(z: FloatArray, n_rows: int, kernel: FloatArray, rng: np.random.Generator, target: float,
                    tau: float, max_steps: int | None = None) -> _Spectrum:
    """Block Lanczos with full reorthogonalisation on R = ZᵀZ/N restricted to K⊥ (module docstring).

    Stops when L ≥ ``target``, when the smallest Ritz value is ≤ ``tau`` (a kernel vector to test),
    when the Krylov space is invariant (then the Ritz values are eigenvalues: L = θ₁), or after
    ``max_steps`` steps (default LANCZOS_MAX_STEPS). The Rayleigh–Ritz step (an eigensolve of the
    growing projected matrix) runs only at steps where the certificate can first hold, predicted from
    the last Ritz values (the bound's ε depends on the step count alone), and at least at
    geometrically spaced steps.
    """
    max_steps = LANCZOS_MAX_STEPS if max_steps is None else max_steps
    n_live = z.shape[1]
    n = n_live - kernel.shape[1]
    b = max(1, min(LANCZOS_BLOCK, n))

    def proj(v: FloatArray) -> FloatArray:
        return v - kernel @ (kernel.T @ v) if kernel.shape[1] else v

    v = proj(proj(rng.standard_normal((n_live, b))))
    v = np.linalg.qr(v)[0]
    q_all = np.empty((n_live, min(n, max_steps * b)))
    width = 0
    t = np.zeros((0, 0))
    p1 = (MISS_PROBABILITY / 2.0) ** (1.0 / b)
    log_term = math.log(1.648 * math.sqrt(n) / p1)

    def eps_at(k: int) -> float:
        return (log_term / (2 * k - 1)) ** 2

    def certified(theta0: float, theta_top: float, k: int) -> float:
        e = eps_at(k)
        if e >= 1.0:
            return -np.inf
        return (theta0 - e * theta_top / (1.0 - e)) / (1.0 - e)

    theta = np.array([np.inf])
    s = np.eye(b)
    lower = -np.inf
    step = 0
    next_check = 1
    solved_at = -1
    for step in range(1, max_steps + 1):
        w = proj((z.T @ (z @ v)) / n_rows)
        q_old = q_all[:, :width]
        cross = q_old.T @ w
        diag = v.T @ w
        t = np.block([[t, cross], [cross.T, (diag + diag.T) / 2.0]])
        q_all[:, width : width + v.shape[1]] = v
        width += v.shape[1]
        q = q_all[:, :width]
        spans = width >= n
        if step >= next_check or spans or step == max_steps:
            theta, s = np.linalg.eigh(t)
            solved_at = step
            lower = certified(float(theta[0]), float(theta[-1]), step)
            if lower >= target or theta[0] <= tau:
                break
            k_star = step + 1
            while k_star < max_steps and certified(float(theta[0]), float(theta[-1]), k_star) < target:
                k_star += 1
            next_check = max(step + 1, min(k_star, step + max(1, step // 2)))
        if spans:
            lower = float(theta[0])  # the basis spans K⊥: the Ritz values are its eigenvalues
            break
        nxt = w - q @ (q.T @ w)
        nxt = proj(nxt - q @ (q.T @ nxt))
        qr_q, qr_r = np.linalg.qr(nxt)
        u_small, sv, _ = np.linalg.svd(qr_r)
        keep = min(int(np.count_nonzero(sv > 1e-10 * max(float(np.linalg.norm(w)), 1e-300))), n - width)
        if keep == 0:
            # an invariant Krylov space: it holds a component of every eigenspace the random start
            # touches (almost surely all), so its Ritz values include λmin exactly
            if solved_at != step:
                theta, s = np.linalg.eigh(t)
            lower = float(theta[0])
            break
        v = qr_q @ u_small[:, :keep]
    q = q_all[:, :width]
    vector = q @ s[:, 0]
    top = q @ s[:, ::-1][:, : min(2 * LANCZOS_BLOCK, s.shape[1])]
    return _Spectrum(theta=theta, vector=vector, lower=float(lower), steps=step, top=top)


def _probe_inputs(rng: np.random.Generator, d: int, probe: _Probe | None = None) -> tuple[Any, dict[str, slice]]:
    """The probe rows and the row range of each family (module docstring)."""
    names = ("isotropic", "correlated", "common-offset", "heavy-tailed")
    if d <= DENSE_MAX_D:
        n = 2 * d + 16
        iso = rng.standard_normal((n, d))
        mix = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
        corr = (rng.standard_normal((n, d)) @ mix) * np.exp(0.5 * rng.standard_normal((n, 1)))
        offset = COMMON_OFFSET * rng.choice([-1.0, 1.0]) + rng.standard_normal((n, d))
        heavy = rng.standard_t(2.0, (n, d))
        return np.concatenate([iso, corr, offset, heavy]), {f: slice(i * n, (i + 1) * n) for i, f in enumerate(names)}
    n = (3 * d) // 4 + 16
    x = np.empty((4 * n, d), dtype=np.float32)  # float32 inputs: half the memory; the norm gets them widened
    x[:n] = rng.standard_normal((n, d), dtype=np.float32)
    # low-rank mixing: correlated rows without a d × d matrix (memory and time O(N·d·r)). The rank-r part
    # doubles the variance along r directions (rows of ``right`` have unit norm) and adds O(r/d) per
    # channel, so no family dominates a channel's variance (each family has fewer than d rows: one that
    # dominated the standardisation would leave near-null directions of its own) and λmax stays O(1)
    r = 32
    left = rng.standard_normal((d, r)) / np.sqrt(d)
    right = rng.standard_normal((r, d)) / np.sqrt(d)
    g = rng.standard_normal((n, d), dtype=np.float32)
    x[n : 2 * n] = (g + (g @ left.astype(np.float32)) @ right.astype(np.float32)) * np.exp(
        0.25 * rng.standard_normal((n, 1), dtype=np.float32))
    x[2 * n : 3 * n] = rng.standard_normal((n, d), dtype=np.float32)
    offset = COMMON_OFFSET if probe is None else _large_d_offset(d, probe)
    x[2 * n : 3 * n] += np.float32(offset * rng.choice([-1.0, 1.0]))
    # heavy tails with a finite variance (see above): a Gaussian scale mixture, exp(N(0, ½²)) per entry
    mixture = x[3 * n :]
    mixture[...] = rng.standard_normal((n, d), dtype=np.float32)
    mixture *= np.exp(0.5 * rng.standard_normal((n, d), dtype=np.float32))
    return x, {f: slice(i * n, (i + 1) * n) for i, f in enumerate(names)}


def _large_d_offset(d: int, probe: _Probe) -> float:
    """The offset family's common offset at large d (module docstring): the largest of 32, 16, …, ½ (else 0)
    whose a-priori floor (T10 at γ = 1, β = 0, a quarter of the rows at that offset) is within budget."""
    ones = np.ones(d)
    try:
        raw0 = kernel_error_bound(ones, probe.dtype, compute_dtype=probe.compute_dtype, mean_ratio=0.0).residual_raw
        raw1 = kernel_error_bound(ones, probe.dtype, compute_dtype=probe.compute_dtype, mean_ratio=1.0).residual_raw
    except DeadirError:
        return 0.0
    budget = FLOOR_BUDGET * (1.0 - np.sqrt(1.0 / 3.0)) ** 2 / GAP_MARGIN
    offset = COMMON_OFFSET
    while offset >= 0.5:
        tau_est = (3.0 * raw0**2 + (raw0 + (raw1 - raw0) * (offset + 1.0)) ** 2) / (4.0 * d)
        if tau_est <= budget:
            return offset
        offset /= 2.0
    return 0.0


def _probe_eps(norm: Any) -> float:
    """The norm's ε when it exposes one (``eps`` / ``variance_epsilon``), else 0 (the conservative choice)."""
    for attr in ("eps", "variance_epsilon"):
        value = getattr(norm, attr, None)
        if isinstance(value, (float, int)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return 0.0
def _floor(x: FloatArray, std: FloatArray, mean: FloatArray, live: Any, probe: _Probe, size: int,
           eps: float, whole: tuple[FloatArray, FloatArray] | None = None) -> float:
    """τ for "one kernel vector per contiguous block of ``size`` live channels" (module docstring).

    The T10 bound is affine in ρ: raw(ρ) = raw(0) + (raw(1) − raw(0))·ρ, both read from
    kernel_error_bound; the floor is the largest block's mean over rows of raw(ρₖ)²/size.
    ``whole``: each row's mean and variance over all d inputs (float64), computed once (from x if None).
    """
    if whole is None:
        whole = (x.mean(axis=1, dtype=np.float64), x.var(axis=1, dtype=np.float64))
    worst = 0.0
    xl = x if size == live.size and live.size != x.shape[1] else None
    # constant channels of a centring norm (γᵢ = 0, or |γᵢẑᵢ| below the rounding of βᵢ: T6, and
    # T10's |βᵢ/γᵢ| term) lose their ẑᵢ outright, so the live part of ⟨γ⁻¹, ŷ − β⟩ is off by
    # −Σ_const ẑᵢ on each row, with ẑ = (x − μ)/√(σ² + ε) for the LayerNorm hypothesis
    lost = np.zeros(x.shape[0])
    if xl is not None:
        dead = np.setdiff1d(np.arange(x.shape[1]), live)
        sd = np.sqrt(whole[1] + eps)
        with np.errstate(divide="ignore", invalid="ignore"):
            centred = np.abs(x[:, dead] - whole[0][:, None])
            lost = np.where(sd > 0, centred.sum(axis=1) / sd, 0.0)
    for start in range(0, live.size, size):
        block = live[start : start + size]
        if xl is not None or block.size == x.shape[1]:
            mu_x, var_x = whole[0], whole[1] + eps
        else:
            rows = x[:, block]
            mu_x = rows.mean(axis=1, dtype=np.float64)
            var_x = rows.var(axis=1, dtype=np.float64) + eps
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(var_x > 0, np.abs(mu_x) / np.sqrt(var_x), 0.0)  # constant rows: no LayerNorm output
        kw: dict[str, Any] = {"beta": mean[block], "compute_dtype": probe.compute_dtype}
        raw0 = kernel_error_bound(std[block], probe.dtype, **kw, mean_ratio=0.0).residual_raw
        slope = kernel_error_bound(std[block], probe.dtype, **kw, mean_ratio=1.0).residual_raw - raw0
        if not (np.isfinite(raw0) and np.isfinite(slope)):
            return np.inf
        worst = max(worst, float(np.mean((raw0 + slope * rho + lost) ** 2)) / size)
    return worst


def _block_structured(kernel: FloatArray, live: Any, d: int, k: int, tau: float) -> bool:
    """Whether the kernel is the direct sum of one vector per contiguous block of d/k channels.

    Each block's rows of the orthonormal basis have singular values (1, 0, …) up to
    ZERO_COMPONENT, or up to √τ (the size of a kernel direction's rounding) when larger.
    """
    if d % k or live.size != d:
        return False
    size = d // k
    tol = max(ZERO_COMPONENT, float(np.sqrt(tau)))
    for g in range(k):
        sv = np.linalg.svd(kernel[g * size : (g + 1) * size], compute_uv=False)
        if sv[0] < 1.0 - tol or (sv.size > 1 and sv[1] > tol * sv[0]):
            return False
    return True


def _rounding_scale(probe: _Probe, d: int, y: FloatArray) -> FloatArray:
    """Per-element rounding allowance of one evaluation of a row (module docstring, determinism)."""
    uc, u = unit_roundoff(probe.compute_dtype), unit_roundoff(probe.dtype)
    row_max = np.max(np.abs(y), axis=1, keepdims=True)
    return np.asarray((d + 1) * uc * row_max + u * np.abs(y), dtype=np.float64)


def _check_deterministic(probe: _Probe, x: FloatArray, y: FloatArray, d: int) -> None:
    """Run ``x`` twice more; each output must match ``y`` within twice the rounding of one evaluation."""
    allowance = 2.0 * DETERMINISM_MARGIN * _rounding_scale(probe, d, y)
    for attempt in (1, 2):
        again = _run(probe, x, d)
        excess = np.abs(again - y) - allowance
        if np.any(excess > 0):
            i, j = np.unravel_index(int(np.argmax(excess)), excess.shape)
            raise NondeterministicNormError(
                f"norm: not deterministic: re-running the same {x.shape[0]} probe rows (re-run {attempt}) changed "
                f"output [{i}, {j}] from {y[i, j]:.9g} to {again[i, j]:.9g}, beyond rounding "
                f"({allowance[i, j]:.2g}); a classification of a norm whose outputs vary between calls would be a guess"
            )


def _scale_invariant(probe: _Probe, x: FloatArray, y: FloatArray, d: int, eps: float) -> tuple[bool, str]:
    """(invariant, note): norm(2x) = norm(x) within rounding and ε → (True, ""); beyond
    SCALE_INVARIANCE_MARGIN of the output's spread → (False, ""); between → (False, why)."""
    y2 = _run(probe, 2.0 * x, x.shape[1])
    diff = np.abs(y2 - y)
    change = float(np.max(diff))
    scale = float(np.max(np.abs(y - y.mean(axis=0)))) or 1.0
    # ε enters as √(σ² + ε): from σ² to 4σ² (x → 2x) it moves a row's output by ≤ ε/(2σ²) of its size
    # (σ² the row's variance, at most its mean square), so rows with a tiny σ² get a larger allowance
    var = x.var(axis=1, keepdims=True, dtype=np.float64)
    with np.errstate(divide="ignore"):
        eps_part = np.where(var > 0, eps / (2.0 * var), np.inf) * np.max(np.abs(y), axis=1, keepdims=True)
    allowance = 2.0 * DETERMINISM_MARGIN * _rounding_scale(probe, d, y) + DETERMINISM_MARGIN * eps_part
    if np.all(diff <= allowance):
        return True, ""
    rounding = float(np.max(np.where(np.isfinite(allowance), allowance, 0.0)))
    if change > max(SCALE_INVARIANCE_MARGIN * scale, rounding):
        return False, ""
    return False, (f"norm(2x) differs from norm(x) by {change / scale:.2g} of the output's spread: more than "
                   f"rounding ({rounding / scale:.2g}), less than {SCALE_INVARIANCE_MARGIN:g} — neither scale "
                   "invariant nor clearly not (noise?)")


def _run_chunked(probe: _Probe, x: FloatArray, d: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The norm on every probe row, in batches of at most CHUNK_VALUES values, into one float64 array;
    also each row's input mean and variance in float64 (computed from the same widened batch)."""
    step = max(1, CHUNK_VALUES // d)
    y = np.empty(x.shape)
    mu = np.empty(x.shape[0])
    var = np.empty(x.shape[0])
    for start in range(0, x.shape[0], step):
        part = x[start : start + step]
        wide = np.asarray(part, dtype=np.float64)
        mu[start : start + step] = wide.mean(axis=1)
        var[start : start + step] = wide.var(axis=1)
        y[start : start + step] = _run(probe, part, d)
    return y, mu, var


def _run(probe: _Probe, x: FloatArray, d: int) -> FloatArray:
    if not probe.takes_float32:
        x = np.asarray(x, dtype=np.float64)  # the large-d probe stores its inputs in float32
    y = _call_with_timeout(probe, x)
    if y.shape != x.shape:
        raise InputShapeError(
            f"norm: returned shape {tuple(y.shape)} for input shape {tuple(x.shape)}; expected the same"
        )
    if not np.all(np.isfinite(y)):
        raise InputShapeError("norm: returned NaN or infinite values on finite probe inputs")
    return y


def _call_with_timeout(probe: _Probe, x: FloatArray) -> FloatArray:
    """``probe.forward(x)``, on a daemon thread when there is a timeout (a hung call cannot be cancelled
    in Python; it is abandoned). Non-deadir exceptions of the norm become NormCallError."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = probe.forward(x)
        except BaseException as exc:  # re-raised below, typed, in the caller's thread
            box["exc"] = exc

    if probe.timeout is None:
        target()
    else:
        worker = threading.Thread(target=target, name="deadir-classify-norm-call", daemon=True)
        worker.start()
        worker.join(probe.timeout)
        if worker.is_alive():
            raise NormTimeoutError(
                f"norm: a call on a probe batch of shape {tuple(x.shape)} did not return within {probe.timeout:g} s "
                "(timeout=...; the call is abandoned)"
            )
    if "exc" in box:
        exc = box["exc"]
        if isinstance(exc, DeadirError):
            raise exc
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to wrap
            raise exc
        raise NormCallError(
            f"norm: raised {type(exc).__name__} on a probe batch of shape {tuple(x.shape)}: {exc}"
        ) from exc
    out: FloatArray = box["out"]
    return out


def _make_probe(norm: Any, d: int, gamma: Any, dtype: Any, compute_dtype: str | None,
                timeout: float | None) -> _Probe:
    given_gamma: FloatArray | None = None if gamma is None else as_vector(gamma, name="gamma")
    if isinstance(norm, NormSpec):
        if norm.size != d:
            raise InputShapeError(f"norm: the NormSpec has {norm.size} channels but d={d}")
        return _Probe(norm.apply, "float64", compute_dtype or "float64",
                      given_gamma if given_gamma is not None else norm.gamma, timeout)
    import torch

    if isinstance(norm, torch.nn.Module):
        size = _module_size(norm)
        if size is not None and size != d:
            raise InputShapeError(
                f"norm: {type(norm).__name__} normalises {size} channels but d={d}; pass d={size}")
        params = list(norm.parameters())
        tdtype = dtype if dtype is not None else (params[0].dtype if params else torch.float32)
        device = params[0].device if params else torch.device("cpu")
        name = str(tdtype).removeprefix("torch.")
        g: FloatArray | None = given_gamma if given_gamma is not None else _module_gamma(norm, d)

        def forward(x: FloatArray) -> FloatArray:
            with torch.no_grad():
                out = norm(torch.from_numpy(x).to(device=device, dtype=tdtype))
            return as_float64(out, name="norm output")

        return _Probe(forward, name, compute_dtype or default_compute_dtype(name), g, timeout, True)
    if not callable(norm):
        raise InputShapeError(f"norm: expected a torch module, a NormSpec or a callable, got {type(norm).__name__}")
    g_call: FloatArray | None = given_gamma
    if given_gamma is None and getattr(norm, "weight", None) is not None:
        g_call = _maybe_vector(norm.weight, d)
    if isinstance(dtype, torch.dtype):
        tdt = dtype
        name = str(tdt).removeprefix("torch.")

        def forward_t(x: FloatArray) -> FloatArray:
            with torch.no_grad():
                return as_float64(norm(torch.from_numpy(x).to(tdt)), name="norm output")

        return _Probe(forward_t, name, compute_dtype or name, g_call, timeout, True)
    if dtype not in (None, np.float64, "float64"):
        raise InputShapeError(f"dtype: for a plain callable give a torch dtype or None (float64 numpy), got {dtype!r}")

    def forward_np(x: FloatArray) -> FloatArray:
        out = norm(x)
        if is_torch_tensor(out) or isinstance(out, np.ndarray):
            return as_float64(out, name="norm output")
        raise InputShapeError(f"norm: returned {type(out).__name__}, expected an array")

    return _Probe(forward_np, "float64", compute_dtype or "float64", g_call, timeout)


def _module_size(module: Any) -> int | None:
    """The channel count a torch norm module declares (1-D weight, or a 1-D normalized_shape), if any."""
    weight = getattr(module, "weight", None)
    if weight is not None and getattr(weight, "ndim", 0) == 1:
        return int(weight.shape[0])
    shape = getattr(module, "normalized_shape", None)
    if shape is not None:
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(dims) == 1 and isinstance(dims[0], int):
            return int(dims[0])
    channels = getattr(module, "num_channels", None)
    return int(channels) if isinstance(channels, int) else None


def _module_gamma(module: Any, d: int) -> FloatArray | None:
    try:
        spec = NormSpec.from_module(module)
    except DeadirError:
        weight = getattr(module, "weight", None)
        return None if weight is None else _maybe_vector(weight, d)
    return spec.gamma if spec.size == d else None


def _maybe_vector(value: Any, d: int) -> FloatArray | None:
    try:
        vec = as_vector(value, name="weight")
    except DeadirError:
        return None
    return vec if vec.size == d else None
