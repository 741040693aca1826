"""The covariance spectrum of verified sites as a PNG (optional extra ``deadir[plot]``)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from deadir.errors import DeadirError
from deadir.report import write_bytes_atomic
from deadir.verify.report import VerifyReport

__all__ = ["plot_spectrum"]


def plot_spectrum(
    report: VerifyReport, path: str, *, init: VerifyReport | None = None, sites: Sequence[str] | None = None
) -> str:
    """Write a PNG of the covariance spectrum (eigenvalues/λmax, ascending, log scale) per site.

    The predicted direction's Rayleigh quotient is a horizontal line; with ``init`` the
    random-init spectrum is overlaid (dashed). Defaults to the final-norm sites (at most 4).
    Needs matplotlib (``pip install deadir[plot]``). Returns ``path``.

    Raises:
        DeadirError: matplotlib is not installed, or no such site.
        OutputError: the destination cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # optional extra
        raise DeadirError("plotting needs matplotlib: pip install 'deadir[plot]'") from exc
    chosen = [report.site(p) for p in sites] if sites else (report.final or report.sites[-1:])[:4]
    init_by_path = {s.site.path: s for s in init.sites} if init is not None else {}
    fig, axes = plt.subplots(1, len(chosen), figsize=(5.5 * len(chosen), 4.2), squeeze=False)
    tiny = 1e-18
    for ax, sv in zip(axes[0], chosen, strict=True):
        for label, s, style in (("model", sv, "-"), ("random init", init_by_path.get(sv.site.path), "--")):
            if s is None or s.kernel is None:
                continue
            ev = np.maximum(s.kernel.eigvals / s.kernel.lambda_max, tiny)
            line = ax.semilogy(np.arange(ev.size), ev, style, marker=".", ms=3, label=f"{label} spectrum")[0]
            clipped = " (drawn at the plot's floor 1e-18)" if s.kernel.rayleigh_rel < tiny else ""
            ax.axhline(
                max(s.kernel.rayleigh_rel, tiny),
                color=line.get_color(),
                ls=":",
                label=f"{label}: v = γ⁻¹ Rayleigh {s.kernel.rayleigh_rel:.2e}{clipped}",
            )
        ax.set_title(f"{sv.site.path} ({sv.site.spec.kind})", fontsize=9)
        ax.set_xlabel("eigenvalue index (ascending)")
        ax.set_ylabel("eigenvalue / λmax")
        ax.legend(fontsize=7)
    fig.suptitle(f"{report.model_class}: forward {report.forward_dtype}, covariance in float64", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    target = write_bytes_atomic(path, buf.getvalue())  # atomic: readers never see half a PNG
    return str(target)
