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
* the residual stream's smallest singular value per block (centred), drops flagged;
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

# Relative thresholds (of λmax) at which near-null eigenvalues are counted, as stated in the report.
NEAR_NULL_THRESHOLDS = (1e-8, 1e-6, 1e-4)
# A dead channel: |γᵢ| ≤ DEAD_REL_TOL · median|γ|. MiniLM/MPNet's are ≤ 1e-30 relative; 1e-6 keeps every
# channel whose contribution γᵢzᵢ is below float32 resolution of the β it is added to, and no live one.
DEAD_REL_TOL = 1e-6
# A block's σ_min is flagged as a drop when it falls below this fraction of the previous block's.
SIGMA_DROP = 0.1
# "Cosine mode" needs the Davis–Kahan bound on 1 − |cos| to be below this (the claim's 1e-8).
COS_TARGET = 1e-8


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
    try:
        from deadir.models import find_norms  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        find_norms = None
    out = []
    if find_norms is not None:
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

    state: dict[str, Any] = {"keep": None}
    caps: dict[str, _Capture] = {}
    block_caps: list[_Capture] = []
    handles = []

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
            block_caps[i + 1].add(out, state["keep"])

        return hook

    def first_block_pre(module: Any, args: Any, kwargs: Any) -> None:
        x = args[0] if args else kwargs.get("hidden_states")
        if x is None:
            return
        if not block_caps:
            block_caps.append(_Capture(int(x.shape[-1])))
        block_caps[0].add(x, state["keep"])

    for path in chosen:
        handles.append(by_path[path][0].register_forward_hook(site_hook(path)))
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_hook(block_hook(i)))
    if blocks:
        handles.append(blocks[0].register_forward_pre_hook(first_block_pre, with_kwargs=True))
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            for batch in batches:
                state["keep"] = batch.get("keep")
                forward(model, batch)
    finally:
        for h in handles:
            h.remove()
    forward_s = time.perf_counter() - t0

    results = {p: site_result(p, by_path[p][1], caps[p], dtype) for p in chosen if p in caps}
    if final_path not in results:
        raise DeadirError(f"{name}: the final norm {final_path} never ran on the inputs")
    smin, smax = [], []
    for cap in block_caps:
        if cap.acc.n < 2:
            continue
        ev = np.linalg.eigvalsh(cap.acc.cov())
        smin.append(float(np.sqrt(max(ev[0], 0.0) * cap.acc.n)))
        smax.append(float(np.sqrt(max(ev[-1], 0.0) * cap.acc.n)))
    drops = residual_drops(smin, smax, d=results[final_path].d)
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
        classification=kind, classification_note=note, classification_matches_inverse_scale=matches,
        load_s=load_s, forward_s=forward_s, input_desc=input_desc,
    )


def residual_drops(smin: list[float], smax: list[float], *, d: int) -> list[int]:
    """Blocks i whose σ_min fell below SIGMA_DROP × the previous block's.

    Only a fall from above the float64 floor counts: a post-LN block output is itself a
    LayerNorm output, so its σ_min sits at the floor √(4d·u₆₄)·σ_max by T2, and ratios of
    two floor values are noise, not drops.
    """
    floor = math.sqrt(eigensolver_floor_rel(d))
    return [
        i for i in range(1, len(smin))
        if smin[i - 1] > floor * smax[i - 1] and smin[i] < SIGMA_DROP * smin[i - 1]
    ]


def _has_dead(spec: NormSpec) -> bool:
    g = spec.gamma
    return bool(np.all(np.isfinite(g)) and deadir.dead_channels(g, rel_tol=DEAD_REL_TOL).size)


def compute_dtype_of(dtype: str) -> str:
    """The format PyTorch's / Hugging Face's norm kernels accumulate in: float32 for half formats."""
    return "float32" if dtype in ("float16", "bfloat16") else dtype


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
    except DeadirError:
        bound, valid, s_beta = math.inf, False, math.inf
    tol = bound + floor_rel
    rel = eigvals / lam_max
    floor_dim = int(np.count_nonzero(rel <= floor_rel))
    gap = float(rel[1] - rel[0]) if d > 1 else 1.0
    cos_bottom = float(abs(eigvecs[:, 0] @ v))
    # Davis–Kahan for one vector: sin²θ(v, u₁) ≤ (R(v) − λ₁)/(λ₂ − λ₁), plus eigensolver error in u₁ of order
    # floor/gap; 1 − |cos| ≤ sin²θ. Cosine mode when that bound is ≤ 1e-8 ("the gap allows"), else the
    # subspace angle, else (half-precision forwards) the Davis–Kahan alignment at the dtype's floor.
    cos_bound = (max(rayleigh, 0.0) + floor_rel) / gap if gap > 0 else math.inf
    need = (max(rayleigh, 0.0) + floor_rel) / COS_TARGET
    above = np.flatnonzero(rel[1:] >= need)
    if cos_bound <= COS_TARGET:
        mode, k, angle_cos, angle_bound = "cos", 1, cos_bottom, COS_TARGET
    elif above.size and int(above[0]) + 1 <= d // 2:
        # Subspace mode: the smallest bottom eigenspace (k eigenvalues) whose next eigenvalue is far enough
        # above R(v) that sin²∠(v, span) ≤ (R(v) + floor)/λ_{k+1} ≤ 1e-8.
        k = int(above[0]) + 1
        angle_cos = float(np.linalg.norm(eigvecs[:, :k].T @ v))
        mode, angle_bound = "subspace", COS_TARGET
    else:
        # The forward dtype's own floor (R(v) itself, e.g. ≈ 1e-7 in bf16) keeps any angle above 1e-8:
        # the alignment the gap then guarantees is Davis–Kahan's 1 − |cos| ≤ sin²θ ≤ (R + floor)/gap.
        mode, k, angle_cos, angle_bound = "dk", 1, cos_bottom, min(1.0, cos_bound)
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
    )
