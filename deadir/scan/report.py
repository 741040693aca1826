"""Scan results: one :class:`ScanSite` per norm, the :class:`ScanReport` of a checkpoint, their table and plot."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import DeadirError
from deadir.models.sites import Site
from deadir.report import dumps, render_table

__all__ = ["ScanReport", "ScanSite", "plot_scan"]


@dataclasses.dataclass(frozen=True, eq=False)
class ScanSite:
    """One norm site of a scanned checkpoint and what γ alone says about it.

    Attributes:
        site: the :class:`deadir.models.sites.Site` (path = tensor-name prefix of the weight).
        weight_name, bias_name: the tensors read (bias_name None when there is none).
        stored_dtype: dtype of the stored weight ("F32", "F16", "BF16", ...).
        guessed: True when the site was found by the generic name pattern, not the table.
        kind_source: why the kind is what it is ("table", or the evidence for a guess).
        eps_source: the config key ε came from, or "default".
        kernel: "inverse-scale" (v = γ⁻¹/‖γ⁻¹‖, LayerNorm), "ones" (scale-then-centre),
            "per-group" (GroupNorm), "zero-scale" (LayerNorm with γᵢ = 0: each such eᵢ is
            null, γ⁻¹ undefined) or "none" (RMSNorm and no-centring kinds: no kernel).
        direction: v (float64 unit vector) when kernel == "inverse-scale", else None.
        degenerate: indices with effective scale exactly 0 (DegenerateScaleError caught).
        dead: indices with |γᵢ| ≤ dead_rel_tol · median |γ| (zeros included).
        live_fraction: ‖v on live channels‖ for mean-centring kinds, else None.
        gamma_median, gamma_min, gamma_max: of |effective γ|; gamma_argmin: its channel.
        spread: max |γ| / min |γ| (inf when some γᵢ = 0).
    """

    site: Site
    weight_name: str
    bias_name: str | None
    stored_dtype: str
    guessed: bool
    kind_source: str
    eps_source: str
    kernel: str
    direction: FloatArray | None
    degenerate: tuple[int, ...]
    dead: tuple[int, ...]
    live_fraction: float | None
    gamma_median: float
    gamma_min: float
    gamma_max: float
    gamma_argmin: int
    spread: float

    @property
    def kernel_predicted(self) -> bool:
        """Whether the theory predicts a kernel of the output covariance here (mean-centring kinds)."""
        return self.kernel != "none"

    @property
    def gamma(self) -> FloatArray:
        """Effective scale γ (= stored w + weight_offset), float64."""
        return self.site.spec.gamma

    def to_dict(self, *, with_direction: bool = True) -> dict[str, Any]:
        """JSON-ready description; ``direction`` is the full vector (needed by the baseline gate)."""
        out = self.site.to_dict()
        out.update(
            weight_name=self.weight_name, bias_name=self.bias_name, stored_dtype=self.stored_dtype,
            guessed=self.guessed, kind_source=self.kind_source, eps_source=self.eps_source,
            kernel=self.kernel, kernel_predicted=self.kernel_predicted, degenerate=list(self.degenerate),
            dead=list(self.dead), live_fraction=self.live_fraction, gamma_median=self.gamma_median,
            gamma_min=self.gamma_min, gamma_max=self.gamma_max, gamma_argmin=self.gamma_argmin,
            spread=self.spread, min_over_median=self.gamma_min / self.gamma_median if self.gamma_median else None,
        )  # fmt: skip
        if with_direction:
            out["direction"] = None if self.direction is None else self.direction.tolist()
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class ScanReport:
    """Every norm site of a checkpoint, read from γ alone.

    Attributes:
        source: the path scanned (or the model's class name).
        format: "safetensors", "safetensors-sharded", "gguf", "ctranslate2" or "model".
        arch: the architecture key used (model_type / general.architecture / "whisper"), or
            the raw name when it is not in the tables (then every site is guessed).
        arch_known: whether the naming table had the architecture.
        sites: the sites in natural name order (block 2 before block 10).
        dead_rel_tol: the relative threshold used for dead channels.
        n_tensors, bytes_total: all tensors in the checkpoint and their stored bytes.
        tensors_read, bytes_read: the tensors actually read and their stored bytes.
        elapsed_s: wall time of the scan in seconds (informational).
        warnings: things the reader had to assume (missing ε keys, guessed sites, ...).
    """

    source: str
    format: str
    arch: str
    arch_known: bool
    sites: tuple[ScanSite, ...]
    dead_rel_tol: float
    n_tensors: int
    bytes_total: int
    tensors_read: tuple[str, ...]
    bytes_read: int
    elapsed_s: float
    warnings: tuple[str, ...] = ()

    def site(self, path: str) -> ScanSite:
        """The site with this path (KeyError naming it if absent)."""
        for s in self.sites:
            if s.site.path == path:
                return s
        raise KeyError(f"no site {path!r} in the scan of {self.source}")

    def to_dict(self, *, with_direction: bool = True) -> dict[str, Any]:
        """JSON-ready report (the format ``--baseline`` reads back)."""
        return {
            "deadir_scan": 1,
            "source": self.source, "format": self.format, "arch": self.arch, "arch_known": self.arch_known,
            "dead_rel_tol": self.dead_rel_tol, "n_sites": len(self.sites), "n_tensors": self.n_tensors,
            "bytes_total": self.bytes_total, "bytes_read": self.bytes_read, "tensors_read": list(self.tensors_read),
            "elapsed_s": self.elapsed_s, "warnings": list(self.warnings),
            "sites": [s.to_dict(with_direction=with_direction) for s in self.sites],
        }  # fmt: skip

    def to_json(self) -> str:
        """Strict JSON of :meth:`to_dict`."""
        return dumps(self.to_dict())

    def render(self) -> str:
        """The per-site table for people."""
        headers = ("site", "role", "stack", "kind", "kernel", "d", "|γ| median", "min/median", "max/min",
                   "dead", "live", "note")  # fmt: skip
        rows = []
        for s in self.sites:
            spec = s.site.spec
            kind = spec.kind + (" (1+w)" if spec.weight_offset == 1.0 else "")
            kernel = {"inverse-scale": "γ⁻¹", "ones": "𝟙", "per-group": f"γ⁻¹ × {spec.groups} groups",
                      "zero-scale": f"e_i ({len(s.degenerate)} zero γ)", "none": "no kernel"}[s.kernel]  # fmt: skip
            notes = []
            if s.guessed:
                notes.append(f"guessed ({s.kind_source})")
            if s.eps_source == "default":
                notes.append("eps default")
            if s.degenerate and s.kernel == "none":
                notes.append(f"{len(s.degenerate)} zero γ: e_i null")
            rows.append((
                s.site.path, s.site.role, s.site.stack, kind, kernel, spec.size, s.gamma_median,
                s.gamma_min / s.gamma_median if s.gamma_median else None, s.spread,
                len(s.dead) if s.dead else "-", s.live_fraction if s.dead else "-", "; ".join(notes),
            ))  # fmt: skip
        title = (
            f"{self.source} ({self.format}, arch {self.arch}{'' if self.arch_known else ' — not in the tables'}): "
            f"{len(self.sites)} norm sites; read {len(self.tensors_read)} of {self.n_tensors} tensors, "
            f"{_human_bytes(self.bytes_read)} of {_human_bytes(self.bytes_total)}, in {self.elapsed_s * 1e3:.0f} ms; "
            f"dead = |γ| ≤ {self.dead_rel_tol:g}·median"
        )
        text = render_table(headers, rows, title=title)
        if self.warnings:
            text += "\n" + "\n".join(f"warning: {w}" for w in self.warnings)
        return text


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024.0
        if value < 1024.0 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def plot_scan(report: ScanReport, path: str | os.PathLike[str]) -> Path:
    """Write a PNG: log10 |γ| per site and channel, log10 |vᵢ| of the kernel directions,
    and the per-site median / minimum |γ|. Written atomically (temporary file + rename).

    Raises:
        DeadirError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise DeadirError("--plot needs matplotlib (pip install 'deadir[plot]')") from exc
    import tempfile

    sites = report.sites
    width = max(s.site.spec.size for s in sites)
    gam = np.full((len(sites), width), np.nan)
    vec = np.full((len(sites), width), np.nan)
    for i, s in enumerate(sites):
        a = np.abs(s.gamma)
        with np.errstate(divide="ignore"):
            gam[i, : a.size] = np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)
            if s.direction is not None:
                d = np.abs(s.direction)
                vec[i, : d.size] = np.where(d > 0, np.log10(np.where(d > 0, d, 1.0)), np.nan)
    has_dir = bool(np.isfinite(vec).any())
    n_panels = 3 if has_dir else 2
    fig, axes = plt.subplots(n_panels, 1, figsize=(11, 3.2 * n_panels + 0.002 * len(sites) * n_panels))
    im = axes[0].imshow(gam, aspect="auto", interpolation="nearest", cmap="viridis")
    axes[0].set_title("log10 |γ| (effective scale) per site (rows) and channel (columns)")
    axes[0].set_ylabel("site index")
    fig.colorbar(im, ax=axes[0])
    k = 1
    if has_dir:
        im2 = axes[1].imshow(vec, aspect="auto", interpolation="nearest", cmap="magma")
        axes[1].set_title("log10 |v_i|, v = γ⁻¹/‖γ⁻¹‖ (sites with a predicted kernel; blank: no kernel)")
        axes[1].set_ylabel("site index")
        fig.colorbar(im2, ax=axes[1])
        k = 2
    idx = np.arange(len(sites))
    axes[k].semilogy(idx, [s.gamma_median for s in sites], "o-", ms=3, label="median |γ|")
    axes[k].semilogy(idx, [max(s.gamma_min, 1e-300) for s in sites], "v-", ms=3, label="min |γ|")
    axes[k].semilogy(idx, [s.gamma_max for s in sites], "^-", ms=3, label="max |γ|")
    axes[k].set_xlabel("site index (table order)")
    axes[k].set_title("|γ| spread per site")
    axes[k].legend(loc="best", fontsize=8)
    fig.suptitle(f"deadir scan: {Path(report.source).name} ({report.arch}, {len(sites)} sites)")
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return target
