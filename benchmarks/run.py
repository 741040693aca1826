"""Run the benchmark items in one process and write build/bench/results.{json,md}."""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.harness import Row, SkippedRow, machine_header, render_text, write_results

REPO = Path(__file__).resolve().parent.parent
ITEMS = {
    1: "γ-read vs load+forward+eigensolve on real and ≥ 1 GB checkpoints",
    2: "projection check vs covariance+eigensolve",
    3: "covariance accumulator throughput and exactness",
    4: "fuzz examples/s and proof seconds",
    5: "CUDA: accumulator at LLM widths vs device peaks",
    6: "cold-cache scan: bytes from the device, and cold γ-read vs cold forward",
    7: "classify_norm at LLM widths (d = 1024, 4096, 8192): seconds and peak RSS",
    8: "Fisher at large vocabularies: blocked + vocabulary-chunked vs full logits; Gemma 3 270M verify --fisher",
}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="deadir benchmarks (ratios in one run).")
    p.add_argument("--only", default="1,2,3,4,5,6,7,8", help="comma-separated items to run (default all: 1-8)")
    p.add_argument("--out", default=str(REPO / "build" / "bench"), help="output folder (default build/bench)")
    p.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run (not for quoting)")
    p.add_argument("--slow-repeats", type=int, default=2, help="timed runs of each forward+eigensolve route")
    return p.parse_args(None if argv is None else list(argv))


def _item(n: int, out: Path, args: argparse.Namespace, log: Callable[[str], None]) -> list[Row]:
    if n == 1:
        from benchmarks import bench_checkpoints

        return bench_checkpoints.run(REPO, out, slow_repeats=args.slow_repeats, log=log)
    if n in (2, 3):
        from benchmarks import bench_linalg

        if n == 2:
            return bench_linalg.projection_rows((384, 1024) if args.quick else (384, 1024, 4096), log=log)
        return bench_linalg.covariance_rows((1024,) if args.quick else (1024, 4096), log=log)
    if n in (6, 7):
        from benchmarks import bench_perf

        if n == 6:
            return bench_perf.cold_scan_rows(REPO, out, with_forward=not args.quick, log=log)
        return bench_perf.classify_rows((1024,) if args.quick else (1024, 4096, 8192), log=log)
    if n == 8:
        from benchmarks import bench_fisher

        return bench_fisher.run(REPO, quick=args.quick, log=log)
    if n == 4:
        from benchmarks import bench_verification

        return bench_verification.run(REPO, quick=args.quick, log=log)
    from benchmarks import bench_cuda

    return bench_cuda.run(quick=args.quick, log=log)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen items; returns 0 when every item ran (a row may still be skipped with a reason)."""
    args = _parse(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        items = sorted({int(x) for x in args.only.split(",") if x.strip()})
    except ValueError:
        print(f"error: --only takes item numbers 1-8 separated by commas, got {args.only!r}")
        return 2
    if not items or any(i not in ITEMS for i in items):
        print(f"error: --only takes item numbers from {sorted(ITEMS)}, got {args.only!r}")
        return 2
    out = Path(args.out)
    threads = os.environ.get("DEADIR_BENCH_THREADS", "1")
    if threads != "0":
        import torch

        torch.set_num_threads(int(threads))
    header = machine_header(REPO)
    header["quick"] = args.quick
    header["threads"] = {v: os.environ.get(v) for v in ("DEADIR_BENCH_THREADS", "OPENBLAS_NUM_THREADS",
                                                        "OMP_NUM_THREADS")}
    start = time.perf_counter()
    rows: list[Row] = []
    failed = False

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {msg}", flush=True)

    for n in items:
        log(f"item {n}: {ITEMS[n]}")
        t0 = time.perf_counter()
        try:
            rows += _item(n, out, args, log)
        except Exception as exc:  # one broken item must not lose the others' numbers
            failed = True
            traceback.print_exc()
            rows.append(SkippedRow(id=f"item-{n}-error", item=n, title=ITEMS[n],
                                   reason=f"FAILED: {type(exc).__name__}: {exc}"))
        log(f"item {n} done in {time.perf_counter() - t0:.0f} s")
        write_results(out, header, rows, time.perf_counter() - start)  # partial results survive a later crash
    total = time.perf_counter() - start
    js, md = write_results(out, header, rows, total)
    print()
    print(render_text(header, rows, total))
    print(f"wrote {js} and {md}")
    return 1 if failed else 0
