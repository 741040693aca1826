"""What :func:`deadir.verify` measured: per-site and per-block records, the report, its tables and JSON."""

from __future__ import annotations

import dataclasses
from typing import Any

from deadir.kernel import KernelReport
from deadir.models.sites import Site
from deadir.precision import DEAD_CHANNEL_REL_TOL
from deadir.report import render_table

__all__ = ["DROP_RATIO", "NEAR_NULL_TOLERANCES", "BlockStat", "SiteVerification", "VerifyReport"]

NEAR_NULL_TOLERANCES: tuple[float, ...] = (1e-10, 1e-6, 1e-3)
"""Relative tolerances (of λmax) at which near-null eigenvalues are counted."""

DROP_RATIO = 0.1
"""A block whose residual σ_min is below DROP_RATIO × the previous block's is flagged."""


@dataclasses.dataclass(frozen=True)
class SiteVerification:
    """The measurement at one norm site.

    Attributes:
        site: the site (path, spec, role, stack, block).
        predicted: "kernel" when the theory predicts v is a kernel vector (mean-centring
            kinds), "control" when it predicts none (rmsnorm, none: v = γ⁻¹ is measured to
            show it is *not* one; and any site with an exact zero scale, where v is γ⁻¹ over
            the live channels, T6).
        n, d: samples (rows) and dimension.
        distinct_rows: number of distinct output rows seen.
        rank_limited: distinct_rows − 1 < d: the inputs alone leave null directions.
        kernel: the full :class:`~deadir.KernelReport`, or None when no direction can be
            formed (every scale zero, or non-finite scales).
        projection_std: std of ⟨v, y⟩ over the rows, measured directly (units of y).
        floor_rel: the T10 bound on what an exact kernel vector reaches (units of λmax).
        mean_ratio: ρ = max over input rows of |mean x|/std x (None when the input was not seen).
        at_floor: rayleigh_rel ≤ floor_rel (None when v is undefined).
        near_null: {tol: number of eigenvalues ≤ tol·λmax}.
        dead: dead channel indices; live_fraction: ‖v on live channels‖.
        note: anything the numbers need to be read with.
    """

    site: Site
    predicted: str
    n: int
    d: int
    distinct_rows: int
    rank_limited: bool
    kernel: KernelReport | None
    projection_std: float | None
    floor_rel: float | None
    mean_ratio: float | None
    at_floor: bool | None
    near_null: dict[float, int]
    lambda_max: float
    spectral_gap_rel: float
    dead: tuple[int, ...]
    live_fraction: float
    note: str

    @property
    def rayleigh_rel(self) -> float | None:
        """vᵀCv/λmax, or None when v is undefined."""
        return None if self.kernel is None else self.kernel.rayleigh_rel

    @property
    def eigval_along_direction(self) -> float | None:
        """vᵀCv (units of y²), or None."""
        return None if self.kernel is None else self.kernel.rayleigh_rel * self.kernel.lambda_max

    @property
    def cos_bottom(self) -> float | None:
        """|⟨v, bottom eigenvector⟩|, or None (v undefined, or several eigenvalues at the floor)."""
        return None if self.kernel is None else self.kernel.cos_bottom

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            **self.site.to_dict(),
            "predicted": self.predicted,
            "n": self.n,
            "distinct_rows": self.distinct_rows,
            "rank_limited": self.rank_limited,
            "rayleigh_rel": self.rayleigh_rel,
            "eigval_along_direction": self.eigval_along_direction,
            "cos_bottom": self.cos_bottom,
            "floor_subspace_cos": None if self.kernel is None else self.kernel.floor_subspace_cos,
            "projection_std": self.projection_std,
            "floor_rel": self.floor_rel,
            "mean_ratio": self.mean_ratio,
            "at_floor": self.at_floor,
            "lambda_max": self.lambda_max,
            "spectral_gap_rel": self.spectral_gap_rel,
            "near_null": {f"{tol:g}": k for tol, k in self.near_null.items()},
            "dead_channels": list(self.dead),
            "live_fraction": self.live_fraction,
            "smallest_eigvals": [] if self.kernel is None else self.kernel.eigvals[:8].tolist(),
            "note": self.note,
        }


@dataclasses.dataclass(frozen=True)
class BlockStat:
    """Residual-stream statistics at one block boundary.

    ``block`` is the block index whose *output* was measured, or -1 for the input of
    block 0 (the embeddings). ``sigma_min`` = √(n·max(λ_min, 0)) of the centred rows,
    ``sigma_min_rel`` = σ_min/σ_max, ``ratio`` = σ_min / previous σ_min (None for the first),
    ``dropped`` = ratio < DROP_RATIO, ``rank_limited`` = fewer distinct rows than d + 1
    (then σ_min = 0 says nothing about the model).
    """

    container: str
    stack: str
    block: int
    n: int
    d: int
    sigma_min: float
    sigma_max: float
    sigma_min_rel: float
    ratio: float | None
    dropped: bool
    rank_limited: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """Everything :func:`verify` measured.

    Attributes:
        model_type, model_class: what was run.
        forward_dtype: dtype of the forward pass (parameters); measurements are float64.
        device: where it ran. n_batches, batch_size: how.
        inputs: description of the inputs (kind, shapes, source).
        sites: per-site measurements, in module order. blocks: residual statistics.
        tolerances, drop_ratio, dead_rel_tol: the thresholds used.
    """

    model_type: str
    model_class: str
    forward_dtype: str
    device: str
    inputs: str
    n_batches: int
    batch_size: int
    sites: list[SiteVerification]
    blocks: list[BlockStat]
    tolerances: tuple[float, ...] = NEAR_NULL_TOLERANCES
    drop_ratio: float = DROP_RATIO
    dead_rel_tol: float = DEAD_CHANNEL_REL_TOL

    def site(self, path: str) -> SiteVerification:
        """The measurement of the site at ``path``.

        Raises:
            KeyError: no such site was measured.
        """
        for s in self.sites:
            if s.site.path == path:
                return s
        raise KeyError(f"{path}: not a measured site; sites: {[s.site.path for s in self.sites][:20]}")

    @property
    def final(self) -> list[SiteVerification]:
        """The measurements of the final-norm sites."""
        return [s for s in self.sites if s.site.role == "final"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "model_type": self.model_type,
            "model_class": self.model_class,
            "forward_dtype": self.forward_dtype,
            "measurement_dtype": "float64",
            "device": self.device,
            "inputs": self.inputs,
            "n_batches": self.n_batches,
            "batch_size": self.batch_size,
            "tolerances": list(self.tolerances),
            "drop_ratio": self.drop_ratio,
            "dead_rel_tol": self.dead_rel_tol,
            "sites": [s.to_dict() for s in self.sites],
            "blocks": [b.to_dict() for b in self.blocks],
        }

    def sites_table(self) -> str:
        """Per-site table (plain text)."""
        tols = self.tolerances
        headers = (
            "site",
            "kind",
            "role",
            "d",
            "n",
            "rayleigh_rel",
            "floor",
            "at floor",
            "|cos|",
            "gap",
            *(f"null@{t:g}" for t in tols),
            "dead",
            "live",
        )
        rows = [
            (
                s.site.path,
                s.site.spec.kind + ("*" if s.site.probed else ""),
                s.site.role,
                s.d,
                s.n,
                s.rayleigh_rel,
                s.floor_rel,
                s.at_floor,
                s.cos_bottom,
                s.spectral_gap_rel,
                *(s.near_null[t] for t in tols),
                len(s.dead),
                s.live_fraction,
            )
            for s in self.sites
        ]
        return render_table(
            headers,
            rows,
            title=(
                f"{self.model_class} ({self.model_type or '?'}), forward {self.forward_dtype} on {self.device}, "
                f"measured in float64; inputs: {self.inputs}"
            ),
        )

    def blocks_table(self) -> str:
        """Residual-stream table (plain text)."""
        headers = (
            "stack",
            "container",
            "block",
            "n",
            "sigma_min",
            "sigma_min/sigma_max",
            "ratio",
            "drop",
            "rank-limited",
        )
        rows = [
            (
                b.stack or "-",
                b.container,
                "input" if b.block < 0 else b.block,
                b.n,
                b.sigma_min,
                b.sigma_min_rel,
                b.ratio,
                b.dropped,
                b.rank_limited,
            )
            for b in self.blocks
        ]
        return render_table(headers, rows, title=f"residual stream (drop flagged when ratio < {self.drop_ratio:g})")

    def render(self) -> str:
        """Both tables and a legend."""
        legend = (
            "rayleigh_rel = vᵀCv/λmax for v = γ⁻¹/‖γ⁻¹‖ (𝟙 for scale-then-centre); floor = rounding floor of an "
            "exact kernel vector in the forward dtype; * = kind found by probing; null@t = eigenvalues ≤ t·λmax; "
            f"dead = channels with |γ| ≤ {self.dead_rel_tol:g}·median|γ|; live = ‖v on live channels‖"
        )
        parts = [self.sites_table(), legend]
        if self.blocks:
            parts.append(self.blocks_table())
        return "\n\n".join(parts)
