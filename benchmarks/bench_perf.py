"""Items 6 and 7 (issue 16): cold-cache scan bytes, and classify_norm at LLM widths.

Item 6 — cold-cache scan. Before each measurement every file of the checkpoint is dropped from
the page cache (``posix_fadvise(POSIX_FADV_DONTNEED)`` on each file), then a *child* process
runs ``deadir.scan(path)`` (the public API only, so the row keeps working after the io rewrite)
and reports the change of ``read_bytes`` in ``/proc/self/io`` across the call: the bytes the
kernel fetched from the block device for that process, readahead included. The child first
imports deadir and runs one untimed scan of the same checkpoint *before* the drop (so lazily
imported modules are warm and are not counted), then the parent drops the files again and the
child measures. Target: ≤ 2 × (norm bytes + header bytes) + 1 MiB, on MiniLM, SmolLM2 and a
synthetic ≥ 4 GB safetensors checkpoint written *sparsely* (only the header and the norm
tensors hold bytes; the rest is a hole, so it costs no disk — and a hole is never read from the
device, so on that file readahead into the matmul weights costs nothing either: the row is a
check of the header and norm reads at 4 GB offsets, not of readahead). Also: scan vs
load + forward + eigensolve on the ≥ 1 GB synthetic checkpoint with both sides cold (≥ 10⁴).

Item 7 — ``classify_norm`` at d = 1024, 4096, 8192 on LayerNorm, RMSNorm, GroupNorm (32 groups),
scale-then-centre and Gemma's (1 + w) RMSNorm, float32, |γ| log-uniform over [0.1, 10], each
in a fresh child process: wall seconds and peak RSS (the child's VmHWM, torch's import included)
against 10 s and 1 GB at d = 4096; the row says whether the verdict is the right one. Peak RSS is the
child's own VmHWM (``ru_maxrss`` of a child spawned by a large parent reports the parent's peak).

Rows are ratios of the budget to the measurement (≥ 1 means met), so the harness's target
column reads "met (margin)" or "MISSED by ×"; the notes say why.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import synthetic
from benchmarks.harness import RateRow, RatioRow, Row, SkippedRow, Target, Timing

MIB = 1 << 20
CLASSIFY_SECONDS = 10.0
CLASSIFY_BYTES = 1 << 30
BUDGET_TARGET = Target(">=", 1.0, "budget / measured")
COLD_RATIO_TARGET = Target(">=", 10_000.0, "cold γ-read vs cold load+forward+eigh")
EXPECTED = {"layernorm": "mean-centring", "rmsnorm": "rms", "groupnorm": "group-centring",
            "scale-then-centre": "mean-centring", "gemma": "rms"}


def _child(code: str, timeout: float = 1800.0) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (same environment); it prints one JSON line last."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- item 7: classify


_CLASSIFY_CHILD = """
import json, resource, time
import numpy as np, torch
torch.set_num_threads(1)
from deadir.classify import classify_norm
from deadir.testing.examples import build_builtin_norm, draw_gamma
d, case = {d}, {case!r}
gamma = draw_gamma(d, spread=10.0, seed=d)
beta = np.random.default_rng(d).standard_normal(d) * 0.1
if case == "gemma":
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    norm = GemmaRMSNorm(d, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.as_tensor(gamma - 1.0))  # effective scale 1 + w = gamma
else:
    norm = build_builtin_norm(case, d, groups=32, gamma=gamma, beta=beta, dtype="float32")
def hwm():
    # VmHWM of this process's own address space: ru_maxrss would also carry the parent's high-water mark
    # from before exec (Linux keeps the pre-exec mm's hiwater in the signal struct)
    with open("/proc/self/status") as fh:
        return int(next(l for l in fh if l.startswith("VmHWM")).split()[1]) * 1024
start = resource.getrusage(resource.RUSAGE_SELF)
base = hwm()
t0 = time.perf_counter()
r = classify_norm(norm, d)
t = time.perf_counter() - t0
end = resource.getrusage(resource.RUSAGE_SELF)
peak = hwm()
cpu = (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime)
print(json.dumps({{"seconds": t, "cpu_seconds": cpu, "peak_rss": peak, "baseline_rss": base, "kind": r.kind,
                  "method": r.method,
                  "kernel_dim": r.kernel_dim, "matches": r.matches_inverse_scale, "floor": r.floor,
                  "gap": r.gap, "gap_lower": r.gap_lower, "rows": r.rows, "note": r.note}}))
"""


def classify_rows(widths: tuple[int, ...] = (1024, 4096, 8192), cases: tuple[str, ...] = tuple(EXPECTED), *,
                  log: Callable[[str], None] = print) -> list[Row]:
    """Item 7: one row per (d, norm): budget/seconds, with peak RSS and the verdict in the notes."""
    rows: list[Row] = []
    for d in widths:
        for case in cases:
            try:
                res = _child(_CLASSIFY_CHILD.format(d=d, case=case))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                rows.append(SkippedRow(id=f"classify:{d}:{case}", item=7, title=f"classify_norm {case}, d = {d}",
                                       reason=f"FAILED: {exc}"))
                continue
            right = res["kind"] == EXPECTED[case]
            rss_ok = res["peak_rss"] <= CLASSIFY_BYTES
            time_ok = res["seconds"] <= CLASSIFY_SECONDS
            log(f"  classify d={d} {case}: {res['kind']} ({'right' if right else 'WRONG'}), {res['seconds']:.1f} s "
                f"({res['cpu_seconds']:.1f} CPU s), "
                f"peak RSS {res['peak_rss'] / MIB:.0f} MiB")
            targeted = d == 4096
            notes = (f"verdict {res['kind']} ({'right' if right else 'WRONG, expected ' + EXPECTED[case]}), "
                     f"{res['method']} path, {res['cpu_seconds']:.1f} CPU s of {res['seconds']:.1f} s wall, "
                     f"N = {res['rows']}, τ = {res['floor']:.2g}, gap {res['gap']:.2g} "
                     f"(certified ≥ {res['gap_lower']:.2g}); peak RSS {res['peak_rss'] / MIB:.0f} MiB "
                     f"(torch import alone {res['baseline_rss'] / MIB:.0f} MiB)")
            if targeted:
                notes += (f"; time {'met' if time_ok else 'MISSED'} ({res['seconds']:.1f} s vs 10 s), memory "
                          f"{'met' if rss_ok else 'MISSED'} ({res['peak_rss'] / MIB:.0f} MiB vs 1024 MiB)"
                          + ("" if time_ok else "; why: 2 shared cores (load average in the header) — the run "
                             "is dominated by the block-Lanczos products (2 passes over an N × d float64 array "
                             "per step) and the probe's forward pass"))
            rows.append(RatioRow(
                id=f"classify:{d}:{case}", item=7, title=f"classify_norm {case}, d = {d} (budget 10 s / measured)",
                fast=Timing("classify_norm", (res["seconds"],)), slow=Timing("10 s budget", (CLASSIFY_SECONDS,)),
                target=BUDGET_TARGET if targeted else None, notes=notes, extra={"d": d, "case": case, **res},
            ))  # fmt: skip
            rows.append(RateRow(
                id=f"classify-rss:{d}:{case}", item=7, title=f"classify_norm {case}, d = {d}: peak RSS",
                unit="MiB", values=(res["peak_rss"] / MIB,),
                notes=(("target ≤ 1024 MiB at d = 4096: met" if rss_ok else
                        f"target ≤ 1024 MiB at d = 4096: MISSED by {res['peak_rss'] / CLASSIFY_BYTES:.2f}×; why: "
                        f"{res['baseline_rss'] / MIB:.0f} MiB is the interpreter with the norm's imports (torch, and "
                        "transformers for a Hugging Face module) before classify_norm starts; the probe adds "
                        f"{(res['peak_rss'] - res['baseline_rss']) / MIB:.0f} MiB") if targeted else ""),
                extra={"d": d, "case": case, "right": right},
            ))  # fmt: skip
    return rows


# --------------------------------------------------------------------------- item 6: cold scan


def drop_from_page_cache(path: Path) -> int:
    """posix_fadvise(DONTNEED) on ``path`` (a file, or every file under a folder); returns the files dropped."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return len(files)


_SCAN_CHILD = """
import json, os, sys, time
import deadir
path = {path!r}
def read_bytes():
    with open("/proc/self/io") as fh:
        return int(next(l for l in fh if l.startswith("read_bytes")).split()[1])
deadir.scan(path)  # warm: lazily imported modules (the checkpoint is dropped again below)
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # the parent drops the checkpoint from the page cache, then says go
before = read_bytes()
t0 = time.perf_counter()
result = deadir.scan(path)
t = time.perf_counter() - t0
print(json.dumps({{"read_bytes": read_bytes() - before, "seconds": t, "tensors_read": len(result.tensors_read)}}))
"""


def cold_scan(path: Path) -> dict[str, Any]:
    """Scan ``path`` in a child process with the checkpoint dropped from the page cache just before."""
    proc = subprocess.Popen([sys.executable, "-c", _SCAN_CHILD.format(path=str(path))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"scan child did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    drop_from_page_cache(path)
    out, err = proc.communicate("go\n", timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"scan child failed: {err[-2000:]}")
    res: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return res


def write_sparse_checkpoint(root: Path, spec: synthetic.GPT2Spec) -> Path:
    """``spec`` as a safetensors file whose non-norm tensors are a hole (sparse file); returns the folder."""
    folder = root / f"{spec.name}-sparse"
    target = folder / "model.safetensors"
    stamp = folder / "deadir-bench-spec.json"
    if stamp.is_file() and target.is_file() and json.loads(stamp.read_text()).get("key") == spec.key():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(spec.config(), indent=2), encoding="utf-8")
    header: dict[str, Any] = {"__metadata__": {"format": "pt", "deadir_bench_spec": spec.key()}}
    offset = 0
    for name, shape in spec.tensors():
        n = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    start = 8 + len(blob)
    norms = synthetic._norm_values(spec)
    with target.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, values in norms.items():
            fh.seek(start + header[name]["data_offsets"][0])
            fh.write(np.ascontiguousarray(values, dtype="<f4").tobytes())
        fh.truncate(start + offset)
    stamp.write_text(json.dumps({"key": spec.key()}), encoding="utf-8")
    return folder


def _budget(header_bytes: int, norm_bytes: int) -> int:
    return 2 * (header_bytes + norm_bytes) + MIB


def cold_scan_rows(repo: Path, out_dir: Path, *, with_forward: bool = True,
                   log: Callable[[str], None] = print) -> list[Row]:
    """Item 6: cold-cache bytes of deadir.scan on MiniLM, SmolLM2 and a sparse ≥ 4 GB checkpoint;
    and the cold γ-read vs cold load+forward+eigh on the ≥ 1 GB synthetic checkpoint."""
    import deadir
    from benchmarks import bench_checkpoints as bc

    rows: list[Row] = []
    subjects, missing = bc.real_subjects(bc.checkpoints_root(repo))
    for m in missing:
        rows.append(SkippedRow(id=f"cold-scan:{m.split()[0]}", item=6, title=f"cold-cache scan ({m})", reason=m))
    targets: list[tuple[str, str, Path]] = [(s.key, s.title, s.path) for s in subjects]
    free = os.statvfs(out_dir.parent if out_dir.parent.exists() else Path("/")).f_bavail
    spec4 = synthetic.grown_spec(synthetic.base_spec())
    sparse = write_sparse_checkpoint(out_dir / "checkpoints", spec4)
    targets.append((spec4.name + "-sparse", f"synthetic {spec4.nbytes() / 1e9:.1f} GB sparse safetensors", sparse))
    log(f"  sparse checkpoint {sparse} ({spec4.nbytes() / 1e9:.2f} GB apparent, free disk {free * 4096 / 1e9:.0f} GB)")
    for key, title, path in targets:
        read_names = list(deadir.scan(path).tensors_read)
        file, header_bytes, spans = bc.floor_plan(path, read_names)
        norm_bytes = sum(n for _, n in spans)
        budget = _budget(header_bytes, norm_bytes)
        res = cold_scan(path)
        got = int(res["read_bytes"])
        ratio = budget / got if got else float("inf")
        status = "met" if got <= budget else f"MISSED by {got / budget:.1f}×"
        log(f"  cold scan {key}: {got:,} bytes from the device vs budget {budget:,} ({status})")
        why = "" if got <= budget else ("; why: the scan maps or reads through the kernel's readahead (a page "
                                        "fault pulls the readahead window), not exactly the norm byte ranges")
        rows.append(RateRow(
            id=f"cold-scan:{key}", item=6, title=f"{title}: cold-cache scan, bytes read from the device",
            unit="bytes", values=(float(got),),
            notes=(f"budget 2×({header_bytes:,} header + {norm_bytes:,} norm bytes) + 1 MiB = {budget:,}: "
                   f"{status} (budget/measured {ratio:.3g}); file {file.stat().st_size:,} bytes; cold scan "
                   f"{res['seconds'] * 1e3:.0f} ms{why}"),
            extra={"read_bytes": got, "budget": budget, "header_bytes": header_bytes, "norm_bytes": norm_bytes,
                   "seconds": res["seconds"], "met": got <= budget},
        ))  # fmt: skip
    if with_forward:
        rows += _cold_forward_row(repo, out_dir, log=log)
    return rows


def _cold_forward_row(repo: Path, out_dir: Path, *, log: Callable[[str], None]) -> list[Row]:
    from benchmarks import bench_checkpoints as bc

    base = synthetic.base_spec()
    folder = synthetic.ensure_checkpoint(out_dir / "checkpoints", base)
    scan = cold_scan(folder)
    drop_from_page_cache(folder)
    route = bc.forward_eigensolve_route(bc.synthetic_subject(folder, base))
    t0 = time.perf_counter()
    route()
    slow = time.perf_counter() - t0
    ratio = slow / scan["seconds"]
    log(f"  cold: scan {scan['seconds'] * 1e3:.1f} ms vs load+forward+eigh {slow:.1f} s: {ratio:,.0f}×")
    return [RatioRow(
        id="cold-gamma-read:gpt2-1x", item=6,
        title=f"synthetic {base.nbytes() / 1e9:.2f} GB: cold γ-read vs cold load+forward+eigh",
        fast=Timing("cold scan (child process)", (scan["seconds"],)),
        slow=Timing("cold load+forward+cov+eigh", (slow,)), target=COLD_RATIO_TARGET,
        notes=(f"both sides after posix_fadvise(DONTNEED) of every file; scan read {scan['read_bytes']:,} bytes "
               f"from the device; N = {bc.n_tokens(base.d)} tokens"
               + ("" if ratio >= COLD_RATIO_TARGET.value else
                  f"; why missed: 10⁴× needs a cold scan of {slow / COLD_RATIO_TARGET.value * 1e3:.1f} ms against "
                  f"a {slow:.0f} s route; the scan's time is its Python work per site (the warm scan's floor row) "
                  "plus one device latency per tensor read, not bytes (it reads the budgeted bytes only)")),
        extra={"scan": scan, "forward_seconds": slow},
    )]
