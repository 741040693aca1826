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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from deadir.arrays import FloatArray, as_float64, as_vector, is_torch_tensor
from deadir.bound import gamma_k, kernel_error_bound, unit_roundoff
from deadir.errors import DeadirError, InputShapeError
from deadir.norms import NormSpec

ClassKind = Literal["mean-centring", "group-centring", "rms", "none", "other"]

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
# tens of %); 1 % sits between, above bfloat16's output rounding (u = 2⁻⁸ ≈ 0.4 %).
SCALE_INVARIANCE_MARGIN = 1e-2


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
        bottom_eigvals: the smallest eigenvalues of the standardised covariance.
        gap: the smallest eigenvalue above the floor (inf when all are at the floor).
        inverse_scale_rayleigh: standardised Rayleigh quotient of γ⁻¹ (None if γ unknown).
        scale_invariant: whether norm(2x) = norm(x) on the probe (within 1 %).
        note: why the kind is what it is, in words.
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


def classify_norm(
    norm: Any,
    d: int,
    *,
    seed: int = 0,
    gamma: Any = None,
    dtype: Any = None,
    compute_dtype: str | None = None,
) -> NormClass:
    """Probe ``norm`` with random inputs and classify its normalisation from its output covariance.

    ``norm`` is a torch module (run in its parameters' dtype and device), a
    :class:`NormSpec` (its float64 reference forward), or any callable mapping an
    (n, d) array to an (n, d) array: it gets float64 numpy input, or a torch tensor
    when ``dtype`` is a torch dtype. ``gamma`` overrides the scale read from the
    module (``.weight``, or the spec's effective γ). ``compute_dtype`` names the dtype
    the norm accumulates its statistics in (default: float32 for half-precision torch
    modules, which upcast, else the output dtype).

    Raises:
        InputShapeError: d < 2, or the norm returns the wrong shape or non-finite values.
    """
    if not isinstance(d, (int, np.integer)) or d < 2:
        raise InputShapeError(f"d: must be an integer ≥ 2 (a 1-D norm output has no covariance structure), got {d!r}")
    d = int(d)
    probe = _make_probe(norm, d, gamma, dtype, compute_dtype)
    rng = np.random.default_rng(seed)
    x, families = _probe_inputs(rng, d)
    y = _run(probe, x, d)
    eps = _probe_eps(norm)
    iso_rows = families["isotropic"]
    m = min(64, iso_rows.stop - iso_rows.start)
    scale_inv = _scale_invariant(probe, x[iso_rows][:m], y[iso_rows][:m])

    # rows with |mean| > RHO_CAP·std are left out: a LayerNorm's rounding on them grows as
    # (1 + ρ) without bound (ε = 0 and ρ = ∞ at d = 2), and the kernel property is per row,
    # so any subset of rows still has it
    var_x = x.var(axis=1) + eps
    with np.errstate(divide="ignore", invalid="ignore"):
        rho_row = np.where(var_x > 0, np.abs(x.mean(axis=1)) / np.sqrt(var_x), np.inf)
    well = rho_row <= RHO_CAP
    label = np.empty(x.shape[0], dtype=np.int64)
    for i, rows in enumerate(families.values()):
        label[rows] = i
    x, y, label = x[well], y[well], label[well]

    # centre within each probe family: a kernel vector of every family's covariance is one of
    # their pooled within-family covariance, and the offset family's mean does not leak in as
    # a spurious common direction (it would make the identity look nearly rank one)
    yc = y.copy()
    # a channel is constant when its output never varies within any family, decided on the
    # outputs themselves: a family mean of n equal values c need not round to c (0.05 in
    # float64), which would leave rounding noise that standardising blows up to unit variance
    varies = np.zeros(y.shape[1], dtype=bool)
    for i in np.unique(label):
        yc[label == i] -= y[label == i].mean(axis=0)
        varies |= np.ptp(y[label == i], axis=0) > 0
    yc[:, ~varies] = 0.0
    n_rows = yc.shape[0]
    std = np.sqrt(np.mean(yc * yc, axis=0))
    mean = y.mean(axis=0)
    constant = np.flatnonzero(std == 0.0)
    live = np.flatnonzero(std > 0.0)
    if live.size < 2:
        return _result(probe, d, "other", np.eye(d)[:, constant], constant, np.inf, (), np.inf, None, scale_inv,
                       False, "the output is constant in all but at most one channel")

    z = yc[:, live] / std[live]
    r = (z.T @ z) / n_rows
    mu, w = np.linalg.eigh((r + r.T) / 2.0)
    # float64 rounding of the Gram matrix: |fl(zᵀz) − zᵀz| ≤ γ_N(u)·|z|ᵀ|z| entrywise, and
    # (|z|ᵀ|z|)ᵢⱼ/N ≤ √(RᵢᵢRⱼⱼ) = 1 (Cauchy–Schwarz), so a unit w moves by ≤ γ_N(u)·‖w‖₁² ≤ γ_N(u)·d;
    # eigh is backward stable with ‖ΔR‖ ≤ d·u·‖R‖ (LAPACK's small constant absorbed in d)
    u64 = unit_roundoff("float64")
    gram = gamma_k(n_rows, u64) * live.size + live.size * u64 * float(mu[-1])

    def floor_for(size: int) -> float:
        return _floor(x, std, mean, live, probe, size, eps) + gram

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
    basis_full = np.zeros((d, k + constant.size))
    basis_full[live, :k] = kernel_std / std[live, None]
    basis_full[constant, k:] = np.eye(constant.size)
    basis = np.linalg.qr(basis_full)[0] if basis_full.shape[1] else basis_full

    def std_rayleigh(vec: FloatArray) -> float:
        s = vec[live] * std[live]
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
        return std_rayleigh(vec) <= tau + evaluation

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
    # the non-kernel eigenvalues of a standardised sample covariance of N generic rows sit near
    # or above Marchenko–Pastur's lower edge (1 − √(d/N))²; a floor within GAP_MARGIN of it
    # cannot show a gap whatever the norm is
    resolvable = (1.0 - np.sqrt(live.size / n_rows)) ** 2 / GAP_MARGIN
    if tau >= resolvable:
        return _result(probe, d, "other", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv, ones_kernel,
                       f"inconclusive: the rounding floor τ={tau:.2g} of {probe.dtype} is too high to resolve a "
                       + ("kernel (it carries the terms the constant channels lose)" if constant.size else
                          "kernel; probe in a wider dtype"))
    if gap < GAP_MARGIN * tau:
        return _result(probe, d, "other", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv, ones_kernel,
                       f"no clear gap above the floor τ={tau:.2g}: next eigenvalue {gap:.2g}")
    prefix = f"{constant.size} constant channel(s) {constant[:10].tolist()} are kernel axes; " if constant.size else ""
    if k == 0:
        if constant.size:
            kind: ClassKind = "other"
            note = prefix + "the live channels have no kernel"
        elif scale_inv:
            kind, note = "rms", "no kernel at the rounding floor; scale invariant (RMS-like)"
        else:
            kind, note = "none", "no kernel at the rounding floor; not scale invariant (no normalisation)"
        return _result(probe, d, kind, basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv, False, note)
    if k == 1:
        if np.min(np.abs(kernel_std[:, 0])) * np.sqrt(live.size) < ZERO_COMPONENT:
            return _result(probe, d, "other", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv,
                           ones_kernel, prefix + "a one-dimensional kernel with (near-)zero components")
        matches = None if inv_rayleigh is None else inv_in_kernel
        what = "γ⁻¹" if matches else ("𝟙" if ones_kernel else "a direction other than γ⁻¹")
        return _result(probe, d, "mean-centring", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv,
                       ones_kernel, prefix + f"one kernel direction at the rounding floor, spanned by {what}",
                       matches=matches)
    if _block_structured(kernel_std, live, d, k, tau):
        matches = None if not groups_inv else all(groups_inv)
        return _result(probe, d, "group-centring", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv,
                       False, prefix + f"{k} kernel directions, one per contiguous group of {d // k} channels",
                       matches=matches)
    return _result(probe, d, "other", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv, False,
                   prefix + f"a {k}-dimensional kernel without group structure")


def _probe_inputs(rng: np.random.Generator, d: int) -> tuple[FloatArray, dict[str, slice]]:
    """The probe rows and the row range of each family (see the module docstring)."""
    n = 2 * d + 16
    iso = rng.standard_normal((n, d))
    mix = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    corr = (rng.standard_normal((n, d)) @ mix) * np.exp(0.5 * rng.standard_normal((n, 1)))
    offset = COMMON_OFFSET * rng.choice([-1.0, 1.0]) + rng.standard_normal((n, d))
    heavy = rng.standard_t(2.0, (n, d))
    names = ("isotropic", "correlated", "common-offset", "heavy-tailed")
    return np.concatenate([iso, corr, offset, heavy]), {f: slice(i * n, (i + 1) * n) for i, f in enumerate(names)}


def _probe_eps(norm: Any) -> float:
    """The norm's ε when it exposes one (``eps`` / ``variance_epsilon``), else 0 (the conservative choice)."""
    for attr in ("eps", "variance_epsilon"):
        value = getattr(norm, attr, None)
        if isinstance(value, (float, int)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return 0.0


def _floor(x: FloatArray, std: FloatArray, mean: FloatArray, live: Any, probe: _Probe, size: int,
           eps: float) -> float:
    """τ for "one kernel vector per contiguous block of ``size`` live channels" (module docstring).

    The T10 bound is affine in ρ: raw(ρ) = raw(0) + (raw(1) − raw(0))·ρ, both read from
    kernel_error_bound; the floor is the largest block's mean over rows of raw(ρₖ)²/size.
    """
    worst = 0.0
    xl = x if size == live.size and live.size != x.shape[1] else None
    # constant channels of a centring norm (γᵢ = 0, or |γᵢẑᵢ| below the rounding of βᵢ: T6, and
    # T10's |βᵢ/γᵢ| term) lose their ẑᵢ outright, so the live part of ⟨γ⁻¹, ŷ − β⟩ is off by
    # −Σ_const ẑᵢ on each row, with ẑ = (x − μ)/√(σ² + ε) for the LayerNorm hypothesis
    lost = np.zeros(x.shape[0])
    if xl is not None:
        dead = np.setdiff1d(np.arange(x.shape[1]), live)
        sd = np.sqrt(x.var(axis=1) + eps)
        with np.errstate(divide="ignore", invalid="ignore"):
            lost = np.where(sd > 0, np.abs(x[:, dead] - x.mean(axis=1, keepdims=True)).sum(axis=1) / sd, 0.0)
    for start in range(0, live.size, size):
        block = live[start : start + size]
        rows = xl if xl is not None else x[:, block]
        mu_x = rows.mean(axis=1)
        var_x = rows.var(axis=1) + eps
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


def _result(
    probe: _Probe, d: int, kind: ClassKind, basis: FloatArray, constant: Any, tau: float,
    bottom: tuple[float, ...], gap: float, inv_rayleigh: float | None, scale_inv: bool, ones: bool,
    note: str, *, matches: bool | None = None,
) -> NormClass:
    return NormClass(
        kind=kind, d=d, dtype=probe.dtype, kernel_dim=int(basis.shape[1]), kernel_basis=basis,
        matches_inverse_scale=matches, kernel_is_ones=bool(ones), constant_channels=tuple(int(i) for i in constant),
        floor=float(tau), bottom_eigvals=bottom, gap=float(gap), inverse_scale_rayleigh=inv_rayleigh,
        scale_invariant=scale_inv, note=note,
    )


def _scale_invariant(probe: _Probe, x: FloatArray, y: FloatArray) -> bool:
    y2 = _run(probe, 2.0 * x, x.shape[1])
    scale = float(np.max(np.abs(y - y.mean(axis=0)))) or 1.0
    return float(np.max(np.abs(y2 - y))) <= SCALE_INVARIANCE_MARGIN * scale


def _run(probe: _Probe, x: FloatArray, d: int) -> FloatArray:
    y = probe.forward(x)
    if y.shape != x.shape:
        raise InputShapeError(
            f"norm: returned shape {tuple(y.shape)} for input shape {tuple(x.shape)}; expected the same"
        )
    if not np.all(np.isfinite(y)):
        raise InputShapeError("norm: returned NaN or infinite values on finite probe inputs")
    return y


def _make_probe(norm: Any, d: int, gamma: Any, dtype: Any, compute_dtype: str | None) -> _Probe:
    given_gamma: FloatArray | None = None if gamma is None else as_vector(gamma, name="gamma")
    if isinstance(norm, NormSpec):
        return _Probe(norm.apply, "float64", compute_dtype or "float64",
                      given_gamma if given_gamma is not None else norm.gamma)
    import torch

    if isinstance(norm, torch.nn.Module):
        params = list(norm.parameters())
        tdtype = dtype if dtype is not None else (params[0].dtype if params else torch.float32)
        device = params[0].device if params else torch.device("cpu")
        name = str(tdtype).removeprefix("torch.")
        g: FloatArray | None = given_gamma if given_gamma is not None else _module_gamma(norm, d)

        def forward(x: FloatArray) -> FloatArray:
            with torch.no_grad():
                out = norm(torch.from_numpy(x).to(device=device, dtype=tdtype))
            return as_float64(out, name="norm output")

        half = name in ("float16", "bfloat16")
        return _Probe(forward, name, compute_dtype or ("float32" if half else name), g)
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

        return _Probe(forward_t, name, compute_dtype or name, g_call)
    if dtype not in (None, np.float64, "float64"):
        raise InputShapeError(f"dtype: for a plain callable give a torch dtype or None (float64 numpy), got {dtype!r}")

    def forward_np(x: FloatArray) -> FloatArray:
        out = norm(x)
        if is_torch_tensor(out) or isinstance(out, np.ndarray):
            return as_float64(out, name="norm output")
        raise InputShapeError(f"norm: returned {type(out).__name__}, expected an array")

    return _Probe(forward_np, "float64", compute_dtype or "float64", g_call)


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
