"""The forward-pass engine of :func:`deadir.verify`: hooks, streaming accumulators, per-site results.

:func:`verify` hooks every norm site (from :func:`deadir.find_norms`) and every block of
the model, runs the inputs through in batches, and streams each site's outputs into a
float64 :class:`~deadir.CovarianceAccumulator` (on the model's device). Per site it then
reports, for the predicted direction v = γ⁻¹/‖γ⁻¹‖ (𝟙 for scale-then-centre):

* ``rayleigh_rel`` = vᵀCv/λmax, ``cos_bottom`` (or None with ``floor_subspace_cos`` when
  several eigenvalues sit at the eigensolver floor), the spectral gap (λ₂−λ₁)/λmax;
* ``projection_std`` = std of ⟨v, y⟩ measured directly (an O(N·d) 1-D accumulator of the
  projections, not read off C);
* ``near_null``: the number of eigenvalues ≤ tol·λmax for each tol in
  :data:`NEAR_NULL_TOLERANCES` = (1e-10, 1e-6, 1e-3);
* ``floor_rel`` (:func:`rounding_floor_rel`): the a-priori T10 bound
  (:func:`deadir.kernel_error_bound`) on what an exact kernel vector reaches in the forward
  dtype, with ρ = max |mean x|/std x measured on the norm's own input rows; ``at_floor`` =
  rayleigh_rel ≤ floor_rel. RMSNorm
  sites get the same γ⁻¹ measurement as a control: the theory predicts *no* kernel, so
  ``at_floor`` should be False there;
* dead channels (|γᵢ| ≤ :data:`deadir.precision.DEAD_CHANNEL_REL_TOL` · median|γ|, each an exact null direction of
  its own) and the share of v on the live channels;
* ``distinct_rows``: how many different output rows the site saw (fingerprinted on the
  device). With fewer than d + 1 distinct rows the covariance is rank-deficient whatever
  the norm: repeated prompts or prefixes fake near-null directions.

Per block it reports the residual stream's smallest centred singular value
σ_min = √(n·λ_min(C)) of the block outputs (and of the input of block 0), the ratio to the
previous block, and flags a drop when the ratio is below :data:`DROP_RATIO` = 0.1 (an order
of magnitude).

Memory: one d×d float64 matrix per site and per block (d = 4096: 128 MiB each); pass
``sites=`` (e.g. ``final_norm(model)``) and ``residual=False`` to bound it for large models.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.bound import kernel_error_bound
from deadir.covariance import CovarianceAccumulator
from deadir.direction import dead_channels, inverse_scale_direction, live_fraction
from deadir.errors import DegenerateScaleError, InputShapeError, UnknownNormError
from deadir.kernel import KernelReport, eigensolver_floor_rel, measure_kernel
from deadir.models import find_norms
from deadir.models.sites import Site
from deadir.precision import DEAD_CHANNEL_REL_TOL, default_compute_dtype
from deadir.verify.report import DROP_RATIO, NEAR_NULL_TOLERANCES, BlockStat, SiteVerification, VerifyReport

__all__ = ["rounding_floor_rel", "verify"]


def rounding_floor_rel(
    gamma: FloatArray,
    beta: FloatArray,
    lambda_max: float,
    *,
    dtype: str,
    compute_dtype: str | None = None,
    mean_ratio: float = 1.0,
) -> float:
    """A-priori bound (units of λmax) on vᵀĈv/λmax for an exact kernel vector v = γ⁻¹/‖γ⁻¹‖ computed in ``dtype``.

    :func:`deadir.kernel_error_bound` (T10, first order) with the output format ``dtype`` and
    the statistics computed in ``compute_dtype`` (default float32 for half-precision outputs:
    torch's LayerNorm and the Hugging Face norms upcast), ``mean_ratio`` ρ ≥ max |mean x|/std x
    of the norm's input rows, then residual²/λmax; never below the eigensolver floor 4·d·u₆₄.
    Channels with γᵢ = ±inf count as absent (1/γᵢ = 0: used for the live-channel direction of
    a zero-scale site).

    Raises:
        InputShapeError: unknown dtype names, or a zero γ (no direction).
    """
    live = np.isfinite(gamma)
    if np.any(gamma == 0):
        raise InputShapeError("gamma: has zero entries; no inverse-scale direction")
    if lambda_max <= 0 or np.count_nonzero(live) < 2:
        return math.inf
    comp = compute_dtype or default_compute_dtype(dtype)
    bound = kernel_error_bound(
        gamma[live],
        dtype,
        beta=beta[live],
        compute_dtype=comp,
        mean_ratio=mean_ratio if math.isfinite(mean_ratio) else 1e300,
    )
    if not bound.valid:
        return math.inf
    return max(bound.rayleigh_rel(lambda_max), eigensolver_floor_rel(int(gamma.size)))


def verify(
    model: Any,
    inputs: Any,
    *,
    dtype: Any = None,
    batch_size: int = 8,
    progress: bool = False,
    sites: Sequence[Site] | None = None,
    residual: bool = True,
    tolerances: Sequence[float] = NEAR_NULL_TOLERANCES,
    description: str | None = None,
) -> VerifyReport:
    """Run ``inputs`` through ``model`` in batches and measure every norm site (see the module docstring).

    ``inputs`` is a mapping of keyword tensors with a common leading (sample) dimension —
    ``input_ids`` (n, T) int64; ``pixel_values`` (n, C, H, W); ``input_features``
    (n, mel, frames); encoder-decoders also ``decoder_input_ids`` — as made by
    :func:`deadir.models.inputs.make_inputs` (whose description is then used), or a single tensor
    (integer: ``input_ids``; 4-D float: ``pixel_values``; 3-D float: ``input_features``).
    ``dtype`` runs the forward in that torch dtype (on a copy of the model when it differs
    from the model's own); float inputs are cast to it. ``sites`` restricts the
    measurement (default: all of :func:`deadir.find_norms`).

    Raises:
        UnknownNormError: the model has no norm sites.
        InputShapeError: inputs of the wrong type, shape or size for the model (including
            a forward pass that rejects them), batch_size < 1, or fewer than 2 rows at a site.
    """
    import torch
    from tqdm.auto import tqdm

    if not isinstance(model, torch.nn.Module):
        raise UnknownNormError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputShapeError(f"batch_size: must be a positive integer, got {batch_size!r}")
    tolerances = tuple(float(t) for t in tolerances)
    if not tolerances or any(not (math.isfinite(t) and t >= 0) for t in tolerances):
        raise InputShapeError(f"tolerances: need finite values ≥ 0, got {tolerances}")
    desc = description or getattr(inputs, "description", None)
    tensors = _as_tensor_dict(getattr(inputs, "tensors", inputs))
    n_samples = _check_inputs(model, tensors)

    param = next(iter(model.parameters()), None)
    if dtype is not None:
        tdtype = _torch_dtype(dtype)
        if param is not None and param.dtype != tdtype:
            model = copy.deepcopy(model).to(tdtype)
            param = next(iter(model.parameters()))
    device = param.device if param is not None else torch.device("cpu")
    fwd_dtype = param.dtype if param is not None else torch.float32
    chosen = list(find_norms(model) if sites is None else sites)
    if not chosen:
        raise UnknownNormError(f"{type(model).__name__}: no normalisation sites found; nothing to verify")

    probes = [_SiteProbe(model, s, device) for s in chosen]
    blocks = _BlockProbes(model, chosen, device) if residual else None
    handles = [p.attach() for p in probes] + (blocks.attach() if blocks is not None else [])
    was_training = model.training
    model.eval()
    n_batches = math.ceil(n_samples / batch_size)
    try:
        with torch.no_grad():
            for start in tqdm(
                range(0, n_samples, batch_size), total=n_batches, disable=not progress, desc="verify", unit="batch"
            ):
                batch = {k: _to_device(v[start : start + batch_size], device, fwd_dtype) for k, v in tensors.items()}
                try:
                    model(**batch)
                except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as exc:
                    shapes = {k: tuple(v.shape) for k, v in batch.items()}
                    raise InputShapeError(
                        f"inputs: {type(model).__name__} rejected a batch with shapes {shapes}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    site_reports = [p.result(fwd_dtype, tolerances) for p in probes]
    return VerifyReport(
        model_type=str(getattr(getattr(model, "config", None), "model_type", "") or ""),
        model_class=type(model).__name__,
        forward_dtype=str(fwd_dtype).removeprefix("torch."),
        device=str(device),
        inputs=desc or _describe(tensors),
        n_batches=n_batches,
        batch_size=batch_size,
        sites=site_reports,
        blocks=blocks.results() if blocks is not None else [],
        tolerances=tolerances,
    )


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise InputShapeError(f"dtype: expected a torch dtype or its name (float32, bfloat16, ...), got {dtype!r}")


def _as_tensor_dict(inputs: Any) -> dict[str, Any]:
    import torch

    if isinstance(inputs, torch.Tensor):
        if not inputs.is_floating_point():
            return {"input_ids": inputs}
        if inputs.ndim == 4:
            return {"pixel_values": inputs}
        if inputs.ndim == 3:
            return {"input_features": inputs}
        raise InputShapeError(
            f"inputs: a float tensor of shape {tuple(inputs.shape)} is neither pixel_values (n, C, H, W) "
            "nor input_features (n, mel, frames); pass a dict of keyword tensors"
        )
    if not isinstance(inputs, Mapping) or not inputs:
        raise InputShapeError(
            f"inputs: expected a tensor or a non-empty mapping of tensors, got {type(inputs).__name__}"
        )
    out = {}
    for k, v in inputs.items():
        if not isinstance(v, torch.Tensor):
            raise InputShapeError(f"inputs[{k!r}]: expected a torch tensor, got {type(v).__name__}")
        out[str(k)] = v
    return out


def _check_inputs(model: Any, tensors: dict[str, Any]) -> int:
    sizes = {k: (int(v.shape[0]) if v.ndim else 0) for k, v in tensors.items()}
    n = next(iter(sizes.values()))
    if len(set(sizes.values())) != 1 or n < 1:
        raise InputShapeError(f"inputs: every tensor needs the same non-zero leading (sample) size, got {sizes}")
    config = getattr(model, "config", None)
    ids = tensors.get("input_ids")
    if ids is not None:
        if ids.is_floating_point() or ids.ndim != 2:
            raise InputShapeError(
                f"inputs['input_ids']: expected an integer tensor (n, T), got {tuple(ids.shape)} {ids.dtype}"
            )
        vocab = _vocab_size(config)
        if vocab is not None and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise InputShapeError(
                f"inputs['input_ids']: ids must lie in [0, {vocab}), got [{int(ids.min())}, {int(ids.max())}]"
            )
    pix = tensors.get("pixel_values")
    if pix is not None and (pix.ndim != 4 or not pix.is_floating_point()):
        raise InputShapeError(f"inputs['pixel_values']: expected a float tensor (n, C, H, W), got {tuple(pix.shape)}")
    feats = tensors.get("input_features")
    if feats is not None:
        mel = getattr(config, "num_mel_bins", None)
        if feats.ndim != 3 or (mel is not None and feats.shape[1] != mel):
            raise InputShapeError(
                f"inputs['input_features']: expected (n, {mel or 'mel'}, frames), got {tuple(feats.shape)}"
            )
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" not in tensors:
        raise InputShapeError(
            "inputs: an encoder-decoder model needs 'decoder_input_ids' too "
            "(deadir.models.inputs.make_inputs provides them)"
        )
    return n


def _vocab_size(config: Any) -> int | None:
    for c in (config, getattr(config, "text_config", None)):
        v = getattr(c, "vocab_size", None)
        if isinstance(v, int):
            return v
    return None


def _to_device(t: Any, device: Any, dtype: Any) -> Any:
    return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)


def _describe(tensors: dict[str, Any]) -> str:
    return ", ".join(f"{k} {tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}" for k, v in tensors.items())


def _first_tensor(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, Mapping):
        for v in out.values():
            if isinstance(v, torch.Tensor):
                return v
    return None


class _Fingerprints:
    """Distinct-row counter: each row projected on a fixed random float64 vector (equal rows, equal keys)."""

    def __init__(self, d: int, device: Any) -> None:
        import torch

        gen = np.random.default_rng(987654321)
        self.r = torch.as_tensor(gen.standard_normal(d), dtype=torch.float64, device=device)
        self.keys: list[Any] = []

    def update(self, rows: Any) -> None:
        self.keys.append(rows @ self.r.to(rows.device))

    def count(self) -> int:
        import torch

        return int(torch.unique(torch.cat(self.keys)).numel()) if self.keys else 0


class _SiteProbe:
    def __init__(self, model: Any, site: Site, device: Any) -> None:
        import torch

        self.site = site
        try:
            self.module = model.get_submodule(site.path)
        except AttributeError as exc:
            raise UnknownNormError(f"{site.path}: not a submodule of {type(model).__name__}") from exc
        spec = site.spec
        self.d = spec.size
        self.acc = CovarianceAccumulator(self.d)
        self.proj = CovarianceAccumulator(1)
        self.prints = _Fingerprints(self.d, device)
        self.note = ""
        self.direction: FloatArray | None
        if spec.kind == "scale-then-centre":
            self.direction = np.full(self.d, 1.0 / math.sqrt(self.d))
        else:
            try:
                self.direction = inverse_scale_direction(spec.gamma)
            except DegenerateScaleError as exc:
                # T6: γ⁻¹ is undefined; measure γ⁻¹ over the live channels (zeros on the dead ones).
                # It is NOT a kernel vector of a LayerNorm (⟨γ_live⁻¹, y − β⟩ = −Σ_dead zᵢ varies);
                # each dead eᵢ is an exact null axis instead.
                live = spec.gamma != 0.0
                self.direction = None
                if set(exc.kinds.values()) == {"zero"} and np.count_nonzero(live) >= 1:
                    v = np.zeros(self.d)
                    v[live] = inverse_scale_direction(spec.gamma[live])
                    self.direction = v
                self.note = (
                    f"{len(exc.indices)} exact zero scale(s), each its own null axis; "
                    "v = γ⁻¹ over the live channels only (not a predicted kernel)"
                )
        self.rho: float | None = None
        self.v = None if self.direction is None else torch.as_tensor(self.direction, dtype=torch.float64, device=device)

    def attach(self) -> Any:
        return self.module.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: Any, out: Any) -> None:
        import torch

        t = _first_tensor(out)
        if t is None or t.shape[-1] != self.d:
            raise InputShapeError(
                f"{self.site.path}: output {None if t is None else tuple(t.shape)} does not end in d={self.d}"
            )
        rows = t.detach().reshape(-1, self.d).to(torch.float64)
        self.acc.update(rows)
        self.prints.update(rows)
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.shape[-1] == self.d:
            xr = x.detach().reshape(-1, self.d).to(torch.float64)
            sd = xr.std(dim=-1, unbiased=False)
            ok = sd > 0  # constant rows normalise to β exactly (z = 0): no centring error to bound
            if bool(ok.any()):
                rho = float((xr.mean(dim=-1)[ok].abs() / sd[ok]).max())
                self.rho = rho if self.rho is None else max(self.rho, rho)
        if self.v is not None:
            self.proj.update((rows @ self.v.to(rows.device))[:, None])

    def result(self, fwd_dtype: Any, tolerances: tuple[float, ...]) -> SiteVerification:
        spec = self.site.spec
        if self.acc.n < 2:
            raise InputShapeError(
                f"{self.site.path}: saw {self.acc.n} row(s); need at least 2 for a covariance "
                "(was the site run by the forward pass?)"
            )
        dtype = str(fwd_dtype).removeprefix("torch.")
        zero_scale = bool(np.any(spec.gamma == 0.0)) and spec.kind != "scale-then-centre"
        predicted = "kernel" if spec.has_mean_centring and not zero_scale else "control"
        dead = dead_channels(spec.gamma, rel_tol=DEAD_CHANNEL_REL_TOL)
        live = live_fraction(spec.gamma, dead)
        distinct = self.prints.count()
        notes = [self.note] if self.note else []
        if self.rho is None:
            notes.append("input rows not seen: the bound assumes |mean x|/std x ≤ 1")
        if distinct - 1 < self.d:
            notes.append(
                f"rank-limited: only {distinct} distinct rows for d={self.d}, so ≥ {self.d - distinct + 1} "
                "null directions come from the inputs, not the norm"
            )
        if dead.size:
            notes.append(f"{dead.size} dead channel(s) {dead[:8].tolist()}: each is an exact null axis")
        kernel: KernelReport | None = None
        pstd = floor = None
        at_floor = None
        if self.direction is not None:
            kernel = measure_kernel(self.acc, self.direction)
            pstd = float(math.sqrt(max(float(self.proj.cov()[0, 0]), 0.0)))
            # the 𝟙 direction of scale-then-centre is the same model with γ = 1; a zero-scale
            # site's live-only direction is judged by the floor of its live channels
            gamma = np.ones(self.d) if spec.kind == "scale-then-centre" else spec.gamma
            if zero_scale:
                gamma = np.where(gamma == 0.0, np.inf, gamma)  # 1/γ = 0 on the dead channels
            floor = rounding_floor_rel(
                gamma, spec.beta, kernel.lambda_max, dtype=dtype, mean_ratio=1.0 if self.rho is None else self.rho
            )
            at_floor = bool(kernel.rayleigh_rel <= floor)
            eigvals = kernel.eigvals
            lam_max, gap = kernel.lambda_max, kernel.spectral_gap_rel
        else:
            eigvals = np.asarray(np.linalg.eigvalsh(self.acc.cov()), dtype=np.float64)
            lam_max = float(eigvals[-1])
            gap = float((eigvals[1] - eigvals[0]) / lam_max) if self.d > 1 and lam_max > 0 else math.nan
        near = {t: int(np.count_nonzero(eigvals <= t * lam_max)) for t in tolerances}
        return SiteVerification(
            site=self.site,
            predicted=predicted,
            n=self.acc.n,
            d=self.d,
            distinct_rows=distinct,
            rank_limited=distinct - 1 < self.d,
            kernel=kernel,
            projection_std=pstd,
            floor_rel=floor,
            mean_ratio=self.rho,
            at_floor=at_floor,
            near_null=near,
            lambda_max=lam_max,
            spectral_gap_rel=gap,
            dead=tuple(int(i) for i in dead),
            live_fraction=live,
            note="; ".join(notes),
        )


class _BlockProbes:
    """Hooks on every block of every block container (the ModuleList holding the sites' blocks)."""

    def __init__(self, model: Any, sites: Sequence[Site], device: Any) -> None:
        import torch

        self.model = model
        self.device = device
        self.containers: dict[str, tuple[str, Any]] = {}
        for s in sites:
            if s.block is None:
                continue
            parts = s.path.split(".")
            i = next(j for j, p in enumerate(parts) if p.isdigit())
            name = ".".join(parts[:i])
            if name in self.containers:
                continue
            container = model.get_submodule(name) if name else model
            if isinstance(container, (torch.nn.ModuleList, torch.nn.Sequential)):
                self.containers[name] = (s.stack, container)
        # (container, block index) -> [accumulator or None, fingerprints or None]
        self.accs: dict[tuple[str, int], list[Any]] = {}

    def attach(self) -> list[Any]:
        handles = []
        for name, (_, container) in self.containers.items():
            children = list(container)
            if not children:
                continue
            handles.append(children[0].register_forward_pre_hook(self._pre(name), with_kwargs=True))
            for i, child in enumerate(children):
                handles.append(child.register_forward_hook(self._post(name, i)))
        return handles

    def _pre(self, name: str) -> Any:
        def hook(module: Any, args: Any, kwargs: Any) -> None:
            t = args[0] if args else kwargs.get("hidden_states")
            self._add(name, -1, t)

        return hook

    def _post(self, name: str, i: int) -> Any:
        def hook(module: Any, args: Any, out: Any) -> None:
            self._add(name, i, _first_tensor(out))

        return hook

    def _add(self, name: str, block: int, t: Any) -> None:
        import torch

        if not isinstance(t, torch.Tensor) or t.ndim < 2 or not t.is_floating_point():
            return
        d = int(t.shape[-1])
        slot = self.accs.setdefault((name, block), [CovarianceAccumulator(d), _Fingerprints(d, self.device)])
        if slot[0].d != d:
            return
        rows = t.detach().reshape(-1, d).to(torch.float64)
        slot[0].update(rows)
        slot[1].update(rows)

    def results(self) -> list[BlockStat]:
        out: list[BlockStat] = []
        for name, (stack, _) in self.containers.items():
            keys = sorted(b for (c, b) in self.accs if c == name)
            prev: float | None = None
            for b in keys:
                acc, prints = self.accs[(name, b)]
                if acc.n < 2:
                    continue
                ev = np.linalg.eigvalsh(acc.cov())
                s_min = math.sqrt(acc.n * max(float(ev[0]), 0.0))
                s_max = math.sqrt(acc.n * max(float(ev[-1]), 0.0))
                ratio = None if prev is None or prev == 0.0 else s_min / prev
                limited = prints.count() - 1 < acc.d
                out.append(
                    BlockStat(
                        container=name,
                        stack=stack,
                        block=b,
                        n=acc.n,
                        d=acc.d,
                        sigma_min=s_min,
                        sigma_max=s_max,
                        sigma_min_rel=s_min / s_max if s_max > 0 else 0.0,
                        ratio=ratio,
                        dropped=bool(ratio is not None and ratio < DROP_RATIO and not limited),
                        rank_limited=limited,
                    )
                )
                prev = s_min
        return out
