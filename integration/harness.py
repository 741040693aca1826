"""One forward pass per model, measured in float64: the integration suite's measurement core.

For each model the harness hooks every normalisation site it is asked to measure and the
blocks of the residual stream, runs the model on its own inputs (tokens flagged ``keep``
only), and accumulates float64 centred covariances (``deadir.CovarianceAccumulator``).
From them it derives, per site, the claim-level quantities of the paper and of deadir:

* the Rayleigh quotient vᵀCv/λmax of the inverse-scale direction v = γ⁻¹/‖γ⁻¹‖ and its
  a-priori tolerance from the T10 bound (``deadir.bound.kernel_error_bound``), evaluated
  with the measured |mean(x)|/std(x) of the site's own inputs;
* the alignment of v with the bottom eigenvector when the spectral gap lets a cosine be
  meaningful, else with the smallest bottom eigenspace that the gap does resolve;
* dead channels (γᵢ ≈ 0) and their own variances;
* near-null eigenvalue counts at stated relative thresholds;
* the residual stream's smallest singular value per block (centred), drops flagged; where a
  block boundary is itself a LayerNorm's output (post-LN encoders, an embedding LayerNorm)
  σ_min is 0 by T2, so it is measured on the complement of that norm's known kernel
  span(γ⁻¹, dead axes) (see :func:`known_kernel_basis`);
* the classification of the final norm by probing (``deadir.classify_norm``).

The same quantities come from ``deadir.verify`` once it exists; the harness keeps its own
reading so the suite cross-checks the library instead of restating it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import deadir
from deadir.bound import kernel_error_bound
from deadir.covariance import CovarianceAccumulator
from deadir.errors import DeadirError, UnknownNormError
from deadir.kernel import eigensolver_floor_rel
from deadir.norms import NormSpec
from deadir.precision import DEAD_CHANNEL_REL_TOL, default_compute_dtype

# Relative thresholds (of λmax) at which near-null eigenvalues are counted, as stated in the report.
NEAR_NULL_THRESHOLDS = (1e-8, 1e-6, 1e-4)
# A dead channel: the library's one threshold (deadir.precision.DEAD_CHANNEL_REL_TOL, reason given there).
DEAD_REL_TOL = DEAD_CHANNEL_REL_TOL
# A block's σ_min is flagged as a drop when it falls below this fraction of the previous block's.
SIGMA_DROP = 0.1
# "Cosine mode" needs the Davis–Kahan bound on 1 − |cos| to be below this (the claim's 1e-8).
COS_TARGET = 1e-8
# Largest bound on 1 − ‖P_k v‖ that still makes an alignment test: a random unit vector has
# ‖P_k v‖ ≈ √(k/d) ≤ √½ for k ≤ d/2, i.e. 1 − ‖P_k v‖ ≥ 0.29, so a bound of 1e-2 separates a kernel
# vector from an arbitrary one by more than an order of magnitude. Above it the angle is not tested.
ALIGN_MAX = 1e-2


@dataclasses.dataclass
class SiteResult:
    """Measurements of one normalisation site (units: relative to the site's λmax unless stated)."""

    path: str
    kind: str
    d: int
    n: int
    dtype: str
    eps: float
    lambda_max: float
    rayleigh_rel: float
    tolerance: float
    bound_valid: bool
    mean_ratio: float
    beta_over_gamma: float
    cos_bottom: float | None
    gap_rel: float
    floor_dim: int
    angle_mode: str
    angle_k: int
    angle_cos: float
    angle_bound: float
    near_null: dict[str, int]
    dead: list[int]
    dead_var_rel_max: float | None
    live_fraction: float
    gamma_min_abs: float
    gamma_median_abs: float
    eigvals_rel: np.ndarray = dataclasses.field(repr=False)
    # Why the T10 bound is void (bound_valid False), and why no alignment test applies (angle_mode "none").
    bound_note: str = ""
    angle_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["smallest_eigvals_rel"] = self.eigvals_rel[:16].tolist()
        del out["eigvals_rel"]
        return out


@dataclasses.dataclass
class ModelResult:
    """Everything the claims and the report need about one model."""

    name: str
    source: str
    family: str
    expected_norm: str
    modality: str
    dtype: str
    tokens: int
    final: SiteResult
    sites: list[SiteResult]
    residual_sigma_min: list[float]
    residual_sigma_max: list[float]
    residual_drops: list[int]
    classification: str
    classification_note: str
    classification_matches_inverse_scale: bool | None
    load_s: float
    forward_s: float
    input_desc: str
    twin: ModelResult | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Per block boundary: the LayerNorm whose output the boundary is (post-LN), else None. At such a
    # boundary residual_sigma_min is σ_min on the complement of that norm's known kernel, and
    # residual_sigma_min_raw the plain σ_min (0 by T2, i.e. at the float floor).
    residual_post_ln: list[str | None] = dataclasses.field(default_factory=list)
    residual_sigma_min_raw: list[float] = dataclasses.field(default_factory=list)

    @property
    def residual_ratio(self) -> float | None:
        """min over blocks of σ_min divided by max over blocks of σ_min (None without blocks)."""
        s = [x for x in self.residual_sigma_min if math.isfinite(x)]
        if not s or max(s) <= 0:
            return None
        return min(s) / max(s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "family": self.family,
            "expected_norm": self.expected_norm,
            "modality": self.modality,
            "dtype": self.dtype,
            "tokens": self.tokens,
            "input": self.input_desc,
            "final": self.final.to_dict(),
            "sites": [s.to_dict() for s in self.sites],
            "residual_sigma_min": self.residual_sigma_min,
            "residual_sigma_max": self.residual_sigma_max,
            "residual_ratio": self.residual_ratio,
            "residual_drops": self.residual_drops,
            "residual_post_ln": self.residual_post_ln,
            "residual_sigma_min_raw": self.residual_sigma_min_raw,
            "classification": self.classification,
            "classification_note": self.classification_note,
            "classification_matches_inverse_scale": self.classification_matches_inverse_scale,
            "load_s": self.load_s,
            "forward_s": self.forward_s,
            "twin": None if self.twin is None else self.twin.to_dict(),
            **self.extra,
        }


# --- finding norms and blocks -----------------------------------------------------------------


def spec_of(module: Any) -> NormSpec | None:
    """The NormSpec of a module, or None when it is not a normalisation layer.

    Uses the library's table (``NormSpec.from_module``); Hugging Face classes not (yet)
    registered there are read by class name: ``*RMSNorm`` and ``T5LayerNorm`` as RMSNorm
    (Gemma's with the (1 + w) offset), ``*LayerNorm`` as LayerNorm.
    """
    try:
        return NormSpec.from_module(module)
    except UnknownNormError:
        pass
    except DeadirError:
        return None
    name = type(module).__name__
    weight = getattr(module, "weight", None)
    if weight is None or getattr(weight, "ndim", 0) != 1:
        return None
    bias = getattr(module, "bias", None)
    eps = float(getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6)))
    w = weight.detach().double().cpu().numpy()
    b = None if bias is None else bias.detach().double().cpu().numpy()
    if name.endswith("RMSNorm") or name == "T5LayerNorm":
        offset = 1.0 if name.startswith("Gemma") else 0.0
        return NormSpec("rmsnorm", weight=w, bias=b, eps=eps, weight_offset=offset, source=name)
    if name.endswith("LayerNorm"):
        return NormSpec("layernorm", weight=w, bias=b, eps=eps, source=name)
    return None


def norm_sites(model: Any, prefix: str = "") -> list[tuple[str, Any, NormSpec]]:
    """(path, module, spec) of every normalisation layer under ``prefix``, in registration order."""
    from deadir.models import find_norms

    out = []
    for site in find_norms(model, errors="skip"):
        if site.path.startswith(prefix) and site.spec.kind in ("layernorm", "rmsnorm"):
            out.append((site.path, model.get_submodule(site.path), site.spec))
    if out:
        return out
    for path, module in model.named_modules():
        if path.startswith(prefix):
            spec = spec_of(module)
            if spec is not None and spec.kind in ("layernorm", "rmsnorm"):
                out.append((path, module, spec))
    return out


def find_blocks(model: Any, prefix: str = "") -> tuple[str, list[Any]]:
    """The residual blocks under ``prefix``: the ModuleList holding the most parameters."""
    import torch

    best: tuple[int, str, list[Any]] = (-1, "", [])
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and path.startswith(prefix):
            size = sum(p.numel() for p in module.parameters())
            if size > best[0]:
                best = (size, path, list(module))
    return best[1], best[2]


# --- measuring ------------------------------------------------------------------------------------


class _Capture:
    """Float64 covariance of one hooked tensor stream (rows selected by the current keep mask)."""

    def __init__(self, d: int) -> None:
        self.acc = CovarianceAccumulator(d)
        self.mean_ratio = 0.0

    def add(self, t: Any, keep: Any, *, inputs: Any = None) -> None:
        rows = _select(t, keep)
        self.acc.update(rows.double())
        if inputs is not None:
            x = _select(inputs, keep).double()
            std = x.std(dim=-1, unbiased=False).clamp_min(1e-300)
            self.mean_ratio = max(self.mean_ratio, float((x.mean(dim=-1).abs() / std).max()))


def _select(t: Any, keep: Any) -> Any:
    t = t[0] if isinstance(t, tuple) else t
    t = t.detach()
    d = t.shape[-1]
    if keep is not None and tuple(keep.shape) == tuple(t.shape[:-1]):
        return t[keep.to(t.device)].reshape(-1, d)
    return t.reshape(-1, d)


def measure_model(
    model: Any,
    batches: Iterable[dict[str, Any]],
    forward: Callable[[Any, dict[str, Any]], Any],
    *,
    name: str,
    source: str,
    family: str,
    expected_norm: str,
    modality: str,
    final_path: str,
    sites_prefix: str = "",
    blocks_prefix: str = "",
    all_sites: bool = True,
    input_desc: str = "",
    load_s: float = 0.0,
) -> ModelResult:
    """Run ``forward(model, batch)`` over ``batches`` with hooks; return the measured :class:`ModelResult`.

    ``final_path`` names the site reported in the table; with ``all_sites`` every norm under
    ``sites_prefix`` whose γ has dead channels is measured as well (claim iii). Raises
    DeadirError subclasses from the library on bad measurements (e.g. a zero covariance).
    """
    import torch

    found = norm_sites(model, sites_prefix)
    by_path = {p: (m, s) for p, m, s in found}
    if final_path not in by_path:
        module = model.get_submodule(final_path)
        spec = spec_of(module)
        if spec is None:
            raise UnknownNormError(f"{name}: {final_path} ({type(module).__name__}) is not a norm deadir can read")
        by_path[final_path] = (module, spec)
    # Besides the final site, measure the sites whose γ (read without a forward pass) has dead channels:
    # claim (iii) is about those. Every other site would cost a d×d float64 update per batch for nothing
    # the table reports.
    chosen = [final_path] + [
        p for p, (_, s) in by_path.items()
        if all_sites and p != final_path and _has_dead(s)
    ]
    _, blocks = find_blocks(model, blocks_prefix)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    # Every norm of the stack is watched (output kept by reference, no copy) so that a block boundary
    # which *is* a LayerNorm's output (post-LN) can be recognised on the first batch.
    watched = {p: (m, s) for p, m, s in norm_sites(model, blocks_prefix) if s.kind == "layernorm"}

    state: dict[str, Any] = {"keep": None, "last_norm": None}
    caps: dict[str, _Capture] = {}
    block_caps: list[_Capture] = []
    post_ln: dict[int, str | None] = {}
    handles = []

    def watch_hook(path: str) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            state["last_norm"] = (path, output[0] if isinstance(output, tuple) else output)

        return hook

    def note_boundary(i: int, t: Any) -> None:
        if i in post_ln:
            return
        last = state["last_norm"]
        post_ln[i] = last[0] if last is not None and _same_tensor(last[1], t) else None

    def site_hook(path: str) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            cap = caps.get(path)
            out = output[0] if isinstance(output, tuple) else output
            if cap is None:
                cap = caps[path] = _Capture(int(out.shape[-1]))
            cap.add(out, state["keep"], inputs=args[0] if args else None)

        return hook

    def block_hook(i: int) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            while len(block_caps) <= i + 1:
                block_caps.append(_Capture(int(out.shape[-1])))
            note_boundary(i + 1, out)
            block_caps[i + 1].add(out, state["keep"])

        return hook

    def first_block_pre(module: Any, args: Any, kwargs: Any) -> None:
        x = args[0] if args else kwargs.get("hidden_states")
        if x is None:
            return
        if not block_caps:
            block_caps.append(_Capture(int(x.shape[-1])))
        note_boundary(0, x)
        block_caps[0].add(x, state["keep"])

    for path in chosen:
        handles.append(by_path[path][0].register_forward_hook(site_hook(path)))
    for path, (module, _) in watched.items():
        handles.append(module.register_forward_hook(watch_hook(path)))
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_hook(block_hook(i)))
    if blocks:
        handles.append(blocks[0].register_forward_pre_hook(first_block_pre, with_kwargs=True))
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            for batch in batches:
                state["keep"], state["last_norm"] = batch.get("keep"), None
                forward(model, batch)
    finally:
        for h in handles:
            h.remove()
    forward_s = time.perf_counter() - t0

    results = {p: site_result(p, by_path[p][1], caps[p], dtype) for p in chosen if p in caps}
    if final_path not in results:
        raise DeadirError(f"{name}: the final norm {final_path} never ran on the inputs")
    smin, smax, smin_raw, ln_at = [], [], [], []
    for i, cap in enumerate(block_caps):
        if cap.acc.n < 2:
            continue
        c = cap.acc.cov()
        ev = np.linalg.eigvalsh(c)
        smin_raw.append(float(np.sqrt(max(ev[0], 0.0) * cap.acc.n)))
        smax.append(float(np.sqrt(max(ev[-1], 0.0) * cap.acc.n)))
        norm_path = post_ln.get(i)
        ln_at.append(norm_path)
        if norm_path is None:
            smin.append(smin_raw[-1])
        else:
            smin.append(sigma_min_off_kernel(c, cap.acc.n, watched[norm_path][1]))
    drops = residual_drops(smin, smax, d=results[final_path].d, raw=smin_raw, post_ln=ln_at)
    final_module = by_path[final_path][0]
    final_spec = by_path[final_path][1]
    try:
        cls = deadir.classify_norm(final_module, final_spec.size, gamma=final_spec.gamma)
        kind, note, matches = cls.kind, cls.note, cls.matches_inverse_scale
    except DeadirError as exc:
        kind, note, matches = "error", str(exc), None
    return ModelResult(
        name=name, source=source, family=family, expected_norm=expected_norm, modality=modality, dtype=dtype,
        tokens=results[final_path].n, final=results[final_path],
        sites=[r for p, r in results.items() if p != final_path],
        residual_sigma_min=smin, residual_sigma_max=smax, residual_drops=drops,
        residual_post_ln=ln_at, residual_sigma_min_raw=smin_raw,
        classification=kind, classification_note=note, classification_matches_inverse_scale=matches,
        load_s=load_s, forward_s=forward_s, input_desc=input_desc,
    )


def _same_tensor(a: Any, b: Any) -> bool:
    """Whether ``b`` is ``a`` (or equal to it elementwise): the boundary is that norm's output."""
    import torch

    if a is b:
        return True
    return bool(isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a.detach(), b.detach()))


def known_kernel_basis(spec: NormSpec) -> np.ndarray:
    """Orthonormal columns spanning the kernel a LayerNorm's γ predicts: γ⁻¹ (T2) and its dead axes eᵢ (T6).

    With dead channels v = γ⁻¹/‖γ⁻¹‖ lies (almost) in the span of the dead axes; the basis is
    rank-revealed (singular values ≤ 1e-8 dropped), so no live direction is removed by accident.
    """
    gamma = spec.gamma
    d = gamma.size
    dead = deadir.dead_channels(gamma, rel_tol=DEAD_REL_TOL) if np.all(np.isfinite(gamma)) else np.array([], int)
    cols = [np.eye(d)[:, i] for i in dead]
    if np.all(gamma != 0):
        cols.append(deadir.inverse_scale_direction(gamma))
    if not cols:
        return np.zeros((d, 0))
    u, s, _ = np.linalg.svd(np.stack(cols, axis=1), full_matrices=False)
    return np.asarray(u[:, s > 1e-8 * s[0]])


def sigma_min_off_kernel(cov: np.ndarray, n: int, spec: NormSpec) -> float:
    """σ_min of a LayerNorm's centred outputs on the complement of its known kernel (see known_kernel_basis).

    The plain σ_min of a LayerNorm output is 0 by T2 whatever the model does; restricted to the
    orthogonal complement of span(γ⁻¹, dead axes) it is the stream's smallest singular value in
    the directions the model can use, and can drop (a collapse the plain σ_min would hide).
    """
    k = known_kernel_basis(spec)
    q, _ = np.linalg.qr(np.concatenate([k, np.eye(cov.shape[0])], axis=1))
    comp = q[:, k.shape[1]:]
    ev = np.linalg.eigvalsh(comp.T @ cov @ comp)
    return float(np.sqrt(max(ev[0], 0.0) * n))


def residual_drops(
    smin: list[float], smax: list[float], *, d: int, raw: list[float] | None = None,
    post_ln: list[str | None] | None = None,
) -> list[int]:
    """Blocks i whose σ_min fell below SIGMA_DROP × the previous block's.

    Only a fall from above the float64 floor counts: ratios of two floor values are noise, not
    drops. (A post-LN block output is itself a LayerNorm output whose plain σ_min sits at the
    floor by T2; :func:`measure_model` passes σ_min off the known kernel for those boundaries.)

    Like is compared with like: after a LayerNorm-output boundary (σ_min off its kernel in ``smin``,
    plain σ_min in ``raw``) a plain residual sum is compared with the previous plain σ_min, which is
    at the floor — the sum refills the norm's kernel direction, a rise, not a drop (BLOOM's embedding
    LayerNorm, then its pre-LN blocks).
    """
    floor = math.sqrt(eigensolver_floor_rel(d))
    out = []
    for i in range(1, len(smin)):
        prev = smin[i - 1]
        if raw is not None and post_ln is not None and post_ln[i - 1] is not None and post_ln[i] is None:
            prev = raw[i - 1]
        if prev > floor * smax[i - 1] and smin[i] < SIGMA_DROP * prev:
            out.append(i)
    return out


def _has_dead(spec: NormSpec) -> bool:
    g = spec.gamma
    return bool(np.all(np.isfinite(g)) and deadir.dead_channels(g, rel_tol=DEAD_REL_TOL).size)


def compute_dtype_of(dtype: str) -> str:
    """The format PyTorch's / Hugging Face's norm kernels accumulate in: float32 for half formats."""
    return default_compute_dtype(dtype)


def site_result(path: str, spec: NormSpec, cap: _Capture, dtype: str) -> SiteResult:
    """Claim-level quantities of one site from its accumulated covariance (see the module docstring)."""
    d = spec.size
    acc = cap.acc
    c = acc.cov()
    eigvals, eigvecs = np.linalg.eigh(c)
    lam_max = float(eigvals[-1])
    gamma = spec.gamma
    dead = deadir.dead_channels(gamma, rel_tol=DEAD_REL_TOL) if np.all(np.isfinite(gamma)) else np.array([], int)
    nonzero = bool(np.all(gamma != 0))
    if nonzero:
        v = deadir.inverse_scale_direction(gamma)
    else:  # T6: 1/γ undefined; the live part is what can be reported
        inv = np.zeros(d)
        ok = gamma != 0
        inv[ok] = 1.0 / gamma[ok]
        v = inv / np.linalg.norm(inv)
    rayleigh = float(v @ c @ v) / lam_max
    floor_rel = eigensolver_floor_rel(d)
    # Tolerance (claim i): the T10 a-priori bound on vᵀĈv/λmax for the forward's dtype, with ρ measured
    # on this site's own inputs, plus the float64 floor of forming vᵀCv from the accumulated C
    # (backward error ≲ 4d·u₆₄·‖C‖, the same constant as the eigensolver floor).
    try:
        b = kernel_error_bound(spec.weight if spec.weight is not None else np.ones(d), dtype,
                               beta=spec.bias, offset=spec.weight_offset, compute_dtype=compute_dtype_of(dtype),
                               mean_ratio=cap.mean_ratio)
        bound = b.rayleigh_rel(lam_max, n_samples=acc.n) if b.valid else math.inf
        valid, s_beta = b.valid, b.beta_over_gamma
        bound_note = "" if b.valid else f"(d+1)·u_c ≥ 1 for d = {d} in {b.compute_dtype}: first-order bound void"
    except DeadirError as exc:
        bound, valid, s_beta = math.inf, False, math.inf
        bound_note = f"{type(exc).__name__}: {exc}"
    tol = bound + floor_rel
    rel = eigvals / lam_max
    floor_dim = int(np.count_nonzero(rel <= floor_rel))
    gap = float(rel[1] - rel[0]) if d > 1 else 1.0
    cos_bottom = float(abs(eigvecs[:, 0] @ v))
    # Davis–Kahan for one vector: sin²θ(v, u₁) ≤ (R(v) − λ₁)/(λ₂ − λ₁), plus eigensolver error in u₁ of order
    # floor/gap; 1 − |cos| ≤ sin²θ. Cosine mode when that bound is ≤ 1e-8 ("the gap allows"), else the
    # subspace angle, else (half-precision forwards) the Davis–Kahan alignment at the dtype's floor.
    # For the bottom k-dim eigenspace U_k: vᵀCv ≥ λ_{k+1}·‖(I − P_k)v‖², so 1 − ‖P_k v‖ ≤ sin²∠(v, U_k) ≤
    # (R(v) + floor)/λ_{k+1} — a bound that is a test only when it is well below 1 (ALIGN_MAX).
    s = max(rayleigh, 0.0) + floor_rel
    mode, k, angle_bound, angle_note = alignment_mode(rel, s, gap)
    if mode in ("subspace", "dk") and k > 1:
        angle_cos = float(np.linalg.norm(eigvecs[:, :k].T @ v))
    else:
        angle_cos = cos_bottom
    dead_var = None
    if dead.size:
        dead_var = float(np.max(np.diag(c)[dead]) / lam_max)
    absg = np.abs(gamma)
    return SiteResult(
        path=path, kind=spec.kind, d=d, n=acc.n, dtype=dtype, eps=float(spec.eps), lambda_max=lam_max,
        rayleigh_rel=rayleigh, tolerance=tol, bound_valid=valid, mean_ratio=cap.mean_ratio,
        beta_over_gamma=s_beta, cos_bottom=cos_bottom, gap_rel=gap, floor_dim=floor_dim, angle_mode=mode,
        angle_k=k, angle_cos=angle_cos, angle_bound=angle_bound,
        near_null={f"{t:.0e}": int(np.count_nonzero(rel <= t)) for t in NEAR_NULL_THRESHOLDS},
        dead=[int(i) for i in dead], dead_var_rel_max=dead_var,
        live_fraction=float(deadir.live_fraction(gamma, dead)) if nonzero else 0.0,
        gamma_min_abs=float(absg.min()), gamma_median_abs=float(np.median(absg)), eigvals_rel=rel,
        bound_note=bound_note, angle_note=angle_note,
    )


def alignment_mode(rel: np.ndarray, s: float, gap: float) -> tuple[str, int, float, str]:
    """Which alignment of v the spectrum ``rel`` (eigenvalues/λmax, ascending) can test, given s = R(v) + floor.

    Returns (mode, k, bound on 1 − ‖P_k v‖ for the bottom k-dim eigenspace, note):

    * "cos": the gap makes Davis–Kahan's (R + floor)/gap ≤ 1e-8, so |cos| with the bottom eigenvector
      must be ≥ 1 − 1e-8 (the claim as stated);
    * "subspace": the smallest bottom eigenspace (k ≤ d/2) with s/λ_{k+1} ≤ 1e-8 ("test the subspace
      angle instead");
    * "dk": the forward dtype's floor (R(v) itself, ≈ 1e-7 in bf16) keeps every angle above 1e-8; the
      bound is then the smallest of (R + floor)/gap (k = 1) and s/λ_{k+1} (k ≤ d/2) that is ≤ ALIGN_MAX;
    * "none": no eigenspace of dimension ≤ d/2 resolves v to within ALIGN_MAX (e.g. fewer rows than
      d/2, or a flat bottom spectrum): the alignment cannot be tested here, and ``note`` says why.
    """
    d = rel.size
    cos_bound = s / gap if gap > 0 else math.inf
    ratio = np.full(d, math.inf)
    with np.errstate(divide="ignore"):
        ratio[1:] = np.where(rel[1:] > 0, s / np.where(rel[1:] > 0, rel[1:], 1.0), math.inf)
    fits = lambda target: [k for k in range(1, d // 2 + 1) if ratio[k] <= target]  # noqa: E731
    if cos_bound <= COS_TARGET:
        return "cos", 1, COS_TARGET, ""
    tight = fits(COS_TARGET)
    if tight:
        return "subspace", tight[0], COS_TARGET, ""
    if cos_bound <= ALIGN_MAX:
        return "dk", 1, cos_bound, ""
    loose = fits(ALIGN_MAX)
    if loose:
        return "dk", loose[0], float(ratio[loose[0]]), ""
    best = float(np.min(ratio[1 : d // 2 + 1])) if d >= 2 else math.inf
    return "none", 1, math.nan, (
        f"no bottom eigenspace of dimension ≤ d/2 = {d // 2} resolves v: the best bound on 1 − ‖P_k v‖ is "
        f"{best:.2e} > {ALIGN_MAX:.0e} (R(v) + floor = {s:.2e}; gap {gap:.2e})")
