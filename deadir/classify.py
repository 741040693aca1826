"""Classify a normalisation layer by probing it: which exact kernel does its output covariance have?

The decision rests on exactness, never on cosine alignment alone. Outputs are
standardised channel by channel (the correlation matrix R = S⁻¹CS⁻¹, S = diag of
channel standard deviations), which removes the spread of |γ| from the spectrum:
an RMSNorm with one tiny gain has an eigenvalue of C that is tiny relative to λmax
and a bottom eigenvector nearly parallel to γ⁻¹ (Gemma 3 and Qwen2.5 checkpoints
do this), yet R is well conditioned. A LayerNorm's R has an eigenvalue at the
rounding floor of the norm's dtype, along S·γ⁻¹.

The floor τ (in units of R, whose eigenvalues average 1) is the first-order
rounding model of the forward: every output entry carries a relative error ≤ u
of the output dtype, i.e. ≤ u·(|z| + |β/γ|) after standardisation, plus the
centring error of the statistics, ≈ √d·u_c in the compute dtype. Hence
τ = (16·u·(1 + b))² + (4·√d·u_c)² with b = max |mean yᵢ| / std yᵢ. An eigenvalue
counts as kernel when ≤ τ, and the classification is only made when the next
eigenvalue is ≥ 8τ (a clear gap); otherwise the kind is "other" with a note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from deadir.arrays import FloatArray, as_float64, as_vector, is_torch_tensor
from deadir.bound import unit_roundoff
from deadir.errors import DeadirError, InputShapeError
from deadir.norms import NormSpec

ClassKind = Literal["mean-centring", "group-centring", "rms", "none", "other"]



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
    n_each = 4 * d + 32
    iso = rng.standard_normal((n_each, d))
    mix = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    corr = (rng.standard_normal((n_each, d)) @ mix) * np.exp(0.5 * rng.standard_normal((n_each, 1)))
    x = np.concatenate([iso, corr])
    y = _run(probe, x, d)

    std = y.std(axis=0)
    mean = y.mean(axis=0)
    constant = np.flatnonzero(std == 0.0)
    live = np.flatnonzero(std > 0.0)
    u = unit_roundoff(probe.dtype)
    u_c = unit_roundoff(probe.compute_dtype)
    m = min(64, n_each)
    scale_inv = _scale_invariant(probe, iso[:m], y[:m])
    if live.size < 2:
        return _result(probe, d, "other", np.eye(d)[:, constant], constant, np.inf, (), np.inf, None, scale_inv,
                       False, "the output is constant in all but at most one channel")

    z = (y[:, live] - mean[live]) / std[live]
    r = (z.T @ z) / z.shape[0]
    mu, w = np.linalg.eigh((r + r.T) / 2.0)
    b = float(np.max(np.abs(mean[live]) / std[live]))
    tau = (16.0 * u * (1.0 + b)) ** 2 + (4.0 * np.sqrt(d) * u_c) ** 2 + 4.0 * d * unit_roundoff("float64") * mu[-1]
    k = int(np.count_nonzero(mu <= tau))
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

    ones_kernel = bool(k == 1 and std_rayleigh(np.ones(d)) <= tau)
    inv_rayleigh = None
    groups_inv: list[float] = []
    if probe.gamma is not None and probe.gamma.size == d and np.all(probe.gamma != 0):
        inv = 1.0 / probe.gamma
        inv_rayleigh = std_rayleigh(inv)
        if k > 1 and d % k == 0:
            size = d // k
            for g in range(k):
                block = np.zeros(d)
                block[g * size : (g + 1) * size] = inv[g * size : (g + 1) * size]
                groups_inv.append(std_rayleigh(block))

    bottom = tuple(float(m) for m in mu[: min(mu.size, max(k + 2, 3))])
    if tau >= 0.05:
        return _result(probe, d, "other", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv, ones_kernel,
                       f"inconclusive: the rounding floor τ={tau:.2g} of {probe.dtype} is too high to resolve a "
                       f"kernel (max |β/γ| ≈ {b:.3g}); probe in a wider dtype")
    if gap < 8.0 * tau:
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
        if np.min(np.abs(kernel_std[:, 0])) * np.sqrt(live.size) < 1e-3:
            return _result(probe, d, "other", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv,
                           ones_kernel, prefix + "a one-dimensional kernel with (near-)zero components")
        matches = None if inv_rayleigh is None else bool(inv_rayleigh <= tau)
        what = "γ⁻¹" if matches else ("𝟙" if ones_kernel else "a direction other than γ⁻¹")
        return _result(probe, d, "mean-centring", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv,
                       ones_kernel, prefix + f"one kernel direction at the rounding floor, spanned by {what}",
                       matches=matches)
    if _block_structured(kernel_std, live, d, k, tau):
        matches = None if not groups_inv else bool(all(q <= tau for q in groups_inv))
        return _result(probe, d, "group-centring", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv,
                       False, prefix + f"{k} kernel directions, one per contiguous group of {d // k} channels",
                       matches=matches)
    return _result(probe, d, "other", basis, constant, tau, bottom, gap, inv_rayleigh, scale_inv, False,
                   prefix + f"a {k}-dimensional kernel without group structure")


def _block_structured(kernel: FloatArray, live: Any, d: int, k: int, tau: float) -> bool:
    """Whether the kernel is the direct sum of one vector per contiguous block of d/k channels."""
    if d % k or live.size != d:
        return False
    size = d // k
    tol = max(1e-3, float(np.sqrt(tau)))
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
    return float(np.max(np.abs(y2 - y))) <= 1e-2 * scale


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
