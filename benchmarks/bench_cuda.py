"""Item 5: the accumulator and the direction check with torch on CUDA at LLM widths.

Where a CUDA device is present (the lent GPU machine), at d = 4096 and 8192:

* the device's measured peaks: float64 matmul rate (an n×n GEMM, 2n³ flop) and copy
  bandwidth (a 1 GiB device-to-device copy, 2 bytes moved per byte copied);
* ``CovarianceAccumulator`` fed float32 activations on the device (as a forward pass
  produces them), in 4096-row batches: tokens/s, achieved float64 flop rate (2·N·d² for
  the Gram matrices) and input bandwidth (4·N·d bytes), each against the measured peaks;
* the accumulator against ``torch.cov`` on the same float64 device data (ratio);
* the O(N·d) projection check against covariance + ``torch.linalg.eigh`` on the device (ratio).

Timings bracket the work with ``torch.cuda.synchronize()``. Without CUDA every row is
skipped with the reason. ``device`` is a parameter so the same code runs (tiny) on CPU
in the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import RateRow, RatioRow, Row, SkippedRow, Target, time_repeats

BATCH = 4096
PROJECTION_TARGET = Target(">=", 100.0, "projection check vs covariance+eigh")


def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_peaks(device: Any, *, n: int = 8192, copy_bytes: int = 1 << 30) -> dict[str, float]:
    """Measured float64 GEMM rate (flop/s) and copy bandwidth (bytes/s) of ``device`` (best of repeats)."""
    import torch

    a = torch.randn(n, n, dtype=torch.float64, device=device)
    b = torch.randn(n, n, dtype=torch.float64, device=device)

    def gemm() -> None:
        a @ b
        _sync(device)

    src = torch.empty(copy_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)

    def copy() -> None:
        dst.copy_(src)
        _sync(device)

    t_gemm = time_repeats(gemm, "gemm", min_repeats=3, max_repeats=10, budget_s=2.0, warmup=1).stats.min
    t_copy = time_repeats(copy, "copy", min_repeats=3, max_repeats=20, budget_s=1.0, warmup=1).stats.min
    return {"fp64_gemm_flops": 2.0 * n**3 / t_gemm, "copy_bandwidth_bytes": 2.0 * copy_bytes / t_copy,
            "gemm_n": float(n), "copy_bytes": float(copy_bytes)}


def accumulator_rows(device: Any, widths: tuple[int, ...], *, tokens_per_d: int = 4,
                     log: Callable[[str], None] = print) -> list[Row]:
    """Accumulator throughput vs peaks, accumulator vs torch.cov, projection vs eigh — on ``device``."""
    import torch

    from deadir import CovarianceAccumulator, inverse_scale_direction, projection_std

    dev = torch.device(device)
    peaks = device_peaks(dev) if dev.type == "cuda" else device_peaks(dev, n=256, copy_bytes=1 << 22)
    log(f"  {dev}: fp64 GEMM {peaks['fp64_gemm_flops'] / 1e12:.2f} Tflop/s, copy "
        f"{peaks['copy_bandwidth_bytes'] / 1e9:.0f} GB/s")
    rows: list[Row] = []
    tag = "CUDA" if dev.type == "cuda" else str(dev)
    for d in widths:
        n = tokens_per_d * d
        gen = torch.Generator(device=dev).manual_seed(d)
        gamma = 0.5 + torch.rand(d, generator=gen, device=dev, dtype=torch.float64)
        x = torch.randn(n, d, generator=gen, device=dev, dtype=torch.float32)
        y = torch.nn.functional.layer_norm(x, (d,), gamma.float(), None)  # LayerNorm outputs, float32
        del x
        y64 = y.double()

        def accumulate(y: Any = y, d: int = d) -> Any:
            acc = CovarianceAccumulator(d)
            for s in range(0, y.shape[0], BATCH):
                acc.update(y[s : s + BATCH])
            _sync(dev)
            return acc

        def torch_cov(y64: Any = y64) -> Any:
            c = torch.cov(y64.T, correction=0)
            _sync(dev)
            return c

        def check(y: Any = y, gamma: Any = gamma) -> float:
            return projection_std(y, inverse_scale_direction(gamma))  # float() of the result synchronises

        def eigensolve(d: int = d) -> Any:
            c = accumulate().cov()  # the d×d result comes back to the host as float64 numpy
            _w, vecs = torch.linalg.eigh(torch.as_tensor(c, device=dev))
            _sync(dev)
            return vecs[:, 0]

        reps: dict[str, Any] = {"min_repeats": 3, "max_repeats": 20, "budget_s": 2.0, "warmup": 1}
        t_acc = time_repeats(accumulate, f"accumulator ({tag})", **reps)
        t_cov = time_repeats(torch_cov, f"torch.cov ({tag})", **reps)
        t_check = time_repeats(check, f"projection check ({tag})", **reps)
        t_eig = time_repeats(eigensolve, f"covariance+eigh ({tag})", min_repeats=2, max_repeats=5, budget_s=5.0,
                             warmup=1)
        flops = 2.0 * n * d * d
        in_bytes = 4.0 * n * d
        samples = t_acc.samples
        log(f"  {tag} d={d}: accumulator {t_acc.stats.median * 1e3:.1f} ms, "
            f"torch.cov {t_cov.stats.median * 1e3:.1f} ms, check {t_check.stats.median * 1e3:.2f} ms, "
            f"covariance+eigh {t_eig.stats.median * 1e3:.0f} ms")
        common = {"d": d, "n": n, "device": str(dev), "peaks": peaks}
        rows += [
            RatioRow(id=f"cuda:covariance:{d}", item=5, title=f"{tag} covariance d = {d}, N = {n}: accumulator "
                     "(float32 in, float64 state) vs torch.cov (float64)", fast=t_acc, slow=t_cov,
                     target=Target(">=", 1.0, "accumulator at least as fast"), extra=common),
            RatioRow(id=f"cuda:projection:{d}", item=5, title=f"{tag} direction check d = {d}, N = {n}: projection "
                     "vs covariance+eigh", fast=t_check, slow=t_eig, target=PROJECTION_TARGET, extra=common),
            RateRow(id=f"cuda:tokens:{d}", item=5, title=f"{tag} accumulator throughput, d = {d}", unit="tokens/s",
                    values=tuple(n / s for s in samples), extra=common),
            RateRow(id=f"cuda:flops:{d}", item=5, title=f"{tag} accumulator fp64 rate / measured fp64 GEMM peak, "
                    f"d = {d}", unit="fraction of peak",
                    values=tuple(flops / s / peaks["fp64_gemm_flops"] for s in samples), extra=common),
            RateRow(id=f"cuda:bandwidth:{d}", item=5, title=f"{tag} accumulator input bandwidth / measured copy "
                    f"bandwidth, d = {d}", unit="fraction of peak",
                    values=tuple(in_bytes / s / peaks["copy_bandwidth_bytes"] for s in samples), extra=common),
        ]  # fmt: skip
        del y, y64
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def run(*, quick: bool = False, log: Callable[[str], None] = print) -> list[Row]:
    import torch

    if not torch.cuda.is_available():
        reason = f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False)"
        return [SkippedRow(id=f"cuda:{d}", item=5, title=f"CUDA accumulator and direction check, d = {d}",
                           reason=reason) for d in (4096, 8192)]
    return accumulator_rows("cuda", (4096,) if quick else (4096, 8192), log=log)
